"""Changing hyperparameters during training: traces and step time of the three ways.

Prints, for a flax nnx MLP trained with Adam(W) while the learning rate changes every
``--every`` steps:

* the number of traces of the jitted step: a new optimizer assigned to ``optimizer.tx`` (the
  naive way), the learning rate in the state (``gx.inject_hyperparams``), the optimizer as nnx
  data (``gx.hyperparams_as_arrays``);
* the wall time of the whole run (compiles included: what re-tracing costs), and the median
  time of a step that does not re-trace, each as a ratio to a plain ``gx.adamw`` whose
  learning rate never changes; optax's ``inject_hyperparams`` in the same process. The ways
  run in turn, ``--rounds`` times; the best round of each is shown (the machine may be shared).

Usage: ``python benchmarks/bench_hyperparams_in_state.py [--steps 200] [--every 20]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import gradxform as gx


class MLP(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(64, 256, rngs=rngs)
        self.out = nnx.Linear(256, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(256, 64)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, size=256), jnp.int32)

    def loss_fn(model):
        logp = jax.nn.log_softmax(model(x))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def make_step(traces):
        @nnx.jit
        def step(model, optimizer):
            traces.append(1)
            loss, grads = nnx.value_and_grad(loss_fn)(model)
            optimizer.update(model, grads)
            return loss
        return step

    def lr_at(t):
        return 1e-3 * 0.5 ** (t // args.every)

    def fixed(optimizer, t):
        pass

    def naive(optimizer, t):
        if t % args.every == 0:
            optimizer.tx = gx.adamw(lr_at(t), weight_decay=1e-4)

    def in_state(optimizer, t):
        optimizer.opt_state.hyperparams["learning_rate"][...] = lr_at(t)

    def as_data(optimizer, t):
        optimizer.tx = nnx.data(gx.set_hyperparams(optimizer.tx, learning_rate=lr_at(t)))

    def optax_state(optimizer, t):
        optimizer.opt_state.hyperparams["learning_rate"][...] = lr_at(t)

    ways = [
        ("gx.adamw, fixed learning rate (anchor)", lambda: gx.adamw(1e-3, weight_decay=1e-4),
         fixed, False),
        ("new optimizer in optimizer.tx", lambda: gx.adamw(1e-3, weight_decay=1e-4), naive,
         False),
        ("gx.inject_hyperparams (state)",
         lambda: gx.inject_hyperparams(gx.adamw)(1e-3, weight_decay=1e-4), in_state, False),
        ("gx.hyperparams_as_arrays (nnx data)", lambda: gx.adamw(1e-3, weight_decay=1e-4),
         as_data, True),
        ("optax.inject_hyperparams (state)",
         lambda: optax.inject_hyperparams(optax.adamw)(1e-3, weight_decay=1e-4), optax_state,
         False),
    ]
    best: dict[str, tuple[int, float, float]] = {}
    for _ in range(args.rounds):
        for label, build, change, data in ways:
            traces: list[int] = []
            step = make_step(traces)
            model = MLP(nnx.Rngs(0))
            optimizer = nnx.Optimizer(model, build(), wrt=nnx.Param)
            if data:
                optimizer.tx = nnx.data(gx.hyperparams_as_arrays(optimizer.tx))
            times = []
            begin = time.perf_counter()
            for t in range(args.steps):
                change(optimizer, t)
                start = time.perf_counter()
                jax.block_until_ready(step(model, optimizer))
                times.append(time.perf_counter() - start)
            total = time.perf_counter() - begin
            steady = statistics.median(
                [s for i, s in enumerate(times) if i % args.every != 0] or times)
            old = best.get(label)
            best[label] = (len(traces), min(total, old[1]) if old else total,
                           min(steady, old[2]) if old else steady)
    anchor_total, anchor_step = best[ways[0][0]][1:]
    print(f"{args.steps} steps, the learning rate changes every {args.every} steps "
          f"({args.steps // args.every} changes); best of {args.rounds} rounds\n")
    print(f"| {'way':40s} | traces | run (s) | ratio | step (ms) | ratio |")
    print(f"| {'-' * 40} | ------ | ------- | ----- | --------- | ----- |")
    for label, _, _, _ in ways:
        n, total, steady = best[label]
        print(f"| {label:40s} | {n:6d} | {total:7.2f} | {total / anchor_total:5.2f} | "
              f"{1e3 * steady:9.3f} | {steady / anchor_step:5.2f} |")


if __name__ == "__main__":
    main()
