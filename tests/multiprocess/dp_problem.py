"""The training problem shared by the distributed tests and the multi-process worker.

A two-layer tanh network on a fixed synthetic regression data set, trained for ``STEPS`` steps
on batches of ``BATCH`` examples. The single-device run here is the reference every distributed
run must reproduce. Shapes are chosen so that ZeRO-style sharding over 8 devices splits some
leaves (``w1``, ``b1``, ``w2``) and must replicate others (``b2``, ``scale``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import gradxform as gx

STEPS, BATCH, IN, HIDDEN, OUT = 20, 64, 8, 16, 4


def make_params(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "w1": jnp.asarray(rng.normal(size=(IN, HIDDEN)) / np.sqrt(IN), jnp.float32),
        "b1": jnp.asarray(0.1 * rng.normal(size=(HIDDEN,)), jnp.float32),
        "w2": jnp.asarray(rng.normal(size=(HIDDEN, OUT)) / np.sqrt(HIDDEN), jnp.float32),
        "b2": jnp.asarray(0.1 * rng.normal(size=(OUT,)), jnp.float32),
        "scale": jnp.asarray(1.0, jnp.float32),
    }


def make_data(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``[STEPS, BATCH, IN]`` and targets ``[STEPS, BATCH, OUT]`` (float32 NumPy)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(STEPS, BATCH, IN)).astype(np.float32)
    true_w = rng.normal(size=(IN, OUT)).astype(np.float32)
    y = (np.sin(x @ true_w) + 0.1 * rng.normal(size=(STEPS, BATCH, OUT))).astype(np.float32)
    return x, y


def predict(params: dict, x: jax.Array) -> jax.Array:
    h = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
    return params["scale"] * (h @ params["w2"] + params["b2"][None, :])


def loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean squared error over the examples of the batch."""
    return jnp.mean((predict(params, x) - y) ** 2)


def optimizers() -> dict:
    """The two optimizers every mode is checked with: SGD with momentum, and Adam."""
    return {"sgd_momentum": gx.sgd(0.1, momentum=0.9), "adam": gx.adam(0.01)}


def train_single_device(tx, params, xs, ys, grad_fn=None):
    """The reference: ``STEPS`` steps on the whole batch, on one device; returns (params, state)."""
    grad_fn = grad_fn or jax.grad(loss)

    @jax.jit
    def run(params, xs, ys):
        def body(carry, batch):
            p, s = carry
            u, s = tx.update(grad_fn(p, *batch), s, p)
            return (gx.apply_updates(p, u), s), None

        return jax.lax.scan(body, (params, tx.init(params)), (xs, ys))[0]

    return run(params, jnp.asarray(xs), jnp.asarray(ys))
