"""gradxform demo: an MLP on scikit-learn's bundled digits, trained data-parallel.

Trains with a composed optimizer (clip -> adamw -> warmup-cosine schedule) over every local
device (8 simulated CPU devices when there is no accelerator), then compares sgd, momentum,
rmsprop, adam and adamw, printing the hyperparameters each one used (``gx.hyperparams``).
Runs offline in well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import os
import time

# Simulate 8 devices on the CPU (no effect on accelerators). XLA's CPU client runs a collective
# on a thread pool sized max(cores, devices); on a 2-core machine a larger pool avoids a
# rendezvous deadlock when two computations overlap. Both must be set before JAX starts.
os.environ.setdefault("PJRT_NPROC", "32")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from tqdm import tqdm  # noqa: E402

import gradxform as gx  # noqa: E402

EPOCHS = 25
BATCH = 128  # divisible by the device count


def load_data():
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-3)
    return train_test_split(x, digits.target.astype(np.int32), test_size=0.25, random_state=0)


def init_mlp(key, sizes=(64, 128, 64, 10)):
    params = []
    for k, (n_in, n_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes, sizes[1:])):
        params.append({"w": jax.random.normal(k, (n_in, n_out)) * jnp.sqrt(2.0 / n_in),
                       "b": jnp.zeros(n_out)})
    return params


def logits_fn(params, x):
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def loss_fn(params, x, y):
    logp = jax.nn.log_softmax(logits_fn(params, x))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def accuracy(params, x, y):
    return float(jnp.mean(jnp.argmax(logits_fn(params, x), -1) == y))


def make_step(tx):
    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = tx.update(grads, state, params)
        return gx.apply_updates(params, updates), state, loss

    # params and optimizer state are donated: the new ones are written into their buffers
    # instead of beside them (the old ones must not be used after the call)
    return jax.jit(step, donate_argnums=(0, 1))


def batches(x, y, rng, sharding):
    order = rng.permutation(len(x))
    for i in range(0, len(x) - BATCH + 1, BATCH):
        idx = order[i:i + BATCH]
        # the batch is split over the "data" axis: each device computes on BATCH / n examples
        yield jax.device_put(x[idx], sharding), jax.device_put(y[idx], sharding)


def train(tx, data, mesh, progress=False):
    x_tr, x_te, y_tr, y_te = data
    replicated = NamedSharding(mesh, P())
    params = jax.device_put(init_mlp(jax.random.key(0)), replicated)
    state = jax.device_put(tx.init(params), replicated)
    step = make_step(tx)
    rng = np.random.default_rng(0)
    steps_per_epoch = len(x_tr) // BATCH
    bar = tqdm(total=EPOCHS * steps_per_epoch, disable=not progress, ncols=90)
    start = time.perf_counter()
    for _ in range(EPOCHS):
        for xb, yb in batches(x_tr, y_tr, rng, NamedSharding(mesh, P("data"))):
            params, state, loss = step(params, state, xb, yb)
            bar.update(1)
        if progress:
            lr = gx.hyperparams(tx, state)["learning_rate"]
            bar.set_postfix(loss=f"{float(loss):.4f}", lr=f"{float(lr):.2e}")
    jax.block_until_ready(params)
    seconds = time.perf_counter() - start
    bar.close()
    return float(loss_fn(params, x_tr, y_tr)), accuracy(params, x_te, y_te), seconds


def used(tx, params):
    """The hyperparameters ``tx`` runs with, as ``gx.hyperparams`` reports them (a momentum is
    the ``decay`` of the ``trace`` that sgd builds)."""
    values = gx.hyperparams(tx, tx.init(params))
    return ", ".join(f"{name}={float(value):g}" for name, value in values.items())


def main():
    data = load_data()
    devices = jax.devices()
    mesh = Mesh(np.array(devices), ("data",))
    print(f"{len(devices)} {devices[0].platform.upper()} devices, mesh {dict(mesh.shape)}; "
          f"each batch of {BATCH} is split {BATCH // len(devices)} per device")
    total_steps = EPOCHS * (len(data[0]) // BATCH)
    schedule = gx.warmup_cosine_decay_schedule(0.0, 3e-3, total_steps // 10, total_steps, 1e-5)
    composed = gx.chain(gx.clip_by_global_norm(1.0), gx.adamw(schedule, weight_decay=1e-4))
    print(f"optimizer: {composed}")
    loss, acc, seconds = train(composed, data, mesh, progress=True)
    print(f"clip -> adamw -> warmup-cosine: train loss {loss:.4f}, test accuracy {acc:.3f}, "
          f"{seconds:.1f} s\n")

    # adamw's decay is multiplied by the learning rate (as in optax and torch): 0.05 shrinks the
    # weights by 5e-5 a step, enough to move the train loss away from adam's
    contenders = {
        "sgd": gx.sgd(0.1),
        "momentum": gx.sgd(0.05, momentum=0.9),
        "rmsprop": gx.rmsprop(1e-3),
        "adam": gx.adam(1e-3),
        "adamw": gx.adamw(1e-3, weight_decay=0.05),
    }
    params = init_mlp(jax.random.key(0))
    print(f"{'optimizer':<10} {'train loss':>10} {'test acc':>9} {'time (s)':>9}  hyperparameters")
    for name, tx in contenders.items():
        loss, acc, seconds = train(tx, data, mesh)
        print(f"{name:<10} {loss:>10.4f} {acc:>9.3f} {seconds:>9.2f}  {used(tx, params)}")


if __name__ == "__main__":
    main()
