"""Checkpointing the whole training state (params + optimizer state) and resuming bitwise.

Each test trains N steps, saves, builds everything again from scratch (model, optimizer,
a freshly initialised state with *different* params as the restore target), restores, trains M
more steps and compares every array with an uninterrupted run of N + M steps: they must be
equal to the last bit. Covered: ``flax.serialization`` (nothing to register: an ``OptState`` is a
NamedTuple) on a linen ``TrainState``, orbax on a plain dict of params and state, and orbax on
flax nnx state.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx, serialization
from flax.training import train_state

import gradxform as gx

N, M = 12, 9


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(64, 6)), jnp.float32)
    y = jnp.tanh(x[:, :2] * 2.0) + jnp.asarray(0.05 * rng.normal(size=(64, 2)), jnp.float32)
    return x, y


def make_tx():
    """An optimizer with a schedule, bias correction, weight decay and a clip: every kind of
    state (step count, moments, empty states) is in the checkpoint."""
    schedule = gx.warmup_cosine_decay_schedule(0.0, 3e-2, 5, N + M)
    return gx.chain(gx.clip_by_global_norm(1.0), gx.adamw(schedule, weight_decay=1e-2))


def assert_bitwise_equal(a, b, what):
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b, f"{what}: {tree_a} != {tree_b}"
    for x, y in zip(leaves_a, leaves_b):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape, what
        assert np.array_equal(x, y), f"{what}: max difference {np.max(np.abs(x - y))}"


# --------------------------------------------------------------------------------------------
# flax.serialization on a linen TrainState


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2)(nn.tanh(nn.Dense(16)(x)))


def new_train_state(seed):
    model = MLP()
    x, _ = data()
    params = model.init(jax.random.key(seed), x[:1])["params"]
    return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=make_tx())


@jax.jit
def linen_step(state, x, y):
    def loss_fn(p):
        return jnp.mean((state.apply_fn({"params": p}, x) - y) ** 2)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss


def test_flax_serialization_resumes_bitwise():
    x, y = data()
    uninterrupted = new_train_state(0)
    losses = []
    for _ in range(N + M):
        uninterrupted, loss = linen_step(uninterrupted, x, y)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]

    state = new_train_state(0)
    for _ in range(N):
        state, _ = linen_step(state, x, y)
    data_bytes = serialization.to_bytes(state)
    del state

    target = new_train_state(seed=123)  # fresh objects, different numbers
    restored = serialization.from_bytes(target, data_bytes)
    assert isinstance(restored.opt_state, gx.OptState)
    assert int(restored.step) == N and int(restored.opt_state.count) == N
    for _ in range(M):
        restored, _ = linen_step(restored, x, y)
    assert_bitwise_equal(restored.params, uninterrupted.params, "params")
    assert_bitwise_equal(restored.opt_state, uninterrupted.opt_state, "optimizer state")
    assert int(restored.step) == N + M


def test_flax_state_dict_of_an_opt_state_is_readable():
    state = make_tx().init({"w": jnp.zeros((2, 3), jnp.float32)})
    as_dict = serialization.to_state_dict(state)
    assert set(as_dict) == {"count", "inner", "made_by"}
    restored = serialization.from_state_dict(state, as_dict)
    assert_bitwise_equal(restored, state, "state dict round trip")
    # a state dict without the count is refused (by flax's NamedTuple restore)
    with pytest.raises(ValueError, match="field names of the state dict and the named tuple"):
        serialization.from_state_dict(state, {"inner": as_dict["inner"]})


# --------------------------------------------------------------------------------------------
# orbax on a dict of params and optimizer state


def test_orbax_resumes_bitwise(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    x, y = data(1)
    model = MLP()

    def fresh(seed):
        params = model.init(jax.random.key(seed), x[:1])["params"]
        tx = make_tx()
        return tx, {"params": params, "opt_state": tx.init(params)}

    # The optimizer is a static argument: fresh but equal values reuse the compiled step.
    @functools.partial(jax.jit, static_argnums=0)
    def step(tx, state):
        grads = jax.grad(lambda p: jnp.mean((model.apply({"params": p}, x) - y) ** 2))(
            state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        return {"params": gx.apply_updates(state["params"], updates), "opt_state": opt_state}

    tx, uninterrupted = fresh(0)
    for _ in range(N + M):
        uninterrupted = step(tx, uninterrupted)

    tx, state = fresh(0)
    for _ in range(N):
        state = step(tx, state)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", state)
    checkpointer.wait_until_finished()
    saved = jax.tree.map(np.asarray, state)
    del tx, state

    tx, target = fresh(seed=7)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = checkpointer.restore(tmp_path / "ckpt", abstract)
    checkpointer.close()
    assert isinstance(restored["opt_state"], gx.OptState)
    assert_bitwise_equal(restored, saved, "restored checkpoint")
    for _ in range(M):
        restored = step(tx, restored)
    assert_bitwise_equal(restored, uninterrupted, "resumed run")


# --------------------------------------------------------------------------------------------
# orbax on flax nnx state (model + nnx.Optimizer)


class NnxMLP(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(6, 16, rngs=rngs)
        self.l2 = nnx.Linear(16, 2, rngs=rngs)

    def __call__(self, x):
        return self.l2(nnx.tanh(self.l1(x)))


@nnx.jit
def nnx_step(model, optimizer, x, y):
    grads = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    optimizer.update(model, grads)


def test_orbax_resumes_nnx_bitwise(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    x, y = data(2)

    def fresh(seed):
        model = NnxMLP(nnx.Rngs(seed))
        return model, nnx.Optimizer(model, make_tx(), wrt=nnx.Param)

    model_a, opt_a = fresh(0)
    for _ in range(N + M):
        nnx_step(model_a, opt_a, x, y)

    model, optimizer = fresh(0)
    for _ in range(N):
        nnx_step(model, optimizer, x, y)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "nnx", {"model": nnx.state(model),
                                         "optimizer": nnx.state(optimizer)})
    checkpointer.wait_until_finished()
    del model, optimizer

    model_b, opt_b = fresh(seed=5)
    target = {"model": nnx.state(model_b), "optimizer": nnx.state(opt_b)}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = checkpointer.restore(tmp_path / "nnx", abstract)
    checkpointer.close()
    nnx.update(model_b, restored["model"])
    nnx.update(opt_b, restored["optimizer"])
    assert int(nnx.as_pure(opt_b.opt_state).count) == N
    for _ in range(M):
        nnx_step(model_b, opt_b, x, y)
    assert_bitwise_equal(nnx.as_pure(nnx.state(model_b)), nnx.as_pure(nnx.state(model_a)),
                         "nnx params")
    assert_bitwise_equal(nnx.as_pure(opt_b.opt_state), nnx.as_pure(opt_a.opt_state),
                         "nnx optimizer state")


def test_flax_serialization_needs_no_registration_and_gradxform_does_not_import_flax():
    import subprocess
    import sys

    code = ("import sys, jax.numpy as jnp, gradxform as gx\n"
            "assert not any(m == 'flax' or m.startswith('flax.') for m in sys.modules), 'flax'\n"
            "state = gx.adam(1e-3).init({'w': jnp.ones(3)})\n"
            "from flax import serialization\n"
            "data = serialization.to_bytes(state)\n"
            "back = serialization.from_bytes(state, data)\n"
            "assert type(back) is type(state) and back.spec == state.spec\n")
    subprocess.run([sys.executable, "-c", code], check=True)
