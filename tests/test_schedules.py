"""Schedules: parity with optax for every schedule optax has, NumPy references for the others,
argument checks, values (vmap, jit without retrace, equality) and schedules for any
hyperparameter (b1, weight decay, momentum).

Parity: each schedule is evaluated at steps 0..STEPS and compared to optax (under standard
promotion) at rtol 1e-6 with an absolute floor of 1e-6 times the schedule's largest value
(values pass near zero at the end of cosine cycles, where a relative error means nothing).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradxform as gx
from helpers import TraceCounter, gradient_stream, nested_params, standard_promotion
from reference import schedules as ref

STEPS = 1200
COUNTS = np.arange(STEPS + 1)


def _sgdr_cycles(init, first, t_mul, alpha, n):
    return [{"init_value": init, "peak_value": init, "warmup_steps": 0,
             "decay_steps": int(first * t_mul**i), "end_value": alpha * init} for i in range(n)]


# (id, gradxform schedule, optax schedule)
OPTAX_CASES = [
    ("constant", gx.constant_schedule(0.3), optax.constant_schedule(0.3)),
    ("linear", gx.linear_schedule(1.0, 0.1, 500, 100), optax.linear_schedule(1.0, 0.1, 500, 100)),
    ("polynomial", gx.polynomial_schedule(1.0, 0.01, 2.5, 700, 50),
     optax.polynomial_schedule(1.0, 0.01, 2.5, 700, 50)),
    ("exponential_decay", gx.exponential_decay(0.5, 100, 0.7, 30, end_value=0.05),
     optax.exponential_decay(0.5, 100, 0.7, 30, end_value=0.05)),
    ("exponential_decay_staircase", gx.exponential_decay(0.5, 77, 0.5, staircase=True),
     optax.exponential_decay(0.5, 77, 0.5, staircase=True)),
    ("exponential_growth_bounded", gx.exponential_decay(0.01, 100, 1.5, end_value=0.2),
     optax.exponential_decay(0.01, 100, 1.5, end_value=0.2)),
    ("cosine_decay", gx.cosine_decay_schedule(2.0, 900, 0.1, 1.5),
     optax.cosine_decay_schedule(2.0, 900, 0.1, 1.5)),
    ("warmup_cosine_decay", gx.warmup_cosine_decay_schedule(0.0, 1.0, 100, 1000, 1e-3),
     optax.warmup_cosine_decay_schedule(0.0, 1.0, 100, 1000, 1e-3)),
    ("piecewise_constant", gx.piecewise_constant_schedule(1.0, {300: 0.5, 800: 0.1, 801: 3.0}),
     optax.piecewise_constant_schedule(1.0, {300: 0.5, 800: 0.1, 801: 3.0})),
    ("join", gx.join_schedules([gx.linear_schedule(0.0, 1.0, 100),
                                gx.cosine_decay_schedule(1.0, 500)], [100]),
     optax.join_schedules([optax.linear_schedule(0.0, 1.0, 100),
                           optax.cosine_decay_schedule(1.0, 500)], [100])),
    ("warmup_constant", gx.warmup_constant_schedule(0.01, 1.0, 137),
     optax.warmup_constant_schedule(0.01, 1.0, 137)),
    ("warmup_exponential_decay",
     gx.warmup_exponential_decay_schedule(0.0, 1.0, 50, 100, 0.6, 20, False, 0.05),
     optax.warmup_exponential_decay_schedule(0.0, 1.0, 50, 100, 0.6, 20, False, 0.05)),
    ("warmup_exponential_decay_staircase",
     gx.warmup_exponential_decay_schedule(0.1, 1.0, 50, 100, 0.5, staircase=True),
     optax.warmup_exponential_decay_schedule(0.1, 1.0, 50, 100, 0.5, staircase=True)),
    ("piecewise_interpolate_linear",
     gx.piecewise_interpolate_schedule("linear", 1.0, {0: 2.0, 200: 0.1, 700: 5.0, 701: 0.5}),
     optax.piecewise_interpolate_schedule("linear", 1.0,
                                          {0: 2.0, 200: 0.1, 700: 5.0, 701: 0.5})),
    ("piecewise_interpolate_cosine",
     gx.piecewise_interpolate_schedule("cosine", 0.5, {250: 0.1, 1000: 0.01}),
     optax.piecewise_interpolate_schedule("cosine", 0.5, {250: 0.1, 1000: 0.01})),
    ("linear_onecycle", gx.linear_onecycle_schedule(1000, 0.1),
     optax.linear_onecycle_schedule(1000, 0.1)),
    ("linear_onecycle_odd", gx.linear_onecycle_schedule(10, 1.0, 0.7, 0.9, 10.0, 100.0),
     optax.linear_onecycle_schedule(10, 1.0, 0.7, 0.9, 10.0, 100.0)),
    ("cosine_onecycle", gx.cosine_onecycle_schedule(1000, 0.1),
     optax.cosine_onecycle_schedule(1000, 0.1)),
    ("cosine_onecycle_odd", gx.cosine_onecycle_schedule(333, 2.0, 0.45, 5.0, 50.0),
     optax.cosine_onecycle_schedule(333, 2.0, 0.45, 5.0, 50.0)),
    ("sgdr_doubling", gx.cosine_decay_restarts(1.0, 10, 2.0, alpha=0.1),
     optax.sgdr_schedule(_sgdr_cycles(1.0, 10, 2, 0.1, 8))),
    ("sgdr_constant_period", gx.cosine_decay_restarts(0.5, 70, 1.0),
     optax.sgdr_schedule(_sgdr_cycles(0.5, 70, 1, 0.0, 20))),
    ("sgdr_tripling", gx.cosine_decay_restarts(1.0, 4, 3.0, alpha=0.2),
     optax.sgdr_schedule(_sgdr_cycles(1.0, 4, 3, 0.2, 7))),
    ("sgdr_optax_form", gx.sgdr_schedule(_sgdr_cycles(1.0, 10, 2, 0.1, 8)),
     optax.sgdr_schedule(_sgdr_cycles(1.0, 10, 2, 0.1, 8))),
    ("sgdr_optax_form_warmup", gx.sgdr_schedule(
        [dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=40),
         dict(init_value=0.1, peak_value=0.5, warmup_steps=10, decay_steps=300, end_value=0.01,
              exponent=2.0)]),
     optax.sgdr_schedule(
         [dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=40),
          dict(init_value=0.1, peak_value=0.5, warmup_steps=10, decay_steps=300, end_value=0.01,
               exponent=2.0)])),
]


def _close(actual, expected, rtol=1e-6):
    expected = np.asarray(expected, np.float64)
    floor = rtol * max(float(np.max(np.abs(expected))), 1e-30)
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=floor)


@pytest.mark.parametrize("case", OPTAX_CASES, ids=[c[0] for c in OPTAX_CASES])
def test_parity_with_optax(case):
    _, mine, theirs = case
    counts = jnp.asarray(COUNTS, jnp.int32)
    got = jax.jit(jax.vmap(mine))(counts)
    with standard_promotion():
        expected = jax.jit(jax.vmap(theirs))(counts)
    assert got.dtype == jnp.float32
    _close(got, expected)
    # a Python int count gives the same values
    for t in (0, 101):
        _close(mine(t), got[t])


# (id, gradxform schedule, reference function of t)
REFERENCE_CASES = [
    ("cyclic_triangular", gx.cyclic_schedule(0.1, 1.0, 100),
     lambda t: ref.cyclic(t, 0.1, 1.0, 100)),
    ("cyclic_triangular_asymmetric", gx.cyclic_schedule(0.0, 2.0, 30, 170),
     lambda t: ref.cyclic(t, 0.0, 2.0, 30, 170)),
    ("cyclic_triangular2", gx.cyclic_schedule(0.01, 0.5, 50, 70, "triangular2"),
     lambda t: ref.cyclic(t, 0.01, 0.5, 50, 70, "triangular2")),
    ("cyclic_exp_range", gx.cyclic_schedule(0.01, 0.5, 50, mode="exp_range", gamma=0.998),
     # gamma**t amplifies the float32 rounding of gamma (t * 2.6e-8 relative): compare with
     # the float32 gamma the schedule computes with
     lambda t: ref.cyclic(t, 0.01, 0.5, 50, mode="exp_range", gamma=float(np.float32(0.998)))),
    ("cyclic_sawtooth", gx.cyclic_schedule(0.1, 1.0, 40, 0),
     lambda t: ref.cyclic(t, 0.1, 1.0, 40, 0)),
    ("sgdr_fractional_growth_decaying_peaks", gx.cosine_decay_restarts(1.0, 10, 1.5, 0.7, 0.05),
     lambda t: ref.sgdr(t, 1.0, 10, 1.5, 0.7, 0.05)),
    ("sgdr_constant_period_decaying_peaks", gx.cosine_decay_restarts(2.0, 25, 1.0, 0.9),
     lambda t: ref.sgdr(t, 2.0, 25, 1.0, 0.9)),
    ("inverse_time", gx.inverse_time_decay(1.0, 100, 0.5), lambda t: ref.inverse_time(
        t, 1.0, 100, 0.5)),
    ("inverse_time_staircase", gx.inverse_time_decay(1.0, 100, 2.0, staircase=True),
     lambda t: ref.inverse_time(t, 1.0, 100, 2.0, True)),
    ("inverse_sqrt", gx.inverse_sqrt_schedule(1e-3, 400), lambda t: ref.inverse_sqrt(
        t, 1e-3, 400)),
    ("inverse_sqrt_from_init", gx.inverse_sqrt_schedule(1.0, 1, 0.5),
     lambda t: ref.inverse_sqrt(t, 1.0, 1, 0.5)),
    ("product", gx.cosine_decay_schedule(1.0, 1000) * gx.cyclic_schedule(0.5, 1.0, 100),
     lambda t: 0.5 * (1 + np.cos(np.pi * min(t, 1000) / 1000)) * ref.cyclic(t, 0.5, 1.0, 100)),
    ("number_times_schedule", 3.0 * gx.linear_schedule(1.0, 0.0, 1000),
     lambda t: 3.0 * (1 - min(t, 1000) / 1000)),
]


@pytest.mark.parametrize("case", REFERENCE_CASES, ids=[c[0] for c in REFERENCE_CASES])
def test_against_reference(case):
    _, mine, reference = case
    got = jax.jit(jax.vmap(mine))(jnp.asarray(COUNTS, jnp.int32))
    _close(got, [reference(int(t)) for t in COUNTS])


def test_vaswani_form_of_inverse_sqrt():
    d_model, warmup = 512, 4000
    s = gx.inverse_sqrt_schedule((d_model * warmup) ** -0.5, warmup)
    steps = np.arange(1, 20_000, 97)
    vaswani = d_model**-0.5 * np.minimum(steps**-0.5, steps * warmup**-1.5)
    _close(jax.vmap(s)(jnp.asarray(steps, jnp.int32)), vaswani)  # evaluated at t = s


def test_products_are_values():
    a, b = gx.cosine_decay_schedule(1.0, 100), gx.linear_schedule(1.0, 0.0, 50)
    assert a * b == gx.multiply_schedules(a, b)
    assert hash(a * b) == hash(gx.multiply_schedules(a, b))
    assert 2.0 * a == gx.multiply_schedules(2.0, a) and a * 2.0 == gx.multiply_schedules(a, 2.0)
    assert a * b != b * a  # same values, different structure: not the same value
    np.testing.assert_allclose((a * b)(30), a(30) * b(30))
    with pytest.raises(TypeError):
        a * "x"


# --------------------------------------------------------------------------------------------
# Argument checks, in the user's terms.

CHECKS = [
    (lambda: gx.warmup_cosine_decay_schedule(0.0, 1.0, 10, 10),
     "warmup_cosine_decay_schedule: decay_steps must be greater than warmup_steps"),
    (lambda: gx.warmup_constant_schedule(0.0, 1.0, -1),
     "warmup_constant_schedule: warmup_steps must be >= 0, got -1"),
    (lambda: gx.warmup_exponential_decay_schedule(0.0, 1.0, 10, 0, 0.5),
     "warmup_exponential_decay_schedule: transition_steps must be > 0, got 0"),
    (lambda: gx.warmup_exponential_decay_schedule(0.0, 1.0, 10.5, 10, 0.5),
     "warmup_exponential_decay_schedule: warmup_steps must be a whole number, got 10.5"),
    (lambda: gx.piecewise_interpolate_schedule("quadratic", 1.0, {10: 0.1}),
     ("piecewise_interpolate_schedule: interpolate_type must be 'linear' or 'cosine', "
      "got 'quadratic'")),
    (lambda: gx.piecewise_interpolate_schedule("linear", 1.0, {10: -0.1}),
     "piecewise_interpolate_schedule: boundaries_and_scales values must be finite scales >= 0"),
    (lambda: gx.piecewise_interpolate_schedule("linear", 1.0, {-5: 0.1}),
     "piecewise_interpolate_schedule: boundaries_and_scales keys must be whole step numbers"),
    (lambda: gx.linear_onecycle_schedule(0, 1.0),
     "linear_onecycle_schedule: transition_steps must be >= 1, got 0"),
    (lambda: gx.linear_onecycle_schedule(10, 1.0, pct_start=0.05),
     ("linear_onecycle_schedule: pct_start times transition_steps must be at least one step: "
      "with transition_steps=10, pct_start=0.05 the increasing phase would be empty")),
    (lambda: gx.linear_onecycle_schedule(100, 1.0, pct_start=0.5, pct_final=0.4),
     "linear_onecycle_schedule: pct_final must be greater than pct_start (0.5), got 0.4"),
    (lambda: gx.linear_onecycle_schedule(10, 1.0, pct_start=0.3, pct_final=0.35),
     ("linear_onecycle_schedule: pct_final must leave the decreasing phase at least one step: "
      "with transition_steps=10, pct_start=0.3 and pct_final=0.35 both phases end at step 3")),
    (lambda: gx.linear_onecycle_schedule(10, 1.0, pct_start=1.0),
     "linear_onecycle_schedule: pct_start must be in (0, 1), got 1.0"),
    (lambda: gx.linear_onecycle_schedule(10, 1.0, div_factor=0.0),
     "linear_onecycle_schedule: div_factor must be > 0, got 0.0"),
    (lambda: gx.cosine_onecycle_schedule(3, 1.0, pct_start=0.3),
     "cosine_onecycle_schedule: pct_start times transition_steps must be at least one step"),
    (lambda: gx.cosine_onecycle_schedule(100, 1.0, final_div_factor=-1.0),
     "cosine_onecycle_schedule: final_div_factor must be > 0, got -1.0"),
    (lambda: gx.cosine_decay_restarts(1.0, 10, t_mul=0.5),
     "cosine_decay_restarts: t_mul must be >= 1, got 0.5"),
    (lambda: gx.cosine_decay_restarts(1.0, 0),
     "cosine_decay_restarts: first_decay_steps must be >= 1, got 0"),
    (lambda: gx.cosine_decay_restarts(1.0, 10, alpha=1.5),
     "cosine_decay_restarts: alpha must be in [0, 1]"),
    (lambda: gx.cosine_decay_restarts(1.0, 10, m_mul=-0.5),
     "cosine_decay_restarts: m_mul must be >= 0"),
    (lambda: gx.sgdr_schedule([]), "sgdr_schedule: cosine_kwargs needs at least one cycle"),
    (lambda: gx.sgdr_schedule([{"init_value": 1.0}]),
     "sgdr_schedule: cosine_kwargs must be dicts of warmup_cosine_decay_schedule's arguments "
     "with decay_steps, got {'init_value': 1.0} at position 0"),
    (lambda: gx.sgdr_schedule([dict(init_value=0.0, peak_value=1.0, warmup_steps=0,
                                    decay_steps=-5)]),
     "sgdr_schedule: decay_steps must be > 0, got -5"),
    (lambda: gx.cyclic_schedule(0.1, 1.0, 100, mode="sine"),
     "cyclic_schedule: mode must be 'triangular', 'triangular2' or 'exp_range', got 'sine'"),
    (lambda: gx.cyclic_schedule(0.1, 1.0, 0), "cyclic_schedule: step_size_up must be >= 1, got 0"),
    (lambda: gx.cyclic_schedule(0.1, 1.0, 10, -2),
     "cyclic_schedule: step_size_down must be >= 0, got -2"),
    (lambda: gx.cyclic_schedule(0.1, 1.0, 10, mode="exp_range", gamma=1.5),
     "cyclic_schedule: gamma must be in (0, 1], got 1.5"),
    (lambda: gx.inverse_time_decay(1.0, 0, 0.5),
     "inverse_time_decay: decay_steps must be > 0, got 0"),
    (lambda: gx.inverse_time_decay(1.0, 10, -0.5),
     "inverse_time_decay: decay_rate must be >= 0, got -0.5"),
    (lambda: gx.inverse_sqrt_schedule(1.0, 0),
     "inverse_sqrt_schedule: warmup_steps must be >= 1, got 0"),
    (lambda: gx.multiply_schedules(gx.constant_schedule(1.0), float("nan")),
     "multiply_schedules: second must be finite, got nan"),
]


@pytest.mark.parametrize("make,message", CHECKS, ids=[m.split(":")[0] + str(i)
                                                     for i, (_, m) in enumerate(CHECKS)])
def test_argument_checks(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert message in str(info.value)


def test_checks_name_the_public_call():
    with pytest.raises(ValueError, match=r"^adam: learning_rate must be >= 0"):
        gx.adam(-0.1)
    with pytest.raises(ValueError, match=r"^cosine_decay_restarts: t_mul must be >= 1"):
        gx.adam(gx.cosine_decay_restarts(1.0, 10, t_mul=0.0))


# --------------------------------------------------------------------------------------------
# Values: vmap over stacked schedules, jit without retrace, equality.

FAMILIES = [
    lambda v: gx.warmup_constant_schedule(0.1 * v, v, 10 * int(v * 4)),
    lambda v: gx.warmup_exponential_decay_schedule(0.0, v, 20, 30, 0.5 * v),
    lambda v: gx.piecewise_interpolate_schedule("cosine", v, {100: 0.5 * v, 300: 0.1}),
    lambda v: gx.linear_onecycle_schedule(200, v, 0.2 * v, 0.9),
    lambda v: gx.cosine_onecycle_schedule(int(300 * v), v),
    lambda v: gx.cosine_decay_restarts(v, 10, 1 + v, 0.5 * v),
    lambda v: gx.cyclic_schedule(0.1 * v, v, 20, mode="triangular2"),
    lambda v: gx.cyclic_schedule(0.1 * v, v, 20, 5, mode="exp_range", gamma=0.99 * v),
    lambda v: gx.inverse_time_decay(v, 100, v),
    lambda v: gx.inverse_sqrt_schedule(v, int(100 * v)),
    lambda v: gx.cosine_decay_schedule(v, 100) * gx.linear_schedule(1.0, v, 50),
]


@pytest.mark.parametrize("family", FAMILIES, ids=[str(i) for i in range(len(FAMILIES))])
def test_stack_vmap_and_no_retrace(family):
    values = [family(v) for v in (0.25, 0.5, 0.75)]
    assert family(0.5) == values[1] and hash(family(0.5)) == hash(values[1])
    assert values[0] != values[1]
    counts = jnp.asarray([0, 7, 30, 123, 299, 777], jnp.int32)
    stacked = gx.stack(values)
    got = jax.vmap(lambda s: jax.vmap(s)(counts))(stacked)
    counter = TraceCounter(lambda s, c: jax.vmap(s)(c))
    jitted = jax.jit(counter)
    for i, s in enumerate(values):
        expected = jax.vmap(s)(counts)  # eager, one schedule at a time
        _close(got[i], expected)
        _close(jitted(s, counts), expected)
    assert counter.count == 1


# --------------------------------------------------------------------------------------------
# Any float hyperparameter accepts a schedule.


def _run(tx, steps=30):
    params = nested_params()
    grads = gradient_stream(params, steps)
    state = tx.init(params)

    @jax.jit
    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return gx.apply_updates(p, u), s

    for g in grads:
        params, state = step(params, state, g)
    return params, state


@pytest.mark.parametrize("make", [
    lambda h: gx.adam(0.01, b1=h),
    lambda h: gx.adamw(0.01, weight_decay=h),
    lambda h: gx.sgd(0.01, momentum=h),
], ids=["adam_b1", "adamw_weight_decay", "sgd_momentum"])
def test_constant_schedule_equals_number(make):
    p_num, _ = _run(make(0.8))
    p_sched, _ = _run(make(gx.constant_schedule(0.8)))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), p_sched, p_num)


def test_momentum_schedule_matches_a_hand_loop():
    momentum = gx.linear_schedule(0.5, 0.95, 20)
    tx = gx.sgd(0.05, momentum=momentum)
    params = {"w": jnp.asarray([1.0, -2.0, 3.0])}
    grads = gradient_stream(params, 25)
    state = tx.init(params)
    p, m = np.asarray(params["w"], np.float64), np.zeros(3)
    for t, g in enumerate(grads):
        beta = 0.5 + 0.45 * min(t, 20) / 20
        m = beta * m + np.asarray(g["w"], np.float64)
        p = p - 0.05 * m
        u, state = tx.update(g, state, params)
        params = gx.apply_updates(params, u)
    np.testing.assert_allclose(params["w"], p, rtol=1e-5)
    hp = gx.hyperparams(tx, state)
    np.testing.assert_allclose(hp["momentum" if "momentum" in hp else "decay"], 0.95)


def test_hyperparams_report_scheduled_b1_and_weight_decay():
    tx = gx.adamw(0.01, b1=gx.linear_schedule(0.8, 0.9, 10),
                  weight_decay=gx.exponential_decay(0.1, 10, 0.5))
    _, state = _run(tx, steps=10)
    hp = gx.hyperparams(tx, state)
    np.testing.assert_allclose(hp["b1"], 0.9, rtol=1e-6)
    np.testing.assert_allclose(hp["weight_decay"], 0.05, rtol=1e-6)
