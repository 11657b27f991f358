"""The dtype policy (gradxform/_src/dtypes.py), rule by rule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradxform as gx
from helpers import standard_promotion

ACCUMULATING = {
    "adam": lambda **kw: gx.adam(1e-3, **kw),
    "adamw": lambda **kw: gx.adamw(1e-3, **kw),
    "sgd_momentum": lambda **kw: gx.sgd(1e-2, momentum=0.9, **kw),
    "rmsprop": lambda **kw: gx.rmsprop(1e-3, **kw),
    "rmsprop_centered": lambda **kw: gx.rmsprop(1e-3, centered=True, **kw),
    "adagrad": lambda **kw: gx.adagrad(1e-2, **kw),
    "ema": lambda **kw: gx.chain(gx.ema(0.9, **kw), gx.scale(-1e-2)),
}
OVERRIDE = {"adam": "mu_dtype", "adamw": "mu_dtype", "sgd_momentum": "accumulator_dtype",
            "rmsprop": "nu_dtype", "rmsprop_centered": "nu_dtype", "adagrad": "accumulator_dtype",
            "ema": "accumulator_dtype"}


def _params(dtype):
    return {"w": jnp.ones((3, 2), dtype), "b": jnp.full((2,), 0.5, dtype)}


@pytest.mark.parametrize("name", ACCUMULATING)
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_params_get_float32_accumulators(name, dtype):
    state = ACCUMULATING[name]().init(_params(dtype))
    leaves = [x for x in jax.tree.leaves(state.inner) if x.ndim > 0]
    assert leaves and all(x.dtype == jnp.float32 for x in leaves)


@pytest.mark.parametrize("name", ACCUMULATING)
def test_accumulator_dtype_override(name):
    tx = ACCUMULATING[name](**{OVERRIDE[name]: jnp.bfloat16} if name != "rmsprop" and
                            name != "rmsprop_centered" else {})
    if name.startswith("rmsprop"):
        tx = ACCUMULATING[name](nu_dtype=jnp.bfloat16, decay=0.9)
    state = tx.init(_params(jnp.float32))
    dtypes = {x.dtype for x in jax.tree.leaves(state.inner) if x.ndim > 0}
    assert jnp.dtype(jnp.bfloat16) in dtypes


def test_float64_params_keep_float64_accumulators():
    with jax.enable_x64(True):
        state = gx.adam(1e-3).init(_params(jnp.float64))
        assert all(x.dtype == jnp.float64 for x in jax.tree.leaves(state.inner))


@pytest.mark.parametrize("name", ACCUMULATING)
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_updates_come_back_in_the_gradients_dtype(name, dtype):
    tx = ACCUMULATING[name]()
    params = _params(dtype)
    state = tx.init(params)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.25), params)
    for _ in range(3):
        updates, state = tx.update(grads, state, params)
        assert all(u.dtype == dtype for u in jax.tree.leaves(updates))
        params = gx.apply_updates(params, updates)
        assert all(p.dtype == dtype for p in jax.tree.leaves(params))


def test_array_hyperparameters_never_promote_updates():
    lr = jnp.asarray(1e-2, jnp.float32)  # a strongly typed float32 array
    tx = gx.chain(gx.clip_by_global_norm(jnp.asarray(1.0)), gx.adamw(lr, b1=jnp.asarray(0.9)))
    params = _params(jnp.bfloat16)
    updates, _ = tx.update(params, tx.init(params), params)  # strict promotion would raise
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))


def test_apply_updates_keeps_params_dtype_and_rounds_once():
    params = {"w": jnp.asarray([1.0, 256.0], jnp.bfloat16)}
    updates = {"w": jnp.asarray([1e-3, 0.75], jnp.float32)}
    new = gx.apply_updates(params, updates)
    assert new["w"].dtype == jnp.bfloat16
    # summed in float32 then rounded once: 256.75 -> 257 in bfloat16 (spacing 2 above 256)
    np.testing.assert_array_equal(np.asarray(new["w"], np.float32), [1.0, 256.0])
    new32 = gx.apply_updates({"w": jnp.ones(2, jnp.float32)}, {"w": jnp.ones(2, jnp.bfloat16)})
    assert new32["w"].dtype == jnp.float32


@pytest.mark.parametrize("make", [
    lambda: gx.adam(1e-3, nu_dtype=jnp.float16, mu_dtype=jnp.float16, b2=0.99),
    lambda: gx.rmsprop(1e-3, nu_dtype=jnp.float16),
    lambda: gx.rmsprop(1e-3, nu_dtype=jnp.float16, eps_in_sqrt=False),
    lambda: gx.adagrad(1e-3, accumulator_dtype=jnp.float16, initial_accumulator_value=0.0,
                       eps_in_sqrt=False),
], ids=["adam_f16_state", "rmsprop_f16_state", "rmsprop_f16_eps_outside", "adagrad_f16_state"])
def test_zero_gradients_in_float16_give_zero_not_nan(make):
    """eps = 1e-8 rounds to 0 in float16; the policy replaces it by the smallest normal."""
    tx = make()
    params = _params(jnp.float16)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    for u in jax.tree.leaves(updates):
        assert np.all(np.isfinite(np.asarray(u, np.float32))) and not np.any(np.asarray(u))


def _adam_steps(tx, dtype):
    """Adam's step after gradients shrink from 1 (2000 steps) to 0.01 (3000 steps)."""
    params = {"w": jnp.zeros(4, dtype)}

    def body(state, g):
        updates, state = tx.update({"w": jnp.full(4, g, dtype)}, state)
        return state, updates["w"][0]

    grads = jnp.concatenate([jnp.ones(2000), jnp.full(3000, 0.01)]).astype(dtype)
    _, steps = jax.lax.scan(body, tx.init(params), grads)
    return float(jnp.abs(steps[-1].astype(jnp.float32)))


def test_bfloat16_adam_keeps_the_float32_step_size():
    reference = _adam_steps(gx.adam(1e-3), jnp.float32)
    ours = _adam_steps(gx.adam(1e-3), jnp.bfloat16)
    assert ours == pytest.approx(reference, rel=0.02)


def test_bfloat16_adam_step_against_optax_for_the_record():
    """optax keeps bf16 moments in bf16: record how far its step drifts (not asserted on)."""
    reference = _adam_steps(gx.adam(1e-3), jnp.float32)
    with standard_promotion():
        theirs = _adam_steps(optax.adam(1e-3), jnp.bfloat16)
    ours = _adam_steps(gx.adam(1e-3), jnp.bfloat16)
    print(f"adam step after gradients shrink: f32 {reference:.3e}, gradxform bf16 {ours:.3e}, "
          f"optax bf16 {theirs:.3e} ({reference / theirs:.1f}x too small)")
    assert abs(ours / reference - 1) < 0.02 < abs(theirs / reference - 1)


def test_complex_params_have_real_second_moments():
    params = {"z": jnp.ones(3, jnp.complex64)}
    state = gx.adam(1e-3).init(params)
    assert state.inner[0].mu["z"].dtype == jnp.complex64
    assert state.inner[0].nu["z"].dtype == jnp.float32


def test_integer_params_are_rejected_with_an_explanation():
    with pytest.raises(TypeError, match="gradxform optimises floating-point leaves only, got a "
                       "leaf of dtype int32"):
        gx.adam(1e-3).init({"steps": jnp.zeros(3, jnp.int32)})
