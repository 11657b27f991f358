"""Tree math shared by the transformations: moments, bias correction, norms, counters.

Every function here follows the dtype policy (:mod:`gradxform._src.dtypes`): inputs are cast
explicitly to the dtype of the accumulator they update, scalars are cast to it too, and nothing
is left to implicit promotion. ``None`` entries of a tree are empty subtrees and are skipped.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradxform._src import dtypes

__all__ = [
    "zeros_like", "full_like", "cast_like", "update_moment", "update_moment_per_elem_norm",
    "bias_correction", "global_norm", "safe_sqrt", "safe_increment", "abs_sq", "scalar",
    "unzip2", "scale_by", "complement",
]

PyTree = Any


def scalar(value: Any, dtype: Any) -> jax.Array:
    """A hyperparameter value cast explicitly to ``dtype``."""
    return jnp.asarray(value, dtype)


def zeros_like(params: PyTree, dtype: Any = None) -> PyTree:
    """Zeros shaped like ``params`` in the accumulator dtype of each leaf (or ``dtype``)."""
    return jax.tree.map(
        lambda p: jnp.zeros(jnp.shape(p), dtypes.accumulator_dtype(dtypes.leaf_dtype(p), dtype)),
        params,
    )


def full_like(params: PyTree, value: Any, dtype: Any = None, real: bool = False) -> PyTree:
    """``value`` everywhere, shaped like ``params``; ``real=True`` for second moments."""

    def make(p):
        acc = dtypes.accumulator_dtype(dtypes.leaf_dtype(p), dtype)
        acc = dtypes.real_dtype(acc) if real else acc
        return jnp.full(jnp.shape(p), scalar(value, acc), acc)

    return jax.tree.map(make, params)


def cast_like(tree: PyTree, like: PyTree) -> PyTree:
    """Cast every leaf of ``tree`` to the dtype of the matching leaf of ``like``."""
    return jax.tree.map(lambda x, y: dtypes.cast(x, y.dtype), tree, like)


def unzip2(like: PyTree, pairs: PyTree) -> tuple[PyTree, PyTree]:
    """Split a tree of pairs (shaped like ``like`` above the pairs) into two trees."""
    treedef = jax.tree.structure(like)
    flat = treedef.flatten_up_to(pairs)
    return treedef.unflatten([a for a, _ in flat]), treedef.unflatten([b for _, b in flat])


def scale_by(x: jax.Array, factor: jax.Array) -> jax.Array:
    """``x * factor`` computed in the wider dtype, returned in ``x``'s dtype."""
    work = dtypes.wider(x.dtype, factor.dtype)
    return (x.astype(work) * factor.astype(work)).astype(x.dtype)


def abs_sq(x: jax.Array) -> jax.Array:
    """``|x|^2``, real for complex ``x``."""
    if jnp.iscomplexobj(x):
        return jnp.real(x) ** 2 + jnp.imag(x) ** 2
    return x * x


def complement(decay: Any) -> tuple[Any, Any]:
    """``(decay, 1 - decay)``, the complement formed before any cast.

    For a Python number ``1 - decay`` is computed in double precision and rounded once, so
    ``1 - 0.999`` is the float32 nearest 0.001 rather than ``1 - float32(0.999)`` (up to 3e-5
    off, relatively). This is also what optax computes. A hyperparameter that arrives as a
    float32 array (a transformation passed *through* jit or vmap rather than closed over) has
    already lost those digits, so the two ways of running the same optimizer can differ by that
    much in the weight of a moment update; each is exact for the numbers it was given.
    """
    return decay, 1 - decay


def update_moment(updates: PyTree, moments: PyTree, decay: Any, order: int = 1) -> PyTree:
    """``m <- (1 - decay) * g**order + decay * m``, in the moment's dtype."""

    keep, fresh = complement(decay)

    def one(g, m):
        g = dtypes.cast(g, m.dtype)
        return scalar(fresh, m.dtype) * (g**order) + scalar(keep, m.dtype) * m

    return jax.tree.map(one, updates, moments)


def update_moment_per_elem_norm(
    updates: PyTree, moments: PyTree, decay: Any, order: int = 2
) -> PyTree:
    """``v <- (1 - decay) * |g|**order + decay * v``, in the (real) moment's dtype."""

    keep, fresh = complement(decay)

    def one(g, v):
        if jnp.iscomplexobj(g):  # |g|^2 of a complex gradient is real
            norm = abs_sq(g.astype(dtypes.wider(g.dtype, jnp.complex64)))
            norm = norm.astype(v.dtype) if order == 2 else jnp.sqrt(norm).astype(v.dtype) ** order
        else:
            norm = dtypes.cast(g, v.dtype) ** order
        return scalar(fresh, v.dtype) * norm + scalar(keep, v.dtype) * v

    return jax.tree.map(one, updates, moments)


def bias_correction(moments: PyTree, decay: Any, count: jax.Array) -> PyTree:
    """``m / (1 - decay**count)``; the power is formed in at least float32."""

    def one(m):
        work = dtypes.wider(dtypes.real_dtype(m.dtype), jnp.float32)
        correction = 1 - scalar(decay, work) ** count.astype(work)
        return m / correction.astype(m.dtype)

    return jax.tree.map(one, moments)


def global_norm(tree: PyTree, axis_name: Any = None) -> jax.Array:
    """The l2 norm of all leaves together, accumulated in float32 (float64 if any leaf is).

    With ``axis_name`` the squared norms are summed over that mapped axis as well (inside
    ``shard_map`` or ``pmap`` when the leaves are shards of one tree).
    """
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros([], jnp.float32)
    work = jnp.float32
    for x in leaves:
        work = dtypes.wider(work, dtypes.real_dtype(x.dtype))
    total = sum(jnp.sum(abs_sq(x.astype(dtypes.wider(x.dtype, work))).astype(work))
                for x in leaves)
    if axis_name is not None:
        total = jax.lax.psum(total, axis_name)
    return safe_sqrt(total)


def safe_sqrt(x: jax.Array) -> jax.Array:
    """``sqrt(x)`` whose derivative at 0 is 0 instead of inf (so meta-gradients stay finite)."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, jnp.ones_like(x))),
                     jnp.zeros_like(x))


def safe_increment(count: jax.Array) -> jax.Array:
    """``count + 1``, saturating at the dtype's maximum instead of wrapping around."""
    top = jnp.asarray(jnp.iinfo(count.dtype).max, count.dtype)
    return jnp.where(count < top, count + jnp.asarray(1, count.dtype), top)
