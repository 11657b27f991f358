"""Optimizers without a learning rate to tune: COCOB (coin betting), DoG and DoWG (distance
over gradients).

Each is a short chain; the math lives in ``transforms/cocob.py`` and ``transforms/dog_global.py``.
Mechanic, which learns the scale of any optimizer, is the wrapper :class:`gradxform.mechanize`.
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.base import identity
from gradxform._src.combine import chain
from gradxform._src.module import api
from gradxform._src.transforms.cocob import scale_by_cocob
from gradxform._src.transforms.dog_global import scale_by_dog, scale_by_dowg
from gradxform._src.transforms.regularisation import add_decayed_weights
from gradxform._src.transforms.scaling import scale_by_learning_rate
from gradxform._src.types import DType, Hyper, Numeric

__all__ = ["cocob", "dog", "dowg"]


@docs.args
@api("cocob")
def cocob(learning_rate: Hyper = 1.0, alpha: Hyper = 100.0, eps: Numeric = 1e-8,
          weight_decay: Hyper = 0.0, mask: Any = None, *,
          accumulator_dtype: DType = None) -> chain:
    r"""COCOB-Backprop (Orabona & Tommasi 2017): SGD as a coin-betting game, no step size.

    ``chain(add_decayed_weights(weight_decay, mask), scale_by_learning_rate(lr,
    flip_sign=False), scale_by_cocob(alpha, eps))``: the (decayed) gradient, multiplied by
    ``learning_rate``, drives :class:`scale_by_cocob`, which returns the whole step:

    .. math:: w_{t+1} = w_1 + \frac{\theta_t}{L_t\max(G_t + L_t,\ \alpha L_t)}(L_t + R_t)

    Conventions. As optax: ``learning_rate`` multiplies the gradients *before* the betting, and
    the rule is invariant to that factor except through ``eps`` (so it is not a step size; keep
    1 or use it to inject a schedule's shape). The decay is coupled (added to the gradient).

    Args:
      learning_rate: a factor >= 0 on the gradients (a number, array or schedule).
      alpha: the bound > 0 on the early bets (the paper's 100).
      eps: the initial scale > 0.
      weight_decay: coupled decay >= 0 added to the gradient.
      <<mask>>
      <<accumulator_dtype>>
    """
    return chain(add_decayed_weights(weight_decay=weight_decay, mask=mask),
                 scale_by_learning_rate(learning_rate=learning_rate, flip_sign=False),
                 scale_by_cocob(alpha=alpha, eps=eps, accumulator_dtype=accumulator_dtype),
                 name="cocob")


def _decay(weight_decay: Any, mask: Any):
    if weight_decay is None:
        return identity()
    return add_decayed_weights(weight_decay=weight_decay, mask=mask)


@docs.args
@api("dog")
def dog(learning_rate: Hyper = 1.0, init_step: Any = ("heuristic", 1e-6), eps: Hyper = 1e-8,
        weight_decay: Hyper | None = None, mask: Any = None, *,
        accumulator_dtype: DType = None) -> chain:
    r"""DoG (Ivgi et al. 2023): SGD whose step is the distance travelled over the gradients.

    ``chain(add_decayed_weights(weight_decay, mask), scale_by_dog(init_step, eps),
    scale_by_learning_rate(lr))``:

    .. math:: x_{t+1} = x_t - \lambda_t\,\frac{\max_{s \le t}\lVert x_s - x_0\rVert}
              {\sqrt{\sum_{s \le t} \lVert g_s\rVert^2 + \epsilon}}\, g_t

    with :math:`\lambda_t` = ``learning_rate``, a multiplier (1 by default). See
    :class:`scale_by_dog` for ``init_step``. The authors recommend evaluating an average of the
    iterates (:func:`gradxform.ema_params`).

    Args:
      learning_rate: the multiplier >= 0 (a number, array or schedule).
      init_step: ``(kind, value)``: ``("heuristic", a)`` (default ``a`` = 1e-6),
        ``("distance", r)`` or ``("learning_rate", eta)``.
      eps: added to the sum of squared norms, >= 0.
      weight_decay: coupled decay >= 0 added to the gradient, or ``None`` for none.
      <<mask>>
      <<accumulator_dtype>>
    """
    return chain(_decay(weight_decay, mask),
                 scale_by_dog(init_step=init_step, eps=eps, accumulator_dtype=accumulator_dtype),
                 scale_by_learning_rate(learning_rate=learning_rate), name="dog")


@docs.args
@api("dowg")
def dowg(learning_rate: Hyper = 1.0, init_estim_sq_dist: Numeric | None = None,
         eps: Hyper = 1e-4, weight_decay: Hyper | None = None, mask: Any = None, *,
         accumulator_dtype: DType = None) -> chain:
    r"""DoWG (Khaled et al. 2023): distance over gradients weighted by the distance.

    ``chain(add_decayed_weights(weight_decay, mask), scale_by_dowg(init_estim_sq_dist, eps),
    scale_by_learning_rate(lr))``:

    .. math:: x_{t+1} = x_t - \lambda_t\,\frac{\bar r_t^2}
              {\sqrt{\sum_{s \le t} \bar r_s^2 \lVert g_s\rVert^2} + \epsilon}\, g_t,
              \qquad \bar r_t = \max_{s \le t}\lVert x_s - x_0\rVert

    with :math:`\lambda_t` = ``learning_rate``, a multiplier (1 by default); see
    :class:`scale_by_dowg`.

    Args:
      learning_rate: the multiplier >= 0 (a number, array or schedule).
      init_estim_sq_dist: the initial squared distance > 0, or ``None`` for ``eps``.
      eps: > 0, added to the denominator.
      weight_decay: coupled decay >= 0 added to the gradient, or ``None`` for none.
      <<mask>>
      <<accumulator_dtype>>
    """
    return chain(_decay(weight_decay, mask),
                 scale_by_dowg(init_estim_sq_dist=init_estim_sq_dist, eps=eps,
                               accumulator_dtype=accumulator_dtype),
                 scale_by_learning_rate(learning_rate=learning_rate), name="dowg")
