"""Flat parameter buffers: a many-leaf model kept as a few contiguous arrays for the whole run.

An optimizer step is memory-bound, and a tree of two thousand small leaves pays for being many
leaves: one small kernel (and one piece of compiled code) per leaf and per operation, where one
long loop over a contiguous buffer runs at the machine's bandwidth. :func:`flat_params` packs
the leaves of a tree into one 1-D buffer per group (same dtype, same sharding, same optional
label) and keeps them there: params, gradients and optimizer state stay flat for the whole run,
and the model sees its usual tree through :meth:`FlatParams.unflatten` (slices and reshapes,
called inside the jitted loss)::

    fp = gx.flat_params(params)
    state = opt.init(fp)

    @jax.jit
    def step(fp, state, batch):
        grads = jax.grad(lambda fp: loss(fp.unflatten(), batch))(fp)   # a FlatParams
        updates, state = opt.update(grads, state, fp)
        return gx.apply_updates(fp, updates), state

**The layout.** A :class:`FlatParams` is a NamedTuple with one field, ``buffers``, a dict from
group name (``"float32"``, ``"bfloat16"``, ``"float32.1"`` for a second float32 group of another
sharding, ``"float32.decay"`` for a label) to the buffer. Its :class:`Layout` (the original tree
structure, each leaf's path, shape, dtype, sharding, group and offset) is static: it belongs to
the *type* (one subclass per layout, as :class:`~gradxform.OptState` holds its param spec), so
it is part of the tree definition, costs nothing at run time, and every tool that handles
NamedTuples (``jax.tree``, ``flax.serialization``, orbax) handles a ``FlatParams`` and keeps its
layout.

**Gradients.** :meth:`FlatParams.unflatten` cuts each buffer with one ``split`` whose transpose
is one ``concatenate``: the backward pass writes each leaf's gradient once into the flat
gradient, with no zero-padded full-size buffer per leaf.

**Shardings.** Leaves are grouped by sharding. A group of replicated or single-device leaves
is a 1-D buffer with that sharding. A group of leaves split along their leading dimension over
mesh axes (``PartitionSpec(axis, None, ...)``) is a 2-D buffer ``(shards, length)`` split along
its first dimension over the same axes: row ``i`` holds, one after the other, the parts of the
leaves that device ``i`` holds, so :meth:`~FlatParams.unflatten` is local. Other shardings are
refused.

**Order.** Within a buffer the leaves of one shape are next to each other (shapes in order of
first appearance, leaves of a shape in tree order), so the leaves of one shape are one
``(count, *shape)`` view of the buffer.

**Transformations.** Each transformation declares how it runs on buffers (its
``flat_support``; see :class:`~gradxform.GradientTransformation` and ``CONTRIBUTING.md``):
elementwise ones and global reductions see the buffers; those that treat each leaf on its own
(trust ratios, block RMS, factored moments) run once per shape, vectorised with ``vmap`` over
the leaves of that shape; those that need the tree (routing by path, Muon's dimension numbers,
a key per leaf) run on views of the leaves. Both give the per-leaf result; ``init`` refuses a
transformation that declares nothing.
"""

from __future__ import annotations

import collections
import functools
import math
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from gradxform._src.module import class_holding
from gradxform._src.routing import by_regex, mask_leaves, route

__all__ = ["FlatParams", "Layout", "Group", "flat_params", "FlatUnsupportedError",
           "init_on_leaves", "apply_on_leaves", "init_each_leaf", "apply_each_leaf",
           "buffer_mask", "leaf_mask"]

PyTree = Any


class FlatUnsupportedError(ValueError):
    """A transformation cannot run on the buffers of a :class:`FlatParams`."""


class Group(NamedTuple):
    """One buffer of a :class:`Layout`: its leaves, where each starts, and its placement.

    Attributes:
      name: the key of the buffer in ``FlatParams.buffers``.
      dtype: the dtype of every leaf of the group (and of the buffer).
      leaves: indices of the group's leaves in the layout (tree-flattening order).
      offsets: where each leaf starts along the buffer's last axis.
      sizes: how many entries each leaf has along the buffer's last axis (per shard).
      length: the length of the buffer's last axis.
      shards: 1 for a 1-D buffer; the number of shards of a buffer split along its first axis.
      sharding: the sharding of the buffer, or ``None`` (unknown: tracers, NumPy arrays).
    """

    name: str
    dtype: np.dtype
    leaves: tuple[int, ...]
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    length: int
    shards: int
    sharding: Any

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the buffer."""
        return (self.length,) if self.shards == 1 else (self.shards, self.length)

    def classes(self, shapes: tuple) -> list[tuple[tuple[int, ...], int, int]]:
        """Runs of consecutive leaves of one shape: ``(shape, first position, count)``.

        ``flat_params`` orders the leaves of a group by shape (first appearance first), so each
        shape is one run: the leaves of a run are one ``(count, *shape)`` view of the buffer.
        """
        runs: list[tuple[tuple[int, ...], int, int]] = []
        for k, i in enumerate(self.leaves):
            if runs and runs[-1][0] == shapes[i]:
                runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2] + 1)
            else:
                runs.append((shapes[i], k, 1))
        return runs


class Layout:
    """Where every leaf of a tree lives in the buffers of a :class:`FlatParams`; hashable.

    Attributes:
      treedef: the tree structure of the original params.
      paths: each leaf's key path (tree-flattening order).
      shapes, dtypes, shardings: each leaf's shape, dtype and sharding (``None`` if unknown).
      groups: the buffers, a tuple of :class:`Group`.
      where: for each leaf, ``(group index, position in the group)``.
    """

    __slots__ = ("treedef", "paths", "shapes", "dtypes", "shardings", "groups", "where",
                 "_hash")

    def __init__(self, treedef: Any, paths: tuple, shapes: tuple, dtypes: tuple,
                 shardings: tuple, groups: tuple[Group, ...]):
        self.treedef, self.paths, self.shapes = treedef, paths, shapes
        self.dtypes, self.shardings, self.groups = dtypes, shardings, groups
        where: list[tuple[int, int]] = [(0, 0)] * len(shapes)
        for g, group in enumerate(groups):
            for k, i in enumerate(group.leaves):
                where[i] = (g, k)
        self.where = tuple(where)
        self._hash = hash((treedef, shapes, dtypes, groups))

    def _key(self) -> tuple:
        return (self.treedef, self.paths, self.shapes, self.dtypes, self.shardings, self.groups)

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Layout) and self._hash == other._hash
                                 and self._key() == other._key())

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        groups = ", ".join(f"{g.name}: {len(g.leaves)} leaves, {_shape_str(g.shape)}"
                           for g in self.groups)
        return f"Layout({len(self.shapes)} leaves; {groups})"

    def __reduce__(self):
        return Layout, (self.treedef, self.paths, self.shapes, self.dtypes, self.shardings,
                        self.groups)

    @property
    def size(self) -> int:
        """The number of entries of all leaves together."""
        return sum(math.prod(s) for s in self.shapes)

    def abstract(self) -> PyTree:
        """The original tree as ``jax.ShapeDtypeStruct`` leaves (for masks and labels)."""
        return jax.tree.unflatten(self.treedef, [jax.ShapeDtypeStruct(s, d)
                                                 for s, d in zip(self.shapes, self.dtypes)])

    # -- between the tree and the buffers ----------------------------------------------------

    def unflatten(self, buffers: dict[str, Any]) -> PyTree:
        """The original tree from the buffers: one split per buffer, then reshapes."""
        leaves: list[Any] = [None] * len(self.shapes)
        for group in self.groups:
            buf = buffers[group.name]
            if isinstance(buf, jax.ShapeDtypeStruct):  # shapes only (init from shapes)
                for i in group.leaves:
                    leaves[i] = jax.ShapeDtypeStruct(self.shapes[i], self.dtypes[i],
                                                     sharding=self.shardings[i])
                continue
            pieces = (jnp.split(buf, np.cumsum(group.sizes)[:-1].tolist(), axis=-1)
                      if len(group.leaves) > 1 else [buf])
            for i, piece in zip(group.leaves, pieces):
                leaf = jnp.reshape(piece, self.shapes[i])
                concrete = isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer)
                if concrete and self.shardings[i] is not None and leaf.sharding != \
                        self.shardings[i]:  # outside jit: back where the leaf was
                    leaf = jax.device_put(leaf, self.shardings[i])
                leaves[i] = leaf
        return jax.tree.unflatten(self.treedef, leaves)

    def flatten(self, tree: PyTree, dtypes: dict[str, Any] | None = None) -> FlatParams:
        """A :class:`FlatParams` of this layout from a tree of the original structure.

        Leaves must have the original shapes and dtypes (gradients computed on the tree,
        updates of a transformation that ran on the leaves), or, for the groups named in
        ``dtypes``, the dtype given there (the float32 buffers ``master_weights`` puts in place
        of bfloat16 ones).
        """
        leaves = self._leaves_of(tree, "flatten", dtypes or {})
        buffers = {}
        for group in self.groups:
            parts = [jnp.reshape(leaves[i], (group.shards, -1) if group.shards > 1 else (-1,))
                     for i in group.leaves]
            buf = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)
            if group.sharding is not None and not isinstance(buf, jax.core.Tracer):
                buf = jax.device_put(buf, group.sharding)
            buffers[group.name] = buf
        return FlatParams(buffers, self)

    def _leaves_of(self, tree: PyTree, where: str, held: dict[str, Any] | None = None) -> list:
        try:
            leaves = self.treedef.flatten_up_to(tree)
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"FlatParams.layout.{where}: the tree does not have the structure of the flat "
                f"params.\n  expected: {self.treedef}\n  got:      {jax.tree.structure(tree)}"
            ) from e
        for path, shape, dtype, leaf, (g, _) in zip(self.paths, self.shapes, self.dtypes, leaves,
                                                    self.where):
            dtype = np.dtype((held or {}).get(self.groups[g].name, dtype))
            got = (tuple(jnp.shape(leaf)), np.dtype(getattr(leaf, "dtype", None)
                                                    or jnp.result_type(leaf)))
            if got != (shape, dtype):
                raise ValueError(
                    f"FlatParams.layout.{where}: the leaf at {_show(path)} is "
                    f"{_shape_str(got[0], got[1])}, the flat params hold "
                    f"{_shape_str(shape, dtype)}; cast or reshape it first.")
        return leaves


def _show(path: tuple) -> str:
    return jax.tree_util.keystr(path) or "the root"


def _shape_str(shape: tuple, dtype: Any = None) -> str:
    inner = ", ".join(map(str, shape))
    return f"{np.dtype(dtype).name}[{inner}]" if dtype is not None else f"[{inner}]"


_FlatFields = collections.namedtuple("_FlatFields", ["buffers"])


class FlatParams(_FlatFields):
    """A tree of params kept as a few contiguous buffers; build it with :func:`flat_params`.

    A NamedTuple with one field, ``buffers`` (a dict from group name to array). The
    :class:`Layout` belongs to the type: ``FlatParams(buffers, layout)`` returns an instance of
    the subclass made once for that layout, so ``jax.grad``, ``jax.tree.map``, ``tx.init`` and
    ``flax.serialization`` rebuild values of the same layout from their buffers alone.

    Attributes:
      buffers: ``{group name: buffer}``.
      layout: the static :class:`Layout`.
    """

    __slots__ = ()
    layout: Layout  # set on the subclass made for each layout
    _by_layout: dict[Layout, type[FlatParams]] = {}

    def __new__(cls, buffers: dict[str, Any], layout: Layout | None = None):
        if layout is None:
            if getattr(cls, "layout", None) is None:
                raise TypeError("FlatParams: build it with gradxform.flat_params(tree), or as "
                                "FlatParams(buffers, layout)")
            return super().__new__(cls, buffers)
        return super().__new__(FlatParams.for_layout(layout), buffers)

    @staticmethod
    def for_layout(layout: Layout) -> type[FlatParams]:
        """The subclass of :class:`FlatParams` holding ``layout`` (made once per layout)."""
        return class_holding(FlatParams, "layout", layout, FlatParams._by_layout)

    def __reduce__(self):
        return FlatParams, (self.buffers, self.layout)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k!r}: {_describe(v)}" for k, v in self.buffers.items())
        return f"FlatParams({{{shown}}}, {len(self.layout.shapes)} leaves)"

    def unflatten(self) -> PyTree:
        """The original tree, leaf by leaf (slices and reshapes of the buffers).

        Call it inside the jitted loss: the gradient with respect to this ``FlatParams`` is then
        a ``FlatParams`` assembled by one concatenate per buffer.
        """
        return self.layout.unflatten(self.buffers)

    def replace_buffers(self, buffers: dict[str, Any]) -> FlatParams:
        """The same layout with other buffers (same names, shapes and dtypes)."""
        return FlatParams(dict(buffers), self.layout)


def _describe(x: Any) -> str:
    dtype = getattr(x, "dtype", None)
    shape = getattr(x, "shape", None)
    if dtype is None or shape is None:
        return repr(x)
    return _shape_str(tuple(shape), dtype)


# --------------------------------------------------------------------------------------------
# Building the buffers.


def _placement(sharding: Any, shape: tuple, path: tuple) -> tuple[Hashable, int, Any]:
    """``(key, shards, buffer sharding)`` of a leaf's sharding, or an error for unsupported
    ones."""
    if sharding is None:
        return None, 1, None
    if getattr(sharding, "is_fully_replicated", False) or len(sharding.device_set) == 1:
        if isinstance(sharding, NamedSharding):
            return ("replicated", sharding.mesh), 1, NamedSharding(sharding.mesh,
                                                                   PartitionSpec())
        return ("device", sharding), 1, sharding
    if isinstance(sharding, NamedSharding):
        spec = tuple(sharding.spec)
        lead = spec[0] if spec else None
        if lead is not None and all(e is None for e in spec[1:]):
            axes = lead if isinstance(lead, tuple) else (lead,)
            shards = math.prod(sharding.mesh.shape[a] for a in axes)
            if shape and shape[0] % shards == 0:
                return (("lead", sharding.mesh, axes), shards,
                        NamedSharding(sharding.mesh, PartitionSpec(lead, None)))
    raise ValueError(
        f"flat_params: the leaf at {_show(path)} has the sharding {sharding}. Flat buffers hold "
        "replicated or single-device leaves, and leaves split along their leading dimension "
        "only (PartitionSpec(axis, None, ...)); keep other leaves out of the flat params (flatten "
        "a sub-tree) or use the per-leaf params.")


def _labels(group: Any, params: PyTree) -> list:
    if group is None:
        return [None] * len(jax.tree.leaves(params))

    if isinstance(group, str):
        group = by_regex(group)
    return route(group, params, "flat_params", "labels")


def flat_params(params: PyTree, *, group: Any = None) -> FlatParams:
    """Pack the leaves of ``params`` into one contiguous buffer per (dtype, sharding, label).

    Leaves are concatenated in tree-flattening order, each raveled (row-major). ``None`` leaves
    are empty subtrees and stay part of the structure. bfloat16 and float32 leaves go to
    buffers of their own; leaves of different shardings too (see the module documentation for
    the shardings a buffer can hold).

    Args:
      params: a tree of floating-point arrays (or ``jax.ShapeDtypeStruct``, for shapes only).
        Call it once, outside ``jit``, and keep the result for the whole run.
      group: optional labels that split buffers further, in any form a mask or a partition
        takes (a tree of labels matched by path, a callable ``params -> tree``, a
        :class:`~gradxform.by_regex` or :class:`~gradxform.by_path` rule; a string is a regex
        mask, True/False). Leaves with different labels get buffers of their own, so a weight
        decay mask that follows the labels applies to whole buffers.

    Returns:
      A :class:`FlatParams`; ``.unflatten()`` gives ``params`` back.

    Example::

        no_decay = gx.by_regex([("bias|scale", False)], default=True)
        fp = gx.flat_params(params, group=no_decay)     # decayed and other leaves apart
        opt = gx.adamw(1e-3, weight_decay=0.1, mask=no_decay)   # a mask of whole buffers
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    labels = _labels(group, params)
    for label in labels:
        if label is not None and not isinstance(label, (str, bool, np.bool_, int)):
            raise TypeError(f"flat_params: group labels must be strings or bools, got {label!r}")
    paths = tuple(p for p, _ in flat)
    leaves = [x for _, x in flat]
    shapes, dts, shardings = [], [], []
    keys: dict[tuple, list[int]] = {}
    placements: dict[tuple, tuple[int, Any]] = {}
    for i, (path, leaf) in enumerate(flat):
        shape = tuple(jnp.shape(leaf))
        dtype = np.dtype(getattr(leaf, "dtype", None) or jnp.result_type(leaf))
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(
                f"flat_params: the leaf at {_show(path)} has dtype {dtype.name}; flat buffers "
                "hold the floating-point leaves an optimizer trains. Keep integer and boolean "
                "leaves out of the tree given to flat_params.")
        sharding = None if isinstance(leaf, jax.core.Tracer) else getattr(leaf, "sharding",
                                                                          None)
        place, shards, buffer_sharding = _placement(sharding, shape, path)
        key = (dtype, place, labels[i])
        keys.setdefault(key, []).append(i)
        placements[key] = (shards, buffer_sharding)
        shapes.append(shape)
        dts.append(dtype)
        shardings.append(sharding)
    groups = []
    counts: dict[str, int] = {}
    for (dtype, _, label), members in keys.items():
        base = dtype.name if label is None else f"{dtype.name}.{label}"
        n = counts.get(base, 0)
        counts[base] = n + 1
        name = base if n == 0 else f"{base}.{n}"
        shards, buffer_sharding = placements[(dtype, _, label)]
        # leaves of one shape next to each other (in tree order): one (count, *shape) view each
        order: dict[tuple[int, ...], list[int]] = {}
        for i in members:
            order.setdefault(shapes[i], []).append(i)
        members = [i for same in order.values() for i in same]
        sizes = tuple(math.prod(shapes[i]) // shards for i in members)
        offsets = tuple(int(o) for o in np.concatenate([[0], np.cumsum(sizes)[:-1]]))
        groups.append(Group(name, dtype, tuple(members), offsets, sizes, int(sum(sizes)), shards,
                            buffer_sharding))
    layout = Layout(treedef, paths, tuple(shapes), tuple(dts), tuple(shardings), tuple(groups))
    if any(isinstance(x, jax.ShapeDtypeStruct) for x in leaves):
        return FlatParams({g.name: jax.ShapeDtypeStruct(g.shape, g.dtype, sharding=g.sharding)
                           for g in groups}, layout)
    return layout.flatten(jax.tree.unflatten(treedef, [jnp.asarray(x) for x in leaves]))


# --------------------------------------------------------------------------------------------
# Transformations that run on the leaves (flat_support = "leaves").


def _dtypes(fp: FlatParams) -> dict[str, Any]:
    """The dtype of each buffer of ``fp``: the layout's, or another one a wrapper put in its
    place (``master_weights`` hands its inner transformation float32 copies of bfloat16
    buffers), which the updates of a transformation run on the leaves keep."""
    return {name: buf.dtype for name, buf in fp.buffers.items()}


def init_on_leaves(init_state: Callable) -> Callable:
    """Wrap ``init_state``: given a :class:`FlatParams`, it builds the state of the leaves."""

    @functools.wraps(init_state)
    def wrapped(self, params):
        if isinstance(params, FlatParams):
            params = params.unflatten()
        return init_state(self, params)

    wrapped.flat_support = "leaves"  # type: ignore[attr-defined]
    return wrapped


def apply_on_leaves(apply: Callable) -> Callable:
    """Wrap ``apply``: given :class:`FlatParams` updates, it runs on views of the leaves and
    packs the new updates into buffers of the same layout again."""

    @functools.wraps(apply)
    def wrapped(self, updates, state, params, step):
        if not isinstance(updates, FlatParams):
            return apply(self, updates, state, params, step)
        layout = updates.layout
        if isinstance(params, FlatParams):
            params = params.unflatten()
        new, state = apply(self, updates.unflatten(), state, params, step)
        return layout.flatten(new, _dtypes(updates)), state

    wrapped.flat_support = "leaves"  # type: ignore[attr-defined]
    return wrapped


# --------------------------------------------------------------------------------------------
# Transformations that treat each leaf on its own (flat_support = "each_leaf").


def _runs(layout: Layout, fp: FlatParams | None):
    """For every group and every run of one shape: ``(group, shape, view or None)``, the view
    of ``fp``'s buffer shaped ``(count, *shape)``."""
    for group in layout.groups:
        buf = None if fp is None else fp.buffers[group.name]
        for shape, first, count in group.classes(layout.shapes):
            view = None
            if buf is not None:
                size = math.prod(shape)
                start = group.offsets[first]
                view = jnp.reshape(jax.lax.slice_in_dim(buf, start, start + count * size),
                                   (count,) + shape)
            yield group, shape, view


def _by_runs(layout: Layout, fp: FlatParams | None) -> list:
    if fp is None or all(g.shards == 1 for g in layout.groups):
        return list(_runs(layout, fp))
    raise FlatUnsupportedError("a transformation that treats each leaf on its own runs on 1-D "
                               "flat buffers; this one is split over devices")


def _run_shapes(layout: Layout) -> list:
    """``(group, shape, count)`` for every run of leaves of one shape, in layout order."""
    return [(group, shape, count) for group in layout.groups
            for shape, _, count in group.classes(layout.shapes)]


def _init_from_shapes(self: Any, init_state: Callable, group: Any, shape: tuple,
                      count: int) -> Any:
    """The state of a run of ``count`` leaves built from shapes alone: one leaf's state from
    its ``ShapeDtypeStruct`` (it does not depend on values), repeated along a new leading axis,
    a fresh array per field as ``vmap`` would give."""
    one = init_state(self, jax.ShapeDtypeStruct(shape, group.dtype))
    return jax.tree.map(lambda x: jnp.repeat(jnp.asarray(x)[None], count, axis=0), one)


def init_each_leaf(init_state: Callable) -> Callable:
    """Wrap ``init_state``: given a :class:`FlatParams`, the state of each run of leaves of one
    shape, built by ``vmap`` over the run (a tuple of them, in layout order)."""

    @functools.wraps(init_state)
    def wrapped(self, params):
        if not isinstance(params, FlatParams):
            return init_state(self, params)
        if any(g.shards > 1 for g in params.layout.groups):
            return init_state(self, params.unflatten())
        if any(isinstance(b, jax.ShapeDtypeStruct) for b in params.buffers.values()):
            return tuple(_init_from_shapes(self, init_state, group, shape, count)
                         for group, shape, count in _run_shapes(params.layout))
        return tuple(jax.vmap(lambda p: init_state(self, p))(view)
                     for _, _, view in _by_runs(params.layout, params))

    wrapped.flat_support = "each_leaf"  # type: ignore[attr-defined]
    return wrapped


def apply_each_leaf(apply: Callable) -> Callable:
    """Wrap ``apply``: given :class:`FlatParams` updates, run it once per shape, vectorised by
    ``vmap`` over the leaves of that shape (each leaf is the whole tree the transformation
    sees), and concatenate the new updates into buffers of the same layout."""

    @functools.wraps(apply)
    def wrapped(self, updates, state, params, step):
        if not isinstance(updates, FlatParams):
            return apply(self, updates, state, params, step)
        layout = updates.layout
        if any(g.shards > 1 for g in layout.groups):  # views of the leaves instead
            flat_params_ = params.unflatten() if isinstance(params, FlatParams) else params
            new, state = apply(self, updates.unflatten(), state, flat_params_, step)
            return layout.flatten(new, _dtypes(updates)), state
        runs = _by_runs(layout, updates)
        param_runs = _by_runs(layout, params) if isinstance(params, FlatParams) else \
            [(g, s, None) for g, s, _ in runs]
        pieces: dict[str, list] = {g.name: [] for g in layout.groups}
        new_state = []
        for (group, _, u), (_, _, p), s in zip(runs, param_runs, state):
            new_u, new_s = jax.vmap(lambda u, s, p: apply(self, u, s, p, step))(u, s, p)
            pieces[group.name].append(jnp.reshape(new_u, (-1,)))
            new_state.append(new_s)
        buffers = {name: parts[0] if len(parts) == 1 else jnp.concatenate(parts)
                   for name, parts in pieces.items()}
        return FlatParams(buffers, layout), tuple(new_state)

    wrapped.flat_support = "each_leaf"  # type: ignore[attr-defined]
    return wrapped


def buffer_mask(mask: Any, layout: Layout, where: str) -> FlatParams:
    """A mask of the leaves as one bool per buffer of ``layout`` (a ``FlatParams`` of bools).

    The mask (in any form a mask takes) is matched to the original leaves; every buffer must
    hold only masked or only unmasked leaves, else an error says how to split it
    (``flat_params(..., group=mask)``).
    """

    per_leaf = layout.treedef.flatten_up_to(mask_leaves(mask, layout.abstract(), where))
    out = {}
    for group in layout.groups:
        values = {bool(per_leaf[i]) for i in group.leaves}
        if len(values) > 1:
            inside = [_show(layout.paths[i]) for i in group.leaves if per_leaf[i]][:3]
            outside = [_show(layout.paths[i]) for i in group.leaves if not per_leaf[i]][:3]
            raise FlatUnsupportedError(
                f"{where}: the mask splits the flat buffer {group.name!r} (masked: "
                f"{', '.join(inside)}, ...; not masked: {', '.join(outside)}, ...). On flat "
                "params a mask applies to whole buffers: build them with "
                "gx.flat_params(params, group=<the same mask>), so that masked and unmasked "
                "leaves get buffers of their own, or use the per-leaf params.")
        out[group.name] = values.pop()
    return FlatParams(out, layout)


def leaf_mask(mask: Any, params: PyTree, where: str) -> PyTree:
    """A tree of bools shaped like ``params`` from a mask: per leaf, or per buffer of a
    :class:`FlatParams` (see :func:`buffer_mask`)."""
    if mask is None:
        return jax.tree.map(lambda _: True, params)
    if isinstance(params, FlatParams):
        return buffer_mask(mask, params.layout, where)

    return mask_leaves(mask, params, where)
