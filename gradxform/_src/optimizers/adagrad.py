"""AdaGrad and Adadelta: per-coordinate step sizes from the history of squared gradients.
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api, field_of
from gradxform._src.transforms.adadelta import scale_by_adadelta
from gradxform._src.transforms.adagrad import scale_by_rss
from gradxform._src.transforms.regularisation import add_l2_penalty
from gradxform._src.transforms.scaling import scale_by_learning_rate

__all__ = ["adagrad", "adadelta"]


@docs.args
@api("adagrad")
def adagrad(learning_rate: Any, initial_accumulator_value: Any = 0.1, eps: Any = 1e-7, *,
            eps_in_sqrt: bool = True, accumulator_dtype: Any = None) -> chain:
    r"""AdaGrad (Duchi et al., 2011): ``chain(scale_by_rss(...), scale_by_learning_rate(lr))``.

    .. math:: G_t = G_{t-1} + g_t^2, \qquad \theta_t = \theta_{t-1} - \eta\,
              \frac{g_t}{\sqrt{G_t + \epsilon}}

    See :class:`scale_by_rss` for the placement of ``eps`` (torch puts it outside the root).

    Args:
      <<learning_rate>>
      initial_accumulator_value: :math:`G_0` >= 0.
      <<eps>>
      eps_in_sqrt: whether ``eps`` goes inside the square root.
      <<accumulator_dtype>>
    """
    return chain(scale_by_rss(initial_accumulator_value=initial_accumulator_value, eps=eps,
                              eps_in_sqrt=eps_in_sqrt, accumulator_dtype=accumulator_dtype),
                 scale_by_learning_rate(learning_rate=learning_rate), name="adagrad")


@docs.args
@api("adadelta", rename={field_of(add_l2_penalty, "l2"): "weight_decay",
                         field_of(add_l2_penalty, "mask"): "weight_decay_mask"})
def adadelta(learning_rate: Any = 1.0, rho: Any = 0.9, eps: Any = 1e-6,
             weight_decay: Any = 0.0, weight_decay_mask: Any = None, *,
             accumulator_dtype: Any = None) -> chain:
    r"""Adadelta (Zeiler, 2012).

    ``chain(add_l2_penalty(weight_decay, weight_decay_mask), scale_by_adadelta(rho, eps),
    scale_by_learning_rate(lr))``:

    .. math:: \theta_t = \theta_{t-1} - \eta\,
              \frac{\sqrt{E[\Delta^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}}\, g_t

    See :class:`scale_by_adadelta`. The paper has no learning rate (:math:`\eta = 1`, the
    default, as torch's).

    Conventions. ``weight_decay`` is *coupled*: :math:`\lambda\theta` is added to the gradient
    before the adaptive scaling, as in optax's and torch's Adadelta. optax's default
    ``learning_rate=None`` means no scaling and no sign flip (it ascends); pass a number.

    Args:
      learning_rate: the step size, a number >= 0, an array or a schedule (default 1).
      rho: decay of the running averages in [0, 1).
      eps: added inside both square roots, > 0.
      weight_decay: coefficient :math:`\lambda` >= 0 of the L2 penalty added to the gradient.
      weight_decay_mask: which leaves are decayed, as ``mask`` elsewhere (default: all).
      <<accumulator_dtype>>
    """
    return chain(add_l2_penalty(l2=weight_decay, mask=weight_decay_mask),
                 scale_by_adadelta(rho=rho, eps=eps, accumulator_dtype=accumulator_dtype),
                 scale_by_learning_rate(learning_rate=learning_rate), name="adadelta")
