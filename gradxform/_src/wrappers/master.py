"""A float32 master copy of low-precision params: ``master_weights``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, child, static, transformation
from gradxform._src.module import Invalid
from gradxform._src.types import DType

__all__ = ["master_weights", "MasterWeightsState"]


class MasterWeightsState(NamedTuple):
    """State of :class:`master_weights`.

    Attributes:
      master: the master copy, in ``dtype``, of every param narrower than ``dtype``
        (``None`` for the others).
      known: bool, whether the copy holds values (``False`` after ``init`` from
        ``jax.ShapeDtypeStruct`` shapes until the first update, which takes the params).
      inner: the inner transformation's state (built for the master copy).
    """

    master: Any
    known: jax.Array
    inner: Any


def _master_dtype(value: Any) -> np.dtype:
    try:
        dtype = dtypes.canonical(value)
    except TypeError:
        raise Invalid(f"must be a floating-point dtype, got {value!r}", TypeError) from None
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise Invalid(f"must be a floating-point dtype, got {value!r}", TypeError)
    return dtype


@docs.args
class master_weights(GradientTransformation):
    r"""Optimise a float32 master copy of bfloat16/float16 params (mixed precision).

    .. math:: \hat\theta_t = \hat\theta_{t-1} + \mathrm{inner}(g_t;\ \hat\theta_{t-1}),
              \qquad u_t = \mathrm{round}(\hat\theta_t) - \theta_{t-1}

    A bfloat16 param of size 1 moves only by steps of at least :math:`2^{-8}`: smaller updates
    (late in training, or with a small learning rate) round away and the param stops moving,
    silently. With this wrapper the inner optimizer sees (and updates) a copy of each param
    narrower than ``dtype``, kept in ``dtype`` in the state, and gradients cast to ``dtype``;
    the update returned moves the low-precision params to the copy rounded to their dtype, so
    ``apply_updates`` leaves ``params == master.astype(params.dtype)``. Small steps accumulate
    in the copy until they show. Params already as wide as ``dtype`` pass through unchanged
    (the inner optimizer sees them as they are).

    **Memory.** The copy costs ``dtype``'s size per low-precision param: 4 bytes per bfloat16
    or float16 param with float32, on top of the 2 bytes of the param itself and the inner
    optimizer's state (Adam: 8 bytes per param in float32 accumulators, the dtype policy's
    default). A bfloat16 model with Adam: 2 + 8 = 10 bytes per param without, 14 with.

    Conventions. The params handed to ``update`` are the low-precision ones (gradients are
    taken there); the update is computed from them, so a rounding of ``apply_updates`` (a step
    so large that the difference is not exact in the low dtype) is corrected at the next step.
    Put this wrapper outermost (an averaging wrapper may go around it).

    Args:
      <<inner>>
      dtype: the master copy's dtype (default float32); params narrower than it get a copy.

    Example::

        opt = gx.master_weights(gx.adamw(1e-4))   # bfloat16 params, float32 master copy

    References:
      Micikevicius et al., *Mixed Precision Training*, ICLR 2018 (the float32 master copy).
    """

    inner: GradientTransformation = child(converter=transformation)
    dtype: DType = static(default=jnp.float32, converter=_master_dtype)
    # one copy per narrow buffer; the inner transformation sees float32 buffers in their place
    flat_support = "elementwise"

    def _copies(self, leaf: Any) -> bool:
        dtype = dtypes.leaf_dtype(leaf)
        return bool(jnp.issubdtype(dtype, jnp.floating)
                    and np.dtype(dtype).itemsize < np.dtype(self.dtype).itemsize)

    def _master_view(self, params, master):
        """The params the inner optimizer sees: the copy where there is one."""
        return jax.tree.map(lambda p, m: p if m is None else m, params, master,
                            is_leaf=lambda x: x is None)

    def init_state(self, params):
        abstract = tree.is_abstract(params)

        def copy(p):
            if not self._copies(p):
                return None
            if abstract:
                return jnp.zeros(jnp.shape(p), self.dtype)
            return jnp.array(p, self.dtype)  # a copy: the state may be donated with params

        master = jax.tree.map(copy, params)
        view = jax.tree.map(lambda p, m: (p if m is None else
                                          jax.ShapeDtypeStruct(m.shape, m.dtype) if abstract
                                          else m), params, master, is_leaf=lambda x: x is None)
        return MasterWeightsState(master, jnp.asarray(not abstract),
                                  self.inner.init_state(view))

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        master = jax.tree.map(
            lambda m, p: None if m is None else jnp.where(
                state.known, m, dtypes.cast(jnp.asarray(p), m.dtype)),
            state.master, params, is_leaf=lambda x: x is None)
        view = self._master_view(params, master)
        grads = jax.tree.map(lambda g, m: g if m is None else dtypes.cast(g, m.dtype),
                             updates, master, is_leaf=lambda x: x is None)
        inner_updates, inner_state = self.inner.apply(grads, state.inner, view, step)
        new_master = jax.tree.map(
            lambda m, u: None if m is None else m + dtypes.cast(u, m.dtype),
            master, inner_updates, is_leaf=lambda x: x is None)

        def out(u_in, g, p, m):
            if m is None:
                return u_in
            p = jnp.asarray(p)
            target = m.astype(p.dtype).astype(m.dtype)  # the copy rounded to the params' dtype
            return (target - p.astype(m.dtype)).astype(g.dtype)

        new_updates = jax.tree.map(out, inner_updates, updates, params, new_master,
                                   is_leaf=lambda x: x is None)
        return new_updates, MasterWeightsState(new_master, jnp.ones([], jnp.bool_), inner_state)

    def links(self, state, step):
        return iter([(self.inner.name, self.inner, state.inner, step)])
