"""Per-coordinate adaptive scaling: ``scale_by_adam``, ``scale_by_rms``, ``scale_by_rss``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation
from gradxform._src.module import hyper, static

__all__ = [
    "scale_by_adam", "ScaleByAdamState", "scale_by_rms", "ScaleByRmsState", "ScaleByStddevState",
    "scale_by_rss", "ScaleByRssState",
]


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

    b1: Any = hyper(0.9, "[0, 1)", decays_in="mu_dtype")
    b2: Any = hyper(0.999, "[0, 1)", decays_in="nu_dtype")
    eps: Any = hyper(1e-8, "(0, inf)")
    eps_root: Any = hyper(0.0, "[0, inf)")
    mu_dtype: Any = static(None)
    nu_dtype: Any = static(None)
    nesterov: bool = static(False)
    uses_count = True

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

    decay: Any = hyper(0.9, "[0, 1)", decays_in="nu_dtype")
    eps: Any = hyper(1e-8, "(0, inf)")
    initial_scale: Any = hyper(0.0, "[0, inf)")
    eps_in_sqrt: bool = static(True)
    bias_correction: bool = static(False)
    centered: bool = static(False)
    nu_dtype: Any = static(None)

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
            new_state = ScaleByStddevState(mu, nu)
        else:
            var, new_state = nu_hat, ScaleByRmsState(nu)

        def one(g, v):
            e = dtypes.safe_eps(eps, v.dtype)
            scaling = jax.lax.rsqrt(v + e) if self.eps_in_sqrt else 1 / (jnp.sqrt(v) + e)
            return tree.scale_by(g, scaling)

        return jax.tree.map(one, updates, var), new_state


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

    initial_accumulator_value: Any = hyper(0.1, "[0, inf)")
    eps: Any = hyper(1e-7, "(0, inf)")
    eps_in_sqrt: bool = static(True)
    accumulator_dtype: Any = static(None)

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
