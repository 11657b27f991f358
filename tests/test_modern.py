"""Behaviour of the modern optimizers beyond parity: argument checks (one per check, asserting
the message), conventions (Muon's leaf selection and axes, complex matrices, the zero-gradient
guard of the parameter-free methods), init from ``jax.ShapeDtypeStruct``, Schedule-Free's
evaluation params, SWATS's switch under jit/vmap, and lookahead's slow weights and clock."""

from __future__ import annotations

import math
import operator
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax.contrib as oc
import pytest

import gradxform as gx
from helpers import assert_trees_close, gradient_stream, nested_params, standard_promotion
from reference import muon as ref_muon
from targets import TARGETS

QUAD_INIT, QUAD_LOSS = TARGETS["quadratic"]

# -- argument checks ----------------------------------------------------------------------------

RANGE_CHECKS = [
    (lambda: gx.muon(-0.1), "muon: learning_rate must be >= 0, got -0.1"),
    (lambda: gx.muon(0.1, beta=1.0), "muon: beta must be in [0, 1), got 1.0"),
    (lambda: gx.muon(0.1, eps=0.0), "muon: eps must be > 0, got 0.0"),
    (lambda: gx.muon(0.1, weight_decay=-1.0), "muon: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.muon(0.1, adam_weight_decay=-1.0),
     "muon: adam_weight_decay must be >= 0, got -1.0"),
    (lambda: gx.muon(0.1, adam_learning_rate=-1.0),
     "muon: adam_learning_rate must be >= 0, got -1.0"),
    (lambda: gx.muon(0.1, adam_b1=1.0), "muon: adam_b1 must be in [0, 1), got 1.0"),
    (lambda: gx.muon(0.1, adam_b2=-0.5), "muon: adam_b2 must be in [0, 1), got -0.5"),
    (lambda: gx.muon(0.1, adam_eps_root=-1.0), "muon: adam_eps_root must be >= 0, got -1.0"),
    (lambda: gx.muon(0.1, consistent_rms=-0.2), "muon: consistent_rms must be >= 0, got -0.2"),
    (lambda: gx.muon(0.1, ns_steps=0), "muon: ns_steps must be a whole number >= 1, got 0"),
    (lambda: gx.muon(0.1, ns_coeffs=(1.0, 2.0)),
     "muon: ns_coeffs must have shape (3,) or (n, 3), got (2,)"),
    (lambda: gx.muon(0.1, ns_coeffs="dion", ns_steps=3),
     "muon: ns_coeffs has 5 rows (one per step) but ns_steps is 3; raise ns_steps to at least 5"),
    (lambda: gx.muon(0.1, ns_coeffs="jordan"),
     "muon: ns_coeffs must be a coefficient table or one of ['dion', 'standard'], got 'jordan'"),
    (lambda: gx.muon(0.1, ns_coeffs=(3.0, math.inf, 2.0)), "muon: ns_coeffs must be finite"),
    (lambda: gx.muon(0.1, preconditioning="polar"),
     "muon: preconditioning must be one of ('frobenius', 'spectral', 'aol', 'schatten'), "
     "got 'polar'"),
    (lambda: gx.muon(0.1, beta=0.999, mu_dtype=jnp.bfloat16),
     "muon: beta=0.999 rounds to 1.0 in mu_dtype=bfloat16"),
    (lambda: gx.schedule_free_sgd(-1.0), "schedule_free_sgd: learning_rate must be >= 0, got -1.0"),
    (lambda: gx.schedule_free_sgd(-1.0, warmup_steps=5),
     "schedule_free_sgd: learning_rate must be >= 0, got -1.0"),
    (lambda: gx.schedule_free_sgd(0.1, warmup_steps=2.5),
     "schedule_free_sgd: warmup_steps must be a whole number, got 2.5"),
    (lambda: gx.schedule_free_sgd(0.1, warmup_steps=-1),
     "schedule_free_sgd: warmup_steps must be >= 0, got -1"),
    (lambda: gx.schedule_free_sgd(0.1, b1=0.0), "schedule_free_sgd: b1 must be in (0, 1], got 0.0"),
    (lambda: gx.schedule_free_sgd(0.1, b1=1.5), "schedule_free_sgd: b1 must be in (0, 1], got 1.5"),
    (lambda: gx.schedule_free_sgd(0.1, weight_decay=-0.1),
     "schedule_free_sgd: weight_decay must be >= 0, got -0.1"),
    (lambda: gx.schedule_free_sgd(0.1, weight_lr_power=-2.0),
     "schedule_free_sgd: weight_lr_power must be >= 0, got -2.0"),
    (lambda: gx.schedule_free_adamw(0.1, b2=1.0),
     "schedule_free_adamw: b2 must be in [0, 1), got 1.0"),
    (lambda: gx.schedule_free_adamw(0.1, eps=0.0), "schedule_free_adamw: eps must be > 0, got 0.0"),
    (lambda: gx.schedule_free_adamw(0.1, weight_decay=-1.0),
     "schedule_free_adamw: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.schedule_free(gx.sgd(0.1), 0.1, b1=gx.linear_schedule(0.5, 0.9, 10)),
     "schedule_free: b1 must be a constant, not a schedule"),
    (lambda: gx.prodigy(-1.0), "prodigy: learning_rate must be >= 0, got -1.0"),
    (lambda: gx.prodigy(betas=(1.0, 0.999)), "prodigy: betas[0] must be in [0, 1), got 1.0"),
    (lambda: gx.prodigy(betas=(0.9, 1.0)), "prodigy: betas[1] must be in [0, 1), got 1.0"),
    (lambda: gx.prodigy(betas=(0.9,)), "prodigy: betas must be a pair (b1, b2), got (0.9,)"),
    (lambda: gx.prodigy(beta3=1.0), "prodigy: beta3 must be in [0, 1), got 1.0"),
    (lambda: gx.prodigy(eps=0.0), "prodigy: eps must be > 0, got 0.0"),
    (lambda: gx.prodigy(estim_lr0=0.0), "prodigy: estim_lr0 must be > 0, got 0.0"),
    (lambda: gx.prodigy(estim_lr_coef=0.0), "prodigy: estim_lr_coef must be > 0, got 0.0"),
    (lambda: gx.prodigy(weight_decay=-0.1), "prodigy: weight_decay must be >= 0, got -0.1"),
    (lambda: gx.prodigy(betas=(0.9, 0.999), accumulator_dtype=jnp.bfloat16),
     "prodigy: betas[1]=0.999 rounds to 1.0 in accumulator_dtype=bfloat16"),
    (lambda: gx.dadapt_adamw(-1.0), "dadapt_adamw: learning_rate must be >= 0, got -1.0"),
    (lambda: gx.dadapt_adamw(betas=(0.9, -0.1)),
     "dadapt_adamw: betas[1] must be in [0, 1), got -0.1"),
    (lambda: gx.dadapt_adamw(eps=-1.0), "dadapt_adamw: eps must be > 0, got -1.0"),
    (lambda: gx.dadapt_adamw(estim_lr0=-1e-6), "dadapt_adamw: estim_lr0 must be > 0, got -1e-06"),
    (lambda: gx.dadapt_adamw(weight_decay=-1.0),
     "dadapt_adamw: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.swats(-1.0), "swats: learning_rate must be >= 0, got -1.0"),
    (lambda: gx.swats(0.1, b1=1.0), "swats: b1 must be in [0, 1), got 1.0"),
    (lambda: gx.swats(0.1, b2=1.0), "swats: b2 must be in [0, 1), got 1.0"),
    (lambda: gx.swats(0.1, eps=0.0), "swats: eps must be > 0, got 0.0"),
    (lambda: gx.swats(0.1, eps_switch=0.0), "swats: eps_switch must be > 0, got 0.0"),
    (lambda: gx.lookahead(gx.adam(0.1), 0, 0.5), "lookahead: sync_period must be >= 1, got 0"),
    (lambda: gx.lookahead(gx.adam(0.1), 2.5, 0.5),
     "lookahead: sync_period must be a whole number, got 2.5"),
    (lambda: gx.lookahead(gx.adam(0.1), 5, 1.5),
     "lookahead: slow_step_size must be in [0, 1], got 1.5"),
]


@pytest.mark.parametrize("build, message", RANGE_CHECKS,
                         ids=[m.split(" must")[0].split("=")[0] + f"-{i}"
                              for i, (_, m) in enumerate(RANGE_CHECKS)])
def test_range_checks(build, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


def test_wrappers_reject_non_transformations():
    with pytest.raises(TypeError, match=re.escape("lookahead: fast_optimizer must be a "
                                                  "transformation")):
        gx.lookahead(0.1, 5, 0.5)
    with pytest.raises(TypeError, match=re.escape("schedule_free: base_optimizer must be a "
                                                  "transformation")):
        gx.schedule_free("sgd", 0.1)


def test_newton_schulz_argument_errors():
    where = "orthogonalize_via_newton_schulz: "
    with pytest.raises(ValueError, match=where + "x must be a matrix"):
        gx.orthogonalize_via_newton_schulz(jnp.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=where + "preconditioning must be one of"):
        gx.orthogonalize_via_newton_schulz(jnp.ones((2, 3)), preconditioning="qr")
    with pytest.raises(ValueError, match=where + "reduction and output axes must be disjoint"):
        gx.orthogonalize_via_newton_schulz(jnp.ones((2, 3, 4)),
                                           dimension_numbers=gx.MuonDimensionNumbers(1, -2))
    with pytest.raises(ValueError, match=where + r"Muon orthogonalises leaves of rank >= 2"):
        gx.orthogonalize_via_newton_schulz(jnp.ones(3),
                                           dimension_numbers=gx.MuonDimensionNumbers())


@pytest.mark.parametrize("factory", [gx.prodigy, gx.dadapt_adamw])
def test_parameter_free_reject_complex_params_by_name(factory):
    name = factory.__name__  # errors raised inside a link name the optimizer the user called
    with pytest.raises(TypeError, match=re.escape(f"{name}: does not support complex params "
                                                  "(got a leaf of dtype complex64)")):
        factory().init({"z": jnp.zeros(3, jnp.complex64)})
    with pytest.raises(TypeError, match="does not support complex params"):
        factory().init({"z": jax.ShapeDtypeStruct((3,), jnp.complex64)})


def test_parameter_free_need_params():
    tx = gx.prodigy()
    state = tx.init({"w": jnp.ones(2)})
    with pytest.raises(ValueError, match="prodigy: needs the current params"):
        tx.update({"w": jnp.ones(2)}, state)


# -- values -------------------------------------------------------------------------------------

def test_equal_configs_are_equal_values():
    assert gx.muon(0.02) == gx.muon(0.02) and hash(gx.muon(0.02)) == hash(gx.muon(0.02))
    assert gx.muon(0.02) != gx.muon(0.03)
    assert gx.muon(0.02, ns_coeffs="dion") != gx.muon(0.02)
    assert gx.schedule_free_adamw(1e-3) == gx.schedule_free_adamw(1e-3)
    assert gx.lookahead(gx.adam(1e-3), 5, 0.5) == gx.lookahead(gx.adam(1e-3), 5, 0.5)
    assert gx.prodigy() == gx.prodigy() and gx.prodigy() != gx.prodigy(bias_correction=False)


def test_hyperparams_are_readable():
    params = QUAD_INIT(jnp.float32)
    grads = jax.grad(QUAD_LOSS)(params)
    schedule = gx.linear_schedule(0.1, 0.0, 10)
    for tx, keys in [
        (gx.muon(schedule), {"learning_rate": 0.09, "beta": 0.95}),
        (gx.lookahead(gx.adam(schedule), 5, 0.5),
         {"learning_rate": 0.09, "sync_period": 5, "slow_step_size": 0.5, "b1": 0.9}),
        (gx.schedule_free_sgd(schedule, b1=0.8), {"learning_rate": 0.09, "b1": 0.8}),
        (gx.prodigy(schedule, betas=(0.8, 0.99)), {"learning_rate": 0.09, "b2": 0.99}),
        (gx.swats(schedule, eps_switch=1e-6), {"learning_rate": 0.09, "eps_switch": 1e-6}),
    ]:
        state = tx.init(params)
        _, state = jax.jit(tx.update)(grads, state, params)
        values = gx.hyperparams(tx, state)
        for key, expected in keys.items():
            np.testing.assert_allclose(values[key], expected, rtol=1e-6, err_msg=repr(tx))


# -- Muon conventions ---------------------------------------------------------------------------

def test_muon_sends_matrices_to_muon_and_the_rest_to_adam():
    params = nested_params()
    tx = gx.muon(0.02)
    state = tx.init(params)
    muon_mu = state.inner["muon"][0].mu
    adam_mu = state.inner["adam"][0].mu
    assert muon_mu["dense"]["w"].shape == (4, 3) and muon_mu["blocks"][0].shape == (2, 2)
    assert muon_mu["dense"]["b"] is None and muon_mu["scale"] is None
    assert adam_mu["dense"]["w"] is None and adam_mu["dense"]["b"].shape == (3,)
    # A matrix step is the orthogonalised Nesterov momentum times lr * sqrt(max(1, out/in)).
    grads = jax.tree.map(jnp.ones_like, params)
    g = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    grads["dense"]["w"] = jnp.asarray(g)
    updates, _ = tx.update(grads, state, params)
    expected = -0.02 * ref_muon.newton_schulz5(g.astype(np.float64), eps=1e-8)
    np.testing.assert_allclose(updates["dense"]["w"], expected, rtol=2e-5, atol=1e-7)
    wide = {"w": jnp.asarray(g.T)}  # 3 x 4: fan_out / fan_in = 4 / 3
    u, _ = gx.muon(0.02).update(wide, gx.muon(0.02).init(wide), wide)
    np.testing.assert_allclose(u["w"], math.sqrt(4 / 3) * expected.T, rtol=2e-5, atol=1e-7)


def test_muon_dimension_numbers_batch_axes_and_adam_leaves():
    rng = np.random.default_rng(1)
    params = {"conv": jnp.asarray(rng.normal(size=(2, 4, 3)), jnp.float32),
              "w": jnp.asarray(rng.normal(size=(3, 3)), jnp.float32)}
    dims = {"conv": gx.MuonDimensionNumbers(reduction_axis=1, output_axis=2), "w": None}
    tx = gx.muon(0.1, muon_weight_dimension_numbers=dims, nesterov=False)
    state = tx.init(params)
    assert state.inner["muon"][0].mu["w"] is None  # None sends the matrix to Adam
    assert state.inner["adam"][0].mu["w"].shape == (3, 3)
    updates, _ = tx.update(params, state, params)
    for i in range(2):  # axis 0 is a batch axis: each slice is orthogonalised on its own
        expected = -0.1 * gx.orthogonalize_via_newton_schulz(params["conv"][i])
        np.testing.assert_allclose(updates["conv"][i], expected, rtol=1e-6, atol=1e-7)
    same = gx.muon(0.1, muon_weight_dimension_numbers=lambda p: dims, nesterov=False)
    u2, _ = same.update(params, same.init(params), params)
    assert_trees_close(u2, updates, rtol=0, atol=0)


def test_newton_schulz_on_complex_matrices():
    rng = np.random.default_rng(2)
    g = rng.normal(size=(3, 5)) + 1j * rng.normal(size=(3, 5))
    mine = np.asarray(gx.orthogonalize_via_newton_schulz(jnp.asarray(g, jnp.complex64)))
    np.testing.assert_allclose(mine, ref_muon.newton_schulz5(g, eps=1e-8), rtol=1e-4,
                               atol=1e-5)
    s = np.linalg.svd(mine, compute_uv=False)
    assert 0.6 < s.min() and s.max() < 1.25


def test_muon_complex_matrix_params_descend():
    target = jnp.asarray(np.random.default_rng(4).normal(size=(3, 3)) * (1 + 1j), jnp.complex64)

    def loss(p):
        return jnp.sum(jnp.abs(p["w"] - target) ** 2) + jnp.sum(jnp.abs(p["b"] - 1j) ** 2)

    params = {"w": jnp.zeros((3, 3), jnp.complex64), "b": jnp.zeros(2, jnp.complex64)}
    tx = gx.muon(0.05)

    def body(carry, _):
        p, state = carry
        u, state = tx.update(jax.tree.map(jnp.conj, jax.grad(loss)(p)), state, p)
        return (gx.apply_updates(p, u), state), None

    # Steps of spectral size 0.05 towards entries of size ~1.
    final, _ = jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), None, length=80))(params)
    assert float(loss(final[0])) < 0.1 * float(loss(params))


# -- zero gradients -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["prodigy", "dadapt_adamw"])
def test_zero_first_gradients_keep_the_estimate(name):
    tx, ox = getattr(gx, name)(), getattr(oc, name)()
    params = {"w": jnp.ones(3)}
    zero, one = {"w": jnp.zeros(3)}, {"w": jnp.ones(3)}
    state = tx.init(params)
    _, state = tx.update(zero, state, params)
    assert float(state.inner[0].estim_lr) == pytest.approx(1e-6)
    u, state = tx.update(one, state, params)
    assert np.isfinite(np.asarray(u["w"])).all() and np.all(np.asarray(u["w"]) < 0)
    with standard_promotion():  # for the record: optax's estimate becomes 0/0 = NaN for good
        ox_state = ox.init(params)
        _, ox_state = ox.update(zero, ox_state, params)
        ox_u, _ = ox.update(one, ox_state, params)
    assert np.isnan(float(ox_state.estim_lr)) and np.isnan(np.asarray(ox_u["w"])).all()


# -- init from abstract params ------------------------------------------------------------------

ABSTRACT_CASES = [
    ("prodigy", lambda: gx.prodigy()),
    ("dadapt_adamw", lambda: gx.dadapt_adamw()),
    ("schedule_free_adamw", lambda: gx.schedule_free_adamw(1e-2)),
    ("schedule_free_sgd", lambda: gx.schedule_free_sgd(0.1)),
    ("lookahead", lambda: gx.lookahead(gx.prodigy(), 3, 0.5)),
    ("muon", lambda: gx.muon(0.02)),
    ("swats", lambda: gx.swats(0.01)),
]


@pytest.mark.parametrize("make", [c[1] for c in ABSTRACT_CASES], ids=[c[0] for c in ABSTRACT_CASES])
def test_init_from_shape_dtype_structs_then_train_like_concrete(make):
    tx = make()
    params = nested_params()
    abstract = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params)
    concrete_state, abstract_state = tx.init(params), tx.init(abstract)
    assert jax.tree.structure(abstract_state) == jax.tree.structure(concrete_state)
    for a, c in zip(jax.tree.leaves(abstract_state), jax.tree.leaves(concrete_state)):
        assert (a.shape, a.dtype) == (c.shape, c.dtype)
    grads = jax.tree.map(lambda *g: jnp.stack(g), *gradient_stream(params, 12))

    def body(carry, g):
        p, state = carry
        u, state = tx.update(g, state, p)
        return (gx.apply_updates(p, u), state), None

    @jax.jit
    def run(state):
        return jax.lax.scan(body, (params, state), grads)[0]

    p_concrete, s_concrete = run(concrete_state)
    p_abstract, s_abstract = run(abstract_state)
    # The copy of the initial point is taken at the first update: the same numbers.
    assert_trees_close(p_abstract, p_concrete, rtol=0, atol=0)
    assert_trees_close(s_abstract, s_concrete, rtol=0, atol=0)


def test_prodigy_takes_the_initial_point_at_the_first_update():
    params = {"w": jnp.asarray([1.0, -2.0])}
    tx = gx.prodigy()
    state = tx.init({"w": jax.ShapeDtypeStruct((2,), jnp.float32)})
    assert not bool(state.inner[0].params0_known)
    _, state = tx.update({"w": jnp.ones(2)}, state, params)
    assert bool(state.inner[0].params0_known)
    np.testing.assert_array_equal(state.inner[0].params0["w"], params["w"])


# -- Schedule-Free evaluation params ------------------------------------------------------------

def test_schedule_free_eval_params():
    params = nested_params(jnp.bfloat16)
    tx = gx.schedule_free_adamw(1e-2)
    state = tx.init(params)
    assert state.inner.z["dense"]["w"].dtype == jnp.float32  # z by the dtype policy
    x = gx.schedule_free_eval_params(state, params)  # before any step x = y = z
    assert_trees_close(x, params, rtol=0, atol=0)
    abstract = tx.init(jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params))
    assert_trees_close(gx.schedule_free_eval_params(abstract, params), params, rtol=0, atol=0)
    for g in gradient_stream(params, 5):
        u, state = tx.update(g, state, params)
        params = gx.apply_updates(params, u)
    x = jax.jit(gx.schedule_free_eval_params)(state, params)
    assert all(a.dtype == b.dtype for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(params)))
    # x is recovered from y and z: y = b1 x + (1 - b1) z.
    z = state.inner.z
    y_again = jax.tree.map(lambda xi, zi: 0.9 * xi.astype(jnp.float32) + 0.1 * zi, x, z)
    assert_trees_close(y_again, params, rtol=2e-2, atol=0)
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(x),
                                                           jax.tree.leaves(params)))
    # Inside a chain it is found too; without a schedule_free it is an error naming it.
    chained = gx.chain(gx.clip_by_global_norm(1.0), gx.schedule_free_sgd(0.1))
    s = chained.init(params)
    assert_trees_close(gx.schedule_free_eval_params(s, params), params, rtol=0, atol=0)
    with pytest.raises(ValueError, match="schedule_free_eval_params: the state holds no "
                                         "ScheduleFreeState"):
        gx.schedule_free_eval_params(gx.adam(0.1).init(params), params)


def test_schedule_free_x_beats_y_on_a_noisy_quadratic():
    """The average x is what the method promises: with noisy gradients it ends closer to the
    minimum than the interpolation y the gradients are taken at, and much closer than the
    base SGD iterate z."""
    rng = np.random.default_rng(0)
    noise = jnp.asarray(rng.normal(size=(400, 8)), jnp.float32)
    tx = gx.schedule_free_sgd(0.05, b1=0.9)
    params = {"w": jnp.ones(8)}

    def body(carry, n):
        p, s = carry
        u, s = tx.update({"w": p["w"] + n}, s, p)
        return (gx.apply_updates(p, u), s), None

    (params, state), _ = jax.lax.scan(body, (params, tx.init(params)), noise)
    x = gx.schedule_free_eval_params(state, params)
    x2, y2, z2 = (float(jnp.sum(v ** 2)) for v in (x["w"], params["w"], state.inner.z["w"]))
    assert x2 < y2 and x2 < 0.25 * z2, (x2, y2, z2)


# -- SWATS switching ----------------------------------------------------------------------------

def _swats_run(tx, steps=80):
    init, loss = TARGETS["quadratic"]

    def body(carry, _):
        p, s = carry
        u, s = tx.update(jax.grad(loss)(p), s, p)
        return (gx.apply_updates(p, u), s), s.inner[0].switched

    (p, s), flags = jax.lax.scan(body, (init(jnp.float32), tx.init(init(jnp.float32))), None,
                                 length=steps)
    return p, s, flags


def test_swats_switch_is_one_program_across_configurations():
    """Switching and non-switching configurations run as one vmapped program; each agrees with
    its own run."""
    configs = [gx.swats(0.05, eps_switch=1e-2), gx.swats(0.05, eps_switch=1e-9)]
    batched = jax.jit(jax.vmap(_swats_run))(gx.stack(configs))
    flags = np.asarray(batched[2])
    assert flags[0].any() and not flags[1].any()
    for i, tx in enumerate(configs):
        alone = jax.jit(_swats_run)(tx)
        assert_trees_close(jax.tree.map(operator.itemgetter(i), batched[0]), alone[0], rtol=1e-6,
                           atol=1e-7)


def test_swats_after_the_switch_is_sgd_at_the_learned_rate():
    tx = gx.swats(0.05, eps_switch=1e-2)
    _, state, flags = jax.jit(_swats_run)(tx)
    inner = state.inner[0]
    assert bool(inner.switched) and float(inner.sgd_rate) > 0
    params = QUAD_INIT(jnp.float32)
    grads = jax.grad(QUAD_LOSS)(params)
    u, new = tx.update(grads, state, params)
    b1, rate = 0.9, float(inner.sgd_rate)
    # v = b1 v + g;  u = -(1 - b1) Lambda v, whatever the learning rate now is.
    v = jax.tree.map(lambda m, g: b1 * m + g, inner.mu, grads)
    assert_trees_close(u, jax.tree.map(lambda vi: -(1 - b1) * rate * vi, v), rtol=1e-6)
    u_other_lr, _ = gx.swats(0.5, eps_switch=1e-2).update(grads, state, params)
    assert_trees_close(u_other_lr, u, rtol=0, atol=0)
    assert_trees_close(new.inner[0].nu, inner.nu, rtol=0, atol=0)  # Adam's moment is frozen
    assert float(new.inner[0].sgd_rate) == rate


# -- lookahead ----------------------------------------------------------------------------------

def test_lookahead_slow_weights_and_sync_clock():
    params = {"w": jnp.asarray([1.0, -1.0])}
    grads = {"w": jnp.asarray([0.5, 0.25])}
    tx = gx.lookahead(gx.sgd(0.1), sync_period=3, slow_step_size=0.5)
    state = tx.init(params)
    p = params
    for step in range(1, 7):
        u, state = tx.update(grads, state, p)
        p = gx.apply_updates(p, u)
        slow = gx.lookahead_slow_params(tx, state)
        if step % 3:  # fast steps: slow weights unchanged since the last sync
            assert not np.allclose(p["w"], slow["w"])
        else:  # sync: slow moves halfway to the fast weights, and the fast weights jump there
            np.testing.assert_allclose(p["w"], slow["w"], rtol=1e-6)
    # Two syncs of 3 SGD steps of -0.1 g each, halved: the slow weights moved by 2 * 0.15 g.
    np.testing.assert_allclose(slow["w"], params["w"] - 0.3 * grads["w"], rtol=1e-6)
    assert int(state.count) == 6


def test_lookahead_inner_optimizer_sees_every_step_and_resets():
    params = QUAD_INIT(jnp.float32)
    grads = jax.grad(QUAD_LOSS)(params)
    schedule = gx.linear_schedule(1.0, 0.0, 10)
    tx = gx.lookahead(gx.adam(schedule), sync_period=4, slow_step_size=0.5, reset_state=True)
    state = tx.init(params)
    for step in range(1, 5):
        _, state = tx.update(grads, state, params)
        values = gx.hyperparams(tx, state)
        np.testing.assert_allclose(values["learning_rate"], float(schedule(step)), rtol=1e-6)
        mu = state.inner.fast_state[0].mu["a"]
        if step < 4:
            assert np.abs(np.asarray(mu)).max() > 0
        else:  # the sync at the 4th step re-initialised Adam's state
            np.testing.assert_array_equal(mu, 0.0)


def test_lookahead_slow_params_helper():
    params = nested_params(jnp.bfloat16)
    tx = gx.chain(gx.clip_by_global_norm(1.0), gx.lookahead(gx.adam(1e-2), 5, 0.5))
    abstract = tx.init(jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params))
    slow = gx.lookahead_slow_params(tx, abstract, params)  # not known yet: the params
    assert_trees_close(slow, params, rtol=0, atol=0)
    assert all(a.dtype == jnp.bfloat16 for a in jax.tree.leaves(slow))
    concrete = tx.init(params)
    assert gx.lookahead_slow_params(tx, concrete)["dense"]["w"].dtype == jnp.float32
    with pytest.raises(ValueError, match="lookahead_slow_params: the optimizer 'sgd' contains "
                                         "no lookahead"):
        gx.lookahead_slow_params(gx.sgd(0.1), gx.sgd(0.1).init(params))
    with pytest.raises(TypeError, match="lookahead_slow_params: state must be the OptState"):
        gx.lookahead_slow_params(tx, {}, params)
