"""Clipping: elementwise (``clip``) and by the global norm of the whole tree."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradxform._src import tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import AxisName, Hyper

__all__ = ["clip", "clip_by_global_norm"]


class clip(GradientTransformation):
    r"""Clip every coordinate to ``[-max_delta, max_delta]``.

    .. math:: u \leftarrow \min(\max(u, -\delta), \delta)

    Args:
      max_delta: :math:`\delta` > 0 (a number, array or schedule).
    """

    max_delta: Hyper = hyper(interval="(0, inf)")
    flat_support = "elementwise"

    def apply(self, updates, state, params, step):
        delta = step.value(self.max_delta)

        def one(u):
            d = tree.scalar(delta, u.dtype)
            return jnp.clip(u, -d, d)

        return jax.tree.map(one, updates), state


class clip_by_global_norm(GradientTransformation):
    r"""Rescale the whole tree so that its global l2 norm is at most ``max_norm``.

    .. math:: u \leftarrow u \cdot \frac{c}{\max(\lVert u \rVert_2, c)},
              \qquad \lVert u \rVert_2 = \sqrt{\textstyle\sum_{\text{leaves}} \sum u^2}

    The norm is accumulated in float32 (float64 if a leaf is float64), so bfloat16 trees do not
    overflow or lose the sum. The form :math:`c / \max(\lVert u\rVert, c)` never divides by
    zero: an all-zero tree stays zero, and derivatives with respect to ``max_norm`` and the
    updates stay finite (meta-gradients). A norm leaves out non-finite entries: an inf or NaN
    entry stays non-finite in its own place (scaled by the factor) and the finite entries are
    clipped by the norm of the finite ones, as if the bad entries were zero; combine with
    ``skip_non_finite`` to drop such steps.

    Args:
      max_norm: :math:`c` > 0 (a number, array or schedule).
      axis_name: inside ``shard_map``/``pmap`` over leaves that are shards of one tree, the
        mapped axis name(s) to sum the squared norm over, so every shard sees the global norm.

    References:
      Pascanu, Mikolov, Bengio, *On the difficulty of training recurrent neural networks*,
      ICML 2013.
    """

    max_norm: Hyper = hyper(interval="(0, inf)")
    axis_name: AxisName = static(default=None, kw_only=True)
    flat_support = "elementwise"  # one norm of the whole tree

    def apply(self, updates, state, params, step):
        norm = tree.global_norm(updates, axis_name=self.axis_name, ignore_non_finite=True)
        c = tree.scalar(step.value(self.max_norm), norm.dtype)
        factor = c / jnp.maximum(norm, c)
        return jax.tree.map(lambda u: tree.scale_by(u, factor), updates), state
