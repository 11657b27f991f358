r"""Complex params as pairs of real ones, for transformations that work on real numbers."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import dtypes
from gradxform._src.base import GradientTransformation, child, transformation

__all__ = ["split_real_and_imaginary", "SplitRealAndImaginaryState",
           "SplitRealAndImaginaryArrays"]


class SplitRealAndImaginaryArrays(NamedTuple):
    """A complex leaf as the inner transformation of :class:`split_real_and_imaginary` sees
    it: its real and imaginary parts."""

    real: Any
    imaginary: Any


class SplitRealAndImaginaryState(NamedTuple):
    """State of :class:`split_real_and_imaginary`: the inner transformation's state."""

    inner_state: Any


def _split(x: Any) -> Any:
    dtype = dtypes.leaf_dtype(x)
    if not jnp.issubdtype(dtype, jnp.complexfloating):
        return x
    real = dtypes.real_dtype(dtype)
    if isinstance(x, jax.ShapeDtypeStruct):
        part = jax.ShapeDtypeStruct(x.shape, real)
        return SplitRealAndImaginaryArrays(part, part)
    x = jnp.asarray(x)
    return SplitRealAndImaginaryArrays(jnp.real(x), jnp.imag(x))


def _is_pair(x: Any) -> bool:
    return isinstance(x, SplitRealAndImaginaryArrays)


class split_real_and_imaginary(GradientTransformation):
    r"""Run ``inner`` on the real and imaginary parts of complex leaves as separate real leaves.

    .. math:: z = x + iy \;\mapsto\; (x, y), \qquad
              (u_x, u_y) = \operatorname{inner}(g_x, g_y), \qquad u = u_x + i\,u_y

    Real leaves pass through as they are. A transformation that only knows real numbers
    (the parameter-free methods, Sophia, MoMo, which use real inner products) then optimises
    a complex model as if it had twice as many real weights, and one that does handle complex
    numbers behaves differently (Adam's second moment :math:`|g|^2` is shared by :math:`x` and
    :math:`y` natively, separate here).

    JAX's gradient of a real loss with respect to complex params is the *conjugate* of the
    descent direction: pass ``jax.tree.map(jnp.conj, grads)`` (as for every complex
    optimisation in JAX).

    Args:
      inner: the transformation run on the split leaves (gradxform or optax).

    Example::

        opt = gx.split_real_and_imaginary(gx.prodigy())
    """

    inner: GradientTransformation = child(converter=transformation)
    flat_support = "leaves"  # splits each complex leaf in two

    def init_state(self, params):
        return SplitRealAndImaginaryState(self.inner.init_state(jax.tree.map(_split, params)))

    def apply(self, updates, state, params, step):
        split_params = None if params is None else jax.tree.map(_split, params)
        inner_updates, inner_state = self.inner.apply(
            jax.tree.map(_split, updates), state.inner_state, split_params, step)

        def merge(u, out):
            if _is_pair(out):
                return jax.lax.complex(out.real, out.imaginary).astype(u.dtype)
            return out

        merged = jax.tree.map(merge, updates, inner_updates, is_leaf=_is_pair)
        return merged, SplitRealAndImaginaryState(inner_state)

    def links(self, state, step):
        return iter([("inner", self.inner, state.inner_state, step)])
