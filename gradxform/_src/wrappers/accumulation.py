"""Gradient accumulation: run the inner transformation once every ``every_k`` micro-batches."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, tree
from gradxform._src.base import GradientTransformation, child, hyper, static, transformation
from gradxform._src.types import DType, Hyper
from gradxform._src.wrappers._common import cond_apply, inner_step, reject_schedule

__all__ = ["accumulate", "AccumulateState"]


class AccumulateState(NamedTuple):
    """State of :class:`accumulate`.

    Attributes:
      acc: the sum of this window's finite micro-batch gradients (accumulator dtype).
      finite: int32 number of finite micro-batches in the current window.
      dropped: int32 number of non-finite micro-batches dropped since ``init``.
      skipped: int32 number of windows in which every micro-batch was non-finite (the inner
        transformation did not run).
      inner: the inner transformation's state.
    """

    acc: Any
    finite: jax.Array
    dropped: jax.Array
    skipped: jax.Array
    inner: Any


@docs.args
class accumulate(GradientTransformation):
    r"""Accumulate gradients over ``every_k`` micro-batches, then apply ``inner`` once.

    .. math:: u_t = 0 \ (t \bmod k \ne k - 1), \qquad
              u_t = \mathrm{inner}\Big(\tfrac{1}{n}\sum_{j \in W_t} g_j\Big)
              \ (t \bmod k = k - 1)

    where :math:`W_t` are the finite micro-batch gradients of the window ending at :math:`t` and
    :math:`n = |W_t|` (``reduction="sum"`` omits the :math:`1/n`). With equal micro-batches and a
    mean loss, one window equals one step on the whole batch, params and state alike.

    The inner transformation runs on its own clock: its step count is the number of times it has
    run, so Adam's bias correction and schedules inside ``inner`` advance once per window. The
    wrapper's own position in the window is the shared step count modulo ``every_k``; its state
    holds the accumulator and no other param-sized buffer. The inner transformation receives the
    params and the extra arguments of the window's last micro-batch.

    Non-finite micro-batches. With ``drop_non_finite`` (default) a micro-batch with any inf or
    NaN is not added (it is selected out, not multiplied by zero, so a NaN cannot leak in); it
    is counted in ``dropped`` and the mean is taken over the finite ones. A window whose
    micro-batches were all non-finite is skipped: zero updates, the inner transformation does
    not run and its clock does not advance (counted in ``skipped``). The accumulator is reset at
    the end of every window in any case, so a bad micro-batch never poisons later windows.

    Conventions. optax's ``MultiSteps`` keeps a running mean and applies the inner update to
    every micro-batch before masking it; this wrapper sums and runs the inner transformation only
    at the end of a window (``lax.cond``).

    Args:
      <<inner>>
      every_k: the number of micro-batches per update, >= 1 (a number or an array, not a
        schedule; changing it does not recompile).
      reduction: ``"mean"`` (default) or ``"sum"`` of the micro-batch gradients.
      <<accumulator_dtype>>
      drop_non_finite: drop micro-batches with non-finite gradients (see above).

    Example::

        opt = gx.accumulate(gx.adam(1e-3), every_k=4)   # 4 micro-batches per Adam step
    """

    inner: GradientTransformation = child(converter=transformation)
    every_k: Hyper = hyper(interval="[1, inf)", integer=True)
    reduction: str = static(default="mean")
    accumulator_dtype: DType = static(default=None)
    drop_non_finite: bool = static(default=True)
    uses_count = True


    def check(self):
        reject_schedule(self, "every_k")
        if self.reduction not in ("mean", "sum"):
            raise self.error(f"must be 'mean' or 'sum', got {self.reduction!r}", "reduction")

    def init_state(self, params):
        def zero():
            return jnp.zeros([], jnp.int32)

        return AccumulateState(tree.zeros_like(params, self.accumulator_dtype), zero(), zero(),
                               zero(), self.inner.init_state(params))

    def _applied(self, state, count):
        return count // jnp.asarray(self.every_k, count.dtype) - state.skipped

    def apply(self, updates, state, params, step):
        count = step.count
        k = jnp.asarray(self.every_k, count.dtype)
        ok = tree.all_finite(updates) if self.drop_non_finite else jnp.asarray(True)
        acc = jax.tree.map(
            lambda a, g: jnp.where(ok, a + g.astype(a.dtype), a), state.acc, updates)
        finite = state.finite + ok.astype(jnp.int32)
        end = count % k == k - 1
        run = end & (finite > 0)

        def inner_update():
            n = jnp.maximum(finite, 1) if self.reduction == "mean" else jnp.ones([], jnp.int32)
            grads = jax.tree.map(lambda a, g: (a / n.astype(a.dtype)).astype(g.dtype), acc,
                                 updates)
            return self.inner.apply(grads, state.inner, params,
                                    inner_step(step, self._applied(state, count)))

        new_updates, inner_state = cond_apply(run, inner_update, state.inner)
        acc = jax.tree.map(lambda a: jnp.where(end, jnp.zeros_like(a), a), acc)
        return new_updates, AccumulateState(
            acc,
            jnp.where(end, jnp.zeros_like(finite), finite),
            state.dropped + jnp.logical_not(ok).astype(jnp.int32),
            state.skipped + (end & (finite == 0)).astype(jnp.int32),
            inner_state,
        )

    def links(self, state, step):
        applied = None if step.count is None else self._applied(state, step.count)
        return iter([(self.inner.name, self.inner, state.inner, inner_step(step, applied))])
