"""Behaviour of optax.contrib's optimizers beyond parity: argument checks (one per check,
asserting the message), the extra arguments of ``update`` and their errors, and each documented
difference from optax, against NumPy references written from the papers where there is one
(``tests/reference/sam.py``, ``dpsgd.py``, ``madgrad.py``)."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib as oc
import pytest

import gradxform as gx
from helpers import assert_trees_close, nested_params, standard_promotion
from reference import dpsgd as ref_dpsgd
from reference import madgrad as ref_madgrad
from reference import sam as ref_sam

# -- argument checks ----------------------------------------------------------------------------

RANGE_CHECKS = [
    (lambda: gx.sam(gx.sgd(0.1), sync_period=0),
     "sam: sync_period must be a whole number >= 1, got 0"),
    (lambda: gx.sam(gx.sgd(0.1), rho=-0.1), "sam: rho must be >= 0, got -0.1"),
    (lambda: gx.sam("sgd"), "sam: optimizer must be a transformation (gradxform or optax: an "
                            "object with init and update), got 'sgd'"),
    (lambda: gx.cocob(-1.0), "cocob: learning_rate must be >= 0, got -1.0"),
    (lambda: gx.cocob(alpha=0.0), "cocob: alpha must be > 0, got 0.0"),
    (lambda: gx.cocob(eps=0.0), "cocob: eps must be > 0, got 0.0"),
    (lambda: gx.cocob(weight_decay=-0.1), "cocob: weight_decay must be >= 0, got -0.1"),
    (lambda: gx.scale_by_cocob(alpha=-1.0), "scale_by_cocob: alpha must be > 0, got -1.0"),
    (lambda: gx.dog(-1.0), "dog: learning_rate must be >= 0, got -1.0"),
    (lambda: gx.dog(init_step=("guess", 1e-6)),
     "dog: init_step kind must be one of ('distance', 'learning_rate', 'heuristic'), "
     "got 'guess'"),
    (lambda: gx.dog(init_step=("distance", 0.0)), "dog: init_step value must be > 0, got 0.0"),
    (lambda: gx.dog(init_step=1e-6), "dog: init_step must be a pair (kind, value), got 1e-06"),
    (lambda: gx.dog(init_step=("distance", gx.constant_schedule(0.1))),
     "dog: init_step value must be a real number or an array (it is used once)"),
    (lambda: gx.dog(eps=-1.0), "dog: eps must be >= 0, got -1.0"),
    (lambda: gx.dog(weight_decay=-1.0), "dog: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.dowg(init_estim_sq_dist=0.0), "dowg: init_estim_sq_dist must be > 0, got 0.0"),
    (lambda: gx.dowg(eps=0.0), "dowg: eps must be > 0, got 0.0"),
    (lambda: gx.mechanize(gx.sgd(1.0), weight_decay=-1.0),
     "mechanize: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.mechanize(gx.sgd(1.0), eps=0.0), "mechanize: eps must be > 0, got 0.0"),
    (lambda: gx.mechanize(gx.sgd(1.0), s_init=0.0), "mechanize: s_init must be > 0, got 0.0"),
    (lambda: gx.mechanize(gx.sgd(1.0), num_betas=0),
     "mechanize: num_betas must be a whole number >= 1, got 0"),
    (lambda: gx.mechanize(None), "mechanize: base_optimizer must be a transformation"),
    (lambda: gx.momo(-1.0), "momo: learning_rate must be >= 0, got -1.0"),
    (lambda: gx.momo(beta=1.0), "momo: beta must be in [0, 1), got 1.0"),
    (lambda: gx.momo(lower_bound=math.inf), "momo: lower_bound must be finite, got inf"),
    (lambda: gx.momo(weight_decay=-1.0), "momo: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.momo_adam(b1=1.0), "momo_adam: b1 must be in [0, 1), got 1.0"),
    (lambda: gx.momo_adam(b2=-0.1), "momo_adam: b2 must be in [0, 1), got -0.1"),
    (lambda: gx.momo_adam(eps=0.0), "momo_adam: eps must be > 0, got 0.0"),
    (lambda: gx.madgrad(-0.1), "madgrad: learning_rate must be >= 0, got -0.1"),
    (lambda: gx.madgrad(0.1, momentum=1.0), "madgrad: momentum must be in [0, 1), got 1.0"),
    (lambda: gx.madgrad(0.1, weight_decay=-1.0), "madgrad: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.madgrad(0.1, eps=0.0), "madgrad: eps must be > 0, got 0.0"),
    (lambda: gx.sophia(0.1, b1=1.0), "sophia: b1 must be in [0, 1), got 1.0"),
    (lambda: gx.sophia(0.1, b2=1.0), "sophia: b2 must be in [0, 1), got 1.0"),
    (lambda: gx.sophia(0.1, gamma=0.0), "sophia: gamma must be > 0, got 0.0"),
    (lambda: gx.sophia(0.1, clip_threshold=0.0), "sophia: clip_threshold must be > 0, got 0.0"),
    (lambda: gx.sophia(0.1, update_interval=0), "sophia: update_interval must be >= 1, got 0"),
    (lambda: gx.sophia(0.1, update_interval=2.5),
     "sophia: update_interval must be a whole number, got 2.5"),
    (lambda: gx.sophia(0.1, verbose=True),
     "sophia: print_win_rate_every_n_steps must be >= 1 when verbose=True, got 0"),
    (lambda: gx.sophia(0.1, weight_decay=-1.0), "sophia: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.galore(0.1, rank=0), "galore: rank must be a whole number >= 1, got 0"),
    (lambda: gx.galore(0.1, rank=2.0), "galore: rank must be a whole number >= 1, got 2.0"),
    (lambda: gx.galore(0.1, update_proj_gap=0), "galore: update_proj_gap must be >= 1, got 0"),
    (lambda: gx.galore(0.1, base_optimizer=0.1),
     "galore: base_optimizer must be a transformation"),
    (lambda: gx.dpsgd(0.1, 0.0, 1.0), "dpsgd: l2_norm_clip must be > 0, got 0.0"),
    (lambda: gx.dpsgd(0.1, 1.0, -1.0), "dpsgd: noise_multiplier must be >= 0, got -1.0"),
    (lambda: gx.dpsgd(0.1, 1.0, 1.0, momentum=1.0), "dpsgd: momentum must be in [0, 1), got 1.0"),
    (lambda: gx.dpsgd(0.1, 1.0, 1.0, 0), "dpsgd: seed must be None, got 0"),
    (lambda: gx.acprop(0.1, b1=1.0), "acprop: b1 must be in [0, 1), got 1.0"),
    (lambda: gx.acprop(0.1, eps=0.0), "acprop: eps must be > 0, got 0.0"),
    (lambda: gx.acprop(0.1, eps_root=-1.0), "acprop: eps_root must be >= 0, got -1.0"),
    (lambda: gx.simplified_ademamix(0.1, b1=1.0),
     "simplified_ademamix: b1 must be in [0, 1), got 1.0"),
    (lambda: gx.simplified_ademamix(0.1, alpha=-1.0),
     "simplified_ademamix: alpha must be >= 0, got -1.0"),
    (lambda: gx.split_real_and_imaginary(3), "split_real_and_imaginary: inner must be a "
                                             "transformation"),
]


@pytest.mark.parametrize("build, message", RANGE_CHECKS,
                         ids=[m.split(":")[0] + "-" + m.split(" ")[1] for _, m in RANGE_CHECKS])
def test_argument_checks(build, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        build()


# -- extra arguments of update ------------------------------------------------------------------

QUAD = {"w": jnp.asarray([1.0, -2.0, 0.5]), "b": jnp.asarray([[0.3, -0.1], [0.2, 0.4]])}


def quad_loss(p):
    return 0.5 * jnp.sum(jnp.asarray([1.0, 3.0, 10.0]) * p["w"] ** 2) + jnp.sum(p["b"] ** 2)


MISSING_EXTRAS = [
    (gx.momo(), {}, "momo: value needs the current loss: call update(updates, state, params, "
                    "value=loss)"),
    (gx.momo_adam(), {"value": jnp.ones(2)},
     "momo_adam: value must be a scalar loss, got an array of shape (2,)"),
    (gx.sophia(0.1), {"key": jax.random.key(0)}, "sophia: obj_fn needs the objective"),
    (gx.sophia(0.1), {"obj_fn": quad_loss}, "sophia: key needs a PRNG key"),
    (gx.sophia(0.1), {"obj_fn": quad_loss, "key": 3},
     "sophia: key must be a jax.random key (jax.random.key(seed)), got 3"),
    (gx.sam(gx.sgd(0.1), opaque_mode=True), {},
     "sam: grad_fn needs the gradient function in opaque mode"),
]


@pytest.mark.parametrize("tx, extra, message", MISSING_EXTRAS,
                         ids=["momo-value", "momo_adam-value-shape", "sophia-obj_fn",
                              "sophia-key", "sophia-key-type", "sam-grad_fn"])
def test_missing_extra_arguments_are_errors(tx, extra, message):
    grads = jax.grad(quad_loss)(QUAD)
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        tx.update(grads, tx.init(QUAD), QUAD, **extra)


def test_dpsgd_needs_a_key_and_per_example_updates():
    tx = gx.dpsgd(0.1, 1.0, 1.0)
    state = tx.init(QUAD)
    per_example = jax.tree.map(lambda p: jnp.stack([p, 2 * p]), QUAD)
    with pytest.raises(ValueError, match=re.escape("dpsgd: key needs a PRNG key")):
        tx.update(per_example, state, QUAD)
    with pytest.raises(ValueError, match=re.escape(
            "dpsgd.update: the updates must be per-example gradients, with a leading batch axis "
            "of the same size on every leaf")):
        tx.update({"w": per_example["w"], "b": per_example["b"][:1]}, state, QUAD,
                  key=jax.random.key(0))
    with pytest.raises(gx.StructureMismatchError, match=re.escape(
            "at ['w'] the params are float32[3] but the per-example updates (without their "
            "batch axis) are float32[2]")):
        tx.update({"w": per_example["w"][:, :2], "b": per_example["b"]}, state, QUAD,
                  key=jax.random.key(0))


def test_complex_params_are_rejected_naming_the_optimizer():
    params = {"z": jnp.zeros(3, jnp.complex64)}
    for tx, name in [(gx.mechanize(gx.sgd(0.1)), "mechanize"), (gx.cocob(), "cocob"),
                     (gx.momo(), "momo"), (gx.madgrad(0.1), "madgrad"),
                     (gx.sophia(0.1), "sophia"), (gx.dpsgd(0.1, 1.0, 1.0), "dpsgd")]:
        with pytest.raises(TypeError, match=f"^{name}: does not support complex params"):
            tx.init(params)


# -- SAM ----------------------------------------------------------------------------------------

def quartic_grad_np(w):
    return w + 0.2 * w**3 + 0.1


def quartic(p):
    return jnp.sum(0.5 * p * p + 0.05 * p**4 + 0.1 * p)


def test_sam_opaque_follows_the_paper():
    """One ``update`` of the opaque mode is Algorithm 1 of Foret et al.: the gradient at
    ``w + rho g / ||g||``, then the descent step."""
    w0 = np.asarray([1.5, -0.7, 0.2, 2.0])
    expected = ref_sam.sam_sgd(quartic_grad_np, w0, 0.05, 0.2, 8)
    with jax.enable_x64(True):
        tx = gx.sam(gx.sgd(0.05), opaque_mode=True, rho=0.2)
        w = jnp.asarray(w0)
        state = tx.init(w)
        grad_fn = lambda p, i: jax.grad(quartic)(p)  # noqa: E731
        step = jax.jit(lambda w, s: tx.update(grad_fn(w, 0), s, w, grad_fn=grad_fn))
        for t in range(8):
            u, state = step(w, state)
            w = gx.apply_updates(w, u)
            np.testing.assert_allclose(np.asarray(w), expected[t], rtol=1e-12)


def test_sam_transparent_alternates_and_counts_outer_steps():
    """Every second update returns to the saved point plus the outer step, taken with the
    gradient at the adversarial point; the outer optimizer's schedule sees outer steps only."""
    w = jnp.asarray([1.5, -0.7, 0.2, 2.0])
    lr = gx.piecewise_constant_schedule(0.1, {1: 0.5})   # 0.1 at outer step 0, then 0.05
    tx = gx.sam(gx.sgd(lr), rho=0.2)
    state = tx.init(w)
    g0 = jax.grad(quartic)(w)
    u, state = tx.update(g0, state, w)
    w_adv = gx.apply_updates(w, u)
    np.testing.assert_allclose(w_adv, w + 0.2 * g0 / jnp.linalg.norm(g0), rtol=1e-6)
    u, state = tx.update(jax.grad(quartic)(w_adv), state, w_adv)
    w1 = gx.apply_updates(w_adv, u)
    np.testing.assert_allclose(w1, w - 0.1 * jax.grad(quartic)(w_adv), rtol=1e-6)
    assert float(gx.hyperparams(tx, state)["learning_rate"]) == pytest.approx(0.05)


def test_sam_transparent_with_period_one_is_the_outer_optimizer():
    """optax's transparent update with ``sync_period=1`` reverts the previous step (it returns
    to the point saved one update earlier); here it is the outer optimizer alone."""
    grads = [jax.grad(quad_loss)(QUAD), jax.tree.map(lambda p: 0.5 - p, QUAD)]

    def two_steps(tx, apply):
        params, state = QUAD, tx.init(QUAD)
        for g in grads:
            u, state = tx.update(g, state, params)
            params = apply(params, u)
        return params

    plain = jax.jit(lambda: two_steps(gx.sgd(0.1, 0.9), gx.apply_updates))()
    wrapped = jax.jit(lambda: two_steps(gx.sam(gx.sgd(0.1, 0.9), sync_period=1),
                                        gx.apply_updates))()
    assert_trees_close(wrapped, plain, rtol=1e-6, atol=1e-7)
    with standard_promotion():
        theirs = jax.jit(lambda: two_steps(oc.sam(optax.sgd(0.1, 0.9), optax.identity(),
                                                  sync_period=1), optax.apply_updates))()
    # optax: p0 + u_1, i.e. the plain result without the first step's -0.1 g_0.
    assert_trees_close(theirs, jax.tree.map(lambda p, g: p + 0.1 * g, plain, grads[0]),
                       rtol=1e-5, atol=1e-6)


def test_normalize_gives_zero_for_a_zero_gradient():
    tx = gx.normalize()
    zeros = jax.tree.map(jnp.zeros_like, QUAD)
    u, _ = tx.update(zeros, tx.init(QUAD))
    assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(u))
    with standard_promotion():
        u_ox, _ = oc.normalize().update(zeros, oc.normalize().init(QUAD))
    assert all(bool(jnp.all(jnp.isnan(x))) for x in jax.tree.leaves(u_ox))


# -- the initial point, taken at the first update --------------------------------------------

FIRST_POINT = [gx.cocob(), gx.dog(), gx.dowg(), gx.madgrad(0.1), gx.mechanize(gx.sgd(0.1)),
               gx.sam(gx.sgd(0.1))]


@pytest.mark.parametrize("tx", FIRST_POINT, ids=[t.name for t in FIRST_POINT])
def test_initial_point_is_the_params_of_the_first_update(tx):
    """Params replaced between ``init`` and the first update (pre-trained weights loaded) are
    the ones that count, and ``init`` works on ``jax.ShapeDtypeStruct`` leaves."""
    grads = jax.grad(quad_loss)(QUAD)
    loaded = jax.tree.map(lambda p: p + 1.0, QUAD)
    expected, _ = tx.update(grads, tx.init(loaded), loaded)
    replaced, _ = tx.update(grads, tx.init(QUAD), loaded)
    abstract = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), QUAD)
    from_shapes, _ = tx.update(grads, tx.init(abstract), loaded)
    assert_trees_close(replaced, expected, rtol=0, atol=0)
    assert_trees_close(from_shapes, expected, rtol=0, atol=0)


def test_dog_learning_rate_kind_takes_the_given_first_step():
    grads = jax.grad(quad_loss)(QUAD)
    tx = gx.dog(1.0, ("learning_rate", 0.03))
    state = tx.init(QUAD)
    u, state = tx.update(grads, state, QUAD)
    assert_trees_close(u, jax.tree.map(lambda g: -0.03 * g, grads), rtol=1e-7)
    params = gx.apply_updates(QUAD, u)
    g2 = jax.grad(quad_loss)(params)
    u2, _ = tx.update(g2, state, params)
    dist = gx.global_norm(jax.tree.map(jnp.subtract, params, QUAD))
    sum_sq = gx.global_norm(grads) ** 2 + gx.global_norm(g2) ** 2
    lr = dist / jnp.sqrt(sum_sq + 1e-8)
    assert_trees_close(u2, jax.tree.map(lambda g: -lr * g, g2), rtol=1e-6)


# -- MoMo ---------------------------------------------------------------------------------------

def test_momo_takes_no_step_without_a_direction():
    zeros = jax.tree.map(jnp.zeros_like, QUAD)
    for tx in (gx.momo(), gx.momo_adam()):
        u, _ = tx.update(zeros, tx.init(QUAD), QUAD, value=jnp.float32(1.0))
        assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(u)), tx.name


def test_momo_steps_on_tiny_directions_where_optax_stops():
    """optax skips the step where ||d||^2 <= 2.2e-16 (a threshold in the loss's units); here
    only where it is 0: a gradient of 1e-9 still gets its (capped) step."""
    params = {"x": jnp.asarray([3.0])}
    grads = {"x": jnp.asarray([1e-9])}
    value = jnp.float32(1.0)
    mine, _ = gx.momo(0.5).update(grads, gx.momo(0.5).init(params), params, value=value)
    np.testing.assert_allclose(mine["x"], [-0.5e-9], rtol=1e-6)
    with standard_promotion():
        theirs, _ = oc.momo(0.5).update(grads, oc.momo(0.5).init(params), params, value=value)
    assert float(theirs["x"][0]) == 0.0


def test_momo_reaches_the_minimum_of_an_interpolating_quadratic():
    """With the exact lower bound 0 the Polyak-type step solves a 1-d quadratic at once."""
    params = {"x": jnp.asarray([3.0])}
    loss = lambda p: jnp.sum(p["x"] ** 2)  # noqa: E731
    tx = gx.momo(10.0)
    value, g = jax.value_and_grad(loss)(params)
    u, _ = tx.update(g, tx.init(params), params, value=value)
    np.testing.assert_allclose(gx.apply_updates(params, u)["x"], [1.5], rtol=1e-6)


# -- MADGRAD in float64 (optax computes sqrt(k + 1) in float32) ---------------------------------

def test_madgrad_float64_follows_the_paper():
    with jax.enable_x64(True):
        x0 = np.asarray([1.0, -2.0, 0.5, 0.25])
        rng = np.random.default_rng(0)
        grads = [rng.normal(size=4) * 10.0 ** rng.uniform(-2, 1) for _ in range(12)]
        expected = ref_madgrad.madgrad(grads, x0, 0.05, 0.8, 1e-6)
        tx = gx.madgrad(0.05, 0.8, eps=1e-6)
        x, state = jnp.asarray(x0), tx.init(jnp.asarray(x0))
        step = jax.jit(tx.update)
        for t, g in enumerate(grads):
            u, state = step(jnp.asarray(g), state, x)
            x = gx.apply_updates(x, u)
            np.testing.assert_allclose(np.asarray(x), expected[t], rtol=1e-13)


# -- Sophia -------------------------------------------------------------------------------------

def test_hutchinson_is_exact_for_a_diagonal_hessian_and_accepts_hvp():
    """With a diagonal Hessian z * (H z) = diag(H) for every sign vector z; ``hvp=`` gives the
    same estimate as ``obj_fn=``."""
    est = gx.hutchinson_estimator_diag_hessian()
    state = est.init(QUAD)
    exact = {"w": jnp.asarray([1.0, 3.0, 10.0]), "b": jnp.full((2, 2), 2.0)}
    for seed in range(3):
        h, _ = est.update(QUAD, state, QUAD, obj_fn=quad_loss, key=jax.random.key(seed))
        assert_trees_close(h, exact, rtol=1e-6)

    def hvp(params, v):
        return jax.jvp(jax.grad(quad_loss), (params,), (v,))[1]

    key = jax.random.key(7)
    via_obj, _ = est.update(QUAD, state, QUAD, obj_fn=quad_loss, key=key)
    via_hvp, _ = est.update(QUAD, state, QUAD, hvp=hvp, key=key)
    assert_trees_close(via_hvp, via_obj, rtol=0, atol=0)


def test_sophia_refreshes_the_estimate_every_interval():
    tx = gx.sophia(0.01, update_interval=3, weight_decay=0.0)

    def body(carry, key):
        params, state = carry
        g = jax.grad(quad_loss)(params)
        u, state = tx.update(g, state, params, obj_fn=quad_loss, key=key)
        return (gx.apply_updates(params, u), state), state.inner[0].nu["w"]

    keys = jax.random.split(jax.random.key(0), 7)
    _, seen = jax.jit(lambda: jax.lax.scan(body, (QUAD, tx.init(QUAD)), keys))()
    seen = np.asarray(seen)
    changed = [not np.array_equal(a, b) for a, b in zip([np.zeros(3)] + list(seen), seen)]
    assert changed == [True, False, False, True, False, False, True]


# -- GaLore -------------------------------------------------------------------------------------

def test_galore_keeps_low_rank_state_and_orthonormal_projectors():
    params = {"w": jnp.ones((6, 4)), "v": jnp.ones((3, 8)), "b": jnp.ones(4)}
    tx = gx.galore(0.1, rank=2)
    state = tx.init(params)
    adam_state = state.inner[0].base_optimizer_state
    assert adam_state.mu["w"].shape == (2, 4)   # tall: left projection, 2 x n
    assert adam_state.mu["v"].shape == (3, 2)   # wide: right projection, m x 2
    assert adam_state.mu["b"].shape == (4,)     # not projected
    rng = np.random.default_rng(0)
    grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
    _, state = jax.jit(tx.update)(grads, state, params)
    for proj in jax.tree.leaves(state.inner[0].projector):
        np.testing.assert_allclose(proj.T @ proj, np.eye(2), atol=1e-5)


def test_galore_float64_projects_in_float64():
    with jax.enable_x64(True):
        params = {"w": jnp.ones((5, 3), jnp.float64)}
        tx = gx.galore(0.1, rank=2)
        state = tx.init(params)
        assert state.inner[0].projector["w"].dtype == jnp.float64
        g = {"w": jnp.asarray(np.random.default_rng(1).normal(size=(5, 3)))}
        _, state = jax.jit(tx.update)(g, state, params)
        proj = np.asarray(state.inner[0].projector["w"])
        u, _, _ = np.linalg.svd(np.asarray(g["w"]), full_matrices=False)
        np.testing.assert_allclose(np.abs(proj.T @ u[:, :2]), np.eye(2), atol=1e-12)


def test_galore_rejects_bad_dimension_numbers():
    tx = gx.galore(0.1, weight_dimension_numbers=gx.GaLoreDimensionNumbers(0, 0))
    with pytest.raises(ValueError, match=re.escape(
            "galore: the reduction axes (0,) and output axes (0,) must be disjoint")):
        tx.init({"w": jnp.ones((3, 4))})


# -- DP-SGD -------------------------------------------------------------------------------------

def test_dpsgd_step_follows_abadi_et_al():
    """Clipping per example (some above, some below C), sum, noise, average, SGD: against the
    NumPy reference with the same normal draws (those of leaf j are drawn with key j + 1 of
    ``jax.random.split(key, leaves + 1)``)."""
    with jax.enable_x64(True):
        params = {"a": jnp.asarray([0.5, -1.0, 2.0]), "b": jnp.asarray([[1.0, 0.0]])}
        rng = np.random.default_rng(4)
        per_example = {"a": jnp.asarray(rng.normal(size=(5, 3)) * [[0.1], [3], [0.5], [2], [0]]),
                       "b": jnp.asarray(rng.normal(size=(5, 1, 2)))}
        key = jax.random.key(11)
        tx = gx.dpsgd(0.3, 1.2, 0.7)
        u, _ = tx.update(per_example, tx.init(params), params, key=key)
        keys = jax.random.split(key, 3)
        noise = np.concatenate([np.asarray(jax.random.normal(keys[1], (3,), jnp.float64)),
                                np.asarray(jax.random.normal(keys[2], (1, 2), jnp.float64))
                                .ravel()])
        flat = np.concatenate([np.asarray(per_example["a"]),
                               np.asarray(per_example["b"]).reshape(5, 2)], axis=1)
        theta = np.concatenate([np.asarray(params["a"]), np.asarray(params["b"]).ravel()])
        expected = ref_dpsgd.dpsgd_step(theta, flat, 0.3, 1.2, 0.7, noise)
        new = gx.apply_updates(params, u)
        got = np.concatenate([np.asarray(new["a"]), np.asarray(new["b"]).ravel()])
        np.testing.assert_allclose(got, expected, rtol=1e-13)


# -- the complex split ---------------------------------------------------------------------------

def test_split_real_and_imaginary_lets_real_only_optimizers_train_complex_params():
    target = jnp.asarray([1 + 2j, -0.5 + 0.25j, 0.3 - 1j], jnp.complex64)
    loss = lambda p: jnp.sum(jnp.abs(p["z"] - target) ** 2)  # noqa: E731
    params = {"z": jnp.zeros(3, jnp.complex64)}
    with pytest.raises(TypeError, match="prodigy: does not support complex params"):
        gx.prodigy().init(params)
    tx = gx.split_real_and_imaginary(gx.prodigy(estim_lr0=1e-3))
    state = tx.init(params)
    step = jax.jit(lambda p, s: tx.update(jax.tree.map(jnp.conj, jax.grad(loss)(p)), s, p))
    start = float(loss(params))
    for _ in range(30):
        u, state = step(params, state)
        params = gx.apply_updates(params, u)
    assert params["z"].dtype == jnp.complex64
    assert float(loss(params)) < 0.1 * start


# -- states ------------------------------------------------------------------------------------

STATEFUL = [gx.sam(gx.adam(0.1), gx.adam(0.1)), gx.sam(gx.sgd(0.1, 0.9), opaque_mode=True),
            gx.cocob(), gx.dog(), gx.dowg(), gx.mechanize(gx.adam(0.1)), gx.momo(),
            gx.momo_adam(), gx.madgrad(0.1), gx.sophia(0.1), gx.galore(0.1, rank=1),
            gx.dpsgd(0.1, 1.0, 1.0, momentum=0.9), gx.acprop(0.1), gx.simplified_ademamix(0.1),
            gx.split_real_and_imaginary(gx.adam(0.1))]


@pytest.mark.parametrize("tx", STATEFUL, ids=[t.name for t in STATEFUL])
def test_no_two_state_leaves_share_a_buffer(tx):
    """So that the state can be donated to a jitted step."""
    leaves = jax.tree.leaves(tx.init(nested_params()))
    pointers = [x.unsafe_buffer_pointer() for x in leaves]
    assert len(set(pointers)) == len(pointers)
