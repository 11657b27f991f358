"""The Adam variants and adaptive classics against NumPy references written from their papers'
algorithm boxes (``tests/reference/*``), their conventions, argument checks and edge cases.

References: float64, 150 steps on an ill-conditioned quadratic with a non-diagonal Hessian (so
each gradient depends on the iterate), every iterate compared at rtol 1e-10. Where a paper and
optax differ, the paper's form is reached with the arguments named in each case, and optax's
(the default) is compared with optax itself in ``test_parity_adam_variants.py``.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from helpers import gradient_stream, nested_params
from reference import adabelief_zhuang2020 as adabelief_ref
from reference import adadelta_zeiler2012 as adadelta_ref
from reference import adamax_kingma2015 as adamax_ref
from reference import adan_xie2022 as adan_ref
from reference import ademamix_pagliardini2024 as ademamix_ref
from reference import adopt_taniguchi2024 as adopt_ref
from reference import amsgrad_reddi2018 as amsgrad_ref
from reference import radam_liu2020 as radam_ref
from reference import rprop_igel2000 as rprop_ref
from reference import yogi_zaheer2018 as yogi_ref

STEPS = 150
RNG = np.random.default_rng(11)
_Q = RNG.normal(size=(5, 5))
HESSIAN = _Q @ _Q.T / 5 + np.diag([0.1, 0.5, 1.0, 2.0, 4.0])
CENTER = RNG.normal(size=5)
THETA0 = RNG.normal(size=5)


def np_grad(theta):
    return HESSIAN @ (theta - CENTER)


def gx_iterates(tx, steps=STEPS):
    hessian, center = jnp.asarray(HESSIAN), jnp.asarray(CENTER)

    def body(carry, _):
        theta, state = carry
        updates, state = tx.update(hessian @ (theta - center), state, theta)
        theta = gx.apply_updates(theta, updates)
        return (theta, state), theta

    theta0 = jnp.asarray(THETA0)
    _, thetas = jax.lax.scan(body, (theta0, tx.init(theta0)), None, length=steps)
    return np.asarray(thetas)


# (id, gradxform optimizer, reference iterates); all in float64.
REFERENCE_CASES = [
    ("amsgrad (Reddi 2018, Alg. 2): no bias corrections",
     lambda: gx.amsgrad(0.05, bias_correction_mu=False, bias_correction_nu=False),
     lambda: amsgrad_ref.amsgrad(np_grad, THETA0, 0.05, 0.9, 0.999, 1e-8, STEPS)),
    ("radam (Liu 2020, Alg. 2): threshold 4",
     lambda: gx.radam(0.05, b2=0.99, threshold=4.0),
     lambda: radam_ref.radam(np_grad, THETA0, 0.05, 0.9, 0.99, 1e-8, STEPS, threshold=4.0)),
    ("radam default threshold 5",
     lambda: gx.radam(0.05, b2=0.99),
     lambda: radam_ref.radam(np_grad, THETA0, 0.05, 0.9, 0.99, 1e-8, STEPS, threshold=5.0)),
    ("yogi (Zaheer 2018, Alg. 2): from 0, no bias correction",
     lambda: gx.yogi(0.05, initial_accumulator_value=0.0, bias_correction=False),
     lambda: yogi_ref.yogi(np_grad, THETA0, 0.05, 0.9, 0.999, 1e-3, STEPS)),
    ("adadelta (Zeiler 2012, Alg. 1): rho 0.95",
     lambda: gx.adadelta(rho=0.95, eps=1e-6),
     lambda: adadelta_ref.adadelta(np_grad, THETA0, 0.95, 1e-6, STEPS)),
    ("adamax (Kingma & Ba 2015, Alg. 2): eps -> 0",
     lambda: gx.adamax(0.05, eps=1e-300),
     lambda: adamax_ref.adamax(np_grad, THETA0, 0.05, 0.9, 0.999, STEPS)),
    ("adabelief (Zhuang 2020, Alg. 2): one eps in both places",
     lambda: gx.adabelief(0.05, eps=1e-8, eps_root=1e-8),
     lambda: adabelief_ref.adabelief(np_grad, THETA0, 0.05, 0.9, 0.999, 1e-8, STEPS)),
    ("adan (Xie 2022, Alg. 1): paper weights and proximal decay",
     lambda: gx.adan(0.05, b1=1 - 0.02, b2=1 - 0.08, b3=1 - 0.01, eps_root=0.0,
                     weight_decay=0.1, paper_difference_weight=True, proximal_decay=True),
     lambda: adan_ref.adan(np_grad, THETA0, 0.05, 0.02, 0.08, 0.01, 1e-8, 0.1, STEPS)),
    ("adopt (Taniguchi 2024, Alg. 2)", lambda: gx.adopt(0.05),
     lambda: adopt_ref.adopt(np_grad, THETA0, 0.05, 0.9, 0.9999, 1e-6, STEPS)),
    ("adopt without clipping (Alg. 1)", lambda: gx.adopt(0.05, b2=0.99, use_clipping=False),
     lambda: adopt_ref.adopt(np_grad, THETA0, 0.05, 0.9, 0.99, 1e-6, STEPS, clip=False)),
    ("ademamix (Pagliardini 2024, Alg. 1): constant alpha, b3",
     lambda: gx.ademamix(0.02, b3=0.99, alpha=5.0, weight_decay=0.1),
     lambda: ademamix_ref.ademamix(np_grad, THETA0, 0.02, 0.9, 0.999, 0.99, 5.0, 1e-8, 0.1,
                                   STEPS)),
    ("ademamix with the paper's alpha and b3 warm-ups",
     lambda: gx.ademamix(0.02, b3=gx.ademamix_b3_schedule(0.999, 60),
                         alpha=gx.ademamix_alpha_schedule(5.0, 60), weight_decay=0.1),
     lambda: ademamix_ref.ademamix(np_grad, THETA0, 0.02, 0.9, 0.999, 0.999, 5.0, 1e-8, 0.1,
                                   STEPS, t_warmup=60)),
    ("irprop- (Igel & Huesken 2000)", lambda: gx.rprop(0.05, max_step_size=1.0),
     lambda: rprop_ref.rprop(np_grad, THETA0, 0.05, 0.5, 1.2, 1e-6, 1.0, STEPS)),
    ("rprop- (Riedmiller & Braun 1993 without backtracking)",
     lambda: gx.rprop(0.05, max_step_size=1.0, skip_after_sign_change=False),
     lambda: rprop_ref.rprop(np_grad, THETA0, 0.05, 0.5, 1.2, 1e-6, 1.0, STEPS,
                             improved=False)),
]


@pytest.mark.parametrize("case", REFERENCE_CASES, ids=[c[0] for c in REFERENCE_CASES])
def test_matches_the_paper(case):
    _, make, reference = case
    with jax.enable_x64(True):
        ours = gx_iterates(make())
    np.testing.assert_allclose(ours, np.asarray(reference()), rtol=1e-10, atol=1e-12)


def test_default_and_paper_conventions_differ():
    """Each convention argument changes the numbers (so the tests above test something)."""
    with jax.enable_x64(True):
        pairs = [
            (gx.amsgrad(0.05), gx.amsgrad(0.05, bias_correction_mu=False,
                                          bias_correction_nu=False)),
            (gx.radam(0.05, b2=0.99), gx.radam(0.05, b2=0.99, threshold=4.0)),
            (gx.yogi(0.05), gx.yogi(0.05, initial_accumulator_value=0.0, bias_correction=False)),
            (gx.adan(0.05), gx.adan(0.05, paper_difference_weight=True)),
            (gx.adan(0.05, weight_decay=0.5), gx.adan(0.05, weight_decay=0.5,
                                                      proximal_decay=True)),
            (gx.rprop(0.05), gx.rprop(0.05, skip_after_sign_change=False)),
        ]
        for a, b in pairs:
            assert np.max(np.abs(gx_iterates(a, 30) - gx_iterates(b, 30))) > 1e-6, (a, b)


# ---------------------------------------------------------------------------------------------
# Conventions and behaviour specific to one optimizer.


def test_radam_takes_momentum_steps_until_rho_reaches_the_threshold():
    """Below the threshold the update is -lr * m_hat (no division by sqrt(v))."""
    b2, lr = 0.99, 0.1
    rho_inf = 2 / (1 - b2) - 1
    rho = [rho_inf - 2 * t * b2**t / (1 - b2**t) for t in range(1, 8)]
    for threshold in (4.0, 5.0):
        first_adaptive = next(t for t, r in enumerate(rho, 1) if r >= threshold)
        tx = gx.radam(lr, b2=b2, threshold=threshold)
        params = {"w": jnp.zeros(2)}
        state, g = tx.init(params), {"w": jnp.asarray([4.0, -0.01])}
        for t in range(1, 8):
            u, state = tx.update(g, state, params)
            if t < first_adaptive:
                np.testing.assert_allclose(u["w"], -lr * g["w"], rtol=1e-6)
            else:  # constant gradient: m_hat / sqrt(v_hat) = sign(g), times r_t < 1
                assert np.all(np.abs(u["w"]) < lr) and np.all(np.sign(u["w"]) == [-1, 1])


def test_radam_meta_gradient_is_finite_in_the_momentum_phase():
    """The rectifier is not real while rho_t < 4; it must not poison derivatives."""
    params = {"w": jnp.asarray([1.0, -2.0])}

    def loss_after(b2, lr):
        tx = gx.radam(lr, b2=b2)
        p, s = params, tx.init(params)
        for _ in range(6):
            u, s = tx.update(jax.tree.map(lambda x: 2 * x, p), s, p)
            p = gx.apply_updates(p, u)
        return jnp.sum(p["w"] ** 2)

    grads = jax.grad(loss_after, argnums=(0, 1))(jnp.float32(0.999), jnp.float32(0.1))
    assert all(np.isfinite(float(g)) for g in grads)


def test_adopt_first_update_only_initialises_the_second_moment():
    tx = gx.adopt(0.1)
    params = {"w": jnp.asarray([1.0, -1.0])}
    g = {"w": jnp.asarray([3.0, -0.5])}
    u, state = tx.update(g, tx.init(params), params)
    np.testing.assert_array_equal(u["w"], 0.0)
    np.testing.assert_allclose(state.inner[0].nu["w"], [9.0, 0.25])
    np.testing.assert_array_equal(state.inner[0].mu["w"], 0.0)
    # Second update: m = (1 - b1) clip(g / sqrt(v), 1) = 0.1 * [1, -1] (the clip bound is 1).
    u, _ = tx.update(g, state, params)
    np.testing.assert_allclose(u["w"], -0.1 * 0.1 * np.asarray([1.0, -1.0]), rtol=1e-6)


def test_adopt_clips_complex_updates_by_modulus():
    tx = gx.adopt(1.0, b1=0.0, eps=1e-6)
    params = {"z": jnp.zeros(1, jnp.complex64)}
    state = tx.init(params)
    _, state = tx.update({"z": jnp.asarray([1e-3 + 0j], jnp.complex64)}, state, params)
    u, _ = tx.update({"z": jnp.asarray([3 + 4j], jnp.complex64)}, state, params)
    # |g / sqrt(v)| = 5 / 1e-3 is clipped to the bound 1^(1/4) = 1, the phase is kept.
    np.testing.assert_allclose(u["z"], [-(0.6 + 0.8j)], rtol=1e-6)


def test_adopt_python_float_b2_is_more_accurate_than_a_float32_one():
    """The deliberate difference from optax: 1 - b2 formed before the cast (see the parity
    module). In float32, b2 = 0.9999 as a number tracks the float64 run more closely than
    b2 as a float32 array (optax's rounding)."""
    params = nested_params(jnp.float32)
    grads = gradient_stream(params, 60)

    def final_nu(tx, dtype):
        p = jax.tree.map(lambda x: x.astype(dtype), params)
        state = tx.init(p)
        for g in grads:
            _, state = tx.update(jax.tree.map(lambda x: x.astype(dtype), g), state, p)
        return np.concatenate([np.ravel(np.asarray(x, np.float64))
                               for x in jax.tree.leaves(state.inner[0].nu)])

    with jax.enable_x64(True):
        exact = final_nu(gx.adopt(0.1), jnp.float64)
    number = final_nu(gx.adopt(0.1), jnp.float32)
    array = final_nu(gx.adopt(0.1, b2=jnp.float32(0.9999)), jnp.float32)
    err_number = np.max(np.abs(number - exact) / exact)
    err_array = np.max(np.abs(array - exact) / exact)
    assert err_number < 1e-5 < 1e-4 < err_array


def test_adan_difference_weights():
    """On the second step (g_1 = 0, g_2 = 1, so d_2 = 1) the numerator is m_hat + w v_hat with
    w = 1 - b2 (optax) or b2 (paper)."""
    b1, b2, b3 = 0.5, 0.75, 0.875
    params = {"w": jnp.zeros(1)}
    for paper, weight in ((False, 1 - b2), (True, b2)):
        tx = gx.scale_by_adan(b1, b2, b3, eps=1e-30, paper_difference_weight=paper)
        state = tx.init(params)
        _, state = tx.update({"w": jnp.zeros(1)}, state)
        u, _ = tx.update({"w": jnp.ones(1)}, state)
        m_hat = (1 - b1) / (1 - b1**2)
        v_hat = (1 - b2) / (1 - b2**2)
        n_hat = (1 - b3) * (1 + weight) ** 2 / (1 - b3**2)
        np.testing.assert_allclose(u["w"], (m_hat + weight * v_hat) / np.sqrt(n_hat), rtol=1e-6)


def test_proximal_weight_decay():
    lr, wd = 0.1, 0.5
    params = {"a": jnp.asarray([2.0, -1.0]), "b": jnp.asarray([3.0])}
    updates = {"a": jnp.asarray([1.0, 1.0]), "b": jnp.asarray([1.0])}
    tx = gx.proximal_weight_decay(lr, wd, mask={"a": True, "b": False})
    out, _ = tx.update(updates, tx.init(params), params)
    new_a = (np.asarray([2.0, -1.0]) - lr * 1.0) / (1 + lr * wd)
    np.testing.assert_allclose(params["a"] + out["a"], new_a, rtol=1e-6)
    np.testing.assert_allclose(out["b"], [-lr], rtol=1e-6)
    with pytest.raises(ValueError, match="proximal_weight_decay: needs the current params"):
        tx.update(updates, tx.init(params))


def test_adadelta_weight_decay_is_coupled():
    """adadelta's weight_decay is an L2 penalty added before the adaptive scaling (optax,
    torch), not decoupled decay."""
    with jax.enable_x64(True):
        ours = gx_iterates(gx.adadelta(1.0, weight_decay=0.1))
        coupled = gx_iterates(gx.chain(gx.add_l2_penalty(0.1), gx.scale_by_adadelta(),
                                       gx.scale_by_learning_rate(1.0)))
    np.testing.assert_array_equal(ours, coupled)


def test_adadelta_default_learning_rate_is_one_and_descends():
    with jax.enable_x64(True):
        np.testing.assert_array_equal(gx_iterates(gx.adadelta(), 20),
                                      gx_iterates(gx.adadelta(1.0), 20))
        start = 0.5 * (THETA0 - CENTER) @ HESSIAN @ (THETA0 - CENTER)
        last = gx_iterates(gx.adadelta(), 20)[-1]
        assert 0.5 * (last - CENTER) @ HESSIAN @ (last - CENTER) < start


@pytest.mark.parametrize("nadam, adam", [(gx.nadam, gx.adam), (gx.nadamw, gx.adamw)])
def test_nadam_without_nesterov_is_adam(nadam, adam):
    """optax's switch: ``nesterov=False`` turns NAdam(W) into Adam(W)."""
    params = nested_params()
    grads = gradient_stream(params, 3)
    def first_updates(tx):
        state, out = tx.init(params), []
        for g in grads:
            u, state = tx.update(g, state, params)
            out.append(jax.tree.leaves(u))
        return out

    plain = first_updates(adam(0.1))
    for mine, theirs in zip(first_updates(nadam(0.1, nesterov=False)), plain):
        for x, y in zip(mine, theirs):
            np.testing.assert_array_equal(x, y)
    assert not np.allclose(first_updates(nadam(0.1))[0][0], plain[0][0])


def test_ademamix_schedules_follow_the_paper():
    alpha, b3, b_start, warmup = 8.0, 0.9999, 0.9, 100
    a_sched = gx.ademamix_alpha_schedule(alpha, warmup)
    b_sched = gx.ademamix_b3_schedule(b3, warmup, b_start)
    for count in (0, 1, 10, 50, 98, 99, 100, 500):
        t = count + 1  # the paper's 1-based step
        np.testing.assert_allclose(a_sched(count), ademamix_ref.f_alpha(t, alpha, warmup),
                                   rtol=1e-6)
        np.testing.assert_allclose(b_sched(count), ademamix_ref.f_beta3(t, b3, b_start, warmup),
                                   rtol=1e-6)
    half_life = [math.log(0.5) / math.log(float(b_sched(c))) for c in (9, 49, 89)]
    np.testing.assert_allclose(np.diff(half_life) / 40, (math.log(0.5) / math.log(b3)
                                                        - math.log(0.5) / math.log(b_start))
                               / warmup, rtol=1e-3)  # linear in the half-life
    assert float(gx.ademamix_alpha_schedule(alpha, 0)(0)) == alpha
    np.testing.assert_allclose(gx.ademamix_b3_schedule(b3, 0)(0), b3, rtol=1e-7)


def test_ademamix_hyperparams_show_the_scheduled_values():
    tx = gx.ademamix(1e-3, b3=gx.ademamix_b3_schedule(0.999, 10),
                     alpha=gx.ademamix_alpha_schedule(4.0, 10))
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    for _ in range(3):
        _, state = tx.update(params, state, params)
    values = gx.hyperparams(tx, state)
    np.testing.assert_allclose(values["alpha"], 4.0 * 4 / 10, rtol=1e-6)
    np.testing.assert_allclose(values["b3"], ademamix_ref.f_beta3(4, 0.999, 0.9, 10), rtol=1e-6)


def test_yogi_second_moment_moves_additively():
    """v changes by at most (1 - b2) g^2 per step, whatever v was (Adam's can jump)."""
    b2 = 0.9
    tx = gx.scale_by_yogi(b2=b2, initial_accumulator_value=100.0, bias_correction=False)
    params = {"w": jnp.zeros(1)}
    state = tx.init(params)
    _, state = tx.update({"w": jnp.asarray([1.0])}, state)
    np.testing.assert_allclose(state.inner.nu["w"], [100.0 - (1 - b2) * 1.0], rtol=1e-6)
    _, state = tx.update({"w": jnp.asarray([20.0])}, state)
    np.testing.assert_allclose(state.inner.nu["w"], [99.9 + (1 - b2) * 400.0], rtol=1e-6)


def test_amsgrad_second_moment_never_decreases():
    tx = gx.scale_by_amsgrad(b2=0.5)
    params = {"w": jnp.zeros(1)}
    state = tx.init(params)
    seen = []
    for g in (3.0, 0.1, 0.1, 5.0, 0.0):
        _, state = tx.update({"w": jnp.asarray([g])}, state)
        seen.append(float(state.inner.nu_max["w"][0]))
    assert seen == sorted(seen)


def test_rprop_is_readable_and_rejects_complex_and_schedules():
    tx = gx.rprop(0.01, eta_plus=1.3)
    state = tx.init({"w": jnp.ones(2)})
    values = gx.hyperparams(tx, state)
    assert float(values["learning_rate"]) == pytest.approx(0.01)
    assert float(values["eta_plus"]) == pytest.approx(1.3)
    with pytest.raises(TypeError, match="rprop: does not support complex params"):
        tx.init({"z": jnp.zeros(2, jnp.complex64)})
    with pytest.raises(ValueError, match=re.escape(
            "rprop: learning_rate is the initial step size, used once by init: it must be a "
            "number or an array, not a schedule")):
        gx.rprop(gx.linear_schedule(0.1, 0.01, 10))


def test_rprop_sign_product_does_not_underflow():
    """optax multiplies the gradients, which underflows for tiny ones; only signs are used."""
    tx = gx.rprop(0.1)
    params = {"w": jnp.zeros(1)}
    state = tx.init(params)
    _, state = tx.update({"w": jnp.asarray([1e-30])}, state)
    u, state = tx.update({"w": jnp.asarray([1e-30])}, state)
    np.testing.assert_allclose(u["w"], [-0.12], rtol=1e-6)  # the step grew by eta_plus


@pytest.mark.parametrize("make", [
    lambda: gx.amsgrad(0.1), lambda: gx.radam(0.1), lambda: gx.adamax(0.1),
    lambda: gx.adabelief(0.1), lambda: gx.yogi(0.1), lambda: gx.adan(0.1),
    lambda: gx.adopt(0.1), lambda: gx.ademamix(0.1), lambda: gx.adadelta(0.1),
], ids=["amsgrad", "radam", "adamax", "adabelief", "yogi", "adan", "adopt", "ademamix",
        "adadelta"])
def test_complex_params_get_real_second_moments(make):
    tx = make()
    state = tx.init({"z": jnp.zeros(3, jnp.complex64)})
    kinds = {leaf.dtype for leaf in jax.tree.leaves(state.inner)}
    assert jnp.dtype(jnp.float32) in kinds, kinds


@pytest.mark.parametrize("make", [
    lambda: gx.amsgrad(1e-3), lambda: gx.radam(1e-3),
    lambda: gx.adamax(1e-3), lambda: gx.adabelief(1e-3), lambda: gx.yogi(1e-3),
    lambda: gx.adan(1e-3), lambda: gx.adopt(1e-3), lambda: gx.ademamix(1e-3),
    lambda: gx.adadelta(1e-3), lambda: gx.rprop(1e-3),
], ids=["amsgrad", "radam", "adamax", "adabelief", "yogi", "adan", "adopt", "ademamix",
        "adadelta", "rprop"])
def test_zero_gradients_in_float16_give_finite_updates(make):
    tx = make()
    params = {"w": jnp.ones(3, jnp.float16)}
    zeros = {"w": jnp.zeros(3, jnp.float16)}
    state = tx.init(params)
    for _ in range(3):
        u, state = tx.update(zeros, state, params)
        assert np.all(np.isfinite(np.asarray(u["w"], np.float32)))


# ---------------------------------------------------------------------------------------------
# Argument checks: one per range check, with the message.

RANGE_CHECKS = [
    (lambda: gx.amsgrad(-1e-3), "amsgrad: learning_rate must be >= 0, got -0.001"),
    (lambda: gx.amsgrad(1e-3, b1=1.0), "amsgrad: b1 must be in [0, 1), got 1.0"),
    (lambda: gx.amsgrad(1e-3, b2=-0.5), "amsgrad: b2 must be in [0, 1), got -0.5"),
    (lambda: gx.amsgrad(1e-3, eps=0.0), "amsgrad: eps must be > 0, got 0.0"),
    (lambda: gx.amsgrad(1e-3, eps_root=-1.0), "amsgrad: eps_root must be >= 0, got -1.0"),
    (lambda: gx.amsgrad(1e-3, nu_dtype=jnp.bfloat16),
     "amsgrad: b2=0.999 rounds to 1.0 in nu_dtype=bfloat16"),
    (lambda: gx.nadam(1e-3, b1=1.0), "nadam: b1 must be in [0, 1), got 1.0"),
    (lambda: gx.nadamw(1e-3, weight_decay=-1.0), "nadamw: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.radam(1e-3, b2=1.0), "radam: b2 must be in [0, 1), got 1.0"),
    (lambda: gx.radam(1e-3, threshold=3.0), "radam: threshold must be >= 4, got 3.0"),
    (lambda: gx.radam(1e-3, eps=-1.0), "radam: eps must be > 0, got -1.0"),
    (lambda: gx.radam(1e-3, mu_dtype=jnp.bfloat16, b1=0.999),
     "radam: b1=0.999 rounds to 1.0 in mu_dtype=bfloat16"),
    (lambda: gx.adamax(1e-3, b1=1.5), "adamax: b1 must be in [0, 1), got 1.5"),
    (lambda: gx.adamax(1e-3, b2=1.0), "adamax: b2 must be in [0, 1), got 1.0"),
    (lambda: gx.adamax(1e-3, eps=0.0), "adamax: eps must be > 0, got 0.0"),
    (lambda: gx.adamaxw(1e-3, weight_decay=-0.1), "adamaxw: weight_decay must be >= 0, got -0.1"),
    (lambda: gx.adabelief(1e-3, b2=1.0), "adabelief: b2 must be in [0, 1), got 1.0"),
    (lambda: gx.adabelief(1e-3, eps=0.0), "adabelief: eps must be > 0, got 0.0"),
    (lambda: gx.adabelief(1e-3, eps_root=-1e-16), "adabelief: eps_root must be >= 0, got -1e-16"),
    (lambda: gx.yogi(1e-3, b1=-0.1), "yogi: b1 must be in [0, 1), got -0.1"),
    (lambda: gx.yogi(1e-3, eps=0.0), "yogi: eps must be > 0, got 0.0"),
    (lambda: gx.yogi(1e-3, initial_accumulator_value=-1.0),
     "yogi: initial_accumulator_value must be >= 0, got -1.0"),
    (lambda: gx.yogi(1e-3, initial_accumulator_value=gx.constant_schedule(1e-6)),
     "yogi: initial_accumulator_value is used once, by init: it must be a number or an array, "
     "not a schedule"),
    (lambda: gx.adan(1e-3, b1=1.0), "adan: b1 must be in [0, 1), got 1.0"),
    (lambda: gx.adan(1e-3, b2=1.0), "adan: b2 must be in [0, 1), got 1.0"),
    (lambda: gx.adan(1e-3, b3=1.0), "adan: b3 must be in [0, 1), got 1.0"),
    (lambda: gx.adan(1e-3, eps_root=-1.0), "adan: eps_root must be >= 0, got -1.0"),
    (lambda: gx.adan(1e-3, weight_decay=-1.0), "adan: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.adan(1e-3, weight_decay=-1.0, proximal_decay=True),
     "adan: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.adan(-1e-3, proximal_decay=True), "adan: learning_rate must be >= 0, got -0.001"),
    (lambda: gx.adan(1e-3, b3=0.999, accumulator_dtype=jnp.bfloat16),
     "adan: b3=0.999 rounds to 1.0 in accumulator_dtype=bfloat16"),
    (lambda: gx.adopt(1e-3, b1=1.0), "adopt: b1 must be in [0, 1), got 1.0"),
    (lambda: gx.adopt(1e-3, b2=1.0), "adopt: b2 must be in [0, 1), got 1.0"),
    (lambda: gx.adopt(1e-3, eps=0.0), "adopt: eps must be > 0, got 0.0"),
    (lambda: gx.adopt(1e-3, clip_exponent=-0.25), "adopt: clip_exponent must be >= 0, got -0.25"),
    (lambda: gx.adoptw(1e-3, weight_decay=-1.0), "adoptw: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.ademamix(1e-3, b3=1.0), "ademamix: b3 must be in [0, 1), got 1.0"),
    (lambda: gx.ademamix(1e-3, alpha=-1.0), "ademamix: alpha must be >= 0, got -1.0"),
    (lambda: gx.ademamix(1e-3, b2=1.0), "ademamix: b2 must be in [0, 1), got 1.0"),
    (lambda: gx.ademamix(1e-3, eps=0.0), "ademamix: eps must be > 0, got 0.0"),
    (lambda: gx.ademamix(1e-3, weight_decay=-1.0), "ademamix: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.ademamix(1e-3, mu_dtype=jnp.bfloat16),
     "ademamix: b3=0.9999 rounds to 1.0 in mu_dtype=bfloat16"),
    (lambda: gx.ademamix_alpha_schedule(-1.0, 10),
     "ademamix_alpha_schedule: alpha must be >= 0, got -1.0"),
    (lambda: gx.ademamix_alpha_schedule(5.0, 2.5),
     "ademamix_alpha_schedule: warmup_steps must be a whole number, got 2.5"),
    (lambda: gx.ademamix_b3_schedule(1.0, 10),
     "ademamix_b3_schedule: b3 must be in (0, 1), got 1.0"),
    (lambda: gx.ademamix_b3_schedule(0.999, -1),
     "ademamix_b3_schedule: warmup_steps must be >= 0, got -1"),
    (lambda: gx.ademamix_b3_schedule(0.999, 10, b_start=0.0),
     "ademamix_b3_schedule: b_start must be in (0, 1), got 0.0"),
    (lambda: gx.adadelta(-1.0), "adadelta: learning_rate must be >= 0, got -1.0"),
    (lambda: gx.adadelta(1.0, rho=1.0), "adadelta: rho must be in [0, 1), got 1.0"),
    (lambda: gx.adadelta(1.0, eps=0.0), "adadelta: eps must be > 0, got 0.0"),
    (lambda: gx.adadelta(1.0, weight_decay=-1.0), "adadelta: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.rprop(0.0), "rprop: learning_rate must be > 0, got 0.0"),
    (lambda: gx.rprop(0.1, eta_minus=0.0), "rprop: eta_minus must be in (0, 1], got 0.0"),
    (lambda: gx.rprop(0.1, eta_minus=1.5), "rprop: eta_minus must be in (0, 1], got 1.5"),
    (lambda: gx.rprop(0.1, eta_plus=0.9), "rprop: eta_plus must be >= 1, got 0.9"),
    (lambda: gx.rprop(0.1, min_step_size=-1.0), "rprop: min_step_size must be >= 0, got -1.0"),
    (lambda: gx.rprop(0.1, max_step_size=-1.0), "rprop: max_step_size must be >= 0, got -1.0"),
    (lambda: gx.rprop(0.1, min_step_size=1.0, max_step_size=0.5),
     "rprop: max_step_size must be >= min_step_size (1.0), got 0.5"),
    (lambda: gx.proximal_weight_decay(-0.1), "proximal_weight_decay: learning_rate must be >= 0, "
     "got -0.1"),
    (lambda: gx.proximal_weight_decay(0.1, -0.1),
     "proximal_weight_decay: weight_decay must be >= 0, got -0.1"),
]


@pytest.mark.parametrize("build, message", RANGE_CHECKS,
                         ids=[m.split(" must")[0].split(" is ")[0].split(" rounds")[0]
                              for _, m in RANGE_CHECKS])
def test_range_checks(build, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


# ---------------------------------------------------------------------------------------------
# Values: equal configs compare equal, every float hyperparameter is data.

FACTORIES = [gx.amsgrad, gx.nadam, gx.nadamw, gx.radam, gx.adamax, gx.adamaxw, gx.adabelief,
             gx.yogi, gx.adan, gx.adopt, gx.adoptw, gx.ademamix, gx.adadelta, gx.rprop]


@pytest.mark.parametrize("factory", FACTORIES, ids=[f.__name__ for f in FACTORIES])
def test_values_compare_by_content(factory):
    assert factory(1e-3) == factory(1e-3)
    assert hash(factory(1e-3)) == hash(factory(1e-3))
    assert factory(1e-3) != factory(2e-3)
    assert f"name='{factory.__name__}'" in repr(factory(1e-3))


@pytest.mark.parametrize("factory", FACTORIES, ids=[f.__name__ for f in FACTORIES])
def test_changing_any_float_hyperparameter_does_not_retrace(factory):
    """Every float hyperparameter (not only the learning rate) is a leaf: scaling all of them
    gives the same program."""
    from helpers import TraceCounter

    params = {"w": jnp.asarray([1.0, -2.0, 0.5])}

    def step(tx, p):
        state = tx.init(p)
        u, state = tx.update(jax.tree.map(lambda x: 2 * x, p), state, p)
        return gx.apply_updates(p, u), state

    counter = TraceCounter(step)
    jitted = jax.jit(counter)
    tx = factory(1e-2)
    leaves = jax.tree.leaves(tx)
    assert leaves and all(isinstance(x, float) for x in leaves), leaves
    for scale in (1.0, 0.9, 0.8):
        jax.block_until_ready(jitted(jax.tree.map(lambda x, s=scale: x * s, tx), params))
    assert counter.count == 1
