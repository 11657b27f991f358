"""Parity with optax for optax's core names that gradxform also provides: constraints,
centralisation, adaptive clipping, norm scalings, centered RMS, scaling by a schedule, DoG's
step size, apply_every, the optimistic methods, the conditional wrappers, selective freezing,
monitoring and ``stateless_with_tree_map``.

Each case runs gradxform and optax side by side for 120 steps (one ``lax.scan`` each) on
``helpers.nested_params()`` (dicts, lists, tuples, a None leaf, a scalar, vectors, matrices)
with a fixed stream of gradients of varied magnitude, and compares the params after every step
and the state at the end where the two states hold the same quantities: float32 to rtol 1e-6,
with an absolute floor of 1e-6 times the largest magnitude in the leaf at that step (params
pass through zero, where a relative error means nothing); float64 to 1e-12 for a subset. optax
runs under standard dtype promotion.

Known differences, and how the comparison handles them:

* ``scale_by_distance_over_gradients``: optax keeps each leaf's sum of squares as an array of
  shape ``(1,)``, so it broadcasts that array against every leaf (optax runs with rank
  promotion allowed) and the update of a scalar param comes out with shape ``(1,)``; optax's
  updates are reshaped to the params' shapes (the values are compared as they are).
* ``scale_by_distance_over_gradients`` keeps the initial params in float32 in optax by default
  (``param_dtype``), in the accumulator dtype here (float64 for float64 params): optax is given
  the params' dtype.
* ``monitor``: optax's state starts with an empty dict of measurements and gains their keys at
  the first update, so it cannot be the carry of a ``lax.scan``; optax runs in a Python loop
  for that case.
* ``clip_by_global_norm`` placed after momentum drifts from optax by ~1e-5 over 120 steps (the
  two libraries round the rescaling differently, and momentum's large steps cancel in the
  params); the monitoring case below measures without clipping for that reason.

Run this file as a script to print the largest error of every case.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradxform as gx
from helpers import gradient_stream, nested_params, standard_promotion

STEPS = 120
RTOL = {jnp.float32: 1e-6, jnp.float64: 1e-12}


# --------------------------------------------------------------------------------------------
# Running and comparing.


def _stack(trees):
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def _body(tx, apply):
    def body(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        p = apply(p, u)
        return (p, s), p
    return body


def _trajectory(tx, apply, params, grads, first_step_apart=False):
    """Params after every step (stacked) and the final state, by ``lax.scan`` (traced).

    ``first_step_apart``: take the first step before the scan, for a state whose structure
    changes at the first update (a scan carry cannot).
    """
    body = _body(tx, apply)
    carry = (params, tx.init(params))
    if first_step_apart:
        carry, first = body(carry, jax.tree.map(lambda x: x[0], grads))
        (_, state), history = jax.lax.scan(body, carry, jax.tree.map(lambda x: x[1:], grads))
        history = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, history)
        return history, state
    (_, state), history = jax.lax.scan(body, carry, grads)
    return history, state


def scaled_error(actual, expected, per_step=False) -> float:
    """The smallest ``r`` with ``|a - e| <= r |e| + r max|e|`` everywhere (the max per leaf, and
    per step for stacked histories): ``assert_trees_close(rtol=r, atol=r, leaf_scale=True)``."""
    worst = 0.0
    flat_a, tree_a = jax.tree.flatten(actual)
    flat_e, tree_e = jax.tree.flatten(expected)
    assert tree_a == tree_e, f"{tree_a} != {tree_e}"
    for a, e in zip(flat_a, flat_e):
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        assert a.shape == e.shape, f"shapes {a.shape} != {e.shape}"
        if not e.size:
            continue
        axes = tuple(range(1, e.ndim)) if per_step else None
        scale = np.max(np.abs(e), axis=axes, keepdims=True) if e.ndim else np.abs(e)
        denom = np.abs(e) + scale
        err = np.where(denom > 0, np.abs(a - e) / np.where(denom > 0, denom, 1), np.abs(a - e))
        worst = max(worst, float(np.max(err)))
    return worst


def stacked_stream(params, steps, seed=1):
    """``helpers.gradient_stream`` (the same numbers), stacked along a leading axis in NumPy."""
    rng = np.random.default_rng(seed)
    leaves, treedef = jax.tree.flatten(params)
    out = [np.empty((steps,) + np.shape(p), np.dtype(p.dtype)) for p in leaves]
    for t in range(steps):
        scale = 10.0 ** rng.uniform(-2, 1)
        for buffer, p in zip(out, leaves):
            buffer[t] = np.asarray(scale * rng.normal(size=np.shape(p)), buffer.dtype)
    return treedef.unflatten(out)


def _inputs(case, dtype):
    options = case[4]
    params = options.get("params", nested_params)(dtype)
    if "grads" in options:
        return params, _stack(options["grads"](params, STEPS))
    return params, stacked_stream(params, STEPS)


@functools.cache
def run_all(dtype_name: str) -> dict[str, tuple[float, float]]:
    """``{case: (largest error of the params over all steps, of the final state)}`` for every
    case run in ``dtype_name``, each library's cases compiled as one program (compiling them
    one by one costs twice the time)."""
    dtype = jnp.dtype(dtype_name)
    cases = [c for c in CASES if dtype == jnp.float32 or c[0] in FLOAT64]
    inputs = [_inputs(c, dtype) for c in cases]
    mine_txs = [c[1]() for c in cases]
    theirs_txs = [c[2]() for c in cases]

    @jax.jit
    def run_mine(inputs):
        return [_trajectory(tx, gx.apply_updates, *x) for tx, x in zip(mine_txs, inputs)]

    @jax.jit
    def run_theirs(inputs):
        return [_trajectory(tx, optax.apply_updates, *x,
                            first_step_apart=c[4].get("optax_first_step_apart", False))
                for c, tx, x in zip(cases, theirs_txs, inputs)]

    mine = run_mine(inputs)
    # optax under its own rules: standard dtype promotion, and rank promotion allowed (its DoG
    # broadcasts (1,)-shaped sums against every leaf; shapes are compared below).
    with standard_promotion(), jax.numpy_rank_promotion("allow"):
        theirs = run_theirs(inputs)
    errors = {}
    for c, (history, state), (their_history, their_state) in zip(cases, mine, theirs):
        pick = c[3]
        errors[c[0]] = (scaled_error(history, their_history, per_step=True),
                        scaled_error(*pick(state, their_state)) if pick else 0.0)
    return errors


# --------------------------------------------------------------------------------------------
# Inputs.


def nonnegative_params(dtype):
    return jax.tree.map(jnp.abs, nested_params(dtype))


def without_scalars(dtype):
    """nested_params without its scalar leaf (optax's adaptive_grad_clip with an explicit
    axis cannot take one)."""
    params = nested_params(dtype)
    return {"dense": params["dense"], "blocks": [params["blocks"][0], params["blocks"][1][0]]}


def gradients_with_nans(params, steps):
    """The usual stream with a NaN in the matrices at every third step (the last included)."""
    out = []
    for t, g in enumerate(gradient_stream(params, steps)):
        if t % 3 == 2:
            g = jax.tree.map(lambda x: x.at[0, 1].set(jnp.nan) if x.ndim == 2 else x, g)
        out.append(g)
    return out


def harmonic(count):
    return -0.05 / (1 + count.astype(jnp.float32))


FREEZE = {"dense": True, "blocks": [False, (True, False)], "scale": False, "unused": False}


def reshape_to_params():
    """optax's DoG gives scalar params updates of shape (1,): reshape them (values unchanged)."""
    return optax.stateless(lambda u, p: jax.tree.map(lambda x, q: x.reshape(jnp.shape(q)), u, p))


# --------------------------------------------------------------------------------------------
# State pickers: (gradxform part, optax part).


def inner(*path_gx, ox=None):
    """The state fields at ``path_gx`` in ``state.inner`` and ``ox`` (default the same path) in
    optax's state; each path is a sequence of indices and attribute names."""

    def walk(x, path):
        for k in path:
            x = getattr(x, k) if isinstance(k, str) else x[k]
        return x

    def pick(gx_state, ox_state):
        return walk(gx_state.inner, path_gx), walk(ox_state, path_gx if ox is None else ox)

    return pick


def adam_moments(i_gx, ox_path):
    def pick(gx_state, ox_state):
        g = gx_state.inner[i_gx]
        o = ox_state
        for k in ox_path:
            o = o[k]
        return (g.mu, g.nu), (o.mu, o.nu)
    return pick


def dog_state(gx_state, ox_state):
    g, o = gx_state.inner[0], ox_state[0]
    sums = jax.tree.map(lambda x: x.reshape(()), o.grad_sum_of_squares)
    return (g.max_dist, g.grad_sum_of_squares, g.init_params), (o.max_dist, sums, o.init_params)


def measurements(names):
    def pick(gx_state, ox_state):
        found = gx.measurements(GX_FOR_MEASUREMENTS[names], gx_state)
        return [found[n] for n in names], [ox_state[1].measurements[n] for n in names]
    return pick


# --------------------------------------------------------------------------------------------
# The cases: (id, gradxform factory, optax factory, state picker or None, options).


def _measured():
    return gx.chain(gx.sgd(0.1, momentum=0.9),
                    gx.monitor({"norm": gx.global_norm,
                                "large": gx.measure_with_ema(lambda u: gx.global_norm(u) > 2.0,
                                                             decay=0.9)}))


GX_FOR_MEASUREMENTS = {("norm", "large"): _measured()}

CASES = [
    ("zero_nans", lambda: gx.chain(gx.zero_nans(), gx.sgd(0.05)),
     lambda: optax.chain(optax.zero_nans(), optax.sgd(0.05)),
     inner(0, "found_nan"), {"grads": gradients_with_nans}),
    ("keep_params_nonnegative", lambda: gx.chain(gx.sgd(0.1), gx.keep_params_nonnegative()),
     lambda: optax.chain(optax.sgd(0.1), optax.keep_params_nonnegative()),
     None, {"params": nonnegative_params}),
    ("centralize", lambda: gx.chain(gx.centralize(), gx.sgd(0.05)),
     lambda: optax.chain(optax.centralize(), optax.sgd(0.05)), None, {}),
    ("adaptive_grad_clip", lambda: gx.chain(gx.adaptive_grad_clip(0.05), gx.sgd(0.1)),
     lambda: optax.chain(optax.adaptive_grad_clip(0.05), optax.sgd(0.1)), None, {}),
    ("adaptive_grad_clip_axis", lambda: gx.chain(gx.adaptive_grad_clip(0.05, 1e-2, -1),
                                                 gx.sgd(0.1)),
     lambda: optax.chain(optax.adaptive_grad_clip(0.05, 1e-2, -1), optax.sgd(0.1)), None,
     {"params": without_scalars}),
    ("scale_by_param_block_norm", lambda: gx.chain(gx.scale_by_param_block_norm(), gx.sgd(0.02)),
     lambda: optax.chain(optax.scale_by_param_block_norm(), optax.sgd(0.02)), None, {}),
    ("normalize_by_update_norm_scaled", lambda: gx.normalize_by_update_norm(-0.05, 1e-3),
     lambda: optax.normalize_by_update_norm(-0.05, 1e-3), None, {}),
    ("scale_by_stddev_bias_corrected_eps_outside",
     lambda: gx.chain(gx.scale_by_stddev(0.95, 1e-6, 0.1, False, True), gx.scale(-0.01)),
     lambda: optax.chain(optax.scale_by_stddev(0.95, 1e-6, 0.1, False, True), optax.scale(-0.01)),
     lambda g, o: ((g.inner[0].mu, g.inner[0].nu), (o[0].mu, o[0].nu)), {}),
    ("scale_by_schedule_function",
     lambda: gx.chain(gx.scale_by_schedule(harmonic), gx.trace(0.5)),
     lambda: optax.chain(optax.scale_by_schedule(harmonic), optax.trace(0.5)),
     inner(1, "trace"), {}),
    ("scale_by_distance_over_gradients",
     lambda: gx.chain(gx.scale_by_distance_over_gradients(1e-3), gx.scale(-1.0)),
     lambda: optax.chain(optax.scale_by_distance_over_gradients(
         1e-3, param_dtype=jnp.asarray(1.0).dtype), reshape_to_params(),
                         optax.scale(-1.0)),
     dog_state, {}),
    ("apply_every", lambda: gx.chain(gx.sgd(0.05, momentum=0.9), gx.apply_every(3)),
     lambda: optax.chain(optax.sgd(0.05, momentum=0.9), optax.apply_every(3)),
     inner(1, "grad_acc"), {}),
    ("optimistic_gradient_descent", lambda: gx.optimistic_gradient_descent(0.05, 0.7, 0.4),
     lambda: optax.optimistic_gradient_descent(0.05, 0.7, 0.4), inner(0, "previous_gradient"),
     {}),
    ("optimistic_adam", lambda: gx.optimistic_adam(1e-2),
     lambda: optax.optimistic_adam(1e-2), adam_moments(0, (0,)), {}),
    ("optimistic_adam_optimism_no_nesterov",
     lambda: gx.optimistic_adam(1e-2, 3e-3, nesterov=False),
     lambda: optax.optimistic_adam(1e-2, 3e-3, nesterov=False),
     lambda g, o: ((g.inner[0].mu, g.inner[1].previous_gradient),
                   (o[0].mu, o[1].previous_gradient)), {}),
    ("optimistic_adam_v2", lambda: gx.optimistic_adam_v2(1e-2, alpha=0.8, beta=0.5),
     lambda: optax.optimistic_adam_v2(1e-2, alpha=0.8, beta=0.5), adam_moments(0, (0,)), {}),
    ("conditionally_transform",
     lambda: gx.chain(gx.conditionally_transform(gx.scale_by_adam(), lambda t: t % 3 == 0),
                      gx.scale(-0.01)),
     lambda: optax.chain(optax.conditionally_transform(optax.scale_by_adam(),
                                                       lambda t: t % 3 == 0), optax.scale(-0.01)),
     lambda g, o: ((g.inner[0].inner.mu, g.inner[0].inner.nu),
                   (o[0].inner_state.mu, o[0].inner_state.nu)), {}),
    ("conditionally_mask",
     lambda: gx.conditionally_mask(gx.adam(1e-2), lambda t: t % 4 != 1),
     lambda: optax.conditionally_mask(optax.adam(1e-2), lambda t: t % 4 != 1),
     lambda g, o: ((g.inner.inner[0].mu, g.inner.inner[0].nu),
                   (o.inner_state[0].mu, o.inner_state[0].nu)), {}),
    ("selective_transform",
     lambda: gx.selective_transform(gx.adam(1e-2), freeze_mask=FREEZE),
     lambda: optax.selective_transform(optax.adam(1e-2), freeze_mask=FREEZE),
     lambda g, o: (jax.tree.leaves((g.inner[0].mu, g.inner[0].nu)),
                   jax.tree.leaves((o.inner_states["train"].inner_state[0].mu,
                                    o.inner_states["train"].inner_state[0].nu))), {}),
    ("monitor_measure_with_ema", lambda: GX_FOR_MEASUREMENTS[("norm", "large")],
     lambda: optax.chain(optax.sgd(0.1, momentum=0.9),
                         optax.monitor({"norm": optax.tree.norm,
                                        "large": optax.measure_with_ema(
                                            lambda u: optax.tree.norm(u) > 2.0, decay=0.9)})),
     measurements(("norm", "large")), {"optax_first_step_apart": True}),
    ("snapshot",
     lambda: gx.chain(gx.snapshot("norm", gx.global_norm), gx.clip_by_global_norm(1.0),
                      gx.adam(1e-2)),
     lambda: optax.chain(optax.snapshot("norm", optax.tree.norm),
                         optax.clip_by_global_norm(1.0), optax.adam(1e-2)),
     lambda g, o: (g.inner[0].measurement, o[0].measurement), {}),
    ("stateless_with_tree_map",
     lambda: gx.chain(gx.stateless_with_tree_map(lambda u, p: 0.5 * u + 0.01 * p), gx.sgd(0.05)),
     lambda: optax.chain(optax.stateless_with_tree_map(lambda u, p: 0.5 * u + 0.01 * p),
                         optax.sgd(0.05)), None, {}),
]

FLOAT64 = {"scale_by_distance_over_gradients", "optimistic_adam"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_parity_float32(case):
    params_error, state_error = run_all("float32")[case[0]]
    assert params_error <= RTOL[jnp.float32], f"params differ by {params_error:.2e}"
    assert state_error <= RTOL[jnp.float32], f"state differs by {state_error:.2e}"


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in FLOAT64],
                         ids=[c[0] for c in CASES if c[0] in FLOAT64])
def test_parity_float64(case):
    with jax.enable_x64(True):
        params_error, state_error = run_all("float64")[case[0]]
    assert params_error <= RTOL[jnp.float64], f"params differ by {params_error:.2e}"
    assert state_error <= RTOL[jnp.float64], f"state differs by {state_error:.2e}"


if __name__ == "__main__":
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")
    f32 = run_all("float32")
    with jax.enable_x64(True):
        f64 = run_all("float64")
    print("| case | float32 params | float32 state | float64 params | float64 state |")
    print("| --- | --- | --- | --- | --- |")
    for name, (p32, s32) in f32.items():
        extra = " | ".join(f"{e:.1e}" for e in f64[name]) if name in f64 else "- | -"
        print(f"| {name} | {p32:.1e} | {s32:.1e} | {extra} |")
