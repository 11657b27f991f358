"""The validation contract: every range check raises at construction, naming the public call
and the argument, with the allowed range and the offending value."""

from __future__ import annotations

import math
import re

import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx

# (call, expected message); each lambda builds one invalid value.
RANGE_CHECKS = [
    (lambda: gx.adam(-1e-3), "adam: learning_rate must be >= 0, got -0.001"),
    (lambda: gx.adam(math.inf), "adam: learning_rate must be finite, got inf"),
    (lambda: gx.adam(math.nan), "adam: learning_rate must be finite, got nan"),
    (lambda: gx.adam(1e-3, b1=1.0), "adam: b1 must be in [0, 1), got 1.0"),
    (lambda: gx.adam(1e-3, b1=-0.1), "adam: b1 must be in [0, 1), got -0.1"),
    (lambda: gx.adam(1e-3, b2=1.5), "adam: b2 must be in [0, 1), got 1.5"),
    (lambda: gx.adam(1e-3, eps=0.0), "adam: eps must be > 0, got 0.0"),
    (lambda: gx.adam(1e-3, eps_root=-1e-8), "adam: eps_root must be >= 0, got -1e-08"),
    (lambda: gx.adamw(1e-3, weight_decay=-0.1), "adamw: weight_decay must be >= 0, got -0.1"),
    (lambda: gx.adamw(-1.0), "adamw: learning_rate must be >= 0, got -1.0"),
    (lambda: gx.sgd(-0.1), "sgd: learning_rate must be >= 0, got -0.1"),
    (lambda: gx.sgd(0.1, momentum=1.0), "sgd: momentum must be in [0, 1), got 1.0"),
    (lambda: gx.sgd(0.1, momentum=0.9, dampening=1.0),
     "sgd: dampening must be in [0, 1), got 1.0"),
    (lambda: gx.adagrad(0.1, initial_accumulator_value=-1.0),
     "adagrad: initial_accumulator_value must be >= 0, got -1.0"),
    (lambda: gx.adagrad(0.1, eps=-1e-7), "adagrad: eps must be > 0, got -1e-07"),
    (lambda: gx.rmsprop(0.1, decay=1.0), "rmsprop: decay must be in [0, 1), got 1.0"),
    (lambda: gx.rmsprop(0.1, eps=0.0), "rmsprop: eps must be > 0, got 0.0"),
    (lambda: gx.rmsprop(0.1, initial_scale=-1.0), "rmsprop: initial_scale must be >= 0, got -1.0"),
    (lambda: gx.rmsprop(0.1, momentum=1.2), "rmsprop: momentum must be in [0, 1), got 1.2"),
    (lambda: gx.scale_by_adam(b1=1.0), "scale_by_adam: b1 must be in [0, 1), got 1.0"),
    (lambda: gx.scale_by_rms(decay=-0.5), "scale_by_rms: decay must be in [0, 1), got -0.5"),
    (lambda: gx.scale_by_rss(eps=0.0), "scale_by_rss: eps must be > 0, got 0.0"),
    (lambda: gx.trace(decay=1.0), "trace: decay must be in [0, 1), got 1.0"),
    (lambda: gx.ema(decay=1.0), "ema: decay must be in [0, 1), got 1.0"),
    (lambda: gx.clip(0.0), "clip: max_delta must be > 0, got 0.0"),
    (lambda: gx.clip_by_global_norm(-1.0), "clip_by_global_norm: max_norm must be > 0, got -1.0"),
    (lambda: gx.clip_by_global_norm(0.0), "clip_by_global_norm: max_norm must be > 0, got 0.0"),
    (lambda: gx.add_decayed_weights(-1e-4),
     "add_decayed_weights: weight_decay must be >= 0, got -0.0001"),
    (lambda: gx.add_l2_penalty(-1.0), "add_l2_penalty: l2 must be >= 0, got -1.0"),
    (lambda: gx.add_l1_penalty(-1.0), "add_l1_penalty: l1 must be >= 0, got -1.0"),
    (lambda: gx.scale_by_learning_rate(-1.0),
     "scale_by_learning_rate: learning_rate must be >= 0, got -1.0"),
    (lambda: gx.scale(math.inf), "scale: step_size must be finite, got inf"),
    # dtype-dependent ranges
    (lambda: gx.adam(1e-3, nu_dtype=jnp.bfloat16),
     "adam: b2=0.999 rounds to 1.0 in nu_dtype=bfloat16, so the accumulator would never decay; "
     "keep the default accumulator dtype (float32) or use b2 <= 0.99609375"),
    (lambda: gx.sgd(0.1, momentum=0.999, accumulator_dtype=jnp.bfloat16),
     "sgd: momentum=0.999 rounds to 1.0 in accumulator_dtype=bfloat16"),
    # schedules
    (lambda: gx.linear_schedule(1.0, 0.0, -5),
     "linear_schedule: transition_steps must be >= 0, got -5"),
    (lambda: gx.linear_schedule(1.0, 0.0, 2.5),
     "linear_schedule: transition_steps must be a whole number, got 2.5"),
    (lambda: gx.polynomial_schedule(1.0, 0.0, 0.0, 10),
     "polynomial_schedule: power must be > 0, got 0.0"),
    (lambda: gx.exponential_decay(1.0, 0, 0.5),
     "exponential_decay: transition_steps must be > 0, got 0"),
    (lambda: gx.exponential_decay(1.0, 10, 0.0),
     "exponential_decay: decay_rate must be > 0, got 0.0"),
    (lambda: gx.exponential_decay(1.0, 10, 0.5, transition_begin=-1),
     "exponential_decay: transition_begin must be >= 0, got -1"),
    (lambda: gx.cosine_decay_schedule(1.0, 0),
     "cosine_decay_schedule: decay_steps must be > 0, got 0"),
    (lambda: gx.cosine_decay_schedule(1.0, 10, exponent=0.0),
     "cosine_decay_schedule: exponent must be > 0, got 0.0"),
    (lambda: gx.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=10, decay_steps=10),
     "warmup_cosine_decay_schedule: decay_steps must be greater than warmup_steps: decay_steps "
     "is the total length of the schedule, warmup included, so the cosine part would last 0 "
     "steps (got warmup_steps=10, decay_steps=10)"),
    (lambda: gx.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=-1, decay_steps=10),
     "warmup_cosine_decay_schedule: warmup_steps must be >= 0, got -1"),
    (lambda: gx.piecewise_constant_schedule(1.0, {10: -0.5}),
     "piecewise_constant_schedule: boundaries_and_scales values must be finite scales >= 0, "
     "got -0.5 at step 10"),
    (lambda: gx.piecewise_constant_schedule(1.0, {-3: 0.5}),
     "piecewise_constant_schedule: boundaries_and_scales keys must be whole step numbers >= 0, "
     "got -3"),
    (lambda: gx.join_schedules([gx.constant_schedule(1.0)] * 2, [5, 10]),
     "join_schedules: boundaries must have one entry fewer than schedules (1), got 2"),
    (lambda: gx.join_schedules([gx.constant_schedule(1.0)] * 3, [10, 5]),
     "join_schedules: boundaries must be increasing step numbers >= 0, got (10, 5)"),
]


@pytest.mark.parametrize("build, message", RANGE_CHECKS,
                         ids=[m.split(" must")[0].split("=")[0] for _, m in RANGE_CHECKS])
def test_range_checks(build, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


TYPE_CHECKS = [
    (lambda: gx.adam(True), "adam: learning_rate must be a real number, an array or a "
     "schedule, got True"),
    (lambda: gx.adam("1e-3"), "adam: learning_rate must be a real number, an array or a "
     "schedule, got '1e-3'"),
    (lambda: gx.sgd(1e-3 + 1j), "sgd: learning_rate must be a real number, an array or a "
     "schedule, got (0.001+1j)"),
    (lambda: gx.adam(1e-3, b1=[0.9]), "adam: b1 must be a real number, an array or a schedule, "
     "got list [0.9]"),
    (lambda: gx.adam(jnp.asarray([True, False])), "adam: learning_rate must hold real numbers, "
     "got an array of dtype bool"),
    (lambda: gx.stateless(3), "stateless: f must be callable, got 3"),
    (lambda: gx.chain(gx.sgd(0.1), "adam"), "expected a transformation (an object with init "
     "and update), got 'adam'"),
]


@pytest.mark.parametrize("build, message", TYPE_CHECKS,
                         ids=[f"type{i}" for i in range(len(TYPE_CHECKS))])
def test_type_checks(build, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        build()


def test_arrays_are_checked_elementwise():
    with pytest.raises(ValueError, match=re.escape(
            "adam: learning_rate must be >= 0, got -0.1 (in an array of shape (3,))")):
        gx.adam(np.asarray([1e-3, -0.1, 1e-2]))
    gx.adam(np.asarray([1e-3, 0.1, 1e-2]))  # a valid stack passes


def test_traced_values_are_not_checked_at_construction():
    import jax

    def build(lr):
        return gx.adam(lr).init({"w": jnp.ones(1)}).count

    jax.jit(build)(-1.0)  # a tracer cannot be range-checked in Python: documented


def test_chain_and_named_chain_arguments():
    with pytest.raises(ValueError, match=re.escape("chain: names must be distinct, got ('a', "
                                                   "'a')")):
        gx.chain(gx.sgd(0.1), gx.sgd(0.1), names=("a", "a"))
    with pytest.raises(TypeError, match="named_chain: expected \\(name, transformation\\) "
                       "pairs"):
        gx.named_chain(gx.sgd(0.1))


def test_mask_structure_mismatch_is_explained():
    tx = gx.adamw(1e-3, mask={"w": True, "b": False, "extra": True})
    params = {"w": jnp.ones(2), "b": jnp.ones(1)}
    state = tx.init(params)
    with pytest.raises(ValueError, match=re.escape(
            "adamw: the entry of the mask at ['extra'] is not in the params")):
        tx.update(params, state, params)
