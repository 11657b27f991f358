"""Optimistic methods for min-max games: optimistic gradient descent and optimistic Adam.

Each is a short chain; the math lives in :class:`scale_by_optimistic_gradient` (and
:class:`scale_by_adam`).
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api, field_of
from gradxform._src.transforms.adam import scale_by_adam
from gradxform._src.transforms.optimistic import scale_by_optimistic_gradient
from gradxform._src.transforms.scaling import scale, scale_by_learning_rate

__all__ = ["optimistic_gradient_descent", "optimistic_adam", "optimistic_adam_v2"]


@docs.args
@api("optimistic_gradient_descent")
def optimistic_gradient_descent(learning_rate: Any, alpha: Any = 1.0, beta: Any = 1.0) -> chain:
    r"""Optimistic gradient descent (generalised OGD): a step along :math:`\alpha g_t +
    \beta(g_t - g_{t-1})`.

    ``chain(scale_by_optimistic_gradient(alpha, beta), scale_by_learning_rate(lr))``:

    .. math:: \theta_{t} = \theta_{t-1} - \eta\left((\alpha + \beta)\, g_t - \beta\, g_{t-1}
              \right), \qquad g_0 := g_1

    In a min-max game (descent on one player's params, ascent on the other's, see
    :class:`maximize`) plain gradient steps cycle or diverge around the equilibrium; the
    optimistic term converges there in the last iterate, at the cost of one stored gradient.

    Args:
      <<learning_rate>>
      alpha: :math:`\alpha` >= 0, the weight of the current gradient.
      beta: :math:`\beta` >= 0, the weight of the change of the gradient.

    References:
      Mokhtari, Ozdaglar, Pattathil, *A Unified Analysis of Extra-gradient and Optimistic
      Gradient Methods for Saddle Point Problems: Proximal Point Approach*, AISTATS 2020.

    Example::

        opt = gx.optimistic_gradient_descent(0.1)
    """
    return chain(scale_by_optimistic_gradient(alpha=alpha, beta=beta),
                 scale_by_learning_rate(learning_rate=learning_rate),
                 name="optimistic_gradient_descent")


@docs.args
@api("optimistic_adam", rename={field_of(scale_by_optimistic_gradient, "alpha"): "learning_rate",
                                field_of(scale_by_optimistic_gradient, "beta"): "optimism"})
def optimistic_adam(learning_rate: Any, optimism: Any = None, b1: Any = 0.9, b2: Any = 0.999,
                    eps: Any = 1e-8, eps_root: Any = 0.0, mu_dtype: Any = None, *,
                    nesterov: bool = True) -> chain:
    r"""Optimistic Adam (Daskalakis et al. 2018): Adam's step plus ``optimism`` times its change.

    ``chain(scale_by_adam(...), scale_by_optimistic_gradient(alpha=lr, beta=optimism),
    scale(-1))``, with :math:`r_t` the update of :class:`scale_by_adam`:

    .. math:: \theta_t = \theta_{t-1} - \eta\, r_t - o\,(r_t - r_{t-1}), \qquad r_0 := r_1

    where :math:`o` = ``optimism`` (default: the learning rate, as in the paper).
    :func:`optimistic_adam_v2` is the same method with the weights written as
    :math:`\eta(\alpha r_t + \beta(r_t - r_{t-1}))`: this one is ``optimistic_adam_v2`` with
    ``alpha=1``, ``beta=o/lr``.

    Conventions. As ``optax.optimistic_adam`` (Nesterov momentum on by default), which optax
    deprecates in favour of ``optimistic_adam_v2`` and which refuses learning-rate schedules;
    here a schedule works (``optimism`` then defaults to the same schedule). The learning rate
    is the ``alpha`` of the optimistic link (``gx.hyperparams(...)["alpha"]``).

    Args:
      <<learning_rate>>
      optimism: :math:`o` >= 0, the weight of the change of Adam's update; ``None`` for the
        learning rate.
      <<b1>>
      <<b2>>
      <<eps>>
      <<eps_root>>
      <<mu_dtype>>
      <<nesterov>>

    References:
      Daskalakis, Ilyas, Syrgkanis, Zeng, *Training GANs with Optimism*, ICLR 2018
      (Algorithm 1, Optimistic Adam).
    """
    return chain(
        scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype,
                      nesterov=nesterov),
        scale_by_optimistic_gradient(alpha=learning_rate,
                                     beta=learning_rate if optimism is None else optimism),
        scale(step_size=-1.0),
        name="optimistic_adam")


@docs.args
@api("optimistic_adam_v2")
def optimistic_adam_v2(learning_rate: Any, *, alpha: Any = 1.0, beta: Any = 1.0, b1: Any = 0.9,
                       b2: Any = 0.999, eps: Any = 1e-8, eps_root: Any = 0.0,
                       mu_dtype: Any = None, nesterov: bool = True) -> chain:
    r"""Optimistic Adam: the optimistic gradient of Adam's updates, times the learning rate.

    ``chain(scale_by_adam(...), scale_by_optimistic_gradient(alpha, beta),
    scale_by_learning_rate(lr))``, with :math:`r_t` the update of :class:`scale_by_adam`:

    .. math:: \theta_t = \theta_{t-1} - \eta\left((\alpha + \beta)\, r_t - \beta\, r_{t-1}
              \right), \qquad r_0 := r_1

    Conventions. As ``optax.optimistic_adam_v2`` (Nesterov momentum on by default).

    Args:
      <<learning_rate>>
      alpha: :math:`\alpha` >= 0, the weight of Adam's current update.
      beta: :math:`\beta` >= 0, the weight of its change (the optimism).
      <<b1>>
      <<b2>>
      <<eps>>
      <<eps_root>>
      <<mu_dtype>>
      <<nesterov>>

    References:
      Daskalakis, Ilyas, Syrgkanis, Zeng, *Training GANs with Optimism*, ICLR 2018.

    Example::

        opt = gx.optimistic_adam_v2(1e-3, beta=0.5)
    """
    return chain(
        scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype,
                      nesterov=nesterov),
        scale_by_optimistic_gradient(alpha=alpha, beta=beta),
        scale_by_learning_rate(learning_rate=learning_rate), name="optimistic_adam_v2")
