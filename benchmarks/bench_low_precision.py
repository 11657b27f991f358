"""Low-precision params against a float64 reference: each optimizer's worst relative error.

For each optimizer, a run on bfloat16 (or float16) params with the default dtype policy
(float32 accumulators, updates in the gradients' dtype) over ``--steps`` steps of random
gradients whose scale drops 100x halfway; every step is replayed in float64 with the same
params and gradients (``tests/low_precision.py``), so the error is the optimizer's arithmetic
alone. Columns:

* ``worst rel``: the largest ``||u - u64|| / ||u64||`` over all steps (the whole tree);
* ``after drop``: the same over the steps after the 100x drop;
* ``median rel``: the median over all steps;
* ``worst |u|``: the largest relative error of the update's length, ``| ||u|| - ||u64|| | /
  ||u64||`` (the quantity the contract bounds for Lion, whose step is a sign);
* ``flips``: entries stepping the other way than in float64, over all steps;
* ``s``: seconds for the run and its replay (compiles included).

The contract (``docs/validation.md``, item 4) asks for ``worst rel`` < 1% for Adam, AdamW,
RMSprop, Lion (``worst |u|``), Adafactor and SGD with momentum on bfloat16.

    python benchmarks/bench_low_precision.py                 # bfloat16, 10,000 steps
    python benchmarks/bench_low_precision.py --dtype float16
    python benchmarks/bench_low_precision.py --steps 1000    # a quick check
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import gradxform as gx  # noqa: E402
from low_precision import record, replay_float64  # noqa: E402

OPTIMIZERS = {
    # the contract's six
    "adam": lambda: gx.adam(1e-3),
    "adamw": lambda: gx.adamw(1e-3, weight_decay=0.01),
    "rmsprop": lambda: gx.rmsprop(1e-3),
    "lion": lambda: gx.lion(1e-4),
    "adafactor": lambda: gx.adafactor(1e-2, min_dim_size_to_factor=2),
    "sgd_momentum": lambda: gx.sgd(1e-2, momentum=0.9),
    # others, for comparison
    "sgd": lambda: gx.sgd(1e-2),
    "nadam": lambda: gx.nadam(1e-3),
    "adabelief": lambda: gx.adabelief(1e-3),
    "amsgrad": lambda: gx.amsgrad(1e-3),
    "adagrad": lambda: gx.adagrad(1e-2),
    "yogi": lambda: gx.yogi(1e-2),
    "lamb": lambda: gx.lamb(1e-3),
    "adan": lambda: gx.adan(1e-3),
    "sm3": lambda: gx.sm3(1e-2),
}
CONTRACT = ("adam", "adamw", "rmsprop", "lion", "adafactor", "sgd_momentum")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    parser.add_argument("--only", nargs="*", default=None, help="optimizer names")
    args = parser.parse_args()
    dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float16
    names = args.only or list(OPTIMIZERS)

    print(f"{args.dtype} params, {args.steps} steps, gradient scale / 100 at step "
          f"{args.steps // 2}; float64 replay of every step")
    print("| optimizer | worst rel | after drop | median rel | worst |u| | flips | within 1% "
          "| s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        start = time.perf_counter()
        history = record(OPTIMIZERS[name], dtype, steps=args.steps)
        found = replay_float64(OPTIMIZERS[name], history)
        seconds = time.perf_counter() - start
        rel, mag = found["relative"], found["magnitude"]
        bound = mag if name == "lion" else rel
        verdict = ("yes" if float(bound.max()) < 0.01 else "NO") if name in CONTRACT else "-"
        print(f"| {name} | {rel.max():.2e} | {rel[args.steps // 2:].max():.2e} | "
              f"{np.median(rel):.2e} | {mag.max():.2e} | {int(found['flips'].sum())} | "
              f"{verdict} | {seconds:.1f} |", flush=True)
    print("\nwithin 1%: the contract's bound (worst rel; worst |u| for lion), for its six "
          "optimizers")


if __name__ == "__main__":
    main()
