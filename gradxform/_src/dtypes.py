"""The dtype policy, in one place.

1. **Updates come back in the gradients' dtype.** Every transformation casts what it returns to
   the dtype of the updates it received; hyperparameters never promote it.
2. **``apply_updates`` returns params in their own dtype** (the sum is formed in the wider of
   the two dtypes, then cast back).
3. **Accumulators of low-precision params are float32.** Moments, traces and sums of squares of
   bfloat16/float16 params are kept in float32 by default (float64 params keep float64, complex
   params keep a complex accumulator of at least complex64, second moments of complex params are
   real). bfloat16 cannot even hold ``b2 = 0.999`` (it rounds to 1.0), and its 8-bit mantissa
   freezes a moment once gradients shrink. ``mu_dtype=``, ``nu_dtype=`` and
   ``accumulator_dtype=`` override the default per transformation.
4. **Arithmetic happens in the accumulator's dtype.** A transformation casts the incoming update
   and every scalar hyperparameter to the accumulator's dtype explicitly, computes, stores the
   accumulator, and casts the result back to the update's dtype. Scalars are never left to
   implicit promotion; the test suite runs with ``jax_numpy_dtype_promotion="strict"``.
5. **eps is safe for the dtype it is used in**: an ``eps`` below the dtype's smallest normal
   number (in float16, 1e-8 rounds to 0 and 1e-7 to a subnormal whose reciprocal overflows) is
   raised to that smallest normal, so a zero gradient never gives 0/0 or 0 * inf.
"""

from __future__ import annotations

import functools
from typing import Any, overload

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["canonical", "accumulator_dtype", "real_dtype", "safe_eps", "leaf_dtype", "cast",
           "wider", "largest_decay_below_one"]


def wider(*dtypes_: Any) -> np.dtype:
    """The dtype both (all) arguments fit in, by JAX's standard lattice.

    The policy decides dtypes explicitly, so it asks the standard lattice even when the user runs
    with strict promotion (which only forbids *implicit* promotion in arithmetic).
    """
    return _wider(tuple(np.dtype(d) for d in dtypes_))


@functools.cache
def _wider(dtypes_: tuple[np.dtype, ...]) -> np.dtype:
    # called for every leaf of every tree operation: the lattice is asked once per dtype pair
    with jax.numpy_dtype_promotion("standard"):
        out = dtypes_[0]
        for d in dtypes_[1:]:
            out = np.dtype(jnp.promote_types(out, d))
    return out


@overload
def canonical(dtype: None) -> None: ...


@overload
def canonical(dtype: Any) -> np.dtype: ...


def canonical(dtype: Any) -> np.dtype | None:
    """``dtype`` as JAX will actually use it (float64 becomes float32 without x64)."""
    if dtype is None:
        return None
    return jax.dtypes.canonicalize_dtype(np.dtype(dtype))


def leaf_dtype(x: Any) -> np.dtype:
    """The dtype of an array, a ShapeDtypeStruct or a Python number (as JAX sees it)."""
    dtype = getattr(x, "dtype", None)
    if dtype is not None:
        return np.dtype(dtype)
    return np.dtype(jnp.result_type(x))


def accumulator_dtype(param_dtype: Any, override: Any = None) -> np.dtype:
    """The dtype of an accumulator kept for a leaf of ``param_dtype`` (rule 3)."""
    if override is not None:
        return canonical(override)
    dtype = np.dtype(param_dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return canonical(wider(dtype, jnp.complex64))
    if jnp.issubdtype(dtype, jnp.floating):
        return canonical(wider(dtype, jnp.float32))
    raise TypeError(
        f"gradxform optimises floating-point leaves only, got a leaf of dtype {dtype}; "
        "filter integer and boolean leaves out of the params (see gradxform.partition)."
    )


def real_dtype(dtype: Any) -> np.dtype:
    """The real counterpart of a complex dtype (the dtype of ``|z|^2``)."""
    dtype = np.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return np.dtype(jnp.finfo(dtype).dtype)
    return dtype


def safe_eps(eps: Any, dtype: Any) -> jax.Array:
    """``eps`` cast to ``dtype``, raised to the dtype's smallest normal number if below it.

    In float16, ``1e-8`` rounds to 0 (a zero gradient gives 0/0) and ``1e-7`` to a subnormal
    whose reciprocal overflows to inf (0 * inf = nan); the smallest normal (6.1e-5) is safe.
    """
    dtype = real_dtype(dtype)
    tiny = np.asarray(jnp.finfo(dtype).tiny, dtype)
    if isinstance(eps, (int, float)):
        cast_eps = np.asarray(eps, dtype)
        if eps > 0 and cast_eps < tiny:
            cast_eps = tiny
        return jnp.asarray(cast_eps, dtype)
    traced_eps = jnp.asarray(eps, dtype)
    return jnp.where((traced_eps < tiny) & (jnp.asarray(eps) > 0), jnp.asarray(tiny, dtype),
                     traced_eps)


def cast(x: jax.Array, dtype: Any) -> jax.Array:
    """Cast an array explicitly, keeping complex values complex-to-real safe."""
    if x.dtype == dtype:
        return x
    if jnp.issubdtype(x.dtype, jnp.complexfloating) and not jnp.issubdtype(
        dtype, jnp.complexfloating
    ):
        raise TypeError(f"cannot cast complex {x.dtype} to real {np.dtype(dtype)} without loss")
    return x.astype(dtype)


def largest_decay_below_one(value: Any, dtype: Any) -> float | None:
    """If the decay rate ``value`` rounds to 1 in ``dtype``, the largest rate that does not.

    ``b2 = 0.999`` is 1.0 in bfloat16: a moment kept in that dtype would never forget. ``None``
    when the rate fits (or is not a Python number, or no dtype was requested).
    """
    if dtype is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    dtype = real_dtype(canonical(dtype))
    if value < 1 and float(np.asarray(value, dtype)) >= 1.0:
        return float(np.nextafter(np.asarray(1.0, dtype), np.asarray(0.0, dtype)))
    return None
