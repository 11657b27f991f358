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
    "unzip2", "unzip3", "scale_by", "complement", "varying_axes", "sum_over_shards",
    "all_finite", "nesterov_moment", "divide_by_root", "is_abstract", "params_copy",
    "fill_params_copy", "real_accumulator_dtype", "finite_part",
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


def finite_part(x: jax.Array) -> jax.Array:
    """``x`` with its non-finite entries (inf, NaN) replaced by zero.

    Every reduction that couples entries (norms, sums, means, inner products, factored
    statistics, orthogonalisation) reads its input through this, so that a non-finite entry
    cannot spread to the finite ones (the non-finite rule, ``docs/validation.md``).
    """
    return jnp.where(jnp.isfinite(x), x, jnp.zeros_like(x))


def global_norm(tree: PyTree, *, axis_name: Any = None,
                ignore_non_finite: bool = False) -> jax.Array:
    """The l2 norm of all leaves together, accumulated in float32 (float64 if any leaf is).

    With ``axis_name`` the squared norms are summed over that mapped axis as well (inside
    ``shard_map`` or ``pmap`` when the leaves are shards of one tree); leaves replicated over
    the axis are counted once (see :func:`sum_over_shards`). ``ignore_non_finite=True`` leaves
    inf and NaN entries out of the sum (transformations use it; a norm reported for logging
    keeps them, so that an overflow shows).
    """
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros([], jnp.float32)
    work = jnp.float32
    for x in leaves:
        work = dtypes.wider(work, dtypes.real_dtype(x.dtype))
    if ignore_non_finite:
        leaves = [finite_part(x) for x in leaves]
    squares = [jnp.sum(abs_sq(x.astype(dtypes.wider(x.dtype, work))).astype(work))
               for x in leaves]
    total = sum(squares) if axis_name is None else sum_over_shards(squares, axis_name)
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


# --------------------------------------------------------------------------------------------
# Sums over the shards of a tree (inside shard_map or pmap).


def _axis_tuple(axis_name: Any) -> tuple:
    return axis_name if isinstance(axis_name, tuple) else (axis_name,)


def vma_of(aval: Any) -> frozenset | None:
    """The manual mesh axes along which a value of abstract type ``aval`` varies inside
    ``shard_map``, or ``None`` if JAX does not say (outside ``shard_map``, older versions)."""
    found = getattr(aval, "vma", None)
    for holder in ("manual_axis_type", "mat"):
        if found is None:
            found = getattr(getattr(aval, holder, None), "varying", None)
    return None if found is None else frozenset(found)


def _vma(x: Any) -> frozenset | None:
    """The manual mesh axes along which the value ``x`` varies (see :func:`vma_of`)."""
    return vma_of(jax.typeof(x))


def varying_axes(x: Any, axis_name: Any) -> tuple | None:
    """The axes of ``axis_name`` along which ``x`` differs from device to device.

    Inside ``jax.shard_map`` with ``check_vma=True`` (the default) JAX tracks which values vary
    along which mesh axes: a leaf given the in_spec ``P("model")`` varies along ``"model"``, a
    leaf given ``P()`` is replicated (invariant). Returns those of the named axes along which
    ``x`` varies, or ``None`` where JAX does not track it (``pmap``, ``check_vma=False``).
    """
    axes = _axis_tuple(axis_name)
    if not _tracks_variance(axes):
        return None
    vma = _vma(x) or frozenset()
    return tuple(a for a in axes if a in vma)


def _tracks_variance(axes: tuple) -> bool:
    """True inside ``shard_map(check_vma=True)`` over ``axes``: the device index varies there."""
    probe = _vma(jax.lax.axis_index(axes))
    return probe is not None and set(axes) <= probe


def sum_over_shards(values: list, axis_name: Any) -> jax.Array:
    """Add per-leaf partial sums of a sharded tree into the sum over the whole tree.

    Each value is a reduction (a sum of squares, say) of one leaf's local shard. A value that
    varies along some of the named axes is ``psum``-ed over exactly those axes; a value that is
    replicated over an axis is counted once, not once per device (``psum`` of a replicated value
    multiplies it by the axis size). Values varying along the same axes share one ``psum``.
    Where JAX does not track replication (``pmap``, ``shard_map(check_vma=False)``) every value
    is summed over all the named axes, so every leaf must then be a shard.
    """
    axes = _axis_tuple(axis_name)
    tracked = _tracks_variance(axes)
    groups: dict[tuple | None, Any] = {}
    for v in values:
        key = tuple(a for a in axes if a in (_vma(v) or ())) if tracked else None
        groups[key] = v if key not in groups else groups[key] + v
    total = None
    for key, v in groups.items():
        if key is None:
            v = jax.lax.psum(v, axis_name)
        elif key:
            v = jax.lax.psum(v, key if len(key) > 1 else key[0])
        total = v if total is None else total + v
    return total


# --------------------------------------------------------------------------------------------
# Copies of the params kept in a state (initial point, slow weights, averaged iterates).


def is_abstract(params: PyTree) -> bool:
    """True if some leaf of ``params`` is a ``jax.ShapeDtypeStruct`` (no values to copy)."""
    return any(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(params))


def params_copy(params: PyTree, dtype: Any = None) -> tuple[PyTree, jax.Array]:
    """A copy of ``params`` to keep in a state, and a bool scalar: whether it holds values.

    Leaves are in the accumulator dtype of each param (or ``dtype``). Abstract params
    (``jax.ShapeDtypeStruct``, as in ``jax.eval_shape`` or when a state is sharded before the
    params exist) give zeros and ``False``: the copy is taken by :func:`fill_params_copy` at the
    first update instead. The state has the same structure, shapes and dtypes either way.
    """
    if is_abstract(params):
        return zeros_like(params, dtype), jnp.zeros([], jnp.bool_)
    copy = jax.tree.map(
        lambda p: jnp.array(p, dtypes.accumulator_dtype(dtypes.leaf_dtype(p), dtype)), params)
    return copy, jnp.ones([], jnp.bool_)


def fill_params_copy(copy: PyTree, known: jax.Array, params: PyTree) -> PyTree:
    """``copy`` if it holds values (``known``), else ``params`` cast to the copy's dtypes."""
    return jax.tree.map(lambda c, p: jnp.where(known, c, dtypes.cast(jnp.asarray(p), c.dtype)),
                        copy, params)


def real_accumulator_dtype(params: PyTree, dtype: Any = None) -> Any:
    """The real dtype for scalar statistics of ``params``: float32, or float64 if a leaf is."""
    work = dtypes.canonical(jnp.float32)
    for p in jax.tree.leaves(params):
        acc = dtypes.accumulator_dtype(dtypes.leaf_dtype(p), dtype)
        work = dtypes.wider(work, dtypes.real_dtype(acc))
    return work


# --------------------------------------------------------------------------------------------
# Finiteness.


def all_finite(tree: PyTree, axis_name: Any = None) -> jax.Array:
    """A bool scalar: True if every entry of every leaf is finite (no inf, no NaN).

    With ``axis_name`` the answer is agreed over that mapped axis (inside ``shard_map`` or
    ``pmap`` when the leaves are shards of one tree): one shard's overflow makes it False
    everywhere.
    """
    leaves = jax.tree.leaves(tree)
    bad = jnp.zeros([], jnp.int32)
    for x in leaves:
        bad = bad + jnp.logical_not(jnp.all(jnp.isfinite(x))).astype(jnp.int32)
    if axis_name is not None:
        bad = jax.lax.psum(bad, axis_name)
    return bad == 0


def nesterov_moment(updates: PyTree, moments: PyTree, decay: Any, number: jax.Array) -> PyTree:
    """Dozat's look-ahead first moment, bias-corrected, in the moment's dtype.

    ``decay * m / (1 - decay**(t+1)) + (1 - decay) * g / (1 - decay**t)`` with ``t = number``.
    """
    keep, fresh = complement(decay)
    g_hat = bias_correction(cast_like(updates, moments), decay, number)
    m_hat = bias_correction(moments, decay, safe_increment(number))
    return jax.tree.map(
        lambda m, g: scalar(keep, m.dtype) * m + scalar(fresh, m.dtype) * g, m_hat, g_hat)


def divide_by_root(numerators: PyTree, second_moments: PyTree, eps: Any, eps_root: Any,
                   like: PyTree) -> PyTree:
    """``n / (sqrt(v + eps_root) + eps)`` leaf by leaf, returned in the dtype of ``like``.

    The division is done in the wider of the two accumulators' (real) dtypes; a complex
    numerator is divided by the real denominator. ``eps`` is made safe for that dtype.
    """

    def one(g, n, v):
        work = dtypes.wider(dtypes.real_dtype(n.dtype), v.dtype)
        denom = jnp.sqrt(v.astype(work) + scalar(eps_root, work)) + dtypes.safe_eps(eps, work)
        if jnp.iscomplexobj(n):
            return (n / denom.astype(n.dtype)).astype(g.dtype)
        return (n.astype(work) / denom).astype(g.dtype)

    return jax.tree.map(one, like, numerators, second_moments)


def unzip3(like: PyTree, triples: PyTree) -> tuple[PyTree, PyTree, PyTree]:
    """Split a tree of triples (shaped like ``like`` above the triples) into three trees."""
    treedef = jax.tree.structure(like)
    flat = treedef.flatten_up_to(triples)
    return tuple(treedef.unflatten([t[i] for t in flat]) for i in range(3))
