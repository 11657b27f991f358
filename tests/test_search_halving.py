"""Successive halving and Hyperband: the rung schedule, survivors continuing from their state
(equal to training them straight through), one compilation per rung size."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradxform import search
from search_targets import ADAM_SPACE, regression, regression_init, regression_train

S = search


def test_rung_schedule():
    sh = S.Halving(ADAM_SPACE, max_steps=27)
    assert sh.rungs(27) == [(27, 1), (9, 3), (3, 9), (1, 27)]
    assert sh.rungs(10) == [(10, 3), (3, 9), (1, 27)]       # as many rungs as 10 members allow
    assert S.Halving(ADAM_SPACE, max_steps=20, min_steps=5, eta=2).rungs(8) == \
        [(8, 5), (4, 10), (2, 20)]


def test_hyperband_brackets_follow_li_et_al():
    """Li et al. (2018), Table 1 with R = 81, eta = 3: brackets of 81, 34, 15, 8 and 5
    configurations starting at 1, 3, 9, 27 and 81 resources."""
    hb = S.Halving(ADAM_SPACE, max_steps=81, hyperband=True)
    assert hb.brackets(None) == [(81, 1), (34, 3), (15, 9), (8, 27), (5, 81)]
    assert [r[0] for r in hb.rungs(34, 3)] == [34, 11, 3, 1]


@pytest.fixture(scope="module")
def result():
    return S.minimize(regression(), ADAM_SPACE, strategy="halving", budget=9, max_steps=18,
                      eta=3, seed=1)


def test_survivors_are_the_best_of_their_rung(result):
    rungs = {}
    for t in result.trials:
        rungs.setdefault(t.info["rung"], []).append(t)
    assert [len(rungs[r]) for r in sorted(rungs)] == [9, 3, 1]
    assert [rungs[r][0].info["steps"] for r in sorted(rungs)] == [2, 6, 18]
    for r in (1, 2):
        previous = sorted(rungs[r - 1], key=lambda t: t.value)[:len(rungs[r])]
        assert {t.info["member"] for t in rungs[r]} == {t.info["member"] for t in previous}
    assert result.best_trial is rungs[2][0] or result.best_trial == rungs[2][0]
    assert result.compiles == 3                 # one program per rung size


def test_survivors_continue_from_their_state(result):
    """The winner trained 2 + 4 + 12 steps in three calls; its state and loss equal 18 steps
    in one run, so nothing was retrained and nothing was lost."""
    best = result.best_trial
    assert int(result.state[2]) == 18
    config = {k: jnp.float32(v) for k, v in best.config.items()}
    key = jax.random.fold_in(jax.random.PRNGKey(1), best.info["member"])
    state = jax.jit(regression_init)(config, key)
    state, loss = jax.jit(regression_train, static_argnums=2)(state, config, 18)
    np.testing.assert_allclose(best.value, float(loss), rtol=2e-4)
    np.testing.assert_allclose(result.state[0], state[0], rtol=2e-4, atol=1e-6)


def test_hyperband_runs_every_bracket_to_the_top():
    result = S.minimize(regression(), ADAM_SPACE, strategy="halving", max_steps=2, eta=2,
                        hyperband=True, seed=0)
    assert [(t.info["bracket"], t.info["steps"]) for t in result.trials] == \
        [(0, 1)] * 2 + [(0, 2)] * 1 + [(1, 2)] * 2     # n_b = ceil(2 * 2^b / (b + 1))
    assert result.best_trial.info["steps"] == 2
    tops = [t for t in result.trials if t.info["steps"] == 2]
    assert result.best_value == min(t.value for t in tops)


def test_an_interrupted_run_resumes_from_its_checkpoint(result, tmp_path):
    path = tmp_path / "halving.json"

    def stop(trials):
        if trials[0].info["rung"] == 1:
            raise KeyboardInterrupt

    run = dict(strategy="halving", budget=9, max_steps=18, eta=3, seed=1)
    with pytest.raises(KeyboardInterrupt):
        S.minimize(regression(), ADAM_SPACE, checkpoint=path, callback=stop, **run)
    assert len(json.loads(path.read_text())["tuner"]["trials"]) == 9     # rung 0 was saved
    resumed = S.minimize(regression(), ADAM_SPACE, checkpoint=path, **run)
    assert [(t.config, t.info) for t in resumed.trials] == \
        [(t.config, t.info) for t in result.trials]
    np.testing.assert_allclose([t.value for t in resumed.trials],
                               [t.value for t in result.trials], rtol=1e-6)
    np.testing.assert_allclose(resumed.state[0], result.state[0], rtol=1e-6)
    again = S.minimize(regression(), ADAM_SPACE, checkpoint=path, **run)   # finished
    assert len(again.trials) == len(result.trials) and again.compiles == 0
    np.testing.assert_allclose(again.state[0], result.state[0], rtol=1e-6)


@pytest.mark.parametrize("kwargs,message", [
    ({"max_steps": 0}, "Halving: max_steps must be >= 1, got 0"),
    ({"max_steps": 5, "min_steps": 9}, "Halving: min_steps must be <= max_steps"),
    ({"max_steps": 5, "eta": 1}, "Halving: eta must be > 1, got 1"),
])
def test_halving_argument_errors(kwargs, message):
    with pytest.raises(ValueError) as info:
        S.Halving(ADAM_SPACE, **kwargs)
    assert message in str(info.value)
