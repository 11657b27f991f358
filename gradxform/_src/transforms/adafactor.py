r"""Adafactor's second moments: factored into row and column statistics for matrices."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.transforms import _leafwise
from gradxform._src.types import AxisName, DType, Hyper

__all__ = ["scale_by_factored_rms", "FactoredRmsState"]


class FactoredRmsState(NamedTuple):
    """State of :class:`scale_by_factored_rms`, three trees shaped like the params.

    ``v_row``/``v_col`` hold the row and column statistics of factored leaves, ``v`` the full
    second moment of the others; the entry a leaf does not use is an empty array of shape (0,).
    """

    v_row: Any
    v_col: Any
    v: Any


def factored_dims(shape: tuple[int, ...], factored: bool,
                  min_dim_size_to_factor: int) -> tuple[int, int] | None:
    """``(d1, d0)``, the second-largest and largest dimensions, or None if not factored.

    A leaf is factored if it has at least two dimensions and the second largest is at least
    ``min_dim_size_to_factor`` (ties broken as ``numpy.argsort`` does, like optax).
    """
    if not factored or len(shape) < 2:
        return None
    order = np.argsort(shape)
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


@docs.args
class scale_by_factored_rms(GradientTransformation):
    r"""Divide by a factored estimate of the root mean square of the gradients (Adafactor).

    For a leaf with at least two dimensions, the second-moment matrix is kept as its row and
    column means (a rank-1 factorisation), taken over the two largest dimensions:

    .. math::
        \hat\beta_t = 1 - t^{-c}, \qquad G^2_t = g_t^2 + \epsilon_1, \\
        R_t = \hat\beta_t R_{t-1} + (1-\hat\beta_t)\operatorname{mean}_{cols}(G^2_t), \qquad
        C_t = \hat\beta_t C_{t-1} + (1-\hat\beta_t)\operatorname{mean}_{rows}(G^2_t), \\
        \hat V_t = \frac{R_t C_t^\top}{\operatorname{mean}(R_t)}, \qquad
        u_t = g_t / \sqrt{\hat V_t}

    (:math:`t` the 1-based step less ``step_offset``). Other leaves keep the full
    :math:`V_t = \hat\beta_t V_{t-1} + (1-\hat\beta_t) G^2_t`. Memory for an :math:`n\times m`
    matrix is :math:`n + m` instead of :math:`nm`. Means instead of the paper's sums give the
    same :math:`\hat V`.

    The increasing decay :math:`\hat\beta_t = 1 - t^{-c}` (``decay_rate`` :math:`c`, 0.8 in the
    paper) makes the estimate the plain average of all past squares for :math:`c = 1` and needs
    no bias correction (:math:`\hat\beta_1 = 0`).

    Conventions. As optax's ``scale_by_factored_rms``: means over the largest dimension give
    :math:`R`, ``epsilon`` is added to :math:`g^2` before averaging, ``step_offset`` shifts the
    decay schedule (steps before it count as step 1). The decay is computed in the accumulator
    dtype (optax: always float32). optax also takes the decay schedule as a function
    (``decay_rate_fn``); here it is always :math:`1 - t^{-c}`, optax's default. Complex
    gradients use :math:`|g|^2`.

    Sharding. With ``axis_name`` each leaf is split along its leading dimension (scalars
    replicated). Which dimensions are factored is decided from the global shape (the local
    leading size times the axis size), and a mean that crosses the split dimension (over rows
    or over columns, whichever it is) is completed with ``psum``; the result equals the
    unsharded one. Call ``init`` inside the mapped context too (it then builds the state of
    the local shards).

    Args:
      factored: use the factored estimate for leaves of rank >= 2 (else a full second moment).
      decay_rate: the exponent :math:`c` >= 0 of the decay schedule.
      step_offset: whole number >= 0 subtracted from the step (for fine-tuning).
      min_dim_size_to_factor: factor only if the second-largest dimension has at least this
        size (optax's default 128).
      epsilon: :math:`\epsilon_1` > 0 added to the squared gradients (the paper's 1e-30).
      <<nu_dtype>>
      <<axis_name>>

    References:
      Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*, ICML
      2018 (Algorithms 4 and 5, section 7 for the decay schedule).
    """

    factored: bool = static(default=True)
    decay_rate: Hyper = hyper(default=0.8, interval="[0, inf)")
    step_offset: Hyper = hyper(default=0, interval="[0, inf)", integer=True)
    min_dim_size_to_factor: int = static(default=128)
    epsilon: Hyper = hyper(default=1e-30, interval="(0, inf)")
    nu_dtype: DType = static(default=None, kw_only=True)
    axis_name: AxisName = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "each_leaf"  # row and column statistics of each leaf

    def check(self):
        if not isinstance(self.min_dim_size_to_factor, (int, np.integer)) or isinstance(
                self.min_dim_size_to_factor, bool) or self.min_dim_size_to_factor < 1:
            raise self.error(f"must be a whole number >= 1, got {self.min_dim_size_to_factor!r}",
                             "min_dim_size_to_factor")

    def _dims(self, x):
        shape = _leafwise.global_shape(x, self.axis_name)
        return factored_dims(shape, self.factored, self.min_dim_size_to_factor)

    def init_state(self, params):
        def one(p):
            acc = dtypes.real_dtype(dtypes.accumulator_dtype(dtypes.leaf_dtype(p),
                                                             self.nu_dtype))
            shape = tuple(jnp.shape(p))
            dims = self._dims(p)
            if dims is None:  # distinct empty arrays: no two state leaves share a buffer
                return jnp.zeros((0,), acc), jnp.zeros((0,), acc), jnp.zeros(shape, acc)
            d1, d0 = dims
            row = shape[:d0] + shape[d0 + 1:]
            col = shape[:d1] + shape[d1 + 1:]
            return jnp.zeros(row, acc), jnp.zeros(col, acc), jnp.zeros((0,), acc)

        return FactoredRmsState(*tree.unzip3(params, jax.tree.map(one, params)))

    def apply(self, updates, state, params, step):
        eps = step.value(self.epsilon)
        c = step.value(self.decay_rate)
        offset = step.value(self.step_offset)

        def one(g, v_row, v_col, v):
            acc = v_row.dtype
            t = jnp.maximum(step.count.astype(acc) - tree.scalar(offset, acc),
                            jnp.zeros([], acc)) + jnp.ones([], acc)
            keep, fresh = tree.complement(1 - t ** (-tree.scalar(c, acc)))
            keep, fresh = keep.astype(acc), fresh.astype(acc)
            g2 = tree.abs_sq(g.astype(dtypes.wider(g.dtype, acc))).astype(acc)
            g2 = g2 + dtypes.safe_eps(eps, acc)
            work = dtypes.wider(g.dtype, acc)
            dims = self._dims(g)
            if dims is None:
                v = keep * v + fresh * g2
                u = g.astype(work) * (v ** -0.5).astype(work)
                return u.astype(g.dtype), v_row, v_col, v
            d1, d0 = dims
            split = _leafwise.is_split(g, self.axis_name)
            g2 = tree.finite_part(g2)  # an inf entry must not poison its row and column
            v_row = keep * v_row + fresh * _leafwise.mean_along(g2, d0, split, self.axis_name)
            v_col = keep * v_col + fresh * _leafwise.mean_along(g2, d1, split, self.axis_name)
            reduced_d1 = d1 - 1 if d1 > d0 else d1
            row_mean = _leafwise.mean_along(v_row, reduced_d1, split and d0 != 0,
                                            self.axis_name, keepdims=True)
            row_factor = (v_row / row_mean) ** -0.5
            col_factor = v_col ** -0.5
            u = (g.astype(work) * jnp.expand_dims(row_factor, d0).astype(work)
                 * jnp.expand_dims(col_factor, d1).astype(work))
            return u.astype(g.dtype), v_row, v_col, v

        out = jax.tree.map(one, updates, state.v_row, state.v_col, state.v)
        u, v_row, v_col, v = tree.unzip(updates, out, 4)
        return u, FactoredRmsState(v_row, v_col, v)
