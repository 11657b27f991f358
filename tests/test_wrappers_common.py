"""What every wrapper and router shares, each composed with Adam and with SGD (momentum):

* training under ``jit`` + ``lax.scan`` reduces the quadratic target, and the state keeps its
  structure, shapes and dtypes (scan rejects a carry that changes);
* changing the learning rate *and the wrapper's own hyperparameters* does not retrace;
* a batch of wrappers stacked with ``gx.stack`` trains under ``vmap`` exactly like each alone;
* the state survives ``lax.cond``; equal configs are equal values and hash alike;
* ``gx.hyperparams`` reports the inner learning rate and the wrapper's own numbers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from helpers import TraceCounter, assert_trees_close
from targets import quadratic_init, quadratic_loss

INNER = {"adam": lambda lr: gx.adam(lr), "sgd": lambda lr: gx.sgd(lr, momentum=0.5)}
LR = {"adam": 0.05, "sgd": 0.03}

# (name, build(inner, v) with v in 1..3 varying a hyperparameter of the wrapper itself,
#  loss threshold after training)
WRAPPERS = [
    ("accumulate", lambda t, v: gx.accumulate(t, every_k=v), 1e-2),
    ("skip_non_finite", lambda t, v: gx.skip_non_finite(t, max_consecutive_errors=v), 1e-2),
    ("dynamic_loss_scale", lambda t, v: gx.dynamic_loss_scale(t, initial_scale=1.0 * v,
                                                              growth_interval=10 * v), 1e-2),
    ("ema_params", lambda t, v: gx.ema_params(t, decay=1 - 0.1 / v), 1e-2),
    ("swa_params", lambda t, v: gx.swa_params(t, start=10 * v, every=v), 1e-2),
    ("reduce_on_plateau", lambda t, v: gx.chain(t, gx.reduce_on_plateau(patience=5 * v)), 1e-2),
    ("maximize", lambda t, v: gx.chain(gx.scale(-1.0 * v / v), gx.maximize(t)), 1e-2),
    ("partition", lambda t, v: gx.partition({"a": t, "b": gx.sgd(0.01 * v)},
                                            {"a": "a", "b": "b"}), 1e-2),
    ("masked", lambda t, v: gx.chain(gx.masked(t, {"a": True, "b": False}),
                                     gx.masked(gx.sgd(0.01 * v), "b")), 1e-2),
    ("freeze",  # b stays
     lambda t, v: gx.selective_transform(t, freeze_mask=gx.by_regex(r"\['b'\]")), 5.0),
]
CASES = [(w, i) for w in WRAPPERS for i in INNER]
IDS = [f"{w[0]}-{i}" for w, i in CASES]


def _build(case, lr=None, v=1):
    (_, build, _), inner = case
    return build(INNER[inner](LR[inner] if lr is None else lr), v)


def _grads(tx, s, p):
    """The loss and the gradient of the loss times the loss scale, if ``tx`` keeps one."""
    scale = gx.hyperparams(tx, s).get("loss_scale", jnp.ones([]))
    value, g = jax.value_and_grad(lambda q: quadratic_loss(q) * scale)(p)
    return value / scale, g


def _train(tx, steps=300):
    params = quadratic_init(jnp.float32)
    state = tx.init(params)

    def body(carry, _):
        p, s = carry
        value, g = _grads(tx, s, p)
        u, s = tx.update(g, s, p, value=value)
        return (gx.apply_updates(p, u), s), value

    (params, state), _ = jax.lax.scan(body, (params, state), None, length=steps)
    return params, state, quadratic_loss(params)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_trains_under_scan_with_a_stable_state(case):
    tx = _build(case)
    params, state, final = jax.jit(_train)(tx)
    assert float(final) < case[0][2], f"final loss {float(final)}"
    init_state = tx.init(quadratic_init(jnp.float32))
    assert jax.tree.structure(state) == jax.tree.structure(init_state)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(init_state)):
        assert a.dtype == b.dtype and a.shape == b.shape
    if case[0][0] == "freeze":
        assert_trees_close(params["b"], quadratic_init(jnp.float32)["b"], rtol=0)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_no_retrace_across_hyperparameter_values(case):
    params = quadratic_init(jnp.float32)

    def step(tx, s, p):
        value, g = _grads(tx, s, p)
        u, s = tx.update(g, s, p, value=value)
        return gx.apply_updates(p, u), s

    counter = TraceCounter(step)
    jitted = jax.jit(counter)
    for lr, v in ((1e-3, 1), (3e-3, 2), (1e-2, 3)):
        tx = _build(case, lr, v)
        p, _ = jitted(tx, tx.init(params), params)
        jax.block_until_ready(p)
    assert counter.count == 1


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_over_stacked_values(case):
    values = [_build(case, lr, v) for lr, v in ((0.01, 1), (0.02, 2), (0.04, 3))]
    train = jax.jit(lambda tx: _train(tx, steps=12)[0])
    batched = jax.jit(jax.vmap(lambda tx: _train(tx, steps=12)[0]))(gx.stack(values))
    for i, tx in enumerate(values):
        member = jax.tree.map(lambda x, i=i: x[i], batched)
        assert_trees_close(member, train(tx), rtol=1e-6, atol=1e-7, what=f"member {i}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cond_equality_and_hyperparams(case):
    params = quadratic_init(jnp.float32)
    tx = _build(case)
    state = tx.init(params)
    value, g = jax.value_and_grad(quadratic_loss)(params)
    _, new_state = tx.update(g, state, params, value=value, unrelated=jnp.ones(2))
    picked = jax.jit(lambda flag: jax.lax.cond(flag, lambda: new_state, lambda: state))(True)
    assert jax.tree.structure(picked) == jax.tree.structure(state)
    assert _build(case) == tx and hash(_build(case)) == hash(tx)
    assert _build(case, v=2) != tx or case[0][0] in ("freeze", "maximize")  # no own numbers
    hp = gx.hyperparams(tx, new_state)
    assert any(k.endswith("learning_rate") for k in hp), hp
    lr = next(v for k, v in hp.items() if k.endswith("learning_rate"))
    np.testing.assert_allclose(lr, LR[case[1]], rtol=1e-6)
