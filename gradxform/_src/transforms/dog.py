r"""DoG's step size: the distance travelled over the root of the summed squared gradients
(``scale_by_distance_over_gradients``, layer-wise)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.transforms import _leafwise
from gradxform._src.types import AxisName, DType, Hyper, Numeric

__all__ = ["scale_by_distance_over_gradients", "ScaleByDistanceOverGradientsState"]


class ScaleByDistanceOverGradientsState(NamedTuple):
    """State of :class:`scale_by_distance_over_gradients`.

    Attributes:
      max_dist: per leaf, a real scalar: the largest distance from the initial params so far
        (:math:`\\bar r_t`).
      grad_sum_of_squares: per leaf, a real scalar: the sum of the squared gradient norms so
        far (:math:`G_t`).
      init_params: the initial params :math:`x_0`.
      init_known: bool scalar: whether ``init_params`` (and ``max_dist``) hold values; False
        when ``init`` got ``jax.ShapeDtypeStruct`` leaves, until the first update fills them.
    """

    max_dist: Any
    grad_sum_of_squares: Any
    init_params: Any
    init_known: jax.Array


@docs.args
class scale_by_distance_over_gradients(GradientTransformation):
    r"""Scale each leaf's update by DoG's step size: distance travelled over summed gradients.

    Per leaf (layer-wise DoG, "LDoG"), with :math:`x_0` the initial params and
    :math:`r_\epsilon` = ``reps_rel``:

    .. math::
        \bar r_t = \max\left(\bar r_{t-1},\ \lVert x_t - x_0\rVert\right), \quad
        \bar r_0 = r_\epsilon (1 + \lVert x_0\rVert), \qquad
        G_t = G_{t-1} + \lVert g_t\rVert^2, \\
        u_t = s\,\frac{\bar r_t}{\sqrt{G_t + \epsilon}}\; g_t

    with :math:`x_t` the params given to this update and :math:`s` = ``global_scale``. The step
    size grows with the distance the params have moved, so no learning rate is needed: chain it
    with ``gx.scale(-1.0)`` (or ``global_scale=-1``) for descent. The authors recommend
    evaluating an average of the iterates (:class:`ema_params`). Norms are l2 over the whole
    leaf, accumulated in float32 at least. Needs ``params``.

    Conventions. As ``optax.scale_by_distance_over_gradients``, except: the initial params are
    kept in the accumulator dtype of the dtype policy (``param_dtype=None``: float32 for
    float32/bfloat16 params, float64 for float64) where optax defaults to float32; and the sums
    of squares are scalars per leaf (optax keeps arrays of shape ``(1,)``, which turns the
    update of a scalar param into shape ``(1,)``). When ``init`` gets ``jax.ShapeDtypeStruct``
    leaves, :math:`x_0` is the params of the first update.

    Args:
      reps_rel: :math:`r_\epsilon` > 0, the initial distance relative to :math:`1 + \lVert
        x_0\rVert` (the authors: 1e-6, or 1e-4 for networks with batch normalisation). A number
        or an array, not a schedule (it is used once).
      eps: :math:`\epsilon` > 0 added to :math:`G_t`.
      param_dtype: the dtype :math:`x_0` is kept in; ``None`` for the accumulator dtype.
      global_scale: :math:`s`, any finite number (usually 1 or -1).
      <<axis_name>>

    References:
      Ivgi, Hinder, Carmon, *DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size
      Schedule*, ICML 2023 (Algorithm 1 and section 4.2, layer-wise DoG).

    Example::

        opt = gx.ema_params(gx.chain(gx.scale_by_distance_over_gradients(), gx.scale(-1.0)),
                            decay=0.999)
    """

    reps_rel: Numeric = hyper(default=1e-6, interval="(0, inf)", schedule=False)
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    param_dtype: DType = static(default=None)
    global_scale: Hyper = hyper(default=1.0)
    axis_name: AxisName = static(default=None, kw_only=True)
    flat_support = "each_leaf"  # one distance per leaf

    def _initial_distance(self, x0):
        norm = _leafwise.norm(x0, self.axis_name)
        return tree.scalar(self.reps_rel, norm.dtype) * (1 + norm)

    def init_state(self, params):
        init_params, known = tree.params_copy(params, self.param_dtype)
        real = lambda p: _leafwise.work_dtype(dtypes.accumulator_dtype(  # noqa: E731
            dtypes.leaf_dtype(p)))
        if tree.is_abstract(params):
            max_dist = jax.tree.map(lambda p: jnp.zeros([], real(p)), params)
        else:
            max_dist = jax.tree.map(
                lambda p, x0: self._initial_distance(x0).astype(real(p)), params, init_params)
        sums = jax.tree.map(lambda p: jnp.zeros([], real(p)), params)
        return ScaleByDistanceOverGradientsState(max_dist, sums, init_params, known)

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        eps, scale = step.value(self.eps), step.value(self.global_scale)
        x0 = tree.fill_params_copy(state.init_params, state.init_known, params)
        # The initial distance is known unless init got abstract params (then it is computed
        # from the params of this first update).
        max_dist = jax.lax.cond(
            state.init_known, lambda: state.max_dist,
            lambda: jax.tree.map(lambda d, start: self._initial_distance(start).astype(d.dtype),
                                 state.max_dist, x0))

        def one(g, p, start, d, sums):
            moved = jnp.asarray(p).astype(start.dtype) - start
            d = jnp.maximum(d, _leafwise.norm(moved, self.axis_name).astype(d.dtype))
            sums = sums + _leafwise.sum_sq(g, self.axis_name).astype(sums.dtype)
            size = tree.scalar(scale, d.dtype) * d / jnp.sqrt(sums + tree.scalar(eps, d.dtype))
            return tree.scale_by(g, size), d, sums

        flat = jax.tree.map(one, updates, params, x0, max_dist, state.grad_sum_of_squares)
        new_updates, max_dist, sums = tree.unzip3(updates, flat)
        return new_updates, ScaleByDistanceOverGradientsState(
            max_dist, sums, x0, jnp.ones_like(state.init_known))
