"""Yogi: Adam with an additive, sign-controlled second-moment update (``scale_by_yogi``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.schedules import Schedule
from gradxform._src.transforms.adam import ScaleByAdamState
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_yogi"]


@docs.args
class scale_by_yogi(GradientTransformation):
    r"""Rescale updates by Yogi's moment estimates (no learning rate).

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        v_t = v_{t-1} - (1 - \beta_2)\,\operatorname{sign}(v_{t-1} - |g_t|^2)\,|g_t|^2, \\
        u_t = \frac{c_1(m_t)}{\sqrt{c_2(v_t) + \epsilon_{root}} + \epsilon}

    with :math:`m_0 = v_0 = ` ``initial_accumulator_value`` and, with ``bias_correction``,
    :math:`c_i(x) = x / (1 - \beta_i^t)` (:math:`t` the 1-based step number; without it,
    :math:`c_i(x) = x`). Unlike Adam's, the change of :math:`v` is bounded by
    :math:`(1 - \beta_2) g_t^2` whatever :math:`v_{t-1}` is, so the effective learning rate
    cannot grow abruptly.

    Conventions. Zaheer et al.'s Algorithm 2 starts from :math:`m_0 = v_0 = 0` and has no bias
    correction: ``initial_accumulator_value=0, bias_correction=False``. The defaults follow
    optax: both moments start at ``1e-6`` and both are bias-corrected (TF-Addons also corrects
    them but starts :math:`m` at 0).

    Args:
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1).
      eps: added outside the square root, > 0 (Yogi's default is large, 1e-3).
      <<eps_root>>
      initial_accumulator_value: :math:`m_0 = v_0`, >= 0.
      bias_correction: divide the moments by :math:`1 - \beta_i^t`.
      <<mu_dtype>>
      <<nu_dtype>>

    References:
      Zaheer, Reddi, Sachan, Kale, Kumar, *Adaptive Methods for Nonconvex Optimization*,
      NeurIPS 2018 (Algorithm 2).
    """

    b1: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="mu_dtype")
    b2: Hyper = hyper(default=0.999, interval="[0, 1)", decays_in="nu_dtype")
    eps: Hyper = hyper(default=1e-3, interval="(0, inf)")
    eps_root: Hyper = hyper(default=0.0, interval="[0, inf)")
    initial_accumulator_value: Hyper = hyper(default=1e-6, interval="[0, inf)")
    bias_correction: bool = static(default=True, kw_only=True)
    mu_dtype: DType = static(default=None, kw_only=True)
    nu_dtype: DType = static(default=None, kw_only=True)
    flat_support = "elementwise"

    def check(self):
        if isinstance(self.initial_accumulator_value, Schedule):
            raise self.error("is used once, by init: it must be a number or an array, "
                             "not a schedule", "initial_accumulator_value")

    @property
    def uses_count(self) -> bool:
        return self.bias_correction

    def init_state(self, params):
        value = self.initial_accumulator_value
        return ScaleByAdamState(tree.full_like(params, value, self.mu_dtype),
                                tree.full_like(params, value, self.nu_dtype, real=True))

    def apply(self, updates, state, params, step):
        b1, b2 = step.value(self.b1), step.value(self.b2)
        _, fresh = tree.complement(b2)
        mu = tree.update_moment(updates, state.mu, b1, 1)

        def second(g, v):
            g2 = tree.abs_sq(g.astype(dtypes.wider(g.dtype, v.dtype))).astype(v.dtype)
            return v - tree.scalar(fresh, v.dtype) * jnp.sign(v - g2) * g2

        nu = jax.tree.map(second, updates, state.nu)
        if self.bias_correction:
            mu_hat = tree.bias_correction(mu, b1, step.number)
            nu_hat = tree.bias_correction(nu, b2, step.number)
        else:
            mu_hat, nu_hat = mu, nu
        out = tree.divide_by_root(mu_hat, nu_hat, step.value(self.eps),
                                  step.value(self.eps_root), updates)
        return out, ScaleByAdamState(mu, nu)
