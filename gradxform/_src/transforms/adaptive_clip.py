r"""Adaptive gradient clipping (NFNets): clip each unit's update relative to its weights' norm."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradxform._src import dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import Hyper

__all__ = ["adaptive_grad_clip", "unit_axes"]

# The smallest update norm divided by, so that a zero update gives 0 and not 0/0.
_DIV_EPS = 1e-6


def unit_axes(shape: tuple[int, ...], axis: Any = None) -> tuple[int, ...] | None:
    """The axes a *unit*'s norm is taken over, for a leaf of ``shape``; ``None`` if unknown.

    With ``axis`` given, those axes. Otherwise by the leaf's rank, for the usual layouts of JAX
    libraries (inputs before outputs): a leaf that is a scalar or a vector once its size-1 axes
    are ignored is one unit; a ``(in, out)`` or ``(heads, in, out)``-style leaf of rank 2 or 3
    has one unit per slice along axis 0 removed, i.e. the norm over axis 0; a convolution
    kernel of rank 4 (``HWIO``) or 5 (``DHWIO``) the norm over all axes but the last. Any other
    rank has no default (``None``).
    """
    ndim = len(shape)
    if axis is not None:
        return (axis,) if isinstance(axis, int) else tuple(axis)
    if sum(1 for d in shape if d != 1) <= 1:
        return tuple(range(ndim))
    if ndim in (2, 3):
        return (0,)
    if ndim in (4, 5):
        return tuple(range(ndim - 1))
    return None


class adaptive_grad_clip(GradientTransformation):
    r"""Clip each unit's update to at most ``clipping`` times its weights' norm (AGC, NFNets).

    For each unit :math:`i` (a column of a dense kernel, an output filter of a convolution), with
    :math:`\lVert\cdot\rVert` the l2 norm over the unit's axes:

    .. math:: u_i \leftarrow \begin{cases} u_i & \lVert u_i\rVert < \lambda \max(\lVert
              \theta_i\rVert, \epsilon) \\[2pt] \lambda \max(\lVert\theta_i\rVert,
              \epsilon)\, \dfrac{u_i}{\max(\lVert u_i\rVert, 10^{-6})} & \text{otherwise}
              \end{cases}

    The ratio of step to weight is bounded per unit, which lets normaliser-free networks train
    with large batches. Norms are accumulated in float32 at least. Needs ``params``.

    Units (``axis=None``): a scalar or vector leaf (size-1 axes aside) is one unit; a leaf of
    rank 2 or 3 (``(in, out)``, ``(heads, in, out)``) has its norms over axis 0; a kernel of rank
    4 or 5 (``HWIO``, ``DHWIO``) over all axes but the last. Other ranks need ``axis``, and a
    leaf without a default is rejected by ``init``, naming it. A scalar leaf is always one unit
    (with any ``axis``).

    Conventions. As ``optax.adaptive_grad_clip`` (the same default units). Brock et al. apply it
    to every layer but the final classifier: route that one elsewhere with :class:`partition`.

    Args:
      clipping: :math:`\lambda` > 0, the largest ratio of a unit's update norm to its weights'
        norm (the paper uses 0.01 to 0.16, smaller for larger batches).
      eps: :math:`\epsilon` >= 0, the smallest weight norm used, so that units initialised at
        zero still move (the paper's 1e-3).
      axis: the axis or axes of every leaf (but scalars) that a unit's norm is taken over (an
        int or a tuple of ints), or ``None`` for the defaults above.

    References:
      Brock, De, Smith, Simonyan, *High-Performance Large-Scale Image Recognition Without
      Normalization*, ICML 2021 (section 4.1, eq. 3).

    Example::

        opt = gx.chain(gx.adaptive_grad_clip(0.01), gx.sgd(0.1, momentum=0.9))
    """

    clipping: Hyper = hyper(interval="(0, inf)")
    eps: Hyper = hyper(default=1e-3, interval="[0, inf)")
    axis: Any = static(default=None)
    flat_support = "each_leaf"  # unit norms within each leaf

    def check(self):
        ok = self.axis is None or (isinstance(self.axis, int) and not isinstance(self.axis, bool)) \
            or (isinstance(self.axis, tuple) and all(
                isinstance(a, int) and not isinstance(a, bool) for a in self.axis))
        if not ok:
            raise self.error(f"must be None, an int or a tuple of ints, got {self.axis!r}",
                             "axis", TypeError)

    def init_state(self, params):
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            shape = tuple(jnp.shape(leaf))
            axes = unit_axes(shape, self.axis)
            where = jax.tree_util.keystr(path) or "the root"
            if axes is None:
                raise self.error(
                    f"has no default units for the leaf at {where} of rank {len(shape)} (shape "
                    f"{shape}); pass axis= (the axes a unit's norm is taken over)")
            if shape and any(not -len(shape) <= a < len(shape) for a in axes):
                raise self.error(f"={self.axis!r} is out of range for the leaf at {where} of "
                                 f"shape {shape}", "axis")
        return ()

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        clipping, eps = step.value(self.clipping), step.value(self.eps)

        def unit_norm(x, axes):
            work = dtypes.wider(dtypes.real_dtype(x.dtype), jnp.float32)
            sq = tree.abs_sq(x.astype(dtypes.wider(x.dtype, work))).astype(work)
            return jnp.sqrt(jnp.sum(sq, axis=axes, keepdims=True))

        def one(g, p):
            p = jnp.asarray(p)
            axes = unit_axes(tuple(g.shape), self.axis)
            if g.ndim == 0:
                axes = ()
            g_norm, p_norm = unit_norm(g, axes), unit_norm(p, axes)
            dt = g_norm.dtype
            limit = tree.scalar(clipping, dt) * jnp.maximum(p_norm, tree.scalar(eps, dt))
            factor = limit / jnp.maximum(g_norm, tree.scalar(_DIV_EPS, dt))
            factor = jnp.where(g_norm < limit, jnp.ones_like(factor), factor)
            return tree.scale_by(g, jnp.broadcast_to(factor, g.shape))

        return jax.tree.map(one, updates, params), state
