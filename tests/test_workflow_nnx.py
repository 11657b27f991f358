"""flax nnx: changing hyperparameters of an ``nnx.Optimizer`` without re-tracing, a learning-rate
sweep in one vmapped program, and checkpoints with ``flax.serialization``.

Each test counts traces with a Python counter incremented inside the traced function. The
numbers (printed with ``-s``) are quoted in the documentation: assigning a new optimizer to
``optimizer.tx`` re-traces at every change; keeping the hyperparameters in the state
(``inject_hyperparams``) or as nnx data (``hyperparams_as_arrays``) traces once.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx

nnx = pytest.importorskip("flax.nnx")
serialization = pytest.importorskip("flax.serialization")

X = jnp.asarray(np.random.default_rng(0).normal(size=(16, 3)), jnp.float32)
Y = jnp.asarray(np.random.default_rng(1).normal(size=(16, 2)), jnp.float32)
CHANGES = 3


class Model(nnx.Module):
    def __init__(self, rngs):
        self.linear = nnx.Linear(3, 2, rngs=rngs)

    def __call__(self, x):
        return self.linear(x)


def _loss(model):
    return jnp.mean((model(X) - Y) ** 2)


def _stepper():
    traces = []

    @nnx.jit
    def step(model, optimizer):
        traces.append(1)
        loss, grads = nnx.value_and_grad(_loss)(model)
        optimizer.update(model, grads)
        return loss

    return step, traces


def test_a_new_tx_retraces_state_held_hyperparameters_do_not():
    # before: the optimizer value is a static attribute of nnx.Optimizer
    step, traces = _stepper()
    model = Model(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, gx.adam(1e-2), wrt=nnx.Param)
    step(model, optimizer)
    for lr in (3e-3, 1e-3, 3e-4)[:CHANGES]:
        optimizer.tx = gx.adam(lr)
        step(model, optimizer)
    naive = len(traces)

    # in the state: the optax idiom, unchanged
    step, traces = _stepper()
    model = Model(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, gx.inject_hyperparams(gx.adam)(learning_rate=1e-2),
                              wrt=nnx.Param)
    step(model, optimizer)
    for lr in (3e-3, 1e-3, 3e-4)[:CHANGES]:
        optimizer.opt_state.hyperparams["learning_rate"][...] = lr
        optimizer.opt_state.hyperparams["b1"][...] = 0.8
        step(model, optimizer)
    in_state = len(traces)
    assert float(optimizer.opt_state.hyperparams["learning_rate"][...]) == pytest.approx(3e-4)

    # as nnx data: any hyperparameter, schedules included
    step, traces = _stepper()
    model = Model(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, gx.adam(gx.cosine_decay_schedule(1e-2, 100)),
                              wrt=nnx.Param)
    optimizer.tx = nnx.data(gx.hyperparams_as_arrays(optimizer.tx))
    step(model, optimizer)
    for lr in (3e-3, 1e-3, 3e-4)[:CHANGES]:
        new_schedule = gx.hyperparams_as_arrays(gx.cosine_decay_schedule(lr, 50))
        optimizer.tx = nnx.data(gx.set_hyperparams(optimizer.tx, learning_rate=new_schedule,
                                                   b2=0.99))
        step(model, optimizer)
    as_data = len(traces)
    print(f"\ntraces for {CHANGES} changes: new tx {naive}, inject_hyperparams {in_state}, "
          f"hyperparams_as_arrays {as_data}")
    assert (naive, in_state, as_data) == (CHANGES + 1, 1, 1)


def test_the_edit_in_the_state_is_the_learning_rate_used():
    model = Model(nnx.Rngs(0))
    reference = Model(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, gx.inject_hyperparams(gx.sgd)(learning_rate=1.0),
                              wrt=nnx.Param)
    optimizer.opt_state.hyperparams["learning_rate"][...] = 0.1
    ref_opt = nnx.Optimizer(reference, gx.sgd(0.1), wrt=nnx.Param)
    for opt, m in ((optimizer, model), (ref_opt, reference)):
        opt.update(m, nnx.grad(_loss)(m))
    np.testing.assert_allclose(model.linear.kernel[...], reference.linear.kernel[...], rtol=1e-6)


def test_learning_rate_sweep_in_one_vmapped_program():
    lrs = jnp.asarray([1e-3, 1e-2, 1e-1, 3e-1])
    traces = []

    @nnx.vmap(in_axes=(0, 0))
    def create(key, lr):
        model = Model(nnx.Rngs(key))
        optimizer = nnx.Optimizer(model, gx.inject_hyperparams(gx.adam)(learning_rate=1e-3),
                                  wrt=nnx.Param)
        optimizer.opt_state.hyperparams["learning_rate"][...] = lr
        return model, optimizer

    @nnx.jit
    @nnx.vmap(in_axes=(0, 0))
    def step(model, optimizer):
        traces.append(1)
        loss, grads = nnx.value_and_grad(_loss)(model)
        optimizer.update(model, grads)
        return loss

    keys = jnp.stack([jax.random.key(0)] * len(lrs))  # same init: only the learning rate differs
    models, optimizers = create(keys, lrs)
    for _ in range(30):
        losses = step(models, optimizers)
    # a second sweep with other learning rates reuses the program
    models2, optimizers2 = create(keys, lrs * 0.5)
    step(models2, optimizers2)
    print(f"\nsweep of {len(lrs)} learning rates, 31 steps: {len(traces)} trace(s)")
    assert len(traces) == 1
    np.testing.assert_allclose(optimizers.opt_state.hyperparams["learning_rate"][...], lrs)
    # each member trained as the same model with that learning rate alone would
    single = Model(nnx.Rngs(jax.random.key(0)))
    opt = nnx.Optimizer(single, gx.adam(float(lrs[2])), wrt=nnx.Param)
    for _ in range(30):
        loss, grads = nnx.value_and_grad(_loss)(single)
        opt.update(single, grads)
    np.testing.assert_allclose(losses[2], loss, rtol=2e-5)
    assert losses[2] < losses[0]


def test_checkpoint_with_flax_serialization_resumes_bitwise():
    opt_factory = gx.inject_hyperparams(gx.adamw)
    model = Model(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, opt_factory(gx.cosine_decay_schedule(1e-2, 20),
                                                 weight_decay=1e-3), wrt=nnx.Param)
    step, _ = _stepper()
    for _ in range(5):
        step(model, optimizer)
    # nnx.State objects are not msgpack-serialisable (for any optimizer): write pure dicts
    blob = serialization.to_bytes({"model": nnx.to_pure_dict(nnx.state(model)),
                                   "optimizer": nnx.to_pure_dict(nnx.state(optimizer))})
    for _ in range(5):
        expected = step(model, optimizer)

    restored_model = Model(nnx.Rngs(1))
    restored_opt = nnx.Optimizer(restored_model, opt_factory(
        gx.cosine_decay_schedule(1e-2, 20), weight_decay=1e-3), wrt=nnx.Param)
    target = {"model": nnx.to_pure_dict(nnx.state(restored_model)),
              "optimizer": nnx.to_pure_dict(nnx.state(restored_opt))}
    loaded = serialization.from_bytes(target, blob)
    for module, pure in ((restored_model, loaded["model"]), (restored_opt, loaded["optimizer"])):
        state = nnx.state(module)
        nnx.replace_by_pure_dict(state, pure)
        nnx.update(module, state)
    assert int(restored_opt.opt_state.count[...]) == 5
    for _ in range(5):
        got = step(restored_model, restored_opt)
    assert float(got) == float(expected)
    np.testing.assert_array_equal(restored_model.linear.kernel[...], model.linear.kernel[...])
