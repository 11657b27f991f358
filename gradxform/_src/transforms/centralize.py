r"""Gradient centralisation: subtract from each weight's gradient its mean (``centralize``)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradxform._src import dtypes
from gradxform._src.base import GradientTransformation, static

__all__ = ["centralize"]


def _axes(axis: Any) -> tuple[int, ...] | None:
    if axis is None:
        return None
    return (axis,) if isinstance(axis, int) else tuple(axis)


class centralize(GradientTransformation):
    r"""Gradient centralisation: subtract from each leaf of two or more dimensions its mean.

    For a leaf :math:`G` of shape :math:`(n_0, n_1, \ldots)` the mean is taken over all axes
    but the first (by default), separately for each index :math:`i` of the first axis:

    .. math:: u_{i,\cdot} \leftarrow G_{i,\cdot} - \operatorname{mean}_{j}\, G_{i,j}

    Leaves of fewer than two dimensions (biases, scales, scalars) are left unchanged, as in the
    paper. The mean is computed in float32 at least and the result returned in the updates'
    dtype.

    Conventions. Yong et al. centralise each *output unit*'s weight vector: PyTorch stores
    weights as ``(out, in, ...)``, so their mean runs over all axes but the first, which is
    optax's ``centralize`` and the default here. flax stores a ``Dense`` kernel as ``(in, out)``
    and a ``Conv`` kernel as ``(..., in, out)``: there the paper's rule is the mean over all
    axes but the *last*; pass ``axis=0`` for ``Dense`` kernels, ``axis=(0, 1, 2)`` for 2-d
    convolutions (route the leaves to different ``centralize`` values with
    :class:`partition`).

    Args:
      axis: keyword-only; the axis or axes to average over (negative numbers count from the
        end), or ``None`` (default) for all axes but the first.

    References:
      Yong, Huang, Hua, Zhang, *Gradient Centralization: A New Optimization Technique for Deep
      Neural Networks*, ECCV 2020 (eq. 4).

    Example::

        opt = gx.chain(gx.centralize(), gx.sgd(0.1, momentum=0.9))
    """

    axis: Any = static(default=None, kw_only=True)
    flat_support = "each_leaf"  # means within each leaf

    def check(self):
        ok = self.axis is None or isinstance(self.axis, int) or (
            isinstance(self.axis, tuple) and self.axis
            and all(isinstance(a, int) and not isinstance(a, bool) for a in self.axis))
        if not ok or isinstance(self.axis, bool):
            raise self.error(f"must be None, an int or a non-empty tuple of ints, got "
                             f"{self.axis!r}", "axis", TypeError)

    def init_state(self, params):
        axes = _axes(self.axis)
        if axes is not None:
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
                ndim = len(jnp.shape(leaf))
                if ndim >= 2 and any(not -ndim <= a < ndim for a in axes):
                    raise self.error(
                        f"={self.axis!r} is out of range for the leaf at "
                        f"{jax.tree_util.keystr(path) or 'the root'} of shape "
                        f"{tuple(jnp.shape(leaf))}", "axis")
        return ()

    def apply(self, updates, state, params, step):
        axes = _axes(self.axis)

        def one(g):
            if g.ndim < 2:
                return g
            reduce = tuple(range(1, g.ndim)) if axes is None else axes
            work = g.astype(dtypes.wider(g.dtype, jnp.float32))
            return (work - jnp.mean(work, axis=reduce, keepdims=True)).astype(g.dtype)

        return jax.tree.map(one, updates), state
