r"""Schedule-Free learning: interpolation and averaging in place of momentum and a schedule.

The wrapper keeps the base optimizer's own iterate :math:`z` in its state; the params the user
holds (and takes gradients at) are the interpolation :math:`y`; the params to *evaluate* are the
average :math:`x`, recovered from :math:`y` and :math:`z` by :func:`schedule_free_eval_params`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import dtypes, tree
from gradxform._src.base import GradientTransformation, child, hyper, static, transformation
from gradxform._src.schedules import Schedule
from gradxform._src.types import DType, Hyper, PyTree

__all__ = ["schedule_free", "ScheduleFreeState", "schedule_free_eval_params"]


class ScheduleFreeState(NamedTuple):
    """State of :class:`schedule_free`: the interpolation ``b1`` (kept so that the evaluation
    params can be recovered from the state alone), the base iterate z (and whether it is known
    yet), the sum of averaging weights, the largest learning rate so far, the base optimizer's
    state."""

    b1: jax.Array
    z: Any
    z_known: jax.Array
    weight_sum: jax.Array
    max_lr: jax.Array
    base: Any


class schedule_free(GradientTransformation):
    r"""Make ``base_optimizer`` schedule-free (Defazio et al. 2024).

    With :math:`\beta` = ``b1``, :math:`\gamma_t` = ``learning_rate`` and the base optimizer's
    step :math:`\Delta_t` (for SGD :math:`-\gamma_t \nabla f(y_t)`):

    .. math::
        z_{t+1} &= z_t + \Delta_t(\nabla f(y_t)), \qquad
        c_{t+1} = \frac{w_t}{\sum_{i \le t} w_i}, \quad
        w_t = \big(\max_{i\le t}\gamma_i\big)^{p}, \\
        x_{t+1} &= (1 - c_{t+1})\, x_t + c_{t+1} z_{t+1}, \qquad
        y_{t+1} = \beta x_{t+1} + (1-\beta)\, z_{t+1}

    The params are :math:`y` (gradients are taken there); :math:`x_t = (y_t - (1-\beta)
    z_t)/\beta` is not stored but recovered by :func:`schedule_free_eval_params`: evaluate and
    checkpoint for inference with those. :math:`z_1 = x_1 = y_1` are the params given to
    ``init`` (or, for ``jax.ShapeDtypeStruct`` leaves, those of the first ``update``). The base
    optimizer should have no momentum of its own (``b1=0`` for Adam): the interpolation replaces
    it.

    Conventions. As optax's ``contrib.schedule_free``: the averaging weight uses the running
    maximum of the learning rate raised to ``weight_lr_power`` (the authors' code; the paper's
    Algorithm 1 uses :math:`\gamma_t^2`, the same for a warm-up followed by a constant), and a
    scheduled ``learning_rate`` is read for the weight at the 1-based step number while the base
    optimizer reads its own at the 0-based count (with a constant rate the two agree). ``z``
    and the scalar statistics are kept in float32 for bfloat16/float16 params (the dtype
    policy; optax keeps them in the params' dtype), or in ``state_dtype``.

    Args:
      base_optimizer: the optimizer whose steps move :math:`z` (gradxform or optax). It sees
        the same step count and the current params :math:`y`.
      learning_rate: :math:`\gamma_t` >= 0 for the averaging weights (the base optimizer's
        learning rate: the same number or schedule).
      b1: the interpolation :math:`\beta` in (0, 1], a constant (the evaluation params are
        recovered with it).
      weight_lr_power: :math:`p` >= 0.
      state_dtype: dtype of :math:`z` and the statistics (default by the dtype policy).

    Example::

        opt = gx.schedule_free(gx.sgd(1.0), learning_rate=1.0, b1=0.9)
        ...
        eval_params = gx.schedule_free_eval_params(state, params)

    References:
      Defazio, Yang, Mehta, Mishchenko, Khaled, Cutkosky, *The Road Less Scheduled*, NeurIPS
      2024 (arXiv 2405.15682), Algorithm 1.
    """

    base_optimizer: GradientTransformation = child(converter=transformation)
    learning_rate: Hyper = hyper(interval="[0, inf)")
    b1: Hyper = hyper(default=0.9, interval="(0, 1]")
    weight_lr_power: Hyper = hyper(default=2.0, interval="[0, inf)")
    state_dtype: DType = static(default=None)
    label: str | None = static(default=None, kw_only=True)
    flat_support = "elementwise"


    def check(self):
        if isinstance(self.b1, Schedule):
            raise self.error("must be a constant, not a schedule: the evaluation params are "
                             "recovered from y and z with it", "b1")

    @property
    def name(self) -> str:
        return self.label or "schedule_free"

    def init_state(self, params):
        z, known = tree.params_copy(params, self.state_dtype)
        scalar_dtype = tree.real_accumulator_dtype(params, self.state_dtype)
        weight_sum, max_lr = jnp.zeros([], scalar_dtype), jnp.zeros([], scalar_dtype)  # distinct
        return ScheduleFreeState(tree.scalar(self.b1, scalar_dtype), z, known, weight_sum, max_lr,
                                 self.base_optimizer.init_state(params))

    def apply(self, updates, state, params, step):
        y = self.require_params(params)
        z = tree.fill_params_copy(state.z, state.z_known, y)
        sd = state.max_lr.dtype
        lr = self.learning_rate
        if isinstance(lr, Schedule):
            lr = lr(step.number)
        max_lr = jnp.maximum(state.max_lr, tree.scalar(lr, sd))
        weight = max_lr ** tree.scalar(step.value(self.weight_lr_power), sd)
        total = state.weight_sum + weight
        positive = total > 0
        ratio = jnp.nan_to_num(weight / jnp.where(positive, total, jnp.ones_like(total)),
                               nan=0.0, posinf=jnp.inf)
        ck = jnp.where(jnp.isnan(weight) | jnp.isnan(total), jnp.full([], jnp.nan, sd),
                       jnp.where(positive, ratio, jnp.zeros_like(ratio)))

        base_updates, base_state = self.base_optimizer.apply(updates, state.base, y, step)
        b1, rest = tree.complement(self.b1)

        def one(u, yi, zi, step_i):
            # With x = (y - (1-b) z)/b, the new y minus the old one is, in closed form,
            #   y' - y = (1 - b + c b) s + c (z - y)       (s the base step, c = c_{t+1}),
            # so no update is formed as the difference of two nearby iterates: zero
            # gradients (s = 0, z = y) and a zero learning rate (s = 0, c = 0) give exactly 0.
            c = lambda v: tree.scalar(v, zi.dtype)  # noqa: E731
            yw = dtypes.cast(jnp.asarray(yi), zi.dtype)
            s = dtypes.cast(step_i, zi.dtype)
            ckd = ck.astype(zi.dtype)
            delta = (c(rest) + ckd * c(b1)) * s + ckd * (zi - yw)
            return delta.astype(u.dtype), zi + s

        out, z_new = tree.unzip2(updates, jax.tree.map(one, updates, y, z, base_updates))
        return out, ScheduleFreeState(tree.scalar(self.b1, sd), z_new, jnp.ones([], jnp.bool_),
                                      total, max_lr, base_state)

    def links(self, state, step):
        return iter([("base_optimizer", self.base_optimizer, state.base, step)])


def _schedule_free_state(state: PyTree) -> ScheduleFreeState:
    where = "schedule_free_eval_params"
    found = [s for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, ScheduleFreeState))
             if isinstance(s, ScheduleFreeState)]
    if not found:
        raise ValueError(f"{where}: the state holds no ScheduleFreeState; give the state of an "
                         f"optimizer that contains schedule_free (schedule_free_sgd, "
                         f"schedule_free_adamw, schedule_free(...))")
    if len(found) > 1:
        raise ValueError(f"{where}: the state holds {len(found)} ScheduleFreeStates; give the "
                         f"part of the state of the one to evaluate (state.inner[...])")
    return found[0]


def schedule_free_eval_params(state: PyTree, params: PyTree) -> PyTree:
    r"""The params to evaluate a schedule-free optimizer at: the average :math:`x`.

    Training keeps the interpolation :math:`y` in ``params``; this recovers
    :math:`x = (y - (1-\beta) z)/\beta` with the :math:`\beta` and :math:`z` of ``state``. Use
    it for validation, testing and the checkpoint used for inference. Works inside jit.

    Conventions. As ``optax.contrib.schedule_free_eval_params``; ``state`` may be the whole
    state of an optimizer containing one :class:`schedule_free` (a chain, a wrapper), not only
    its :class:`ScheduleFreeState`.

    Args:
      state: the optimizer's state (or the :class:`ScheduleFreeState` in it).
      params: the current (training) params :math:`y`.

    Returns:
      A tree like ``params`` (same dtypes).

    Example::

        opt = gx.schedule_free_adamw(1e-3)
        ...
        loss = eval_loss(gx.schedule_free_eval_params(opt_state, params))
    """
    sf_state = _schedule_free_state(state)
    z = tree.fill_params_copy(sf_state.z, sf_state.z_known, params)

    def one(yi, zi):
        yi = jnp.asarray(yi)
        work = dtypes.wider(yi.dtype, zi.dtype)
        b1 = sf_state.b1.astype(work)
        x = (yi.astype(work) - (1 - b1) * zi.astype(work)) / b1
        return x.astype(yi.dtype)

    return jax.tree.map(one, params, z)
