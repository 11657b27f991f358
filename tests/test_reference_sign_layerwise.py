"""Step-by-step comparison with NumPy references written from the papers (``tests/reference``).

Every case runs 60 steps in float64 on a nested tree (with the leaves each method cares about:
a 3-d leaf for SM3, a leaf of zeros for the trust ratios' zero-norm conventions, complex leaves
for the normalised step) and compares the params after every step to rtol 1e-10 (absolute
floor 1e-10 times the leaf's largest magnitude over the run). The references know nothing of
gradxform: they follow the papers' algorithm boxes with plain loops and formulas (Adafactor's
reference uses the paper's row and column *sums* and ``V = R C / 1^T R``, SM3's loops over
entries and cover sets).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from helpers import gradient_stream, nested_params
from reference import (
    adafactor,
    fromage,
    lamb,
    lars,
    lion,
    noisy_sgd,
    normalized,
    novograd,
    polyak,
    signsgd,
    sm3,
)

STEPS = 60
RTOL = 1e-10


def tree_with_3d(dtype):
    params = nested_params(dtype)
    params["conv"] = jnp.asarray(np.random.default_rng(7).normal(size=(3, 2, 4)), dtype)
    return params


def tree_with_zeros(dtype):
    params = nested_params(dtype)
    params["bias"] = jnp.zeros(3, dtype)
    return params


def complex_tree(dtype):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(3, 2)) + 1j * rng.normal(size=(3, 2))
    return {"z": jnp.asarray(z, jnp.complex128), "x": jnp.asarray(rng.normal(size=4), dtype)}


def grads_for(params, steps):
    """The standard gradient stream, with imaginary parts for complex leaves."""
    real = gradient_stream(params, steps)
    imag = gradient_stream(params, steps, seed=2)
    def combine(r, i):
        if not jnp.iscomplexobj(r):
            return r
        return jnp.asarray(np.asarray(r).real + 1j * np.asarray(i).real, r.dtype)

    return [jax.tree.map(combine, a, b) for a, b in zip(real, imag)]


def values(t):
    """A stream of loss values for Polyak's step (some below f_min = 0.8)."""
    return 1.0 + 0.5 * np.sin(0.3 * t)


def noise_for(key, leaves):
    """The draws ``add_noise`` documents: split the key per leaf, a normal of each leaf's dtype."""
    keys = jax.random.split(key, len(leaves))
    return [np.asarray(jax.random.normal(k, x.shape, x.dtype)) for k, x in zip(keys, leaves)]


def rho(t):
    """A relative step schedule rho_t = min(0.3, 1/sqrt(t)) (the paper's with 0.3 for 1e-2, so
    that it decays within the run)."""
    return min(0.3, 1 / np.sqrt(t))


rho_gx = gx.schedule_fn(
    lambda c: jnp.minimum(0.3, jax.lax.rsqrt(jnp.asarray(c, jnp.float64) + 1)))

# (id, gradxform optimizer, reference factory, params, extra)
CASES = [
    ("sign_sgd", gx.sign_sgd(0.01), lambda: signsgd.SignSGD(0.01), nested_params, None),
    ("signum", gx.signum(0.01, 0.8), lambda: signsgd.Signum(0.01, 0.8), nested_params, None),
    ("normalized_sgd", gx.normalized_sgd(0.01, 1e-3),
     lambda: normalized.NormalizedStep(0.01, 1e-3), nested_params, None),
    ("normalized_sgd_complex", gx.normalized_sgd(0.01, 1e-3),
     lambda: normalized.NormalizedStep(0.01, 1e-3), complex_tree, None),
    ("lion", gx.lion(0.01, 0.9, 0.99, weight_decay=0.1),
     lambda: lion.Lion(0.01, 0.9, 0.99, 0.1), nested_params, None),
    ("lars_paper", gx.lars(0.5, 0.01, trust_coefficient=0.01, paper_trust_ratio=True),
     lambda: lars.LARS(0.5, 0.9, 0.01, 0.01, "paper"), tree_with_zeros, None),
    ("lars_optax_form", gx.lars(0.5, 0.01, trust_coefficient=0.01),
     lambda: lars.LARS(0.5, 0.9, 0.01, 0.01, "sum"), tree_with_zeros, None),
    ("lars_zero_norm_ratio_0", gx.lars(0.5, 0.01, trust_coefficient=0.01,
                                       ratio_at_zero_norm=0.0),
     lambda: lars.LARS(0.5, 0.9, 0.01, 0.01, "sum", at_zero=0.0), tree_with_zeros, None),
    ("lamb", gx.lamb(0.01, weight_decay=0.01), lambda: lamb.LAMB(0.01, 0.9, 0.999, 1e-6, 0.01),
     tree_with_zeros, None),
    ("lamb_zero_norm_ratio_0", gx.lamb(0.01, weight_decay=0.01, ratio_at_zero_norm=0.0),
     lambda: lamb.LAMB(0.01, 0.9, 0.999, 1e-6, 0.01, at_zero=0.0), tree_with_zeros, None),
    ("fromage", gx.fromage(0.01), lambda: fromage.Fromage(0.01), nested_params, None),
    ("novograd", gx.novograd(0.01, 0.9, 0.5, 1e-6, weight_decay=0.01),
     lambda: novograd.NovoGrad(0.01, 0.9, 0.5, 1e-6, 0.01), nested_params, None),
    ("adafactor_factored_relative", gx.adafactor(rho_gx, min_dim_size_to_factor=2),
     lambda: adafactor.Adafactor(rho, 2), nested_params, None),
    ("adafactor_absolute_clip_2", gx.adafactor(0.01, 2, clipping_threshold=2.0,
                                               multiply_by_parameter_scale=False),
     lambda: adafactor.Adafactor(0.01, 2, d=2.0, relative_step=False), nested_params, None),
    ("sm3", gx.sm3(0.1, 0.9, eps=1e-30), lambda: sm3.SM3(0.1, 0.9, 1e-30), tree_with_3d, None),
    ("polyak", gx.polyak_sgd(0.5), lambda: polyak.PolyakSGD(0.5, 1.0, 0.0, 0.0),
     nested_params, "value"),
    ("polyak_plus_uncapped", gx.polyak_sgd(None, 0.5, 0.8, 1e-3, "sps+"),
     lambda: polyak.PolyakSGD(None, 0.5, 0.8, 1e-3, plus=True), nested_params, "value"),
    ("noisy_sgd", gx.noisy_sgd(0.01, 0.1, 0.55), lambda: noisy_sgd.NoisySGD(0.01, 0.1, 0.55),
     nested_params, "key"),
]


def _gradxform_history(tx, params, grads, extra):
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *grads)

    def body(carry, inputs):
        p, s = carry
        g, t = inputs
        kwargs = {}
        if extra == "value":
            kwargs["value"] = 1.0 + 0.5 * jnp.sin(0.3 * t.astype(jnp.float64))
        if extra == "key":
            kwargs["key"] = jax.random.fold_in(jax.random.key(5), t)
        u, s = tx.update(g, s, p, **kwargs)
        p = gx.apply_updates(p, u)
        return (p, s), p

    run = jax.jit(lambda c, xs: jax.lax.scan(body, c, xs))
    _, history = run((params, tx.init(params)), (stacked, jnp.arange(len(grads))))
    return [np.asarray(x) for x in jax.tree.leaves(history)]


def _reference_history(ref, params, grads, extra):
    xs = [np.asarray(x) for x in jax.tree.leaves(params)]
    history = []
    for t, g in enumerate(grads):
        g = [np.asarray(x) for x in jax.tree.leaves(g)]
        kwargs = {}
        if extra == "value":
            kwargs["value"] = values(t)
        if extra == "key":
            kwargs["noise"] = noise_for(jax.random.fold_in(jax.random.key(5), t), xs)
        xs = ref.step(xs, g, t + 1, **kwargs)
        history.append(xs)
    return [np.stack([h[i] for h in history]) for i in range(len(xs))]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_paper_reference(case):
    name, tx, make_ref, params_fn, extra = case
    with jax.enable_x64(True):
        params = params_fn(jnp.float64)
        grads = grads_for(params, STEPS)
        mine = _gradxform_history(tx, params, grads, extra)
        theirs = _reference_history(make_ref(), params, grads, extra)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    for path, a, e in zip(paths, mine, theirs):
        floor = RTOL * max(float(np.max(np.abs(e))), 1e-30)
        for t in range(STEPS):
            np.testing.assert_allclose(a[t], e[t], rtol=RTOL, atol=floor,
                                       err_msg=f"{name}: params after step {t + 1} at {path}")


def test_zero_norm_conventions_differ_on_a_leaf_of_zeros():
    """The two zero-norm conventions really differ: with ratio 0 a leaf of zeros never moves."""
    with jax.enable_x64(True):
        params = tree_with_zeros(jnp.float64)
        grads = gradient_stream(params, 5)
        moved = _gradxform_history(gx.lamb(0.01), params, grads, None)
        frozen = _gradxform_history(gx.lamb(0.01, ratio_at_zero_norm=0.0), params, grads, None)
    index = [jax.tree_util.keystr(p) for p, _ in
             jax.tree_util.tree_flatten_with_path(params)[0]].index("['bias']")
    assert np.all(frozen[index] == 0)
    assert np.all(np.abs(moved[index][-1]) > 0)
