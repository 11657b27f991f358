r"""MoMo: momentum methods whose step size comes from a model of the loss (a Polyak-type step).

Both transformations need the current loss at every step: ``tx.update(grads, state, params,
value=loss)`` (``jax.value_and_grad`` gives both), as :class:`~gradxform.scale_by_polyak` does.
They return the full update, sign included: the step size is part of the rule, so
``learning_rate`` is one of their arguments (an upper bound on the adaptive step).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.transforms.parameter_free import _reject_complex, _vdot
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_momo", "MomoState", "scale_by_momo_adam", "MomoAdamState"]


def _loss_value(tx: GradientTransformation, step) -> jax.Array:
    value = step.extra.get("value")
    if value is None:
        raise tx.error("needs the current loss: call update(updates, state, params, "
                       "value=loss) (jax.value_and_grad returns both)", "value")
    if jnp.ndim(value) != 0:
        raise tx.error(f"must be a scalar loss, got an array of shape {jnp.shape(value)}",
                       "value")
    return jnp.asarray(value)


def _sq_norm(tree_: Any, dtype: Any) -> jax.Array:
    return _vdot(tree_, tree_, dtype)


def _step_size(cap: jax.Array, gap: jax.Array, sq_norm: jax.Array) -> jax.Array:
    """``min(cap, max(gap, 0) / sq_norm)``, and 0 where ``sq_norm`` is 0 (no direction)."""
    positive = sq_norm > 0
    ratio = jnp.maximum(gap, jnp.zeros_like(gap)) / jnp.where(positive, sq_norm,
                                                              jnp.ones_like(sq_norm))
    return jnp.minimum(cap, jnp.where(positive, ratio, jnp.zeros_like(ratio)))


class MomoState(NamedTuple):
    """State of :class:`scale_by_momo`: the momentum :math:`d`, the averaged loss
    :math:`\\bar f`, the averaged :math:`\\langle g, x\\rangle` (``gamma``) and the lower bound
    of the loss."""

    exp_avg: Any
    barf: jax.Array
    gamma: jax.Array
    lb: jax.Array


@docs.args
class scale_by_momo(GradientTransformation):
    r"""MoMo: SGD with momentum, stepping to the minimum of a momentum model of the loss.

    With the loss :math:`f_t = f(x_t)`, :math:`\beta` (0 at the first step, so the averages
    start at the first values), :math:`\alpha_t` = ``learning_rate`` and :math:`\lambda` =
    ``weight_decay``:

    .. math::
        d_t &= \beta d_{t-1} + (1-\beta) g_t, \quad
        \bar f_t = \beta \bar f_{t-1} + (1-\beta) f_t, \quad
        \gamma_t = \beta \gamma_{t-1} + (1-\beta)\langle g_t, x_t\rangle, \\
        \tau_t &= \min\Big(\alpha_t,\ \frac{\big((1+\alpha_t\lambda)(\bar f_t - f_* - \gamma_t)
        + \langle d_t, x_t\rangle\big)_+}{\lVert d_t\rVert^2}\Big), \qquad
        u_t = -\frac{\alpha_t\lambda}{1 + \alpha_t\lambda}\, x_t - \tau_t d_t

    :math:`f_*` is ``lower_bound``; with ``adapt_lower_bound`` it is raised or lowered on the
    fly from the model's own estimate (MoMo*, section 5 of the paper). Where
    :math:`\lVert d_t\rVert = 0` there is no step (besides the decay).

    **The loss value is an argument of** ``update``: ``tx.update(grads, state, params,
    value=loss)``; a missing value is an error.

    Conventions. As optax, except that the step is skipped only where
    :math:`\lVert d_t\rVert^2` is exactly 0 (optax: below 2.2e-16, a threshold in the loss's
    units). Complex params are rejected (the model uses real inner products).

    Args:
      <<learning_rate>>
        Recommended large (1 by default): it only caps the adaptive step.
      beta: momentum :math:`\beta` in [0, 1).
      lower_bound: :math:`f_*`, a lower bound of the loss (0 for most losses).
      weight_decay: :math:`\lambda` >= 0.
      adapt_lower_bound: estimate :math:`f_*` on the fly (MoMo*).
      <<accumulator_dtype>>

    References:
      Schaipp, Ohana, Eickenberg, Defazio, Gower, *MoMo: Momentum Models for Adaptive
      Learning Rates*, ICML 2024 (Algorithm 1 with weight decay, and MoMo*).
    """

    learning_rate: Hyper = hyper(default=1.0, interval="[0, inf)")
    beta: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="accumulator_dtype")
    lower_bound: Hyper = hyper(default=0.0)
    weight_decay: Hyper = hyper(default=0.0, interval="[0, inf)")
    adapt_lower_bound: bool = static(default=False)
    accumulator_dtype: DType = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "elementwise"  # dot products over the whole tree

    def init_state(self, params):
        _reject_complex(self, params)
        sd = tree.real_accumulator_dtype(params, self.accumulator_dtype)
        return MomoState(tree.zeros_like(params, self.accumulator_dtype), jnp.zeros([], sd),
                         jnp.zeros([], sd), tree.scalar(self.lower_bound, sd))

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        value = _loss_value(self, step)
        sd = state.barf.dtype
        c = lambda v: tree.scalar(v, sd)  # noqa: E731
        alpha, wd = step.value(self.learning_rate), step.value(self.weight_decay)
        lower = c(step.value(self.lower_bound))
        bt = jnp.where(step.count == 0, jnp.zeros([], sd), c(step.value(self.beta)))
        grads = tree.cast_like(updates, state.exp_avg)
        x = tree.cast_like(jax.tree.map(jnp.asarray, params), state.exp_avg)
        barf = bt * state.barf + (1 - bt) * value.astype(sd)
        exp_avg = jax.tree.map(lambda m, g: bt.astype(m.dtype) * m + (1 - bt).astype(m.dtype) * g,
                               state.exp_avg, grads)
        gamma = bt * state.gamma + (1 - bt) * _vdot(grads, x, sd)
        sq = _sq_norm(exp_avg, sd)
        iprod = _vdot(exp_avg, x, sd)
        scale = c(1 + alpha * wd)
        lb = state.lb
        if self.adapt_lower_bound:
            cap = scale * (barf - gamma) + iprod
            lb = jnp.where(cap < scale * state.lb, jnp.maximum(cap / (2 * scale), lower), lb)
        tau = _step_size(c(alpha), scale * (barf - lb - gamma) + iprod, sq)
        shrink = c(alpha * wd / (1 + alpha * wd))
        out = jax.tree.map(
            lambda u, m, p: (-shrink.astype(m.dtype) * p - tau.astype(m.dtype) * m).astype(
                u.dtype), updates, exp_avg, x)
        new_lb = state.lb
        if self.adapt_lower_bound:
            new_lb = jnp.maximum((barf + iprod - gamma) - c(0.5) * tau * sq, lower)
        return out, MomoState(exp_avg, barf, gamma, new_lb)


class MomoAdamState(NamedTuple):
    """State of :class:`scale_by_momo_adam`: Adam's moments, the averaged loss, the averaged
    :math:`\\langle g, x\\rangle` (``gamma``) and the lower bound of the loss."""

    exp_avg: Any
    exp_avg_sq: Any
    barf: jax.Array
    gamma: jax.Array
    lb: jax.Array


@docs.args
class scale_by_momo_adam(GradientTransformation):
    r"""MoMo-Adam: Adam(W) stepping to the minimum of a momentum model of the loss.

    With Adam's moments :math:`m_t, v_t`, the preconditioner
    :math:`D_t = \epsilon + \sqrt{v_t/(1-\beta_2^t)}`, :math:`\rho_t = 1 - \beta_1^t`, the loss
    :math:`f_t` and :math:`\bar f_t, \gamma_t` averaged with :math:`\beta_1` as in
    :class:`scale_by_momo`:

    .. math::
        \tau_t = \min\Big(\frac{\alpha_t}{\rho_t},\
        \frac{\big((1+\alpha_t\lambda)(\bar f_t - \rho_t f_* - \gamma_t)
        + \langle m_t, x_t\rangle\big)_+}{\langle m_t, m_t / D_t\rangle}\Big), \qquad
        u_t = -\frac{\alpha_t\lambda}{1 + \alpha_t\lambda}\, x_t - \tau_t \frac{m_t}{D_t}

    with ``adapt_lower_bound`` estimating :math:`f_*` on the fly (MoMo-Adam*). Where
    :math:`\langle m_t, m_t/D_t\rangle = 0` there is no step (besides the decay).

    **The loss value is an argument of** ``update``: ``tx.update(grads, state, params,
    value=loss)``.

    Conventions. As optax, except that the step is skipped only where the denominator is
    exactly 0 (optax: below 2.2e-16). Complex params are rejected.

    Args:
      <<learning_rate>>
      <<b1>>
      <<b2>>
      <<eps>>
      lower_bound: :math:`f_*`, a lower bound of the loss.
      weight_decay: :math:`\lambda` >= 0.
      adapt_lower_bound: estimate :math:`f_*` on the fly.
      <<accumulator_dtype>>

    References:
      Schaipp, Ohana, Eickenberg, Defazio, Gower, *MoMo: Momentum Models for Adaptive
      Learning Rates*, ICML 2024 (Algorithm 3, MoMo-Adam).
    """

    learning_rate: Hyper = hyper(default=1e-2, interval="[0, inf)")
    b1: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="accumulator_dtype")
    b2: Hyper = hyper(default=0.999, interval="[0, 1)", decays_in="accumulator_dtype")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    lower_bound: Hyper = hyper(default=0.0)
    weight_decay: Hyper = hyper(default=0.0, interval="[0, inf)")
    adapt_lower_bound: bool = static(default=False)
    accumulator_dtype: DType = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "elementwise"  # dot products over the whole tree

    def init_state(self, params):
        _reject_complex(self, params)
        acc = self.accumulator_dtype
        sd = tree.real_accumulator_dtype(params, acc)
        return MomoAdamState(tree.zeros_like(params, acc), tree.zeros_like(params, acc),
                             jnp.zeros([], sd), jnp.zeros([], sd),
                             tree.scalar(self.lower_bound, sd))

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        value = _loss_value(self, step)
        sd = state.barf.dtype
        c = lambda v: tree.scalar(v, sd)  # noqa: E731
        alpha, wd = step.value(self.learning_rate), step.value(self.weight_decay)
        b1, b2, eps = step.value(self.b1), step.value(self.b2), step.value(self.eps)
        lower = c(step.value(self.lower_bound))
        (k1, f1) = tree.complement(b1)
        grads = tree.cast_like(updates, state.exp_avg)
        x = tree.cast_like(jax.tree.map(jnp.asarray, params), state.exp_avg)
        barf = c(k1) * state.barf + c(f1) * value.astype(sd)
        (k2, f2) = tree.complement(b2)
        # Written in optax's order of operations (b m + (1 - b) g, ((1 - b2) g) g), which
        # fixes how the compiler fuses them: parity to the last bit where the model's branch
        # (the lower bound's update) is sensitive to it.
        exp_avg = jax.tree.map(
            lambda m, g: tree.scalar(k1, m.dtype) * m + tree.scalar(f1, m.dtype) * g,
            state.exp_avg, grads)
        exp_avg_sq = jax.tree.map(
            lambda v, g: tree.scalar(k2, v.dtype) * v + tree.scalar(f2, v.dtype) * g * g,
            state.exp_avg_sq, grads)
        t = step.number.astype(sd)
        bc1, bc2 = 1 - c(b1) ** t, 1 - c(b2) ** t
        precond = jax.tree.map(
            lambda v: dtypes.safe_eps(eps, v.dtype) + jnp.sqrt(v / bc2.astype(v.dtype)),
            exp_avg_sq)
        weighted = jax.tree.map(jnp.divide, exp_avg, precond)
        sq = _vdot(exp_avg, weighted, sd)
        gamma = c(k1) * state.gamma + c(f1) * _vdot(grads, x, sd)
        iprod = _vdot(exp_avg, x, sd)
        scale = c(1 + alpha * wd)
        lb = state.lb
        if self.adapt_lower_bound:
            cap = scale * (barf - gamma) + iprod
            lb = jnp.where(cap < scale * bc1 * state.lb,
                           jnp.maximum(cap / (2 * bc1 * scale), lower), lb)
        tau = _step_size(c(alpha) / bc1, scale * (barf - bc1 * lb - gamma) + iprod, sq)
        shrink = c(alpha * wd / (1 + alpha * wd))
        out = jax.tree.map(
            lambda u, m, d, p: (-shrink.astype(m.dtype) * p - tau.astype(m.dtype) * m / d).astype(
                u.dtype), updates, exp_avg, precond, x)
        new_lb = state.lb
        if self.adapt_lower_bound:
            new_lb = jnp.maximum(((barf + iprod - gamma) - c(0.5) * tau * sq) / bc1, lower)
        return out, MomoAdamState(exp_avg, exp_avg_sq, barf, gamma, new_lb)
