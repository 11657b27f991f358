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

from gradxform._src.base import Step
from gradxform._src.module import Module
from gradxform._src.schedules import Schedule

PyTree = Any


def inner_step(step: Step, applied: jax.Array | None) -> Step:
    """``step`` with its count replaced by the inner clock ``applied`` (None stays None)."""
    if step.count is None or applied is None:
        return Step(None, step.extra)
    return Step(applied.astype(step.count.dtype), step.extra)


def cond_apply(run: jax.Array, fn: Callable[[], tuple[PyTree, PyTree]],
               state: PyTree) -> tuple[PyTree, PyTree]:
    """``fn()`` (updates, new inner state) if ``run``, else zero updates and ``state`` unchanged.

    Only the chosen branch executes (``lax.cond``); under ``vmap`` with a batched ``run`` both are
    computed and one is selected.
    """

    def skip():
        shapes, _ = jax.eval_shape(fn)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return zeros, state

    return jax.lax.cond(run, fn, skip)


def reject_schedule(module: Module, *fields: str) -> None:
    """Sizes and counts of wrappers are numbers or arrays; a schedule there has no meaning."""
    for name in fields:
        if isinstance(getattr(module, name), Schedule):
            raise module.error("must be a whole number or an array, not a schedule", name,
                               TypeError)
