"""Optimizers are values: equality, hashing, repr, pytree leaves, one trace, vmap, meta-gradients,
readable hyperparameters, and one step counter per optimizer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from helpers import TraceCounter
from targets import TARGETS

INIT, LOSS = TARGETS["quadratic"]


def test_equal_configs_are_equal_and_hash_alike():
    assert gx.adam(1e-3) == gx.adam(1e-3)
    assert hash(gx.adam(1e-3)) == hash(gx.adam(1e-3))
    assert gx.adam(1e-3) != gx.adam(3e-3)
    assert gx.adam(1e-3) != gx.adamw(1e-3)
    assert gx.sgd(0.1, momentum=0.9) != gx.sgd(0.1, momentum=0.9, nesterov=True)
    assert len({gx.adam(1e-3), gx.adam(1e-3), gx.adam(2e-3)}) == 2
    sched = gx.cosine_decay_schedule(1e-3, 100)
    assert gx.adam(sched) == gx.adam(gx.cosine_decay_schedule(1e-3, 100))
    assert hash(gx.adam(sched)) == hash(gx.adam(gx.cosine_decay_schedule(1e-3, 100)))
    assert gx.adam(jnp.asarray(1e-3)) == gx.adam(jnp.asarray(1e-3))


def test_repr_shows_hyperparameters():
    text = repr(gx.adam(1e-3, b1=0.8))
    assert "learning_rate=0.001" in text and "b1=0.8" in text and "name='adam'" in text
    assert repr(gx.clip_by_global_norm(1.0)) == "clip_by_global_norm(max_norm=1.0)"
    assert "cosine_decay_schedule(init_value=0.1, decay_steps=10" in repr(
        gx.sgd(gx.cosine_decay_schedule(0.1, 10)))


def test_float_hyperparameters_are_leaves_and_flags_are_static():
    tx = gx.adam(1e-3, b1=0.8, nesterov=True)
    leaves = jax.tree.leaves(tx)
    assert 1e-3 in leaves and 0.8 in leaves and 0.999 in leaves
    assert True not in leaves  # nesterov is structure
    halved = jax.tree.map(lambda x: x / 2, tx)
    assert halved == gx.adam(5e-4, b1=0.4, b2=0.4995, eps=5e-9, nesterov=True)


def test_one_trace_for_three_learning_rates():
    params = INIT(jnp.float32)

    def step(tx, state, params):
        g = jax.grad(LOSS)(params)
        updates, state = tx.update(g, state, params)
        return gx.apply_updates(params, updates), state

    counter = TraceCounter(step)
    jitted = jax.jit(counter)
    results = []
    for lr in (1e-3, 3e-3, 1e-2):
        tx = gx.chain(gx.clip_by_global_norm(1.0), gx.adamw(lr, weight_decay=1e-4))
        results.append(jitted(tx, tx.init(params), params)[0])
    assert counter.count == 1
    # the three runs really used three learning rates
    assert not np.allclose(results[0]["a"], results[1]["a"])


def test_vmap_over_eight_learning_rates_in_one_run():
    lrs = np.geomspace(1e-3, 1e-1, 8)
    stacked = gx.stack([gx.adam(float(lr)) for lr in lrs])
    params = INIT(jnp.float32)

    def train(tx):
        def body(carry, _):
            p, s = carry
            g = jax.grad(LOSS)(p)
            u, s = tx.update(g, s, p)
            return (gx.apply_updates(p, u), s), LOSS(p)

        _, losses = jax.lax.scan(body, (params, tx.init(params)), None, length=50)
        return losses

    losses = jax.jit(jax.vmap(train))(stacked)
    assert losses.shape == (8, 50)
    for i, lr in enumerate(lrs):
        alone = jax.jit(train)(gx.adam(float(lr)))
        np.testing.assert_allclose(losses[i], alone, rtol=1e-6)
    # larger learning rates make faster progress at step 10 on this problem
    assert losses[-1, 10] < losses[0, 10]


def test_stack_rejects_structurally_different_values():
    with pytest.raises(ValueError, match="stack: the values differ in structure"):
        gx.stack([gx.adam(1e-3), gx.adam(1e-3, nesterov=True)])


def test_meta_gradient_matches_finite_differences():
    params = INIT(jnp.float32)

    def final_loss(lr):
        tx = gx.sgd(lr, momentum=0.9)

        def body(carry, _):
            p, s = carry
            u, s = tx.update(jax.grad(LOSS)(p), s, p)
            return (gx.apply_updates(p, u), s), None

        (p, _), _ = jax.lax.scan(body, (params, tx.init(params)), None, length=5)
        return LOSS(p)

    with jax.enable_x64(True):
        params = INIT(jnp.float64)
        lr = jnp.float64(0.01)
        grad = jax.grad(final_loss)(lr)
        h = 1e-6
        fd = (final_loss(lr + h) - final_loss(lr - h)) / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=1e-6)


def test_hyperparams_reports_current_values_with_schedules_evaluated():
    schedule = gx.warmup_cosine_decay_schedule(0.0, 1e-2, 10, 100)
    tx = gx.chain(gx.clip_by_global_norm(1.0), gx.adamw(schedule, b1=gx.linear_schedule(
        0.5, 0.9, 20), weight_decay=1e-4))
    params = INIT(jnp.float32)
    state = tx.init(params)
    for _ in range(7):
        _, state = tx.update(jax.grad(LOSS)(params), state, params)
    values = gx.hyperparams(tx, state)
    np.testing.assert_allclose(values["learning_rate"], schedule(7), rtol=1e-6)
    np.testing.assert_allclose(values["b1"], 0.5 + 0.4 * 7 / 20, rtol=1e-6)
    assert float(values["max_norm"]) == 1.0
    assert float(values["weight_decay"]) == pytest.approx(1e-4)
    # also inside jit
    jitted = jax.jit(gx.hyperparams, static_argnums=0)(tx, state)
    np.testing.assert_allclose(jitted["learning_rate"], values["learning_rate"])


def test_hyperparams_prefix_repeated_names():
    tx = gx.chain(gx.scale_by_adam(eps=1e-6), gx.scale_by_rms(eps=1e-3))
    values = gx.hyperparams(tx, tx.init({"w": jnp.ones(2)}))
    assert float(values["scale_by_adam.eps"]) == pytest.approx(1e-6)
    assert float(values["scale_by_rms.eps"]) == pytest.approx(1e-3)


def test_one_step_counter_for_a_whole_chain():
    """optax keeps three counters for clip + adamw + schedule; gradxform keeps one."""
    tx = gx.chain(gx.clip_by_global_norm(1.0),
                  gx.adamw(gx.cosine_decay_schedule(1e-3, 100), weight_decay=1e-4))
    state = tx.init(INIT(jnp.float32))
    int_leaves = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.integer)]
    assert len(int_leaves) == 1 and int_leaves[0] is state.count


def test_stateless_transformations_keep_no_arrays_but_check_structure():
    tx = gx.clip_by_global_norm(1.0)
    params = {"w": jnp.ones((2, 3))}
    state = tx.init(params)
    assert jax.tree.leaves(state) == []
    with pytest.raises(gx.StructureMismatchError, match=r"at \['w'\] the params are "
                       r"float32\[2, 3\] but the updates are float32\[3, 2\]"):
        tx.update({"w": jnp.ones((3, 2))}, state)


def test_mismatched_tree_names_missing_and_extra_leaves():
    tx = gx.adam(1e-3)
    state = tx.init({"w": jnp.ones(2), "b": jnp.ones(1)})
    with pytest.raises(gx.StructureMismatchError) as info:
        tx.update({"w": jnp.ones(2), "c": jnp.ones(1)}, state)
    message = str(info.value)
    assert message.startswith("adam.update: the updates do not match")
    assert "leaves missing from the updates: ['b']" in message
    assert "leaves not in the params: ['c']" in message


def test_mismatched_dtype_is_rejected_not_cast():
    tx = gx.sgd(0.1)
    state = tx.init({"w": jnp.ones(2, jnp.float32)})
    with pytest.raises(gx.StructureMismatchError, match=r"float32\[2\] but the updates are "
                       r"bfloat16\[2\]"):
        tx.update({"w": jnp.ones(2, jnp.bfloat16)}, state)


def test_wrong_state_type_is_named():
    with pytest.raises(TypeError, match="adam.update: state must be the OptState returned by "
                       "adam.init"):
        gx.adam(1e-3).update({"w": jnp.ones(2)}, ({}, {}))


def test_update_without_params_names_the_transformation_that_needs_them():
    tx = gx.adamw(1e-3)
    state = tx.init({"w": jnp.ones(2)})
    with pytest.raises(ValueError, match="adamw: needs the current params"):
        tx.update({"w": jnp.ones(2)}, state)


def test_plain_callable_schedules_are_accepted():
    tx = gx.sgd(lambda count: 0.1 / (1 + count.astype(jnp.float32)))
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    u, state = tx.update({"w": jnp.ones(2)}, state, params)
    np.testing.assert_allclose(u["w"], -0.1)
    u, state = tx.update({"w": jnp.ones(2)}, state, params)
    np.testing.assert_allclose(u["w"], -0.05)


def test_init_from_shape_dtype_structs():
    params = {"w": jax.ShapeDtypeStruct((3, 2), jnp.bfloat16), "b": jax.ShapeDtypeStruct(
        (2,), jnp.float32)}
    state = gx.adam(1e-3).init(params)
    assert state.inner[0].mu["w"].dtype == jnp.float32 and state.inner[0].mu["w"].shape == (3, 2)
    concrete = {"w": jnp.ones((3, 2), jnp.bfloat16), "b": jnp.ones(2)}
    gx.adam(1e-3).update(concrete, state, concrete)
