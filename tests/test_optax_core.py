"""optax's core names in gradxform, beyond the step-by-step parity of
``test_parity_optax_core.py``: the functions (per-example clipping, skip predicates, target
networks, tree math, safe norms, power iteration, inverse p-th roots, the diagonal Gaussian)
against optax, scipy and NumPy; the validation messages; the state contract (same structure at
every step, no shared buffers, abstract init); the dtype policy; and behaviour optax cannot
show (the inner clock of the conditional wrappers, the measurements reader)."""

from __future__ import annotations

import contextlib
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

import gradxform as gx
from helpers import assert_trees_close, nested_params, standard_promotion


@contextlib.contextmanager
def as_optax():
    """optax under its own rules: standard dtype promotion, rank promotion allowed."""
    with standard_promotion(), jax.numpy_rank_promotion("allow"):
        yield


RNG = np.random.default_rng(0)
PER_EXAMPLE = {"w": jnp.asarray(RNG.normal(size=(6, 3, 2)), jnp.float32),
               "b": [jnp.asarray(RNG.normal(size=(6,)) * 3, jnp.float32)]}


# --------------------------------------------------------------------------------------------
# Per-example clipping.


CLIPS = jnp.asarray([0.0, 1.0, 2.5, np.inf], jnp.float32)


def test_per_example_clipping_matches_optax():
    def all_of(global_clip, layer_clip):
        return [(global_clip(PER_EXAMPLE, c), layer_clip(PER_EXAMPLE, c, True),
                 layer_clip(PER_EXAMPLE, c, False)) for c in CLIPS]

    mine = jax.jit(lambda: all_of(gx.per_example_global_norm_clip,
                                  gx.per_example_layer_norm_clip))()
    with as_optax():
        theirs = jax.jit(lambda: all_of(optax.per_example_global_norm_clip,
                                        optax.per_example_layer_norm_clip))()
    for c, m, t in zip(CLIPS, mine, theirs):
        for (m_sum, m_count), (t_sum, t_count) in zip(m, t):
            assert_trees_close(m_sum, t_sum, rtol=1e-6, atol=1e-7, what=f"clip {c}")
            assert jax.tree.map(int, m_count) == jax.tree.map(int, t_count), f"clip {c}"


def test_per_example_global_norm_clip_by_hand():
    grads = [jnp.asarray([[0, 0, 0], [0, 3, 4], [4, 0, 3], [3, 4, 0]], jnp.float32)]
    summed, clipped = gx.per_example_global_norm_clip(grads, 1.25)
    # each nonzero example has norm 5 and is scaled by 1.25 / 5 = 0.25
    np.testing.assert_allclose(summed[0], 0.25 * np.asarray([7, 7, 7]), rtol=1e-7)
    assert int(clipped) == 3


def test_per_example_clipping_bfloat16_sums_in_float32():
    grads = jax.tree.map(lambda x: x.astype(jnp.bfloat16), PER_EXAMPLE)
    summed, _ = gx.per_example_global_norm_clip(grads, 1.0)
    reference, _ = gx.per_example_global_norm_clip(
        jax.tree.map(lambda x: x.astype(jnp.float32), grads), 1.0)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(summed))
    assert_trees_close(summed, jax.tree.map(lambda x: x.astype(jnp.bfloat16), reference),
                       rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# Skip predicates, target networks.


def test_skip_predicates_match_optax():
    updates = {"a": jnp.asarray([1.0, jnp.inf, 2.0]), "b": jnp.asarray([[jnp.nan, 1.0]])}
    finite = jax.tree.map(jnp.nan_to_num, updates)
    small = {"a": jnp.asarray([0.1, 0.2]), "b": jnp.asarray([[0.3, 0.0]])}

    def all_of(not_finite, large):
        return ([not_finite(u, jnp.asarray(3), None) for u in (updates, finite)]
                + [large(u, 0, None, max_squared_norm=c) for u in (small, finite)
                   for c in (0.01, 1.0)])

    mine = jax.jit(lambda: all_of(gx.skip_not_finite, gx.skip_large_updates))()
    theirs = jax.jit(lambda: all_of(optax.skip_not_finite, optax.skip_large_updates))()
    assert [bool(m[0]) for m in mine] == [bool(t[0]) for t in theirs] == [
        True, False, True, False, True, True]
    assert_trees_close([m[1] for m in mine], [t[1] for t in theirs], rtol=1e-6, atol=0)


def test_target_network_helpers_match_optax():
    new, old = nested_params(seed=1), nested_params(seed=2)
    mine = jax.jit(lambda: gx.incremental_update(new, old, 0.005))()
    with as_optax():
        theirs = jax.jit(lambda: optax.incremental_update(new, old, 0.005))()
    assert_trees_close(mine, theirs, rtol=0, atol=0)
    assert mine["unused"] is None
    periodic = jax.jit(lambda t: gx.periodic_update(new, old, t, 5))
    for steps in (0, 3, 10):
        mine = periodic(steps)
        expected = new if steps % 5 == 0 else old
        assert_trees_close(mine, expected, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# Tree math and numerics.


def test_tree_math_matches_optax():
    g, m = nested_params(seed=3), nested_params(seed=4)
    v = jax.tree.map(jnp.abs, m)

    def all_of(update_moment, per_elem_norm, infinity_moment, bias_correction):
        return (update_moment(g, m, 0.9, 1), per_elem_norm(g, v, 0.99, 2),
                infinity_moment(g, v, 0.99, 1e-8), bias_correction(m, 0.9, jnp.asarray(7)))

    mine = jax.jit(lambda: all_of(gx.update_moment, gx.update_moment_per_elem_norm,
                                  gx.update_infinity_moment, gx.bias_correction))()
    with as_optax():
        tu = optax.tree_utils
        theirs = jax.jit(lambda: all_of(tu.tree_update_moment, tu.tree_update_moment_per_elem_norm,
                                        tu.tree_update_infinity_moment,
                                        tu.tree_bias_correction))()
    assert_trees_close(mine, theirs, rtol=1e-6, atol=0)
    # a Python int count, as optax accepts: the same numbers as an array count (both eager;
    # jit may fuse the division differently, by an ulp)
    assert_trees_close(gx.bias_correction(m["dense"], 0.9, 7),
                       gx.bias_correction(m["dense"], 0.9, jnp.asarray(7)), rtol=0, atol=0)


def test_safe_increment():
    top = jnp.asarray(np.iinfo(np.int32).max, jnp.int32)
    assert int(gx.safe_increment(top)) == int(top)
    assert int(gx.safe_int32_increment(jnp.asarray(4, jnp.int32))) == 5
    assert int(gx.safe_increment(4)) == 5
    assert float(gx.safe_increment(jnp.asarray(1.5, jnp.float32))) == 2.5
    big = jnp.asarray(np.finfo(np.float32).max, jnp.float32)
    assert float(gx.safe_increment(big)) == float(big)
    with pytest.raises(TypeError, match="safe_increment: count must be an integer or "):
        gx.safe_increment(jnp.asarray(True))


def test_safe_norms_match_optax_and_have_zero_derivative_at_zero():
    x = jnp.asarray(RNG.normal(size=(3, 4)), jnp.float32)

    def all_of(safe_norm, safe_rms):
        return (safe_norm(x, 0.5), safe_norm(x, 0.5, axis=1), safe_norm(x, 0.5, 1, 0, True),
                safe_rms(x, 0.1), safe_norm(x, 10.0, axis=0))

    mine = jax.jit(lambda: all_of(gx.safe_norm, gx.safe_root_mean_squares))()
    with as_optax():
        theirs = jax.jit(lambda: all_of(optax.safe_norm, optax.safe_root_mean_squares))()
    assert_trees_close(mine, theirs, rtol=1e-6, atol=0)

    @jax.jit
    def at_zero(v):
        return (gx.safe_norm(v, 1e-3), jax.grad(lambda v: gx.safe_norm(v, 1e-3))(v),
                jax.grad(lambda v: gx.safe_root_mean_squares(v, 1e-3))(v))

    value, grad_norm, grad_rms = at_zero(jnp.zeros(3))
    assert float(value) == pytest.approx(1e-3)
    np.testing.assert_array_equal(grad_norm, np.zeros(3))
    np.testing.assert_array_equal(grad_rms, np.zeros(3))


# --------------------------------------------------------------------------------------------
# Linear algebra and the Gaussian.

SPD = jnp.asarray((lambda a: a @ a.T + 0.1 * np.eye(8))(RNG.normal(size=(8, 8))), jnp.float32)


def test_power_iteration_matches_optax_and_numpy():
    eig, vec = gx.power_iteration(SPD)
    with as_optax():
        their_eig, their_vec = optax.power_iteration(SPD)
    np.testing.assert_allclose(eig, their_eig, rtol=1e-6)
    np.testing.assert_allclose(vec, their_vec, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(eig, np.linalg.eigvalsh(np.asarray(SPD, np.float64))[-1],
                               rtol=1e-5)
    # a product function on a tree
    eig_fn, vec_fn = gx.power_iteration(lambda v: {"x": SPD @ v["x"]}, v0={"x": jnp.ones(8)})
    np.testing.assert_allclose(eig_fn, eig, rtol=1e-5)
    assert set(vec_fn) == {"x"}


def test_matrix_inverse_pth_root():
    eig = float(gx.power_iteration(SPD)[0])
    mine = jax.jit(lambda: [gx.matrix_inverse_pth_root(SPD, p) for p in (1, 2, 3)])()
    with as_optax():
        theirs = jax.jit(lambda: [optax.matrix_inverse_pth_root(SPD, p)[0] for p in (1, 2, 3)])()
    for p, (root, error), their_root in zip((1, 2, 3), mine, theirs):
        exact = scipy.linalg.fractional_matrix_power(
            np.asarray(SPD, np.float64) + 1e-6 * eig * np.eye(8), -1.0 / p)
        np.testing.assert_allclose(root, exact, rtol=0, atol=5e-5 * np.max(np.abs(exact)))
        assert float(error) < 1e-5
        if p != 3:  # optax forms T^p only for p in 1, 2, 4, 8
            np.testing.assert_allclose(root, their_root, rtol=1e-6, atol=1e-7)
        else:  # p = 3: optax computes with T^4 and is far from the root (a known optax bug)
            assert np.max(np.abs(np.asarray(their_root) - exact)) > 0.1 * np.max(np.abs(exact))


def test_multi_normal_matches_optax():
    loc, log_scale = jnp.asarray([0.5, -1.0, 2.0]), jnp.asarray([0.0, 0.3, -0.7])
    key = jax.random.key(0)

    def draw_and_score(make):
        d = make(loc, log_scale)
        draws = d.sample((4,), key)
        return draws, d.log_prob(draws)

    mine = jax.jit(lambda: draw_and_score(gx.multi_normal))()
    with as_optax():
        theirs = jax.jit(lambda: draw_and_score(optax.multi_normal))()
    assert_trees_close(mine, theirs, rtol=1e-6, atol=1e-6, leaf_scale=True)
    d = gx.multi_normal(loc, log_scale)
    assert [x.shape for x in d.params] == [(3,), (3,)]
    assert jax.tree.leaves(d) == d.params


# --------------------------------------------------------------------------------------------
# The protocol helpers.


def test_protocol_helpers():
    tx = gx.adam(1e-3)
    assert gx.with_extra_args_support(tx) is tx
    wrapped = gx.with_extra_args_support(optax.sgd(0.1))
    params = {"w": jnp.ones(2)}
    with as_optax():
        u, _ = wrapped.update(params, wrapped.init(params), params, anything=1)
    np.testing.assert_allclose(u["w"], -0.1 * np.ones(2))
    assert gx.init_empty_state(params) == gx.EmptyState() and not jax.tree.leaves(gx.EmptyState())
    halve = gx.stateless_with_tree_map(lambda u, p: u / 2 if p is None else u - p)
    state = halve.init(params)
    np.testing.assert_allclose(halve.update(params, state)[0]["w"], 0.5 * np.ones(2))
    np.testing.assert_allclose(halve.update(params, state, params)[0]["w"], np.zeros(2))
    assert gx.ScaleByRStdDevState is gx.ScaleByStddevState
    assert gx.ScaleBySM3State is gx.ScaleBySm3State and gx.FactoredState is gx.FactoredRmsState
    assert isinstance(gx.sgd(0.1), gx.GradientTransformationExtraArgs)
    assert isinstance(gx.scale_by_stddev().init(params).inner, gx.ScaleByRStdDevState)


def test_scale_by_schedule_is_scale_with_a_schedule():
    schedule = gx.linear_schedule(1.0, 0.0, 10)
    assert gx.scale_by_schedule(schedule) == gx.scale(schedule)
    assert gx.scale_by_stddev(0.8) == gx.scale_by_rms(0.8, centered=True)


def test_selective_transform_keeps_no_state_for_frozen_leaves():
    params = {"frozen": jnp.ones(3), "trained": jnp.ones(2)}
    tx = gx.selective_transform(gx.adam(1e-2), freeze_mask={"frozen": True, "trained": False})
    state = tx.init(params)
    assert [x.shape for x in jax.tree.leaves(state.inner[0].mu)] == [(2,)]
    updates, _ = tx.update(params, state, params)
    np.testing.assert_array_equal(updates["frozen"], np.zeros(3))
    everything = gx.selective_transform(gx.sgd(0.1), freeze_mask=True)
    np.testing.assert_array_equal(everything.update(params, everything.init(params))[0]["trained"],
                                  np.zeros(2))


# --------------------------------------------------------------------------------------------
# Behaviour optax cannot show.


def test_conditional_wrappers_run_the_inner_transformation_on_its_own_clock():
    params = {"w": jnp.ones(2)}
    every_third = gx.conditionally_mask(gx.adam(0.1), lambda t: t % 3 == 0)
    plain = gx.adam(0.1)
    s_cond, s_plain = every_third.init(params), plain.init(params)
    step_cond, step_plain = jax.jit(every_third.update), jax.jit(plain.update)
    grads = [{"w": jnp.asarray([0.1 * (t + 1), -1.0])} for t in range(7)]
    for t, g in enumerate(grads):
        u, s_cond = step_cond(g, s_cond, params)
        if t % 3 == 0:
            expected, s_plain = step_plain(g, s_plain, params)
            np.testing.assert_allclose(u["w"], expected["w"], rtol=1e-6)
        else:
            np.testing.assert_array_equal(u["w"], np.zeros(2))
    assert int(s_cond.inner.skipped) == 4 and int(s_cond.count) == 7


def test_conditionally_transform_passes_updates_through_and_forwards_extra_args():
    tx = gx.conditionally_transform(gx.scale(3.0), lambda t, flag: flag, forward_extra_args=True)
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    u, state = tx.update(params, state, flag=jnp.asarray(False))
    np.testing.assert_array_equal(u["w"], np.ones(2))
    u, state = tx.update(params, state, flag=jnp.asarray(True))
    np.testing.assert_array_equal(u["w"], 3 * np.ones(2))


def test_measurements_reader():
    tx = gx.chain(gx.snapshot("raw", gx.global_norm), gx.clip_by_global_norm(1.0),
                  gx.monitor({"clipped": gx.global_norm,
                              "ema": gx.measure_with_ema(gx.global_norm, 0.5)}))
    params = {"w": jnp.asarray([3.0, 4.0])}
    state = tx.init(params)
    assert {k: float(v) for k, v in gx.measurements(tx, state).items()} == {
        "raw": 0.0, "clipped": 0.0, "ema": 0.0}
    _, new = jax.jit(tx.update)(params, state, params)
    assert jax.tree.structure(new) == jax.tree.structure(state)
    found = gx.measurements(tx, new)
    np.testing.assert_allclose([found["raw"], found["clipped"], found["ema"]], [5.0, 1.0, 1.0],
                               rtol=1e-6)
    assert gx.hyperparams(tx, new)["decay"] == 0.5
    twice = gx.chain(gx.snapshot("n", gx.global_norm), gx.snapshot("n", gx.global_norm))
    with pytest.raises(ValueError, match="measurements: chain stores two measurements named 'n'"):
        gx.measurements(twice, twice.init(params))


def test_measure_with_ema_of_a_bool_is_a_float_fraction():
    tx = gx.monitor({"big": gx.measure_with_ema(lambda u: gx.global_norm(u) > 1.0, 0.5,
                                                debias=False)})
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    for grads in ({"w": jnp.full(2, 2.0)}, {"w": jnp.full(2, 0.1)}):
        _, state = tx.update(grads, state)
    assert float(gx.measurements(tx, state)["big"]) == pytest.approx(0.25)


def test_dog_with_abstract_init_takes_x0_from_the_first_update():
    params = {"w": jnp.asarray([1.0, -2.0]), "b": jnp.asarray(0.5)}
    tx = gx.scale_by_distance_over_gradients(1e-2)
    abstract = tx.init(jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params))
    concrete = tx.init(params)
    assert jax.tree.structure(abstract) == jax.tree.structure(concrete)
    grads = {"w": jnp.asarray([0.3, 0.1]), "b": jnp.asarray(-0.2)}
    u_abstract, s_abstract = tx.update(grads, abstract, params)
    u_concrete, s_concrete = tx.update(grads, concrete, params)
    assert_trees_close(u_abstract, u_concrete, rtol=0, atol=0)
    assert_trees_close(s_abstract.inner, s_concrete.inner, rtol=0, atol=0)


def test_keep_params_nonnegative_projects_onto_the_orthant():
    tx = gx.chain(gx.sgd(1.0), gx.keep_params_nonnegative())
    params = {"w": jnp.asarray([0.5, 2.0, -1.0])}
    u, _ = tx.update({"w": jnp.asarray([1.0, 1.0, 0.0])}, tx.init(params), params)
    np.testing.assert_array_equal(gx.apply_updates(params, u)["w"], [0.0, 1.0, 0.0])


# --------------------------------------------------------------------------------------------
# The state contract and the dtype policy, for every new stateful transformation.

STATEFUL = {
    "zero_nans": lambda: gx.zero_nans(),
    "apply_every": lambda: gx.apply_every(2),
    "scale_by_optimistic_gradient": lambda: gx.scale_by_optimistic_gradient(),
    "scale_by_distance_over_gradients": lambda: gx.scale_by_distance_over_gradients(),
    "conditionally_mask": lambda: gx.conditionally_mask(gx.scale_by_adam(), lambda t: t > 0),
    "conditionally_transform": lambda: gx.conditionally_transform(gx.trace(0.9),
                                                                  lambda t: t > 0),
    "snapshot": lambda: gx.snapshot("n", gx.global_norm),
    "monitor": lambda: gx.monitor({"n": gx.global_norm,
                                   "e": gx.measure_with_ema(gx.global_norm, 0.9)}),
    "optimistic_adam": lambda: gx.optimistic_adam(1e-3),
}
STATELESS = {
    "keep_params_nonnegative": lambda: gx.keep_params_nonnegative(),
    "centralize": lambda: gx.centralize(),
    "adaptive_grad_clip": lambda: gx.adaptive_grad_clip(0.1),
    "scale_by_param_block_norm": lambda: gx.scale_by_param_block_norm(),
    "normalize_by_update_norm": lambda: gx.normalize_by_update_norm(),
    "stateless_with_tree_map": lambda: gx.stateless_with_tree_map(lambda u, p: u),
}


CONTRACT_PARAMS = jax.tree.map(lambda p: jnp.abs(p).astype(jnp.bfloat16),
                               {"w": nested_params()["dense"]["w"],
                                "b": nested_params()["blocks"][1]})


@functools.cache
def _two_steps_of_all():
    """For every transformation above: its initial state (built eagerly), and two updates of
    bfloat16 params (all of them in one jitted program)."""
    txs = {name: make() for name, make in {**STATEFUL, **STATELESS}.items()}
    states = {name: tx.init(CONTRACT_PARAMS) for name, tx in txs.items()}

    @jax.jit
    def two_steps(states):
        out = {}
        for name, tx in txs.items():
            u, new = tx.update(CONTRACT_PARAMS, states[name], CONTRACT_PARAMS)
            u, newer = tx.update(u, new, CONTRACT_PARAMS)
            out[name] = (u, new, newer)
        return out

    return states, two_steps(states)


@pytest.mark.parametrize("name", list(STATEFUL) + list(STATELESS))
def test_state_contract_and_bfloat16_updates(name):
    initial, stepped = _two_steps_of_all()
    state = initial[name]
    updates, new, newer = stepped[name]
    for a, b in ((state, new), (new, newer)):
        assert jax.tree.structure(a) == jax.tree.structure(b)
        assert [(x.shape, x.dtype) for x in jax.tree.leaves(a)] == [
            (x.shape, x.dtype) for x in jax.tree.leaves(b)]
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))
    float_state = [x for x in jax.tree.leaves(state.inner)
                   if jnp.issubdtype(x.dtype, jnp.floating) and x.ndim > 0]
    assert all(x.dtype == jnp.float32 for x in float_state), name
    pointers = [x.unsafe_buffer_pointer() for x in jax.tree.leaves(state)]
    assert len(set(pointers)) == len(pointers), f"{name}: two state leaves share a buffer"


# --------------------------------------------------------------------------------------------
# Validation: every check at construction, naming the call and the argument.

def _update_once(tx):
    params = {"w": jnp.ones(1)}
    return tx.update(params, tx.init(params), params)


RANGE_CHECKS = [
    (lambda: gx.adaptive_grad_clip(0.0), "adaptive_grad_clip: clipping must be > 0, got 0.0"),
    (lambda: gx.adaptive_grad_clip(0.1, eps=-1.0),
     "adaptive_grad_clip: eps must be >= 0, got -1.0"),
    (lambda: gx.scale_by_param_block_norm(0.0),
     "scale_by_param_block_norm: min_scale must be > 0, got 0.0"),
    (lambda: gx.normalize_by_update_norm(eps=0.0),
     "normalize_by_update_norm: eps must be > 0, got 0.0"),
    (lambda: gx.normalize_by_update_norm(np.inf),
     "normalize_by_update_norm: scale_factor must be finite, got inf"),
    (lambda: gx.scale_by_stddev(decay=1.0), "scale_by_stddev: decay must be in [0, 1), got 1.0"),
    (lambda: gx.scale_by_stddev(eps=0.0), "scale_by_stddev: eps must be > 0, got 0.0"),
    (lambda: gx.scale_by_distance_over_gradients(0.0),
     "scale_by_distance_over_gradients: reps_rel must be > 0, got 0.0"),
    (lambda: gx.scale_by_distance_over_gradients(eps=-1e-8),
     "scale_by_distance_over_gradients: eps must be > 0, got -1e-08"),
    (lambda: gx.apply_every(0), "apply_every: k must be >= 1, got 0"),
    (lambda: gx.apply_every(2.5), "apply_every: k must be a whole number, got 2.5"),
    (lambda: gx.scale_by_optimistic_gradient(-1.0),
     "scale_by_optimistic_gradient: alpha must be >= 0, got -1.0"),
    (lambda: gx.scale_by_optimistic_gradient(beta=-0.5),
     "scale_by_optimistic_gradient: beta must be >= 0, got -0.5"),
    (lambda: gx.optimistic_gradient_descent(-0.1),
     "optimistic_gradient_descent: learning_rate must be >= 0, got -0.1"),
    (lambda: gx.optimistic_gradient_descent(0.1, beta=-1.0),
     "optimistic_gradient_descent: beta must be >= 0, got -1.0"),
    (lambda: gx.optimistic_adam(1e-3, b1=1.0), "optimistic_adam: b1 must be in [0, 1), got 1.0"),
    # optimistic_adam passes learning_rate and optimism on as the link's alpha and beta
    (lambda: gx.optimistic_adam(-1e-3),
     "optimistic_adam: learning_rate must be >= 0, got -0.001"),
    (lambda: gx.optimistic_adam(1e-3, optimism=-1.0),
     "optimistic_adam: optimism must be >= 0, got -1.0"),
    (lambda: gx.optimistic_adam_v2(-1e-3),
     "optimistic_adam_v2: learning_rate must be >= 0, got -0.001"),
    (lambda: gx.optimistic_adam_v2(1e-3, alpha=-2.0),
     "optimistic_adam_v2: alpha must be >= 0, got -2.0"),
    (lambda: gx.measure_with_ema(gx.global_norm, 1.0),
     "measure_with_ema: decay must be in [0, 1), got 1.0"),
    (lambda: gx.per_example_global_norm_clip(PER_EXAMPLE, -1.0),
     "per_example_global_norm_clip: l2_norm_clip must be >= 0 (inf for no clipping), got -1.0"),
    (lambda: gx.per_example_layer_norm_clip(PER_EXAMPLE, np.nan),
     "per_example_layer_norm_clip: global_l2_norm_clip must be >= 0 (inf for no clipping), "
     "got nan"),
    (lambda: gx.per_example_global_norm_clip({"a": jnp.ones(3), "b": jnp.ones(())}, 1.0),
     "per_example_global_norm_clip: every leaf of grads needs a leading batch axis (one "
     "gradient per example, as jax.vmap(jax.grad(loss)) returns), but the leaf at ['b'] is a "
     "scalar"),
    (lambda: gx.per_example_global_norm_clip({"a": jnp.ones(3), "b": jnp.ones((4, 2))}, 1.0),
     "per_example_global_norm_clip: the leaves of grads have different batch sizes (leading "
     "axes): 3 at ['a'], 4 at ['b']"),
    (lambda: gx.incremental_update({"a": jnp.ones(1)}, {"a": jnp.ones(1)}, 1.5),
     "incremental_update: step_size must be in [0, 1], got 1.5"),
    (lambda: gx.periodic_update({"a": jnp.ones(1)}, {"a": jnp.ones(1)}, 3, 0),
     "periodic_update: update_period must be a whole number >= 1, got 0"),
    (lambda: gx.matrix_inverse_pth_root(SPD, 2.5),
     "matrix_inverse_pth_root: p must be a whole number >= 1 (a Python int), got 2.5"),
    (lambda: gx.matrix_inverse_pth_root(jnp.ones((2, 3)), 2),
     "matrix_inverse_pth_root: matrix must be square, got shape (2, 3)"),
    (lambda: gx.power_iteration(lambda v: v),
     "power_iteration: v0 is required when matrix is a function"),
    (lambda: gx.adaptive_grad_clip(0.1).init({"x": jnp.ones((2,) * 6)}),
     "adaptive_grad_clip: has no default units for the leaf at ['x'] of rank 6 (shape (2, 2, "
     "2, 2, 2, 2)); pass axis="),
    (lambda: gx.adaptive_grad_clip(0.1, axis=3).init({"x": jnp.ones((2, 2))}),
     "adaptive_grad_clip: axis=3 is out of range for the leaf at ['x'] of shape (2, 2)"),
    (lambda: gx.centralize(axis=(0, 2)).init({"x": jnp.ones((2, 2))}),
     "centralize: axis=(0, 2) is out of range for the leaf at ['x'] of shape (2, 2)"),
    (lambda: _update_once(gx.conditionally_mask(gx.sgd(0.1), lambda t: jnp.ones(2, bool))),
     "conditionally_mask: should_transform_fn must return a scalar, got shape (2,)"),
]

TYPE_CHECKS = [
    (lambda: gx.adaptive_grad_clip(0.1, axis="rows"),
     "adaptive_grad_clip: axis must be None, an int or a tuple of ints, got 'rows'"),
    (lambda: gx.centralize(axis=1.5),
     "centralize: axis must be None, an int or a non-empty tuple of ints, got 1.5"),
    (lambda: gx.scale_by_distance_over_gradients(gx.constant_schedule(1e-6)),
     "scale_by_distance_over_gradients: reps_rel must be a real number or an array, not "
     "constant_schedule(value=1e-06)"),
    (lambda: gx.apply_every(gx.constant_schedule(2)),
     "apply_every: k must be a whole number or an array, not constant_schedule(value=2)"),
    (lambda: gx.scale_by_schedule(0.1),
     "scale_by_schedule: step_size_fn must be a schedule (a function of the step count), "
     "got 0.1; for a constant factor use gx.scale(0.1)"),
    (lambda: gx.conditionally_mask(gx.sgd(0.1), "always"),
     "conditionally_mask: should_transform_fn must be a function of the step count, got "
     "'always'"),
    (lambda: gx.conditionally_transform(gx.sgd(0.1), bool, forward_extra_args=1),
     "conditionally_transform: forward_extra_args must be True or False, got 1"),
    (lambda: gx.snapshot("", gx.global_norm),
     "snapshot: measure_name must be a non-empty string, got ''"),
    (lambda: gx.snapshot("n", 3), "snapshot: measure must be a function of the updates, got 3"),
    (lambda: gx.monitor({}), "monitor: measures must be a non-empty dict {name: measure}, got {}"),
    (lambda: gx.monitor({"n": "norm"}),
     "monitor: measures must hold functions of the updates or transformations, got 'norm' for "
     "'n'"),
    (lambda: gx.stateless_with_tree_map(None), "stateless_with_tree_map: f must be callable, "
     "got None"),
    (lambda: gx.per_example_global_norm_clip(PER_EXAMPLE, "1.0"),
     "per_example_global_norm_clip: l2_norm_clip must be a real number or an array, got '1.0'"),
    (lambda: gx.per_example_layer_norm_clip(PER_EXAMPLE, 1.0, uniform="yes"),
     "per_example_layer_norm_clip: uniform must be a bool, got 'yes'"),
    (lambda: gx.keep_params_nonnegative().init({"z": jnp.ones(2, jnp.complex64)}),
     "keep_params_nonnegative: does not support complex params (got complex64 at ['z'])"),
]


@pytest.mark.parametrize("build, message", RANGE_CHECKS,
                         ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(RANGE_CHECKS)])
def test_range_checks(build, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


@pytest.mark.parametrize("build, message", TYPE_CHECKS,
                         ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(TYPE_CHECKS)])
def test_type_checks(build, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        build()


def test_keyword_only_arguments():
    for build in (lambda: gx.centralize(0), lambda: gx.apply_every(2, jnp.float32),
                  lambda: gx.scale_by_optimistic_gradient(1.0, 1.0, jnp.float32),
                  lambda: gx.normalize_by_update_norm(1.0, 1e-6, "data"),
                  lambda: gx.optimistic_adam_v2(1e-3, 1.0),
                  lambda: gx.selective_transform(gx.sgd(0.1), True),
                  functools.partial(gx.scale_by_param_block_norm, 1e-3, "data")):
        with pytest.raises(TypeError, match="positional argument"):
            build()


def test_per_example_clip_under_jit_with_a_python_number():
    grads = {"w": jnp.ones((4, 3)), "b": jnp.ones((4,))}
    eager = gx.per_example_global_norm_clip(grads, 0.5)
    jitted = jax.jit(lambda g: gx.per_example_global_norm_clip(g, 0.5))(grads)
    np.testing.assert_allclose(jitted[0]["w"], eager[0]["w"], rtol=1e-6)
    assert int(jitted[1]) == int(eager[1]) == 4
