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

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from gradxform._src.module import Module, api, argument_error, child, field_of, hyper, static
from gradxform._src.types import Hyper, Numeric

__all__ = [
    "Schedule", "as_schedule", "schedule_fn", "constant_schedule", "linear_schedule",
    "polynomial_schedule", "exponential_decay", "piecewise_constant_schedule",
    "cosine_decay_schedule", "warmup_cosine_decay_schedule", "join_schedules",
    "warmup_constant_schedule", "warmup_exponential_decay_schedule",
    "piecewise_interpolate_schedule", "linear_onecycle_schedule", "cosine_onecycle_schedule",
    "sgdr_schedule", "cosine_decay_restarts", "cyclic_schedule", "inverse_time_decay",
    "inverse_sqrt_schedule", "multiply_schedules",
]


def _work_dtype():
    return jnp.result_type(float)


def _f(x: Any) -> jax.Array:
    return jnp.asarray(x, _work_dtype())


def _divmod_steps(count: Any, period: jax.Array) -> tuple[jax.Array, jax.Array] | None:
    """``(count // period, count % period)`` in float, computed exactly in integers when the
    count is an integer (a step count): float32 holds whole numbers only up to 2**24, so a
    float position within a short cycle would be off by up to 128 steps near 2**31 - 1.
    ``None`` for a float count."""
    count = jnp.asarray(count)
    if not jnp.issubdtype(count.dtype, jnp.integer):
        return None
    whole = jnp.maximum(jnp.round(period), 1).astype(count.dtype)
    done = count // whole
    return done.astype(_work_dtype()), (count - whole * done).astype(_work_dtype())


class Schedule(Module):
    """Base of schedules: a value mapping a step count to a hyperparameter value.

    Schedules multiply: ``schedule * other`` and ``0.5 * schedule`` give a
    :class:`multiply_schedules` value.
    """

    def __call__(self, count: Any) -> jax.Array:
        raise NotImplementedError

    def __mul__(self, other: Any) -> multiply_schedules:
        if not _is_factor(other):
            return NotImplemented
        return multiply_schedules(first=self, second=other)

    def __rmul__(self, other: Any) -> multiply_schedules:
        if not _is_factor(other):
            return NotImplemented
        return multiply_schedules(first=other, second=self)


def _is_factor(x: Any) -> bool:
    return isinstance(x, (Schedule, int, float)) and not isinstance(x, bool) or (
        hasattr(x, "shape") and hasattr(x, "dtype"))


def _numbers(module: Module, *fields: str) -> tuple[float, ...] | None:
    """The named fields if every one is a concrete Python number (so relations can be checked),
    else ``None``."""
    values = tuple(getattr(module, f) for f in fields)
    return values if all(isinstance(v, (int, float)) for v in values) else None


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
        return schedule_fn(fn=value)
    return value


def _schedules(values: Sequence[Any]) -> tuple:
    """Field converter: a sequence of schedules (plain functions wrapped)."""
    return tuple(as_schedule(v) for v in values)


def _is_schedule(value: Any) -> bool:
    return isinstance(value, Schedule)


def factor(default: Any = dataclasses.MISSING) -> Any:
    """A field holding a schedule, a number or an array (the factors of a product)."""
    return hyper(default, converter=as_schedule, accepts=_is_schedule,
                 accepts_phrase="a real number, an array or a schedule")


class constant_schedule(Schedule):
    """``v(t) = value``."""

    value: Numeric = hyper()

    def __call__(self, count):
        return _f(self.value) + jnp.zeros_like(_f(count))


class linear_schedule(Schedule):
    r"""Linear interpolation from ``init_value`` to ``end_value``.

    .. math:: v(t) = I + (E - I)\,\frac{\min(\max(t - B, 0), T)}{T}

    with :math:`B` = ``transition_begin``, :math:`T` = ``transition_steps``; ``T = 0`` keeps
    ``init_value`` forever.
    """

    init_value: Numeric = hyper()
    end_value: Numeric = hyper()
    transition_steps: Numeric = hyper(interval="[0, inf)", integer=True)
    transition_begin: Numeric = hyper(default=0, interval="[0, inf)", integer=True)

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

    init_value: Numeric = hyper()
    end_value: Numeric = hyper()
    power: Numeric = hyper(interval="(0, inf)")
    transition_steps: Numeric = hyper(interval="[0, inf)", integer=True)
    transition_begin: Numeric = hyper(default=0, interval="[0, inf)", integer=True)

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

    init_value: Numeric = hyper()
    transition_steps: Numeric = hyper(interval="(0, inf)", integer=True)
    decay_rate: Numeric = hyper(interval="(0, inf)")
    transition_begin: Numeric = hyper(default=0, interval="[0, inf)", integer=True)
    staircase: bool = static(default=False)
    end_value: Numeric = hyper(default=None)

    def __call__(self, count):
        return self.evaluate(self.init_value, self.transition_steps, self.decay_rate,
                             self.transition_begin, self.staircase, self.end_value, count)

    @staticmethod
    def evaluate(init_value, transition_steps, decay_rate, transition_begin, staircase,
                 end_value, count):
        elapsed = _f(count) - _f(transition_begin)
        p = elapsed / _f(transition_steps)
        if staircase:
            p = jnp.floor(p)
        value = jnp.where(elapsed <= 0, _f(init_value), _f(init_value) * _f(decay_rate) ** p)
        if end_value is not None:
            end = _f(end_value)
            value = jnp.where(_f(decay_rate) < 1, jnp.maximum(value, end),
                              jnp.minimum(value, end))
        return value


class cosine_decay_schedule(Schedule):
    r"""Cosine decay (Loshchilov & Hutter, 2017, SGDR without restarts).

    .. math:: v(t) = I\left[(1 - \alpha)\left(\tfrac12\left(1 + \cos\frac{\pi \min(t, T)}{T}
              \right)\right)^p + \alpha\right]

    with :math:`T` = ``decay_steps``, :math:`\alpha` = ``alpha`` (the final fraction of
    ``init_value``) and :math:`p` = ``exponent``.
    """

    init_value: Numeric = hyper()
    decay_steps: Numeric = hyper(interval="(0, inf)", integer=True)
    alpha: Numeric = hyper(default=0.0)
    exponent: Numeric = hyper(default=1.0, interval="(0, inf)")

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

    init_value: Numeric = hyper()
    peak_value: Numeric = hyper()
    warmup_steps: Numeric = hyper(interval="[0, inf)", integer=True)
    decay_steps: Numeric = hyper(interval="(0, inf)", integer=True)
    end_value: Numeric = hyper(default=0.0)
    exponent: Numeric = hyper(default=1.0, interval="(0, inf)")

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


def _check_boundaries_and_scales(
        schedule: piecewise_constant_schedule | piecewise_interpolate_schedule) -> None:
    for b, s in zip(schedule.boundaries, schedule.scales):
        if isinstance(b, bool) or not isinstance(b, int) or b < 0:
            raise schedule.error(f"keys must be whole step numbers >= 0, got {b!r}",
                                 "boundaries_and_scales")
        if isinstance(s, (int, float)) and not (s >= 0 and s < float("inf")):
            raise schedule.error(f"values must be finite scales >= 0, got {s!r} at step {b}",
                                 "boundaries_and_scales")


class piecewise_constant_schedule(Schedule):
    r"""``init_value`` times the product of the scales whose boundary has been reached.

    .. math:: v(t) = I \prod_{i:\ t \ge b_i} s_i

    ``boundaries_and_scales`` maps step boundaries to scales, e.g. ``{1000: 0.1, 2000: 0.1}``.
    """

    init_value: Numeric = hyper()
    boundaries: tuple = child(default=())
    scales: tuple = child(default=())

    def __init__(self, init_value: Any,
                 boundaries_and_scales: Mapping[int, float] | None = None):
        items = sorted((boundaries_and_scales or {}).items())
        self.__init_fields__(init_value=init_value, boundaries=tuple(b for b, _ in items),
                             scales=tuple(s for _, s in items))

    def check(self):
        _check_boundaries_and_scales(self)

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

    schedules: Sequence[Any] = child(converter=_schedules)   # stored as tuples
    boundaries: Sequence[Any] = child(converter=tuple)

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


# --------------------------------------------------------------------------------------------
# Warmup followed by a constant or an exponential decay.


def _warmup(init_value, peak_value, warmup_steps, count):
    """Linear from ``init_value`` (count 0) to ``peak_value`` (count ``warmup_steps``)."""
    steps = _f(warmup_steps)
    frac = jnp.clip(count, 0, steps) / jnp.maximum(steps, 1)
    return _f(init_value) + (_f(peak_value) - _f(init_value)) * frac


class warmup_constant_schedule(Schedule):
    r"""Linear warmup from ``init_value`` to ``peak_value``, then constant.

    .. math:: v(t) = I + (P - I)\frac{t}{W} \quad (t < W), \qquad v(t) = P \quad (t \ge W)

    Conventions. ``warmup_steps=0`` starts at ``peak_value`` (optax keeps ``init_value``
    forever in that case).

    Args:
      init_value: :math:`I`, the value at step 0.
      peak_value: :math:`P`, the value from step :math:`W` on.
      warmup_steps: :math:`W` >= 0, the length of the warmup.
    """

    init_value: Numeric = hyper()
    peak_value: Numeric = hyper()
    warmup_steps: Numeric = hyper(interval="[0, inf)", integer=True)

    def __call__(self, count):
        count = _f(count)
        warm = _warmup(self.init_value, self.peak_value, self.warmup_steps, count)
        return jnp.where(count < _f(self.warmup_steps), warm, _f(self.peak_value))


class warmup_exponential_decay_schedule(Schedule):
    r"""Linear warmup from ``init_value`` to ``peak_value``, then exponential decay.

    .. math:: v(t) = I + (P - I)\frac{t}{W} \quad (t < W), \qquad
              v(t) = \mathrm{exponential\_decay}(P, T, r, B, \ldots)(t - W) \quad (t \ge W)

    The decay restarts its clock at the end of the warmup: ``transition_begin`` counts from
    there (as in optax).

    Args:
      init_value: :math:`I`, the value at step 0.
      peak_value: :math:`P`, the value at the end of the warmup.
      warmup_steps: :math:`W` >= 0, the length of the warmup.
      transition_steps: :math:`T` > 0, see :class:`exponential_decay`.
      decay_rate: :math:`r` > 0.
      transition_begin: steps after the warmup during which the value stays at ``peak_value``.
      staircase: decay in steps of :math:`T`.
      end_value: a bound on the decayed value (from below if :math:`r < 1`).
    """

    init_value: Numeric = hyper()
    peak_value: Numeric = hyper()
    warmup_steps: Numeric = hyper(interval="[0, inf)", integer=True)
    transition_steps: Numeric = hyper(interval="(0, inf)", integer=True)
    decay_rate: Numeric = hyper(interval="(0, inf)")
    transition_begin: Numeric = hyper(default=0, interval="[0, inf)", integer=True)
    staircase: bool = static(default=False)
    end_value: Numeric = hyper(default=None)

    def __call__(self, count):
        count = _f(count)
        warm = _warmup(self.init_value, self.peak_value, self.warmup_steps, count)
        decayed = exponential_decay.evaluate(
            self.peak_value, self.transition_steps, self.decay_rate, self.transition_begin,
            self.staircase, self.end_value, count - _f(self.warmup_steps))
        return jnp.where(count < _f(self.warmup_steps), warm, decayed)


# --------------------------------------------------------------------------------------------
# Piecewise interpolation and the one-cycle policy.


def _interpolate(kind: str, start, end, pct):
    if kind == "linear":
        return start + (end - start) * pct
    return end + (start - end) * 0.5 * (1 + jnp.cos(jnp.pi * pct))


def _piecewise(kind: str, init_value, boundaries, scales, count):
    """Interpolate between ``init_value * prod(scales[:i])`` at ``boundaries[i-1]`` (0 first)."""
    count = _f(count)
    values = [_f(init_value)]
    for s in scales:
        values.append(values[-1] * _f(s))
    bounds = [_f(0)] + [_f(b) for b in boundaries]
    value = values[-1] + jnp.zeros_like(count)
    for i in reversed(range(len(boundaries))):
        lo, hi = bounds[i], bounds[i + 1]
        pct = (count - lo) / jnp.maximum(hi - lo, 1)
        value = jnp.where(count < hi, _interpolate(kind, values[i], values[i + 1], pct), value)
    return value


def _steps_of(fraction, total):
    """``floor(fraction * total)``, robust to the float32 rounding of the product.

    A product within 4 ulp of a whole number counts as that number, so ``0.7 * 10`` is step 7
    even though float32 computes 6.9999995.
    """
    x = _f(fraction) * _f(total)
    nearest = jnp.round(x)
    tol = 4 * jnp.finfo(x.dtype).eps * jnp.maximum(jnp.abs(x), 1)
    return jnp.where(jnp.abs(x - nearest) <= tol, nearest, jnp.floor(x))


def _py_steps(fraction: float, total: float) -> int:
    return int(fraction * total + 1e-9)


class piecewise_interpolate_schedule(Schedule):
    r"""Interpolate (linearly or by a half cosine) between values scaled at boundaries.

    The value at boundary :math:`b_i` is :math:`V_i = I \prod_{j \le i} s_j` (and :math:`V_0 =
    I` at step 0); between two boundaries the value moves from one to the next:

    .. math:: v(t) = V_{i} + (V_{i+1} - V_{i})\,\pi_i(t) \ \text{(linear)}, \qquad
              v(t) = V_{i+1} + \tfrac12 (V_i - V_{i+1})(1 + \cos(\pi\,\pi_i(t)))
              \ \text{(cosine)}

    with :math:`\pi_i(t) = (t - b_i) / (b_{i+1} - b_i)`; after the last boundary the value stays
    at the last :math:`V`.

    Args:
      interpolate_type: ``"linear"`` or ``"cosine"``.
      init_value: :math:`I`, the value at step 0.
      boundaries_and_scales: ``{step: scale}``, scales >= 0 multiplied into the value at each
        boundary (``{1000: 0.1}`` reaches ``0.1 * init_value`` at step 1000).
    """

    interpolate_type: str = static()
    init_value: Numeric = hyper()
    boundaries: tuple = child(default=())
    scales: tuple = child(default=())

    def __init__(self, interpolate_type: str, init_value: Any,
                 boundaries_and_scales: Mapping[int, float] | None = None):
        items = sorted((boundaries_and_scales or {}).items())
        self.__init_fields__(interpolate_type=interpolate_type, init_value=init_value,
                             boundaries=tuple(b for b, _ in items),
                             scales=tuple(s for _, s in items))

    def check(self):
        if self.interpolate_type not in ("linear", "cosine"):
            raise self.error(f"must be 'linear' or 'cosine', got {self.interpolate_type!r}",
                             "interpolate_type")
        _check_boundaries_and_scales(self)

    def __call__(self, count):
        return _piecewise(self.interpolate_type, self.init_value, self.boundaries, self.scales,
                          count)


class linear_onecycle_schedule(Schedule):
    r"""The one-cycle policy with linear phases (Smith & Topin, 2017).

    With :math:`I = P / d` (``div_factor``) and :math:`T` = ``transition_steps``:

    1. steps :math:`[0, \lfloor p_s T\rfloor]`: linear from :math:`I` up to :math:`P`;
    2. steps :math:`[\lfloor p_s T\rfloor, \lfloor p_f T\rfloor]`: linear back down to :math:`I`;
    3. steps :math:`[\lfloor p_f T\rfloor, T]`: linear down to :math:`I / d_f`
       (``final_div_factor``); constant afterwards.

    Args:
      transition_steps: :math:`T` >= 1, the length of the cycle.
      peak_value: :math:`P`, the value at the end of phase 1.
      pct_start: :math:`p_s` in (0, 1), the fraction of the cycle spent increasing.
      pct_final: :math:`p_f` in (0, 1], the fraction at which phase 2 ends.
      div_factor: :math:`d` > 0, the initial value is :math:`P / d`.
      final_div_factor: :math:`d_f` > 0, the final value is :math:`P / (d\,d_f)`.

    References:
      Smith & Topin, *Super-Convergence: Very Fast Training of Neural Networks Using Large
      Learning Rates*, 2017.
    """

    transition_steps: Numeric = hyper(interval="[1, inf)", integer=True)
    peak_value: Numeric = hyper()
    pct_start: Numeric = hyper(default=0.3, interval="(0, 1)")
    pct_final: Numeric = hyper(default=0.85, interval="(0, 1]")
    div_factor: Numeric = hyper(default=25.0, interval="(0, inf)")
    final_div_factor: Numeric = hyper(default=1e4, interval="(0, inf)")

    def check(self):
        numbers = _numbers(self, "transition_steps", "pct_start", "pct_final")
        if numbers is None:
            return
        t, ps, pf = numbers
        up, down = _py_steps(ps, t), _py_steps(pf, t)
        if up < 1:
            raise self.error(
                f"times transition_steps must be at least one step: with transition_steps={t}, "
                f"pct_start={ps} the increasing phase would be empty", "pct_start")
        if pf <= ps:
            raise self.error(f"must be greater than pct_start ({ps}), got {pf}", "pct_final")
        if down <= up:
            raise self.error(
                f"must leave the decreasing phase at least one step: with transition_steps={t}, "
                f"pct_start={ps} and pct_final={pf} both phases end at step {up}", "pct_final")

    def __call__(self, count):
        init = _f(self.peak_value) / _f(self.div_factor)
        one = _f(1)
        boundaries = (_steps_of(self.pct_start, self.transition_steps),
                      _steps_of(self.pct_final, self.transition_steps),
                      _f(self.transition_steps))
        scales = (_f(self.div_factor), one / _f(self.div_factor),
                  one / _f(self.final_div_factor))
        return _piecewise("linear", init, boundaries, scales, count)


class cosine_onecycle_schedule(Schedule):
    r"""The one-cycle policy with half-cosine phases (Smith & Topin, 2017; fastai's default).

    With :math:`I = P / d` (``div_factor``) and :math:`T` = ``transition_steps``: a half cosine
    from :math:`I` up to :math:`P` over the first :math:`\lfloor p_s T\rfloor` steps, then a
    half cosine down to :math:`I / d_f` (``final_div_factor``) at step :math:`T`; constant
    afterwards.

    Args:
      transition_steps: :math:`T` >= 1, the length of the cycle.
      peak_value: :math:`P`, the value at the end of the first phase.
      pct_start: :math:`p_s` in (0, 1), the fraction of the cycle spent increasing.
      div_factor: :math:`d` > 0, the initial value is :math:`P / d`.
      final_div_factor: :math:`d_f` > 0, the final value is :math:`P / (d\,d_f)`.

    References:
      Smith & Topin, *Super-Convergence: Very Fast Training of Neural Networks Using Large
      Learning Rates*, 2017.
    """

    transition_steps: Numeric = hyper(interval="[1, inf)", integer=True)
    peak_value: Numeric = hyper()
    pct_start: Numeric = hyper(default=0.3, interval="(0, 1)")
    div_factor: Numeric = hyper(default=25.0, interval="(0, inf)")
    final_div_factor: Numeric = hyper(default=1e4, interval="(0, inf)")

    def check(self):
        numbers = _numbers(self, "transition_steps", "pct_start")
        if numbers is None:
            return
        t, ps = numbers
        if _py_steps(ps, t) < 1:
            raise self.error(
                f"times transition_steps must be at least one step: with transition_steps={t}, "
                f"pct_start={ps} the increasing phase would be empty", "pct_start")

    def __call__(self, count):
        init = _f(self.peak_value) / _f(self.div_factor)
        boundaries = (_steps_of(self.pct_start, self.transition_steps),
                      _f(self.transition_steps))
        scales = (_f(self.div_factor),
                  _f(1) / (_f(self.div_factor) * _f(self.final_div_factor)))
        return _piecewise("cosine", init, boundaries, scales, count)


# --------------------------------------------------------------------------------------------
# Cyclic schedules.


@api("sgdr_schedule", rename={field_of(join_schedules, "schedules"): "cosine_kwargs"})
def sgdr_schedule(cosine_kwargs: Iterable[Mapping[str, Any]]) -> join_schedules:
    r"""Cosine annealing with warm restarts, one cycle per dict (optax's ``sgdr_schedule``).

    Cycle :math:`i` is ``warmup_cosine_decay_schedule(**cosine_kwargs[i])``, restarted at count
    0; it lasts its ``decay_steps`` steps, and the last one runs on:

    .. math:: v(t) = c_i(t - B_i), \qquad B_i = \sum_{j < i} D_j \quad (B_i \le t < B_{i+1})

    Conventions. As optax; the result is a :class:`join_schedules`. For Keras' form (a first
    cycle length that grows by ``t_mul`` at each restart, forever) see
    :class:`cosine_decay_restarts`.

    Args:
      cosine_kwargs: a non-empty sequence of dicts of arguments of
        :class:`warmup_cosine_decay_schedule` (``init_value``, ``peak_value``,
        ``warmup_steps``, ``decay_steps``, optionally ``end_value`` and ``exponent``), one per
        cycle.

    Example::

        lr = gx.sgdr_schedule([dict(init_value=0.0, peak_value=1e-3, warmup_steps=100,
                                    decay_steps=1000)] * 3)

    References:
      Loshchilov & Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*, ICLR 2017.
    """
    cycles = list(cosine_kwargs)
    if not cycles:
        raise argument_error("sgdr_schedule", "cosine_kwargs", "needs at least one cycle (a dict)")
    schedules, boundaries, start = [], [], 0
    for i, kwargs in enumerate(cycles):
        if not isinstance(kwargs, Mapping) or "decay_steps" not in kwargs:
            raise argument_error("sgdr_schedule", "cosine_kwargs",
                                 f"must be dicts of warmup_cosine_decay_schedule's arguments "
                                 f"with decay_steps, got {kwargs!r} at position {i}", TypeError)
        schedules.append(warmup_cosine_decay_schedule(**kwargs))
        start = start + kwargs["decay_steps"]
        boundaries.append(start)
    return join_schedules(schedules=schedules, boundaries=boundaries[:-1])


class cosine_decay_restarts(Schedule):
    r"""Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017), Keras' form.

    Cycle :math:`i = 0, 1, \ldots` lasts :math:`T_i = T_0\,\tau^i` steps (``first_decay_steps``
    times ``t_mul`` to the :math:`i`); within it, at :math:`t_{cur}` steps since its start,

    .. math:: v(t) = I\left[(1 - \alpha)\, \mu^i\, \tfrac12\left(1 + \cos\frac{\pi\, t_{cur}}
              {T_i}\right) + \alpha\right]

    with :math:`\mu` = ``m_mul`` (each restart's peak relative to the previous one) and
    :math:`\alpha` the final fraction of ``init_value``. The restarts go on forever.

    Conventions. Arguments as Keras' ``CosineDecayRestarts`` (torch's
    ``CosineAnnealingWarmRestarts`` is ``t_mul`` = ``T_mult``, ``alpha = eta_min / lr``,
    ``m_mul=1``). optax's form, a list of cycles, is :func:`sgdr_schedule`.

    Args:
      init_value: :math:`I`, the value at the start of the first cycle.
      first_decay_steps: :math:`T_0` >= 1, the length of the first cycle.
      t_mul: :math:`\tau` >= 1, the factor by which each cycle is longer than the previous.
      m_mul: :math:`\mu` >= 0, the factor by which each restart's peak is lower (or higher).
      alpha: :math:`\alpha` in [0, 1], the minimum as a fraction of ``init_value``.

    References:
      Loshchilov & Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*, ICLR 2017.
    """

    init_value: Numeric = hyper()
    first_decay_steps: Numeric = hyper(interval="[1, inf)", integer=True)
    t_mul: Numeric = hyper(default=2.0, interval="[1, inf)")
    m_mul: Numeric = hyper(default=1.0, interval="[0, inf)")
    alpha: Numeric = hyper(default=0.0, interval="[0, 1]")

    def __call__(self, count):
        frac = _f(count) / _f(self.first_decay_steps)
        t_mul = _f(self.t_mul)
        geometric = t_mul > 1
        tau = jnp.where(geometric, t_mul, 2.0)  # keep the unused branch finite

        def start(i):  # the start of cycle i, in units of first_decay_steps
            return jnp.where(geometric, (tau**i - 1) / (tau - 1), i)

        guess = jnp.where(geometric, jnp.floor(jnp.log1p(frac * (tau - 1)) / jnp.log(tau)),
                          jnp.floor(frac))
        i = jnp.where(frac < start(guess), guess - 1, guess)
        i = jnp.where(frac >= start(i + 1), i + 1, i)
        first = _f(self.first_decay_steps)
        elapsed = _f(count) - first * start(i)  # in steps: exact for whole cycle lengths
        exact = _divmod_steps(count, first)
        if exact is not None:  # t_mul = 1: cycles of equal length, positions in integers
            i = jnp.where(geometric, i, exact[0])
            elapsed = jnp.where(geometric, elapsed, exact[1])
        length = first * jnp.where(geometric, tau**i, 1.0)
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * elapsed / length))
        alpha = _f(self.alpha)
        return _f(self.init_value) * ((1 - alpha) * _f(self.m_mul) ** i * cosine + alpha)


class cyclic_schedule(Schedule):
    r"""Cyclical learning rates (Smith 2017), as torch's ``CyclicLR``.

    A cycle rises linearly from ``base_value`` to ``max_value`` in ``step_size_up`` steps and
    falls back in ``step_size_down`` steps. With :math:`S` the cycle length, :math:`c =
    \lfloor 1 + t/S \rfloor`, :math:`x = 1 + t/S - c` and :math:`r` = ``step_size_up``/:math:`S`,

    .. math:: h = \begin{cases} x / r & x \le r \\ (x - 1)/(r - 1) & x > r\end{cases},
              \qquad v(t) = B + (M - B)\, h\, \gamma(t)

    where :math:`\gamma(t) = 1` (``"triangular"``), :math:`2^{1-c}` (``"triangular2"``: the
    amplitude halves every cycle) or ``gamma``:math:`^t` (``"exp_range"``).

    Args:
      base_value: :math:`B`, the lower end of the cycle.
      max_value: :math:`M`, the upper end (reached only by ``"triangular"``).
      step_size_up: steps from the low to the high end, >= 1.
      step_size_down: steps back down, >= 0; ``None`` uses ``step_size_up``.
      mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
      gamma: the per-step factor of ``"exp_range"``, in (0, 1].

    References:
      Smith, *Cyclical Learning Rates for Training Neural Networks*, WACV 2017.
    """

    base_value: Numeric = hyper()
    max_value: Numeric = hyper()
    step_size_up: Numeric = hyper(default=2000, interval="[1, inf)", integer=True)
    step_size_down: Numeric = hyper(default=None, interval="[0, inf)", integer=True)
    mode: str = static(default="triangular")
    gamma: Numeric = hyper(default=1.0, interval="(0, 1]")

    def check(self):
        if self.mode not in ("triangular", "triangular2", "exp_range"):
            raise self.error(f"must be 'triangular', 'triangular2' or 'exp_range', got "
                             f"{self.mode!r}", "mode")

    def __call__(self, count):
        t = _f(count)
        up = _f(self.step_size_up)
        down = up if self.step_size_down is None else _f(self.step_size_down)
        total = up + down
        # the position in the cycle, in steps (exact for whole step sizes), rather than torch's
        # 1 + t/S - c, which loses float32 digits to cancellation once t/S grows
        done = jnp.floor(t / total)
        pos = t - total * done
        done = jnp.where(pos < 0, done - 1, jnp.where(pos >= total, done + 1, done))
        pos = t - total * done
        exact = _divmod_steps(count, total)
        if exact is not None:  # an integer count: the position in integers, exact up to 2**31
            done, pos = exact
        cycle = done + 1
        falling = pos > up
        h = jnp.where(falling, (total - pos) / jnp.where(falling, down, 1.0), pos / up)
        if self.mode == "triangular":
            amplitude = jnp.ones_like(t)
        elif self.mode == "triangular2":
            amplitude = _f(2.0) ** (1 - cycle)
        else:
            amplitude = _f(self.gamma) ** t
        base = _f(self.base_value)
        return base + (_f(self.max_value) - base) * h * amplitude


# --------------------------------------------------------------------------------------------
# Inverse decays.


class inverse_time_decay(Schedule):
    r"""Inverse-time decay: :math:`v(t) = I / (1 + r\, t / T)`.

    ``staircase=True`` uses :math:`\lfloor t/T \rfloor` (the value drops every :math:`T` steps).
    As Keras' ``InverseTimeDecay``.

    Args:
      init_value: :math:`I`, the value at step 0.
      decay_steps: :math:`T` > 0.
      decay_rate: :math:`r` >= 0.
      staircase: decay in steps of :math:`T`.
    """

    init_value: Numeric = hyper()
    decay_steps: Numeric = hyper(interval="(0, inf)", integer=True)
    decay_rate: Numeric = hyper(interval="[0, inf)")
    staircase: bool = static(default=False)

    def __call__(self, count):
        p = _f(count) / _f(self.decay_steps)
        if self.staircase:
            p = jnp.floor(p)
        return _f(self.init_value) / (1 + _f(self.decay_rate) * p)


class inverse_sqrt_schedule(Schedule):
    r"""Linear warmup, then decay with the inverse square root of the step (Transformers).

    .. math:: v(t) = I + (P - I)\,\frac{t}{W} \quad (t < W), \qquad
              v(t) = P \sqrt{W / t} \quad (t \ge W)

    Conventions. Vaswani et al. write :math:`d^{-1/2}\min(s^{-1/2}, s\,W^{-3/2})` with the
    1-based step :math:`s = t + 1`; that is this schedule with :math:`P = (d\,W)^{-1/2}`,
    :math:`I = 0`, evaluated one step later. fairseq's ``inverse_sqrt`` is this form.

    Args:
      peak_value: :math:`P`, the value at the end of the warmup.
      warmup_steps: :math:`W` >= 1.
      init_value: :math:`I`, the value at step 0.

    References:
      Vaswani et al., *Attention Is All You Need*, NeurIPS 2017 (section 5.3).
    """

    peak_value: Numeric = hyper()
    warmup_steps: Numeric = hyper(interval="[1, inf)", integer=True)
    init_value: Numeric = hyper(default=0.0)

    def __call__(self, count):
        t = _f(count)
        w = _f(self.warmup_steps)
        warm = _warmup(self.init_value, self.peak_value, self.warmup_steps, t)
        decayed = _f(self.peak_value) * jnp.sqrt(w / jnp.maximum(t, w))
        return jnp.where(t < w, warm, decayed)


# --------------------------------------------------------------------------------------------
# Products.


class multiply_schedules(Schedule):
    r"""The product of two schedules (or of a schedule and a number): :math:`v(t) = a(t)\,b(t)`.

    ``schedule * other`` and ``number * schedule`` build this value.

    Args:
      first: a schedule, a number or an array.
      second: a schedule, a number or an array.

    Example::

        # a cosine decay modulated by a restart pattern
        lr = gx.cosine_decay_schedule(1e-3, 10_000) * gx.cyclic_schedule(0.5, 1.0, 500)
    """

    first: Hyper = factor()
    second: Hyper = factor()

    def __call__(self, count):
        def value(x):
            return x(count) if isinstance(x, Schedule) else _f(x) + jnp.zeros_like(_f(count))

        return value(self.first) * value(self.second)
