"""Utilities on pytrees under optax's ``tree_utils`` names: state helpers and tree math.

``gx.tree_utils.tree_get(state, "mu")`` works as ``optax.tree_utils.tree_get`` does, on
gradxform states (an :class:`~gradxform.OptState` is a NamedTuple ``(count, inner)``, so
``tree_get(state, "count")`` is the optimizer's one step count) and on optax states alike. The
same functions without the ``tree_`` prefix are in ``gx.tree`` (optax's ``optax.tree``).

**State helpers.** :func:`tree_get`, :func:`tree_set` and :func:`tree_get_all_with_path` find a
key of a dict, a field of a NamedTuple or the name of a NamedTuple class anywhere in a tree;
paths name NamedTuple fields with :class:`NamedTupleKey` (``"ScaleByAdamState.mu"``).
:func:`tree_map_params` maps a function over the params-shaped parts of an optimizer state (to
build shardings, or cast moments) and returns a state ``update`` accepts. To change a
hyperparameter of the *optimizer* (which is not in its state), use
:func:`~gradxform.set_hyperparams`.

**Tree math.** Sums, norms, inner products, elementwise arithmetic, fills, casts and random
trees, with optax's semantics. Where gradxform's dtype policy applies (a scalar scaling a tree,
the moments) the scalar is cast to each leaf's dtype explicitly, so the functions also run under
``jax_numpy_dtype_promotion="strict"``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradxform._src import dtypes
from gradxform._src import tree as tree_math
from gradxform._src.base import OptState, ParamsPlaceholder, is_params_placeholder
from gradxform._src.types import PyTree

__all__ = [
    "NamedTupleKey", "tree_get", "tree_set", "tree_get_all_with_path", "tree_map_params",
    "tree_add", "tree_sub", "tree_mul", "tree_div", "tree_scale", "tree_add_scale", "tree_vdot",
    "tree_sum", "tree_max", "tree_min", "tree_size", "tree_conj", "tree_real", "tree_norm",
    "tree_batch_shape", "tree_zeros_like", "tree_ones_like", "tree_full_like", "tree_clip",
    "tree_where", "tree_allclose", "tree_cast", "tree_cast_like", "tree_dtype",
    "tree_random_like", "tree_split_key_like", "tree_unwrap_random_key_data",
    "tree_update_moment", "tree_update_moment_per_elem_norm", "tree_update_infinity_moment",
    "tree_bias_correction",
]

KeyPath = tuple


# --------------------------------------------------------------------------------------------
# Finding and replacing values by key.


@dataclasses.dataclass(frozen=True)
class NamedTupleKey:
    """A path entry naming a field of a NamedTuple and the NamedTuple's class.

    ``str(key)`` is ``"ScaleByAdamState.mu"``; a ``filtering`` function can tell the ``mu`` of
    one state class from another's by ``key.tuple_name``.
    """

    tuple_name: str
    name: str

    def __str__(self) -> str:
        return f"{self.tuple_name}.{self.name}"


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _children(node: Any) -> tuple[list[tuple[Any, Any]], Callable[[list], Any]] | None:
    """The direct children of ``node`` with their path entries, and how to rebuild it from new
    children; ``None`` for a leaf."""
    if _is_namedtuple(node):
        name = type(node).__name__
        fields = type(node)._fields
        return ([(NamedTupleKey(name, f), getattr(node, f)) for f in fields],
                lambda kids: node._replace(**dict(zip(fields, kids))))
    if isinstance(node, dict):
        keys = list(node)
        return ([(jax.tree_util.DictKey(k), node[k]) for k in keys],
                lambda kids: dict(zip(keys, kids)))
    flat, treedef = jax.tree_util.tree_flatten_with_path(
        node, is_leaf=lambda x: x is not node)
    if len(flat) == 1 and flat[0][0] == ():  # node is itself a leaf
        return None
    return ([(path[0], x) for path, x in flat],
            lambda kids: jax.tree_util.tree_unflatten(treedef, kids))


def _entry_name(entry: Any) -> Any:
    if isinstance(entry, NamedTupleKey):
        return entry.name
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return getattr(entry, attr)
    return entry


def _find(node: Any, key: Any, path: KeyPath, out: list) -> None:
    if _is_namedtuple(node) and type(node).__name__ == key:
        out.append((path, node))
    found = _children(node)
    if found is None:
        return
    kids, _ = found
    keyed = _is_namedtuple(node) or isinstance(node, dict)
    for entry, child in kids:
        if keyed and _entry_name(entry) == key:
            out.append((path + (entry,), child))
        _find(child, key, path + (entry,), out)


def tree_get_all_with_path(tree: PyTree, key: Any,
                           filtering: Callable[[KeyPath, Any], bool] | None = None,
                           ) -> list[tuple[KeyPath, Any]]:
    """Every value of ``tree`` at ``key`` (a dict key, a NamedTuple field or a NamedTuple
    class name), with its path, as optax's function.

    Paths are tuples of JAX key entries and :class:`NamedTupleKey`; read them with
    ``jax.tree_util.keystr``. ``filtering(path, value)`` keeps a subset.

    Example::

        state = gx.adam(1e-3).init(params)
        gx.tree_utils.tree_get_all_with_path(state, "mu")   # [((...ScaleByAdamState.mu), {...})]
    """
    out: list[tuple[KeyPath, Any]] = []
    _find(tree, key, (), out)
    if filtering is not None:
        out = [(p, v) for p, v in out if filtering(p, v)]
    return out


def tree_get(tree: PyTree, key: Any, default: Any = None,
             filtering: Callable[[KeyPath, Any], bool] | None = None) -> Any:
    """The value at ``key`` in ``tree`` (see :func:`tree_get_all_with_path`), ``default`` if
    there is none; a ``KeyError`` if there are several.

    Example::

        gx.tree_get(state, "count")   # the optimizer's step count
        gx.tree_get(state, "mu")      # Adam's first moment
    """
    found = tree_get_all_with_path(tree, key, filtering)
    if len(found) > 1:
        paths = [jax.tree_util.keystr(p) for p, _ in found]
        raise KeyError(f"tree_get: {key!r} occurs {len(found)} times, at {paths}; pass "
                       "filtering=lambda path, value: ... to choose one")
    return found[0][1] if found else default


def tree_set(tree: PyTree, filtering: Callable[[KeyPath, Any], bool] | None = None, /,
             **kwargs: Any) -> PyTree:
    """A copy of ``tree`` with the values at the given keys replaced, as optax's function.

    Keys are dict keys, NamedTuple fields or NamedTuple class names (the whole NamedTuple is
    replaced); every occurrence that ``filtering(path, value)`` accepts is replaced. Every key
    must occur (``KeyError`` otherwise). NamedTuples are rebuilt with ``_replace``, so an
    :class:`~gradxform.OptState` keeps its param spec.

    Example::

        state = gx.tree_set(state, count=jnp.asarray(100, jnp.int32))   # resume a schedule
        state = gx.tree_set(state, learning_rate=3e-4)   # an inject_hyperparams state
    """
    for key in kwargs:
        if not tree_get_all_with_path(tree, key, filtering):
            extra = " given the filtering function" if filtering is not None else ""
            raise KeyError(f"tree_set: no value at {key!r}{extra} in the tree")

    def accept(path, value):
        return filtering is None or filtering(path, value)

    def rebuild(node, path):
        if _is_namedtuple(node) and type(node).__name__ in kwargs and accept(path, node):
            return kwargs[type(node).__name__]
        found = _children(node)
        if found is None:
            return node
        kids, unflatten = found
        keyed = _is_namedtuple(node) or isinstance(node, dict)
        new = []
        for entry, child in kids:
            name = _entry_name(entry)
            if keyed and name in kwargs and accept(path + (entry,), child):
                new.append(kwargs[name])
            else:
                new.append(rebuild(child, path + (entry,)))
        return unflatten(new)

    return rebuild(tree, ())


def tree_map_params(initable: Any, f: Callable[..., Any], state: PyTree, /, *rest: Any,
                    transform_non_params: Callable[..., Any] | None = None,
                    is_leaf: Callable[[Any], bool] | None = None) -> PyTree:
    """Map ``f`` over the params-shaped parts of an optimizer state (optax's function).

    ``f(leaf, *rest_leaves)`` is applied to every copy of the params tree in ``state`` (Adam's
    moments, an EMA of the params, ...), with the matching leaves of ``rest`` (trees shaped like
    the params, such as their shardings); ``transform_non_params`` (if given) to every other
    leaf (the step count, scalars). The params-shaped parts are found by building a template
    state with ``initable.init`` from a params placeholder.

    For a gradxform state the result is a state with the same param spec, which ``update``
    accepts. optax's own ``optax.tree_utils.tree_map_params`` also runs on gradxform states,
    but its result is built from the template: it lines up with the real state (as a tree of
    shardings for ``jax.jit`` or ``jax.device_put``), while ``update`` refuses it as a state.

    Args:
      initable: the optimizer (an object with ``init``), or an ``init`` function.
      f: the function of the params' leaves.
      state: the optimizer state.
      *rest: trees shaped like the params, passed to ``f`` leaf by leaf.
      transform_non_params: the function of the other leaves (default: keep them).
      is_leaf: passed to ``jax.tree.map`` over the params-shaped parts.

    Example::

        # the optimizer state's shardings from the params' ones
        shardings = gx.tree_map_params(opt, lambda _, s: s, state, param_shardings,
                                       transform_non_params=lambda _: replicated)
        # moments in bfloat16
        state = gx.tree_map_params(opt, lambda m: m.astype(jnp.bfloat16), state)
    """
    placeholder = ParamsPlaceholder()
    init = initable.init if hasattr(initable, "init") else initable
    template = init(placeholder)

    def one(maybe_placeholder, value):
        if is_params_placeholder(maybe_placeholder):
            return jax.tree.map(f, value, *rest, is_leaf=is_leaf)
        return value if transform_non_params is None else transform_non_params(value)

    def zip_map(a, b):
        return jax.tree.map(one, a, b, is_leaf=is_params_placeholder)

    if isinstance(state, OptState) and isinstance(template, OptState):
        return OptState(zip_map(template.count, state.count),
                        zip_map(template.inner, state.inner), state.made_by, spec=state.spec)
    return zip_map(template, state)


# --------------------------------------------------------------------------------------------
# Tree math.


def _scalar_like(scalar: Any, x: Any) -> Any:
    """``scalar`` as ``x``'s dtype (explicit: no promotion of the tree by the scalar)."""
    x = jnp.asarray(x)
    return jnp.asarray(scalar).astype(x.dtype) if jnp.ndim(scalar) == 0 else scalar


def tree_add(tree_x: PyTree, tree_y: PyTree, *other_trees: PyTree) -> PyTree:
    """The leafwise sum of two (or more) trees."""
    return jax.tree.map(lambda *xs: functools.reduce(operator.add, xs), tree_x, tree_y,
                        *other_trees)


def tree_sub(tree_x: PyTree, tree_y: PyTree) -> PyTree:
    """The leafwise difference ``tree_x - tree_y``."""
    return jax.tree.map(operator.sub, tree_x, tree_y)


def tree_mul(tree_x: PyTree, tree_y: PyTree) -> PyTree:
    """The leafwise product."""
    return jax.tree.map(operator.mul, tree_x, tree_y)


def tree_div(tree_x: PyTree, tree_y: PyTree) -> PyTree:
    """The leafwise quotient ``tree_x / tree_y``."""
    return jax.tree.map(operator.truediv, tree_x, tree_y)


def tree_scale(scalar: Any, tree: PyTree) -> PyTree:
    """``scalar * tree``; a scalar is cast to each leaf's dtype first."""
    return jax.tree.map(lambda x: _scalar_like(scalar, x) * x, tree)


def tree_add_scale(tree_x: PyTree, scalar: Any, tree_y: PyTree) -> PyTree:
    """``tree_x + scalar * tree_y`` (``None`` leaves of ``tree_x`` stay ``None``)."""
    return jax.tree.map(
        lambda x, y: None if x is None else x + _scalar_like(scalar, y) * y,
        tree_x, tree_y, is_leaf=lambda x: x is None)


def _vdot(a: Any, b: Any) -> jax.Array:
    a, b = jnp.asarray(a), jnp.asarray(b)
    return jnp.vdot(a, b, precision=jax.lax.Precision.HIGHEST)


def tree_vdot(tree_x: PyTree, tree_y: PyTree) -> jax.Array:
    """The inner product of two trees, ``sum(conj(x) * y)`` over all leaves (conjugating the
    first, as ``jnp.vdot``), at the highest precision."""
    parts = jax.tree.leaves(jax.tree.map(_vdot, tree_x, tree_y))
    return functools.reduce(operator.add, parts) if parts else jnp.asarray(0)


def tree_sum(tree: PyTree, associative_reduction: bool = False) -> jax.Array:
    """The sum of every entry of every leaf (``associative_reduction`` sums the leaves' sums
    as a balanced tree, which may round differently)."""
    sums = [jnp.sum(x) for x in jax.tree.leaves(tree)]
    if not sums:
        return jnp.asarray(0)
    if associative_reduction:
        while len(sums) > 1:
            sums = [sums[i] + sums[i + 1] if i + 1 < len(sums) else sums[i]
                    for i in range(0, len(sums), 2)]
        return sums[0]
    return functools.reduce(operator.add, sums)


def tree_max(tree: PyTree) -> jax.Array:
    """The largest entry of any leaf (``-inf`` for a tree without entries)."""
    parts = [jnp.max(x) for x in jax.tree.leaves(tree) if jnp.size(x)]
    return functools.reduce(jnp.maximum, parts) if parts else jnp.asarray(-jnp.inf)


def tree_min(tree: PyTree) -> jax.Array:
    """The smallest entry of any leaf (``inf`` for a tree without entries)."""
    parts = [jnp.min(x) for x in jax.tree.leaves(tree) if jnp.size(x)]
    return functools.reduce(jnp.minimum, parts) if parts else jnp.asarray(jnp.inf)


def tree_size(tree: PyTree) -> int:
    """The number of entries of all leaves together."""
    return sum(int(np.size(x)) for x in jax.tree.leaves(tree))


def tree_conj(tree: PyTree) -> PyTree:
    """The complex conjugate of every leaf."""
    return jax.tree.map(jnp.conj, tree)


def tree_real(tree: PyTree) -> PyTree:
    """The real part of every leaf."""
    return jax.tree.map(jnp.real, tree)


def tree_norm(tree: PyTree, ord: Any = None, squared: bool = False) -> jax.Array:  # noqa: A002
    r"""The vector norm of all leaves together: ``ord`` = 2 (default), 1 or ``inf``.

    .. math:: \lVert x \rVert_2 = \Big(\sum_i |x_i|^2\Big)^{1/2}, \quad
              \lVert x \rVert_1 = \sum_i |x_i|, \quad \lVert x \rVert_\infty = \max_i |x_i|

    ``squared=True`` returns the square. Summed in the leaves' dtype as optax does; the
    optimizers' own norms (``gx.global_norm``) accumulate in float32.
    """
    if ord is None or ord == 2:
        total = tree_sum(jax.tree.map(tree_math.abs_sq, tree))
        return jnp.asarray(total if squared else jnp.sqrt(total))
    if ord == 1:
        value = tree_sum(jax.tree.map(jnp.abs, tree))
    elif ord in (jnp.inf, "inf", "infinity"):
        value = tree_max(jax.tree.map(jnp.abs, tree))
    else:
        raise ValueError(f"tree_norm: ord must be None, 1, 2 or inf, got {ord!r}")
    return jnp.asarray(value * value if squared else value)


def tree_batch_shape(tree: PyTree, shape: tuple[int, ...] = ()) -> PyTree:
    """Every leaf broadcast to ``shape + leaf.shape`` (leading batch axes)."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (*shape, *jnp.shape(x))), tree)


def tree_zeros_like(tree: PyTree, dtype: Any = None) -> PyTree:
    """Zeros shaped like every leaf (in ``dtype`` if given)."""
    return jax.tree.map(lambda x: jnp.zeros_like(x, dtype=dtype), tree)


def tree_ones_like(tree: PyTree, dtype: Any = None) -> PyTree:
    """Ones shaped like every leaf (in ``dtype`` if given)."""
    return jax.tree.map(lambda x: jnp.ones_like(x, dtype=dtype), tree)


def tree_full_like(tree: PyTree, fill_value: Any, dtype: Any = None) -> PyTree:
    """``fill_value`` everywhere, shaped like every leaf (in ``dtype`` if given)."""
    return jax.tree.map(lambda x: jnp.full_like(x, fill_value, dtype=dtype), tree)


def tree_clip(tree: PyTree, min_value: Any = None, max_value: Any = None) -> PyTree:
    """Every entry clipped to ``[min_value, max_value]`` (``None``: no bound)."""
    return jax.tree.map(lambda x: jnp.clip(x, min_value, max_value), tree)


def tree_where(condition: Any, tree_x: PyTree, tree_y: PyTree) -> PyTree:
    """``tree_x`` where ``condition`` holds, else ``tree_y``, leaf by leaf."""
    return jax.tree.map(lambda x, y: jnp.where(condition, x, y), tree_x, tree_y)


def tree_allclose(a: PyTree, b: PyTree, rtol: Any = 1e-5, atol: Any = 1e-8,
                  equal_nan: bool = False) -> Any:
    """True if every leaf of ``a`` is ``jnp.allclose`` to the matching leaf of ``b``."""
    results = jax.tree.leaves(jax.tree.map(
        lambda x, y: jnp.allclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan), a, b))
    return functools.reduce(operator.and_, results, True)


def tree_cast(tree: PyTree, dtype: Any) -> PyTree:
    """Every leaf cast to ``dtype`` (the tree unchanged if ``dtype`` is ``None``)."""
    if dtype is None:
        return tree
    return jax.tree.map(lambda x: jnp.asarray(x).astype(dtype), tree)


def tree_cast_like(tree: PyTree, other_tree: PyTree) -> PyTree:
    """Every leaf cast to the dtype of the matching leaf of ``other_tree``."""
    return jax.tree.map(lambda x, o: jnp.asarray(x).astype(o.dtype) if hasattr(o, "dtype")
                        else x, tree, other_tree)


def _dtype_of(x: Any) -> np.dtype:
    return np.dtype(jnp.asarray(x).dtype)


def _order(a: Any, b: Any, highest: bool) -> np.dtype:
    with jax.numpy_dtype_promotion("standard"):
        joined = np.dtype(jnp.promote_types(a, b))
    if joined not in (a, b):
        raise ValueError(f"tree_dtype: {a} and {b} are not ordered (neither promotes to the "
                         "other); use mixed_dtype_handler='promote'")
    if highest:
        return joined
    return b if joined == a else a


def tree_dtype(tree: PyTree, mixed_dtype_handler: str | None = None) -> np.dtype:
    """The dtype of the leaves: their common dtype (``None``: an error if they differ), or
    ``"promote"``, ``"highest"`` or ``"lowest"`` of them. JAX's default float dtype for a tree
    without leaves."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return np.dtype(jnp.asarray([]).dtype)
    found = [_dtype_of(x) for x in leaves]
    if mixed_dtype_handler is None:
        if any(d != found[0] for d in found):
            several = sorted(set(map(str, found)))
            raise ValueError(f"tree_dtype: the leaves have several dtypes {several}; "
                             "pass mixed_dtype_handler='promote', 'highest' or 'lowest'")
        return found[0]
    if mixed_dtype_handler == "promote":
        with jax.numpy_dtype_promotion("standard"):
            return np.dtype(functools.reduce(jnp.promote_types, found))
    if mixed_dtype_handler in ("highest", "lowest"):
        return functools.reduce(
            lambda a, b: _order(a, b, mixed_dtype_handler == "highest"), found)
    raise ValueError(f"tree_dtype: mixed_dtype_handler must be None, 'promote', 'highest' or "
                     f"'lowest', got {mixed_dtype_handler!r}")


def tree_split_key_like(rng_key: Any, target_tree: PyTree) -> PyTree:
    """One key per leaf of ``target_tree`` (``jax.random.split`` in leaf order)."""
    leaves, treedef = jax.tree.flatten(target_tree)
    return jax.tree.unflatten(treedef, list(jax.random.split(rng_key, len(leaves))))


def tree_random_like(rng_key: Any, target_tree: PyTree,
                     sampler: Callable[..., Any] = jax.random.normal,
                     dtype: Any = None) -> PyTree:
    """Random leaves shaped like ``target_tree``'s: ``sampler(key, shape, dtype)`` with one key
    per leaf (:func:`tree_split_key_like`), in ``dtype`` or each leaf's."""
    keys = tree_split_key_like(rng_key, target_tree)
    takes_sharding = "out_sharding" in inspect.signature(sampler).parameters

    def one(leaf, key):
        shape, dt = jnp.shape(leaf), dtype or dtypes.leaf_dtype(leaf)
        if takes_sharding and isinstance(leaf, jax.Array):
            return sampler(key, shape, dt, out_sharding=jax.typeof(leaf).sharding)
        return sampler(key, shape, dt)

    return jax.tree.map(one, target_tree, keys)


def tree_unwrap_random_key_data(input_tree: PyTree) -> PyTree:
    """Typed PRNG keys (``jax.random.key``) replaced by their raw data, to compare trees."""

    def one(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.key_data(x)
        return x

    return jax.tree.map(one, input_tree)


def tree_update_moment(updates: PyTree, moments: PyTree, decay: Any, order: int) -> PyTree:
    r"""The moment update :math:`m \leftarrow (1 - \beta)\, g^{k} + \beta\, m` (``order`` =
    :math:`k`), in each moment's dtype (``None`` leaves stay ``None``)."""
    return tree_math.update_moment(updates, moments, decay, order)


def tree_update_moment_per_elem_norm(updates: PyTree, moments: PyTree, decay: Any,
                                     order: int) -> PyTree:
    r""":math:`v \leftarrow (1 - \beta)\, |g|^{k} + \beta\, v` (real for complex ``g``), in each
    moment's dtype."""
    return tree_math.update_moment_per_elem_norm(updates, moments, decay, order)


def tree_update_infinity_moment(updates: PyTree, moments: PyTree, decay: Any,
                                eps: Any) -> PyTree:
    r"""The infinity-norm moment :math:`u \leftarrow \max(|g| + \epsilon, \beta u)`."""

    def one(g, u):
        if g is None:
            return None
        g = dtypes.cast(g, u.dtype)
        return jnp.maximum(jnp.abs(g) + tree_math.scalar(eps, u.dtype),
                           tree_math.scalar(decay, u.dtype) * u)

    return jax.tree.map(one, updates, moments, is_leaf=lambda x: x is None)


def tree_bias_correction(moment: PyTree, decay: Any, count: Any) -> PyTree:
    r"""Bias correction :math:`m / (1 - \beta^{t})` with :math:`t` = ``count``."""
    return tree_math.bias_correction(moment, decay, jnp.asarray(count))
