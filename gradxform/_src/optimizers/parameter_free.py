"""Learning-rate-free Adam: Prodigy and D-Adaptation AdamW.
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api, field_of
from gradxform._src.transforms.parameter_free import scale_by_dadapt_adamw, scale_by_prodigy

__all__ = ["prodigy", "dadapt_adamw"]


def _pair(name: str, betas: Any) -> tuple[Any, Any]:
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"{name}: betas must be a pair (b1, b2), got {betas!r}")
    return betas[0], betas[1]


_BETAS = {field_of(scale_by_prodigy, "b1"): "betas[0]",
          field_of(scale_by_prodigy, "b2"): "betas[1]",
          field_of(scale_by_dadapt_adamw, "b1"): "betas[0]",
          field_of(scale_by_dadapt_adamw, "b2"): "betas[1]"}


@docs.args
@api("prodigy", rename=_BETAS)
def prodigy(learning_rate: Any = 1.0, betas: tuple[Any, Any] = (0.9, 0.999),
            beta3: Any = None, eps: Any = 1e-8, estim_lr0: Any = 1e-6,
            estim_lr_coef: Any = 1.0, weight_decay: Any = 0.0,
            safeguard_warmup: bool = False, *, bias_correction: bool = True,
            accumulator_dtype: Any = None) -> chain:
    r"""Prodigy (Mishchenko & Defazio 2023): learning-rate-free AdamW.

    ``chain(scale_by_prodigy(...))``; see :class:`scale_by_prodigy` for the update rule. The
    step size is estimated; ``learning_rate`` multiplies it (1 by default; a schedule from 1
    down to 0, with a short warm-up, is the authors' recommendation). ``init`` accepts
    ``jax.ShapeDtypeStruct`` params (the initial point is then taken at the first update).

    Args:
      learning_rate: the multiplier >= 0 (a number, array or schedule).
      betas: Adam's decays ``(b1, b2)``, each in [0, 1).
      beta3: decay in [0, 1) of the estimate's sums; default ``sqrt(b2)``.
      <<eps>>
      estim_lr0: the initial under-estimate :math:`d_0` > 0.
      estim_lr_coef: multiplies the estimate, > 0.
      weight_decay: decoupled weight decay >= 0 (multiplied by the step size).
      safeguard_warmup: leave the multiplier out of the estimate's denominator.
      bias_correction: Adam's bias correction in the step size (optax) or not (the paper).
      <<accumulator_dtype>>

    References:
      Mishchenko & Defazio, *Prodigy: An Expeditiously Adaptive Parameter-Free Learner*,
      ICML 2024 (arXiv 2306.06101).
    """
    b1, b2 = _pair("prodigy", betas)
    return chain(scale_by_prodigy(learning_rate=learning_rate, b1=b1, b2=b2, beta3=beta3, eps=eps,
                                  estim_lr0=estim_lr0, estim_lr_coef=estim_lr_coef,
                                  weight_decay=weight_decay, safeguard_warmup=safeguard_warmup,
                                  bias_correction=bias_correction,
                                  accumulator_dtype=accumulator_dtype), name="prodigy")


@docs.args
@api("dadapt_adamw", rename=_BETAS)
def dadapt_adamw(learning_rate: Any = 1.0, betas: tuple[Any, Any] = (0.9, 0.999),
                 eps: Any = 1e-8, estim_lr0: Any = 1e-6, weight_decay: Any = 0.0, *,
                 bias_correction: bool = True, accumulator_dtype: Any = None) -> chain:
    r"""D-Adaptation AdamW (Defazio & Mishchenko 2023): learning-rate-free AdamW.

    ``chain(scale_by_dadapt_adamw(...))``; see :class:`scale_by_dadapt_adamw` for the update
    rule. ``learning_rate`` multiplies the estimated step size (1 by default).

    Args:
      learning_rate: the multiplier >= 0 (a number, array or schedule).
      betas: Adam's decays ``(b1, b2)``, each in [0, 1).
      <<eps>>
      estim_lr0: the initial under-estimate :math:`d_0` > 0.
      weight_decay: decoupled weight decay >= 0 (multiplied by the step size).
      bias_correction: Adam's bias correction in the step size (optax) or not (the paper).
      <<accumulator_dtype>>

    References:
      Defazio & Mishchenko, *Learning-Rate-Free Learning by D-Adaptation*, ICML 2023 (arXiv
      2301.07733).
    """
    b1, b2 = _pair("dadapt_adamw", betas)
    return chain(scale_by_dadapt_adamw(learning_rate=learning_rate, b1=b1, b2=b2, eps=eps,
                                       estim_lr0=estim_lr0, weight_decay=weight_decay,
                                       bias_correction=bias_correction,
                                       accumulator_dtype=accumulator_dtype), name="dadapt_adamw")
