"""Monte-Carlo qLogEI batches of the Bayes tuner (``batch="qlogei"``).

The estimator is compared with a plain NumPy Monte Carlo of the parallel expected improvement
and, for one point, with the closed-form expected improvement (tests/reference/
gp_rasmussen2006.py); the tuner's batches with the trust region, each other and a restart.
"""

import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import qmc

from gradxform import search
from gradxform._src.search import acquisition as acq
from gradxform._src.search import bayes as bayes_module
from gradxform._src.search import gp, qlogei, trust_region
from gradxform._src.search.bayes import Bayes
from reference import gp_rasmussen2006 as ref
from search_targets import gp_problem

BRANIN = {"x1": search.Float(-5.0, 10.0), "x2": search.Float(0.0, 15.0)}


def branin(c):
    x1, x2 = c["x1"], c["x2"]
    b, k, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + k * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def run(tuner, budget, batch=4):
    while len(tuner.trials) < budget:
        configs = tuner.ask(min(batch, budget - len(tuner.trials)))
        tuner.tell(configs, [branin(c) for c in configs])
    return tuner


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


condition = jax.jit(gp.condition)


@functools.cache
def problem(n=11, d=3, seed=0):
    x, y, params = gp_problem(n, d, seed)
    post = condition(params, gp.make_data(x, y, capacity=16))
    hyper = (np.array([0.3, 0.7, 1.4]), 1.3, gp.NOISE_FLOOR + 2e-3 + gp.JITTER)
    return x, y, post, hyper


q_log_ei = jax.jit(qlogei.q_log_expected_improvement)


@pytest.mark.parametrize("q, spread, samples", [(3, 0.05, 8192), (2, 0.3, qlogei.SAMPLES)])
def test_estimate_matches_plain_monte_carlo(q, spread, samples):
    x, y, post, (ls, signal, noise) = problem()
    rng = np.random.default_rng(q)
    xq = np.clip(x[np.argmax(y)] + spread * rng.standard_normal((q, 3)), 0.0, 1.0)
    best = float(np.max(y))
    mean, cov = ref.joint_posterior(x, y, xq, ls, signal, noise)
    m, se = ref.parallel_expected_improvement(mean, cov, best, 400_000, rng)
    base = qlogei.base_samples(np.random.default_rng(7), q, samples)
    est = float(q_log_ei(post, jnp.asarray(xq), jnp.asarray(best), jnp.asarray(base)))
    # Standard errors of log m: the reference's and a plain Monte Carlo of as many samples as
    # the estimate (quasi-random samples do better).
    _, se_mc = ref.parallel_expected_improvement(mean, cov, best, samples, rng)
    tol = 4.0 * math.hypot(se, se_mc) / m
    # The smoothed maximum over the batch errs upwards by at most TAU_MAX log q.
    assert est - qlogei.TAU_MAX * math.log(q) - tol <= math.log(m) <= est + tol, (
        est, math.log(m), tol)


def test_one_point_is_log_expected_improvement():
    x, y, post, (ls, signal, noise) = problem()
    best = float(np.max(y))
    xq = np.random.default_rng(3).random((100, 3))
    mean, var = ref.posterior(x, y, xq, ls, signal, noise)
    # Points whose improvements the samples see (the 8192 samples reach about 4.5 sigma).
    keep = np.flatnonzero((mean - best) / np.sqrt(var) > -2.0)[:6]
    assert keep.size == 6
    xq, mean, var = xq[keep], mean[keep], var[keep]
    ei = ref.expected_improvement(mean, var, best)
    base = jnp.asarray(qlogei.base_samples(np.random.default_rng(0), 1, 8192))
    est = np.array([float(q_log_ei(post, jnp.asarray(p[None]), jnp.asarray(best), base))
                    for p in xq])
    np.testing.assert_allclose(est, np.log(ei), atol=2e-3)


def test_fatplus_is_relu_in_the_limit_and_has_a_fat_tail():
    z = jnp.asarray([-1.0, -1e-3, 1e-3, 0.5])
    v = np.exp(np.asarray(jax.jit(qlogei.log_fatplus)(z)))
    np.testing.assert_allclose(v[2:], [1e-3, 0.5], rtol=1e-6)
    # Below the incumbent the Cauchy tail: FAT tau^3 / z^2, finite in log space.
    tau = qlogei.TAU_RELU
    np.testing.assert_allclose(v[:2], qlogei.FAT * tau ** 3 / np.asarray([1.0, 1e-6]),
                               rtol=1e-5)
    g = jax.jit(jax.grad(qlogei.log_fatplus))(jnp.asarray(-3.0))
    np.testing.assert_allclose(g, 2.0 / 3.0, rtol=1e-6)  # d/dz of -2 log|z|


def test_joint_ascent_with_one_point_finds_the_log_ei_maximiser():
    x, y, post, _ = problem()
    best = jnp.asarray(float(np.max(y)))
    free = jnp.ones(3, bool)
    lo, hi = jnp.zeros(3), jnp.ones(3)
    # Log EI's maximum (from below) on a dense quasi-random grid of the cube.
    grid = jnp.asarray(qmc.Sobol(3, rng=np.random.default_rng(1)).random(1 << 14))
    log_ei = jax.jit(lambda p: acq.acquisition(post, p, best))
    ei_grid = log_ei(grid)
    ei_x, ei_v = grid[jnp.argmax(ei_grid)], jnp.max(ei_grid)
    starts = grid[:8, None, :]
    base = jnp.asarray(qlogei.base_samples(np.random.default_rng(2), 1, 1024))
    q_x, q_v = jax.jit(lambda s: qlogei.maximize_batch(
        post.params, post.data.x, post.data.y, post.data.mask, post.data.mask, s, base, lo,
        hi, free))(starts)
    # The point qLogEI chose is as good by log EI as log EI's best grid point (to 2%), and
    # the grid's best point no better by qLogEI than qLogEI's choice.
    ei_at_q = log_ei(q_x[0])[0]
    assert ei_at_q >= ei_v - 0.02, (ei_at_q, ei_v)
    q_at_ei = q_log_ei(post, ei_x[None], best, base)
    assert q_at_ei <= q_v[0] + 0.02, (q_at_ei, q_v[0])
    # The ascent only improves on its starts.
    start_values = jax.vmap(lambda s: q_log_ei(post, s, best, base))(starts)
    assert q_v[0] >= jnp.max(start_values)


def test_batch_is_in_the_trust_region_distinct_and_compiled_once():
    tuner = run(Bayes(BRANIN, seed=1, batch="qlogei"), 13)
    configs = tuner.ask(4)
    traced = dict(bayes_module.TRACE_COUNTS)
    x, y, ok = tuner.observations()
    side = trust_region.length(np.where(ok, y, np.nan), tuner.initial,
                               np.array([t.round for t in tuner.trials]))
    f = tuner._targets(y, ok)[0][0]
    lo, hi = tuner._region(x, f, np.asarray(tuner._params.log_lengthscale[0]), side)
    u = np.stack([tuner.space.encode(c) for c in configs])
    assert np.all(u >= lo - 1e-9) and np.all(u <= hi + 1e-9), (u, lo, hi)
    keys = {tuner.space.key(c) for c in configs}
    assert len(keys) == 4
    assert not keys & {tuner.space.key(t.config) for t in tuner.trials}
    # Pending configurations are conditioned on, not proposed again.
    more = tuner.ask(4)
    assert not {tuner.space.key(c) for c in more} & keys
    tuner.tell(configs + more, [branin(c) for c in configs + more])
    run(tuner, 21)
    assert bayes_module.TRACE_COUNTS == traced  # one program per (capacity, q)


def test_reproducible_and_resumable():
    a = run(Bayes(BRANIN, seed=3, batch="qlogei"), 13)
    state = json.loads(json.dumps(a.state_dict()))
    b = Bayes(BRANIN, seed=3, batch="qlogei")
    b.load_state_dict(state)
    assert b.ask(4) == a.ask(4)
    c = run(Bayes(BRANIN, seed=3, batch="qlogei"), 13)
    assert c.ask(4) == b.pending


def test_single_points_are_log_ei_and_options_are_checked():
    told = run(Bayes(BRANIN, seed=4), 9, batch=1)
    a, b = Bayes(BRANIN, seed=4, batch="qlogei"), Bayes(BRANIN, seed=4)
    for t in (a, b):
        t.tell([tr.config for tr in told.trials], [tr.value for tr in told.trials])
    assert a.ask(1) == b.ask(1)
    with pytest.raises(ValueError, match="Bayes: batch='qlogei' needs acquisition='logei'"):
        Bayes(BRANIN, batch="qlogei", acquisition="ts")
