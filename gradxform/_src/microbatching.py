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

import enum
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from gradxform._src.types import PyTree

__all__ = ["AccumulationType", "microbatch", "micro_vmap", "reshape_batch_axis"]


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
                         f"'concat' (or optax's AccumulationType), got {value!r}") from None


def _is_accumulation(x: Any) -> bool:
    return isinstance(x, (AccumulationType, str)) or type(x).__name__ == "AccumulationType"


def _is_kind(x: Any) -> bool:
    return isinstance(x, AccumulationType)


def _kinds(accumulator: Any, output: Any, caller: str) -> Any:
    """One :class:`AccumulationType` per leaf of ``output``, from ``accumulator`` (a kind, or a
    tree of kinds matching a prefix of ``output``)."""
    kinds = jax.tree.map(_accumulation, accumulator, is_leaf=_is_accumulation)
    try:
        return jax.tree.map(lambda kind, sub: jax.tree.map(lambda _: kind, sub), kinds, output,
                            is_leaf=_is_kind)
    except ValueError as e:
        raise ValueError(f"{caller}: the accumulator {accumulator!r} is not a prefix of the "
                         f"structure of fun's output {jax.tree.structure(output)}") from e


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
        kinds = _kinds(accumulator, shapes, "microbatch")

        def start(kind, s):
            if kind in (AccumulationType.MEAN, AccumulationType.RUNNING_MEAN) and not \
                    jnp.issubdtype(s.dtype, jnp.inexact):
                raise ValueError("microbatch: MEAN and RUNNING_MEAN need floating-point "
                                 f"results, got {s.dtype}")
            if kind is AccumulationType.CONCAT:
                return jnp.zeros((count,) + s.shape, s.dtype)
            return jnp.zeros(s.shape, s.dtype)

        def add(kind, carry, value, index):
            if kind is AccumulationType.CONCAT:
                return carry.at[index].set(value)
            if kind is AccumulationType.RUNNING_MEAN:
                return carry + (value - carry) / (index + 1).astype(carry.dtype)
            return carry + value

        def finish(kind, carry):
            if kind is AccumulationType.MEAN:
                return carry / jnp.asarray(count, carry.dtype)
            if kind is AccumulationType.CONCAT:  # back to the order of the batch
                merged = jnp.moveaxis(carry, 0, 1)
                return merged.reshape((-1,) + carry.shape[2:])
            return carry

        is_kind = _is_kind
        carry0 = jax.tree.map(start, kinds, shapes, is_leaf=is_kind)

        def body(index, carry):
            out = call(index)
            return jax.tree.map(lambda kind, c, v: add(kind, c, v, index), kinds, carry, out,
                                is_leaf=is_kind)

        stop = count if num_real_microbatches is None else num_real_microbatches
        carry = jax.lax.fori_loop(0, stop, body, carry0)
        return jax.tree.map(finish, kinds, carry, is_leaf=is_kind)

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
        kinds = _kinds(accumulator, out, "micro_vmap")

        def one(kind: AccumulationType, x: Any) -> Any:
            if kind is AccumulationType.SUM:
                return jnp.sum(x, axis=0)
            if kind in (AccumulationType.MEAN, AccumulationType.RUNNING_MEAN):
                return jnp.mean(x, axis=0)
            return x

        return jax.tree.map(one, kinds, out, is_leaf=_is_kind)

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
