"""The tuner protocol (ask/tell, failed trials, observations, state) and the samplers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import qmc

from gradxform import search

S = search


def space2():
    return S.Space({"x": S.Float(-5.0, 10.0), "y": S.Float(0.0, 15.0)})


def mixed_space():
    return S.Space({"lr": S.Float(1e-4, 1.0, log=True), "n": S.Int(1, 8),
                    "opt": S.Categorical(["adam", "sgd"]),
                    "m": S.Float(0.0, 0.99, when={"opt": "sgd"})})


# -- the base: ask / tell ----------------------------------------------------------------------


def test_tell_records_failed_trials_and_never_picks_them():
    tuner = S.Random(space2(), seed=0)
    configs = tuner.ask(6)
    values = [3.0, float("nan"), float("-inf"), None, "oops", 2.5]
    trials = tuner.tell(configs, values)
    assert [t.status for t in trials] == ["ok", "failed", "failed", "failed", "failed", "ok"]
    assert [t.number for t in tuner.trials] == list(range(6))
    assert trials[1].value is None and "nan" in trials[1].error
    assert "-inf" in trials[2].error
    assert "one real number" in trials[4].error
    assert tuner.best_value == 2.5 and tuner.best_config == configs[5]
    x, y, ok = tuner.observations()
    assert x.shape == (6, 2) and x.dtype == np.float64
    np.testing.assert_array_equal(ok, [True, False, False, False, False, True])
    assert np.isnan(y[1:5]).all() and y[0] == 3.0
    np.testing.assert_allclose(x[0], tuner.space.encode(configs[0]))


def test_errors_mark_failures_and_best_is_none_without_success():
    tuner = S.Random(space2(), seed=0)
    configs = tuner.ask(2)
    tuner.tell(configs, [1.0, 2.0], errors=["ZeroDivisionError: boom", None])
    assert tuner.trials[0].status == "failed"
    assert tuner.trials[0].error == "ZeroDivisionError: boom"
    assert tuner.best_value == 2.0
    other = S.Random(space2(), seed=0)
    other.tell(other.ask(1), [float("nan")])
    assert other.best_trial is None and other.best_config is None


def test_values_may_be_numpy_or_jax_scalars_and_rounds_count():
    import jax.numpy as jnp
    tuner = S.Random(space2(), seed=1)
    tuner.tell(tuner.ask(2), [np.float32(1.5), jnp.asarray(0.25)])
    tuner.tell(tuner.ask(1), [7])
    assert [t.value for t in tuner.trials] == [1.5, 0.25, 7.0]
    assert [t.round for t in tuner.trials] == [0, 0, 1]
    assert tuner.pending == []


def test_ask_and_tell_argument_errors():
    tuner = S.Random(space2(), seed=0)
    with pytest.raises(ValueError, match="Random.ask: k must be >= 1, got 0"):
        tuner.ask(0)
    with pytest.raises(ValueError, match="Random.tell: got 2 configurations but 1 values"):
        tuner.tell(tuner.ask(2), [1.0])
    with pytest.raises(ValueError, match=r"Random.tell: x = 11.0 is outside Float\(-5.0, 10.0\)"):
        tuner.tell([{"x": 11.0, "y": 1.0}], [1.0])
    with pytest.raises(ValueError, match="Random: seed must be a whole number >= 0, got -1"):
        S.Random(space2(), seed=-1)


def test_told_configs_need_not_come_from_ask():
    tuner = S.Random(space2(), seed=0)
    tuner.tell([{"x": 1.0, "y": 2.0}], [0.5])
    assert tuner.best_config == {"x": 1.0, "y": 2.0}


def test_a_plain_dict_is_a_space():
    tuner = S.Random({"x": S.Float(0.0, 1.0)}, seed=0)
    assert isinstance(tuner.space, S.Space) and tuner.space.dim == 1


# -- reproducibility, saving and resuming ------------------------------------------------------


@pytest.mark.parametrize("cls", [S.Random, S.Sobol])
def test_same_seed_same_proposals(cls):
    a, b, c = cls(mixed_space(), seed=3), cls(mixed_space(), seed=3), cls(mixed_space(), seed=4)
    assert a.ask(5) == b.ask(5)
    assert a.ask(3) == b.ask(3)
    assert cls(mixed_space(), seed=3).ask(5) != c.ask(5)


@pytest.mark.parametrize("cls", [S.Random, S.Sobol])
def test_resumed_tuner_continues_like_the_original(cls):
    def objective(config):
        return config["lr"] * config["n"]

    straight = cls(mixed_space(), seed=7)
    for _ in range(3):
        configs = straight.ask(3)
        straight.tell(configs, [objective(c) for c in configs])

    first = cls(mixed_space(), seed=7)
    configs = first.ask(3)
    first.tell(configs, [objective(c) for c in configs])
    first.ask(2)                                   # asked, never told: kept as pending
    saved = json.loads(json.dumps(first.state_dict()))   # through JSON
    resumed = cls(mixed_space(), seed=0)
    resumed.load_state_dict(saved)
    assert resumed.seed == 7 and len(resumed.pending) == 2
    assert [t.config for t in resumed.trials] == [t.config for t in first.trials]
    resumed._pending.clear()
    # the random state was saved after the two pending proposals, so replay them in order
    replay = cls(mixed_space(), seed=7)
    replay.load_state_dict(saved)
    assert replay.ask(1) == first.ask(1)


def test_save_and_restore_files(tmp_path):
    tuner = S.Sobol(mixed_space(), seed=2)
    configs = tuner.ask(4)
    tuner.tell(configs, [1.0, float("nan"), 3.0, 0.5])
    path = tmp_path / "search.json"
    tuner.save(path)
    other = S.Sobol(mixed_space(), seed=2)
    other.restore(path)
    assert [(t.config, t.value, t.status, t.error) for t in other.trials] == \
        [(t.config, t.value, t.status, t.error) for t in tuner.trials]
    assert other.ask(4) == tuner.ask(4)
    json.loads(path.read_text())   # strict JSON: no NaN literals
    assert "NaN" not in path.read_text()


def test_load_refuses_another_space_or_tuner():
    state = S.Random(space2(), seed=0).state_dict()
    with pytest.raises(ValueError, match="the saved search has another space"):
        S.Random(mixed_space()).load_state_dict(state)
    with pytest.raises(ValueError, match="used a Random tuner, not Sobol"):
        S.Sobol(space2()).load_state_dict(state)


def test_state_dict_with_function_choices_is_json():
    from gradxform import adam, sgd
    space = S.Space({"opt": S.Categorical([adam, sgd]), "lr": S.Float(1e-3, 1.0, log=True)})
    tuner = S.Random(space, seed=0)
    configs = tuner.ask(3)
    tuner.tell(configs, [1.0, 2.0, 3.0])
    other = S.Random(space, seed=0)
    other.load_state_dict(json.loads(json.dumps(tuner.state_dict())))
    assert [t.config["opt"] for t in other.trials] == [c["opt"] for c in configs]


# -- the samplers ------------------------------------------------------------------------------


def test_sobol_points_are_stratified():
    """Sobol' nets: 2^m points put exactly one point in each of 2^m equal intervals of every
    coordinate (a property scrambling preserves), and they are more uniform than random."""
    space = S.Space({f"x{i}": S.Float(0.0, 1.0) for i in range(3)})
    tuner = S.Sobol(space, seed=0)
    u = np.array([space.encode(c) for c in tuner.ask(16)])
    for j in range(3):
        counts = np.bincount(np.floor(u[:, j] * 16).astype(int), minlength=16)
        np.testing.assert_array_equal(counts, np.ones(16))
    random_disc = np.median([qmc.discrepancy(np.random.default_rng(s).random((64, 3)))
                             for s in range(10)])
    sobol_u = np.array([space.encode(c) for c in S.Sobol(space, seed=1).ask(64)])
    assert qmc.discrepancy(sobol_u) < 0.5 * random_disc


def test_sobol_covers_categories_and_conditions():
    tuner = S.Sobol(mixed_space(), seed=0)
    configs = tuner.ask(32)
    assert {c["opt"] for c in configs} == {"adam", "sgd"}
    assert all(("m" in c) == (c["opt"] == "sgd") for c in configs)
    assert sorted({c["n"] for c in configs}) == list(range(1, 9))


def test_random_is_log_uniform_on_log_floats():
    configs = S.Random(mixed_space(), seed=0).ask(2000)
    lr = np.array([c["lr"] for c in configs])
    assert abs(np.mean(lr < 1e-2) - 0.5) < 0.04
    assert math.isclose(np.mean(["m" in c for c in configs]), 0.5, abs_tol=0.04)
