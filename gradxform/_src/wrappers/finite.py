"""Skipping updates with non-finite gradients: ``skip_non_finite`` (optax's ``apply_if_finite``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, tree
from gradxform._src.base import GradientTransformation, child, hyper, static, transformation
from gradxform._src.module import api
from gradxform._src.types import AxisName, Hyper
from gradxform._src.wrappers._common import cond_apply, inner_step, reject_schedule
from gradxform._src.wrappers.composition import check_nesting, windowed

__all__ = ["skip_non_finite", "SkipNonFiniteState", "apply_if_finite"]


class SkipNonFiniteState(NamedTuple):
    """State of :class:`skip_non_finite`.

    Attributes:
      consecutive: int32 number of non-finite updates in a row, reset to 0 by a finite update
        and when a run of them is let through (``max_consecutive_errors``).
      skipped: int32 number of updates skipped since ``init``. The inner transformation's clock
        is the shared step count minus ``skipped``.
      last_finite: bool, whether the last gradients were finite.
      inner: the inner transformation's state.
    """

    consecutive: jax.Array
    skipped: jax.Array
    last_finite: jax.Array
    inner: Any


@docs.args
class skip_non_finite(GradientTransformation):
    r"""Skip updates whose gradients hold an inf or a NaN: zero updates, inner state unchanged.

    .. math:: u_t = \mathrm{inner}(g_t) \ \text{if } g_t \text{ is finite}, \qquad u_t = 0
              \ \text{otherwise}

    A skipped update does not advance the inner transformation's clock: its step count is the
    number of updates it has applied, so schedules and bias corrections inside it ignore skipped
    steps. ``gx.hyperparams`` reports the inner hyperparameters at that clock.

    With ``max_consecutive_errors = n``, a run of non-finite gradients longer than ``n`` is let
    through once (the inner transformation sees the non-finite gradients, so a diverged run shows
    up instead of silently training nothing) and the count of consecutive errors restarts at 0.
    The state counts consecutive and total skipped updates (:class:`SkipNonFiniteState`).

    Around :class:`accumulate` (its direct inner transformation) a skipped update is a skipped
    micro-batch: it is dropped from its window, which still ends on time, so updates keep
    landing every ``every_k`` micro-batches. How this wrapper combines with the others is in
    the wrapper-composition table of the documentation.

    Args:
      <<inner>>
      max_consecutive_errors: ``None`` (default: always skip) or the number >= 0 of consecutive
        non-finite updates to skip before letting one through.
      <<axis_name_finite>>

    Example::

        opt = gx.skip_non_finite(gx.adam(1e-3))
    """

    composition_kind = "skip_non_finite"  # its row and column in wrappers/composition.py

    inner: GradientTransformation = child(converter=transformation)
    max_consecutive_errors: Hyper = hyper(default=None, interval="[0, inf)", integer=True)
    axis_name: AxisName = static(default=None)
    flat_support = "elementwise"


    def check(self):
        reject_schedule(self, "max_consecutive_errors")
        check_nesting(self, self.inner)

    def init_state(self, params):
        return SkipNonFiniteState(jnp.zeros([], jnp.int32), jnp.zeros([], jnp.int32),
                                  jnp.asarray(True), self.inner.init_state(params))

    def apply(self, updates, state, params, step):
        finite = tree.all_finite(updates, self.axis_name)
        consecutive = jnp.where(finite, 0, tree.safe_increment(state.consecutive))
        if self.max_consecutive_errors is None:
            let_through = jnp.asarray(False)
        else:
            limit = jnp.asarray(self.max_consecutive_errors, jnp.int32)
            let_through = jnp.logical_not(finite) & (consecutive > limit)
        run = finite | let_through
        if windowed(self.inner):  # accumulate drops the micro-batch and keeps its windows
            new_updates, inner_state = self.inner.accumulate(updates, state.inner, params,
                                                             step, run)
        else:
            applied = None if step.count is None else step.count - state.skipped

            def inner_update():
                return self.inner.apply(updates, state.inner, params, inner_step(step, applied))

            new_updates, inner_state = cond_apply(run, inner_update, state.inner)
        return new_updates, SkipNonFiniteState(
            jnp.where(let_through, jnp.zeros_like(consecutive), consecutive),
            state.skipped + jnp.logical_not(run).astype(jnp.int32),
            finite,
            inner_state,
        )

    def state_counters(self, state):
        return {"skipped": state.skipped}

    def links(self, state, step):
        if windowed(self.inner):
            return iter([(self.inner.name, self.inner, state.inner, step)])
        applied = None if step.count is None else step.count - state.skipped
        return iter([(self.inner.name, self.inner, state.inner, inner_step(step, applied))])


@api("apply_if_finite")
def apply_if_finite(inner: Any, max_consecutive_errors: Any = None) -> skip_non_finite:
    """optax's name and argument order for :class:`skip_non_finite`.

    Example::

        opt = gx.apply_if_finite(gx.adam(1e-3), max_consecutive_errors=5)
    """
    return skip_non_finite(inner, max_consecutive_errors=max_consecutive_errors)
