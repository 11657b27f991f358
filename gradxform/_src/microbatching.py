"""Evaluating a function on a batch in sequential micro-batches: ``microbatch`` (optax's).

``gx.microbatch(fun, argnums, microbatch_size)`` is ``fun`` computed one micro-batch at a time in
a ``lax.fori_loop``, with the results combined as the accumulator says: summed, averaged or
concatenated. Peak memory is that of one micro-batch. The usual case is a gradient::

    grad_fn = gx.microbatch(jax.grad(loss), argnums=1, microbatch_size=32,
                            accumulator="mean")
    grads = grad_fn(params, batch)          # the mean of the micro-batches' gradients

This is the function-level counterpart of :class:`~gradxform.accumulate`, which accumulates
across calls of ``update`` (across steps of the training loop) instead of inside one call.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from gradxform._src.types import PyTree

__all__ = ["AccumulationType", "Accumulator", "IndividualOutputs", "microbatch", "micro_vmap",
           "micro_grad", "reshape_batch_axis"]

#: The per-example outputs of :func:`micro_grad` besides the gradient: the objective's values,
#: ``metrics_fn`` of each example's gradient, and the objective's auxiliary output (optax's).
IndividualOutputs = collections.namedtuple("IndividualOutputs", ["values", "metrics", "aux"])


class AccumulationType(enum.Enum):
    """How the results of the micro-batches are combined (optax's names).

    ``SUM`` adds them, ``MEAN`` divides the sum by the number of micro-batches, ``RUNNING_MEAN``
    keeps a running average (which stays a mean when ``num_real_microbatches`` stops early),
    ``CONCAT`` concatenates them along the batch axis, in the order of the batch.
    """

    MEAN = 1
    SUM = 2
    RUNNING_MEAN = 3
    CONCAT = 4


def _accumulation(value: Any) -> AccumulationType:
    """An :class:`AccumulationType` from itself, its name (any case) or optax's enum member."""
    if isinstance(value, AccumulationType):
        return value
    name = value if isinstance(value, str) else getattr(value, "name", None)
    try:
        return AccumulationType[str(name).upper()]
    except KeyError:
        raise ValueError(f"microbatch: accumulator must be 'sum', 'mean', 'running_mean' or "
                         f"'concat' (or optax's AccumulationType, or an Accumulator), got "
                         f"{value!r}") from None


@dataclasses.dataclass(frozen=True)
class Accumulator:
    """A way of combining the results of the micro-batches (optax's class).

    For the results ``x_0, ..., x_{n-1}`` of ``n`` micro-batches, :func:`microbatch` computes::

        carry = init(shapes)                  # shapes: jax.ShapeDtypeStruct of one result
        for i in range(n):
            carry = update(carry, x_i, i)
        return finalize(carry)

    and :func:`micro_vmap` reduces the rows of one micro-batch with ``aggregate(rows)`` first
    (each leaf with its batch axis first). An accumulator placed at a node of the accumulator
    tree receives that node's whole subtree of the result. The :class:`AccumulationType`
    members are accumulators built in.

    Example (the largest result over the micro-batches)::

        maximum = gx.microbatching.Accumulator(
            init=lambda s: jax.tree.map(lambda x: jnp.full(x.shape, -jnp.inf, x.dtype), s),
            update=lambda c, x, i: jax.tree.map(jnp.maximum, c, x),
            finalize=lambda c: c,
            aggregate=lambda rows: jax.tree.map(lambda r: jnp.max(r, axis=0), rows))
    """

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], Any]
    finalize: Callable[[Any], Any]
    aggregate: Callable[[Any], Any]


def _is_accumulation(x: Any) -> bool:
    return (isinstance(x, (AccumulationType, str, Accumulator))
            or type(x).__name__ == "AccumulationType")


def _per_leaf(init: Callable[[Any], Any], update: Callable[[Any, Any, Any], Any],
              finalize: Callable[[Any], Any], aggregate: Callable[[Any], Any]) -> Accumulator:
    """An accumulator of a subtree from functions of one leaf."""
    return Accumulator(
        init=lambda shapes: jax.tree.map(init, shapes),
        update=lambda carry, value, i: jax.tree.map(lambda c, v: update(c, v, i), carry, value),
        finalize=lambda carry: jax.tree.map(finalize, carry),
        aggregate=lambda rows: jax.tree.map(aggregate, rows))


def _floating_zeros(caller: str) -> Callable[[Any], jax.Array]:
    def zeros(s: Any) -> jax.Array:
        if not jnp.issubdtype(s.dtype, jnp.inexact):
            raise ValueError(f"{caller}: MEAN and RUNNING_MEAN need floating-point results, "
                             f"got {s.dtype}")
        return jnp.zeros(s.shape, s.dtype)
    return zeros


def _built_in(kind: AccumulationType, count: int, caller: str) -> Accumulator:
    """The accumulator of ``kind`` for ``count`` micro-batches."""
    mean_axis0 = functools.partial(jnp.mean, axis=0)
    if kind is AccumulationType.SUM:
        return _per_leaf(lambda s: jnp.zeros(s.shape, s.dtype), lambda c, v, i: c + v,
                         lambda c: c, functools.partial(jnp.sum, axis=0))
    if kind is AccumulationType.MEAN:
        return _per_leaf(_floating_zeros(caller), lambda c, v, i: c + v,
                         lambda c: c / jnp.asarray(count, c.dtype), mean_axis0)
    if kind is AccumulationType.RUNNING_MEAN:
        return _per_leaf(_floating_zeros(caller),
                         lambda c, v, i: c + (v - c) / (i + 1).astype(c.dtype),
                         lambda c: c, mean_axis0)

    def merge(carry: jax.Array) -> jax.Array:   # back to the order of the batch
        return jnp.moveaxis(carry, 0, 1).reshape((-1,) + carry.shape[2:])

    return _per_leaf(lambda s: jnp.zeros((count,) + tuple(s.shape), s.dtype),
                     lambda c, v, i: c.at[i].set(v), merge, lambda rows: rows)


def _accumulators(accumulator: Any, output: Any, count: int, caller: str) -> Any:
    """A tree of :class:`Accumulator` matching a prefix of ``output``, from ``accumulator`` (an
    accumulator, a kind or its name, or a tree of them)."""

    def one(x: Any) -> Accumulator:
        return x if isinstance(x, Accumulator) else _built_in(_accumulation(x), count, caller)

    accumulators = jax.tree.map(one, accumulator, is_leaf=_is_accumulation)
    try:
        jax.tree.map(lambda a, sub: None, accumulators, output, is_leaf=_is_accumulator)
    except ValueError as e:
        raise ValueError(f"{caller}: the accumulator {accumulator!r} is not a prefix of the "
                         f"structure of fun's output {jax.tree.structure(output)}") from e
    return accumulators


def _is_accumulator(x: Any) -> bool:
    return isinstance(x, Accumulator)


def _each(method: str, accumulators: Any, *trees: Any, extra: tuple = ()) -> Any:
    """``accumulator.<method>(subtree, ..., *extra)`` for every accumulator of the tree."""
    return jax.tree.map(lambda acc, *subs: getattr(acc, method)(*subs, *extra), accumulators,
                        *trees, is_leaf=_is_accumulator)


def reshape_batch_axis(tree: PyTree, microbatch_size: int, axis: int = 0) -> PyTree:
    """Split the batch axis of every leaf into ``(num_microbatches, microbatch_size)``.

    Column-major, as optax: micro-batch ``i`` holds the rows ``i, i + n, i + 2n, ...`` (``n``
    micro-batches), so a sharding of the batch axis carries over to the micro-batch axis.
    """

    def one(x):
        shape = x.shape[:axis] + (-1, microbatch_size) + x.shape[axis + 1:]
        return x.reshape(shape, order="F")

    return jax.tree.map(one, tree)


def microbatch(fun: Callable[..., Any], argnums: int | Sequence[int], microbatch_size: int | None,
               accumulator: Any = AccumulationType.SUM, *, argnames: str | Sequence[str] = (),
               in_axes: int | Sequence[int] = 0,
               num_real_microbatches: int | jax.Array | None = None) -> Callable[..., Any]:
    """``fun`` evaluated one micro-batch at a time, the results combined (optax's function).

    The arguments ``argnums`` (positions) and ``argnames`` (keywords) carry a batch axis
    (``in_axes``, one per batch argument or one for all); their batch size must be a multiple
    of ``microbatch_size``. ``fun`` runs on each micro-batch in a ``lax.fori_loop``; the
    results are combined by ``accumulator``: an :class:`AccumulationType` (or its name:
    ``"sum"``, ``"mean"``, ``"running_mean"``, ``"concat"``), or a tree of them matching a
    prefix of ``fun``'s output. ``num_real_microbatches`` stops the loop early (a traced
    number is fine: batches of varying size in one compiled program); ``MEAN`` still divides
    by the full number of micro-batches, ``RUNNING_MEAN`` by the ones run.

    ``microbatch_size=None`` returns ``fun`` itself.

    Example::

        loss_and_grad = gx.microbatch(jax.value_and_grad(loss), argnums=1,
                                      microbatch_size=16, accumulator="mean")
        loss, grads = loss_and_grad(params, batch)
    """
    if microbatch_size is None:
        return fun
    argnums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    argnames = (argnames,) if isinstance(argnames, str) else tuple(argnames)
    n_batch = len(argnums) + len(argnames)
    axes = (in_axes,) * n_batch if isinstance(in_axes, int) else tuple(in_axes)
    if len(axes) != n_batch:
        raise ValueError(f"microbatch: in_axes has {len(axes)} entries for {n_batch} batch "
                         "arguments (argnums + argnames)")

    @functools.wraps(fun)
    def run(*given: Any, **given_kwargs: Any) -> Any:
        args: list[Any] = list(given)
        kwargs: dict[str, Any] = dict(given_kwargs)
        batched: list[tuple[Any, Any, int]] = [(args, i, ax) for i, ax in zip(argnums, axes)]
        batched += [(kwargs, name, ax) for name, ax in zip(argnames, axes[len(argnums):])]
        sizes = {x.shape[ax] for holder, key, ax in batched
                 for x in jax.tree.leaves(holder[key])}
        if len(sizes) != 1:
            raise ValueError(f"microbatch: the batch arguments have different batch sizes "
                             f"{sorted(sizes)}")
        size = sizes.pop()
        if size % microbatch_size:
            raise ValueError(f"microbatch: the batch size {size} is not a multiple of "
                             f"microbatch_size={microbatch_size}")
        count = size // microbatch_size
        for holder, key, ax in batched:
            holder[key] = reshape_batch_axis(holder[key], microbatch_size, ax)

        def call(index):
            a, k = list(args), dict(kwargs)
            for i, ax in zip(argnums, axes):
                a[i] = jax.tree.map(lambda x, ax=ax: jnp.take(x, index, axis=ax), a[i])
            for name, ax in zip(argnames, axes[len(argnums):]):
                k[name] = jax.tree.map(lambda x, ax=ax: jnp.take(x, index, axis=ax), k[name])
            return fun(*a, **k)

        shapes = jax.eval_shape(call, 0)
        accumulators = _accumulators(accumulator, shapes, count, "microbatch")
        carry0 = _each("init", accumulators, shapes)

        def body(index, carry):
            return _each("update", accumulators, carry, call(index), extra=(index,))

        stop = count if num_real_microbatches is None else num_real_microbatches
        carry = jax.lax.fori_loop(0, stop, body, carry0)
        return _each("finalize", accumulators, carry)

    return run


def micro_vmap(fun: Callable[..., Any], in_axes: int | None | Sequence[int | None] = 0,
               out_axes: int = 0, *, microbatch_size: int | None = None,
               vmap_fn: Callable[..., Callable[..., Any]] = jax.vmap,
               accumulator: Any = AccumulationType.CONCAT,
               num_real_microbatches: int | jax.Array | None = None) -> Callable[..., Any]:
    """``jax.vmap(fun, in_axes)`` computed one micro-batch at a time (optax's function).

    The mapped arguments (``in_axes``: one axis for all positional arguments, or one per
    argument, ``None`` for an argument that is not mapped; keyword arguments are mapped over
    their leading axis, as ``jax.vmap`` does) are cut into micro-batches of
    ``microbatch_size`` rows; ``vmap_fn(fun, in_axes, 0)`` runs on each in turn. With the
    default ``accumulator=CONCAT`` the result is ``jax.vmap``'s, every output with its batch
    axis first; ``SUM``, ``MEAN`` (or ``RUNNING_MEAN``) reduce each output over the batch
    axis instead, so that the whole mapped output is never held (a tree of kinds matching a
    prefix of the output reduces its parts differently). ``microbatch_size=None`` maps the
    whole batch at once. ``num_real_microbatches`` as :func:`microbatch`.

    Only ``out_axes=0`` is supported, as in optax.

    Example::

        squares = gx.microbatching.micro_vmap(lambda x: x ** 2, microbatch_size=4)
        squares(jnp.arange(8.0))                 # [0, 1, 4, ..., 49], four rows at a time
    """
    if out_axes != 0:
        raise NotImplementedError(f"micro_vmap: out_axes must be 0, got {out_axes!r}")

    def reduced(*args: Any, mapped_kwargs: dict[str, Any], axes: tuple) -> Any:
        out = vmap_fn(fun, axes, 0)(*args, **mapped_kwargs)
        rows = jax.tree.leaves(out)[0].shape[0] if jax.tree.leaves(out) else 1
        # only ``aggregate`` is used here, which does not depend on the number of micro-batches
        return _each("aggregate", _accumulators(accumulator, out, rows, "micro_vmap"), out)

    @functools.wraps(fun)
    def run(*args: Any, **kwargs: Any) -> Any:
        axes = (in_axes,) * len(args) if not isinstance(in_axes, Sequence) else tuple(in_axes)
        if len(axes) != len(args):
            raise ValueError(f"micro_vmap: in_axes has {len(axes)} entries for {len(args)} "
                             "positional arguments")
        mapped = [i for i, ax in enumerate(axes) if ax is not None]
        batch_axes = [ax for ax in axes if ax is not None] + ([0] if kwargs else [])
        if not batch_axes:
            raise ValueError("micro_vmap: no argument is mapped (every in_axes is None)")
        inner = functools.partial(reduced, axes=axes)
        return microbatch(inner, argnums=mapped, microbatch_size=microbatch_size,
                          accumulator=accumulator, argnames="mapped_kwargs" if kwargs else (),
                          in_axes=batch_axes, num_real_microbatches=num_real_microbatches,
                          )(*args, mapped_kwargs=kwargs)

    return run


def micro_grad(fun: Callable[..., Any], has_aux: bool = False,
               argnums: int | Sequence[int] = 0, *, batch_argnums: int | Sequence[int] = 1,
               keep_batch_dim: bool = True, microbatch_size: int | None = None,
               accumulator: Any = AccumulationType.SUM,
               transform_fn: Callable[[Any], Any] = lambda g: g,
               metrics_fn: Callable[[Any], Any] = lambda g: None,
               num_real_microbatches: int | jax.Array | None = None) -> Callable[..., Any]:
    r"""Per-example gradients, transformed and combined, one micro-batch at a time (optax's).

    .. math:: G = \mathrm{acc}_{i}\ \mathrm{transform}\big(\nabla_\theta f(\theta, b_i)\big)

    Each example ``b_i`` of the arguments ``batch_argnums`` (their leading axis is the batch)
    gets its own gradient of ``fun`` with respect to ``argnums``; ``transform_fn`` is applied to
    it (per-example clipping, squares for a second moment, ...) and the results are combined
    over the batch by ``accumulator`` (``SUM`` by default, ``MEAN``, or a tree of kinds or
    :class:`Accumulator`\ s for the parts of ``transform_fn``'s output). The batch is processed
    ``microbatch_size`` examples at a time (:func:`micro_vmap`), so memory holds one
    micro-batch of per-example gradients. ``keep_batch_dim=True`` gives ``fun`` each example
    with a batch axis of size 1 (a loss written for batches works unchanged).

    Returns a function of ``fun``'s arguments giving ``(combined, aux)``, with ``aux`` an
    :class:`IndividualOutputs` of per-example ``values``, ``metrics`` (``metrics_fn`` of each
    example's gradient, before ``transform_fn``) and ``aux`` (``fun``'s auxiliary output when
    ``has_aux``).

    Example (per-example clipping, as in DP-SGD)::

        def clip(g):
            return gx.tree.scale(jnp.minimum(1.0, 1.0 / gx.tree.norm(g)), g)

        grads, aux = gx.microbatching.micro_grad(loss, batch_argnums=(1, 2),
                                                 transform_fn=clip,
                                                 microbatch_size=32)(params, x, y)
    """
    batch = (batch_argnums,) if isinstance(batch_argnums, int) else tuple(batch_argnums)
    if not batch:
        raise ValueError("micro_grad: batch_argnums must name at least one argument")
    with_aux = fun if has_aux else (lambda *a, **k: (fun(*a, **k), None))
    value_and_grad = jax.value_and_grad(with_aux, argnums, has_aux=True)

    def per_example(*args: Any, **kwargs: Any) -> tuple[Any, IndividualOutputs]:
        if keep_batch_dim:
            args = tuple(jax.tree.map(lambda x: jnp.expand_dims(x, 0), a) if i in batch else a
                         for i, a in enumerate(args))
        (value, aux), grad = value_and_grad(*args, **kwargs)
        return transform_fn(grad), IndividualOutputs(value, metrics_fn(grad), aux)

    in_axes = [0 if i in batch else None for i in range(max(batch) + 1)]

    def run(*args: Any, **kwargs: Any) -> tuple[Any, IndividualOutputs]:
        axes = in_axes + [None] * (len(args) - len(in_axes))
        mapped = micro_vmap(per_example, in_axes=axes, microbatch_size=microbatch_size,
                            accumulator=(accumulator, AccumulationType.CONCAT),
                            num_real_microbatches=num_real_microbatches)
        return mapped(*args, **kwargs)

    return run
