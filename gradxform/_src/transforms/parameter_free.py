r"""Learning-rate-free Adam: D-Adaptation and Prodigy estimate the step size as they go.

Both keep a lower bound :math:`d_k` on the distance :math:`D = \lVert x_0 - x_*\rVert` to the
solution, raised whenever the gradients seen so far prove a larger one, and take Adam steps of
size :math:`d_k` times a user multiplier (``learning_rate``, default 1, usually a schedule that
starts at 1 and decays). Because the estimate depends on the steps taken, the multiplier is an
argument of the transformation itself, which returns the final update (sign included).

Both work on real coordinates only: their estimates are inner products of real vectors, so
complex params are rejected with an error (split them into real and imaginary parts).
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_prodigy", "ProdigyState", "scale_by_dadapt_adamw", "DAdaptAdamWState"]


def _sqrt(x: Any) -> Any:
    """``sqrt(x)`` in double precision for a Python number, in JAX otherwise."""
    return x**0.5 if isinstance(x, numbers.Real) else jnp.sqrt(jnp.asarray(x))


def _reject_complex(tx: GradientTransformation, params: Any) -> None:
    for p in jax.tree.leaves(params):
        if jnp.issubdtype(dtypes.leaf_dtype(p), jnp.complexfloating):
            raise tx.error(
                f"does not support complex params (got a leaf of dtype {dtypes.leaf_dtype(p)}): "
                "its estimate of the distance to the solution is an inner product of real "
                "vectors. Optimise the real and imaginary parts as separate real leaves.",
                exc=TypeError)


def _vdot(a: Any, b: Any, dtype: Any) -> jax.Array:
    """``sum_leaves <a, b>`` in ``dtype``, leaf by leaf in tree order."""
    total = jnp.zeros([], dtype)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = x.astype(dtype), y.astype(dtype)
        dot = jnp.tensordot(x, y, x.ndim, precision=jax.lax.Precision.HIGHEST)
        # Non-finite terms are left out; the plain product is kept when every term is finite
        # (the same summation as without the guard).
        finite = jnp.isfinite(x) & jnp.isfinite(y)
        guarded = jnp.tensordot(jnp.where(finite, x, jnp.zeros_like(x)),
                                jnp.where(finite, y, jnp.zeros_like(y)), x.ndim,
                                precision=jax.lax.Precision.HIGHEST)
        total = total + jnp.where(jnp.isfinite(dot), dot, guarded)
    return total


def _l1(a: Any, dtype: Any) -> jax.Array:
    leaves = jax.tree.leaves(a)
    if not leaves:
        return jnp.zeros([], dtype)
    return tree.finite_total(leaves, jnp.abs).astype(dtype)  # inf and NaN left out


def _bias_correction(b1, b2, number, dtype, enabled):
    r""":math:`\sqrt{1 - \beta_2^t} / (1 - \beta_1^t)`, or 1."""
    if not enabled:
        return jnp.ones([], dtype)
    t = number.astype(dtype)
    return ((1 - tree.scalar(b2, dtype) ** t) ** tree.scalar(0.5, dtype)
            / (1 - tree.scalar(b1, dtype) ** t))


def _raise_estimate(old, numerator, denominator):
    """``max(old, numerator / denominator)``, keeping ``old`` while the denominator is 0."""
    positive = denominator > 0
    estimate = numerator / jnp.where(positive, denominator, jnp.ones_like(denominator))
    return jnp.where(positive, jnp.maximum(old, estimate), old)


class ProdigyState(NamedTuple):
    """State of :class:`scale_by_prodigy`: Adam's moments, the weighted gradient sum, the
    initial point (and whether it is known yet), the estimate d and its weighted numerator."""

    exp_avg: Any
    exp_avg_sq: Any
    grad_sum: Any
    params0: Any
    params0_known: jax.Array
    estim_lr: jax.Array
    numerator_weighted: jax.Array


@docs.args
class scale_by_prodigy(GradientTransformation):
    r"""Prodigy: Adam whose step size :math:`d_k` is estimated from the distance travelled.

    With :math:`\lambda_k` = ``learning_rate`` (a multiplier), :math:`\beta_3` (default
    :math:`\sqrt{\beta_2}`) and :math:`\eta_k = d_k \lambda_k \sqrt{1-\beta_2^k}/(1-\beta_1^k)`:

    .. math::
        m_k &= \beta_1 m_{k-1} + (1-\beta_1)\, d_k g_k, \qquad
        v_k = \beta_2 v_{k-1} + (1-\beta_2)\, d_k^2 g_k^2, \\
        r_k &= \beta_3 r_{k-1} + \frac{d_k}{d_0}\,\eta_k \langle g_k, x_0 - x_k\rangle,
        \qquad s_k = \beta_3 s_{k-1} + \frac{d_k}{d_0}\,\eta_k\, g_k, \\
        d_{k+1} &= \max\Big(d_k,\ c\,\frac{r_k}{\lVert s_k\rVert_1}\Big), \qquad
        u_k = -\eta_k\Big(\frac{m_k}{\sqrt{v_k} + d_{k+1}\epsilon} + \lambda\, x_k\Big)

    (``safeguard_warmup`` uses :math:`d_k` instead of :math:`\eta_k` in :math:`s_k`). The paper
    writes :math:`r` and :math:`s` as averages with a factor :math:`1-\beta_3`; it cancels in
    the ratio.

    Conventions. ``bias_correction=True`` (the factor :math:`\sqrt{1-\beta_2^k}/(1-\beta_1^k)`
    in :math:`\eta_k`) follows optax; the paper's algorithm and the authors' PyTorch code (its
    default ``use_bias_correction=False``) have no correction: pass ``bias_correction=False``.
    While :math:`\lVert s_k\rVert_1 = 0` (all gradients zero so far) the estimate is kept;
    optax divides 0 by 0 and its estimate becomes NaN. The initial point :math:`x_0` is the
    params given to ``init``, or, when ``init`` got ``jax.ShapeDtypeStruct`` leaves, the params
    of the first ``update``.

    Low-precision params. The first steps have size about :math:`d_0`: bfloat16 params near 1
    (spacing :math:`2^{-7}`) cannot represent steps below about 4e-3, so with the default
    :math:`d_0` = 1e-6 they never move, :math:`\langle g, x_0 - x\rangle` stays 0 and the
    estimate never grows. Keep float32 params (bfloat16 compute copies) or raise
    ``estim_lr0`` (1e-3 is still an under-estimate for weights of order 1).

    Args:
      learning_rate: the multiplier :math:`\lambda_k` >= 0 of the estimated step (a number,
        array or schedule); 1 uses the estimate as is.
      b1: first-moment decay :math:`\beta_1` in [0, 1).
      b2: second-moment decay :math:`\beta_2` in [0, 1).
      beta3: decay :math:`\beta_3` in [0, 1) of the estimate's sums; default
        :math:`\sqrt{\beta_2}`.
      <<eps>>
      estim_lr0: the initial under-estimate :math:`d_0` > 0.
      estim_lr_coef: the coefficient :math:`c` > 0 of the estimate.
      weight_decay: decoupled weight decay :math:`\lambda` >= 0, multiplied by
        :math:`\eta_k`.
      safeguard_warmup: leave the multiplier out of :math:`s_k` (helps with warm-up).
      bias_correction: include Adam's bias correction in :math:`\eta_k` (optax) or not (paper).
      <<accumulator_dtype>>

    References:
      Mishchenko & Defazio, *Prodigy: An Expeditiously Adaptive Parameter-Free Learner*,
      ICML 2024 (arXiv 2306.06101), the Adam version of the algorithm.
    """

    learning_rate: Hyper = hyper(default=1.0, interval="[0, inf)")
    b1: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="accumulator_dtype")
    b2: Hyper = hyper(default=0.999, interval="[0, 1)", decays_in="accumulator_dtype")
    beta3: Hyper = hyper(default=None, interval="[0, 1)")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    estim_lr0: Hyper = hyper(default=1e-6, interval="(0, inf)")
    estim_lr_coef: Hyper = hyper(default=1.0, interval="(0, inf)")
    weight_decay: Hyper = hyper(default=0.0, interval="[0, inf)")
    safeguard_warmup: bool = static(default=False)
    bias_correction: bool = static(default=True)
    accumulator_dtype: DType = static(default=None)
    uses_count = True
    flat_support = "elementwise"  # dot products over the whole tree

    def init_state(self, params):
        _reject_complex(self, params)
        acc = self.accumulator_dtype
        params0, known = tree.params_copy(params, acc)
        scalar_dtype = tree.real_accumulator_dtype(params, acc)
        return ProdigyState(
            tree.zeros_like(params, acc), tree.zeros_like(params, acc),
            tree.zeros_like(params, acc), params0, known,
            tree.scalar(self.estim_lr0, scalar_dtype), jnp.zeros([], scalar_dtype))

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        b1, b2 = step.value(self.b1), step.value(self.b2)
        beta3 = step.value(self.beta3)
        beta3 = _sqrt(b2) if beta3 is None else beta3
        eps, d0 = step.value(self.eps), step.value(self.estim_lr0)
        coef, decay = step.value(self.estim_lr_coef), step.value(self.weight_decay)
        sd = state.estim_lr.dtype
        s = lambda v: tree.scalar(v, sd)  # noqa: E731
        d = state.estim_lr
        bc = _bias_correction(b1, b2, step.number, sd, self.bias_correction)
        dlr = d * s(step.value(self.learning_rate)) * bc
        params0 = tree.fill_params_copy(state.params0, state.params0_known, params)
        grads = tree.cast_like(updates, state.exp_avg)
        x = tree.cast_like(params, state.exp_avg)
        numerator = _vdot(grads, jax.tree.map(lambda p0, p: p0 - p, params0, x), sd)
        (k1, f1), (k2, f2) = tree.complement(b1), tree.complement(b2)

        def moments(g, m, v, sk):
            c = lambda val: tree.scalar(val, m.dtype)  # noqa: E731
            dg = d.astype(m.dtype) * g
            m = c(k1) * m + c(f1) * dg
            v = c(k2) * v + c(f2) * dg * dg
            weight = (d if self.safeguard_warmup else dlr).astype(m.dtype)
            sk = c(beta3) * sk + weight * dg / c(d0)
            return m, v, sk

        exp_avg, exp_avg_sq, grad_sum = tree.unzip3(grads, jax.tree.map(
            moments, grads, state.exp_avg, state.exp_avg_sq, state.grad_sum))
        weighted = s(beta3) * state.numerator_weighted + (d / s(d0)) * dlr * numerator
        d_new = _raise_estimate(d, s(coef) * weighted, _l1(grad_sum, sd))

        def step_of(u, m, v, p):
            c = lambda val: val.astype(m.dtype)  # noqa: E731
            lr = c(dlr)
            out = (-tree.scalar(decay, m.dtype) * lr) * p - lr * m / (
                jnp.sqrt(v) + c(d_new) * tree.scalar(eps, m.dtype))
            return out.astype(u.dtype)

        out = jax.tree.map(step_of, updates, exp_avg, exp_avg_sq, x)
        return out, ProdigyState(exp_avg, exp_avg_sq, grad_sum, params0,
                                 jnp.ones([], jnp.bool_), d_new, weighted)


class DAdaptAdamWState(NamedTuple):
    """State of :class:`scale_by_dadapt_adamw`: Adam's moments (the first one scaled by the
    step), the weighted gradient sum, the estimate d and its weighted numerator."""

    exp_avg: Any
    exp_avg_sq: Any
    grad_sum: Any
    estim_lr: jax.Array
    numerator_weighted: jax.Array


@docs.args
class scale_by_dadapt_adamw(GradientTransformation):
    r"""D-Adaptation for AdamW: Adam whose step size is a running lower bound on :math:`D`.

    With :math:`\lambda_k` = ``learning_rate`` (a multiplier),
    :math:`\eta_k = d_k\lambda_k\sqrt{1-\beta_2^k}/(1-\beta_1^k)` and
    :math:`\beta_3 = \sqrt{\beta_2}`:

    .. math::
        r_k &= \beta_3 r_{k-1} + (1-\beta_3)\,\eta_k
              \Big\langle g_k, \frac{s_{k-1}}{\sqrt{v_{k-1}} + \epsilon}\Big\rangle, \\
        m_k &= \beta_1 m_{k-1} + (1-\beta_1)\,\eta_k g_k, \qquad
        v_k = \beta_2 v_{k-1} + (1-\beta_2)\, g_k^2, \qquad
        s_k = \beta_3 s_{k-1} + (1-\beta_3)\,\eta_k g_k, \\
        d_{k+1} &= \max\Big(d_k,\ \frac{r_k}{(1-\beta_3)\lVert s_k\rVert_1}\Big), \qquad
        u_k = -\frac{m_k}{\sqrt{v_k} + \epsilon} - \eta_k \lambda\, x_k

    The step size is inside :math:`m_k`, so a change of :math:`d` takes effect gradually.

    Conventions. ``bias_correction=True`` follows optax; the paper's algorithm and the
    authors' PyTorch code (default ``use_bias_correction=False``) have none: pass
    ``bias_correction=False``. While :math:`\lVert s_k\rVert_1 = 0` the estimate is kept (optax:
    NaN). It needs no copy of the initial point, so ``init`` takes abstract params as is.

    Args:
      learning_rate: the multiplier :math:`\lambda_k` >= 0 (a number, array or schedule).
      b1: first-moment decay :math:`\beta_1` in [0, 1).
      b2: second-moment decay :math:`\beta_2` in [0, 1).
      <<eps>>
      estim_lr0: the initial under-estimate :math:`d_0` > 0.
      weight_decay: decoupled weight decay :math:`\lambda` >= 0, multiplied by
        :math:`\eta_k`.
      bias_correction: include Adam's bias correction in :math:`\eta_k` (optax) or not (paper).
      <<accumulator_dtype>>

    References:
      Defazio & Mishchenko, *Learning-Rate-Free Learning by D-Adaptation*, ICML 2023 (arXiv
      2301.07733), the Adam version (D-Adapted Adam).
    """

    learning_rate: Hyper = hyper(default=1.0, interval="[0, inf)")
    b1: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="accumulator_dtype")
    b2: Hyper = hyper(default=0.999, interval="[0, 1)", decays_in="accumulator_dtype")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    estim_lr0: Hyper = hyper(default=1e-6, interval="(0, inf)")
    weight_decay: Hyper = hyper(default=0.0, interval="[0, inf)")
    bias_correction: bool = static(default=True)
    accumulator_dtype: DType = static(default=None)
    uses_count = True
    flat_support = "elementwise"  # dot products over the whole tree

    def init_state(self, params):
        _reject_complex(self, params)
        acc = self.accumulator_dtype
        scalar_dtype = tree.real_accumulator_dtype(params, acc)
        return DAdaptAdamWState(
            tree.zeros_like(params, acc), tree.zeros_like(params, acc),
            tree.zeros_like(params, acc), tree.scalar(self.estim_lr0, scalar_dtype),
            jnp.zeros([], scalar_dtype))

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        b1, b2 = step.value(self.b1), step.value(self.b2)
        eps, decay = step.value(self.eps), step.value(self.weight_decay)
        sb2 = _sqrt(b2)
        sd = state.estim_lr.dtype
        s = lambda v: tree.scalar(v, sd)  # noqa: E731
        bc = _bias_correction(b1, b2, step.number, sd, self.bias_correction)
        dlr = state.estim_lr * s(step.value(self.learning_rate)) * bc
        grads = tree.cast_like(updates, state.exp_avg)
        x = tree.cast_like(params, state.exp_avg)
        s_weighted = jax.tree.map(
            lambda sk, v: sk / (jnp.sqrt(v) + tree.scalar(eps, v.dtype)),
            state.grad_sum, state.exp_avg_sq)
        numerator = _vdot(grads, s_weighted, sd)
        (k1, f1), (k2, f2), (k3, f3) = (tree.complement(b1), tree.complement(b2),
                                        tree.complement(sb2))

        def moments(g, m, v, sk):
            c = lambda val: tree.scalar(val, m.dtype)  # noqa: E731
            lr = dlr.astype(m.dtype)
            return (c(k1) * m + c(f1) * lr * g, c(k2) * v + c(f2) * g * g,
                    c(k3) * sk + c(f3) * lr * g)

        exp_avg, exp_avg_sq, grad_sum = tree.unzip3(grads, jax.tree.map(
            moments, grads, state.exp_avg, state.exp_avg_sq, state.grad_sum))
        weighted = s(k3) * state.numerator_weighted + s(f3) * dlr * numerator
        d_new = _raise_estimate(state.estim_lr, weighted, s(f3) * _l1(grad_sum, sd))

        def step_of(u, m, v, p):
            lr = dlr.astype(m.dtype)
            out = (-tree.scalar(decay, m.dtype) * lr) * p - m / (
                jnp.sqrt(v) + tree.scalar(eps, m.dtype))
            return out.astype(u.dtype)

        out = jax.tree.map(step_of, updates, exp_avg, exp_avg_sq, x)
        return out, DAdaptAdamWState(exp_avg, exp_avg_sq, grad_sum, d_new, weighted)
