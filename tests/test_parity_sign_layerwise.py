"""Parity with optax for the sign-based, layer-wise, memory-light and other optimizers.

Each case runs gradxform and optax side by side for 120 steps on a nested tree (dicts, lists,
tuples, a None leaf, scalars, vectors, matrices, and a 3-d leaf where it matters) with a fixed
stream of gradients of varied magnitude, and compares the params after every step and the
optimizer state at the end: float32 to rtol 1e-6 (absolute floor 1e-6 times the leaf's largest
magnitude), float64 to rtol 1e-12. optax runs under standard promotion. Both run in one
``lax.scan`` per case, so noisy SGD can hand gradxform the sample key optax draws from its own
state at each step.

Known differences, each tested here:

* Adafactor: ``optax.adafactor`` computes the second-moment decay ``1 - t^-0.8`` in float32
  even under x64 (gradxform in the accumulator dtype), and keeps its momentum in float32 by
  default (gradxform follows the dtype policy; ``dtype_momentum`` reaches optax's choice). The
  float64 cases compare against optax's own links with a float64 decay (``optax_adafactor``).
* Polyak SGD: optax's ``scaling=s`` acts as ``1/s`` on the ratio and ``s`` on the cap; the
  equivalent gradxform arguments reproduce it (``polyak_reparametrised``).
* SM3: optax fails on scalar leaves, so its cases use a tree without them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradxform as gx
from helpers import assert_trees_close, gradient_stream, nested_params, standard_promotion

STEPS = 120


def _matrices(p):
    return jax.tree.map(lambda x: x.ndim > 1, p)


def with_3d(dtype):
    params = nested_params(dtype)
    rng = np.random.default_rng(7)
    params["conv"] = jnp.asarray(rng.normal(size=(3, 4, 5)), dtype)
    return params


def without_scalars(dtype):
    params = with_3d(dtype)
    del params["scale"]
    params["blocks"][1] = (params["blocks"][1][0],)
    return params


def optax_adafactor(dtype, learning_rate=None, min_dim_size_to_factor=128, decay_rate=0.8,
                    multiply_by_parameter_scale=True, clipping_threshold=1.0, momentum=None,
                    weight_decay_rate=None, eps=1e-30, factored=True, weight_decay_mask=None):
    """optax's adafactor; for float64, its own links with the decay ``1 - t^-c`` computed in
    float64 (optax.adafactor computes it in float32 whatever the dtype)."""
    if dtype != jnp.float64:
        return optax.adafactor(learning_rate, min_dim_size_to_factor, decay_rate, 0,
                               multiply_by_parameter_scale, clipping_threshold, momentum,
                               dtype, weight_decay_rate, eps, factored, weight_decay_mask)

    def decay_f64(i, exponent):
        return 1.0 - jnp.asarray(i + 1, jnp.float64) ** (-exponent)

    links = [optax.scale_by_factored_rms(factored, decay_rate, 0, min_dim_size_to_factor, eps,
                                         decay_rate_fn=decay_f64)]
    if clipping_threshold is not None:
        links.append(optax.clip_by_block_rms(clipping_threshold))
    if learning_rate is not None:
        links.append(optax.scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        links.append(optax.scale_by_param_block_rms())
    if momentum is not None:
        links.append(optax.ema(momentum, debias=False, accumulator_dtype=dtype))
    if weight_decay_rate is not None:
        links.append(optax.add_decayed_weights(weight_decay_rate, weight_decay_mask))
    links.append(optax.scale(-1))
    return optax.chain(*links)


# State extractors: (gradxform state, optax state) -> (mine, theirs).
def no_state(g, o):
    return (), ()


def attr(i_gx, i_ox, *names):
    def pick(g, o):
        return ([getattr(g.inner[i_gx], n) for n in names],
                [getattr(o[i_ox], n) for n in names])
    return pick


def adafactor_state(g, o):
    mine, theirs = [], []
    for name in ("v_row", "v_col", "v"):
        for a, b in zip(jax.tree.leaves(getattr(g.inner[0], name)),
                        jax.tree.leaves(getattr(o[0], name))):
            if a.size:  # unused entries: empty here, a (1,) placeholder in optax
                mine.append(a)
                theirs.append(b)
    return mine, theirs


def sm3_state(g, o):
    return ([jax.tree.leaves(g.inner[0].mu), g.inner[0].nu],
            [jax.tree.leaves(o[0].mu), o[0].nu])


def value_stream(t):
    """Loss values for Polyak's step: positive, some below f_min = 0.8 (for sps+)."""
    return 1.0 + 0.5 * jnp.sin(0.3 * t)


# (id, builder dtype -> (gradxform tx, optax tx), state picker, params, extra, f64 rtol)
CASES = [
    ("sign_sgd", lambda d: (gx.sign_sgd(0.01), optax.sign_sgd(0.01)), no_state,
     nested_params, None, 1e-12),
    ("signum", lambda d: (gx.signum(0.01, 0.8), optax.signum(0.01, 0.8)),
     attr(0, 0, "ema"), nested_params, None, 1e-12),
    ("lion", lambda d: (gx.lion(0.01), optax.lion(0.01)), attr(0, 0, "mu"),
     nested_params, None, 1e-12),
    ("lion_masked_decay",
     lambda d: (gx.lion(0.01, 0.8, 0.95, weight_decay=0.1, mask=_matrices),
                optax.lion(0.01, 0.8, 0.95, weight_decay=0.1, mask=_matrices)),
     attr(0, 0, "mu"), nested_params, None, 1e-12),
    ("lion_smooth",
     lambda d: (gx.chain(gx.scale_by_lion(mode="smooth", smooth_beta=3.0), gx.scale(-0.01)),
                optax.chain(optax.scale_by_lion(mode="smooth", smooth_beta=3.0),
                            optax.scale(-0.01))),
     attr(0, 0, "mu"), nested_params, None, 1e-12),
    ("lion_refined",
     lambda d: (gx.chain(gx.scale_by_lion(0.8, mode="refined"), gx.scale(-0.01)),
                optax.chain(optax.scale_by_lion(0.8, mode="refined"), optax.scale(-0.01))),
     attr(0, 0, "mu"), nested_params, None, 1e-12),
    ("lars", lambda d: (gx.lars(0.5), optax.lars(0.5)), attr(3, 3, "trace"),
     nested_params, None, 1e-12),
    ("lars_masks_nesterov",
     lambda d: (gx.lars(0.5, 0.01, _matrices, 0.01, 1e-6, _matrices, 0.8, True),
                optax.lars(0.5, 0.01, _matrices, 0.01, 1e-6, _matrices, 0.8, True)),
     attr(3, 3, "trace"), nested_params, None, 1e-12),
    ("lamb", lambda d: (gx.lamb(0.01), optax.lamb(0.01)), attr(0, 0, "mu", "nu"),
     nested_params, None, 1e-12),
    ("lamb_decay_eps_root",
     lambda d: (gx.lamb(0.01, 0.8, 0.99, 1e-5, 1e-8, 0.05, _matrices),
                optax.lamb(0.01, 0.8, 0.99, 1e-5, 1e-8, 0.05, _matrices)),
     attr(0, 0, "mu", "nu"), nested_params, None, 1e-12),
    ("fromage", lambda d: (gx.fromage(0.01), optax.fromage(0.01)), no_state,
     nested_params, None, 1e-12),
    ("fromage_min_norm", lambda d: (gx.fromage(0.2, 0.5), optax.fromage(0.2, 0.5)), no_state,
     nested_params, None, 1e-12),
    ("novograd", lambda d: (gx.novograd(0.01), optax.novograd(0.01)),
     attr(0, 0, "mu", "nu"), nested_params, None, 1e-12),
    ("novograd_decay",
     lambda d: (gx.novograd(0.01, 0.8, 0.9, 1e-5, 1e-6, 0.01),
                optax.novograd(0.01, 0.8, 0.9, 1e-5, 1e-6, 0.01)),
     attr(0, 0, "mu", "nu"), nested_params, None, 1e-12),
    ("adafactor_factored",
     lambda d: (gx.adafactor(0.01, min_dim_size_to_factor=2),
                optax_adafactor(d, 0.01, min_dim_size_to_factor=2)),
     adafactor_state, with_3d, None, 1e-12),
    ("adafactor_default", lambda d: (gx.adafactor(0.01), optax_adafactor(d, 0.01)),
     adafactor_state, with_3d, None, 1e-12),
    ("adafactor_momentum_decay",
     lambda d: (gx.adafactor(0.05, 3, 0.7, 0, True, 0.5, 0.9, None, 0.01, 1e-20, True,
                             _matrices),
                optax_adafactor(d, 0.05, 3, 0.7, True, 0.5, 0.9, 0.01, 1e-20, True,
                                _matrices)),
     adafactor_state, with_3d, None, 1e-12),
    ("adafactor_unfactored_absolute",
     lambda d: (gx.adafactor(None, factored=False, multiply_by_parameter_scale=False,
                             clipping_threshold=None),
                optax_adafactor(d, None, factored=False, multiply_by_parameter_scale=False,
                                clipping_threshold=None)),
     adafactor_state, with_3d, None, 1e-12),
    ("sm3", lambda d: (gx.sm3(0.01), optax.sm3(0.01)), sm3_state, without_scalars, None,
     1e-12),
    ("noisy_sgd", lambda d: (gx.noisy_sgd(0.01, 0.1, 0.4), optax.noisy_sgd(0.01, 0.1, 0.4,
                                                                           key=3)),
     no_state, nested_params, "key", 1e-12),
    ("polyak", lambda d: (gx.polyak_sgd(0.5), optax.polyak_sgd(0.5)), no_state,
     nested_params, "value", 1e-12),
    ("polyak_plus_f_min_eps",
     lambda d: (gx.polyak_sgd(0.3, 1.0, 0.8, 1e-3, "sps+"),
                optax.polyak_sgd(0.3, 1.0, 0.8, 1e-3, "sps+")),
     no_state, nested_params, "value", 1e-12),
    # optax's polyak_sgd(M, s, f_min, eps) is polyak_sgd(M s^2, 1/s, f_min, eps/s^2) here.
    ("polyak_reparametrised",
     lambda d: (gx.polyak_sgd(0.4 * 0.5**2, 1 / 0.5, 0.1, 1e-3 / 0.5**2),
                optax.polyak_sgd(0.4, 0.5, 0.1, 1e-3)),
     no_state, nested_params, "value", 1e-12),
]


# float64 runs for one case per optimizer (the one with the most options set; signSGD's steps
# are exact signs); every case runs in float32.
F64_CASES = {"signum", "lion_masked_decay", "lars_masks_nesterov", "lamb_decay_eps_root",
             "fromage_min_norm", "novograd_decay", "adafactor_momentum_decay", "sm3",
             "noisy_sgd", "polyak_reparametrised"}


def _run_pair(gx_tx, ox_tx, params, pick, extra, rtol, atol):
    grads = gradient_stream(params, STEPS)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *grads)
    dtype = jax.tree.leaves(params)[0].dtype

    def body(carry, inputs):
        p_gx, s_gx, p_ox, s_ox = carry
        g, t = inputs
        kwargs = {}
        if extra == "value":
            kwargs["value"] = value_stream(t.astype(dtype))
        if extra == "key":  # the sample key optax is about to draw from its state
            kwargs["key"] = jax.random.split(s_ox[0].rng_key)[1]
        u, s_gx = gx_tx.update(g, s_gx, p_gx, **kwargs)
        p_gx = gx.apply_updates(p_gx, u)
        with standard_promotion():
            u, s_ox = ox_tx.update(g, s_ox, p_ox, **({"value": kwargs["value"]}
                                                     if extra == "value" else {}))
            p_ox = optax.apply_updates(p_ox, u)
        return (p_gx, s_gx, p_ox, s_ox), (p_gx, p_ox)

    with standard_promotion():
        s_ox = ox_tx.init(params)
    carry = (params, gx_tx.init(params), params, s_ox)
    run = jax.jit(lambda c, xs: jax.lax.scan(body, c, xs))
    (_, s_gx, _, s_ox), (hist_gx, hist_ox) = run(carry, (stacked, jnp.arange(STEPS)))
    # The absolute floor is relative to each leaf's largest magnitude over the whole run, so a
    # scalar param passing near zero is judged against the scale it moved on.
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    for path, a, e in zip(paths, jax.tree.leaves(hist_gx), jax.tree.leaves(hist_ox)):
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        floor = atol * max(float(np.max(np.abs(e))), 1e-30)
        for t in range(STEPS):
            np.testing.assert_allclose(a[t], e[t], rtol=rtol, atol=floor,
                                       err_msg=f"params after step {t + 1} at {path}")
    mine, theirs = pick(s_gx, s_ox)
    assert_trees_close(mine, theirs, rtol=rtol, atol=atol, what="state", leaf_scale=True)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_parity_float32(case):
    _, build, pick, params_fn, extra, _ = case
    gx_tx, ox_tx = build(jnp.float32)
    _run_pair(gx_tx, ox_tx, params_fn(jnp.float32), pick, extra, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in F64_CASES],
                         ids=[c[0] for c in CASES if c[0] in F64_CASES])
def test_parity_float64(case):
    _, build, pick, params_fn, extra, tol = case
    with jax.enable_x64(True):
        gx_tx, ox_tx = build(jnp.float64)
        _run_pair(gx_tx, ox_tx, params_fn(jnp.float64), pick, extra, rtol=tol, atol=tol)


def test_sm3_optax_fails_on_scalar_leaves_and_gradxform_does_not():
    params = {"w": jnp.ones((2, 3)), "s": jnp.float32(1.0)}
    grads = jax.tree.map(jnp.ones_like, params)
    with standard_promotion(), pytest.raises(IndexError):
        tx = optax.sm3(0.1)
        tx.update(grads, tx.init(params), params)
    tx = gx.sm3(0.1)
    updates, _ = tx.update(grads, tx.init(params), params)
    # First step, no momentum history: -lr (1 - b1) g / |g| = -0.01 everywhere.
    np.testing.assert_allclose(updates["s"], -0.01, rtol=1e-6)
    np.testing.assert_allclose(updates["w"], np.full((2, 3), -0.01), rtol=1e-6)
