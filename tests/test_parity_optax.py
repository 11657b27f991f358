"""Parity with optax for every foundation transform and optimizer optax also has.

Each case runs gradxform and optax side by side for 120 steps on a nested tree (dicts, lists,
tuples, a None leaf, a scalar, vectors, matrices) with a fixed stream of gradients of varied
magnitude, and compares the params after every step and the optimizer state (moments, traces)
at the end. float32 must agree to rtol 1e-6, with an absolute floor of 1e-6 times the leaf's
largest magnitude (params pass through zero, where a relative error means nothing); float64 to
rtol 1e-12 (floor 1e-12). optax runs under standard dtype promotion (it fails under strict).

Known difference: under x64 some optax schedules compute the learning rate in float32 (integer
step counts divided by integer step sizes), gradxform computes them in float64; the float64
cases with schedules are therefore compared at rtol 1e-7, which is the float32 rounding of the
learning rate, and the schedules themselves are compared in ``test_schedules.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import pytest

import gradxform as gx
from helpers import assert_trees_close, gradient_stream, nested_params, standard_promotion

STEPS = 120


def adam_state(gx_state, ox_state):
    g, o = gx_state.inner[0], ox_state[0]
    return (g.mu, g.nu), (o.mu, o.nu)


def trace_state(index_gx, index_ox):
    def pick(gx_state, ox_state):
        return gx_state.inner[index_gx].trace, ox_state[index_ox].trace
    return pick


def first(attr):
    def pick(gx_state, ox_state):
        return getattr(gx_state.inner[0], attr), getattr(ox_state[0], attr)
    return pick


def no_state(gx_state, ox_state):
    return (), ()


def _optax_first(state):
    return state


SCHEDULED = {"adam_schedule", "scale_by_learning_rate_exponential_decay"}

# (id, gradxform transformation, optax transformation, state extractor)
CASES = [
    ("sgd", gx.sgd(0.05), optax.sgd(0.05), no_state),
    ("sgd_momentum", gx.sgd(0.05, 0.9), optax.sgd(0.05, 0.9), trace_state(0, 0)),
    ("sgd_nesterov", gx.sgd(0.05, 0.9, True), optax.sgd(0.05, 0.9, True), trace_state(0, 0)),
    ("adagrad", gx.adagrad(0.1), optax.adagrad(0.1), first("sum_of_squares")),
    ("rmsprop", gx.rmsprop(0.01), optax.rmsprop(0.01), first("nu")),
    ("rmsprop_centered", gx.rmsprop(0.01, centered=True), optax.rmsprop(0.01, centered=True),
     lambda g, o: ((g.inner[0].mu, g.inner[0].nu), (o[0].mu, o[0].nu))),
    ("rmsprop_momentum_nesterov", gx.rmsprop(0.01, momentum=0.9, nesterov=True),
     optax.rmsprop(0.01, momentum=0.9, nesterov=True),
     lambda g, o: ((g.inner[0].nu, g.inner[2].trace), (o[0].nu, o[2].trace))),
    ("rmsprop_eps_outside_bias_corrected",
     gx.rmsprop(0.01, eps_in_sqrt=False, bias_correction=True, initial_scale=0.5),
     optax.rmsprop(0.01, eps_in_sqrt=False, bias_correction=True, initial_scale=0.5),
     first("nu")),
    ("adam", gx.adam(1e-2), optax.adam(1e-2), adam_state),
    ("adam_nesterov", gx.adam(1e-2, nesterov=True), optax.adam(1e-2, nesterov=True),
     adam_state),
    ("adam_eps_root", gx.adam(1e-2, eps_root=1e-6), optax.adam(1e-2, eps_root=1e-6),
     adam_state),
    ("adamw", gx.adamw(1e-2, weight_decay=0.1), optax.adamw(1e-2, weight_decay=0.1),
     adam_state),
    ("adam_schedule",
     gx.adam(gx.warmup_cosine_decay_schedule(0.0, 1e-2, 10, 100, 1e-4)),
     optax.adam(optax.warmup_cosine_decay_schedule(0.0, 1e-2, 10, 100, 1e-4)), adam_state),
    ("clip_then_adamw",
     gx.chain(gx.clip_by_global_norm(1.0), gx.adamw(1e-2, weight_decay=0.05)),
     optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2, weight_decay=0.05)),
     lambda g, o: ((g.inner[1][0].mu, g.inner[1][0].nu), (o[1][0].mu, o[1][0].nu))),
    ("clip", gx.chain(gx.clip(0.5), gx.sgd(0.1)),
     optax.chain(optax.clip(0.5), optax.sgd(0.1)), no_state),
    ("ema", gx.chain(gx.ema(0.9), gx.scale(-0.1)),
     optax.chain(optax.ema(0.9), optax.scale(-0.1)),
     lambda g, o: (g.inner[0].ema, o[0].ema)),
    ("ema_no_debias", gx.chain(gx.ema(0.8, debias=False), gx.scale(-0.1)),
     optax.chain(optax.ema(0.8, debias=False), optax.scale(-0.1)),
     lambda g, o: (g.inner[0].ema, o[0].ema)),
    ("add_decayed_weights_masked",
     gx.chain(gx.add_decayed_weights(0.1, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)),
              gx.sgd(0.1)),
     optax.chain(optax.add_decayed_weights(0.1,
                                           mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)),
                 optax.sgd(0.1)),
     no_state),
    ("masked_trace",
     gx.chain(gx.masked(gx.trace(0.9), lambda p: jax.tree.map(lambda x: x.ndim == 2, p)),
              gx.scale(-0.05)),
     optax.chain(optax.masked(optax.trace(0.9), lambda p: jax.tree.map(lambda x: x.ndim == 2, p)),
                 optax.scale(-0.05)),
     lambda g, o: (jax.tree.leaves(g.inner[0].trace), jax.tree.leaves(o[0].inner_state.trace))),
    ("named_chain",
     gx.named_chain(("clip", gx.clip_by_global_norm(2.0)), ("opt", gx.adam(1e-2))),
     optax.named_chain(("clip", optax.clip_by_global_norm(2.0)), ("opt", optax.adam(1e-2))),
     lambda g, o: ((g.inner["opt"][0].mu, g.inner["opt"][0].nu),
                   (o["opt"][0].mu, o["opt"][0].nu))),
    ("scale_by_learning_rate_exponential_decay",
     gx.scale_by_learning_rate(gx.exponential_decay(0.1, 10, 0.5, staircase=True)),
     optax.scale_by_learning_rate(optax.exponential_decay(0.1, 10, 0.5, staircase=True)),
     no_state),
]


def _run_pair(gx_tx, ox_tx, dtype, pick, rtol, atol):
    params = nested_params(dtype)
    grads = gradient_stream(params, STEPS)
    gx_step = jax.jit(lambda p, s, g: _apply(gx_tx.update(g, s, p), p))
    with standard_promotion():
        ox_step = jax.jit(lambda p, s, g: _apply(ox_tx.update(g, s, p), p, optax.apply_updates))
        ox_state = ox_tx.init(params)
    gx_state = gx_tx.init(params)
    p_gx = p_ox = params
    for t, g in enumerate(grads):
        p_gx, gx_state = gx_step(p_gx, gx_state, g)
        with standard_promotion():
            p_ox, ox_state = ox_step(p_ox, ox_state, g)
        assert_trees_close(p_gx, p_ox, rtol=rtol, atol=atol, what=f"params after step {t + 1}",
                           leaf_scale=True)
    mine, theirs = pick(gx_state, ox_state)
    assert_trees_close(mine, theirs, rtol=rtol, atol=atol, what="state", leaf_scale=True)


def _apply(result, params, apply=gx.apply_updates):
    updates, state = result
    return apply(params, updates), state


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_parity_float32(case):
    _, gx_tx, ox_tx, pick = case
    _run_pair(gx_tx, ox_tx, jnp.float32, pick, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_parity_float64(case):
    name, gx_tx, ox_tx, pick = case
    tol = 1e-7 if name in SCHEDULED else 1e-12
    with jax.enable_x64(True):
        _run_pair(gx_tx, ox_tx, jnp.float64, pick, rtol=tol, atol=tol)
