"""GP-Hedge: the choice rule against hand-computed probabilities, the gains against a NumPy
posterior (tests/reference/gp_rasmussen2006.py) at the nominees, log PI against SciPy, and
resuming with the portfolio's state."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import norm

from gradxform._src.search import acquisition as acq
from gradxform._src.search import gp
from gradxform._src.search.bayes import Bayes
from reference import gp_rasmussen2006 as ref
from test_search_bayes import BRANIN, branin, run


def test_probabilities_are_the_softmax_of_eta_times_the_gains():
    np.testing.assert_allclose(acq.hedge_probabilities(np.zeros(3), 1.0), [1 / 3] * 3)
    # exp(0.5), exp(1), exp(0) = 1.64872, 2.71828, 1; their sum 5.36700.
    np.testing.assert_allclose(acq.hedge_probabilities(np.array([0.5, 1.0, 0.0]), 1.0),
                               [0.307196, 0.506480, 0.186324], atol=1e-6)
    # eta 2: exp(1.4), exp(1.4), exp(0.2) = 4.05520, 4.05520, 1.22140; sum 9.33180.
    np.testing.assert_allclose(acq.hedge_probabilities(np.array([0.7, 0.7, 0.1]), 2.0),
                               [0.434557, 0.434557, 0.130886], atol=1e-6)
    # Large gains do not overflow: 1 / (1 + e^-1), e^-1 / (1 + e^-1), e^-1000 / ...
    np.testing.assert_allclose(acq.hedge_probabilities(np.array([1000.0, 999.0, 0.0]), 1.0),
                               [0.731059, 0.268941, 0.0], atol=1e-6)


def test_log_probability_of_improvement_matches_scipy():
    mean, var, best = np.array([0.3, -2.0, 1.0, -40.0]), np.array([0.5, 0.1, 2.0, 1.0]), 0.4
    with jax.enable_x64(True):
        got = acq.log_probability_of_improvement(jnp.asarray(mean), jnp.asarray(var),
                                                 jnp.asarray(best))
        with_margin = acq.log_probability_of_improvement(jnp.asarray(mean), jnp.asarray(var),
                                                         jnp.asarray(best), 0.25)
    np.testing.assert_allclose(got, norm.logcdf((mean - best) / np.sqrt(var)), rtol=1e-10)
    np.testing.assert_allclose(with_margin, norm.logcdf((mean - 0.65) / np.sqrt(var)),
                               rtol=1e-10)


def test_gains_add_the_posterior_mean_at_every_nominee_and_the_choice_is_a_nominee():
    tuner = run(Bayes(BRANIN, seed=6, acquisition="hedge"), branin, 8)
    assert tuner.acquisition == "hedge" and acq.PORTFOLIO == ("logei", "logpi", "ucb")
    first = tuner.ask(1)
    gains = tuner._hedge_gains.copy()
    chosen = first + tuner.ask(1)          # the first is pending: no credit yet
    np.testing.assert_array_equal(tuner._hedge_gains, gains)
    nominees = [a.copy() for a in tuner._hedge_nominees]
    assert len(nominees) == 2 and nominees[0].shape == (3, 2)
    for config, noms in zip(chosen, nominees, strict=True):
        u = tuner.space.encode(config)
        assert np.min(np.max(np.abs(noms - u), axis=1)) < 1e-9
    # Resuming keeps the gains and the nominees waiting for their values.
    state = json.loads(json.dumps(tuner.state_dict()))
    tuner.tell(chosen, [branin(c) for c in chosen])
    gains = tuner._hedge_gains.copy()
    proposal = tuner.ask(1)
    # The next proposal adds each acquisition's posterior mean at its two nominees, under the
    # GP just fitted to every value told (negated, warped, standardised targets).
    x, y, ok = tuner.observations()
    f = tuner._targets(y, ok)[0][0]
    p = tuner._params
    noise = gp.NOISE_FLOOR + float(np.exp(p.log_noise[0])) + gp.JITTER
    means = [ref.posterior(x, f, noms, np.exp(p.log_lengthscale[0]),
                           float(np.exp(p.log_signal[0])), noise)[0] for noms in nominees]
    np.testing.assert_allclose(tuner._hedge_gains - gains, np.sum(means, axis=0), rtol=1e-6,
                               atol=1e-8)
    resumed = Bayes(BRANIN, seed=6, acquisition="hedge")
    resumed.load_state_dict(state)
    resumed.tell(chosen, [branin(c) for c in chosen])
    assert resumed.ask(1) == proposal
    np.testing.assert_allclose(resumed._hedge_gains, tuner._hedge_gains)
