"""Low-precision params against a float64 reference, step by step (contract item 4).

``record`` trains an optimizer on bfloat16 or float16 params (the dtype policy's defaults:
float32 accumulators, updates in the gradients' dtype) for many steps on a stream of random
gradients whose scale drops 100x halfway, and records the params, gradients and updates of every
step. ``replay_float64`` feeds the same optimizer, built again, the same gradients and params in
float64 and returns, per step, the relative error of the low-precision update:
``||u - u64|| / ||u64||`` over the whole tree. Both runs see identical inputs at every step, so
the error is the optimizer's arithmetic alone. The low-precision run does not enable x64 (it is
what a user gets); the replay does.

Used by ``tests/test_low_precision.py`` and ``benchmarks/bench_low_precision.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import gradxform as gx

SHAPES = {"w": (8, 16), "b": (16,), "s": ()}


def initial_params(dtype: Any) -> dict:
    rng = np.random.default_rng(0)
    return {name: jnp.asarray(rng.normal(size=shape) * (0.5 if name == "w" else 0.1), dtype)
            for name, shape in SHAPES.items()}


def _extra(needs_value: bool, needs_key: bool, t: jax.Array) -> dict:
    out = {}
    if needs_value:
        out["value"] = jnp.asarray(1.0, jnp.float32)
    if needs_key:
        out["key"] = jax.random.fold_in(jax.random.key(7), t)
    return out


def record(make: Callable[[], Any], dtype: Any, steps: int = 10_000, drop_at: int | None = None,
           drop: float = 100.0, needs_value: bool = False, needs_key: bool = False):
    """Train ``make()`` on ``dtype`` params; return (params before each step, gradients,
    updates), each a tree of arrays with a leading axis of ``steps``."""
    drop_at = steps // 2 if drop_at is None else drop_at
    tx = make()
    params = initial_params(dtype)
    base = jax.random.key(1)

    # Noise around a fixed slope, drawn for all steps at once (outside the loop).
    scale = jnp.where(jnp.arange(steps) < drop_at, jnp.float32(1.0), jnp.float32(1.0 / drop))
    keys = jax.random.split(base, len(SHAPES))
    all_grads = {name: ((jax.random.normal(k, (steps,) + SHAPES[name], jnp.float32)
                         + jnp.float32(0.1)) * scale.reshape((steps,) + (1,) * len(SHAPES[name]))
                        ).astype(dtype)
                 for k, name in zip(keys, sorted(SHAPES))}

    # The history is stacked in float32 and cast back after the loop: both casts are exact, and
    # XLA:CPU writes a low-precision value computed in the loop into the stacked output about
    # 100x slower than a float32 one (about 1 ms per step for this small tree).
    dtypes = {}  # of (params, gradients, updates), seen when the loop is traced

    def body(carry, inputs):
        p, s = carry
        g, t = inputs
        u, s = tx.update(g, s, p, **_extra(needs_value, needs_key, t))
        dtypes["history"] = jax.tree.map(lambda x: x.dtype, (p, g, u))
        return (gx.apply_updates(p, u), s), jax.tree.map(lambda x: x.astype(jnp.float32),
                                                         (p, g, u))

    run = jax.jit(lambda p, xs: jax.lax.scan(body, (p, tx.init(p)), xs))
    _, history = run(params, (all_grads, jnp.arange(steps)))
    return jax.device_get(jax.tree.map(lambda x, d: x.astype(d), history, dtypes["history"]))


def replay_float64(make: Callable[[], Any], history, needs_value: bool = False,
                   needs_key: bool = False) -> dict[str, np.ndarray]:
    """Per step, against ``make()`` in float64 fed the same params and gradients:

    * ``"relative"``: ``||u - u64|| / ||u64||`` over the whole tree (``||u - u64||`` if
      ``u64`` is 0);
    * ``"magnitude"``: ``| ||u|| - ||u64|| | / ||u64||``, the relative error of the step's
      length;
    * ``"flips"``: the number of entries whose update has the other sign than in float64 (a
      sign-based step, Lion's, flips where its argument is within rounding of zero).
    """
    params, grads, updates = history
    steps = len(jax.tree.leaves(grads)[0])
    with jax.enable_x64(True):
        tx = make()
        to64 = lambda tree_: jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), tree_)  # noqa: E731
        p0 = to64(jax.tree.map(lambda x: x[0], params))

        def body(s, inputs):
            p, g, u, t = inputs
            u64, s = tx.update(g, s, p, **_extra(needs_value, needs_key, t))
            pairs = list(zip(jax.tree.leaves(u), jax.tree.leaves(u64)))
            diff = sum(jnp.sum((a - b) ** 2) for a, b in pairs)
            norm = sum(jnp.sum(b ** 2) for _, b in pairs)
            mine = sum(jnp.sum(a ** 2) for a, _ in pairs)
            safe = jnp.where(norm > 0, norm, 1.0)
            relative = jnp.where(norm > 0, jnp.sqrt(diff / safe), jnp.sqrt(diff))
            magnitude = jnp.where(norm > 0, jnp.abs(jnp.sqrt(mine) - jnp.sqrt(norm))
                                  / jnp.sqrt(safe), jnp.sqrt(mine))
            flips = sum(jnp.sum(jnp.sign(a) * jnp.sign(b) < 0) for a, b in pairs)
            return s, {"relative": relative, "magnitude": magnitude, "flips": flips}

        run = jax.jit(lambda s, xs: jax.lax.scan(body, s, xs))
        _, errors = run(tx.init(p0), (to64(params), to64(grads), to64(updates),
                                      jnp.arange(steps)))
        return {k: np.asarray(v) for k, v in errors.items()}
