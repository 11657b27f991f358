"""Adam and AdamW."""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api
from gradxform._src.transforms.adaptive import scale_by_adam
from gradxform._src.transforms.regularisation import add_decayed_weights
from gradxform._src.transforms.scaling import scale_by_learning_rate

__all__ = ["adam", "adamw"]


@docs.args
@api("adam")
def adam(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8,
         eps_root: Any = 0.0, mu_dtype: Any = None, nu_dtype: Any = None, *,
         nesterov: bool = False) -> chain:
    r"""Adam (Kingma & Ba, 2015): ``chain(scale_by_adam(...), scale_by_learning_rate(lr))``.

    .. math:: \theta_t = \theta_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    with the bias-corrected moments of :class:`scale_by_adam` (which documents the update rule
    and the conventions). ``nesterov=True`` gives NAdam.

    Args:
      <<learning_rate>>
      <<b1>>
      <<b2>>
      <<eps>>
      <<eps_root>>
      <<mu_dtype>>
      <<nu_dtype>>
      <<nesterov>>

    Example::

        opt = gx.adam(gx.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 10_000))
    """
    return chain(scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov),
                 scale_by_learning_rate(learning_rate), name="adam")


@docs.args
@api("adamw")
def adamw(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8,
          eps_root: Any = 0.0, mu_dtype: Any = None, nu_dtype: Any = None,
          weight_decay: Any = 1e-4, mask: Any = None, *, nesterov: bool = False) -> chain:
    r"""AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

    ``chain(scale_by_adam(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(lr))``:

    .. math:: \theta_t = \theta_{t-1} - \eta\left(\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}
              + \lambda\theta_{t-1}\right)

    The decay is multiplied by the learning rate, as in optax and torch; see
    :class:`add_decayed_weights` for the paper's form.

    Args:
      <<learning_rate>>
      <<b1>>
      <<b2>>
      <<eps>>
      <<eps_root>>
      <<mu_dtype>>
      <<nu_dtype>>
      <<weight_decay>>
      <<mask>>
      <<nesterov>>
    """
    return chain(scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov),
                 add_decayed_weights(weight_decay, mask),
                 scale_by_learning_rate(learning_rate), name="adamw")
