r"""Predicates that decide whether to skip an update: ``skip_not_finite`` and
``skip_large_updates``, with optax's ``should_skip_update_fn`` signature
(:class:`ShouldSkipUpdateFunction`).

They are functions of the updates, for wrappers that take such a predicate (optax's
``MultiSteps(should_skip_update_fn=...)``). gradxform's own wrappers decide by themselves:
:class:`skip_non_finite` skips non-finite updates, :class:`accumulate` drops non-finite
micro-batches; for a norm limit chain :class:`conditionally_mask` or clip with
:class:`clip_by_global_norm`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp

from gradxform._src import dtypes
from gradxform._src.types import PyTree

__all__ = ["ShouldSkipUpdateFunction", "skip_not_finite", "skip_large_updates"]


ShouldSkipUpdateFunction: TypeAlias = Callable[[PyTree, Any, Any], tuple[jax.Array, PyTree]]
"""``fn(updates, gradient_step, params) -> (should_skip, info)``: ``should_skip`` a bool scalar
(True: drop these updates), ``info`` a tree of arrays a wrapper may keep in its state for
logging (optax's ``ShouldSkipUpdateFunction``)."""


def skip_not_finite(updates: PyTree, gradient_step: Any,
                    params: PyTree | None) -> tuple[jax.Array, dict[str, jax.Array]]:
    r"""Skip updates that hold an inf or a NaN.

    .. math:: \text{skip} = (n > 0), \qquad n = \#\{i : u_i \notin \mathbb{R}\}

    Returns:
      ``(skip, {"should_skip": skip, "num_not_finite": n})``, ``n`` an int32 count over all
      leaves.

    Conventions. As ``optax.skip_not_finite``.
    """
    del gradient_step, params
    count = jnp.zeros([], jnp.int32)
    for u in jax.tree.leaves(updates):
        count = count + jnp.sum(jnp.logical_not(jnp.isfinite(u))).astype(jnp.int32)
    skip = count > 0
    return skip, {"should_skip": skip, "num_not_finite": count}


def skip_large_updates(updates: PyTree, gradient_step: Any, params: PyTree | None,
                       max_squared_norm: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
    r"""Skip updates whose squared global norm is not below ``max_squared_norm`` (or is NaN).

    .. math:: \text{skip} = \neg\left(\lVert u\rVert_2^2 < c\right)

    The squared norm is accumulated in float32 at least. Bind the limit with
    ``functools.partial(gx.skip_large_updates, max_squared_norm=c)``.

    Returns:
      ``(skip, {"should_skip": skip, "norm_squared": ||u||^2})``.

    Conventions. As ``optax.skip_large_updates``.
    """
    del gradient_step, params
    work = jnp.float32
    leaves = jax.tree.leaves(updates)
    for u in leaves:
        work = dtypes.wider(work, dtypes.real_dtype(u.dtype))
    total = jnp.zeros([], work)
    for u in leaves:
        x = u.astype(dtypes.wider(u.dtype, work))
        total = total + jnp.sum(jnp.real(jnp.conj(x) * x)).astype(work)
    skip = jnp.logical_not(total < jnp.asarray(max_squared_norm, work))
    return skip, {"should_skip": skip, "norm_squared": total}
