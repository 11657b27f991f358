"""Step time, compile time and state size of gradxform optimizers against optax, same process.

Runtime: the jitted update+apply step of both libraries runs in interleaved rounds (gradxform,
optax, gradxform, ...), each round a burst of steps ended by ``block_until_ready``; the fastest
round per library is reported, which is the most robust statistic on a shared machine. Compile
time is ``jit(step).lower(...).compile()`` alone (measured once: JAX caches executables), after
a warm-up compile of an unrelated function. Both libraries run the same params tree and
gradients. Ratios are gradxform / optax: below 1 is faster (smaller). The machine is shared and
noisy: read ratios, not absolute times, and rerun before drawing conclusions.

    python benchmarks/bench_optimizers.py [--tree mlp|many] [--rounds 7] [--steps 30]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradxform as gx


def mlp_tree(width=512, depth=4):
    rng = np.random.default_rng(0)
    return [{"w": jnp.asarray(rng.normal(size=(width, width)), jnp.float32) * 0.02,
             "b": jnp.zeros(width, jnp.float32)} for _ in range(depth)]


def many_leaves_tree(n=300):
    rng = np.random.default_rng(0)
    return {f"p{i}": jnp.asarray(rng.normal(size=(17, 3)), jnp.float32) for i in range(n)}


PAIRS = {
    "sgd": (lambda: gx.sgd(1e-2), lambda: optax.sgd(1e-2)),
    "momentum": (lambda: gx.sgd(1e-2, momentum=0.9), lambda: optax.sgd(1e-2, momentum=0.9)),
    "adagrad": (lambda: gx.adagrad(1e-2), lambda: optax.adagrad(1e-2)),
    "rmsprop": (lambda: gx.rmsprop(1e-3), lambda: optax.rmsprop(1e-3)),
    "adam": (lambda: gx.adam(1e-3), lambda: optax.adam(1e-3)),
    "lion": (lambda: gx.lion(1e-4), lambda: optax.lion(1e-4)),
    "lamb": (lambda: gx.lamb(1e-3), lambda: optax.lamb(1e-3)),
    "adafactor": (lambda: gx.adafactor(1e-3), lambda: optax.adafactor(1e-3)),
    "clip+adamw+cosine": (
        lambda: gx.chain(gx.clip_by_global_norm(1.0),
                         gx.adamw(gx.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 1000))),
        lambda: optax.chain(optax.clip_by_global_norm(1.0),
                            optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 1e-3, 100,
                                                                           1000)))),
}


def make_step(tx, apply):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return apply(params, updates), state
    return step


def time_runtimes(runs, rounds, steps):
    """Per-step seconds of each ``(jitted, params, state, grads)``, best round, interleaved."""
    best = [float("inf")] * len(runs)
    for _ in range(rounds):
        for i, (jitted, params, state, grads) in enumerate(runs):
            start = time.perf_counter()
            for _ in range(steps):
                new_params, _ = jitted(params, state, grads)
            jax.block_until_ready(new_params)
            best[i] = min(best[i], (time.perf_counter() - start) / steps)
    return best


def time_compile(step, params, state, grads):
    lowered = jax.jit(step).lower(params, state, grads)
    start = time.perf_counter()
    lowered.compile()  # once: a second compile of the same program would hit JAX's cache
    return time.perf_counter() - start


def state_bytes(state):
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", choices=["mlp", "many"], default="mlp")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    make_tree = mlp_tree if args.tree == "mlp" else many_leaves_tree
    jax.jit(lambda x: x + 1).lower(1.0).compile()  # warm the compiler
    print(f"tree: {args.tree} ({sum(x.size for x in jax.tree.leaves(make_tree()))} params, "
          f"{len(jax.tree.leaves(make_tree()))} leaves), {jax.devices()[0].platform}")
    print(f"{'optimizer':<20}{'step gx/optax':>16}{'ratio':>8}{'compile gx/optax':>22}"
          f"{'ratio':>8}{'state bytes':>13}")
    for name, (make_gx, make_ox) in PAIRS.items():
        runs, compiles, sizes = [], [], []
        for tx, apply in ((make_gx(), gx.apply_updates), (make_ox(), optax.apply_updates)):
            params = make_tree()
            grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), params)
            state = tx.init(params)
            step = make_step(tx, apply)
            compiles.append(time_compile(step, params, state, grads))
            jitted = jax.jit(step)
            jax.block_until_ready(jitted(params, state, grads))
            runs.append((jitted, params, state, grads))
            sizes.append(state_bytes(state))
        (g_run, o_run), (g_comp, o_comp) = time_runtimes(runs, args.rounds, args.steps), compiles
        g_bytes, o_bytes = sizes
        size_ratio = f"{g_bytes / o_bytes:>12.3f}x" if o_bytes else f"{'0 / 0':>13}"
        print(f"{name:<20}{g_run * 1e3:>7.3f}/{o_run * 1e3:<7.3f}ms{g_run / o_run:>7.2f}x"
              f"{g_comp * 1e3:>10.1f}/{o_comp * 1e3:<9.1f}ms{g_comp / o_comp:>7.2f}x"
              f"{size_ratio}")

if __name__ == "__main__":
    with jax.numpy_dtype_promotion("standard"):
        main()
