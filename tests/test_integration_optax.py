"""Mixing with optax both ways: optax links in ``gx.chain``, gradxform ones in ``optax.chain``.

Each mixed chain trains a small least-squares model (jitted, updates applied with
``optax.apply_updates``) until the loss falls, and is compared with the same chain written in
one library on a fixed stream of gradients (open loop, so that rounding differences are not
amplified by training): params after every step to rtol 1e-6 in float32. optax runs under
standard dtype promotion (it fails under the strict promotion of the test suite).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradxform as gx
from helpers import assert_trees_close, gradient_stream, nested_params, run, standard_promotion

STEPS = 80


def regression_problem(seed=0):
    """A least-squares problem over a nested tree; the loss at the start is far from 0."""
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(64, 5)), jnp.float32)
    w_true = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    y = x @ w_true + jnp.asarray(0.01 * rng.normal(size=(64, 3)), jnp.float32)
    params = {"dense": {"w": jnp.zeros((5, 3), jnp.float32), "b": jnp.zeros(3, jnp.float32)},
              "scale": jnp.ones([], jnp.float32)}

    def loss(p):
        pred = p["scale"] * (x @ p["dense"]["w"]) + p["dense"]["b"][None, :]
        return jnp.mean((pred - y) ** 2)

    return params, loss


def train(tx, params, loss, apply=optax.apply_updates, steps=STEPS, extra=None):
    """Run ``steps`` jitted steps; return the loss before each step and the params after each."""

    @jax.jit
    def step(p, s):
        value, grads = jax.value_and_grad(loss)(p)
        u, s = tx.update(grads, s, p, **(extra(value) if extra else {}))
        return apply(p, u), s, value

    state = tx.init(params)
    losses, trajectory = [], []
    for _ in range(steps):
        params, state, value = step(params, state)
        losses.append(float(value))
        trajectory.append(params)
    return losses, trajectory, state


def assert_same_steps(tx, reference, steps=40, extra=None):
    """``tx`` and ``reference`` give the same params on one fixed gradient stream."""
    params = nested_params()
    grads = gradient_stream(params, steps)
    with standard_promotion():
        got = run(tx, params, grads, extra=extra)
        want = run(reference, params, grads, extra=extra)
    for t, ((p, _), (q, _)) in enumerate(zip(got, want)):
        assert_trees_close(p, q, rtol=1e-6, atol=1e-6, leaf_scale=True, what=f"step {t}")


def test_optax_link_inside_gradxform_chain():
    params, loss = regression_problem()
    sched = gx.warmup_cosine_decay_schedule(0.0, 0.05, 10, STEPS)
    mixed = gx.chain(optax.clip_by_global_norm(1.0), gx.scale_by_adam(),
                     gx.scale_by_learning_rate(sched))
    pure = optax.chain(optax.clip_by_global_norm(1.0), optax.scale_by_adam(),
                       optax.scale_by_learning_rate(
                           optax.warmup_cosine_decay_schedule(0.0, 0.05, 10, STEPS)))
    with standard_promotion():
        losses, _, state = train(mixed, params, loss)
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])
    assert_same_steps(mixed, pure)
    # The optax link keeps its own state inside gradxform's single OptState.
    assert isinstance(state, gx.OptState) and int(state.count) == STEPS
    assert isinstance(state.inner[0], optax.ClipByGlobalNormState)
    # gradxform's hyperparameters are still readable through the mixed chain.
    lr = gx.hyperparams(mixed, state)["learning_rate"]
    np.testing.assert_allclose(float(lr), float(sched(STEPS)), rtol=1e-6)


def test_gradxform_link_inside_optax_chain():
    params, loss = regression_problem(1)
    mixed = optax.chain(optax.clip_by_global_norm(1.0), gx.adamw(0.05, weight_decay=1e-3))
    pure = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(0.05, weight_decay=1e-3))
    with standard_promotion():
        losses, _, state = train(mixed, params, loss)
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])
    assert_same_steps(mixed, pure)
    assert isinstance(state[1], gx.OptState) and int(state[1].count) == STEPS


@pytest.mark.parametrize("apply", [optax.apply_updates, gx.apply_updates],
                         ids=["optax_apply_updates", "gx_apply_updates"])
def test_pure_gradxform_with_either_apply_updates(apply):
    params, loss = regression_problem(2)
    losses, traj, _ = train(gx.sgd(0.05, momentum=0.9), params, loss, apply=apply)
    assert losses[-1] < 0.05 * losses[0]
    with standard_promotion():
        _, ref_traj, _ = train(optax.sgd(0.05, momentum=0.9), params, loss)
    # Plain SGD with momentum does the same float32 operations in both: equal to the last bit.
    for p, q in zip(traj, ref_traj):
        assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q)))


def test_optax_inject_hyperparams_inside_gradxform_chain():
    params, loss = regression_problem(3)
    inner = optax.inject_hyperparams(optax.sgd)(learning_rate=0.02, momentum=0.5)
    tx = gx.chain(gx.clip(10.0), inner)
    with standard_promotion():
        losses, _, state = train(tx, params, loss)
    assert losses[-1] < 0.05 * losses[0]
    found = gx.hyperparams(tx, state)
    np.testing.assert_allclose(float(found["learning_rate"]), 0.02, rtol=1e-6)
    np.testing.assert_allclose(float(found["max_delta"]), 10.0)


def test_extra_arguments_reach_optax_links_in_gradxform_chains():
    """optax's loss-aware Polyak step size receives ``value=`` through a gradxform chain."""
    params, loss = regression_problem(4)
    tx = gx.chain(optax.scale_by_polyak(max_learning_rate=0.5), gx.scale(-1.0))
    with standard_promotion():
        losses, _, _ = train(tx, params, loss, extra=lambda value: {"value": value})
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])
    assert_same_steps(tx, optax.polyak_sgd(max_learning_rate=0.5), steps=20,
                      extra={"value": jnp.asarray(3.0, jnp.float32)})


def test_nested_both_ways():
    """optax.chain inside gx.chain inside optax.chain: the state nests, the numbers agree."""
    params, loss = regression_problem(5)
    mixed = optax.chain(
        gx.chain(optax.chain(optax.clip(1.0), gx.trace(0.9)), gx.scale_by_learning_rate(0.01)))
    pure = optax.chain(optax.clip(1.0), optax.trace(0.9), optax.scale_by_learning_rate(0.01))
    with standard_promotion():
        losses, _, _ = train(mixed, params, loss)
    assert losses[-1] < 0.2 * losses[0]
    assert_same_steps(mixed, pure)
