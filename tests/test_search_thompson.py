"""Thompson sampling: pathwise posterior samples have the GP posterior's mean and covariance
(against a NumPy posterior from tests/reference/gp_rasmussen2006.py, to sampling error), and the
Bayes tuner proposes with them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradxform import search
from gradxform._src.search import gp, thompson
from gradxform._src.search.bayes import Bayes
from reference import gp_rasmussen2006 as ref

SAMPLES = 4000


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@jax.jit
def draws(keys, params, data, xq):
    """``SAMPLES`` independent posterior samples at ``xq``: [samples, m]."""
    post = gp.condition(params, data)
    # Few features: each sample draws its own, so the moments are exact for any number.
    return jax.vmap(lambda k: thompson.evaluate(thompson.sample(k, post, 64), post, xq))(keys)


def hyper(params):
    ls = np.exp(np.asarray(params.log_lengthscale))
    return ls, float(np.exp(params.log_signal)), gp.NOISE_FLOOR + float(np.exp(params.log_noise))


def numpy_posterior(x, y, xq, params):
    """Mean and full covariance of the latent function at ``xq`` (empty data: the prior)."""
    ls, signal, noise = hyper(params)
    kqq = ref.matern52(xq, xq, ls, signal)
    if len(x) == 0:
        return np.zeros(len(xq)), kqq
    k = ref.matern52(x, x, ls, signal) + (noise + gp.JITTER) * np.eye(len(x))
    kxq = ref.matern52(x, xq, ls, signal)
    return kxq.T @ np.linalg.solve(k, y), kqq - kxq.T @ np.linalg.solve(k, kxq)


def check_moments(samples, mean, cov):
    """Empirical mean and covariance against the exact ones, within five standard errors."""
    s = len(samples)
    var = np.diag(cov)
    np.testing.assert_array_less(np.abs(samples.mean(0) - mean), 5 * np.sqrt(var / s) + 1e-9)
    err = np.sqrt((np.outer(var, var) + cov ** 2) / s)     # std error of a covariance entry
    np.testing.assert_array_less(np.abs(np.cov(samples, rowvar=False) - cov), 5 * err + 1e-9)


def keys(seed):
    return jax.random.split(jax.random.PRNGKey(seed), SAMPLES)


def params():
    return gp.Params(jnp.asarray(np.log([0.2, 0.5])), jnp.asarray(np.log(1.7)),
                     jnp.asarray(np.log(1e-3)))


def test_random_features_have_the_matern_prior_covariance():
    xq = np.array([[0.1, 0.2], [0.15, 0.3], [0.5, 0.5], [0.9, 0.1], [0.92, 0.12], [0.0, 1.0]])
    empty = gp.make_data(np.zeros((0, 2)), np.zeros(0), capacity=8)
    samples = np.asarray(draws(keys(0), params(), empty, jnp.asarray(xq)))
    check_moments(samples, *numpy_posterior(np.zeros((0, 2)), np.zeros(0), xq, params()))


def test_posterior_samples_have_the_posterior_mean_and_covariance():
    rng = np.random.default_rng(1)
    x = rng.random((7, 2))
    y = np.sin(6 * x[:, 0]) + x[:, 1]
    y = (y - y.mean()) / y.std()
    # Near the data (tiny variance, strong correlations), between them, and far away.
    xq = np.concatenate([x[:2] + 0.02, rng.random((3, 2)), [[1.0, 1.0]]])
    data = gp.make_data(x, y, capacity=8)                   # a padded row must not matter
    k = np.asarray(keys(2)).copy()
    k[1] = k[0]                                             # one key twice
    samples = np.asarray(draws(jnp.asarray(k), params(), data, jnp.asarray(xq)))
    mean, cov = numpy_posterior(x, y, xq, params())
    check_moments(samples, mean, cov)
    np.testing.assert_array_equal(samples[0], samples[1])
    assert np.min(np.abs(samples[0] - samples[2])) > 1e-6
    # At the observations a sample passes within the noise of the data (sd 0.03).
    at_data = np.asarray(draws(keys(3), params(), data, jnp.asarray(x[:6])))
    assert np.max(np.abs(at_data - y[:6])) < 0.2


def test_bayes_thompson_proposes_distinct_new_points_in_the_cube():
    space = {"x": search.Float(-2.0, 2.0), "n": search.Int(1, 4)}
    tuner = Bayes(space, seed=0, acquisition="ts", initial=4)
    for _ in range(3):
        configs = tuner.ask(2)
        tuner.tell(configs, [(c["x"] - 0.5) ** 2 + c["n"] for c in configs])
    keys_ = [tuner.space.key(t.config) for t in tuner.trials]
    assert len(set(keys_)) == len(keys_) == 6
    assert all(c["n"] in (1, 2, 3, 4) and -2 <= c["x"] <= 2 for c in tuner.ask(3))
