"""AdEMAMix: Adam with a mixture of a fast and a slow momentum (``scale_by_ademamix``), and the
warm-up schedules of its slow momentum (``ademamix_alpha_schedule``, ``ademamix_b3_schedule``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.schedules import Schedule
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_ademamix", "ScaleByAdemamixState", "ademamix_alpha_schedule",
           "ademamix_b3_schedule"]


class ScaleByAdemamixState(NamedTuple):
    """State of :class:`scale_by_ademamix`: fast and slow first moments, second moment."""

    m1: Any
    m2: Any
    nu: Any


@docs.args
class scale_by_ademamix(GradientTransformation):
    r"""Rescale updates by AdEMAMix: Adam's step plus a slow, undebiased momentum.

    .. math::
        m^{(1)}_t = \beta_1 m^{(1)}_{t-1} + (1 - \beta_1) g_t, \qquad
        m^{(2)}_t = \beta_3 m^{(2)}_{t-1} + (1 - \beta_3) g_t, \\
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) |g_t|^2, \qquad
        u_t = \frac{m^{(1)}_t / (1 - \beta_1^t) + \alpha\, m^{(2)}_t}
                   {\sqrt{v_t / (1 - \beta_2^t) + \epsilon_{root}} + \epsilon}

    with :math:`t` the 1-based step number. The slow moment :math:`m^{(2)}` is not
    bias-corrected, so that it fills slowly. ``b3`` and ``alpha`` are usually warmed up with
    :class:`ademamix_b3_schedule` and :class:`ademamix_alpha_schedule`, as in the paper.

    Conventions. As Pagliardini et al.'s Algorithm 1 and optax. optax's ``scale_by_ademamix``
    defaults to ``alpha=6`` and its ``ademamix`` to ``alpha=5`` (the paper's value); both
    default to 5 here.

    Args:
      b1: :math:`\beta_1` in [0, 1), decay of the fast moment.
      b2: :math:`\beta_2` in [0, 1), decay of the second moment.
      b3: :math:`\beta_3` in [0, 1), decay of the slow moment (a number or a schedule).
      alpha: :math:`\alpha` >= 0, the weight of the slow moment (a number or a schedule).
      <<eps>>
      <<eps_root>>
      <<mu_dtype>>
      <<nu_dtype>>

    References:
      Pagliardini, Ablin, Grangier, *The AdEMAMix Optimizer: Better, Faster, Older*, ICLR 2025,
      arXiv:2409.03137 (Algorithm 1).
    """

    b1: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="mu_dtype")
    b2: Hyper = hyper(default=0.999, interval="[0, 1)", decays_in="nu_dtype")
    b3: Hyper = hyper(default=0.9999, interval="[0, 1)", decays_in="mu_dtype")
    alpha: Hyper = hyper(default=5.0, interval="[0, inf)")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    eps_root: Hyper = hyper(default=0.0, interval="[0, inf)")
    mu_dtype: DType = static(default=None)
    nu_dtype: DType = static(default=None, kw_only=True)
    uses_count = True

    def init_state(self, params):
        return ScaleByAdemamixState(tree.zeros_like(params, self.mu_dtype),
                                    tree.zeros_like(params, self.mu_dtype),
                                    tree.full_like(params, 0.0, self.nu_dtype, real=True))

    def apply(self, updates, state, params, step):
        b1, b2, b3 = step.value(self.b1), step.value(self.b2), step.value(self.b3)
        alpha = step.value(self.alpha)
        m1 = tree.update_moment(updates, state.m1, b1, 1)
        m2 = tree.update_moment(updates, state.m2, b3, 1)
        nu = tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
        m1_hat = tree.bias_correction(m1, b1, step.number)
        nu_hat = tree.bias_correction(nu, b2, step.number)
        mixed = jax.tree.map(lambda a, b: a + tree.scalar(alpha, b.dtype) * b, m1_hat, m2)
        out = tree.divide_by_root(mixed, nu_hat, step.value(self.eps),
                                  step.value(self.eps_root), updates)
        return out, ScaleByAdemamixState(m1, m2, nu)


def _work(x: Any) -> jax.Array:
    return jnp.asarray(x, jnp.result_type(float))


class ademamix_alpha_schedule(Schedule):
    r"""AdEMAMix's linear warm-up of :math:`\alpha`: :math:`\alpha(t) = \min(t\alpha/T, \alpha)`.

    Evaluated at the 1-based step number :math:`t` = ``count + 1``, as in the paper's
    Algorithm 1 and code (the bias corrections use the same :math:`t`).

    Args:
      alpha: the final :math:`\alpha` >= 0.
      warmup_steps: :math:`T` >= 0, a whole number (0: :math:`\alpha` from the start).

    References:
      Pagliardini, Ablin, Grangier, *The AdEMAMix Optimizer: Better, Faster, Older*, ICLR 2025
      (section 3, "Schedulers for alpha and beta3").
    """

    alpha: Hyper = hyper(interval="[0, inf)")
    warmup_steps: Hyper = hyper(interval="[0, inf)", integer=True)

    def __call__(self, count):
        t, steps, alpha = _work(count) + 1, _work(self.warmup_steps), _work(self.alpha)
        frac = jnp.where(steps > 0, t / jnp.maximum(steps, 1), jnp.ones_like(t))
        return jnp.minimum(frac * alpha, alpha)


class ademamix_b3_schedule(Schedule):
    r"""AdEMAMix's warm-up of :math:`\beta_3`: linear in the half-life, from ``b_start``.

    .. math::
        \beta_3(t) = \min\left(\exp\frac{\ln\beta_{start}\,\ln\beta_3}
            {(1 - t/T)\ln\beta_3 + (t/T)\ln\beta_{start}},\ \beta_3\right)

    for :math:`t < T`, and :math:`\beta_3` after; the half-life
    :math:`\ln\tfrac12 / \ln\beta` grows linearly from that of :math:`\beta_{start}` to that
    of :math:`\beta_3`. Evaluated at the 1-based step number :math:`t` = ``count + 1``.

    Args:
      b3: the final :math:`\beta_3` in (0, 1).
      warmup_steps: :math:`T` >= 0, a whole number (0: :math:`\beta_3` from the start).
      b_start: :math:`\beta_{start}` in (0, 1); the paper uses :math:`\beta_1`.

    References:
      Pagliardini, Ablin, Grangier, *The AdEMAMix Optimizer: Better, Faster, Older*, ICLR 2025
      (section 3, "Schedulers for alpha and beta3").
    """

    b3: Hyper = hyper(interval="(0, 1)")
    warmup_steps: Hyper = hyper(interval="[0, inf)", integer=True)
    b_start: Hyper = hyper(default=0.9, interval="(0, 1)")

    def __call__(self, count):
        t, steps = _work(count) + 1, _work(self.warmup_steps)
        # log(b) as log1p(-(1 - b)), with 1 - b formed before any cast: log near 1 in float32
        # would otherwise lose most digits of a b3 like 0.9999.
        log_end = jnp.log1p(-_work(tree.complement(self.b3)[1]))
        log_start = jnp.log1p(-_work(tree.complement(self.b_start)[1]))
        frac = jnp.where(steps > 0, jnp.minimum(t / jnp.maximum(steps, 1), 1), jnp.ones_like(t))
        value = jnp.exp(log_start * log_end / ((1 - frac) * log_end + frac * log_start))
        return jnp.minimum(value, _work(self.b3))
