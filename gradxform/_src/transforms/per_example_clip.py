r"""Clipping a batch of per-example gradients and summing them (the aggregation step of DP-SGD):
``per_example_global_norm_clip`` and ``per_example_layer_norm_clip``.

These are functions, not transformations: they take gradients with a leading batch axis (as
``jax.vmap(jax.grad(loss))`` returns them), which no optimizer state is built for, and return
the clipped sum, shaped like the params, that a transformation then receives. Add the privacy
noise to that sum (:class:`add_noise` or your own Gaussian) and divide by the batch size before
the optimizer.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradxform._src import dtypes, tree
from gradxform._src.types import PyTree

__all__ = ["per_example_global_norm_clip", "per_example_layer_norm_clip"]


def _check_clip(where: str, name: str, value: Any) -> None:
    """A clip norm is a number or array >= 0; inf means no clipping. Checked when concrete."""
    if isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) or hasattr(value, "dtype")):
        raise TypeError(f"{where}: {name} must be a real number or an array, got {value!r}")
    try:  # NumPy, not jnp: inside jit a jnp op on a Python number would give a tracer
        values = [float(v) for v in np.ravel(np.asarray(value, dtype=np.float64))]
    except TypeError:
        raise TypeError(f"{where}: {name} must be a real number or an array, got {value!r}") \
            from None
    for v in values:
        if math.isnan(v) or v < 0:
            raise ValueError(f"{where}: {name} must be >= 0 (inf for no clipping), got {value!r}")


def _check_batch(where: str, grads: PyTree) -> int:
    leaves = jax.tree_util.tree_flatten_with_path(grads)[0]
    if not leaves:
        raise ValueError(f"{where}: grads has no leaves")
    sizes: dict[int, str] = {}
    for path, g in leaves:
        shape = tuple(jnp.shape(g))
        if not shape:
            raise ValueError(
                f"{where}: every leaf of grads needs a leading batch axis (one gradient per "
                f"example, as jax.vmap(jax.grad(loss)) returns), but the leaf at "
                f"{jax.tree_util.keystr(path) or 'the root'} is a scalar")
        sizes.setdefault(shape[0], jax.tree_util.keystr(path) or "the root")
    if len(sizes) > 1:
        shown = ", ".join(f"{n} at {p}" for n, p in sizes.items())
        raise ValueError(f"{where}: the leaves of grads have different batch sizes (leading "
                         f"axes): {shown}")
    return next(iter(sizes))


def _work(dtype: Any) -> Any:
    real = dtypes.real_dtype(dtype)
    return dtypes.wider(real, jnp.float32) if jnp.issubdtype(real, jnp.floating) else jnp.float32


def _out_dtype(dtype: Any) -> Any:
    return dtype if jnp.issubdtype(dtype, jnp.inexact) else jnp.dtype(jnp.float32)


def _clip_and_sum(grads: list, clip: Any) -> tuple[list, jax.Array]:
    """Clip each example of the leaves ``grads`` (one group) to ``clip``, sum over examples."""
    work = jnp.float32
    for g in grads:
        work = dtypes.wider(work, _work(g.dtype))
    # An example's norm leaves its non-finite entries out (the non-finite rule): its finite
    # entries are clipped as if those were 0, and the bad entry alone stays non-finite.
    squares = sum(jnp.sum(tree.abs_sq(tree.finite_part(g.astype(dtypes.wider(g.dtype, work))))
                          .astype(work), axis=tuple(range(1, g.ndim))) for g in grads)
    norms = jnp.sqrt(squares)
    c = jnp.asarray(clip, work)
    over = norms > c
    factors = jnp.where(over, c / jnp.where(over, norms, jnp.ones_like(norms)),
                        jnp.ones_like(norms))
    clipped = jnp.sum(factors < 1).astype(jnp.int32)
    sums = []
    for g in grads:
        out = _out_dtype(g.dtype)
        x = g.astype(dtypes.wider(out, work))
        f = factors.astype(dtypes.real_dtype(x.dtype)).astype(x.dtype)
        sums.append(jnp.tensordot(f, x, axes=1).astype(out))
    return sums, clipped


def per_example_global_norm_clip(grads: PyTree, l2_norm_clip: Any) -> tuple[PyTree, jax.Array]:
    r"""Clip each example's gradient to global norm ``l2_norm_clip`` and sum over the batch.

    With :math:`g_b` the gradient of example :math:`b` (all leaves together) and :math:`C` the
    clip norm:

    .. math:: \bar g = \sum_b \min\left(1, \frac{C}{\lVert g_b\rVert_2}\right) g_b,
              \qquad n = \#\left\{b : \lVert g_b\rVert_2 > C\right\}

    Norms are accumulated in float32 at least; a zero gradient stays zero, ``C = inf`` clips
    nothing and ``C = 0`` gives zero. The sums come back in the gradients' dtype (float32 for
    integer gradients). An example's norm leaves out its non-finite entries (inf, NaN): its
    finite entries are clipped as if those were 0, and each non-finite entry stays non-finite
    in its own place of the sum (the non-finite rule of ``docs/validation.md``).

    Conventions. As ``optax.per_example_global_norm_clip``; :math:`n` counts the examples whose
    factor is below 1 in the working precision. optax's norm of an example with an inf entry is
    inf, which scales that example's finite entries to 0 (and its inf entry to NaN).

    Args:
      grads: a tree whose every leaf has a leading batch axis of the same size (one gradient
        per example).
      l2_norm_clip: :math:`C` >= 0 (a number or an array; inf for no clipping).

    Returns:
      ``(sum, n)``: the clipped gradients summed over the batch (shaped like one example), and
      the int32 number of examples that were clipped.

    References:
      Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar, Zhang, *Deep Learning with Differential
      Privacy*, CCS 2016 (Algorithm 1).

    Example::

        per_example = jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, batch)
        summed, n_clipped = gx.per_example_global_norm_clip(per_example, 1.0)
    """
    where = "per_example_global_norm_clip"
    _check_clip(where, "l2_norm_clip", l2_norm_clip)
    _check_batch(where, grads)
    leaves, treedef = jax.tree.flatten(grads)
    sums, clipped = _clip_and_sum([jnp.asarray(g) for g in leaves], l2_norm_clip)
    return jax.tree.unflatten(treedef, sums), clipped


def per_example_layer_norm_clip(grads: PyTree, global_l2_norm_clip: Any,
                                uniform: bool = True) -> tuple[PyTree, PyTree]:
    r"""Clip each example's gradient layer by layer (leaf by leaf) and sum over the batch.

    Each of the :math:`K` leaves is clipped like :func:`per_example_global_norm_clip` with its
    own clip norm :math:`C_k`, chosen so that the whole example has norm at most :math:`C`:

    .. math:: C_k = \frac{C}{\sqrt K} \ (\text{uniform}), \qquad
              C_k = C\sqrt{\frac{D_k}{D}} \ (\text{otherwise}), \qquad
              \bar g_k = \sum_b \min\left(1, \frac{C_k}{\lVert g_{b,k}\rVert_2}\right) g_{b,k}

    with :math:`D_k` the size of one example of leaf :math:`k` and :math:`D` the total, so that
    :math:`\sum_k C_k^2 = C^2`. With one leaf this is :func:`per_example_global_norm_clip`.

    Conventions. As ``optax.per_example_layer_norm_clip``.

    Args:
      grads: a tree whose every leaf has a leading batch axis of the same size.
      global_l2_norm_clip: :math:`C` >= 0 (inf for no clipping).
      uniform: split :math:`C` equally over the leaves (True) or in proportion to the square
        root of their sizes (False).

    Returns:
      ``(sums, counts)``: two trees shaped like ``grads`` without the batch axis, the clipped
      sums per leaf and the int32 number of examples clipped in each leaf.

    References:
      McMahan, Ramage, Talwar, Zhang, *Learning Differentially Private Recurrent Language
      Models*, ICLR 2018 (section 3, per-layer clipping).
    """
    where = "per_example_layer_norm_clip"
    _check_clip(where, "global_l2_norm_clip", global_l2_norm_clip)
    _check_batch(where, grads)
    if not isinstance(uniform, (bool, jnp.bool_)):
        raise TypeError(f"{where}: uniform must be a bool, got {uniform!r}")
    leaves, treedef = jax.tree.flatten(grads)
    leaves = [jnp.asarray(g) for g in leaves]
    sizes = [math.prod(g.shape[1:]) for g in leaves]
    total = sum(sizes)
    sums, counts = [], []
    for g, size in zip(leaves, sizes):
        share = (1.0 / len(leaves)) ** 0.5 if uniform else (size / total) ** 0.5
        (s,), n = _clip_and_sum([g], global_l2_norm_clip * share)
        sums.append(s)
        counts.append(n)
    return jax.tree.unflatten(treedef, sums), jax.tree.unflatten(treedef, counts)
