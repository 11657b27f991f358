r"""Layer-wise trust ratios: scale each leaf's update by (param norm) / (update norm).

Used by LARS, LAMB and Fromage. A *layer* is a leaf of the tree (a weight matrix, a bias). With
``axis_name`` the norms are completed across the shards of a leaf split along its leading
dimension (see :mod:`gradxform._src.transforms._leafwise`), inside ``jax.shard_map``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.transforms import _leafwise
from gradxform._src.types import AxisName, Hyper

__all__ = ["scale_by_trust_ratio", "scale_by_lars"]

def _ratio(numerator, denominator, zero, fallback):
    """``numerator / denominator`` where not ``zero``, ``fallback`` there (finite derivatives)."""
    safe = jnp.where(zero, jnp.ones_like(denominator), denominator)
    return jnp.where(zero, fallback, numerator / safe)


@docs.args
class scale_by_trust_ratio(GradientTransformation):
    r"""Scale each leaf's update by its trust ratio :math:`c\,\lVert\theta\rVert/\lVert u\rVert`.

    .. math::
        r = \frac{c\,\max(\lVert\theta\rVert, n_{min})}{\max(\lVert u\rVert, n_{min}) + \epsilon},
        \qquad u \leftarrow r\,u

    per leaf, with Frobenius norms accumulated in float32 at least; :math:`r` is
    ``ratio_at_zero_norm`` (default 1) where either norm is zero. Each leaf's step then has
    length :math:`c\,\eta\lVert\theta\rVert` (times the learning rate :math:`\eta` applied after):
    a step relative to the size of the layer. This is LAMB's ratio (with :math:`c = 1`) and the
    optax form of LARS's (``c`` = the trust coefficient :math:`\eta` of the LARS paper).

    Conventions. The update norm is that of the whole incoming update (for LARS with weight decay,
    :math:`\lVert g + \lambda\theta\rVert`); the LARS paper's denominator
    :math:`\lVert g\rVert + \lambda\lVert\theta\rVert` is :class:`scale_by_lars`. ``min_norm``
    clips both norms from below, as optax (LAMB's paper clips only the param norm, with
    :math:`\varphi`). Needs ``params``.

    Args:
      min_norm: :math:`n_{min}` >= 0, lower bound of both norms.
      trust_coefficient: :math:`c` >= 0.
      eps: :math:`\epsilon` >= 0 added to the denominator.
      <<ratio_at_zero_norm>>
      <<axis_name>>

    References:
      You, Li, Reddi, Hseu, Kumar, Bhojanapalli, Song, Demmel, Keutzer, Hsieh, *Large Batch
      Optimization for Deep Learning: Training BERT in 76 minutes*, ICLR 2020 (Algorithm 2).
      You, Gitman, Ginsburg, *Large Batch Training of Convolutional Networks*, 2017.
    """

    min_norm: Hyper = hyper(default=0.0, interval="[0, inf)")
    trust_coefficient: Hyper = hyper(default=1.0, interval="[0, inf)")
    eps: Hyper = hyper(default=0.0, interval="[0, inf)")
    ratio_at_zero_norm: Hyper = hyper(default=1.0, interval="[0, inf)", kw_only=True)
    axis_name: AxisName = static(default=None, kw_only=True)
    flat_support = "each_leaf"  # one ratio per leaf

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        min_norm, c = step.value(self.min_norm), step.value(self.trust_coefficient)
        eps, fallback = step.value(self.eps), step.value(self.ratio_at_zero_norm)

        def one(u, p):
            p_norm = _leafwise.norm(jnp.asarray(p), self.axis_name)
            u_norm = _leafwise.norm(u, self.axis_name)
            work = dtypes.wider(p_norm.dtype, u_norm.dtype)
            p_norm, u_norm = p_norm.astype(work), u_norm.astype(work)
            floor = tree.scalar(min_norm, work)
            p_norm = jnp.where(p_norm <= floor, floor, p_norm)
            u_norm = jnp.where(u_norm <= floor, floor, u_norm)
            zero = (p_norm == 0) | (u_norm == 0)
            r = _ratio(tree.scalar(c, work) * p_norm, u_norm + tree.scalar(eps, work), zero,
                       tree.scalar(fallback, work))
            return tree.scale_by(u, r)

        return jax.tree.map(one, updates, params), state


@docs.args
class scale_by_lars(GradientTransformation):
    r"""LARS's local learning rate with the paper's denominator, weight decay included.

    .. math::
        r = \frac{c\,\lVert\theta\rVert}{\lVert g\rVert + \lambda\lVert\theta\rVert + \epsilon},
        \qquad u \leftarrow r\,(g + \lambda\theta)

    per leaf (You et al. 2017, eq. 6 and Algorithm 1); :math:`r` is ``ratio_at_zero_norm`` where
    :math:`\lVert\theta\rVert` or the denominator is zero. The denominator is the triangle-
    inequality bound of :math:`\lVert g + \lambda\theta\rVert`, the norm optax and
    :class:`scale_by_trust_ratio` use after :class:`add_decayed_weights`; the two agree without
    weight decay. Needs ``params``.

    Args:
      trust_coefficient: :math:`c` (the paper's :math:`\eta`) >= 0.
      weight_decay: :math:`\lambda` >= 0 (the paper's :math:`\beta`).
      eps: :math:`\epsilon` >= 0 added to the denominator.
      <<ratio_at_zero_norm>>
      <<axis_name>>

    References:
      You, Gitman, Ginsburg, *Large Batch Training of Convolutional Networks*, 2017
      (Algorithm 1).
    """

    trust_coefficient: Hyper = hyper(default=0.001, interval="[0, inf)")
    weight_decay: Hyper = hyper(default=0.0, interval="[0, inf)")
    eps: Hyper = hyper(default=0.0, interval="[0, inf)")
    ratio_at_zero_norm: Hyper = hyper(default=1.0, interval="[0, inf)")
    axis_name: AxisName = static(default=None)
    flat_support = "each_leaf"  # one ratio per leaf

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        c, wd = step.value(self.trust_coefficient), step.value(self.weight_decay)
        eps, fallback = step.value(self.eps), step.value(self.ratio_at_zero_norm)

        def one(g, p):
            p = jnp.asarray(p)
            p_norm = _leafwise.norm(p, self.axis_name)
            g_norm = _leafwise.norm(g, self.axis_name)
            work = dtypes.wider(p_norm.dtype, g_norm.dtype)
            p_norm, g_norm = p_norm.astype(work), g_norm.astype(work)
            denominator = g_norm + tree.scalar(wd, work) * p_norm + tree.scalar(eps, work)
            zero = (p_norm == 0) | (denominator == 0)
            r = _ratio(tree.scalar(c, work) * p_norm, denominator, zero,
                       tree.scalar(fallback, work))
            u_work = dtypes.wider(g.dtype, work)
            decayed = g.astype(u_work) + tree.scalar(wd, u_work) * p.astype(u_work)
            return (decayed * r.astype(u_work)).astype(g.dtype)

        return jax.tree.map(one, updates, params), state
