"""The Gaussian-process surrogate and the acquisition functions of gradxform.search.

Compared with an independent NumPy/SciPy implementation (tests/reference/gp_rasmussen2006.py),
with SciPy's multivariate normal density, with finite differences, and with mpmath at high
precision where expected improvement underflows in float64.
"""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from scipy.stats import multivariate_normal

from gradxform._src.search import acquisition as acq
from gradxform._src.search import gp
from reference import gp_rasmussen2006 as ref
from search_targets import gp_problem

# Compiled once each: eager dispatch of every small op costs more than the maths here.
posterior = jax.jit(lambda params, data, xq: gp.predict(gp.condition(params, data), xq))
lml = jax.jit(gp.log_marginal_likelihood)
lml_and_grad = jax.jit(gp.log_marginal_likelihood_and_grad)
log_posterior = jax.jit(lambda p, data: gp.log_marginal_likelihood(p, data) + gp.log_prior(p))
log_h = jax.jit(acq.log_h)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


problem = gp_problem


def numpy_hyper(params):
    ls = np.exp(np.asarray(params.log_lengthscale))
    return ls, float(np.exp(params.log_signal)), gp.NOISE_FLOOR + float(np.exp(params.log_noise))


def test_posterior_matches_numpy_reference():
    x, y, params = problem()
    xq = np.random.default_rng(1).random((7, 3))
    ls, signal, noise = numpy_hyper(params)
    mean_ref, var_ref = ref.posterior(x, y, xq, ls, signal, noise + gp.JITTER)
    mean, var = posterior(params, gp.make_data(x, y), jnp.asarray(xq))
    assert mean.dtype == jnp.float64
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(var, var_ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(gp.matern52(jnp.asarray(x), jnp.asarray(xq), params),
                               ref.matern52(x, xq, ls, signal), rtol=1e-12)


def test_log_marginal_likelihood_matches_scipy_density():
    x, y, params = problem()
    ls, signal, noise = numpy_hyper(params)
    cov = ref.matern52(x, x, ls, signal) + (noise + gp.JITTER) * np.eye(len(x))
    expected = multivariate_normal(np.zeros(len(x)), cov).logpdf(y)
    data = gp.make_data(x, y)
    np.testing.assert_allclose(lml(params, data), expected, rtol=1e-10)
    value, _ = lml_and_grad(params, data)
    np.testing.assert_allclose(value, expected, rtol=1e-10)


def test_padding_changes_nothing():
    x, y, params = problem()
    xq = jnp.asarray(np.random.default_rng(2).random((5, 3)))
    out = []
    for capacity in (16, 64):
        data = gp.make_data(x, y, capacity)
        mean, var = posterior(params, data, xq)
        value, grad = lml_and_grad(params, data)
        out.append((mean, var, value, grad))
    (m1, v1, l1, g1), (m2, v2, l2, g2) = out
    np.testing.assert_allclose(m1, m2, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(v1, v2, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(l1, l2, rtol=1e-12)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


def test_gradient_matches_finite_differences_and_autodiff():
    x, y, params = problem()
    data = gp.make_data(x, y, 16)
    _, grad = lml_and_grad(params, data)
    auto = jax.jit(jax.grad(gp.log_marginal_likelihood))(params, data)
    flat, unravel = ravel_pytree(params)
    g_flat, _ = ravel_pytree(grad)
    a_flat, _ = ravel_pytree(auto)
    h = 1e-6
    steps = h * np.eye(flat.shape[0])
    fd = [(lml(unravel(flat + e), data) - lml(unravel(flat - e), data)) / (2 * h)
          for e in jnp.asarray(steps)]
    np.testing.assert_allclose(g_flat, np.array(fd), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g_flat, a_flat, rtol=1e-9, atol=1e-10)


def test_fit_improves_the_log_posterior_and_keeps_the_best_start():
    x, y, _ = problem(n=20)
    data = gp.make_data(x, y)
    starts = gp.sample_prior_params(np.random.default_rng(0), 3, 3)
    before = [float(log_posterior(jax.tree.map(lambda a, i=i: a[i], starts), data))
              for i in range(3)]
    best, values = jax.jit(gp.fit, static_argnames="steps")(data, starts, steps=40)
    after = float(log_posterior(best, data))
    np.testing.assert_allclose(after, np.max(values), rtol=1e-10)
    assert np.all(np.asarray(values) > np.asarray(before))
    assert after > max(before) + 1.0


def test_log_ei_matches_direct_computation_where_ei_is_not_tiny():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=200)
    var = np.exp(rng.uniform(-4, 1, size=200))
    best = 0.3
    expected = np.log(ref.expected_improvement(mean, var, best))
    assert np.all(np.isfinite(expected))
    got = jax.jit(acq.log_expected_improvement)(jnp.asarray(mean), jnp.asarray(var), best)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_log_h_is_accurate_finite_and_increasing_where_ei_underflows():
    z = np.array([-0.5, -1.0, -1.0000001, -3.0, -10.0, -38.0, -40.0, -100.0, -1e3, -1e5,
                  -6.7e7, -1e8, -1e12])
    mpmath.mp.dps = 60

    def exact(v):
        v = mpmath.mpf(v)
        return mpmath.log(mpmath.npdf(v) + v * mpmath.ncdf(v))

    got = np.asarray(log_h(jnp.asarray(z)))
    want = np.array([float(exact(v)) for v in z])
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # Plain float64 EI underflows to 0 (log -> -inf) well before the end of this range.
    assert ref.expected_improvement(-40.0, 1.0, 0.0) == 0.0
    grid = -np.logspace(-2, 12, 400)[::-1]
    values = np.asarray(log_h(jnp.asarray(grid)))
    grads = np.asarray(jax.jit(jax.vmap(jax.grad(acq.log_h)))(jnp.asarray(grid)))
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(grads))
    assert np.all(np.diff(values) > 0)
    assert np.all(grads > 0)


def test_ucb():
    got = jax.jit(acq.upper_confidence_bound)(jnp.asarray([0.5, -1.0]),
                                              jnp.asarray([4.0, 0.25]), 2.0)
    np.testing.assert_allclose(got, [0.5 + np.sqrt(8.0), -1.0 + np.sqrt(0.5)], rtol=1e-12)


def test_maximize_finds_the_acquisition_maximum_of_a_dense_grid():
    rng = np.random.default_rng(3)
    x = rng.random((12, 2))
    y = -np.sum((x - np.array([0.3, 0.6])) ** 2, axis=1)
    y = (y - y.mean()) / y.std()
    params = gp.Params(jnp.asarray(np.log([0.4, 0.4])), jnp.asarray(0.0), jnp.asarray(-12.0))
    data = gp.make_data(x, y)
    best = jnp.asarray(y.max())
    g = np.linspace(0, 1, 401)
    grid = jnp.asarray(np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2))

    @jax.jit
    def run(cands, points):
        post = gp.condition(params, data)
        xs, values, means = acq.maximize(post, best, cands, jnp.asarray([True, True]),
                                         starts=4, steps=60)
        return (xs, values, means, jnp.max(acq.acquisition(post, points, best)),
                acq.acquisition(post, xs, best), gp.predict(post, xs)[0])

    xs, values, means, grid_max, again, mean_again = run(jnp.asarray(rng.random((64, 2))), grid)
    assert np.all(np.diff(np.asarray(values)) <= 0)
    assert float(values[0]) >= float(grid_max) - 1e-3
    assert np.all((np.asarray(xs) >= 0) & (np.asarray(xs) <= 1))
    np.testing.assert_allclose(values, again, rtol=1e-10)
    np.testing.assert_allclose(means, mean_again, rtol=1e-10)
