"""Population-based training on a vmapped population: one compilation while hyperparameters
change, exploit copies params and optimizer state, a replay of the best member's lineage one
member at a time gives the same model, sharding and host-chunked populations agree."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradxform import search
from search_targets import ADAM_SPACE, regression, regression_init, regression_train

S = search
STEPS, GENERATIONS, POP = 5, 4, 8


def run_pbt(**kwargs):
    options = {"steps": STEPS, "generations": GENERATIONS, "fraction": 0.25,
               "resample_probability": 0.0, "seed": 3}
    options.update(kwargs.pop("options", {}))
    return S.minimize(regression(), ADAM_SPACE, strategy="pbt", budget=POP, **options, **kwargs)


@pytest.fixture(scope="module")
def result():
    return run_pbt()


def by_member(result):
    table = {}
    for t in result.trials:
        table[(t.info["member"], t.info["generation"])] = t
    return table


def test_one_compilation_while_learning_rates_change(result):
    assert result.compiles == 1
    table = by_member(result)
    changed = [m for m in range(POP)
               if table[(m, 0)].config["learning_rate"]
               != table[(m, GENERATIONS - 1)].config["learning_rate"]]
    assert changed, "no member's learning rate changed: the test shows nothing"
    assert len(result.trials) == POP * GENERATIONS


def test_exploit_replaces_the_bottom_from_the_top(result):
    table = by_member(result)
    for g in range(1, GENERATIONS):
        previous = np.array([table[(m, g - 1)].value for m in range(POP)])
        order = np.argsort(previous)
        copied = [m for m in range(POP) if table[(m, g)].info["parent"] != m]
        assert sorted(copied) == sorted(order[-2:].tolist())        # 25% of 8
        for m in copied:
            assert table[(m, g)].info["parent"] in order[:2].tolist()
            parent_config = table[(table[(m, g)].info["parent"], g - 1)].config
            for name, value in table[(m, g)].config.items():   # the parent's, times 0.8 or 1.2
                lo, hi = S.Space(ADAM_SPACE)[name].low, S.Space(ADAM_SPACE)[name].high
                assert any(np.isclose(value, np.clip(parent_config[name] * f, lo, hi))
                           for f in (0.8, 1.2))


def test_replaying_the_best_lineage_one_member_at_a_time_gives_the_same_model(result):
    """Walk the best member back through its parents; train that lineage on its own, with
    plain jit, with the configuration each generation had: same loss, same params."""
    table = by_member(result)
    member = result.best_trial.info["member"]
    assert result.best_trial.info["generation"] == GENERATIONS - 1
    lineage = [member]
    for g in range(GENERATIONS - 1, 0, -1):
        lineage.append(table[(lineage[-1], g)].info["parent"])
    lineage = lineage[::-1]                  # the member whose state generation g continues
    root = lineage[0]
    key = jax.random.fold_in(jax.random.PRNGKey(3), root)
    config0 = {k: jnp.float32(v) for k, v in table[(root, 0)].config.items()}
    state = jax.jit(regression_init)(config0, key)
    train = jax.jit(regression_train, static_argnums=2)
    for g in range(GENERATIONS):
        owner = lineage[g]
        config = {k: jnp.float32(v) for k, v in table[(owner, g)].config.items()}
        if g > 0:   # the trial of (owner, g) used the state of lineage[g-1] at the end of g-1
            assert table[(owner, g)].info["parent"] == lineage[g - 1]
        state, loss = train(state, config, STEPS)
        np.testing.assert_allclose(float(loss), table[(owner, g)].value, rtol=2e-4)
    params, _, trained = state
    np.testing.assert_allclose(result.state[0], params, rtol=2e-4, atol=1e-6)
    assert int(result.state[2]) == int(trained) == STEPS * GENERATIONS


def test_take_copies_params_and_optimizer_state():
    from gradxform._src.search.population import PopulationRunner

    space = S.Space(ADAM_SPACE)
    runner = PopulationRunner(regression(), space, seed=0)    # the programs PBT compiled
    configs = space.sample(0, POP)
    state = runner.init(configs, list(range(POP)))
    state, _ = runner.train(state, configs, STEPS)
    rows = [2, 2, 0, 3, 7, 7, 7, 1]
    copied = runner.take(state, rows)
    for before, after in zip(jax.tree.leaves(state), jax.tree.leaves(copied)):
        np.testing.assert_array_equal(np.asarray(after), np.asarray(before)[rows])
    mu = copied[1].inner[0].mu            # Adam's first moment travels with the params
    assert np.abs(np.asarray(mu)).sum() > 0


def test_explore_perturbs_by_the_factors_within_bounds():
    pbt = S.PBT(ADAM_SPACE, steps=1, generations=1, resample_probability=0.0, seed=0)
    config = {"learning_rate": 0.01, "b1": 0.9}
    for _ in range(20):
        new = pbt.explore(config)
        ratio = new["learning_rate"] / config["learning_rate"]
        assert np.isclose(ratio, 0.8) or np.isclose(ratio, 1.2)
        assert new["b1"] in (pytest.approx(0.72), 0.95)     # 0.9 * 1.2 clipped to 0.95
    edge = pbt.explore({"learning_rate": 0.5, "b1": 0.5})
    assert edge["learning_rate"] <= 0.5 and edge["b1"] >= 0.5
    always = S.PBT(ADAM_SPACE, steps=1, generations=1, resample_probability=1.0, seed=0)
    fresh = [always.explore(config)["learning_rate"] for _ in range(10)]
    assert len(set(fresh)) == 10 and all(1e-3 <= v <= 0.5 for v in fresh)


def test_diverging_members_are_replaced():
    space = {"learning_rate": S.Float(1e-3, 1e3, log=True), "b1": S.Float(0.5, 0.95)}

    def init(config, key):
        return regression_init(config, key)

    def train(state, config, steps):
        state, loss = regression_train(state, config, steps)
        return state, jnp.where(config["learning_rate"] > 10.0, jnp.nan, loss)

    result = S.minimize(S.Stateful(init, train), space, strategy="pbt", budget=8, steps=2,
                        generations=2, fraction=0.5, resample_probability=0.0, seed=0)
    first = [t for t in result.trials if t.info["generation"] == 0]
    failed = [t.info["member"] for t in first if not t.ok]
    assert failed and len(failed) <= 4
    second = {t.info["member"]: t for t in result.trials if t.info["generation"] == 1}
    for m in failed:
        assert second[m].info["parent"] != m
        assert first[second[m].info["parent"]].ok


def test_sharded_and_host_chunked_populations_agree(result):
    sharded = run_pbt(mesh=True)
    chunked = run_pbt(max_batch=3)           # 3 members per program, states on the host
    assert sharded.compiles == 1 and chunked.compiles == 1
    for other in (sharded, chunked):
        assert [t.config for t in other.trials] == [t.config for t in result.trials]
        np.testing.assert_allclose([t.value for t in other.trials],
                                   [t.value for t in result.trials], rtol=1e-5)


def test_an_interrupted_run_resumes_from_its_checkpoint(result, tmp_path):
    path = tmp_path / "pbt.json"

    def stop(trials):
        if trials[0].info["generation"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_pbt(checkpoint=path, callback=stop)
    saved = json.loads(path.read_text())
    assert saved["generation"] == 2 and len(saved["tuner"]["trials"]) == 2 * POP
    assert len(list(tmp_path.glob("pbt.json.state-*.npz"))) == 1     # older ones removed
    resumed = run_pbt(checkpoint=path)
    assert resumed.compiles == 0          # the programs of the first run are reused
    assert [t.config for t in resumed.trials] == [t.config for t in result.trials]
    assert [t.info for t in resumed.trials] == [t.info for t in result.trials]
    np.testing.assert_allclose([t.value for t in resumed.trials],
                               [t.value for t in result.trials], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(result.state)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("kwargs,message", [
    ({"steps": 0, "generations": 1}, "PBT: steps must be >= 1, got 0"),
    ({"steps": 1, "generations": 1, "fraction": 0.7}, "PBT: fraction must be in (0, 0.5]"),
    ({"steps": 1, "generations": 1, "factors": (0.8, -1.0)}, "PBT: factors must be positive"),
    ({"steps": 1, "generations": 1, "sampler": "grid"},
     "PBT: sampler must be 'sobol' or 'random'"),
])
def test_pbt_argument_errors(kwargs, message):
    with pytest.raises(ValueError) as info:
        S.PBT(ADAM_SPACE, **kwargs)
    assert message in str(info.value)


def test_population_strategies_need_a_stateful_objective():
    with pytest.raises(TypeError, match="needs a stateful objective: search.Stateful"):
        S.minimize(lambda c: 0.0, ADAM_SPACE, strategy="pbt", budget=4, steps=1, generations=1)
    with pytest.raises(TypeError, match="a Stateful objective needs strategy='halving' or"):
        S.minimize(regression(), ADAM_SPACE, strategy="random", budget=4)
