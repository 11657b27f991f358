"""What the wrappers share: running the inner transformation conditionally, on its own clock.

A wrapper whose inner transformation does not run at every update (accumulation, skipping
non-finite updates, loss scaling) hands it a :class:`~gradxform._src.base.Step` whose ``count``
is the number of updates the inner transformation has actually applied, so its bias corrections
and schedules advance only when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradxform._src import tree
from gradxform._src.base import GradientTransformation, Step
from gradxform._src.module import Module
from gradxform._src.schedules import Schedule
from gradxform._src.types import PyTree, TreeDef


def inner_step(step: Step, applied: jax.Array | None) -> Step:
    """``step`` with its count replaced by the inner clock ``applied`` (None stays None)."""
    if step.count is None or applied is None:
        return Step(None, step.extra)
    return Step(applied.astype(step.count.dtype), step.extra)


def _varying(aval: Any) -> frozenset:
    """The mapped axes a value varies over inside ``shard_map`` (empty outside)."""
    return tree.vma_of(aval) or frozenset()


def _vary(x: jax.Array, axes: frozenset) -> jax.Array:
    """``x`` marked as varying over ``axes`` too (so both branches of a cond have one type)."""
    missing = tuple(sorted(axes - _varying(jax.typeof(x))))
    if not missing:
        return x
    return jax.lax.pcast(x, missing, to="varying")


def cond_apply(run: jax.Array, fn: Callable[[], tuple[PyTree, PyTree]],
               state: PyTree) -> tuple[PyTree, PyTree]:
    """``fn()`` (updates, new inner state) if ``run``, else zero updates and ``state`` unchanged.

    Only the chosen branch executes (``lax.cond``); under ``vmap`` with a batched ``run`` both are
    computed and one is selected. Inside ``shard_map`` both branches are given the same
    varying-axes type.
    """
    shapes = jax.eval_shape(fn)
    updates_axes = [_varying(s) for s in jax.tree.leaves(shapes[0])]
    state_def: TreeDef
    state_leaves, state_def = jax.tree.flatten(state)
    state_axes = [_varying(s) | _varying(jax.typeof(x))
                  for s, x in zip(jax.tree.leaves(shapes[1]), state_leaves)]

    def typed(updates, new_state):
        u_leaves, u_def = jax.tree.flatten(updates)
        s_leaves = state_def.flatten_up_to(new_state)
        return (jax.tree.unflatten(u_def, [_vary(x, a) for x, a in zip(u_leaves, updates_axes)]),
                state_def.unflatten([_vary(x, a) for x, a in zip(s_leaves, state_axes)]))

    def apply():
        return typed(*fn())

    def skip():
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes[0])
        return typed(zeros, state)

    return jax.lax.cond(run, apply, skip)


def reject_schedule(module: Module, *fields: str) -> None:
    """Sizes and counts of wrappers are numbers or arrays; a schedule there has no meaning."""
    for name in fields:
        if isinstance(getattr(module, name), Schedule):
            raise module.error("must be a whole number or an array, not a schedule", name,
                               TypeError)


def applied_update(inner: GradientTransformation, before_state: PyTree, after_state: PyTree,
                   step: Step) -> tuple[jax.Array | None, jax.Array]:
    """``(n, applied)``: how many updates had reached the params before this one, and whether
    this one did (an ``accumulate`` inside between windows, a skipped step: it did not).

    Read from the clocks of ``inner`` (:meth:`GradientTransformation.applied`) before and after
    the update. Without a step count every update counts as applied.
    """
    before = inner.applied(before_state, step)
    if before is None or step.count is None:
        return None, jnp.asarray(True)
    after = inner.applied(after_state, Step(tree.safe_increment(step.count), step.extra))
    if after is None:
        return before, jnp.asarray(True)
    return before, after > before
