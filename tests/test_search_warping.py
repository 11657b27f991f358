"""Output warping of the Bayes tuner: the exponents match SciPy's maximum-likelihood ones, the
order of the losses is kept, and heavy tails are compressed."""

import numpy as np
import pytest
from scipy import stats

from gradxform._src.search import warping

STEP = float(warping.LAMBDAS[1] - warping.LAMBDAS[0])


@pytest.mark.parametrize("seed", range(3))
def test_box_cox_exponent_is_scipys_maximum_likelihood_one(seed):
    rng = np.random.default_rng(seed)
    for y in (rng.lognormal(0.0, 1.5, 40), rng.gamma(2.0, 3.0, 40), 1.0 + rng.random(40)):
        want = stats.boxcox_normmax(y, method="mle")
        if warping.LAMBDAS[0] < want < warping.LAMBDAS[-1]:
            assert abs(warping.box_cox_lambda(y) - want) <= STEP / 2 + 1e-9
        np.testing.assert_allclose(warping.box_cox(y, 0.7), stats.boxcox(y, 0.7), rtol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_yeo_johnson_exponent_is_scipys_maximum_likelihood_one(seed):
    rng = np.random.default_rng(seed)
    for z in (rng.standard_normal(40), rng.standard_exponential(40) - 1.0,
              -rng.standard_exponential(40)):
        want = stats.yeojohnson_normmax(z)
        if warping.LAMBDAS[0] < want < warping.LAMBDAS[-1]:
            assert abs(warping.yeo_johnson_lambda(z) - want) <= STEP / 2 + 1e-9
        np.testing.assert_allclose(warping.yeo_johnson(z, 0.7), stats.yeojohnson(z, 0.7),
                                   rtol=1e-12, atol=1e-14)


def test_power_warp_keeps_the_order_and_compresses_a_heavy_tail():
    rng = np.random.default_rng(0)
    x = rng.random((50, 4)) * 15 - 5
    y = np.sum(100 * (x[:, 1:] - x[:, :-1] ** 2) ** 2 + (1 - x[:, :-1]) ** 2, axis=1)
    warped, lam = warping.power_warp(y)
    np.testing.assert_array_equal(np.argsort(warped), np.argsort(y))
    assert lam < 0.5                                    # log-like for Rosenbrock's values
    np.testing.assert_allclose([warped.mean(), warped.std()], [0.0, 1.0], atol=1e-12)
    assert abs(stats.skew(warped)) < 0.5 * abs(stats.skew(y))
    # Values of both signs take the Yeo-Johnson branch, and keep their order too.
    signed = y - np.median(y)
    warped, _ = warping.power_warp(signed)
    np.testing.assert_array_equal(np.argsort(warped), np.argsort(signed))


def test_constant_and_two_valued_losses_are_only_standardised():
    warped, lam = warping.power_warp(np.full(5, 3.0))
    assert lam == 1.0 and np.all(warped == 0.0)
    warped, lam = warping.power_warp(np.array([1.0, 2.0, 1.0, 2.0]))
    assert lam == 1.0
    np.testing.assert_allclose(warped, [-1.0, 1.0, -1.0, 1.0])


def test_positive_losses_spanning_orders_of_magnitude_take_a_log_like_box_cox():
    y = np.random.default_rng(1).lognormal(0.0, 2.0, 60)
    warped, lam = warping.power_warp(y, try_box_cox=True)
    assert abs(lam) <= 0.2                           # Box-Cox near the log
    np.testing.assert_allclose(warped, warping.standardize(warping.box_cox(y, lam)))
    # Yeo-Johnson of the standardised values cannot reach a log of y: its warping is less
    # Gaussian (a larger skew) than the one chosen.
    z = warping.standardize(y)
    yj = warping.yeo_johnson(z, warping.yeo_johnson_lambda(z))
    assert abs(stats.skew(warped)) < abs(stats.skew(yj))


def test_candidate_warpings_keep_the_order_and_their_log_jacobians_match_finite_differences():
    rng = np.random.default_rng(1)
    y = np.exp(rng.normal(size=30) * 2.0) + 0.5
    warped, jac = warping.candidates(y)
    assert warped.shape == (len(warping.CANDIDATES), y.size) and jac.shape == (warped.shape[0],)
    for row in warped:
        np.testing.assert_array_equal(np.argsort(row), np.argsort(y))
        np.testing.assert_allclose([row.mean(), row.std()], [0.0, 1.0], atol=1e-9)
    # The log Jacobian is sum_i log psi'(y_i) for the map psi fitted to the whole vector.
    # Twin values y(1 + 1e-7) beside y share that map: their differences give psi'.
    twins = np.concatenate([y, y * (1 + 1e-7)])
    warped, jac = warping.candidates(twins)
    slopes = (warped[:, y.size:] - warped[:, :y.size]) / (1e-7 * y)
    np.testing.assert_allclose(jac, 2 * np.sum(np.log(slopes), axis=1), rtol=1e-5, atol=1e-3)
