r"""Optimistic gradients: extrapolate from the last gradient (``scale_by_optimistic_gradient``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_optimistic_gradient", "ScaleByOptimisticGradientState"]


class ScaleByOptimisticGradientState(NamedTuple):
    """State of :class:`scale_by_optimistic_gradient`: the previous updates it received."""

    previous_gradient: Any


@docs.args
class scale_by_optimistic_gradient(GradientTransformation):
    r"""Generalised optimistic gradient: the current gradient plus ``beta`` times its change.

    .. math:: u_t = (\alpha + \beta)\, g_t - \beta\, g_{t-1} = \alpha g_t + \beta (g_t - g_{t-1}),
              \qquad g_0 := g_1

    (on the first update the previous gradient is taken to be the current one, so
    :math:`u_1 = \alpha g_1`). With :math:`\alpha = \beta = 1` this is optimistic gradient
    descent, :math:`2 g_t - g_{t-1}` (Popov's and Daskalakis et al.'s rule, a cheap
    approximation of the extra-gradient method); the extra term damps the cycling of plain
    gradient descent-ascent in min-max games. After ``scale_by_adam`` it is optimistic Adam
    (:func:`optimistic_adam_v2`).

    Conventions. As ``optax.scale_by_optimistic_gradient``; optax keeps a flag for the first
    step in its state, here it is the optimizer's count. The previous gradient is kept in the
    accumulator dtype.

    Args:
      alpha: :math:`\alpha` >= 0, the weight of the current gradient.
      beta: :math:`\beta` >= 0, the weight of the change of the gradient (the optimism).
      <<accumulator_dtype>>

    References:
      Daskalakis, Ilyas, Syrgkanis, Zeng, *Training GANs with Optimism*, ICLR 2018 (eq. 5).
      Mokhtari, Ozdaglar, Pattathil, *A Unified Analysis of Extra-gradient and Optimistic
      Gradient Methods for Saddle Point Problems: Proximal Point Approach*, AISTATS 2020
      (eq. 8, generalised OGD).
    """

    alpha: Hyper = hyper(default=1.0, interval="[0, inf)")
    beta: Hyper = hyper(default=1.0, interval="[0, inf)")
    accumulator_dtype: DType = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "elementwise"

    def init_state(self, params):
        return ScaleByOptimisticGradientState(tree.zeros_like(params, self.accumulator_dtype))

    def apply(self, updates, state, params, step):
        alpha, beta = step.value(self.alpha), step.value(self.beta)
        both = alpha + beta  # for Python numbers: formed in double precision, rounded once
        first = step.count == 0

        def one(g, prev):
            g_acc = dtypes.cast(g, prev.dtype)
            prev = jnp.where(first, g_acc, prev)
            u = tree.scalar(both, prev.dtype) * g_acc - tree.scalar(beta, prev.dtype) * prev
            return u.astype(g.dtype), g_acc

        new_updates, previous = tree.unzip2(
            updates, jax.tree.map(one, updates, state.previous_gradient))
        return new_updates, ScaleByOptimisticGradientState(previous)
