"""search.minimize: strategies, failed trials, vectorized batches compiled once, sharding over
devices, checkpoints, export, and search.build."""

from __future__ import annotations

import csv
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from gradxform import search
from search_targets import BRANIN_MIN, BRANIN_SPACE, branin, branin_jax

S = search


# -- strategies on a sequential objective ------------------------------------------------------


@pytest.mark.parametrize("strategy", ["random", "sobol", "grid"])
def test_strategies_find_a_low_branin_value_reproducibly(strategy):
    a = S.minimize(branin, BRANIN_SPACE, strategy=strategy, budget=64, seed=1)
    b = S.minimize(branin, BRANIN_SPACE, strategy=strategy, budget=64, seed=1)
    assert [t.config for t in a.trials] == [t.config for t in b.trials]
    assert len(a.trials) <= 64 and [t.number for t in a.trials] == list(range(len(a.trials)))
    values = [branin(t.config) for t in a.trials]
    assert a.best_value == min(values) and a.best_config == a.trials[int(np.argmin(values))].config
    assert a.best_value < BRANIN_MIN + 3.0    # 64 points of a 15 x 15 box find the valleys


def test_grid_full_product_subset_and_exhaustion():
    full = S.minimize(branin, BRANIN_SPACE, strategy="grid", budget=1000,
                      tuner_options={"points": 4})
    assert len(full.trials) == 16          # exhausted before the budget
    xs = sorted({t.config["x"] for t in full.trials})
    np.testing.assert_allclose(xs, [-5.0, 0.0, 5.0, 10.0])
    sub = S.minimize(branin, BRANIN_SPACE, strategy="grid", budget=10,
                     tuner_options={"points": 4})
    keys = [tuple(t.config.values()) for t in sub.trials]
    assert len(keys) == 10 and len(set(keys)) == 10
    assert set(keys) <= {tuple(t.config.values()) for t in full.trials}
    fitted = S.Grid(BRANIN_SPACE, budget=50)
    assert fitted.size == 49                # the finest 7 x 7 grid within 50
    grown = S.Grid(BRANIN_SPACE, budget=24)   # 4 x 4, then x gets 5 and 6 values: 6 x 4
    configs = grown.ask(24)
    assert grown.size == 24 and len({c["x"] for c in configs}) == 6
    assert len({c["y"] for c in configs}) == 4


def test_grid_respects_conditions_and_explicit_values():
    space = {"opt": S.Categorical(["sgd", "adam"]),
             "momentum": S.Float(0.0, 0.9, when={"opt": "sgd"}),
             "lr": S.Float(1e-3, 1e-1, log=True)}
    grid = S.Grid(space, points={"momentum": [0.0, 0.9], "lr": 3})
    configs = grid.ask(100)
    assert grid.size == len(configs) == 2 * 3 + 3
    assert grid.finished
    np.testing.assert_allclose(sorted({c["lr"] for c in configs}), [1e-3, 1e-2, 1e-1])
    with pytest.raises(ValueError, match="Grid: points names 'b2', which is not a parameter"):
        S.Grid(space, points={"b2": 3})


def test_failed_trials_are_recorded_and_the_search_goes_on():
    def objective(config):
        if config["x"] > 5:
            raise ZeroDivisionError("x too large")
        if config["y"] > 12:
            return float("nan")
        return branin(config)

    result = S.minimize(objective, BRANIN_SPACE, strategy="random", budget=40, seed=0)
    raised = [t for t in result.trials if t.config["x"] > 5]
    nans = [t for t in result.trials if t.config["x"] <= 5 and t.config["y"] > 12]
    assert raised and nans and len(result.trials) == 40
    assert all(t.status == "failed" and t.error == "ZeroDivisionError: x too large"
               for t in raised)
    assert all(t.status == "failed" and "nan" in t.error for t in nans)
    ok = [t for t in result.trials if t.ok]
    assert result.best_value == min(t.value for t in ok)
    assert result.best_config["x"] <= 5 and result.best_config["y"] <= 12


def test_all_failed_gives_no_best():
    result = S.minimize(lambda c: float("inf"), BRANIN_SPACE, budget=3)
    assert result.best_value is None and result.best_config is None
    assert np.isnan(result.best_so_far()).all()


@pytest.mark.parametrize("kwargs,exc,message", [
    ({"budget": 0}, ValueError, "search.minimize: budget must be >= 1, got 0"),
    ({"budget": 5, "batch_size": 0}, ValueError, "search.minimize: batch_size must be >= 1, got 0"),
    ({}, ValueError, "search.minimize: budget is required"),
    ({"budget": 5, "strategy": "tpe"}, ValueError, "search.minimize: strategy must be one of"),
    ({"budget": 5, "seed": -2}, ValueError, "search.minimize: seed must be a whole number >= 0"),
    ({"budget": 5, "mesh": True}, ValueError, "mesh= splits a vectorized batch over devices"),
    ({"budget": 5, "steps": 3}, TypeError, "unexpected arguments ['steps']"),
])
def test_minimize_argument_errors(kwargs, exc, message):
    with pytest.raises(exc) as info:
        S.minimize(branin, BRANIN_SPACE, **kwargs)
    assert message in str(info.value)


def test_a_tuner_object_as_strategy():
    tuner = S.Sobol(BRANIN_SPACE, seed=3)
    result = S.minimize(branin, strategy=tuner, budget=8, batch_size=4)
    assert result.tuner is tuner and len(tuner.trials) == 8
    assert [t.round for t in result.trials] == [0] * 4 + [1] * 4
    with pytest.raises(ValueError, match="the tuner's space differs"):
        S.minimize(branin, {"x": S.Float(0.0, 1.0)}, strategy=S.Random(BRANIN_SPACE), budget=2)


def test_callback_and_progress_bar(capsys):
    rounds = []
    S.minimize(branin, BRANIN_SPACE, budget=6, batch_size=4, callback=rounds.append,
               progress=True)
    assert [len(r) for r in rounds] == [4, 2]
    assert "best=" in capsys.readouterr().err


def test_a_callback_returning_true_stops_the_search():
    result = S.minimize(branin, BRANIN_SPACE, budget=40, batch_size=4,
                        callback=lambda trials: any(t.value < 20 for t in trials), seed=0)
    values = [t.value for t in result.trials]
    assert min(values[-4:]) < 20 and all(v >= 20 for v in values[:-4])


# -- vectorized objectives ---------------------------------------------------------------------


def test_vectorized_compiles_once_and_drops_padding():
    traces = []

    def objective(config):
        traces.append({k: (v.shape, v.dtype) for k, v in config.items()})
        return branin_jax(config)

    result = S.minimize(objective, BRANIN_SPACE, strategy="random", budget=18, batch_size=4,
                        vectorized=True, seed=2)
    assert len(traces) == 1 and result.compiles == 1      # 5 rounds, the last one padded
    again = S.minimize(objective, BRANIN_SPACE, strategy="sobol", budget=8, batch_size=4,
                       vectorized=True)
    assert len(traces) == 1 and again.compiles == 0       # a new search reuses the program
    assert traces[0] == {"x": ((), jnp.float32), "y": ((), jnp.float32)}
    assert len(result.trials) == 18 and [t.round for t in result.trials][-2:] == [4, 4]
    sequential = S.minimize(branin, BRANIN_SPACE, strategy="random", budget=18, batch_size=4,
                            seed=2)
    assert [t.config for t in result.trials] == [t.config for t in sequential.trials]
    np.testing.assert_allclose([t.value for t in result.trials],
                               [t.value for t in sequential.trials], rtol=2e-5, atol=1e-4)


def test_vectorized_types_of_ints_and_categoricals():
    seen = {}
    scales = jnp.asarray([1.0, 10.0, 100.0], jnp.float32)

    def objective(config):
        seen.update({k: v.dtype for k, v in config.items()})
        return scales[config["scale"]] * config["x"] + config["k"].astype(jnp.float32)

    space = {"x": S.Float(0.0, 1.0), "k": S.Int(0, 3),
             "scale": S.Categorical(["one", "ten", "hundred"])}
    result = S.minimize(objective, space, budget=12, batch_size=4, vectorized=True)
    assert seen == {"x": jnp.float32, "k": jnp.int32, "scale": jnp.int32}
    factor = {"one": 1.0, "ten": 10.0, "hundred": 100.0}
    for t in result.trials:
        c = t.config
        assert math.isclose(t.value, factor[c["scale"]] * c["x"] + c["k"], rel_tol=1e-5)


def test_a_non_finite_member_fails_alone():
    def objective(config):
        return jnp.where(config["x"] > 2.5, jnp.nan, branin_jax(config))

    result = S.minimize(objective, BRANIN_SPACE, budget=16, batch_size=8, vectorized=True)
    bad = [t for t in result.trials if t.config["x"] > 2.5]
    good = [t for t in result.trials if t.config["x"] <= 2.5]
    assert bad and good
    assert all(t.status == "failed" for t in bad) and all(t.ok for t in good)
    assert result.best_config["x"] <= 2.5


def test_max_batch_splits_rounds_into_one_program():
    calls = []

    def objective(config):
        calls.append(1)
        return branin_jax(config)

    result = S.minimize(objective, BRANIN_SPACE, budget=16, batch_size=8, max_batch=3,
                        vectorized=True)
    assert len(calls) == 1 and len(result.trials) == 16


def test_out_of_memory_halves_the_batch_instead_of_crashing(monkeypatch):
    from gradxform._src.search import batching as run

    real = run.BatchRunner._run

    def fake(self, configs):
        if self.size > 4:
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate")
        return real(self, configs)

    monkeypatch.setattr(run.BatchRunner, "_run", fake)
    with pytest.warns(RuntimeWarning, match="out of memory with a batch of 8; retrying with "
                                            "batches of 4"):
        result = S.minimize(branin_jax, BRANIN_SPACE, budget=12, batch_size=8, vectorized=True)
    assert len(result.trials) == 12 and all(t.ok for t in result.trials)


def test_vectorized_objective_must_return_a_scalar():
    with pytest.raises(ValueError, match="must return one number per configuration"):
        S.minimize(lambda c: jnp.stack([c["x"], c["y"]]), BRANIN_SPACE, budget=2,
                   vectorized=True)


def test_sharded_over_eight_devices_equals_one_device():
    assert jax.device_count() == 8
    one = S.minimize(branin_jax, BRANIN_SPACE, strategy="sobol", budget=20, batch_size=6,
                     vectorized=True, seed=4)
    eight = S.minimize(branin_jax, BRANIN_SPACE, strategy="sobol", budget=20, batch_size=6,
                       vectorized=True, seed=4, mesh=True)
    assert eight.compiles == 1 and len(eight.trials) == 20    # 6 rows padded to 8
    assert [t.config for t in one.trials] == [t.config for t in eight.trials]
    np.testing.assert_allclose([t.value for t in eight.trials], [t.value for t in one.trials],
                               rtol=1e-6)
    mesh = jax.make_mesh((4, 2), ("pop", "model"))
    four = S.minimize(branin_jax, BRANIN_SPACE, strategy="sobol", budget=20, batch_size=6,
                      vectorized=True, seed=4, mesh=mesh, mesh_axis="pop")
    np.testing.assert_allclose([t.value for t in four.trials], [t.value for t in one.trials],
                               rtol=1e-6)


# -- checkpoints -------------------------------------------------------------------------------


def test_interrupted_search_resumes_without_losing_trials(tmp_path):
    path = tmp_path / "search.json"
    straight = S.minimize(branin, BRANIN_SPACE, strategy="sobol", budget=14, batch_size=4,
                          seed=5)
    calls = []

    def interrupted(config):
        calls.append(config)
        if len(calls) == 7:                  # in the middle of the second round
            raise KeyboardInterrupt
        return branin(config)

    with pytest.raises(KeyboardInterrupt):
        S.minimize(interrupted, BRANIN_SPACE, strategy="sobol", budget=14, batch_size=4,
                   seed=5, checkpoint=path)
    saved = json.loads(path.read_text())
    assert len(saved["tuner"]["trials"]) == 6          # 4 + the 2 finished of round two
    assert len(saved["tuner"]["pending"]) == 2
    resumed = S.minimize(branin, BRANIN_SPACE, strategy="sobol", budget=14, batch_size=4,
                         seed=5, checkpoint=path)
    assert [t.config for t in resumed.trials] == [t.config for t in straight.trials]
    assert [t.value for t in resumed.trials] == [t.value for t in straight.trials]
    assert [c for c in calls[:6]] == [t.config for t in resumed.trials[:6]]
    again = S.minimize(branin, BRANIN_SPACE, strategy="sobol", budget=14, batch_size=4,
                       seed=5, checkpoint=path)       # finished: nothing more to do
    assert len(again.trials) == 14


def test_checkpoint_of_another_search_is_refused(tmp_path):
    path = tmp_path / "search.json"
    S.minimize(branin, BRANIN_SPACE, strategy="random", budget=2, checkpoint=path)
    with pytest.raises(ValueError, match="used a Random tuner, not Sobol"):
        S.minimize(branin, BRANIN_SPACE, strategy="sobol", budget=2, checkpoint=path)
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="is not a search checkpoint"):
        S.minimize(branin, BRANIN_SPACE, budget=2, checkpoint=tmp_path / "other.json")


# -- export ------------------------------------------------------------------------------------


def test_csv_and_json_export(tmp_path):
    space = {"opt": S.Categorical([gx.adam, gx.sgd]),
             "momentum": S.Float(0.0, 0.9, when={"opt": gx.sgd}),
             "lr": S.Float(1e-3, 1.0, log=True)}

    def objective(config):
        return float("nan") if config["lr"] > 0.3 else config["lr"]

    result = S.minimize(objective, space, strategy="random", budget=12, seed=0)
    result.to_csv(tmp_path / "t.csv")
    with open(tmp_path / "t.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12
    assert list(rows[0])[:6] == ["number", "status", "value", "error", "round", "seconds"]
    for row, t in zip(rows, result.trials):
        assert row["opt"] == t.config["opt"].__name__
        assert row["momentum"] == ("" if "momentum" not in t.config else
                                   repr(t.config["momentum"]))
        assert row["value"] == ("" if t.value is None else repr(t.value))
        assert row["status"] == t.status
    result.to_json(tmp_path / "t.json")
    data = json.loads((tmp_path / "t.json").read_text())
    assert len(data["trials"]) == 12 and data["best"] == result.best_trial.number
    assert all(d["value"] is None for d in data["trials"] if d["status"] == "failed")


def test_to_dataframe():
    pd = pytest.importorskip("pandas")
    result = S.minimize(branin, BRANIN_SPACE, budget=3)
    df = result.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == 3


# -- search.build ------------------------------------------------------------------------------


def test_build_passes_known_arguments_and_names_unknown_ones():
    opt = S.build(gx.adamw, {"learning_rate": 0.01, "b1": 0.8}, weight_decay=0.1)
    assert opt == gx.adamw(0.01, b1=0.8, weight_decay=0.1)
    with pytest.raises(ValueError, match=r"search.build\(adam\): 'opt' is not an argument of "
                                         r"adam .*pass ignore=\('opt',\)"):
        S.build(gx.adam, {"learning_rate": 0.01, "opt": "adam"})
    assert S.build(gx.adam, {"learning_rate": 0.01, "opt": "adam"}, ignore=["opt"]) == \
        gx.adam(0.01)
    with pytest.raises(ValueError, match="b1 must be in"):   # the factory's own checks
        S.build(gx.adam, {"learning_rate": 0.01, "b1": 1.5})


def test_build_turns_schedule_keys_into_a_learning_rate_schedule():
    opt = S.build(gx.adam, {"learning_rate": 0.1, "warmup": 10, "end_factor": 0.1},
                  decay_steps=100)
    schedule = gx.warmup_cosine_decay_schedule(init_value=0.0, peak_value=0.1,
                                               warmup_steps=10, decay_steps=100,
                                               end_value=0.1 * 0.1)
    assert opt == gx.adam(schedule)
    with pytest.raises(ValueError, match="needs decay_steps"):
        S.build(gx.adam, {"learning_rate": 0.1, "warmup": 10})


def test_build_on_a_batch_gives_a_stacked_optimizer():
    batch = {"learning_rate": np.asarray([0.1, 0.01, 0.001], np.float32),
             "b1": np.asarray([0.9, 0.8, 0.5], np.float32)}
    stacked = S.build(gx.adam, batch)
    expected = gx.stack([gx.adam(float(lr), b1=float(b1))
                         for lr, b1 in zip(batch["learning_rate"], batch["b1"])])
    for a, b in zip(jax.tree.leaves(stacked), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-7)
    assert jax.tree.structure(stacked) == jax.tree.structure(expected)

    params = jnp.ones(3, jnp.float32)

    def train(opt):
        state = opt.init(params)
        u, _ = opt.update(params, state, params)
        return gx.apply_updates(params, u)

    out = jax.vmap(train)(stacked)
    single = jax.jit(train)
    for i in range(3):
        np.testing.assert_allclose(
            out[i], single(gx.adam(float(batch["learning_rate"][i]), b1=float(batch["b1"][i]))),
            rtol=1e-6)
