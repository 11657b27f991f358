"""AMSGrad: Adam whose second moment never decreases (``scale_by_amsgrad``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_amsgrad", "ScaleByAmsgradState"]


class ScaleByAmsgradState(NamedTuple):
    """State of :class:`scale_by_amsgrad`: the moments and the running maximum of ``nu``."""

    mu: Any
    nu: Any
    nu_max: Any


@docs.args
class scale_by_amsgrad(GradientTransformation):
    r"""Rescale updates by AMSGrad's moment estimates (no learning rate).

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) |g_t|^2, \\
        \hat v_t = \max(\hat v_{t-1}, c_2(v_t)), \qquad
        u_t = \frac{c_1(m_t)}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}

    with :math:`c_1(m) = m / (1 - \beta_1^t)` and :math:`c_2(v) = v / (1 - \beta_2^t)` (the
    bias corrections, each switched off by its flag, then :math:`c(x) = x`), :math:`t` the
    1-based step number and :math:`\hat v_0 = 0`.

    Conventions. Reddi et al.'s Algorithm 2 has no bias correction and no ``eps``: use
    ``bias_correction_mu=False, bias_correction_nu=False``. The default corrects both and takes
    the maximum of the *corrected* second moment, as optax does. torch's ``Adam(amsgrad=True)``
    is a third form: it takes the maximum of the raw :math:`v_t` and divides that maximum by
    :math:`1 - \beta_2^t`; it is not provided.

    Args:
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1).
      <<eps>>
      <<eps_root>>
      <<mu_dtype>>
      <<nu_dtype>>
      bias_correction_mu: divide the first moment by :math:`1 - \beta_1^t`.
      bias_correction_nu: divide the second moment by :math:`1 - \beta_2^t` before the maximum.

    References:
      Reddi, Kale, Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018 (Algorithm 2).
    """

    b1: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="mu_dtype")
    b2: Hyper = hyper(default=0.999, interval="[0, 1)", decays_in="nu_dtype")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    eps_root: Hyper = hyper(default=0.0, interval="[0, inf)")
    mu_dtype: DType = static(default=None)
    nu_dtype: DType = static(default=None, kw_only=True)
    bias_correction_mu: bool = static(default=True)
    bias_correction_nu: bool = static(default=True)

    @property
    def uses_count(self) -> bool:
        return self.bias_correction_mu or self.bias_correction_nu

    def init_state(self, params):
        return ScaleByAmsgradState(tree.zeros_like(params, self.mu_dtype),
                                   tree.full_like(params, 0.0, self.nu_dtype, real=True),
                                   tree.full_like(params, 0.0, self.nu_dtype, real=True))

    def apply(self, updates, state, params, step):
        b1, b2 = step.value(self.b1), step.value(self.b2)
        mu = tree.update_moment(updates, state.mu, b1, 1)
        nu = tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
        mu_hat = tree.bias_correction(mu, b1, step.number) if self.bias_correction_mu else mu
        nu_hat = tree.bias_correction(nu, b2, step.number) if self.bias_correction_nu else nu
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu_hat)
        out = tree.divide_by_root(mu_hat, nu_max, step.value(self.eps),
                                  step.value(self.eps_root), updates)
        return out, ScaleByAmsgradState(mu, nu, nu_max)
