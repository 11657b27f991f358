"""Dynamic loss scaling for float16 training, as Keras' ``LossScaleOptimizer``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, child, hyper, static, transformation
from gradxform._src.types import AxisName, Hyper
from gradxform._src.wrappers._common import cond_apply, inner_step, reject_schedule
from gradxform._src.wrappers.composition import check_nesting, windowed

__all__ = ["dynamic_loss_scale", "DynamicLossScaleState"]


class DynamicLossScaleState(NamedTuple):
    """State of :class:`dynamic_loss_scale`.

    Attributes:
      scale: float32, the loss scale to multiply the next loss by.
      good_steps: int32 number of finite steps since the scale last changed.
      skipped: int32 number of overflowing steps skipped since ``init``. The inner
        transformation's clock is the shared step count minus ``skipped``.
      inner: the inner transformation's state.
    """

    scale: jax.Array
    good_steps: jax.Array
    skipped: jax.Array
    inner: Any


@docs.args
class dynamic_loss_scale(GradientTransformation):
    r"""Dynamic loss scaling: unscale the gradients, skip overflowing steps, adapt the scale.

    In float16 small gradients underflow to zero. The user multiplies the loss by the current
    scale :math:`S` (``gx.hyperparams(opt, state)["loss_scale"]``) before differentiating; this
    wrapper divides the gradients by :math:`S` (in at least float32) and then

    * if any gradient is inf or NaN (an overflow): skips the step (zero updates, inner state and
      clock unchanged) and sets :math:`S \leftarrow \max(S \cdot b, S_{min})`;
    * otherwise: applies ``inner`` to the unscaled gradients, and after ``growth_interval``
      finite steps in a row sets :math:`S \leftarrow S \cdot g`.

    The inner transformation runs on its own clock (the number of steps it has applied). The
    returned updates have the gradients' dtype. Around :class:`accumulate` (its direct inner
    transformation) an overflowing micro-batch is dropped from its window, which still ends on
    time; the scale adapts at every micro-batch.

    Conventions. Defaults as Keras' ``LossScaleOptimizer`` and ``jmp``: initial scale
    :math:`2^{15}`, doubled after 2000 finite steps, halved on overflow.

    Args:
      <<inner>>
      initial_scale: the scale at ``init``, > 0.
      growth_interval: finite steps in a row after which the scale grows, >= 1.
      growth_factor: :math:`g` > 1.
      backoff_factor: :math:`b` in (0, 1).
      min_scale: :math:`S_{min}` > 0, the scale never goes below it.
      <<axis_name_finite>>

    Example::

        opt = gx.dynamic_loss_scale(gx.adam(1e-3))

        def step(params, state, batch):
            scale = gx.hyperparams(opt, state)["loss_scale"]
            grads = jax.grad(lambda p: loss(p, batch) * scale.astype(jnp.float16))(params)
            updates, state = opt.update(grads, state, params)
            return gx.apply_updates(params, updates), state

    References:
      Micikevicius et al., *Mixed Precision Training*, ICLR 2018.
    """

    composition_kind = "dynamic_loss_scale"  # its row and column in wrappers/composition.py

    inner: GradientTransformation = child(converter=transformation)
    initial_scale: Hyper = hyper(default=2.0**15, interval="(0, inf)")
    growth_interval: Hyper = hyper(default=2000, interval="[1, inf)", integer=True)
    growth_factor: Hyper = hyper(default=2.0, interval="(1, inf)")
    backoff_factor: Hyper = hyper(default=0.5, interval="(0, 1)")
    min_scale: Hyper = hyper(default=1.0, interval="(0, inf)")
    axis_name: AxisName = static(default=None)
    flat_support = "elementwise"


    def check(self):
        reject_schedule(self, "initial_scale", "growth_interval", "growth_factor",
                        "backoff_factor", "min_scale")
        check_nesting(self, self.inner)

    def init_state(self, params):
        return DynamicLossScaleState(jnp.asarray(self.initial_scale, jnp.float32),
                                     jnp.zeros([], jnp.int32), jnp.zeros([], jnp.int32),
                                     self.inner.init_state(params))

    def apply(self, updates, state, params, step):
        scale = state.scale

        def unscale(g):
            work = dtypes.wider(g.dtype, jnp.float32)
            return (g.astype(work) / scale.astype(dtypes.real_dtype(work))).astype(g.dtype)

        grads = jax.tree.map(unscale, updates)
        finite = tree.all_finite(grads, self.axis_name)
        if windowed(self.inner):  # accumulate drops the micro-batch and keeps its windows
            new_updates, inner_state = self.inner.accumulate(grads, state.inner, params, step,
                                                             finite)
        else:
            applied = None if step.count is None else step.count - state.skipped

            def inner_update():
                return self.inner.apply(grads, state.inner, params, inner_step(step, applied))

            new_updates, inner_state = cond_apply(finite, inner_update, state.inner)
        good = jnp.where(finite, tree.safe_increment(state.good_steps), 0)
        grow = good >= jnp.asarray(self.growth_interval, jnp.int32)
        top = jnp.asarray(jnp.finfo(jnp.float32).max, jnp.float32)
        grown = jnp.where(grow, jnp.minimum(scale * tree.scalar(self.growth_factor, jnp.float32),
                                            top), scale)
        shrunk = jnp.maximum(scale * tree.scalar(self.backoff_factor, jnp.float32),
                             tree.scalar(self.min_scale, jnp.float32))
        return new_updates, DynamicLossScaleState(
            jnp.where(finite, grown, shrunk),
            jnp.where(grow, jnp.zeros_like(good), good),
            state.skipped + jnp.logical_not(finite).astype(jnp.int32),
            inner_state,
        )

    def state_counters(self, state):
        return {"skipped": state.skipped}

    def links(self, state, step):
        if windowed(self.inner):
            return iter([(self.inner.name, self.inner, state.inner, step)])
        applied = None if step.count is None else step.count - state.skipped
        return iter([(self.inner.name, self.inner, state.inner, inner_step(step, applied))])

    def state_hyperparams(self, state):
        return {"loss_scale": state.scale}
