r"""Scaling by a norm: each leaf by the norm of its params (``scale_by_param_block_norm``), the
whole tree by the inverse of its own norm (``normalize_by_update_norm``).

A *block* is a leaf of the tree (a weight matrix, a bias vector). With ``axis_name`` the norms
are completed across shards (see :mod:`gradxform._src.transforms._leafwise` for leaves split
along their leading dimension, and :func:`gradxform.global_norm` for the whole tree).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradxform._src import docs, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.transforms import _leafwise
from gradxform._src.types import AxisName, Hyper

__all__ = ["scale_by_param_block_norm", "normalize_by_update_norm"]


@docs.args
class scale_by_param_block_norm(GradientTransformation):
    r"""Multiply each leaf's update by the l2 norm of its params (at least ``min_scale``).

    .. math:: u \leftarrow \max\left(\epsilon_2, \lVert\theta\rVert_2\right) u

    per leaf, the norm taken over the whole leaf (Frobenius for matrices) and accumulated in
    float32 at least: a step relative to the size of each block. :class:`scale_by_param_block_rms`
    is the same with the root mean square, which does not grow with the block's size. Needs
    ``params``.

    Conventions. As ``optax.scale_by_param_block_norm``: a leaf whose norm is at most
    ``min_scale`` is scaled by ``min_scale``, and the derivative of the factor with respect to
    the params is zero there.

    Args:
      min_scale: :math:`\epsilon_2` > 0, the factor used for leaves of smaller norm (so that
        leaves initialised at zero still move).
      <<axis_name>>
    """

    min_scale: Hyper = hyper(default=1e-3, interval="(0, inf)")
    axis_name: AxisName = static(default=None, kw_only=True)
    flat_support = "each_leaf"  # one norm per leaf

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        min_scale = step.value(self.min_scale)

        def one(u, p):
            norm = _leafwise.norm(jnp.asarray(p), self.axis_name)
            floor = tree.scalar(min_scale, norm.dtype)
            return tree.scale_by(u, jnp.where(norm <= floor, floor, norm))

        return jax.tree.map(one, updates, params), state


class normalize_by_update_norm(GradientTransformation):
    r"""Divide the updates by their global l2 norm (plus ``eps``), times ``scale_factor``.

    .. math:: u \leftarrow \frac{s\, u}{\lVert u\rVert_2 + \epsilon},
              \qquad \lVert u\rVert_2 = \sqrt{\textstyle\sum_{\text{leaves}}\sum |u|^2}

    The step then has length :math:`|s|` (a little less while :math:`\lVert u\rVert` is not
    large compared with :math:`\epsilon`), whatever the size of the gradient: normalised
    gradient descent with the whole tree as one vector (:class:`scale_by_normalized` normalises
    each coordinate). The norm is accumulated in float32 at least.

    Conventions. As ``optax.normalize_by_update_norm``; a negative ``scale_factor`` (``-1``)
    makes it a descent step without a learning rate.

    Args:
      scale_factor: :math:`s`, any finite number (a number, an array or a schedule).
      eps: :math:`\epsilon` > 0, added to the norm so that zero updates stay zero.
      axis_name: keyword-only; inside ``shard_map``/``pmap`` over leaves that are shards of one
        tree, the mapped axis name(s) to sum the squared norm over.

    Example::

        opt = gx.chain(gx.normalize_by_update_norm(), gx.scale_by_learning_rate(0.1))
    """

    scale_factor: Hyper = hyper(default=1.0)
    eps: Hyper = hyper(default=1e-6, interval="(0, inf)")
    axis_name: AxisName = static(default=None, kw_only=True)
    flat_support = "elementwise"  # one norm of the whole tree

    def apply(self, updates, state, params, step):
        norm = tree.global_norm(updates, axis_name=self.axis_name)
        s, eps = step.value(self.scale_factor), step.value(self.eps)
        factor = tree.scalar(s, norm.dtype) / (norm + tree.scalar(eps, norm.dtype))
        return jax.tree.map(lambda u: tree.scale_by(u, factor), updates), state
