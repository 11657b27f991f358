"""Tree math shared by the transformations: moments, bias correction, norms, counters.

Every function here follows the dtype policy (:mod:`gradxform._src.dtypes`): inputs are cast
explicitly to the dtype of the accumulator they update, scalars are cast to it too, and nothing
is left to implicit promotion. ``None`` entries of a tree are empty subtrees and are skipped.

The helpers called for every leaf of every step (moments, bias corrections, the division by the
root, norms) form their constants once per dtype (:class:`per_dtype`) and call ``jax.lax``
directly: the operands already have one dtype, and on a tree of two thousand leaves the
dispatch of each ``jax.numpy`` operator is most of the trace time.
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gradxform._src import dtypes
from gradxform._src.types import PyTree, TreeDef

__all__ = [
    "zeros_like", "full_like", "cast_like", "update_moment", "update_moment_per_elem_norm",
    "update_infinity_moment",
    "bias_correction", "global_norm", "safe_sqrt", "safe_increment", "abs_sq", "scalar",
    "unzip", "unzip2", "unzip3", "scale_by", "complement", "varying_axes", "sum_over_shards",
    "all_finite", "nesterov_moment", "divide_by_root", "is_abstract", "params_copy",
    "fill_params_copy", "real_accumulator_dtype", "per_dtype", "finite_part", "finite_sums",
    "finite_total",
    "where_finite", "with_non_finite",
]


def scalar(value: Any, dtype: Any) -> jax.Array:
    """A hyperparameter value cast explicitly to ``dtype``."""
    return jnp.asarray(value, dtype)


class per_dtype:
    """``make(dtype)`` computed once per dtype: the constants a tree operation uses for every
    leaf of that dtype (a scalar cast, a bias correction), formed once instead of once per leaf.

    On a tree of two thousand leaves this is most of the trace time a transformation adds:
    every ``jnp.asarray`` of a hyperparameter is a staged constant.
    """

    def __init__(self, make: Any):
        self.make = make
        self.found: dict[np.dtype, Any] = {}

    def __call__(self, dtype: Any) -> Any:
        key = np.dtype(dtype)
        if key not in self.found:
            self.found[key] = self.make(key)
        return self.found[key]


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


def unzip(like: PyTree, tuples: PyTree, n: int) -> tuple[PyTree, ...]:
    """Split a tree of ``n``-tuples (shaped like ``like`` above the tuples) into ``n`` trees."""
    treedef: TreeDef = jax.tree.structure(like)
    flat = treedef.flatten_up_to(tuples)
    return tuple(treedef.unflatten([t[i] for t in flat]) for i in range(n))


def unzip2(like: PyTree, pairs: PyTree) -> tuple[PyTree, PyTree]:
    """Split a tree of pairs (shaped like ``like`` above the pairs) into two trees."""
    first, second = unzip(like, pairs, 2)
    return first, second


def scale_by(x: jax.Array, factor: jax.Array) -> jax.Array:
    """``x * factor`` computed in the wider dtype, returned in ``x``'s dtype."""
    work = dtypes.wider(x.dtype, factor.dtype)
    return dtypes.cast(lax.mul(dtypes.cast(x, work), dtypes.cast(factor, work)), x.dtype)


def abs_sq(x: jax.Array) -> jax.Array:
    """``|x|^2``, real for complex ``x``."""
    if jnp.iscomplexobj(x):
        return jnp.real(x) ** 2 + jnp.imag(x) ** 2
    return lax.mul(x, x)


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
    weights = per_dtype(lambda d: (scalar(fresh, d), scalar(keep, d)))

    def one(g, m):
        g = dtypes.cast(g, m.dtype)
        w_fresh, w_keep = weights(m.dtype)
        return lax.add(lax.mul(w_fresh, g if order == 1 else lax.integer_pow(g, order)),
                       lax.mul(w_keep, m))

    return jax.tree.map(one, updates, moments)


def update_moment_per_elem_norm(
    updates: PyTree, moments: PyTree, decay: Any, order: int = 2
) -> PyTree:
    """``v <- (1 - decay) * |g|**order + decay * v``, in the (real) moment's dtype."""

    keep, fresh = complement(decay)
    weights = per_dtype(lambda d: (scalar(fresh, d), scalar(keep, d)))

    def one(g, v):
        if jnp.iscomplexobj(g):  # |g|^2 of a complex gradient is real
            norm = abs_sq(g.astype(dtypes.wider(g.dtype, jnp.complex64)))
            norm = norm.astype(v.dtype) if order == 2 else jnp.sqrt(norm).astype(v.dtype) ** order
        else:
            norm = lax.integer_pow(dtypes.cast(g, v.dtype), order)
        w_fresh, w_keep = weights(v.dtype)
        return lax.add(lax.mul(w_fresh, norm), lax.mul(w_keep, v))

    return jax.tree.map(one, updates, moments)


def update_infinity_moment(updates: PyTree, moments: PyTree, decay: Any, eps: Any) -> PyTree:
    """``u <- max(|g| + eps, decay * u)``, AdaMax's infinity norm, in the (real) moment's dtype.

    ``eps`` is made safe for that dtype (see :func:`gradxform._src.dtypes.safe_eps`).
    """

    def one(g, u):
        size = jnp.abs(g.astype(dtypes.wider(g.dtype, u.dtype))).astype(u.dtype)
        return jnp.maximum(size + dtypes.safe_eps(eps, u.dtype), scalar(decay, u.dtype) * u)

    return jax.tree.map(one, updates, moments)


def bias_correction(moment: PyTree, decay: Any, count: jax.Array) -> PyTree:
    """``m / (1 - decay**count)``; the power is formed in at least float32."""

    def make(dtype):
        work = dtypes.wider(dtypes.real_dtype(dtype), jnp.float32)
        return (1 - scalar(decay, work) ** jnp.asarray(count).astype(work)).astype(dtype)

    corrections = per_dtype(make)
    return jax.tree.map(lambda m: lax.div(m, corrections(m.dtype)), moment)


def finite_part(x: jax.Array) -> jax.Array:
    """``x`` with its non-finite entries (inf, NaN) replaced by zero.

    Every reduction that couples entries (norms, sums, means, inner products, factored
    statistics, orthogonalisation) reads its input through this, so that a non-finite entry
    cannot spread to the finite ones (the non-finite rule, ``docs/validation.md``).
    """
    return where_finite(x, jnp.zeros_like(x))


def where_finite(x: jax.Array, fallback: jax.Array) -> jax.Array:
    """``x`` where it is finite, ``fallback`` at its inf and NaN entries (a param kept at its
    last finite value, say)."""
    return jnp.where(jnp.isfinite(x), x, fallback)


def with_non_finite(out: jax.Array, raw: jax.Array) -> jax.Array:
    """``out`` with the non-finite entries of ``raw`` in their places: a direction computed
    from the finite part of a gradient ``raw`` still shows that gradient's inf and NaN entries,
    each in its own place only (the non-finite rule)."""
    return jnp.where(jnp.isfinite(raw), out, raw)


def finite_sums(leaves: list, term: Any) -> list:
    """``[sum(term(finite_part(x))) for x in leaves]``, at the cost of the plain sums.

    ``term`` maps a leaf to the array to sum (``abs_sq``, ``abs``, a cast of either). A sum
    is finite exactly when each of its terms is (an inf or NaN term makes it inf or NaN; an
    overflow of finite terms is inf either way), so the plain sums are taken first and the
    sums over the finite parts are computed only if the plain total is not finite, in one
    ``lax.cond``. On XLA:CPU a select inside a reduction runs about 4x slower than the plain
    reduction, and the norm of a global-norm clip is a whole pass over the gradients. When
    only the total is needed, :func:`finite_total` compiles to less.
    """
    if not leaves:
        return []
    plain, _, total = _plain_sums(leaves, term)

    def recompute() -> list:
        return [jnp.sum(term(finite_part(x))) for x in leaves]

    return list(lax.cond(jnp.isfinite(total), lambda: plain, recompute))


def _plain_sums(leaves: list, term: Any) -> tuple[list, Any, jax.Array]:
    """``(sums, dtype, total)``: each leaf's plain sum of ``term``, the widest dtype of the sums
    (float32 at least) and their total in it."""
    plain = [jnp.sum(term(x)) for x in leaves]
    common = dtypes.wider(jnp.float32, *[s.dtype for s in plain])
    return plain, common, functools.reduce(operator.add, [s.astype(common) for s in plain])


def finite_total(leaves: list, term: Any) -> jax.Array:
    """``sum(finite_sums(leaves, term))``, in the widest dtype of the sums (float32 at least).

    The same fast path, with one scalar through the ``lax.cond`` and a recomputing branch that
    compiles to a few operations instead of a few per leaf: it stacks the leaves of each
    (shape, dtype) and takes one reduction per stack. That branch is part of the compiled
    program whether it runs or not; with one reduction per leaf it was a fifth of the compile
    time of a clipped Adam step on a tree of five hundred leaves. When it runs (a non-finite
    gradient) it copies the leaves once into the stacks (a stack along a new leading axis keeps
    each leaf's sharding); the ``optimization_barrier`` keeps the stack from being fused into
    its reduction, which XLA:CPU compiles slowly for many operands.
    """
    if not leaves:
        return jnp.zeros([], jnp.float32)
    _, common, total = _plain_sums(leaves, term)

    def recompute() -> jax.Array:
        alike: dict[tuple, list] = {}
        for x in leaves:
            alike.setdefault((jnp.shape(x), jnp.result_type(x)), []).append(x)
        sums = []
        for same in alike.values():
            stacked = same[0] if len(same) == 1 else lax.optimization_barrier(jnp.stack(same))
            sums.append(jnp.sum(term(finite_part(stacked))).astype(common))
        return functools.reduce(operator.add, sums)

    return lax.cond(jnp.isfinite(total), lambda: total, recompute)


def global_norm(updates: PyTree, *, axis_name: Any = None,
                ignore_non_finite: bool = False) -> jax.Array:
    """The l2 norm of all leaves together, accumulated in float32 (float64 if any leaf is).

    With ``axis_name`` the squared norms are summed over that mapped axis as well (inside
    ``shard_map`` or ``pmap`` when the leaves are shards of one tree); leaves replicated over
    the axis are counted once (see :func:`sum_over_shards`). ``ignore_non_finite=True`` leaves
    inf and NaN entries out of the sum (transformations use it; a norm reported for logging
    keeps them, so that an overflow shows).
    """
    leaves = jax.tree.leaves(updates)
    if not leaves:
        return jnp.zeros([], jnp.float32)
    work = jnp.float32
    for x in leaves:
        work = dtypes.wider(work, dtypes.real_dtype(x.dtype))

    def term(x: jax.Array) -> jax.Array:
        return dtypes.cast(abs_sq(dtypes.cast(x, dtypes.wider(x.dtype, work))), work)

    if axis_name is None:  # the total alone
        total = (finite_total(leaves, term) if ignore_non_finite
                 else functools.reduce(operator.add, [jnp.sum(term(x)) for x in leaves]))
    else:  # replicated leaves counted once: the sum of each leaf
        squares = (finite_sums(leaves, term) if ignore_non_finite
                   else [jnp.sum(term(x)) for x in leaves])
        total = sum_over_shards(squares, axis_name)
    return safe_sqrt(total)


def safe_sqrt(x: jax.Array) -> jax.Array:
    """``sqrt(x)`` whose derivative at 0 is 0 instead of inf (so meta-gradients stay finite).

    NaN stays NaN (a norm of gradients that hold a NaN must say so); a negative ``x`` gives 0.
    """
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, jnp.ones_like(x))),
                     jnp.where(jnp.isnan(x), x, jnp.zeros_like(x)))


def safe_increment(count: Any) -> jax.Array:
    """``count + 1``, saturating at the dtype's maximum instead of wrapping around.

    ``count`` is an integer (or floating-point) scalar or array; a Python int becomes an int32.
    """
    count = jnp.asarray(count)
    if jnp.issubdtype(count.dtype, jnp.integer):
        top = jnp.asarray(jnp.iinfo(count.dtype).max, count.dtype)
    elif jnp.issubdtype(count.dtype, jnp.floating):
        top = jnp.asarray(jnp.finfo(count.dtype).max, count.dtype)
    else:
        raise TypeError(f"safe_increment: count must be an integer or floating-point array, got "
                        f"dtype {count.dtype}")
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


def sum_over_shards(values: list[jax.Array], axis_name: Any) -> jax.Array:
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
    sums = []
    for key, v in groups.items():
        if key is None:
            v = jax.lax.psum(v, axis_name)
        elif key:
            v = jax.lax.psum(v, key if len(key) > 1 else key[0])
        sums.append(v)
    return functools.reduce(operator.add, sums)


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
    weights = per_dtype(lambda d: (scalar(keep, d), scalar(fresh, d)))

    def one(m, g):
        w_keep, w_fresh = weights(m.dtype)
        return w_keep * m + w_fresh * g

    return jax.tree.map(one, m_hat, g_hat)


def divide_by_root(numerators: PyTree, second_moments: PyTree, eps: Any, eps_root: Any,
                   like: PyTree) -> PyTree:
    """``n / (sqrt(v + eps_root) + eps)`` leaf by leaf, returned in the dtype of ``like``.

    The division is done in the wider of the two accumulators' (real) dtypes; a complex
    numerator is divided by the real denominator. ``eps`` is made safe for that dtype.
    """

    # v + 0 is v (v >= 0): a Python zero adds nothing to the program
    no_root_eps = isinstance(eps_root, (int, float)) and eps_root == 0
    epsilons = per_dtype(lambda d: (scalar(eps_root, d), dtypes.safe_eps(eps, d)))

    def one(g, n, v):
        work = dtypes.wider(dtypes.real_dtype(n.dtype), v.dtype)
        root_eps, safe = epsilons(work)
        v = dtypes.cast(v, work)
        denom = lax.add(lax.sqrt(v if no_root_eps else lax.add(v, root_eps)), safe)
        if jnp.iscomplexobj(n):
            return (n / denom.astype(n.dtype)).astype(g.dtype)
        return dtypes.cast(lax.div(dtypes.cast(n, work), denom), g.dtype)

    return jax.tree.map(one, like, numerators, second_moments)


def unzip3(like: PyTree, triples: PyTree) -> tuple[PyTree, PyTree, PyTree]:
    """Split a tree of triples (shaped like ``like`` above the triples) into three trees."""
    first, second, third = unzip(like, triples, 3)
    return first, second, third
