r"""Summing the updates of ``k`` steps and emitting them once: ``apply_every``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import DType, Numeric

__all__ = ["apply_every", "ApplyEveryState"]


class ApplyEveryState(NamedTuple):
    """State of :class:`apply_every`: the sum of the updates of the current window."""

    grad_acc: Any


@docs.args
class apply_every(GradientTransformation):
    r"""Sum the updates over windows of ``k`` steps; emit the sum at a window's last step, zeros
    before.

    .. math:: a_t = \begin{cases} g_t & t \bmod k = 0 \\ a_{t-1} + g_t & \text{otherwise}
              \end{cases}, \qquad
              u_t = \begin{cases} a_t & t \bmod k = k - 1 \\ 0 & \text{otherwise}\end{cases}

    with :math:`t` the number of updates before this one (the optimizer's count). It acts on
    the updates where it stands in a chain: links before it still run (and update their state)
    at every step. To run a whole optimizer once per ``k`` micro-batches, on the mean
    gradient, use :class:`accumulate` instead.

    Conventions. As ``optax.apply_every``, which keeps its own count in its state; here the
    window follows the optimizer's count (inside a wrapper with its own clock, that clock).
    The sum is kept in the accumulator dtype (float32 for bfloat16 updates).

    Args:
      k: the window length, a whole number >= 1 (a number or an array, not a schedule).
      <<accumulator_dtype>>

    Example::

        opt = gx.chain(gx.scale_by_adam(), gx.scale(-1e-3), gx.apply_every(4))
    """

    k: Numeric = hyper(default=1, interval="[1, inf)", integer=True, schedule=False)
    accumulator_dtype: DType = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "elementwise"

    def init_state(self, params):
        return ApplyEveryState(tree.zeros_like(params, self.accumulator_dtype))

    def apply(self, updates, state, params, step):
        count = step.count
        k = jnp.asarray(self.k, count.dtype)
        position = count % k
        first, last = position == 0, position == k - 1

        def one(g, a):
            g_acc = dtypes.cast(g, a.dtype)
            a = jnp.where(first, g_acc, a + g_acc)
            return jnp.where(last, a, jnp.zeros_like(a)).astype(g.dtype), a

        new_updates, acc = tree.unzip2(updates, jax.tree.map(one, updates, state.grad_acc))
        return new_updates, ApplyEveryState(acc)
