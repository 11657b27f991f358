r"""Per-coordinate normalisation: ``scale_by_normalized``, a fixed-length step along each axis."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper
from gradxform._src.types import Hyper

__all__ = ["scale_by_normalized"]


@docs.args
class scale_by_normalized(GradientTransformation):
    r"""Divide every coordinate by its own magnitude, so each moves by (almost) the same length.

    .. math:: m = g, \qquad v = g^2, \qquad u = \frac{m}{\sqrt{v + \epsilon}}
              = \frac{g}{\sqrt{g^2 + \epsilon}}

    This is the normalised-gradient step that motivates Adam in Prince, *Understanding Deep
    Learning*, section 6.4 (equations 6.13 and 6.14): Adam without the moving averages. With a
    learning rate :math:`\alpha` every coordinate whose gradient is well above
    :math:`\sqrt{\epsilon}` moves by :math:`\alpha` downhill, so progress no longer depends on
    how steep each direction is; near a minimum it does not settle but bounces around it by about
    :math:`\alpha` (use a decaying learning rate). Where :math:`|g| \ll \sqrt\epsilon` the step is
    plain gradient descent with rate :math:`\alpha/\sqrt\epsilon`. It is the smooth version of
    :class:`scale_by_sign` (the limit :math:`\epsilon \to 0`).

    Conventions. ``eps`` is inside the square root, as in the textbook. For complex updates
    :math:`g^2` is :math:`|g|^2`: each coordinate keeps its phase and gets (almost) unit modulus.
    The result is computed in float32 at least and returned in the updates' dtype.

    Args:
      <<eps>>

    References:
      Prince, *Understanding Deep Learning*, MIT Press 2023, section 6.4, eqs. 6.13-6.14.
    """

    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    flat_support = "elementwise"

    def apply(self, updates, state, params, step):
        eps = step.value(self.eps)

        def one(g):
            work = dtypes.wider(g.dtype, jnp.float32)
            g_w = g.astype(work)
            v = tree.abs_sq(g_w)
            inv = jax.lax.rsqrt(v + dtypes.safe_eps(eps, v.dtype))
            return (g_w * inv.astype(work)).astype(g.dtype)

        return jax.tree.map(one, updates), state
