r"""Running the inner transformation only at the steps a condition chooses:
``conditionally_transform`` (other steps pass the updates through) and ``conditionally_mask``
(other steps give zero updates)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs
from gradxform._src.base import GradientTransformation, child, static, transformation
from gradxform._src.wrappers._common import cond_apply, inner_step

__all__ = ["conditionally_transform", "ConditionallyTransformState", "conditionally_mask",
           "ConditionallyMaskState"]


class ConditionallyTransformState(NamedTuple):
    """State of :class:`conditionally_transform`.

    Attributes:
      skipped: int32 number of updates at which the inner transformation did not run. Its clock
        is the optimizer's step count minus ``skipped``.
      inner: the inner transformation's state.
    """

    skipped: jax.Array
    inner: Any


class ConditionallyMaskState(NamedTuple):
    """State of :class:`conditionally_mask` (as :class:`ConditionallyTransformState`)."""

    skipped: jax.Array
    inner: Any


class _Conditional(GradientTransformation):
    """Shared machinery: decide from the step count, run ``inner`` on its own clock."""

    inner: GradientTransformation = child(converter=transformation)
    should_transform_fn: Callable[..., Any] = static()
    forward_extra_args: bool = static(default=False)
    uses_count = True
    flat_support = "elementwise"
    _state: ClassVar[type[ConditionallyTransformState] | type[ConditionallyMaskState]] = (
        ConditionallyTransformState)

    def check(self):
        if not callable(self.should_transform_fn):
            raise self.error(f"must be a function of the step count, got "
                             f"{self.should_transform_fn!r}", "should_transform_fn", TypeError)

    def init_state(self, params):
        return self._state(jnp.zeros([], jnp.int32), self.inner.init_state(params))

    def _run(self, step):
        kwargs = dict(step.extra) if self.forward_extra_args else {}
        run = jnp.asarray(self.should_transform_fn(step.count, **kwargs))
        if run.shape != ():
            raise self.error(f"should_transform_fn must return a scalar, got shape {run.shape}",
                             exc=ValueError)
        return run.astype(jnp.bool_)

    def apply(self, updates, state, params, step):
        run = self._run(step)
        inner = inner_step(step, step.count - state.skipped)

        def inner_update():
            return self.inner.apply(updates, state.inner, params, inner)

        new_updates, inner_state = cond_apply(run, inner_update, state.inner)
        new_updates = self._skipped_updates(run, new_updates, updates)
        return new_updates, self._state(
            state.skipped + jnp.logical_not(run).astype(jnp.int32), inner_state)

    def _skipped_updates(self, run, new_updates, updates):
        return new_updates

    def links(self, state, step):
        applied = None if step.count is None else step.count - state.skipped
        return iter([(self.inner.name, self.inner, state.inner, inner_step(step, applied))])

    def state_counters(self, state):
        return {"skipped": state.skipped}


@docs.args
class conditionally_transform(_Conditional):
    r"""Apply ``inner`` only at the steps ``should_transform_fn`` chooses; pass the updates
    through unchanged at the others.

    .. math:: u_t = \begin{cases} \mathrm{inner}(g_t) & c(t) \\ g_t & \text{otherwise}
              \end{cases}

    with :math:`c` = ``should_transform_fn`` and :math:`t` the number of updates before this one
    (0 at the first). At a skipped step the inner state does not change and the inner clock does
    not advance: the inner transformation's step count is the number of times it has run, so its
    bias corrections and schedules ignore skipped steps (as optax's inner counters do).

    Conventions. As ``optax.conditionally_transform``; optax keeps the step count in this
    wrapper's state, here it is the optimizer's.

    Args:
      <<inner>>
      should_transform_fn: ``fn(count, **extra_args) -> bool scalar`` (a jnp expression of the
        int32 ``count``; static: two values are equal when they hold the same function).
      forward_extra_args: pass the keyword arguments of ``update`` to ``should_transform_fn``.

    Example::

        # weight decay every 10th step only
        opt = gx.chain(gx.conditionally_transform(gx.add_decayed_weights(1e-2),
                                                  lambda t: t % 10 == 0),
                       gx.sgd(0.1))
    """

    _state = ConditionallyTransformState

    def applied(self, state, step):
        """Every update reaches the params (transformed or passed through), so an
        ``ema_params`` or ``lookahead`` around this wrapper counts every step."""
        return step.count

    def _skipped_updates(self, run, new_updates, updates):
        return jax.tree.map(lambda n, u: jnp.where(run, n, u.astype(n.dtype)), new_updates,
                            updates)


@docs.args
class conditionally_mask(_Conditional):
    r"""Apply ``inner`` only at the steps ``should_transform_fn`` chooses; give zero updates at
    the others.

    .. math:: u_t = \begin{cases} \mathrm{inner}(g_t) & c(t) \\ 0 & \text{otherwise}
              \end{cases}

    with :math:`c` = ``should_transform_fn`` and :math:`t` the number of updates before this one.
    At a skipped step the inner state and clock do not change (see
    :class:`conditionally_transform`).

    Conventions. As ``optax.conditionally_mask``.

    Args:
      <<inner>>
      should_transform_fn: ``fn(count, **extra_args) -> bool scalar``.
      forward_extra_args: pass the keyword arguments of ``update`` to ``should_transform_fn``.

    Example::

        # no updates during the first 100 steps (while statistics warm up elsewhere)
        opt = gx.conditionally_mask(gx.adam(1e-3), lambda t: t >= 100)
    """

    _state = ConditionallyMaskState
