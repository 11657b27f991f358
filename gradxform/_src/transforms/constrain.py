r"""Constraints on the updates: ``zero_nans`` (NaN entries become zeros) and
``keep_params_nonnegative`` (no update takes a param below zero)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import dtypes
from gradxform._src.base import GradientTransformation

__all__ = ["zero_nans", "ZeroNansState", "keep_params_nonnegative"]


class ZeroNansState(NamedTuple):
    """State of :class:`zero_nans`: per leaf, a bool scalar, whether its last updates held a NaN."""

    found_nan: Any


class zero_nans(GradientTransformation):
    r"""Replace every NaN entry of the updates by zero, and record which leaves held one.

    .. math:: u_i \leftarrow \begin{cases} 0 & u_i \text{ is NaN} \\ u_i & \text{otherwise}
              \end{cases}

    The state holds one bool scalar per leaf, True if that leaf's last updates held a NaN
    (False after ``init``); it is there to be logged and does not change the rule. Infinities
    are kept: to drop a whole step whose gradients hold an inf or a NaN, use
    :class:`skip_non_finite`. A complex entry is NaN if either part is.

    Conventions. As ``optax.zero_nans``.

    Example::

        opt = gx.chain(gx.zero_nans(), gx.adam(1e-3))
        ...
        opt_state.inner[0].found_nan      # which leaves had NaN gradients at the last step
    """

    flat_support = "each_leaf"  # one flag per leaf

    def init_state(self, params):
        return ZeroNansState(jax.tree.map(lambda p: jnp.zeros([], jnp.bool_), params))

    def apply(self, updates, state, params, step):
        found = jax.tree.map(lambda u: jnp.any(jnp.isnan(u)), updates)
        cleaned = jax.tree.map(lambda u: jnp.where(jnp.isnan(u), jnp.zeros_like(u), u), updates)
        return cleaned, ZeroNansState(found)


class keep_params_nonnegative(GradientTransformation):
    r"""Change the updates so that no param goes below zero: such a param is set to zero instead.

    .. math:: u_i \leftarrow \begin{cases} -\theta_i & \theta_i + u_i < 0 \\ u_i &
              \text{otherwise} \end{cases} \qquad\text{so}\qquad \theta_i + u_i \ge 0

    This is the projection onto the nonnegative orthant of a step that left it. It acts on the
    final updates, so it must come last in a chain (after the learning rate). A param that is
    already negative is moved to zero by the first update. Needs ``params``; complex params are
    rejected (they have no order).

    Conventions. As ``optax.keep_params_nonnegative``. For a projection of the params
    themselves, ``jax.tree.map(lambda p: jnp.maximum(p, 0), params)`` after ``apply_updates``
    gives the same result.

    Example::

        opt = gx.chain(gx.adam(1e-2), gx.keep_params_nonnegative())
    """

    flat_support = "elementwise"

    def init_state(self, params):
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            dtype = dtypes.leaf_dtype(leaf)
            if jnp.issubdtype(dtype, jnp.complexfloating):
                raise self.error(
                    f"does not support complex params (got {dtype.name} at "
                    f"{jax.tree_util.keystr(path) or 'the root'}): complex numbers have no "
                    "order, so 'nonnegative' has no meaning for them", exc=TypeError)
        return ()

    def apply(self, updates, state, params, step):
        params = self.require_params(params)

        def one(u, p):
            p = dtypes.cast(jnp.asarray(p), u.dtype)
            return jnp.where(p + u < 0, -p, u)

        return jax.tree.map(one, updates, params), state
