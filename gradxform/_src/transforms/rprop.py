"""Rprop: per-coordinate step sizes adapted from the signs of successive gradients
(``scale_by_rprop``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.schedules import Schedule
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_rprop", "ScaleByRpropState"]


class ScaleByRpropState(NamedTuple):
    """State of :class:`scale_by_rprop`: the step sizes and the previous (signed) steps."""

    step_sizes: Any
    prev_updates: Any


@docs.args
class scale_by_rprop(GradientTransformation):
    r"""Rprop's signed, per-coordinate adaptive steps (iRprop- by default); the result is a
    *positive* multiple of the gradient's sign, to be negated (:func:`rprop` does).

    With :math:`s_t = \operatorname{sign}(g_t)\operatorname{sign}(g_{t-1})`, where
    :math:`g_{t-1}` is the previous step's gradient as remembered (see below):

    .. math::
        \Delta_t = \begin{cases}
            \operatorname{clip}(\eta^+ \Delta_{t-1}, \Delta_{min}, \Delta_{max}) & s_t > 0 \\
            \operatorname{clip}(\eta^- \Delta_{t-1}, \Delta_{min}, \Delta_{max}) & s_t < 0 \\
            \Delta_{t-1} & s_t = 0
        \end{cases}, \qquad
        u_t = \begin{cases} 0 & s_t < 0 \text{ (iRprop-)} \\
                            \Delta_t \operatorname{sign}(g_t) & \text{otherwise}\end{cases}

    with :math:`\Delta_0` = ``learning_rate``. In iRprop- a sign change also makes the
    remembered gradient 0, so the next step neither grows nor shrinks :math:`\Delta`.

    Conventions. The default is iRprop- (Igel & Hüsken 2000), which is what optax and torch
    implement: on a sign change the step size shrinks, no step is taken and the gradient is
    forgotten. ``skip_after_sign_change=False`` gives Rprop- (Riedmiller & Braun's rule without
    weight-backtracking): the step :math:`\Delta_t \operatorname{sign}(g_t)` is taken anyway and
    the gradient remembered. optax 0.2.8's ``scale_by_rprop`` returns the *previous* step's
    signed step (one step late: its first update is 0) although its state holds the current one;
    the states of the two agree exactly, the updates are one step apart. The state remembers
    :math:`\Delta_t\operatorname{sign}(g_t)` (0 after a skipped step), as optax's does; only its
    sign is used, so a product of tiny gradients cannot underflow to "no sign". Rprop uses only
    signs, so it rejects complex params.

    ``learning_rate`` is the initial step size, used once, by ``init``; it can be a number or
    an array, not a schedule.

    Args:
      learning_rate: the initial step size :math:`\Delta_0` > 0.
      eta_minus: :math:`\eta^-` in (0, 1], the factor applied on a sign change.
      eta_plus: :math:`\eta^+` >= 1, the factor applied when the sign is kept.
      min_step_size: :math:`\Delta_{min}` >= 0.
      max_step_size: :math:`\Delta_{max}` >= ``min_step_size``.
      skip_after_sign_change: iRprop- (True) or Rprop- (False).
      <<accumulator_dtype>>

    References:
      Riedmiller & Braun, *A Direct Adaptive Method for Faster Backpropagation Learning: The
      RPROP Algorithm*, IEEE ICNN 1993. Igel & Hüsken, *Improving the Rprop Learning
      Algorithm*, NC 2000 (iRprop-, Figure 1).
    """

    learning_rate: Hyper = hyper(interval="(0, inf)")
    eta_minus: Hyper = hyper(default=0.5, interval="(0, 1]")
    eta_plus: Hyper = hyper(default=1.2, interval="[1, inf)")
    min_step_size: Hyper = hyper(default=1e-6, interval="[0, inf)")
    max_step_size: Hyper = hyper(default=50.0, interval="[0, inf)")
    skip_after_sign_change: bool = static(default=True, kw_only=True)
    accumulator_dtype: DType = static(default=None, kw_only=True)
    flat_support = "elementwise"

    def check(self):
        if isinstance(self.learning_rate, Schedule):
            raise self.error("is the initial step size, used once by init: it must be a number "
                             "or an array, not a schedule", "learning_rate")
        lo, hi = self.min_step_size, self.max_step_size
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
            raise self.error(f"must be >= min_step_size ({lo}), got {hi}", "max_step_size")

    def init_state(self, params):
        for leaf in jax.tree.leaves(params):
            if jnp.issubdtype(dtypes.leaf_dtype(leaf), jnp.complexfloating):
                raise self.error(
                    f"does not support complex params (got a leaf of dtype "
                    f"{dtypes.leaf_dtype(leaf)}): Rprop adapts its steps to the signs of the "
                    "gradient, which complex numbers do not have. Optimise the real and "
                    "imaginary parts as separate real params instead.", exc=TypeError)
        return ScaleByRpropState(
            tree.full_like(params, self.learning_rate, self.accumulator_dtype),
            tree.zeros_like(params, self.accumulator_dtype))

    def apply(self, updates, state, params, step):
        eta_minus, eta_plus = step.value(self.eta_minus), step.value(self.eta_plus)
        lo, hi = step.value(self.min_step_size), step.value(self.max_step_size)

        def one(g, size, prev):
            dtype = size.dtype
            sign = jnp.sign(dtypes.cast(g, dtype))
            agreement = sign * jnp.sign(prev)
            factor = jnp.where(agreement > 0, tree.scalar(eta_plus, dtype),
                               tree.scalar(eta_minus, dtype))
            changed = jnp.clip(size * factor, tree.scalar(lo, dtype), tree.scalar(hi, dtype))
            size = jnp.where(agreement == 0, size, changed)
            signed = size * sign
            if self.skip_after_sign_change:
                signed = jnp.where(agreement < 0, jnp.zeros_like(signed), signed)
            return signed.astype(g.dtype), size, signed

        triples = jax.tree.map(one, updates, state.step_sizes, state.prev_updates)
        out, sizes, prev = tree.unzip3(updates, triples)
        return out, ScaleByRpropState(sizes, prev)
