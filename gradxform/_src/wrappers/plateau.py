"""Reduce the step size when a monitored value stops improving (``reduce_on_plateau``)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import Hyper
from gradxform._src.wrappers._common import reject_schedule

__all__ = ["reduce_on_plateau", "ReduceOnPlateauState"]


def _work_dtype():
    return jnp.result_type(float)


class ReduceOnPlateauState(NamedTuple):
    """State of :class:`reduce_on_plateau`.

    Attributes:
      scale: the factor the updates are multiplied by (``gx.hyperparams`` reports it as
        ``"scale"``).
      best: the best window-mean value seen so far (+inf, or -inf when maximising, at first).
      plateau: int32 number of evaluations without improvement since the last improvement or
        reduction.
      cooldown: int32 number of evaluations left during which no reduction happens.
      window_sum: the sum of the values of the current window (``accumulation_size``).
    """

    scale: jax.Array
    best: jax.Array
    plateau: jax.Array
    cooldown: jax.Array
    window_sum: jax.Array


class reduce_on_plateau(GradientTransformation):
    r"""Multiply the updates by a scale that drops by ``factor`` when the loss plateaus.

    Feed it the monitored value with ``update(updates, state, params, value=loss)``. Every
    ``accumulation_size`` updates it evaluates the mean :math:`\bar v` of the values of that
    window. The value improves if

    .. math:: \bar v < v_{best} - r\,|v_{best}| - a

    (or :math:`\bar v > v_{best} + r|v_{best}| + a` with ``maximize=True``), with :math:`r` =
    ``rtol`` and :math:`a` = ``atol``. After more than ``patience`` evaluations without
    improvement the scale becomes :math:`\max(s \cdot` ``factor``, ``min_scale``:math:`)`, and
    the next ``cooldown`` evaluations cannot count as bad. Updates are :math:`u \leftarrow s\,u`.

    Put it after the optimizer: ``gx.chain(gx.adam(1e-3), gx.reduce_on_plateau())``. The
    window's position is read from the shared step count; the plateau and cooldown counters
    count evaluations, a clock of their own.

    Conventions. As torch's ``ReduceLROnPlateau`` (mode ``"min"``/``"max"``, threshold mode
    ``"rel"`` plus an absolute term): ``patience`` is the number of bad evaluations *tolerated*.
    optax's ``contrib.reduce_on_plateau`` reduces at the ``patience``-th bad evaluation (its
    ``patience=p`` is this ``patience=p - 1``), and its threshold :math:`(1 - r)v_{best}` is
    wrong for negative values (a worse value counts as an improvement): this one is relative to
    :math:`|v_{best}|`. Non-finite values never count as improvements.

    Args:
      factor: the factor in (0, 1) by which the scale drops.
      patience: the number >= 0 of evaluations without improvement tolerated.
      rtol: the relative improvement threshold in [0, 1].
      atol: the absolute improvement threshold >= 0.
      cooldown: evaluations >= 0 after a reduction during which no reduction happens.
      accumulation_size: the number >= 1 of values averaged into one evaluation (1 for a
        validation loss; more for noisy mini-batch losses).
      min_scale: the scale never drops below it, in [0, 1].
      maximize: monitor a value to maximise (an accuracy) instead of a loss.

    Example::

        opt = gx.chain(gx.adam(1e-3), gx.reduce_on_plateau(patience=5, accumulation_size=100))
        updates, state = opt.update(grads, state, params, value=loss)
        gx.hyperparams(opt, state)["scale"]
    """

    factor: Hyper = hyper(default=0.1, interval="(0, 1)")
    patience: Hyper = hyper(default=10, interval="[0, inf)", integer=True)
    rtol: Hyper = hyper(default=1e-4, interval="[0, 1]")
    atol: Hyper = hyper(default=0.0, interval="[0, inf)")
    cooldown: Hyper = hyper(default=0, interval="[0, inf)", integer=True)
    accumulation_size: Hyper = hyper(default=1, interval="[1, inf)", integer=True)
    min_scale: Hyper = hyper(default=0.0, interval="[0, 1]")
    maximize: bool = static(default=False, kw_only=True)
    uses_count = True
    flat_support = "elementwise"

    def check(self):
        reject_schedule(self, "patience", "cooldown", "accumulation_size")

    def init_state(self, params):
        work = _work_dtype()
        best = jnp.asarray(-jnp.inf if self.maximize else jnp.inf, work)
        return ReduceOnPlateauState(jnp.ones([], work), best, jnp.zeros([], jnp.int32),
                                    jnp.zeros([], jnp.int32), jnp.zeros([], work))

    def apply(self, updates, state, params, step):
        if "value" not in step.extra:
            raise self.error("needs the monitored value: call update(updates, state, params, "
                             "value=loss)")
        value = jnp.asarray(step.extra["value"])
        if value.shape != ():
            raise self.error(f"value must be a scalar, got shape {value.shape}")
        work = state.best.dtype
        value = value.astype(work)
        size = jnp.asarray(self.accumulation_size, jnp.int32)
        window_sum = state.window_sum + value
        full = step.count % size == size - 1
        mean = window_sum / size.astype(work)

        sign = -1.0 if self.maximize else 1.0
        margin = (tree.scalar(step.value(self.rtol), work) * jnp.abs(state.best)
                  + tree.scalar(step.value(self.atol), work))
        better = tree.scalar(sign, work) * (state.best - mean) > margin
        improved = jnp.isfinite(mean) & (jnp.logical_not(jnp.isfinite(state.best)) | better)
        best = jnp.where(improved, mean, state.best)
        plateau = jnp.where(improved, 0, tree.safe_increment(state.plateau))
        cooling = state.cooldown > 0
        cooldown = jnp.where(cooling, state.cooldown - 1, state.cooldown)
        plateau = jnp.where(cooling, 0, plateau)
        reduce = plateau > jnp.asarray(self.patience, jnp.int32)
        floor = tree.scalar(step.value(self.min_scale), work)
        scale = jnp.where(
            reduce, jnp.maximum(state.scale * tree.scalar(step.value(self.factor), work), floor),
            state.scale)
        cooldown = jnp.where(reduce, jnp.asarray(self.cooldown, jnp.int32), cooldown)
        plateau = jnp.where(reduce, 0, plateau)

        new = ReduceOnPlateauState(
            jnp.where(full, scale, state.scale), jnp.where(full, best, state.best),
            jnp.where(full, plateau, state.plateau), jnp.where(full, cooldown, state.cooldown),
            jnp.where(full, jnp.zeros_like(window_sum), window_sum))
        return jax.tree.map(lambda u: tree.scale_by(u, new.scale), updates), new

    def state_hyperparams(self, state):
        return {"scale": state.scale}
