"""Modern optimizers: Muon, Schedule-Free SGD/AdamW, Prodigy, D-Adaptation AdamW, SWATS.

Each is a short chain (or a wrapper); the math lives in the transforms it links:
``transforms/orthogonal.py`` (Muon), ``transforms/schedule_free.py``,
``transforms/parameter_free.py`` (Prodigy, D-Adaptation) and ``transforms/swats.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from gradxform._src import docs, module
from gradxform._src.combine import chain, masked
from gradxform._src.module import api
from gradxform._src.optimizers.classic import sgd
from gradxform._src.schedules import constant_schedule, join_schedules, linear_schedule
from gradxform._src.transforms.adaptive import scale_by_adam, scale_by_rms
from gradxform._src.transforms.orthogonal import (
    NS_COEFFS,
    MuonLeaves,
    freeze_dims,
    scale_by_muon,
    scale_by_shape,
)
from gradxform._src.transforms.parameter_free import scale_by_dadapt_adamw, scale_by_prodigy
from gradxform._src.transforms.regularisation import add_decayed_weights
from gradxform._src.transforms.scaling import scale_by_learning_rate
from gradxform._src.transforms.schedule_free import schedule_free
from gradxform._src.transforms.swats import scale_by_swats

__all__ = ["muon", "schedule_free_sgd", "schedule_free_adamw", "prodigy", "dadapt_adamw",
           "swats"]


@contextlib.contextmanager
def _renamed(rename: Mapping[tuple[str, str], str]) -> Iterator[None]:
    """Inside a public call, name some arguments of the links built here differently.

    ``muon`` builds two ``add_decayed_weights`` (``weight_decay``, ``adam_weight_decay``) and
    possibly two ``scale_by_learning_rate``; errors must name the argument the user passed.
    """
    current = module._API.get()
    if current is None:
        yield
        return
    token = module._API.set((current[0], {**current[1], **rename}))
    try:
        yield
    finally:
        module._API.reset(token)


@docs.args
@api("muon", rename={("scale_by_adam", "b1"): "adam_b1", ("scale_by_adam", "b2"): "adam_b2",
                     ("scale_by_adam", "eps_root"): "adam_eps_root",
                     ("scale_by_muon", "weight_dimension_numbers"):
                         "muon_weight_dimension_numbers"})
def muon(learning_rate: Any, ns_coeffs: Any = NS_COEFFS, ns_steps: int = 5, beta: Any = 0.95,
         eps: Any = 1e-8, weight_decay: Any = 0.0, weight_decay_mask: Any = None,
         mu_dtype: Any = None, *, nesterov: bool = True, adaptive: bool = False,
         preconditioning: str = "frobenius", adam_b1: Any = 0.9, adam_b2: Any = 0.999,
         adam_eps_root: Any = 0.0, adam_weight_decay: Any = 0.0,
         adam_learning_rate: Any = None, muon_weight_dimension_numbers: Any = None,
         consistent_rms: Any = None) -> chain:
    r"""Muon (Jordan et al. 2024): orthogonalised momentum for matrices, AdamW for the rest.

    A named chain of two :func:`~gradxform.masked` branches and the learning rate::

        muon:  scale_by_muon -> scale_by_shape -> add_decayed_weights(weight_decay)
        adam:  scale_by_adam(adam_b1, adam_b2, eps, nesterov) -> add_decayed_weights(adam_wd)
        learning_rate: scale_by_learning_rate

    so a matrix :math:`W` moves by
    :math:`-\eta\,(\sqrt{\max(1, d_{out}/d_{in})}\,\operatorname{NS}_5(\hat M) + \lambda W)`
    (see :class:`scale_by_muon` and :class:`scale_by_shape`). By default the 2-D leaves go to
    Muon and every other leaf to AdamW; ``muon_weight_dimension_numbers`` chooses otherwise.
    With ``adam_learning_rate`` each branch gets its own ``scale_by_learning_rate``.

    Conventions. Those of optax's ``contrib.muon``: Nesterov momentum by default, also for the
    Adam branch (which is then NAdam), ``eps`` shared by both branches, Adam's weight decay 0.
    Jordan's reference applies Muon to the hidden matrices only (not embeddings or the output
    layer): exclude those with ``muon_weight_dimension_numbers`` (``None`` sends a leaf to
    Adam).

    Args:
      <<learning_rate>>
      ns_coeffs: Newton-Schulz coefficients ``(a, b, c)``, a table of shape ``(n, 3)``, or a
        preset name (``"standard"``, ``"dion"``).
      ns_steps: Newton-Schulz steps (>= 1).
      beta: momentum decay in [0, 1).
      <<eps>>
      weight_decay: decoupled weight decay >= 0 of the Muon leaves (multiplied by the learning
        rate).
      weight_decay_mask: which Muon leaves are decayed (a tree of bools or a callable).
      <<mu_dtype>>
      <<nesterov>>
      adaptive: scale the orthogonalised update by the dual norm of the momentum.
      preconditioning: ``"frobenius"``, ``"spectral"``, ``"aol"`` or ``"schatten"``.
      adam_b1: Adam's first-moment decay in [0, 1).
      adam_b2: Adam's second-moment decay in [0, 1).
      adam_eps_root: Adam's ``eps_root`` >= 0.
      adam_weight_decay: decoupled weight decay >= 0 of the Adam leaves.
      adam_learning_rate: the Adam branch's learning rate (default: ``learning_rate``).
      muon_weight_dimension_numbers: a tree (or prefix, or callable) of
        :class:`MuonDimensionNumbers` and ``None`` (``None``: the leaf goes to Adam);
        default: the 2-D leaves, as matrices.
      consistent_rms: if given, scale Muon's updates to this RMS (see :class:`scale_by_shape`).

    Example::

        opt = gx.muon(0.02, weight_decay=0.01)

    References:
      Jordan, Jin, Boza, You, Cesista, Newhouse, Bernstein, *Muon: An optimizer for hidden
      layers in neural networks*, 2024 (https://kellerjordan.github.io/posts/muon/).
    """
    dims = freeze_dims(muon_weight_dimension_numbers)
    muon_links = [
        scale_by_muon(ns_coeffs, ns_steps, beta, eps, mu_dtype, nesterov, adaptive,
                      preconditioning, dims),
        scale_by_shape(dims, consistent_rms),
        add_decayed_weights(weight_decay, weight_decay_mask),
    ]
    with _renamed({("add_decayed_weights", "weight_decay"): "adam_weight_decay",
                   ("scale_by_learning_rate", "learning_rate"): "adam_learning_rate"}):
        adam_links = [
            scale_by_adam(adam_b1, adam_b2, eps, adam_eps_root, mu_dtype, None, nesterov),
            add_decayed_weights(adam_weight_decay),
        ]
        if adam_learning_rate is not None:
            adam_links.append(scale_by_learning_rate(adam_learning_rate))
    names, tail = ("muon", "adam"), []
    if adam_learning_rate is None:
        names, tail = names + ("learning_rate",), [scale_by_learning_rate(learning_rate)]
    else:
        muon_links.append(scale_by_learning_rate(learning_rate))
    return chain(masked(chain(*muon_links), MuonLeaves(dims, True)),
                 masked(chain(*adam_links), MuonLeaves(dims, False)),
                 *tail, name="muon", names=names)


def _warmup_constant(learning_rate: Any, warmup_steps: int | None) -> Any:
    """0 -> ``learning_rate`` linearly over ``warmup_steps`` steps, then constant."""
    if warmup_steps is None:
        return learning_rate
    return join_schedules((linear_schedule(0.0, learning_rate, warmup_steps),
                           constant_schedule(learning_rate)), (warmup_steps,))


_WARMUP = {("linear_schedule", "transition_steps"): "warmup_steps",
           ("linear_schedule", "end_value"): "learning_rate",
           ("constant_schedule", "value"): "learning_rate"}


@api("schedule_free_sgd", rename=_WARMUP)
def schedule_free_sgd(learning_rate: Any = 1.0, warmup_steps: int | None = None,
                      b1: Any = 0.9, weight_decay: Any = None, weight_lr_power: Any = 2.0,
                      state_dtype: Any = None) -> schedule_free:
    r"""Schedule-Free SGD (Defazio et al. 2024): :class:`schedule_free` around plain SGD.

    .. math:: z_{t+1} = z_t - \gamma_t \nabla f(y_t), \qquad
              x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}, \qquad
              y_{t+1} = \beta x_{t+1} + (1 - \beta) z_{t+1}

    The params are :math:`y`; evaluate at :math:`x` =
    ``gx.schedule_free_eval_params(opt, state, params)``.

    Args:
      learning_rate: :math:`\gamma` >= 0 (a number or array; the warm-up makes it a schedule).
      warmup_steps: length of a linear warm-up from 0, or ``None``.
      b1: the interpolation :math:`\beta` in (0, 1].
      weight_decay: coupled weight decay (:math:`\lambda y` added to the gradient, as in the
        authors' SGD), or ``None``.
      weight_lr_power: power of the learning rate in the averaging weights, >= 0.
      state_dtype: dtype of :math:`z` (default by the dtype policy).

    References:
      Defazio et al., *The Road Less Scheduled*, NeurIPS 2024, Algorithm 1.
    """
    scale_by_learning_rate(learning_rate)  # range-checked here: a warm-up schedule is not
    lr = _warmup_constant(learning_rate, warmup_steps)
    base = sgd(lr)
    if weight_decay is not None:
        base = chain(add_decayed_weights(weight_decay), base)
    return schedule_free(base, lr, b1, weight_lr_power, state_dtype, label="schedule_free_sgd")


@docs.args
@api("schedule_free_adamw", rename={**_WARMUP, ("scale_by_rms", "decay"): "b2"})
def schedule_free_adamw(learning_rate: Any = 0.0025, warmup_steps: int | None = None,
                        b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8,
                        weight_decay: Any = 0.0, weight_lr_power: Any = 2.0,
                        state_dtype: Any = None) -> schedule_free:
    r"""Schedule-Free AdamW (Defazio et al. 2024): :class:`schedule_free` around RMS scaling.

    The base optimizer is Adam without momentum,
    ``chain(scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
    add_decayed_weights(weight_decay), scale_by_learning_rate(learning_rate))``:

    .. math:: v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \qquad
              z_{t+1} = z_t - \gamma_t\Big(\frac{g_t}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}
              + \lambda y_t\Big)

    and :math:`x`, :math:`y` as in :func:`schedule_free_sgd`. The weight decay is taken at
    :math:`y`, as in the authors' code.

    Args:
      learning_rate: :math:`\gamma` >= 0 (a number or array).
      warmup_steps: length of a linear warm-up from 0, or ``None``.
      b1: the interpolation :math:`\beta` in (0, 1].
      <<b2>>
      eps: added to the denominator outside the square root, > 0.
      weight_decay: decoupled weight decay >= 0, multiplied by the learning rate.
      weight_lr_power: power of the learning rate in the averaging weights, >= 0.
      state_dtype: dtype of :math:`z` (default by the dtype policy).

    References:
      Defazio et al., *The Road Less Scheduled*, NeurIPS 2024 (the AdamW variant, as in the
      authors' ``AdamWScheduleFree``).
    """
    scale_by_learning_rate(learning_rate)  # range-checked here: a warm-up schedule is not
    lr = _warmup_constant(learning_rate, warmup_steps)
    base = chain(scale_by_rms(b2, eps, 0.0, eps_in_sqrt=False, bias_correction=True),
                 add_decayed_weights(weight_decay), scale_by_learning_rate(lr))
    return schedule_free(base, lr, b1, weight_lr_power, state_dtype,
                         label="schedule_free_adamw")


def _pair(name: str, betas: Any) -> tuple[Any, Any]:
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"{name}: betas must be a pair (b1, b2), got {betas!r}")
    return betas[0], betas[1]


_BETAS = {("scale_by_prodigy", "b1"): "betas[0]", ("scale_by_prodigy", "b2"): "betas[1]",
          ("scale_by_dadapt_adamw", "b1"): "betas[0]",
          ("scale_by_dadapt_adamw", "b2"): "betas[1]"}


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
    return chain(scale_by_prodigy(learning_rate, b1, b2, beta3, eps, estim_lr0, estim_lr_coef,
                                  weight_decay, safeguard_warmup, bias_correction,
                                  accumulator_dtype), name="prodigy")


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
    return chain(scale_by_dadapt_adamw(learning_rate, b1, b2, eps, estim_lr0, weight_decay,
                                       bias_correction, accumulator_dtype), name="dadapt_adamw")


@docs.args
@api("swats")
def swats(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-9,
          eps_switch: Any = 1e-9, mu_dtype: Any = None, nu_dtype: Any = None) -> chain:
    r"""SWATS (Keskar & Socher 2017): Adam until its step size is learned, then SGD.

    ``chain(scale_by_swats(...))``; see :class:`scale_by_swats` for Algorithm 1 of the paper:

    .. math:: \theta_t = \theta_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t}+\epsilon}
              \ \text{(Adam phase)}, \qquad
              \theta_t = \theta_{t-1} - (1-\beta_1)\Lambda\, v_t,\
              v_t = \beta_1 v_{t-1} + g_t \ \text{(SGD phase)}

    with :math:`\Lambda` the bias-corrected average of the projected rates at the switch.
    The optimizer switches once, when the bias-corrected average of the projected SGD rates
    agrees with the latest one to within ``eps_switch``, and continues as SGD with momentum
    ``b1`` at that rate.

    Args:
      <<learning_rate>>
      b1: Adam's first-moment decay and SGD's momentum, in [0, 1).
      b2: Adam's second-moment decay and the rate average's, in [0, 1).
      eps: Adam's epsilon > 0 (paper: 1e-9).
      eps_switch: the switching tolerance > 0 (paper: 1e-9).
      <<mu_dtype>>
      <<nu_dtype>>

    References:
      Keskar & Socher, *Improving Generalization Performance by Switching from Adam to SGD*,
      arXiv 1712.07628, 2017.
    """
    return chain(scale_by_swats(learning_rate, b1, b2, eps, eps_switch, mu_dtype, nu_dtype),
                 name="swats")
