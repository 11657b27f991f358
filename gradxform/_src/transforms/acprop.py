r"""ACProp: AdaBelief's centred second moment, used one step late (asynchronous update)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.transforms.adabelief import ScaleByBeliefState
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_acprop"]


@docs.args
class scale_by_acprop(GradientTransformation):
    r"""Rescale updates by ACProp: the gradient over the root of the *previous* centred second
    moment (no learning rate).

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        s_t = \beta_2 s_{t-1} + (1 - \beta_2) |g_t - m_{t-1}|^2 + \epsilon_{root}, \\
        u_t = \frac{g_t}{\sqrt{s_{t-1} / (1 - \beta_2^{t-1})} + \epsilon}
        \quad (t > 1), \qquad u_1 = \frac{g_1}{1 + \epsilon}

    with :math:`t` the 1-based step number. The denominator uses information up to step
    :math:`t-1` only, so it is independent of :math:`g_t` (the *asynchronous* update), and it
    measures the spread of the gradient around its prediction (*centring*, as AdaBelief).
    The state has the layout of :class:`scale_by_belief` (``mu``, ``nu``).

    Conventions. As optax's code, which follows the authors' released implementation: the
    prediction error is taken against :math:`m_{t-1}` (optax's docstring writes :math:`m_t`),
    :math:`\epsilon_{root}` accumulates in :math:`s` as in AdaBelief, and the first step
    divides by 1. Complex updates use :math:`|\cdot|^2` and a real second moment.

    Args:
      <<b1>>
      <<b2>>
      <<eps>>
      <<eps_root>>
      <<mu_dtype>>
      <<nu_dtype>>

    References:
      Zhuang, Ding, Tang, Dvornek, Tatikonda, Duncan, *Momentum Centering and Asynchronous
      Update for Adaptive Gradient Methods*, NeurIPS 2021.
    """

    b1: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="mu_dtype")
    b2: Hyper = hyper(default=0.999, interval="[0, 1)", decays_in="nu_dtype")
    eps: Hyper = hyper(default=1e-16, interval="(0, inf)")
    eps_root: Hyper = hyper(default=1e-16, interval="[0, inf)")
    mu_dtype: DType = static(default=None, kw_only=True)
    nu_dtype: DType = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "elementwise"

    def init_state(self, params):
        return ScaleByBeliefState(tree.zeros_like(params, self.mu_dtype),
                                  tree.full_like(params, 0.0, self.nu_dtype, real=True))

    def apply(self, updates, state, params, step):
        b1, b2 = step.value(self.b1), step.value(self.b2)
        eps, eps_root = step.value(self.eps), step.value(self.eps_root)
        mu = tree.update_moment(updates, state.mu, b1, 1)
        error = jax.tree.map(lambda g, m: dtypes.cast(g, m.dtype) - m, updates, state.mu)
        nu = tree.update_moment_per_elem_norm(error, state.nu, b2, 2)
        nu = jax.tree.map(lambda v: v + tree.scalar(eps_root, v.dtype), nu)
        initial = step.count == 0
        previous = tree.bias_correction(state.nu, b2, jnp.where(initial, step.number, step.count))

        def one(g, v):
            v = jnp.where(initial, jnp.ones_like(v), v)
            denom = jnp.sqrt(v) + dtypes.safe_eps(eps, v.dtype)
            work = dtypes.wider(g.dtype, v.dtype)
            return (g.astype(work) / denom.astype(work)).astype(g.dtype)

        return jax.tree.map(one, updates, previous), ScaleByBeliefState(mu, nu)
