r"""Simplified AdEMAMix: one slow momentum accumulator, mixed with the current gradient."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_simplified_ademamix", "ScaleBySimplifiedAdEMAMixState"]


class ScaleBySimplifiedAdEMAMixState(NamedTuple):
    """State of :class:`scale_by_simplified_ademamix`: the accumulated momentum and the second
    moment."""

    m: Any
    n: Any


@docs.args
class scale_by_simplified_ademamix(GradientTransformation):
    r"""Rescale updates by Simplified AdEMAMix: a long momentum sum plus :math:`\alpha` times
    the current gradient, over Adam's second moment (no learning rate).

    .. math::
        m_t = \beta_1 m_{t-1} + g_t, \qquad
        \nu_t = \beta_2 \nu_{t-1} + (1 - \beta_2) |g_t|^2, \qquad
        u_t = \frac{m_t + \alpha_t g_t}{\sqrt{\nu_t / (1 - \beta_2^t) + \epsilon_{root}}
        + \epsilon}

    with :math:`t` the 1-based step number. The momentum is a sum, not an average (about
    :math:`1/(1-\beta_1)` times larger than Adam's), so it needs a correspondingly smaller
    learning rate; :math:`\alpha = 0` is Adam with momentum :math:`\beta_1`, an undamped
    accumulator and no first-moment bias correction. A large :math:`\beta_1` (0.99 to 0.9999)
    with :math:`\alpha > 0` is the point: the slow accumulator remembers old gradients while
    :math:`\alpha g_t` keeps the step responsive.

    Conventions. As optax. The second moment is updated as
    :math:`|g|^2 + \beta_2(\nu - |g|^2)` (optax's interpolation, the same number up to
    rounding). Complex updates use :math:`|g|^2` (optax: :math:`g^2`, which is complex).

    Args:
      b1: :math:`\beta_1` in [0, 1), the accumulator's decay.
      <<b2>>
      alpha: :math:`\alpha` >= 0, the weight of the current gradient (a number, array or
        schedule).
      <<eps>>
      <<eps_root>>
      <<mu_dtype>>
      <<nu_dtype>>

    References:
      Morwani, Vyas, Ha, Kakade, *Connections between Schedule-Free Optimizers, AdEMAMix, and
      Accelerated SGD Variants*, arXiv 2502.02431, 2025.
    """

    b1: Hyper = hyper(default=0.99, interval="[0, 1)", decays_in="mu_dtype")
    b2: Hyper = hyper(default=0.95, interval="[0, 1)", decays_in="nu_dtype")
    alpha: Hyper = hyper(default=0.0, interval="[0, inf)")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    eps_root: Hyper = hyper(default=0.0, interval="[0, inf)")
    mu_dtype: DType = static(default=None, kw_only=True)
    nu_dtype: DType = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "elementwise"

    def init_state(self, params):
        return ScaleBySimplifiedAdEMAMixState(
            tree.zeros_like(params, self.mu_dtype),
            tree.full_like(params, 0.0, self.nu_dtype, real=True))

    def apply(self, updates, state, params, step):
        b1, b2 = step.value(self.b1), step.value(self.b2)
        alpha = step.value(self.alpha)
        eps, eps_root = step.value(self.eps), step.value(self.eps_root)

        def moments(g, m, n):
            gm = dtypes.cast(g, m.dtype)
            sq = tree.abs_sq(g.astype(dtypes.wider(g.dtype, n.dtype))).astype(n.dtype)
            m = gm + tree.scalar(b1, m.dtype) * m
            n = sq + tree.scalar(b2, n.dtype) * (n - sq)
            return m, n

        m, n = tree.unzip2(updates, jax.tree.map(moments, updates, state.m, state.n))
        numerator = jax.tree.map(
            lambda g, mi: mi + tree.scalar(alpha, mi.dtype) * dtypes.cast(g, mi.dtype),
            updates, m)
        n_hat = tree.bias_correction(n, b2, step.number)
        return (tree.divide_by_root(numerator, n_hat, eps, eps_root, updates),
                ScaleBySimplifiedAdEMAMixState(m, n))
