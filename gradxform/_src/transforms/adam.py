"""Adam's scaling: bias-corrected first and second moments (``scale_by_adam``)."""

from __future__ import annotations

from typing import Any, NamedTuple

from gradxform._src import docs, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_adam", "ScaleByAdamState"]


class ScaleByAdamState(NamedTuple):
    """State of :class:`scale_by_adam`: first and second moments."""

    mu: Any
    nu: Any


@docs.args
class scale_by_adam(GradientTransformation):
    r"""Rescale updates by Adam's bias-corrected moment estimates (no learning rate).

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) |g_t|^2, \\
        \hat m_t = \frac{m_t}{1 - \beta_1^t}, \qquad \hat v_t = \frac{v_t}{1 - \beta_2^t},
        \qquad u_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}

    with :math:`t` the 1-based step number. Nesterov (NAdam, Dozat 2016) replaces
    :math:`\hat m_t` by :math:`\beta_1 m_t/(1-\beta_1^{t+1}) + (1-\beta_1) g_t/(1-\beta_1^t)`.

    Conventions. ``eps`` is outside the square root, as in the paper, optax and torch;
    ``eps_root`` puts a term inside (useful when differentiating through Adam). Complex updates
    use :math:`|g|^2` and a real second moment.

    Args:
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1).
      <<eps>>
      <<eps_root>>
      <<mu_dtype>>
      <<nu_dtype>>
      <<nesterov>>

    References:
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015 (Algorithm 1).
      Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR workshop 2016.
    """

    b1: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="mu_dtype")
    b2: Hyper = hyper(default=0.999, interval="[0, 1)", decays_in="nu_dtype")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    eps_root: Hyper = hyper(default=0.0, interval="[0, inf)")
    mu_dtype: DType = static(default=None)
    nu_dtype: DType = static(default=None, kw_only=True)
    nesterov: bool = static(default=False, kw_only=True)
    uses_count = True
    flat_support = "elementwise"

    def init_state(self, params):
        return ScaleByAdamState(tree.zeros_like(params, self.mu_dtype),
                                tree.full_like(params, 0.0, self.nu_dtype, real=True))

    def apply(self, updates, state, params, step):
        b1, b2 = step.value(self.b1), step.value(self.b2)
        eps, eps_root = step.value(self.eps), step.value(self.eps_root)
        mu = tree.update_moment(updates, state.mu, b1, 1)
        nu = tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
        t = step.number
        if self.nesterov:
            mu_hat = tree.nesterov_moment(updates, mu, b1, t)
        else:
            mu_hat = tree.bias_correction(mu, b1, t)
        nu_hat = tree.bias_correction(nu, b2, t)
        return (tree.divide_by_root(mu_hat, nu_hat, eps, eps_root, updates),
                ScaleByAdamState(mu, nu))
