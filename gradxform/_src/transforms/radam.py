"""Rectified Adam: Adam with the variance of its adaptive step rectified (``scale_by_radam``)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.transforms.adam import ScaleByAdamState
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_radam"]


def _rectification(b2: Any, count: jax.Array, threshold: Any, dtype: Any):
    """``(use_adaptive, r_t)``: whether rho_t reaches the threshold, and the rectifier."""
    work = dtypes.wider(dtypes.real_dtype(dtype), jnp.float32)
    # Constants in b2 alone are formed before any cast (in double precision for numbers).
    rho_inf = 2 / (1 - b2) - 1
    rho_inf_const = (rho_inf - 4) * (rho_inf - 2)
    b2t = tree.scalar(b2, work) ** count.astype(work)
    two_t = (2 * count).astype(work)
    rho = tree.scalar(rho_inf, work) - two_t * b2t / (1 - b2t)
    use = rho >= tree.scalar(threshold, work)
    # Below the threshold the rectifier is not used; a safe rho keeps its (unused) value and
    # derivatives finite.
    one = jnp.ones_like(rho)
    safe_rho = jnp.where(use, rho, 5 * one)
    numerator = (safe_rho - 4) * (safe_rho - 2) * tree.scalar(rho_inf, work)
    denominator = jnp.where(use, tree.scalar(rho_inf_const, work) * safe_rho, one)
    return use, jnp.sqrt(jnp.where(use, numerator / denominator, one))


@docs.args
class scale_by_radam(GradientTransformation):
    r"""Rescale updates by Rectified Adam (no learning rate).

    With Adam's moments and bias corrections :math:`\hat m_t, \hat v_t` (see
    :class:`scale_by_adam`) and :math:`t` the 1-based step number,

    .. math::
        \rho_\infty = \frac{2}{1 - \beta_2} - 1, \qquad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t}, \\
        r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}
                         {(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}}, \qquad
        u_t = \begin{cases}
            r_t\,\hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon)
                & \rho_t \ge \tau \\
            \hat m_t & \text{otherwise}
        \end{cases}

    Early on, while the variance of the adaptive step is intractable (:math:`\rho_t < \tau`),
    the step is that of SGD with (bias-corrected) momentum.

    Conventions. Liu et al.'s Algorithm 2 rectifies when :math:`\rho_t > 4`; their code,
    optax and torch when :math:`\rho_t \ge 5` (torch: :math:`> 5`). The default ``threshold=5``
    follows optax; ``threshold=4`` gives the paper's test (the two differ only if
    :math:`\rho_t` equals 4 exactly, where :math:`r_t = 0`). The threshold must be at least 4,
    below which :math:`r_t` is not real. ``nesterov=True`` uses Dozat's look-ahead moment, as
    optax does.

    Args:
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1).
      <<eps>>
      <<eps_root>>
      threshold: :math:`\tau` >= 4, the least :math:`\rho_t` at which the adaptive step is used.
      <<nesterov>>
      <<mu_dtype>>
      <<nu_dtype>>

    References:
      Liu, Jiang, He, Chen, Liu, Gao, Han, *On the Variance of the Adaptive Learning Rate and
      Beyond*, ICLR 2020 (Algorithm 2).
    """

    b1: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="mu_dtype")
    b2: Hyper = hyper(default=0.999, interval="[0, 1)", decays_in="nu_dtype")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    eps_root: Hyper = hyper(default=0.0, interval="[0, inf)")
    threshold: Hyper = hyper(default=5.0, interval="[4, inf)")
    nesterov: bool = static(default=False, kw_only=True)
    mu_dtype: DType = static(default=None, kw_only=True)
    nu_dtype: DType = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "elementwise"

    def init_state(self, params):
        return ScaleByAdamState(tree.zeros_like(params, self.mu_dtype),
                                tree.full_like(params, 0.0, self.nu_dtype, real=True))

    def apply(self, updates, state, params, step):
        b1, b2 = step.value(self.b1), step.value(self.b2)
        eps, eps_root = step.value(self.eps), step.value(self.eps_root)
        threshold = step.value(self.threshold)
        mu = tree.update_moment(updates, state.mu, b1, 1)
        nu = tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
        t = step.number
        if self.nesterov:
            mu_hat = tree.nesterov_moment(updates, mu, b1, t)
        else:
            mu_hat = tree.bias_correction(mu, b1, t)
        nu_hat = tree.bias_correction(nu, b2, t)

        def one(g, m, v):
            use, r = _rectification(b2, t, threshold, v.dtype)
            adaptive = tree.divide_by_root(m * r.astype(m.dtype), v, eps, eps_root, g)
            return jnp.where(use, adaptive, m.astype(g.dtype))

        return jax.tree.map(one, updates, mu_hat, nu_hat), ScaleByAdamState(mu, nu)
