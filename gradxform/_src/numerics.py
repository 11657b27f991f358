r"""Norms bounded from below whose derivatives stay finite: ``safe_norm`` and
``safe_root_mean_squares``; ``safe_int32_increment``.

``jnp.maximum(jnp.linalg.norm(x), m)`` has a NaN derivative at ``x = 0`` (the derivative of the
norm there is 0/0, and ``maximum`` differentiates both branches). These functions compute the
norm a second time from an input that cannot be zero where the bound applies, so the
derivative is exactly 0 there, which matters when differentiating through an optimizer
(meta-learning).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradxform._src import dtypes, tree

__all__ = ["safe_norm", "safe_root_mean_squares", "safe_int32_increment"]


def _work(x: jax.Array) -> jax.Array:
    """``x`` in at least float32 (complex stays complex)."""
    return x.astype(dtypes.wider(x.dtype, jnp.float32))


def safe_norm(x: Any, min_norm: Any, ord: Any = None, axis: Any = None,  # noqa: A002
              keepdims: bool = False) -> jax.Array:
    r"""``max(norm(x), min_norm)`` with a zero (not NaN) derivative where the norm is small.

    .. math:: \max\left(\lVert x\rVert, m\right)

    ``ord``, ``axis`` and ``keepdims`` are those of ``jnp.linalg.norm`` (the l2 norm of the
    flattened array by default). Where :math:`\lVert x\rVert \le m` the result is :math:`m`
    and its derivative with respect to :math:`x` is 0. Computed in float32 at least (float64
    for float64 input); the result has that (real) dtype.

    Conventions. As ``optax.safe_norm``, which returns the input's dtype.
    """
    x = _work(jnp.asarray(x))
    norm = jnp.linalg.norm(x, ord=ord, axis=axis, keepdims=True)
    small = norm <= tree.scalar(min_norm, norm.dtype)
    guarded = jnp.where(small, jnp.ones_like(x), x)
    result = jnp.linalg.norm(guarded, ord=ord, axis=axis, keepdims=keepdims)
    if not keepdims:
        small = jnp.squeeze(small, axis=axis)
    return jnp.where(small, tree.scalar(min_norm, result.dtype), result)


def safe_root_mean_squares(x: Any, min_rms: Any) -> jax.Array:
    r"""``max(rms(x), min_rms)`` with a zero (not NaN) derivative where the RMS is small.

    .. math:: \max\left(\sqrt{\operatorname{mean}(|x|^2)},\ m\right)

    over the whole array, computed in float32 at least; the result has that (real) dtype.

    Conventions. As ``optax.safe_root_mean_squares``, which returns the input's dtype.
    """
    x = _work(jnp.asarray(x))
    rms = jnp.sqrt(jnp.mean(tree.abs_sq(x)))
    small = rms <= tree.scalar(min_rms, rms.dtype)
    guarded = jnp.where(small, jnp.ones_like(x), x)
    return jnp.where(small, tree.scalar(min_rms, rms.dtype),
                     jnp.sqrt(jnp.mean(tree.abs_sq(guarded))))


def safe_int32_increment(count: Any) -> jax.Array:
    """``count + 1``, saturating at the dtype's maximum: the same as :func:`safe_increment`.

    optax's older name, kept as an alias there too.
    """
    return tree.safe_increment(count)
