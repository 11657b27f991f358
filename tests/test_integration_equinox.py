"""equinox models (pytrees whose leaves include functions and other non-arrays) via a filter.

The optimizer sees ``eqx.filter(model, eqx.is_array)``: the arrays, with ``None`` where the
model holds anything else; ``None`` is an empty subtree to gradxform, so init, update, the
param-spec check and weight decay (which reads the params) all skip those places, and
``eqx.apply_updates`` puts the updates back into the model.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx

eqx = pytest.importorskip("equinox")

STEPS = 80


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.uniform(-2, 2, size=(128, 1)), jnp.float32)
    y = jnp.sin(2 * x)
    return x, y


def mse(model, x, y):
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


@pytest.mark.parametrize("make_tx", [
    lambda: gx.adam(1e-2),
    lambda: gx.adamw(gx.cosine_decay_schedule(1e-2, STEPS, alpha=0.1), weight_decay=1e-3),
    lambda: gx.chain(gx.clip_by_global_norm(1.0), gx.rmsprop(3e-3, momentum=0.5)),
], ids=["adam", "adamw_schedule", "clip_rmsprop_momentum"])
def test_equinox_mlp_trains(make_tx):
    x, y = data()
    model = eqx.nn.MLP(1, 1, width_size=32, depth=2, activation=jax.nn.tanh,
                       key=jax.random.key(0))
    # The model has non-array leaves (the activation functions).
    assert any(callable(leaf) for leaf in jax.tree.leaves(model))
    tx = make_tx()
    opt_state = tx.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model, opt_state):
        loss, grads = eqx.filter_value_and_grad(mse)(model, x, y)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    losses = []
    for _ in range(STEPS):
        model, opt_state, loss = step(model, opt_state)
        losses.append(float(loss))
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])
    assert isinstance(opt_state, gx.OptState)


def test_equinox_gradients_of_a_different_model_are_rejected():
    model = eqx.nn.MLP(1, 1, width_size=8, depth=1, key=jax.random.key(0))
    other = eqx.nn.MLP(1, 1, width_size=16, depth=1, key=jax.random.key(0))
    tx = gx.adam(1e-3)
    state = tx.init(eqx.filter(model, eqx.is_array))
    grads = jax.tree.map(jnp.ones_like, eqx.filter(other, eqx.is_array))
    with pytest.raises(gx.StructureMismatchError, match=r"the params are float32\[8, 1\] but "
                                                        r"the updates are float32\[16, 1\]"):
        tx.update(grads, state)
