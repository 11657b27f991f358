"""The conformance table: every registered optimizer crossed with targets, dtypes, jit/eager.

For each entry (``tests/registry``) and each target (quadratic, Rosenbrock, Gabor) and dtype
(float32, float64):

* it converges under ``jit`` + ``lax.scan`` (scan itself rejects a state whose structure,
  shapes or dtypes change from step to step, so that needs no assertion here);
* eager execution gives the same first steps as jit;
* changing the learning rate does not retrace a jitted step;
* extra keyword arguments pass through ``update``;
* ``lax.cond`` between two states returns the chosen state's values.

Convergence is a smoke test: the targets cannot tell Adam from a dozen other algorithms. What
each entry computes is pinned by ``tests/test_table_fingerprints.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from helpers import TraceCounter, assert_trees_close
from registry import all_entries
from targets import TARGETS

ENTRIES = all_entries()
IDS = [e.name for e in ENTRIES]
DTYPES = {"f32": jnp.float32, "f64": jnp.float64}


def _sum_of_squares(params):
    total = jnp.zeros([], jnp.float32)
    for x in jax.tree.leaves(params):
        total = total + jnp.sum(jnp.abs(x) ** 2).astype(jnp.float32)
    return total


def _extra(entry, loss_value, key, loss=_sum_of_squares, grad=None):
    extra = {}
    if "value" in entry.extra:
        extra["value"] = loss_value
    if entry.needs_key:
        extra["key"] = key
    if "obj_fn" in entry.extra:  # the objective, for second-order estimates (Sophia)
        extra["obj_fn"] = loss
    if "grad_fn" in entry.extra:  # the gradient at another point (SAM's opaque mode)
        extra["grad_fn"] = lambda p, i: jax.tree.map(jnp.conj, jax.grad(loss)(p))
    if "value_fn" in entry.extra:  # the objective, for line searches
        extra["value_fn"] = loss
    if "grad" in entry.extra:  # the gradient at the current params, for line searches
        extra["grad"] = grad
    return extra


def _train(entry, tx, target, dtype, steps):
    init, loss = TARGETS[target]
    params = init(dtype)
    state = tx.init(params)

    def body(carry, key):
        p, s = carry
        value, g = jax.value_and_grad(loss)(p)
        u, s = tx.update(g, s, p, **_extra(entry, value, key, loss, g))
        return (gx.apply_updates(p, u), s), value

    keys = jax.random.split(jax.random.key(0), steps)
    (params, state), losses = jax.lax.scan(body, (params, state), keys)
    return params, state, losses, float(loss(params))


@pytest.mark.parametrize("dtype", DTYPES, ids=list(DTYPES))
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_converges(entry, target, dtype):
    with jax.enable_x64(dtype == "f64"):
        tx = entry.make(target=target)
        _, state, losses, final = _train(entry, tx, target, DTYPES[dtype], entry.steps[target])
        assert np.isfinite(final), f"{entry.name} diverged on {target}"
        assert final < entry.tol[target], (
            f"{entry.name} on {target} ({dtype}): final loss {final:.3e} >= {entry.tol[target]}"
            f" (start {float(losses[0]):.3e})")
        if state.count is not None:
            assert int(state.count) == entry.steps[target]


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_eager_matches_jit(entry):
    init, loss = TARGETS["quadratic"]
    tx = entry.make(target="quadratic")
    key = jax.random.key(3)

    def step(p, s):
        value, g = jax.value_and_grad(loss)(p)
        u, s = tx.update(g, s, p, **_extra(entry, value, key, loss, g))
        return gx.apply_updates(p, u), s

    jitted = jax.jit(step)
    p_e = p_j = init(jnp.float32)
    s_e = s_j = tx.init(p_e)
    for _ in range(5):
        p_e, s_e = step(p_e, s_e)
        p_j, s_j = jitted(p_j, s_j)
    assert_trees_close(p_e, p_j, rtol=1e-5, atol=1e-7, what=f"{entry.name} eager vs jit")


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_no_retrace_when_learning_rate_changes(entry):
    init, loss = TARGETS["quadratic"]
    params = init(jnp.float32)
    key = jax.random.key(1)

    def step(tx, s, p):
        value, g = jax.value_and_grad(loss)(p)
        u, s = tx.update(g, s, p, **_extra(entry, value, key, loss, g))
        return gx.apply_updates(p, u), s

    counter = TraceCounter(step)
    jitted = jax.jit(counter)
    for lr in (1e-3, 3e-3, 1e-2):
        tx = entry.make(lr)
        p, s = jitted(tx, tx.init(params), params)
        jax.block_until_ready(p)
    assert counter.count == 1, f"{entry.name}: traced {counter.count} times for 3 learning rates"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_extra_args_and_cond(entry):
    init, loss = TARGETS["quadratic"]
    params = init(jnp.float32)
    tx = entry.make(target="quadratic")
    state = tx.init(params)
    value, g = jax.value_and_grad(loss)(params)
    extra = _extra(entry, value, jax.random.key(2), loss, g)
    extra["unrelated_argument"] = jnp.ones(3)
    _, new_state = tx.update(g, state, params, **extra)

    @jax.jit
    def pick(flag):
        return jax.lax.cond(flag, lambda: new_state, lambda: state)

    # The structure cannot differ (cond enforces it); the values must be the chosen branch's.
    assert_trees_close(pick(True), new_state, rtol=0, what=f"{entry.name}: cond(True)")
    assert_trees_close(pick(False), state, rtol=0, what=f"{entry.name}: cond(False)")
    assert any(not np.array_equal(a, b) for a, b in
               zip(jax.tree.leaves(new_state), jax.tree.leaves(state))) or not jax.tree.leaves(
        state.inner), f"{entry.name}: the update changed no state value"
