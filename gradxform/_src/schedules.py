"""Schedules as values: ``schedule(count) -> value`` objects whose numbers are pytree leaves.

A schedule can stand wherever a float hyperparameter is accepted (``adam(learning_rate=
cosine_decay_schedule(1e-3, 1000))``, ``trace(decay=linear_schedule(0.5, 0.9, 100))``). It is
evaluated at the step count of the optimizer state: ``count = 0`` on the first update. Like every
gradxform value, two schedules with the same arguments are equal and hash alike, and their
numbers can be vmapped over or changed without recompiling.

Values are computed in float32 (float64 with ``jax_enable_x64``); the transformation reading a
schedule casts the value to the dtype it computes in. Arguments given as Python numbers are
checked when the schedule is built; step counts must be whole numbers.

A plain Python function ``count -> value`` is accepted too (it is wrapped in
:class:`schedule_fn`), but it is compared by identity and its numbers are not leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from gradxform._src.module import Module, child, hyper, static

__all__ = [
    "Schedule", "as_schedule", "schedule_fn", "constant_schedule", "linear_schedule",
    "polynomial_schedule", "exponential_decay", "piecewise_constant_schedule",
    "cosine_decay_schedule", "warmup_cosine_decay_schedule", "join_schedules",
]


def _work_dtype():
    return jnp.result_type(float)


def _f(x: Any) -> jax.Array:
    return jnp.asarray(x, _work_dtype())


class Schedule(Module):
    """Base of schedules: a value mapping a step count to a hyperparameter value."""

    def __call__(self, count: Any) -> jax.Array:
        raise NotImplementedError


class schedule_fn(Schedule):
    """A schedule from a plain function ``count -> value`` (compared by identity)."""

    fn: Callable[[jax.Array], Any] = static()

    def check(self):
        if not callable(self.fn):
            raise self.error(f"must be callable, got {self.fn!r}", "fn", TypeError)

    def __call__(self, count):
        return jnp.asarray(self.fn(count))


def as_schedule(value: Any) -> Any:
    """Schedules and numbers pass through; plain callables become :class:`schedule_fn`."""
    if callable(value) and not isinstance(value, Module):
        return schedule_fn(value)
    return value


class constant_schedule(Schedule):
    """``v(t) = value``."""

    value: Any = hyper()

    def __call__(self, count):
        return _f(self.value) + jnp.zeros_like(_f(count))


class linear_schedule(Schedule):
    r"""Linear interpolation from ``init_value`` to ``end_value``.

    .. math:: v(t) = I + (E - I)\,\frac{\min(\max(t - B, 0), T)}{T}

    with :math:`B` = ``transition_begin``, :math:`T` = ``transition_steps``; ``T = 0`` keeps
    ``init_value`` forever.
    """

    init_value: Any = hyper()
    end_value: Any = hyper()
    transition_steps: Any = hyper(interval="[0, inf)", integer=True)
    transition_begin: Any = hyper(0, "[0, inf)", integer=True)

    def __call__(self, count):
        return polynomial_schedule.evaluate(
            self.init_value, self.end_value, 1.0, self.transition_steps, self.transition_begin,
            count,
        )


class polynomial_schedule(Schedule):
    r"""Polynomial decay from ``init_value`` to ``end_value``.

    .. math:: v(t) = (I - E)\left(1 - \frac{\min(\max(t - B, 0), T)}{T}\right)^P + E

    with :math:`P` = ``power``, :math:`B` = ``transition_begin``, :math:`T` =
    ``transition_steps``; ``T = 0`` keeps ``init_value`` forever.
    """

    init_value: Any = hyper()
    end_value: Any = hyper()
    power: Any = hyper(interval="(0, inf)")
    transition_steps: Any = hyper(interval="[0, inf)", integer=True)
    transition_begin: Any = hyper(0, "[0, inf)", integer=True)

    def __call__(self, count):
        return self.evaluate(self.init_value, self.end_value, self.power, self.transition_steps,
                             self.transition_begin, count)

    @staticmethod
    def evaluate(init_value, end_value, power, steps, begin, count):
        steps, count = _f(steps), _f(count)
        done = jnp.clip(count - _f(begin), 0, steps)
        frac = 1 - done / jnp.maximum(steps, 1)
        return (_f(init_value) - _f(end_value)) * frac ** _f(power) + _f(end_value)


class exponential_decay(Schedule):
    r"""Exponential decay, continuous or in steps.

    .. math:: v(t) = I \cdot r^{(t - B)/T} \quad (t > B), \qquad v(t) = I \quad (t \le B)

    with :math:`r` = ``decay_rate``, :math:`T` = ``transition_steps``, :math:`B` =
    ``transition_begin``. ``staircase=True`` floors the exponent (step decay: multiply by ``r``
    every ``T`` steps). ``end_value`` bounds the result (from below when ``r < 1``, from above
    when ``r > 1``).
    """

    init_value: Any = hyper()
    transition_steps: Any = hyper(interval="(0, inf)", integer=True)
    decay_rate: Any = hyper(interval="(0, inf)")
    transition_begin: Any = hyper(0, "[0, inf)", integer=True)
    staircase: bool = static(False)
    end_value: Any = hyper(None)

    def __call__(self, count):
        elapsed = _f(count) - _f(self.transition_begin)
        p = elapsed / _f(self.transition_steps)
        if self.staircase:
            p = jnp.floor(p)
        value = jnp.where(elapsed <= 0, _f(self.init_value),
                          _f(self.init_value) * _f(self.decay_rate) ** p)
        if self.end_value is not None:
            end = _f(self.end_value)
            value = jnp.where(_f(self.decay_rate) < 1, jnp.maximum(value, end),
                              jnp.minimum(value, end))
        return value


class cosine_decay_schedule(Schedule):
    r"""Cosine decay (Loshchilov & Hutter, 2017, SGDR without restarts).

    .. math:: v(t) = I\left[(1 - \alpha)\left(\tfrac12\left(1 + \cos\frac{\pi \min(t, T)}{T}
              \right)\right)^p + \alpha\right]

    with :math:`T` = ``decay_steps``, :math:`\alpha` = ``alpha`` (the final fraction of
    ``init_value``) and :math:`p` = ``exponent``.
    """

    init_value: Any = hyper()
    decay_steps: Any = hyper(interval="(0, inf)", integer=True)
    alpha: Any = hyper(0.0)
    exponent: Any = hyper(1.0, "(0, inf)")

    def __call__(self, count):
        steps = _f(self.decay_steps)
        t = jnp.minimum(_f(count), steps)
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * t / steps))
        alpha = _f(self.alpha)
        return _f(self.init_value) * ((1 - alpha) * cosine ** _f(self.exponent) + alpha)


class warmup_cosine_decay_schedule(Schedule):
    r"""Linear warmup from ``init_value`` to ``peak_value``, then cosine decay to ``end_value``.

    ``decay_steps`` is the total length of the schedule, warmup included (as in optax): the
    cosine part lasts ``decay_steps - warmup_steps`` steps.

    .. math:: v(t) = I + (P - I)\frac{t}{W} \quad (t < W), \qquad
              v(t) = E + (P - E)\left(\tfrac12\left(1 + \cos\frac{\pi\min(t - W, D - W)}
              {D - W}\right)\right)^p \quad (t \ge W)
    """

    init_value: Any = hyper()
    peak_value: Any = hyper()
    warmup_steps: Any = hyper(interval="[0, inf)", integer=True)
    decay_steps: Any = hyper(interval="(0, inf)", integer=True)
    end_value: Any = hyper(0.0)
    exponent: Any = hyper(1.0, "(0, inf)")

    def check(self):
        w, d = self.warmup_steps, self.decay_steps
        if isinstance(w, (int, float)) and isinstance(d, (int, float)) and not d > w:
            raise self.error(
                f"must be greater than warmup_steps: decay_steps is the total length of the "
                f"schedule, warmup included, so the cosine part would last {d - w} steps "
                f"(got warmup_steps={w}, decay_steps={d})",
                "decay_steps",
            )

    def __call__(self, count):
        count = _f(count)
        warm = polynomial_schedule.evaluate(self.init_value, self.peak_value, 1.0,
                                            self.warmup_steps, 0, count)
        peak, end = _f(self.peak_value), _f(self.end_value)
        steps = _f(self.decay_steps) - _f(self.warmup_steps)
        t = jnp.clip(count - _f(self.warmup_steps), 0, steps)
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * t / steps))
        safe_peak = jnp.where(peak == 0, 1.0, peak)
        alpha = jnp.where(peak == 0, 0.0, end / safe_peak)
        decayed = peak * ((1 - alpha) * cosine ** _f(self.exponent) + alpha)
        return jnp.where(count < _f(self.warmup_steps), warm, decayed)


class piecewise_constant_schedule(Schedule):
    r"""``init_value`` times the product of the scales whose boundary has been reached.

    .. math:: v(t) = I \prod_{i:\ t \ge b_i} s_i

    ``boundaries_and_scales`` maps step boundaries to scales, e.g. ``{1000: 0.1, 2000: 0.1}``.
    """

    init_value: Any = hyper()
    boundaries: tuple = child(())
    scales: tuple = child(())

    def __init__(self, init_value: Any,
                 boundaries_and_scales: Mapping[int, float] | None = None):
        items = sorted((boundaries_and_scales or {}).items())
        object.__setattr__(self, "init_value", init_value)
        object.__setattr__(self, "boundaries", tuple(b for b, _ in items))
        object.__setattr__(self, "scales", tuple(s for _, s in items))
        self.__post_init__()

    def check(self):
        for b, s in zip(self.boundaries, self.scales):
            if isinstance(b, bool) or not isinstance(b, int) or b < 0:
                raise self.error(f"keys must be whole step numbers >= 0, got {b!r}",
                                 "boundaries_and_scales")
            if isinstance(s, (int, float)) and not (s >= 0 and s < float("inf")):
                raise self.error(f"values must be finite scales >= 0, got {s!r} at step {b}",
                                 "boundaries_and_scales")

    def __call__(self, count):
        count = _f(count)
        value = _f(self.init_value) + jnp.zeros_like(count)
        for boundary, scale in zip(self.boundaries, self.scales):
            value = jnp.where(count >= _f(boundary), value * _f(scale), value)
        return value


class join_schedules(Schedule):
    """Run ``schedules[i]`` from ``boundaries[i-1]`` on, each restarted at count 0.

    ``boundaries`` are increasing step numbers, one fewer than ``schedules``.
    """

    schedules: tuple = child()
    boundaries: tuple = child()

    def __init__(self, schedules: Sequence[Any], boundaries: Sequence[int]):
        object.__setattr__(self, "schedules", tuple(as_schedule(s) for s in schedules))
        object.__setattr__(self, "boundaries", tuple(boundaries))
        self.__post_init__()

    def check(self):
        if len(self.schedules) == 0:
            raise self.error("needs at least one schedule", "schedules")
        if len(self.boundaries) != len(self.schedules) - 1:
            raise self.error(
                f"must have one entry fewer than schedules ({len(self.schedules) - 1}), got "
                f"{len(self.boundaries)}", "boundaries")
        for s in self.schedules:
            if not isinstance(s, Schedule):
                raise self.error(f"must be schedules, got {s!r}", "schedules", TypeError)
        concrete = [b for b in self.boundaries if isinstance(b, int)]
        if any(isinstance(b, bool) or b < 0 for b in concrete) or concrete != sorted(concrete):
            raise self.error(f"must be increasing step numbers >= 0, got {self.boundaries}",
                             "boundaries")

    def __call__(self, count):
        count = _f(count)
        value = self.schedules[0](count)
        for boundary, schedule in zip(self.boundaries, self.schedules[1:]):
            value = jnp.where(count < _f(boundary), value, schedule(count - _f(boundary)))
        return value
