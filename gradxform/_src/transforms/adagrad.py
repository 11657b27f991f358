"""AdaGrad's scaling: divide by the root of the sum of past squared updates (``scale_by_rss``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_rss", "ScaleByRssState"]


class ScaleByRssState(NamedTuple):
    """State of :class:`scale_by_rss`: the running sum of squared updates."""

    sum_of_squares: Any


@docs.args
class scale_by_rss(GradientTransformation):
    r"""Divide by the root of the sum of all past squared updates (AdaGrad).

    .. math::
        G_t = G_{t-1} + g_t^2, \qquad u_t = \frac{g_t}{\sqrt{G_t + \epsilon}}
        \quad (u_t = 0 \text{ where } G_t = 0)

    Conventions. ``eps`` inside the root and ``initial_accumulator_value=0.1`` follow optax
    (and TF). Duchi et al. and torch write :math:`g/(\delta + \sqrt{G})`: use
    ``eps_in_sqrt=False``, ``initial_accumulator_value=0`` and ``eps=1e-10`` for torch.

    Args:
      initial_accumulator_value: :math:`G_0` >= 0.
      <<eps>>
      eps_in_sqrt: whether ``eps`` goes inside the square root.
      <<accumulator_dtype>>

    References:
      Duchi, Hazan, Singer, *Adaptive Subgradient Methods for Online Learning and Stochastic
      Optimization*, JMLR 2011.
    """

    initial_accumulator_value: Hyper = hyper(default=0.1, interval="[0, inf)")
    eps: Hyper = hyper(default=1e-7, interval="(0, inf)")
    eps_in_sqrt: bool = static(default=True, kw_only=True)
    accumulator_dtype: DType = static(default=None, kw_only=True)
    flat_support = "elementwise"

    def init_state(self, params):
        return ScaleByRssState(tree.full_like(params, self.initial_accumulator_value,
                                              self.accumulator_dtype, real=True))

    def apply(self, updates, state, params, step):
        eps = step.value(self.eps)

        def one(g, s):
            s = tree.abs_sq(dtypes.cast(g, dtypes.wider(g.dtype, s.dtype))).astype(
                s.dtype) + s
            e = dtypes.safe_eps(eps, s.dtype)
            if self.eps_in_sqrt:
                inv = jnp.where(s > 0, jax.lax.rsqrt(s + e), jnp.zeros_like(s))
            else:
                inv = 1 / (jnp.sqrt(s) + e)
            return tree.scale_by(g, inv), s

        u, s = tree.unzip2(updates, jax.tree.map(one, updates, state.sum_of_squares))
        return u, ScaleByRssState(s)
