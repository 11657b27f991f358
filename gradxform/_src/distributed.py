"""Scale-out on JAX's own engine: sharded optimizer state and data-parallel gradients.

gradxform has no communication layer of its own. Transformations are pure functions of arrays,
so ``pmap``, ``jit`` with shardings, ``shard_map`` and ``jax.distributed`` run them as they run
any JAX code. This module fills the three gaps JAX leaves to the user:

* **Where the state lives.** ``jax.jit(tx.init)`` does not give the state the params' shardings
  (its zeros depend on no input, so they land on one device). :func:`state_shardings` derives a
  sharding for every state leaf from the params' shardings (mirroring them, or ZeRO-1 style
  along a data axis, or by a rule of yours) and :func:`init_sharded` creates the state directly
  with them, from the params or from their shapes (``jax.ShapeDtypeStruct``) alone.
* **The gradient of data parallelism.** Inside ``shard_map`` the gradient of replicated params
  comes back already summed over the devices, so the ``pmap`` habit ``pmean(grad(loss))`` is
  ``n`` times too large. :func:`data_parallel_grad` returns the gradient of the mean loss over
  the devices, in ``shard_map`` and ``pmap`` alike.
* **Updates on local shards.** The optimizer state remembers the params' global shapes and
  ``update`` checks them; inside ``shard_map`` each device holds a shard. :func:`update_shards`
  runs ``tx.update`` on the local shards of a state created for the global params.

Transformations that reduce over the whole tree (``clip_by_global_norm``, trust ratios, factored
statistics) take an ``axis_name`` for the last case; see ``docs/distributed.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend.core import Literal
from jax.sharding import NamedSharding, PartitionSpec, SingleDeviceSharding

from gradxform._src import tree
from gradxform._src.base import OptState, ParamSpec, StructureMismatchError
from gradxform._src.types import PyTree, TreeDef

__all__ = [
    "state_shardings", "init_sharded", "update_shards", "data_parallel_grad",
    "data_parallel_value_and_grad",
]

Rule = Callable[[tuple, jax.ShapeDtypeStruct], Any]


# --------------------------------------------------------------------------------------------
# Shardings of the state.


def _is_spec_leaf(x: Any) -> bool:
    return x is None or isinstance(x, (PartitionSpec, jax.sharding.Sharding))


def _describe_leaf(path: tuple) -> str:
    return jax.tree_util.keystr(path) or "the root"


def _param_shardings(params: PyTree, shardings: Any, where: str) -> list[tuple[tuple, Any, Any]]:
    """``(path, shape, sharding)`` for every param leaf."""
    treedef: TreeDef
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    if shardings is None:
        out = []
        for path, leaf in flat:
            sharding = getattr(leaf, "sharding", None)
            if sharding is None:
                raise ValueError(
                    f"{where}: the param at {_describe_leaf(path)} carries no sharding (a "
                    f"{type(leaf).__name__}); pass shardings=, a tree of NamedSharding or "
                    "PartitionSpec with the params' structure, or give jax.ShapeDtypeStruct "
                    "leaves a sharding=."
                )
            out.append((path, tuple(leaf.shape), sharding))
        return out
    if _is_spec_leaf(shardings):  # one sharding for every leaf
        return [(path, tuple(jnp.shape(leaf)), shardings) for path, leaf in flat]
    try:
        spec_leaves = treedef.flatten_up_to(shardings)
    except ValueError as e:
        raise StructureMismatchError(
            f"{where}: shardings must have the structure of the params (one NamedSharding or "
            f"PartitionSpec per leaf).\n  params:    {treedef}\n"
            f"  shardings: {jax.tree.structure(shardings, is_leaf=_is_spec_leaf)}"
        ) from e
    return [(path, tuple(jnp.shape(leaf)), s) for (path, leaf), s in zip(flat, spec_leaves)]


def _spec_tuple(spec: PartitionSpec, ndim: int) -> list:
    entries = list(spec)
    return entries + [None] * (ndim - len(entries))


def _used_axes(entries: Sequence) -> set:
    used: set = set()
    for e in entries:
        if e is None:
            continue
        used.update(e if isinstance(e, tuple) else (e,))
    return used


def _zero_spec(spec: PartitionSpec, shape: tuple, zero_axis: Any, mesh: Any) -> PartitionSpec:
    """``spec`` with ``zero_axis`` added on the first free dimension it divides, if any."""
    axes = zero_axis if isinstance(zero_axis, tuple) else (zero_axis,)
    entries = _spec_tuple(spec, len(shape))
    if _used_axes(entries) & set(axes):
        return spec
    size = 1
    for a in axes:
        size *= mesh.shape[a]
    for d, n in enumerate(shape):
        if entries[d] is None and n % size == 0 and n > 0:
            entries[d] = zero_axis
            while entries and entries[-1] is None:
                entries.pop()
            return PartitionSpec(*entries)
    return spec


def _mirror(path: tuple, shape: tuple, params: dict) -> Any:
    """The sharding of the param this state leaf mirrors, if any.

    That param is the one whose path is the longest suffix of the leaf's path; it is mirrored
    only if the shapes are equal (a factored statistic of another shape mirrors nothing).
    """
    for n in range(len(path), -1, -1):
        found = params.get(path[len(path) - n:])
        if found is not None:
            return found[1] if found[0] == shape else None
    return None


def state_shardings(tx: Any, params: PyTree, shardings: Any = None, *, zero_axis: Any = None,
                    mesh: Any = None, rule: Rule | None = None) -> PyTree:
    """The sharding of every leaf of ``tx.init(params)``, derived from the params' shardings.

    Each state leaf that mirrors a param (moments, traces, copies: its path ends with the
    param's path, the longest such, and the shapes are equal) gets that param's sharding. Other
    leaves (the step count, factored statistics of another shape) are replicated. With
    ``zero_axis`` (ZeRO stage 1), every state leaf is in addition split along that mesh axis,
    independently of the params: on the first dimension that is not already sharded and whose
    size the axis size divides; leaves with no such dimension stay replicated along it. ``rule``
    overrides any leaf.

    The result has exactly the tree structure of ``jax.eval_shape(tx.init, params)`` (the
    :class:`~gradxform.OptState` with its static param spec), so it can be given to
    ``jax.jit(..., out_shardings=...)`` or, as PartitionSpecs, to ``jax.shard_map``'s
    ``in_specs``/``out_specs``.

    Args:
      tx: the transformation (a gradxform value or an optax transformation).
      params: the params, as arrays or ``jax.ShapeDtypeStruct`` (only shapes and dtypes are
        read).
      shardings: the params' shardings: a tree with the params' structure (or a single value
        for all leaves) of ``NamedSharding``, ``SingleDeviceSharding`` or ``PartitionSpec``.
        Default: each leaf's own ``.sharding``. Given PartitionSpecs, the result holds
        PartitionSpecs; otherwise shardings.
      zero_axis: a mesh axis name (or tuple of names) to shard the state along, ZeRO-1 style.
      mesh: the mesh; needed with PartitionSpecs and ``zero_axis``, or when the params live on
        several meshes. Default: the params' mesh.
      rule: ``rule(path, leaf) -> NamedSharding | PartitionSpec | None``, called for every state
        leaf (``path`` its key path in the state, ``leaf`` a ``jax.ShapeDtypeStruct``);
        ``None`` keeps the default.

    Conventions. ZeRO stage 1 shards only the optimizer state; the params (and gradients)
    keep the shardings you give them, so stages 2 and 3 are a matter of sharding the gradients
    and params themselves. Which dimension is split is chosen per leaf as above; pass ``rule``
    to split another one.

    Example::

        shardings = gx.state_shardings(opt, params, zero_axis="data")
        opt_state = jax.jit(opt.init, out_shardings=shardings)(params)

    References:
      Rajbhandari, Rasley, Ruwase, He, *ZeRO: Memory Optimizations Toward Training Trillion
      Parameter Models*, SC 2020 (stage 1: optimizer state partitioning).
    """
    where = "state_shardings"
    if not (hasattr(tx, "init") and hasattr(tx, "update")):
        raise TypeError(f"{where}: tx must be a transformation with init and update, got {tx!r}")
    param_list = _param_shardings(params, shardings, where)
    for path, _, s in param_list:
        if not isinstance(s, (PartitionSpec, NamedSharding, SingleDeviceSharding)):
            raise TypeError(
                f"{where}: the sharding of the param at {_describe_leaf(path)} is a "
                f"{type(s).__name__}; supported are NamedSharding, SingleDeviceSharding and "
                "PartitionSpec (with mesh=)."
            )
    kinds = {type(s) for _, _, s in param_list}
    as_specs = PartitionSpec in kinds
    if as_specs and len(kinds) > 1:
        names = {"PartitionSpec" if k is PartitionSpec else k.__name__ for k in kinds}
        raise TypeError(f"{where}: shardings must be all PartitionSpecs or all shardings, got "
                        f"{sorted(names)}")
    if mesh is None:
        meshes = {s.mesh for _, _, s in param_list if isinstance(s, NamedSharding)}
        if len(meshes) > 1:
            raise ValueError(f"{where}: the params live on {len(meshes)} different meshes; "
                             "pass mesh= for the state leaves that mirror no param")
        mesh = next(iter(meshes), None)
    devices = {s for _, _, s in param_list if isinstance(s, SingleDeviceSharding)}
    if mesh is None and zero_axis is not None:
        raise ValueError(f"{where}: zero_axis={zero_axis!r} needs a mesh: give the params "
                         "NamedShardings or pass mesh=")
    if zero_axis is not None:
        for a in zero_axis if isinstance(zero_axis, tuple) else (zero_axis,):
            if a not in mesh.shape:
                raise ValueError(f"{where}: zero_axis {a!r} is not an axis of the mesh "
                                 f"{dict(mesh.shape)}")

    def replicated():
        if as_specs:
            return PartitionSpec()
        if mesh is not None:
            return NamedSharding(mesh, PartitionSpec())
        if len(devices) == 1:
            return next(iter(devices))
        raise ValueError(f"{where}: cannot place state leaves that mirror no param: the params "
                         "are on several single devices; pass mesh=")

    abstract = jax.eval_shape(tx.init, jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(jnp.shape(x), getattr(x, "dtype", jnp.result_type(x))),
        params))

    by_path = {p: (shape, s) for p, shape, s in param_list}

    def one(path, leaf):
        shape = tuple(leaf.shape)
        chosen = _mirror(tuple(path), shape, by_path) if shape else None
        if chosen is None:
            chosen = replicated()
        if zero_axis is not None and shape:
            if isinstance(chosen, PartitionSpec):
                chosen = _zero_spec(chosen, shape, zero_axis, mesh)
            elif isinstance(chosen, NamedSharding):
                chosen = NamedSharding(chosen.mesh,
                                       _zero_spec(chosen.spec, shape, zero_axis, chosen.mesh))
        if rule is not None:
            custom = rule(path, leaf)
            if custom is not None:
                if isinstance(custom, PartitionSpec) and not as_specs:
                    if mesh is None:
                        raise ValueError(f"{where}: rule returned a PartitionSpec for "
                                         f"{_describe_leaf(path)} but there is no mesh; "
                                         "return a sharding or pass mesh=")
                    custom = NamedSharding(mesh, custom)
                chosen = custom
        return chosen

    return jax.tree_util.tree_map_with_path(one, abstract)


# --------------------------------------------------------------------------------------------
# Creating the state directly sharded.


def _reads_values(closed: Any) -> list[int]:
    """Indices of the outputs of a closed jaxpr that depend on the values of its inputs."""

    def walk(jaxpr, dependent_inputs):
        dep = {v for v, d in zip(jaxpr.invars, dependent_inputs) if d}
        for eqn in jaxpr.eqns:
            ins = [(not isinstance(v, Literal)) and v in dep for v in eqn.invars]
            if not any(ins):
                continue
            inner = eqn.params.get("jaxpr")
            if inner is not None and hasattr(inner, "jaxpr") and len(eqn.invars) == len(
                    inner.jaxpr.invars):  # a nested jit: look inside
                outs = walk(inner.jaxpr, ins)
            else:
                outs = [True] * len(eqn.outvars)
            dep.update(v for v, d in zip(eqn.outvars, outs) if d)
        return [(not isinstance(v, Literal)) and v in dep for v in jaxpr.outvars]

    flags = walk(closed.jaxpr, [True] * len(closed.jaxpr.invars))
    return [i for i, d in enumerate(flags) if d]


def init_sharded(tx: Any, params: PyTree, shardings: Any = None, *, zero_axis: Any = None,
                 mesh: Any = None, rule: Rule | None = None) -> OptState:
    """``tx.init(params)``, created directly with the shardings of :func:`state_shardings`.

    Works from the params themselves or from their shapes alone (``jax.ShapeDtypeStruct``
    leaves, with a ``sharding=`` or with ``shardings=``): then no param is ever materialised,
    and the state of a model too large for one device is created in place, each device holding
    its shards. Optimizers whose state holds a copy of the initial params (Prodigy keeps
    :math:`x_0`) need the values: from shapes they raise an error that says so. Whether the
    state depends on the values is read from the traced ``init``, not guessed from the
    optimizer's name (optax's D-Adaptation, whose state needs only shapes, works from shapes).

    Args:
      tx: the transformation.
      params: arrays or ``jax.ShapeDtypeStruct`` leaves.
      shardings, zero_axis, mesh, rule: as for :func:`state_shardings` (PartitionSpecs need
        ``mesh``).

    Returns:
      The state, each leaf an array with its sharding (assert ``leaf.sharding``).

    Example::

        abstract = jax.eval_shape(model.init, key)          # shapes only
        opt_state = gx.init_sharded(opt, abstract, param_shardings, zero_axis="data")

    References:
      Rajbhandari, Rasley, Ruwase, He, *ZeRO: Memory Optimizations Toward Training Trillion
      Parameter Models*, SC 2020.
    """
    where = "init_sharded"
    out = state_shardings(tx, params, shardings, zero_axis=zero_axis, mesh=mesh, rule=rule)
    if any(isinstance(s, PartitionSpec) for s in jax.tree.leaves(out)):
        if mesh is None:
            raise ValueError(f"{where}: the shardings are PartitionSpecs; pass mesh= to place "
                             "them")
        out = jax.tree.map(lambda s: NamedSharding(mesh, s) if isinstance(s, PartitionSpec)
                           else s, out)
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), x.dtype), params)
    reading = _reads_values(jax.make_jaxpr(tx.init)(shapes))
    if not reading:
        def make():
            # Stand-in params that init never reads (checked above): XLA removes them, so no
            # param is materialised, and each device computes only its shards of the state.
            return tx.init(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))

        return jax.jit(make, out_shardings=out)()

    if any(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(params)):
        paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(
            jax.eval_shape(tx.init, shapes))[0]]
        shown = ", ".join(_describe_leaf(paths[i]) for i in reading[:4])
        name = getattr(tx, "name", type(tx).__name__)
        raise ValueError(
            f"{where}: {name}.init reads the values of the params (the state leaves {shown} "
            "are computed from them, as Prodigy keeps the initial params), so its state "
            "cannot be created from jax.ShapeDtypeStruct shapes. Pass the params "
            "themselves (already sharded), or create them first."
        )
    if shardings is not None:
        placed = [s if not isinstance(s, PartitionSpec) else NamedSharding(mesh, s)
                  for _, _, s in _param_shardings(params, shardings, where)]
        params = jax.device_put(params, jax.tree.unflatten(jax.tree.structure(params), placed))
    return jax.jit(tx.init, out_shardings=out)(params)


# --------------------------------------------------------------------------------------------
# Updates on local shards.


def _shard_compatible(global_shape: tuple, local_shape: tuple) -> bool:
    if global_shape == local_shape:
        return True
    return len(global_shape) == len(local_shape) and all(
        loc > 0 and glob % loc == 0 for glob, loc in zip(global_shape, local_shape))


def update_shards(tx: Any, updates: PyTree, state: OptState, params: PyTree | None = None,
                  **extra_args: Any) -> tuple[PyTree, OptState]:
    """``tx.update`` inside ``shard_map``, on the local shards of a state made for the params.

    The state remembers the global shapes of the params it was created for and ``tx.update``
    checks them; inside ``jax.shard_map`` every device sees only its shards. This checks that
    the tree structure and dtypes are the params', and that every local shape tiles the global
    one, then runs ``tx.update`` on the shards and returns the state with its global spec, so
    it leaves ``shard_map`` as it came in.

    Transformations that reduce over the whole tree (``clip_by_global_norm``, LAMB/LARS trust
    ratios, Adafactor) must be built with the ``axis_name`` of the mesh axes the leaves are
    sharded over; elementwise ones (SGD, Adam) need nothing.

    Example::

        state_specs = gx.state_shardings(opt, params, param_specs)   # PartitionSpecs

        @jax.jit
        @functools.partial(jax.shard_map, mesh=mesh, in_specs=(param_specs, state_specs, P()),
                           out_specs=(param_specs, state_specs))
        def step(params, opt_state, batch):
            grads = jax.grad(loss)(params, batch)
            updates, opt_state = gx.update_shards(opt, grads, opt_state, params)
            return gx.apply_updates(params, updates), opt_state
    """
    where = "update_shards"
    if not isinstance(state, OptState):
        raise TypeError(f"{where}: state must be the OptState returned by init, got "
                        f"{type(state).__name__}")
    local = ParamSpec.of(updates)
    spec = state.spec
    if local.paths == spec.paths and local.dtypes == spec.dtypes:
        for path, glob, loc in zip(spec.paths, spec.shapes, local.shapes):
            if not _shard_compatible(glob, loc):
                raise StructureMismatchError(
                    f"{where}: at {_describe_leaf(path)} the updates have shape {list(loc)}, "
                    f"which is not a shard of the params' shape {list(glob)} (every local "
                    "dimension must divide the global one). Are the in_specs of the updates "
                    "the params' in_specs?"
                )
    else:
        spec.check(updates, where, "updates")  # raises, showing both trees
    new_updates, new_state = tx.update(updates, state.replace(spec=local), params, **extra_args)
    return new_updates, new_state.replace(spec=spec)


# --------------------------------------------------------------------------------------------
# The gradient of data parallelism.


def _mean_grad_fn(loss_fn: Callable, axis_name: Any, argnums: Any, has_aux: bool,
                  with_value: bool) -> Callable:
    if not callable(loss_fn):
        raise TypeError(f"data_parallel_grad: loss_fn must be callable, got {loss_fn!r}")
    if axis_name is None:
        raise ValueError("data_parallel_grad: axis_name is required: the mapped axis (of "
                         "shard_map or pmap) the batch is split over")

    def mean_loss(*args, **kwargs):
        out = loss_fn(*args, **kwargs)
        value, aux = out if has_aux else (out, None)
        return jax.lax.pmean(value, axis_name), (value, aux)

    def local_loss(*args, **kwargs):
        out = loss_fn(*args, **kwargs)
        value, aux = out if has_aux else (out, None)
        return value, (value, aux)

    def wrapped(*args, **kwargs):
        axes = axis_name if isinstance(axis_name, tuple) else (axis_name,)
        if tree._tracks_variance(axes):
            # shard_map(check_vma=True): JAX transposes the replication of invariant params
            # into a psum, so the gradient of the mean loss is exact for replicated and
            # sharded params alike.
            (_, (value, aux)), grads = jax.value_and_grad(
                mean_loss, argnums, has_aux=True)(*args, **kwargs)
        else:
            # pmap or shard_map(check_vma=False): per-device gradients, averaged here.
            (_, (value, aux)), grads = jax.value_and_grad(
                local_loss, argnums, has_aux=True)(*args, **kwargs)
            grads = jax.lax.pmean(grads, axis_name)
        value = jax.lax.pmean(value, axis_name)
        if with_value:
            return ((value, aux), grads) if has_aux else (value, grads)
        return (grads, aux) if has_aux else grads

    return wrapped


def data_parallel_grad(loss_fn: Callable, axis_name: Any, *, argnums: int | Sequence[int] = 0,
                       has_aux: bool = False) -> Callable:
    r"""``jax.grad`` of the loss averaged over a mapped axis, for data parallelism.

    Inside ``jax.shard_map`` or ``jax.pmap`` over ``axis_name``, with the batch split over that
    axis and the params replicated, returns the gradient of

    .. math:: \bar L(\theta) = \frac{1}{n} \sum_{i=1}^{n} L(\theta; B_i),

    the same on every device, which equals the single-device gradient of the mean loss over the
    whole batch when every device holds the same number of examples.

    Why a helper: under ``shard_map`` (with its default ``check_vma=True``) JAX already sums
    the gradient of a replicated param over the devices, so the ``pmap`` habit
    ``lax.pmean(jax.grad(loss)(params, batch), axis)`` gives ``n`` times the gradient (Adam
    hides it, being scale invariant; SGD does not). Under ``pmap`` and
    ``shard_map(check_vma=False)`` the per-device gradients are not summed and ``pmean`` is
    right. This helper does the right thing in each.

    Conventions. The loss is averaged over devices, as the single-device loss is averaged over
    examples (the ``pmean`` convention of data parallelism); a loss summed over examples wants a
    sum over devices instead: multiply the result by the axis size. With ``check_vma=True``
    the gradient of params sharded over the axis is also that of the mean loss.

    Args:
      loss_fn: ``loss_fn(params, *args) -> scalar`` (or ``(scalar, aux)`` with
        ``has_aux``), computed on the local batch.
      axis_name: the mapped axis name (or tuple of names) the batch is split over.
      argnums: which positional arguments to differentiate, as in ``jax.grad``.
      has_aux: ``loss_fn`` returns ``(loss, aux)``; the result is then ``(grads, aux)``,
        with ``aux`` the local (per-device) value.

    Example::

        @functools.partial(jax.shard_map, mesh=mesh, in_specs=(P(), P(), P("data")),
                           out_specs=(P(), P()))
        def step(params, opt_state, batch):
            grads = gx.data_parallel_grad(loss, "data")(params, batch)
            updates, opt_state = opt.update(grads, opt_state, params)
            return gx.apply_updates(params, updates), opt_state
    """
    return _mean_grad_fn(loss_fn, axis_name, argnums, has_aux, with_value=False)


def data_parallel_value_and_grad(loss_fn: Callable, axis_name: Any, *,
                                 argnums: int | Sequence[int] = 0,
                                 has_aux: bool = False) -> Callable:
    """:func:`data_parallel_grad` that also returns the mean loss over the axis.

    Returns ``(mean_loss, grads)``, or ``((mean_loss, aux), grads)`` with ``has_aux``.
    """
    return _mean_grad_fn(loss_fn, axis_name, argnums, has_aux, with_value=True)
