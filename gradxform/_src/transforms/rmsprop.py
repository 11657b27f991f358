"""RMSprop's scaling: divide by the root mean square of recent updates (``scale_by_rms``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_rms", "ScaleByRmsState", "ScaleByStddevState"]


class ScaleByRmsState(NamedTuple):
    """State of :class:`scale_by_rms`: the moving average of squared updates."""

    nu: Any


class ScaleByStddevState(NamedTuple):
    """State of the centered :class:`scale_by_rms`: moving averages of updates and squares."""

    mu: Any
    nu: Any


@docs.args
class scale_by_rms(GradientTransformation):
    r"""Divide by the root mean square of recent updates (RMSprop), optionally centered.

    .. math::
        v_t = \rho\, v_{t-1} + (1 - \rho)\, g_t^2, \qquad u_t = \frac{g_t}{\sqrt{v_t + \epsilon}}

    Centered (Graves 2013): also :math:`m_t = \rho m_{t-1} + (1-\rho) g_t` and
    :math:`u_t = g_t / \sqrt{v_t - m_t^2 + \epsilon}`. With ``bias_correction`` the averages
    are divided by :math:`1 - \rho^t` first.

    Conventions. ``eps`` is inside the root by default (as optax); ``eps_in_sqrt=False`` gives
    :math:`g/(\sqrt{v} + \epsilon)` as torch. torch's defaults are ``decay=0.99``,
    ``initial_scale=0``; Tieleman & Hinton's lecture uses ``decay=0.9``.

    Args:
      decay: :math:`\rho` in [0, 1).
      <<eps>>
      initial_scale: initial value of :math:`v` (>= 0); optax's default 0, TF's 1.
      eps_in_sqrt: whether ``eps`` goes inside the square root.
      bias_correction: divide the averages by :math:`1 - \rho^t`.
      centered: subtract the squared mean (Graves 2013).
      <<nu_dtype>>

    References:
      Tieleman & Hinton, *Lecture 6.5 - RMSProp*, COURSERA: Neural Networks for Machine
      Learning, 2012. Graves, *Generating Sequences With Recurrent Neural Networks*, 2013.
    """

    decay: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="nu_dtype")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    initial_scale: Hyper = hyper(default=0.0, interval="[0, inf)")
    eps_in_sqrt: bool = static(default=True)
    bias_correction: bool = static(default=False)
    centered: bool = static(default=False, kw_only=True)
    nu_dtype: DType = static(default=None, kw_only=True)
    flat_support = "elementwise"

    @property
    def uses_count(self) -> bool:
        return self.bias_correction

    def init_state(self, params):
        nu = tree.full_like(params, self.initial_scale, self.nu_dtype, real=True)
        if self.centered:
            return ScaleByStddevState(tree.zeros_like(params, self.nu_dtype), nu)
        return ScaleByRmsState(nu)

    def apply(self, updates, state, params, step):
        decay, eps = step.value(self.decay), step.value(self.eps)
        nu = tree.update_moment_per_elem_norm(updates, state.nu, decay, 2)
        nu_hat = tree.bias_correction(nu, decay, step.number) if self.bias_correction else nu
        if self.centered:
            mu = tree.update_moment(updates, state.mu, decay, 1)
            mu_hat = tree.bias_correction(mu, decay, step.number) if self.bias_correction else mu
            var = jax.tree.map(lambda m, v: v - tree.abs_sq(m).astype(v.dtype), mu_hat, nu_hat)
            new_state: ScaleByStddevState | ScaleByRmsState = ScaleByStddevState(mu, nu)
        else:
            var, new_state = nu_hat, ScaleByRmsState(nu)

        def one(g, v):
            e = dtypes.safe_eps(eps, v.dtype)
            scaling = jax.lax.rsqrt(v + e) if self.eps_in_sqrt else 1 / (jnp.sqrt(v) + e)
            return tree.scale_by(g, scaling)

        return jax.tree.map(one, updates, var), new_state
