"""Gradient accumulation: run the inner transformation once every ``every_k`` micro-batches."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, tree
from gradxform._src.base import (
    GradientTransformation,
    OptState,
    child,
    hyper,
    static,
    transformation,
)
from gradxform._src.module import stable_function
from gradxform._src.types import DType, Hyper
from gradxform._src.wrappers._common import cond_apply, inner_step, reject_schedule
from gradxform._src.wrappers.composition import check_nesting

__all__ = ["accumulate", "AccumulateState", "MultiSteps"]


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

    composition_kind = "accumulate"  # its row and column in wrappers/composition.py

    inner: GradientTransformation = child(converter=transformation)
    every_k: Hyper = hyper(interval="[1, inf)", integer=True)
    reduction: str = static(default="mean")
    accumulator_dtype: DType = static(default=None)
    drop_non_finite: bool = static(default=True)
    uses_count = True
    flat_support = "elementwise"


    def check(self):
        reject_schedule(self, "every_k")
        if self.reduction not in ("mean", "sum"):
            raise self.error(f"must be 'mean' or 'sum', got {self.reduction!r}", "reduction")
        check_nesting(self, self.inner)

    def init_state(self, params):
        def zero():
            return jnp.zeros([], jnp.int32)

        return AccumulateState(tree.zeros_like(params, self.accumulator_dtype), zero(), zero(),
                               zero(), self.inner.init_state(params))

    def _applied(self, state, count):
        return count // jnp.asarray(self.every_k, count.dtype) - state.skipped

    def apply(self, updates, state, params, step):
        return self.accumulate(updates, state, params, step, jnp.asarray(True))

    def accumulate(self, updates, state, params, step, keep):
        """One micro-batch: ``apply`` with ``keep`` saying whether to use it (False: it is
        dropped, counted in ``dropped``, and its window still ends on time).

        Wrappers that skip updates (``skip_non_finite``, ``dynamic_loss_scale``) call this when
        ``accumulate`` is their direct inner transformation, so that a skipped micro-batch does
        not shift the windows.
        """
        count = step.count
        k = jnp.asarray(self.every_k, count.dtype)
        ok = keep & tree.all_finite(updates) if self.drop_non_finite else keep
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

    def state_counters(self, state):
        return {"dropped": state.dropped, "skipped_windows": state.skipped}

    def links(self, state, step):
        applied = None if step.count is None else self._applied(state, step.count)
        return iter([(self.inner.name, self.inner, state.inner, inner_step(step, applied))])


class MultiSteps(accumulate):
    r"""optax's ``MultiSteps``: :class:`accumulate` under optax's name, call and methods.

    .. math:: u_t = \mathrm{opt}\Big(\tfrac{1}{k}\sum_{j \in W_t} g_j\Big) \text{ at the end of
              each window of } k \text{ micro-batches}, \qquad u_t = 0 \text{ otherwise}

    ``MultiSteps(opt, every_k_schedule=k)`` is ``accumulate(opt, every_k=k,
    drop_non_finite=False)`` (optax keeps non-finite micro-batches unless told to skip them)
    with ``use_grad_mean`` choosing the mean or the sum. It is a transformation itself;
    ``gradient_transformation()`` returns it, for code written for optax, and
    :meth:`has_updated` says whether the last update ended a window.

    Conventions. ``every_k_schedule`` must be a whole number: the window's position is read
    from the step count, so a number of micro-batches that varies during training is not
    supported. A micro-batch rejected by ``should_skip_update_fn(updates, gradient_step,
    params) -> (skip, info)`` is dropped from its window, which still ends on time (optax
    lengthens the window instead: "as if the mini-step never happened"); ``info`` is not kept.
    optax's state (``MultiStepsState``: ``mini_step``, ``gradient_step``, ``acc_grads``, ...)
    is :class:`AccumulateState` here.

    Args:
      opt: the optimizer run once per window.
      every_k_schedule: micro-batches per window, a whole number >= 1.
      use_grad_mean: average the window's gradients (True) or sum them.
      should_skip_update_fn: a predicate rejecting micro-batches, or ``None``.
      accumulator_dtype: the dtype of the accumulated gradients.

    Example::

        opt = gx.MultiSteps(gx.adam(1e-3), every_k_schedule=4)
        updates, state = opt.update(grads, state, params)
        opt.has_updated(state)     # True after the 4th, 8th, ... micro-batch
    """

    should_skip_update_fn: Any = static(default=None, kw_only=True)

    def __init__(self, opt: Any, every_k_schedule: Any, use_grad_mean: bool = True,
                 should_skip_update_fn: Any = None, accumulator_dtype: DType = jnp.float32):
        if callable(every_k_schedule) and not isinstance(every_k_schedule, int):
            raise TypeError(
                "MultiSteps: every_k_schedule must be a whole number; a number of micro-batches "
                "that changes during training is not supported (the window's position is read "
                "from the step count)")
        self.__init_fields__(inner=opt, every_k=every_k_schedule,
                             reduction="mean" if use_grad_mean else "sum",
                             accumulator_dtype=accumulator_dtype, drop_non_finite=False,
                             should_skip_update_fn=stable_function(should_skip_update_fn))

    @property
    def name(self) -> str:
        return "MultiSteps"

    @property
    def inner_opt(self) -> GradientTransformation:
        """The wrapped optimizer (optax's attribute)."""
        return self.inner

    def apply(self, updates, state, params, step):
        keep = jnp.asarray(True)
        if self.should_skip_update_fn is not None:
            skip, _ = self.should_skip_update_fn(updates, self._applied(state, step.count),
                                                 params)
            keep = jnp.logical_not(jnp.asarray(skip, jnp.bool_))
        return self.accumulate(updates, state, params, step, keep)

    def has_updated(self, state: OptState) -> jax.Array:
        """True if the last ``update`` ended a window and some window has been applied."""
        count = state.count
        if count is None:
            raise ValueError(f"{self.name}: has_updated needs the state init built (it has no "
                             "step count)")
        k = jnp.asarray(self.every_k, count.dtype)
        return (count % k == 0) & (self._applied(state.inner, count) > 0)

    def gradient_transformation(self) -> MultiSteps:
        """This transformation (optax's ``MultiSteps`` builds a separate one)."""
        return self
