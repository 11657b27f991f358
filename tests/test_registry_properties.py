"""Properties every registered optimizer has (the optimizers-as-values thesis and the dtype
policy), checked over the whole conformance table:

* a stack of the same optimizer with different learning rates trains in one ``vmap``;
* the current learning rate (a schedule evaluated at the step) is readable with
  ``gx.hyperparams``;
* ``jax.grad`` of a few steps' loss with respect to the learning rate is finite;
* bfloat16 params: float32 accumulators, bfloat16 updates and params, the loss falls;
* ``None`` leaves and empty trees work;
* complex params are optimised, or rejected with an error naming the optimizer.
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from helpers import assert_trees_close, nested_params
from registry import all_entries
from targets import TARGETS

ENTRIES = all_entries()
IDS = [e.name for e in ENTRIES]
QUAD_INIT, QUAD_LOSS = TARGETS["quadratic"]


def _sum_of_squares(params):
    total = jnp.zeros([], jnp.float32)
    for x in jax.tree.leaves(params):
        total = total + jnp.sum(jnp.abs(x) ** 2).astype(jnp.float32)
    return total


def _extra(entry, value, key, loss=_sum_of_squares, grad=None):
    out = {}
    if "value" in entry.extra:
        out["value"] = value
    if entry.needs_key:
        out["key"] = key
    if "obj_fn" in entry.extra:  # the objective, for second-order estimates (Sophia)
        out["obj_fn"] = loss
    if "grad_fn" in entry.extra:  # the gradient at another point (SAM's opaque mode)
        out["grad_fn"] = lambda p, i: jax.tree.map(jnp.conj, jax.grad(loss)(p))
    if "value_fn" in entry.extra:  # the objective, for line searches
        out["value_fn"] = loss
    if "grad" in entry.extra:  # the gradient at the current params, for line searches
        out["grad"] = grad
    return out


def _train(entry, tx, params, loss, steps):
    state = tx.init(params)

    def body(carry, key):
        p, s = carry
        value, g = jax.value_and_grad(loss)(p)
        u, s = tx.update(g, s, p, **_extra(entry, value, key, loss, g))
        return (gx.apply_updates(p, u), s), value

    keys = jax.random.split(jax.random.key(0), steps)
    (params, state), values = jax.lax.scan(body, (params, state), keys)
    return params, state, values


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_vmap_over_learning_rates(entry):
    base = entry.lr["quadratic"]
    lrs = [base * f for f in (0.25, 0.5, 1.0, 2.0)]
    stacked = gx.stack([entry.make(lr) for lr in lrs])
    params = QUAD_INIT(jnp.float32)
    train = jax.jit(lambda tx: _train(entry, tx, params, QUAD_LOSS, 20)[0])
    batched = jax.jit(jax.vmap(train))(stacked)
    for i, lr in enumerate(lrs):
        # Each optimizer alone, passed through jit as a value like the vmapped stack is, so
        # both see float32 hyperparameters (see gradxform._src.tree.complement).
        alone = train(entry.make(lr))
        one = jax.tree.map(operator.itemgetter(i), batched)
        if entry.vmap_atol is None:
            assert_trees_close(one, alone, rtol=1e-6, atol=1e-6, what=f"{entry.name} lr={lr}",
                               leaf_scale=True)
        else:
            assert_trees_close(one, alone, rtol=0, atol=entry.vmap_atol,
                               what=f"{entry.name} lr={lr}")


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_current_learning_rate_is_readable(entry):
    if entry.lr_key is None:
        pytest.skip(f"{entry.name} has no learning rate")
    base = entry.lr["quadratic"]
    schedule = gx.linear_schedule(base, base / 10, 10)
    tx = entry.make(schedule)
    params = QUAD_INIT(jnp.float32)
    _, state, _ = _train(entry, tx, params, QUAD_LOSS, 4)
    values = gx.hyperparams(tx, state)
    assert entry.lr_key in values, f"{entry.name}: keys are {sorted(values)}"
    np.testing.assert_allclose(values[entry.lr_key], float(schedule(4)), rtol=1e-6)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_meta_gradient_wrt_learning_rate(entry):
    params = QUAD_INIT(jnp.float32)

    def final_loss(lr):
        p, _, _ = _train(entry, entry.make(lr), params, QUAD_LOSS, 5)
        return QUAD_LOSS(p)

    g = jax.jit(jax.grad(final_loss))(jnp.float32(entry.lr["quadratic"]))
    assert np.isfinite(float(g)), f"{entry.name}: d loss / d lr = {g}"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_bfloat16_params(entry):
    params = QUAD_INIT(jnp.bfloat16)
    tx = entry.make(target="quadratic")
    state = tx.init(params)
    for leaf in jax.tree.leaves(state.inner):
        if jnp.issubdtype(leaf.dtype, jnp.floating) and leaf.ndim > 0:
            assert leaf.dtype == jnp.float32, f"{entry.name}: accumulator in {leaf.dtype}"
    value, g = jax.value_and_grad(QUAD_LOSS)(params)
    updates, _ = tx.update(g, state, params,
                         **_extra(entry, value, jax.random.key(0), QUAD_LOSS, g))
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))
    new_params, _, values = _train(entry, tx, params, QUAD_LOSS, 60)
    assert all(p.dtype == jnp.bfloat16 for p in jax.tree.leaves(new_params))
    final = float(QUAD_LOSS(new_params))
    assert np.isfinite(final) and final < float(values[0]), f"{entry.name}: {final}"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_none_leaves_and_empty_trees(entry):
    tx = entry.make(target="quadratic")
    params = nested_params()
    grads = jax.tree.map(jnp.ones_like, params)
    state = tx.init(params)
    extra = _extra(entry, jnp.float32(1.0), jax.random.key(0), grad=grads)
    updates, state = tx.update(grads, state, params, **extra)
    assert updates["unused"] is None
    assert jax.tree.structure(updates) == jax.tree.structure(params)
    empty_state = tx.init({})
    updates, _ = tx.update({}, empty_state, {}, **extra)
    assert updates == {}


def _complex_loss(p):
    target = jnp.asarray([1 + 2j, -0.5 + 0.25j, 0.3 - 1j], jnp.complex64)
    return jnp.sum(jnp.abs(p["z"] - target) ** 2)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_complex_params(entry):
    tx = entry.make(target="quadratic")
    params = {"z": jnp.zeros(3, jnp.complex64)}
    if not entry.supports_complex:
        with pytest.raises((TypeError, ValueError), match=entry.factory.__name__):
            state = tx.init(params)
            g = jax.tree.map(jnp.conj, jax.grad(_complex_loss)(params))
            tx.update(g, state, params)
        return
    state = tx.init(params)
    start = float(_complex_loss(params))
    for _ in range(30):
        value, g = jax.value_and_grad(_complex_loss)(params)
        g = jax.tree.map(jnp.conj, g)  # JAX returns the conjugate of the descent direction
        u, state = tx.update(g, state, params,
                             **_extra(entry, value, jax.random.key(0), _complex_loss, g))
        params = gx.apply_updates(params, u)
    final = float(_complex_loss(params))
    assert np.isfinite(final) and final < start, f"{entry.name}: {start} -> {final}"
