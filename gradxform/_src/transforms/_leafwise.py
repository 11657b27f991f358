"""Reductions over a whole leaf (norms, RMS, means along an axis) that also work on shards.

Layer-wise methods (LARS, LAMB, Fromage) and Adafactor reduce over a whole leaf: its norm, its
root mean square, the means of its rows and columns. Inside ``jax.shard_map`` a device holds only
a shard of each leaf, so these reductions must be completed across devices. With ``axis_name``
set, the convention is:

* every leaf with at least one dimension is split along its **leading** dimension over the mapped
  axis ``axis_name`` (its global leading size is the local one times the axis size);
* leaves with no dimension (scalars) are replicated on every device.

A reduction that crosses the leading dimension of a split leaf sums the per-device partial sums
with ``lax.psum``; one that does not cross it is local. So the sharded computation gives the
unsharded result, up to the order of floating-point additions. To mix split and replicated
leaves of higher rank, apply separate transformations to each group with ``masked``.

Sums of squares are accumulated in float32 at least (float64 if the leaf is float64).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradxform._src import dtypes, tree

__all__ = ["work_dtype", "is_split", "axis_size", "global_shape", "sum_sq", "norm", "rms",
           "mean_along"]


def work_dtype(dtype: Any) -> Any:
    """The real dtype reductions of a leaf of ``dtype`` are accumulated in (>= float32)."""
    return dtypes.wider(dtypes.real_dtype(dtype), jnp.float32)


def is_split(x: Any, axis_name: Any) -> bool:
    """True if ``x`` is a shard split along its leading dimension over ``axis_name``."""
    return axis_name is not None and len(jnp.shape(x)) >= 1


def axis_size(axis_name: Any) -> int:
    """The number of devices along ``axis_name`` (1 when it is not bound, e.g. outside a map)."""
    try:
        return int(jax.lax.axis_size(axis_name))
    except NameError:
        return 1


def global_shape(x: Any, axis_name: Any) -> tuple[int, ...]:
    """The shape of the whole leaf of which ``x`` is a shard (``x``'s own shape if not split).

    Outside the mapped context (``init`` called on the global params) the shape is already global.
    """
    shape = tuple(jnp.shape(x))
    if not is_split(x, axis_name):
        return shape
    return (shape[0] * axis_size(axis_name),) + shape[1:]


def _psum_if(total: jax.Array, split: bool, axis_name: Any) -> jax.Array:
    return jax.lax.psum(total, axis_name) if split else total


def sum_sq(x: jax.Array, axis_name: Any = None) -> jax.Array:
    """``sum |x|^2`` over the whole leaf, in the work dtype, summed over shards if split.

    Non-finite entries are left out (:func:`~gradxform._src.tree.finite_part`): one inf must
    not zero a whole layer's step through its norm.
    """
    work = work_dtype(x.dtype)
    [total] = tree.finite_sums(
        [x], lambda v: tree.abs_sq(v.astype(dtypes.wider(v.dtype, work))).astype(work))
    return _psum_if(total, is_split(x, axis_name), axis_name)


def norm(x: jax.Array, axis_name: Any = None) -> jax.Array:
    """The l2 (Frobenius) norm of the whole leaf (zero derivative at zero)."""
    return tree.safe_sqrt(sum_sq(x, axis_name))


def rms(x: jax.Array, axis_name: Any = None) -> jax.Array:
    """The root mean square of the whole leaf (zero derivative at zero; 0 for an empty leaf)."""
    size = 1
    for d in global_shape(x, axis_name):
        size *= d
    total = sum_sq(x, axis_name)
    return tree.safe_sqrt(total / jnp.asarray(max(size, 1), total.dtype))


def mean_along(x: jax.Array, axis: int, split: bool, axis_name: Any,
               keepdims: bool = False) -> jax.Array:
    """The mean of ``x`` along ``axis``; ``split`` says whether ``x``'s leading dimension is
    split over ``axis_name`` (then a mean along axis 0 sums the shards' partial sums)."""
    if split and axis == 0:
        total = jax.lax.psum(jnp.sum(x, axis=0, keepdims=keepdims), axis_name)
        count = x.shape[0] * axis_size(axis_name)
        return total / jnp.asarray(count, x.dtype)
    return jnp.mean(x, axis=axis, keepdims=keepdims)
