"""Contract items 5 and 6 (``docs/validation.md``), over the conformance table and the wrappers.

5. Step counters saturate at 2**31 - 1 instead of wrapping around, the updates stay finite
   there, and every schedule has its documented value at the saturated count.
6. Zero gradients leave the params unchanged for every optimizer without weight decay (or
   noise); a learning rate of 0 leaves them unchanged for every optimizer that has one.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from helpers import gradient_stream, nested_params
from reference import schedules as ref
from registry import all_entries, step_arguments

ENTRIES = all_entries()
IDS = [e.name for e in ENTRIES]
TOP = 2**31 - 1
PARAMS = nested_params()
GRADS = gradient_stream(PARAMS, 3)


def _extra(entry, params, grads, t=0):
    """The update's extra arguments at step ``t``: the functions of an objective whose gradient
    at ``params`` is ``grads`` (:func:`registry.objective_at`) for the entries that take one."""
    return step_arguments(entry, params, grads, value=2.5, key=jax.random.key(t),
                          consistent=True)


def _finite(tree_):
    return all(np.all(np.isfinite(np.asarray(x, np.float64))) for x in jax.tree.leaves(tree_))


# --------------------------------------------------------------------------------------------
# 5. Saturating counters.

A = gx.adam(1e-3)
WRAPPERS = {
    "accumulate": gx.accumulate(A, every_k=4),
    "skip_non_finite": gx.skip_non_finite(A),
    "dynamic_loss_scale": gx.dynamic_loss_scale(A, growth_interval=2),
    "ema_params": gx.ema_params(A),
    "swa_params": gx.swa_params(A, start=5, every=3),
    "lookahead": gx.lookahead(A, sync_period=3, slow_step_size=0.5),
    "reduce_on_plateau": gx.chain(A, gx.reduce_on_plateau(accumulation_size=3)),
    "scheduled_adam": gx.adam(gx.warmup_cosine_decay_schedule(0.0, 1e-3, 10, 100, 1e-5)),
}


def _near_the_top(state):
    return state.replace(count=jnp.asarray(TOP - 2, jnp.int32))


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_counters_saturate_in_every_optimizer(entry):
    tx = entry.make(target="quadratic")
    state = tx.init(PARAMS)
    if state.count is None:
        pytest.skip(f"{entry.name} keeps no step count")
    state = _near_the_top(state)
    p = PARAMS
    for t in range(4):  # TOP - 2 -> TOP - 1 -> TOP -> TOP -> TOP
        u, state = tx.update(GRADS[t % 3], state, p, **_extra(entry, p, GRADS[t % 3], t))
        assert _finite((u, state)), f"{entry.name}: non-finite at count {int(state.count)}"
        p = gx.apply_updates(p, u)
    assert int(state.count) == TOP


@pytest.mark.parametrize("name", WRAPPERS)
def test_counters_saturate_in_every_wrapper(name):
    tx = WRAPPERS[name]
    state = _near_the_top(tx.init(PARAMS))
    p = PARAMS
    for t in range(4):
        u, state = tx.update(GRADS[t % 3], state, p, value=jnp.float32(1.0 + t))
        assert _finite((u, state)), f"{name}: non-finite at count {int(state.count)}"
        p = gx.apply_updates(p, u)
    assert int(state.count) == TOP
    for x in jax.tree.leaves(state):  # the wrappers' own int32 counters did not wrap either
        if jnp.issubdtype(x.dtype, jnp.integer):
            assert int(x.min()) >= 0, name


# Every public schedule, with its value at the saturated count: the documented final value for
# those that end, the defining formula (a float64 reference) for those that repeat or decay
# without end.
SCHEDULES = [
    ("constant", gx.constant_schedule(0.3), 0.3),
    ("linear", gx.linear_schedule(1.0, 0.1, 100), 0.1),
    ("polynomial", gx.polynomial_schedule(1.0, 0.1, 2.0, 100), 0.1),
    ("exponential_decay", gx.exponential_decay(1.0, 10, 0.5), 0.0),
    ("exponential_decay_end", gx.exponential_decay(1.0, 10, 0.5, end_value=0.01), 0.01),
    ("exponential_decay_growth", gx.exponential_decay(0.1, 10, 2.0, end_value=5.0), 5.0),
    ("piecewise_constant", gx.piecewise_constant_schedule(1.0, {10: 0.5, 20: 0.1}), 0.05),
    ("cosine_decay", gx.cosine_decay_schedule(1.0, 100, alpha=0.1), 0.1),
    ("warmup_cosine", gx.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100, 0.01), 0.01),
    ("join", gx.join_schedules([gx.constant_schedule(1.0), gx.linear_schedule(1.0, 0.2, 10)],
                               [5]), 0.2),
    ("warmup_constant", gx.warmup_constant_schedule(0.0, 0.7, 10), 0.7),
    ("warmup_exponential", gx.warmup_exponential_decay_schedule(0.0, 1.0, 10, 10, 0.5,
                                                                end_value=0.01), 0.01),
    ("piecewise_interpolate", gx.piecewise_interpolate_schedule(
        "cosine", 1.0, {10: 0.5, 20: 0.1}), 0.05),
    ("linear_onecycle", gx.linear_onecycle_schedule(100, 1.0), 1.0 / 25 / 1e4),
    ("cosine_onecycle", gx.cosine_onecycle_schedule(100, 1.0), 1.0 / 25 / 1e4),
    ("sgdr_doubling", gx.cosine_decay_restarts(1.0, 100, t_mul=2.0, alpha=0.1),
     ref.sgdr(TOP, 1.0, 100, 2.0, 1.0, 0.1)),
    ("sgdr_equal_cycles", gx.cosine_decay_restarts(1.0, 1000, t_mul=1.0, alpha=0.1),
     0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (TOP % 1000) / 1000))),
    ("cyclic", gx.cyclic_schedule(0.1, 1.0, 2000), ref.cyclic(TOP, 0.1, 1.0, 2000)),
    ("cyclic_asymmetric", gx.cyclic_schedule(0.1, 1.0, 300, 700),
     ref.cyclic(TOP, 0.1, 1.0, 300, 700)),
    ("cyclic_triangular2", gx.cyclic_schedule(0.1, 1.0, 20, mode="triangular2"), 0.1),
    ("inverse_time", gx.inverse_time_decay(1.0, 100, 0.5),
     ref.inverse_time(TOP, 1.0, 100, 0.5)),
    ("inverse_sqrt", gx.inverse_sqrt_schedule(1.0, 100), ref.inverse_sqrt(TOP, 1.0, 100)),
    ("multiply", gx.multiply_schedules(gx.constant_schedule(2.0),
                                       gx.linear_schedule(1.0, 0.25, 10)), 0.5),
    ("ademamix_alpha", gx.ademamix_alpha_schedule(5.0, 1000), 5.0),
    ("ademamix_b3", gx.ademamix_b3_schedule(0.999, 1000), 0.999),
    ("schedule_fn", gx.schedule_fn(lambda c: jnp.minimum(c, 10).astype(jnp.float32)), 10.0),
]


def test_every_public_schedule_is_listed():
    listed = {type(s).__name__ for _, s, _ in SCHEDULES}
    public = {name for name in gx.__all__ if isinstance(getattr(gx, name), type)
              and issubclass(getattr(gx, name), gx.Schedule) and name != "Schedule"}
    public |= {"ademamix_alpha_schedule", "ademamix_b3_schedule"} & set(gx.__all__)
    assert public - listed <= {"ademamix_alpha_schedule", "ademamix_b3_schedule"}, \
        public - listed


@pytest.mark.parametrize("name, schedule, expected", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedules_at_the_saturated_count(name, schedule, expected):
    count = jnp.asarray(TOP, jnp.int32)
    value = float(schedule(count))
    assert math.isfinite(value), name
    np.testing.assert_allclose(value, expected, rtol=2e-5, atol=1e-9, err_msg=name)
    # the next "step" is the same count: the value no longer moves
    assert float(schedule(gx._src.tree.safe_increment(count))) == value


def test_periodic_schedules_are_exact_at_large_counts():
    """float32 holds whole numbers only up to 2**24: a position computed in float would be off
    by up to 128 steps near 2**31. Positions within a cycle are computed in integers."""
    tx = gx.cyclic_schedule(0.0, 1.0, 3)  # a cycle of 6 steps: 0, 1/3, 2/3, 1, 2/3, 1/3
    for count in (TOP - 5, TOP - 4, TOP - 3, TOP - 2, TOP - 1, TOP):
        np.testing.assert_allclose(float(tx(jnp.asarray(count, jnp.int32))),
                                   ref.cyclic(count, 0.0, 1.0, 3), rtol=1e-6, atol=1e-7)
    sgdr = gx.cosine_decay_restarts(1.0, 7, t_mul=1.0)
    for count in (TOP - 3, TOP - 2, TOP - 1, TOP):  # equal cycles of 7 steps: t mod 7
        expected = 0.5 * (1 + math.cos(math.pi * (count % 7) / 7))
        np.testing.assert_allclose(float(sgdr(jnp.asarray(count, jnp.int32))), expected,
                                   rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------------------------
# 6. No-op guarantees.


def _without_search_info(state):
    """The state without a line search's ``info``: its ``decrease_error`` and
    ``curvature_error`` are inf by design when no step is accepted (a zero direction)."""
    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    return [x for path, x in flat if ".info." not in jax.tree_util.keystr(path)]


# Entries whose params move with zero gradients, and why.
MOVE_WITHOUT_GRADIENT = {
    "nadamw": "weight decay", "adamaxw": "weight decay", "adoptw": "weight decay",
    "adamw": "weight decay", "adan_paper_form": "weight decay",
    "ademamix_warmup": "weight decay", "lars": "weight decay", "lamb": "weight decay",
    "fromage": "the shrink 1/sqrt(1 + lr^2) of the params (a decay by construction)",
    "noisy_sgd": "gradient noise",
    "lion": "weight decay (lion's default weight_decay is 1e-3, as optax's)",
    "yogi": "its first moment starts at initial_accumulator_value = 1e-6, as optax's",
    "sophia": "weight decay (sophia's default weight_decay is 1e-4, as optax's)",
    "dpsgd": "Gaussian noise: the privacy mechanism adds N(0, (sigma C)^2) whatever the gradient",
}
# Entries without a learning rate that can be 0, and why.
NO_ZERO_LEARNING_RATE = {
    "rprop": "the learning rate is the initial step size; steps grow back from min_step_size",
    "polyak_sgd": "the learning rate is max_learning_rate, which must be > 0",
    "sam": "the transparent mode moves the params to the adversarial point (the ascent's own "
           "step, of radius rho) on every other update and back on the next: the outer "
           "optimizer's learning rate does not scale the ascent",
    "madgrad": "lambda_k = (lr + eps) sqrt(k + 1), as the authors' code and optax: with lr = 0 "
               "the dual-averaged step is (eps^(2/3) |g|^(1/3))-sized, not 0",
}


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_zero_gradients_leave_params_unchanged(entry):
    if entry.name in MOVE_WITHOUT_GRADIENT:
        pytest.skip(f"{entry.name}: {MOVE_WITHOUT_GRADIENT[entry.name]}")
    tx = entry.make(target="quadratic")
    zeros = jax.tree.map(jnp.zeros_like, PARAMS)
    p, state = PARAMS, tx.init(PARAMS)
    for t in range(3):
        u, state = tx.update(zeros, state, p, **_extra(entry, p, zeros, t))
        p = gx.apply_updates(p, u)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(PARAMS)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=entry.name)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_learning_rate_zero_leaves_params_unchanged(entry):
    if entry.name in NO_ZERO_LEARNING_RATE:
        pytest.skip(f"{entry.name}: {NO_ZERO_LEARNING_RATE[entry.name]}")
    tx = entry.make(0.0)
    p, state = PARAMS, tx.init(PARAMS)
    for t in range(3):
        u, state = tx.update(GRADS[t], state, p, **_extra(entry, p, GRADS[t], t))
        assert _finite((u, _without_search_info(state))), \
            f"{entry.name}: non-finite with learning rate 0"
        p = gx.apply_updates(p, u)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(PARAMS)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=entry.name)
