"""flax accepts gradxform transformations unchanged: linen ``TrainState`` and ``nnx.Optimizer``.

Each test trains a small MLP end to end on a fixed synthetic classification problem (jitted)
and checks that the loss falls, that the state flax keeps is gradxform's ``OptState`` with the
step count flax expects, and that the current learning rate can be read back from it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx
from flax.training import train_state

import gradxform as gx

STEPS = 60


def classification_data(n=256, d=8, classes=4, seed=0):
    """Inputs and labels of a random linear teacher (learnable, not trivially)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    teacher = rng.normal(size=(d, classes)).astype(np.float32)
    y = np.argmax(x @ teacher + 0.1 * rng.normal(size=(n, classes)), axis=1)
    return jnp.asarray(x), jnp.asarray(y, jnp.int32)


def cross_entropy(logits, labels):
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


def reference_cosine(init_value, decay_steps, count):
    """The cosine schedule written out independently (Loshchilov & Hutter, no restarts)."""
    t = min(count, decay_steps)
    return init_value * 0.5 * (1 + np.cos(np.pi * t / decay_steps))


# --------------------------------------------------------------------------------------------
# linen TrainState


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(32)(x))
        return nn.Dense(4)(x)


@pytest.mark.parametrize("make_tx", [
    lambda: gx.adamw(gx.cosine_decay_schedule(3e-2, STEPS), weight_decay=1e-3),
    lambda: gx.chain(gx.clip_by_global_norm(1.0), gx.sgd(0.3, momentum=0.9, nesterov=True)),
], ids=["adamw_cosine", "clip_nesterov"])
def test_linen_train_state_trains(make_tx):
    x, y = classification_data()
    model = LinenMLP()
    params = model.init(jax.random.key(0), x[:1])["params"]
    tx = make_tx()
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    assert isinstance(state.opt_state, gx.OptState)

    @jax.jit
    def train_step(state, x, y):
        def loss_fn(p):
            return cross_entropy(state.apply_fn({"params": p}, x), y)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), loss

    losses = []
    for _ in range(STEPS):
        state, loss = train_step(state, x, y)
        losses.append(float(loss))
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])
    assert int(state.step) == STEPS
    assert isinstance(state.opt_state, gx.OptState)
    if state.opt_state.count is not None:
        assert int(state.opt_state.count) == STEPS
    # The tx is a static field of TrainState: a value that compares equal to a fresh one.
    assert state.tx == make_tx()


def test_linen_train_state_reports_the_scheduled_learning_rate():
    x, y = classification_data()
    model = LinenMLP()
    params = model.init(jax.random.key(1), x[:1])["params"]
    tx = gx.adam(gx.cosine_decay_schedule(1e-2, 40))
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)

    @jax.jit
    def train_step(state):
        grads = jax.grad(lambda p: cross_entropy(state.apply_fn({"params": p}, x), y))(
            state.params)
        used = gx.hyperparams(state.tx, state.opt_state)["learning_rate"]
        return state.apply_gradients(grads=grads), used

    for count in range(12):
        state, used = train_step(state)
        np.testing.assert_allclose(float(used), reference_cosine(1e-2, 40, count), rtol=1e-5,
                                   atol=1e-9)


# --------------------------------------------------------------------------------------------
# nnx.Optimizer


class NnxMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(8, 32, rngs=rngs)
        self.norm = nnx.BatchNorm(32, rngs=rngs)  # batch statistics: not optimised
        self.out = nnx.Linear(32, 4, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.norm(self.hidden(x))))


def test_nnx_optimizer_trains_and_logs_the_learning_rate():
    x, y = classification_data()
    model = NnxMLP(nnx.Rngs(0))
    tx = gx.chain(gx.clip_by_global_norm(5.0), gx.adam(gx.cosine_decay_schedule(2e-2, STEPS)))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    n_params = len(jax.tree.leaves(nnx.state(model, nnx.Param)))
    n_batch_stats = len(jax.tree.leaves(nnx.state(model, nnx.BatchStat)))
    assert n_batch_stats == 2 and n_params == 6

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def loss_fn(model):
            return cross_entropy(model(x), y)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        # The recipe from the docs: metrics from the state *before* the update.
        metrics = gx.step_metrics(optimizer.tx, nnx.as_pure(optimizer.opt_state),
                                  nnx.as_pure(grads), loss=loss)
        optimizer.update(model, grads)
        return metrics

    history = [train_step(model, optimizer, x, y) for _ in range(STEPS)]
    losses = [float(m["loss"]) for m in history]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])
    for count, m in enumerate(history):
        assert int(m["step"]) == count
        np.testing.assert_allclose(float(m["learning_rate"]),
                                   reference_cosine(2e-2, STEPS, count), rtol=1e-5, atol=1e-9)
        assert float(m["grad_norm"]) > 0

    # The state nnx keeps is gradxform's, counting the same steps as nnx's own counter.
    state = nnx.as_pure(optimizer.opt_state)
    assert isinstance(state, gx.OptState)
    assert int(state.count) == int(optimizer.step[...]) == STEPS
    # Read the current learning rate outside the step, as the documentation shows.
    lr_now = gx.hyperparams(optimizer.tx, nnx.as_pure(optimizer.opt_state))["learning_rate"]
    np.testing.assert_allclose(float(lr_now), reference_cosine(2e-2, STEPS, STEPS), atol=1e-9)
    # Only the Params are optimised: the Adam moments cover the 6 Param leaves.
    clip_state, adam_state = state.inner
    assert clip_state == () and len(jax.tree.leaves(adam_state)) == 2 * n_params


def test_nnx_optimizer_rejects_gradients_of_another_model():
    model = NnxMLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, gx.adam(1e-3), wrt=nnx.Param)
    other = nnx.Linear(8, 4, rngs=nnx.Rngs(1))
    grads = nnx.grad(lambda m: jnp.sum(m(jnp.ones((2, 8)))))(other)
    with pytest.raises(gx.StructureMismatchError, match=r"adam\.update: the updates do not match"):
        optimizer.update(model, grads)
