r"""Per-leaf ("block") root mean squares: clipping updates to a maximum RMS, and scaling updates
by the params' RMS (Adafactor's update clipping and relative step size).

A *block* is a leaf of the tree (a weight matrix, a bias vector). With ``axis_name`` the RMS is
completed across the shards of a leaf split along its leading dimension (see
:mod:`gradxform._src.transforms._leafwise`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.transforms import _leafwise
from gradxform._src.types import AxisName, Hyper

__all__ = ["clip_by_block_rms", "scale_by_param_block_rms"]


@docs.args
class clip_by_block_rms(GradientTransformation):
    r"""Scale each leaf down so that its root mean square is at most ``threshold``.

    .. math:: u \leftarrow \frac{u}{\max\left(1, \operatorname{RMS}(u) / d\right)}, \qquad
              \operatorname{RMS}(u) = \sqrt{\operatorname{mean}(|u|^2)}

    per leaf. This is Adafactor's update clipping (Shazeer & Stern 2018, section 6), which bounds
    the step when the slowly decaying second moment lags a sudden rise of the gradients.

    Args:
      threshold: :math:`d` > 0 (the paper uses 1).
      <<axis_name>>

    References:
      Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*, ICML
      2018 (section 6, eq. 12).
    """

    threshold: Hyper = hyper(interval="(0, inf)")
    axis_name: AxisName = static(default=None, kw_only=True)
    flat_support = "each_leaf"  # one RMS per leaf

    def apply(self, updates, state, params, step):
        threshold = step.value(self.threshold)

        def one(u):
            rms = _leafwise.rms(u, self.axis_name)
            one_ = jnp.ones_like(rms)
            denom = jnp.maximum(one_, rms / tree.scalar(threshold, rms.dtype))
            work = dtypes.wider(u.dtype, rms.dtype)
            return (u.astype(work) / denom.astype(work)).astype(u.dtype)

        return jax.tree.map(one, updates), state


@docs.args
class scale_by_param_block_rms(GradientTransformation):
    r"""Multiply each leaf's update by the root mean square of its params (at least ``min_scale``).

    .. math:: u \leftarrow \max\left(\epsilon_2, \operatorname{RMS}(\theta)\right) u

    per leaf: Adafactor's *relative step size* (Shazeer & Stern 2018, section 8), which makes the
    learning rate a fraction of the typical size of the weights in each block. Needs ``params``.

    Args:
      min_scale: :math:`\epsilon_2` > 0, the scale used for leaves whose RMS is smaller (the
        paper's 1e-3), so that leaves initialised at zero still move.
      <<axis_name>>

    References:
      Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*, ICML
      2018 (section 8, Algorithms 4 and 5).
    """

    min_scale: Hyper = hyper(default=1e-3, interval="(0, inf)")
    axis_name: AxisName = static(default=None, kw_only=True)
    flat_support = "each_leaf"  # one RMS per leaf

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        min_scale = step.value(self.min_scale)

        def one(u, p):
            rms = _leafwise.rms(jnp.asarray(p), self.axis_name)
            floor = tree.scalar(min_scale, rms.dtype)
            return tree.scale_by(u, jnp.where(rms <= floor, floor, rms))

        return jax.tree.map(one, updates, params), state
