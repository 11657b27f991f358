"""The Bayes tuner: better than random search, distinct batches, discrete parameters, failed
trials, resuming, and a bounded number of compilations."""

import json
import math
import re

import numpy as np
import pytest

from gradxform import search
from gradxform._src.search import bayes as bayes_module
from gradxform._src.search import trust_region as tr
from gradxform._src.search.bayes import Bayes

BRANIN_MIN = 0.397887357729738
BRANIN = {"x1": search.Float(-5.0, 10.0), "x2": search.Float(0.0, 15.0)}


def branin(c):
    x1, x2 = c["x1"], c["x2"]
    b, k, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + k * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def run(tuner, objective, budget, batch=1):
    while len(tuner.trials) < budget:
        configs = tuner.ask(min(batch, budget - len(tuner.trials)))
        tuner.tell(configs, [objective(c) for c in configs])
    return tuner


def test_bayes_beats_random_search_on_branin():
    # Medians over seeds: random search after 20 trials stays above 1 (its median over 10
    # seeds is about 1.5); Bayes reaches a few hundredths. A factor of 5 leaves ample room.
    budget = 20
    random = [run(search.Random(BRANIN, seed=s), branin, budget).best_value - BRANIN_MIN
              for s in range(10)]
    bayes = [run(Bayes(BRANIN, seed=s), branin, budget).best_value - BRANIN_MIN
             for s in range(3)]
    assert np.median(bayes) < np.median(random) / 5, (bayes, random)


def test_batch_proposals_are_distinct_and_new():
    tuner = run(Bayes(BRANIN, seed=1), branin, 8)
    configs = tuner.ask(4)
    keys = {tuner.space.key(c) for c in configs}
    assert len(keys) == 4
    assert not keys & {tuner.space.key(t.config) for t in tuner.trials}
    assert len(tuner.pending) == 4
    # Pending configurations are fantasised, not proposed again.
    more = tuner.ask(2)
    assert not {tuner.space.key(c) for c in more} & keys


def test_discrete_space_proposes_every_remaining_configuration():
    space = {"n": search.Int(0, 3), "opt": search.Categorical(["adam", "lion"])}
    tuner = Bayes(space, seed=0)
    every = [{"n": n, "opt": o} for n in range(4) for o in ("adam", "lion")]
    told = every[:6]
    tuner.tell(told, [float(c["n"]) + (c["opt"] == "lion") for c in told])
    configs = tuner.ask(2)
    assert sorted(tuner.space.key(c) for c in configs) == sorted(
        tuner.space.key(c) for c in every[6:])
    for c in configs:
        assert isinstance(c["n"], int) and c["opt"] in ("adam", "lion")


def test_failed_trials_do_not_break_the_search():
    tuner = Bayes(BRANIN, seed=2, initial=4)
    configs = tuner.ask(6)
    values = [branin(c) for c in configs]
    values[1], values[4] = float("nan"), float("inf")
    tuner.tell(configs, values)
    tuner.tell(tuner.ask(1), [None])                     # not a number: failed as well
    assert sum(not t.ok for t in tuner.trials) == 3
    proposal = tuner.ask(1)[0]
    assert np.isfinite(branin(proposal))
    assert tuner.best_value == min(v for v in values if np.isfinite(v))


def test_resume_gives_the_same_proposals():
    a = run(Bayes(BRANIN, seed=3), branin, 9)
    state = json.loads(json.dumps(a.state_dict()))
    b = Bayes(BRANIN, seed=3)
    b.load_state_dict(state)
    assert b.ask(2) == a.ask(2)
    # The same seed and the same told values give the same proposals from scratch.
    c = run(Bayes(BRANIN, seed=3), branin, 9)
    assert c.ask(2) == b.pending
    assert c.ask(1) == a.ask(1)


def test_no_recompilation_as_observations_grow_within_a_capacity():
    # Capacity 64 from the first GP proposal to 64 trials: the fits (full and warm-started) and
    # the acquisition (single points and batches) compile once.
    tuner = run(Bayes(BRANIN, seed=4), branin, 9)
    tuner.tell(tuner.ask(1), [1.0])
    before = dict(bayes_module.TRACE_COUNTS)
    run(tuner, branin, 20)
    run(tuner, branin, 28, batch=4)
    assert bayes_module.TRACE_COUNTS == before


def test_ucb_and_initial_design():
    tuner = Bayes(BRANIN, seed=5, acquisition="ucb", initial=6)
    first = tuner.ask(6)
    assert len({tuner.space.key(c) for c in first}) == 6
    tuner.tell(first, [branin(c) for c in first])
    run(tuner, branin, 8)
    assert len(tuner.trials) == 8


@pytest.mark.parametrize("kwargs, message", [
    ({"acquisition": "ei"}, "acquisition must be one of logei, ucb, logpi, ts, hedge, got 'ei'"),
    ({"batch": "kb"}, "batch must be one of believer, qlogei, got 'kb'"),
    ({"initial": 0}, "initial must be >= 1, got 0"),
    ({"candidates": 100}, "candidates must be a power of two"),
    ({"beta": -1.0}, "beta must be a number >= 0, got -1.0"),
    ({"warp": "log"}, "warp must be one of auto, power, box-cox, None, got 'log'"),
    ({"floor_decay": -1.0}, "floor_decay must be a number in [0, 10], got -1.0"),
    ({"local_side": 2.0}, "local_side must be a number in [0, 1.6], got 2.0"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match="Bayes: " + re.escape(message)):
        Bayes(BRANIN, **kwargs)


def test_initial_design_of_a_discrete_space_does_not_repeat_itself():
    space = {"n": search.Int(0, 2), "opt": search.Categorical(["adam", "lion"])}
    tuner = Bayes(space, seed=0, initial=6)
    configs = tuner.ask(6)
    assert len({tuner.space.key(c) for c in configs}) == 6


def test_lengthscale_floor_follows_the_trust_region():
    # The fitted length scales stay above floor x the region's base side (0.8 at first).
    tuner = run(Bayes(BRANIN, seed=7, lengthscale_floor=0.5), branin, 9)
    assert np.all(np.exp(tuner._params.log_lengthscale) >= 0.5 * 0.8 * (1 - 1e-12))
    free = run(Bayes(BRANIN, seed=7), branin, 9)
    assert np.min(np.exp(free._params.log_lengthscale)) < 0.4
    with pytest.raises(ValueError, match="Bayes: lengthscale_floor must be a number in"):
        Bayes(BRANIN, lengthscale_floor=-1.0)


def test_annealed_floor_fades_with_the_region():
    # floor_decay=1: length scales >= 0.5 (L / 0.8) L, with L replayed from the told values.
    tuner = run(Bayes(BRANIN, seed=7, lengthscale_floor=0.5, floor_decay=1.0), branin, 14)
    _, y, _ = tuner.observations()
    side = tr.length(y, tuner.initial)
    assert side < 0.8  # the region has shrunk: the floor is below its fixed-fraction value
    tuner.ask(1)
    ell = np.exp(tuner._params.log_lengthscale)
    assert np.all(ell >= 0.5 * (side / 0.8) * side * (1 - 1e-12)), (ell, side)


def test_local_phase_proposes_in_the_region_reuses_the_programs_and_resumes():
    def make():
        return Bayes(BRANIN, seed=4, local_side=1.6)  # local as soon as the box holds 4 points

    tuner = run(make(), branin, 12)
    before = dict(bayes_module.TRACE_COUNTS)
    run(tuner, branin, 16)
    assert bayes_module.TRACE_COUNTS == before  # the local fit is the full fit's program
    x, y, _ = tuner.observations()
    side = tr.length(y, tuner.initial)
    state = json.loads(json.dumps(tuner.state_dict()))
    proposal = tuner.ask(1)[0]
    log_ell = np.asarray(tuner._params.log_lengthscale)[0]  # the fit of all the data
    assert tuner._local_box(x, -y, log_ell, side) is not None  # the local phase is on
    lo, hi = tr.box(x[np.argmin(y)], log_ell, side)
    u = tuner.space.encode(proposal)
    assert np.all((u >= lo - 1e-9) & (u <= hi + 1e-9)), (u, lo, hi)
    # The same proposal after a restore, and another one without the local phase.
    default = Bayes(BRANIN, seed=4)
    default.load_state_dict(state)
    assert default.ask(1) != [proposal]
    resumed = make()
    resumed.load_state_dict(state)
    assert resumed.ask(1) == [proposal]
