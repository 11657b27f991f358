"""The trust region of the Bayes tuner: the grow/shrink rule against hand-computed sequences,
the box, the ascent confined to it, and the tuner's proposals inside it."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradxform import search
from gradxform._src.search import acquisition as acq
from gradxform._src.search import gp
from gradxform._src.search import trust_region as tr
from gradxform._src.search.bayes import Bayes

NAN = float("nan")


def sides(values, start, rounds=None):
    """The side after each prefix of ``values`` (past the initial design)."""
    return [tr.length(values[:n], start, None if rounds is None else rounds[:n])
            for n in range(start, len(values) + 1)]


def test_constants_are_turbos_but_the_failure_tolerance():
    assert (tr.INITIAL, tr.MAXIMUM, tr.MINIMUM, tr.SUCCESSES, tr.FAILURES) == (
        0.8, 1.6, 1 / 128, 3, 3)


def test_three_improvements_double_the_side_up_to_the_maximum():
    # Design 10, 8 (best 8); then 7, 6, 5 improve three times in a row: 0.8 -> 1.6; three
    # more improvements would double again but the side stays at the maximum 1.6.
    values = [10.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0]
    assert sides(values, 2) == [0.8, 0.8, 0.8, 1.6, 1.6, 1.6, 1.6]


def test_three_failures_halve_the_side_and_a_failed_trial_is_a_failure():
    # Best 8 after the design; 9 fails, NaN (failed trial) fails, 8 ties (fails), -> 0.4;
    # 7.999 is within the relative margin 1e-3 * 8 of 8 (fails), 7 improves (resets the
    # failures), then 7, 7, 7 -> 0.2.
    values = [8.0, 9.5, 9.0, NAN, 8.0, 7.999, 7.0, 7.0, 7.0, 7.0]
    assert sides(values, 2) == [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.4, 0.4, 0.2]


def test_an_improvement_breaks_a_run_of_failures_and_a_failure_a_run_of_successes():
    # 5 improves, 6 fails, 4, 3 improve, 9 fails, 2 improves: never three in a row either way.
    values = [8.0, 5.0, 6.0, 4.0, 3.0, 9.0, 2.0, 9.0, 9.0]
    assert sides(values, 1) == [0.8] * 8 + [0.8]
    assert tr.length(values + [9.0], 1) == 0.4


def test_a_collapsed_region_starts_again_from_the_initial_side():
    # 0.8 halves 6 times to 0.0125 after 18 failures; the 7th halving, 0.00625 < 1/128,
    # restarts at 0.8.
    values = [1.0] + [2.0] * 21
    got = sides(values, 1)
    assert got[18] == 0.8 / 2 ** 6
    assert got[20] == 0.8 / 2 ** 6 and got[21] == 0.8


def test_a_round_counts_as_one_success_or_its_size_in_failures():
    # Rounds of 4 that each contain one improvement: three successful rounds double the side.
    # Counted trial by trial, the three non-improving trials of each round halve it instead.
    values = [10.0, 7.0, 9.0, 9.0, 9.0, 6.0, 9.0, 9.0, 9.0, 5.0, 9.0, 9.0, 9.0]
    rounds = [0] + [1] * 4 + [2] * 4 + [3] * 4
    assert tr.length(values, 1, rounds) == 1.6
    assert tr.length(values, 1) == 0.1
    # One failed round of 4 is 4 failures: the side halves at once.
    assert tr.length([10.0, 11.0, 12.0, 13.0, 14.0], 1, [0, 1, 1, 1, 1]) == 0.4
    # A round of 2 failures does not, two such rounds do (4 >= 3, once).
    assert tr.length([10.0, 11.0, 12.0], 1, [0, 1, 1]) == 0.8
    assert tr.length([10.0, 11.0, 12.0, 11.0, 12.0], 1, [0, 1, 1, 2, 2]) == 0.4


def test_annealed_floor_against_a_hand_computed_sequence():
    # Two initial values, then failures: the side halves after every third one.
    values = [5.0, 4.0] + [10.0] * 9
    got = [tr.floor(s, 1.0, 1.0) for s in sides(values, 2)]
    assert got == pytest.approx([0.8] * 3 + [0.2] * 3 + [0.05] * 3 + [0.0125])
    got = [tr.floor(s, 0.5, 2.0) for s in sides(values, 2)]
    assert got == pytest.approx([0.4] * 3 + [0.05] * 3 + [0.00625] * 3 + [0.00078125])
    # Without decay the floor is a fixed fraction of the side (the lengthscale_floor rule).
    assert [tr.floor(s, 0.4) for s in sides(values, 2)] == pytest.approx(
        [0.32] * 3 + [0.16] * 3 + [0.08] * 3 + [0.04])


def test_box_follows_the_length_scales_and_stays_in_the_cube():
    lo, hi = tr.box(np.array([0.5, 0.5]), np.log([math.e, 1 / math.e]), 0.2)
    np.testing.assert_allclose(hi - lo, [0.2 * math.e, 0.2 / math.e], rtol=1e-12)
    np.testing.assert_allclose((lo + hi) / 2, [0.5, 0.5], rtol=1e-12)
    # Equal length scales of any size: a cube of side 0.2; clipped at the cube's faces.
    lo, hi = tr.box(np.array([0.05, 0.9]), np.log([30.0, 30.0]), 0.2)
    np.testing.assert_allclose(lo, [0.0, 0.8], atol=1e-12)
    np.testing.assert_allclose(hi, [0.15, 1.0], atol=1e-12)


def test_the_ascent_stays_in_its_box_and_finds_the_box_maximum():
    # The acquisition's global maximum (near the best point, 0.3, 0.6) lies outside the box
    # [0.6, 0.9] x [0.1, 0.4]: the ascent must end on the box, at its best grid point.
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        x = rng.random((12, 2))
        y = -np.sum((x - np.array([0.3, 0.6])) ** 2, axis=1)
        y = (y - y.mean()) / y.std()
        params = gp.Params(jnp.asarray(np.log([0.4, 0.4])), jnp.asarray(0.0),
                           jnp.asarray(-12.0))
        post = gp.condition(params, gp.make_data(x, y))
        best = jnp.asarray(y.max())
        lo, hi = np.array([0.6, 0.1]), np.array([0.9, 0.4])
        g0, g1 = np.linspace(lo[0], hi[0], 301), np.linspace(lo[1], hi[1], 301)
        grid = jnp.asarray(np.stack(np.meshgrid(g0, g1, indexing="ij"), -1).reshape(-1, 2))
        cands = jnp.asarray(lo + (hi - lo) * rng.random((64, 2)))
        xs, values, _ = jax.jit(lambda c: acq.maximize(
            post, best, c, jnp.asarray([True, True]), starts=4, steps=60,
            lower=jnp.asarray(lo[None]), upper=jnp.asarray(hi[None])))(cands)
        top = jax.jit(lambda q: jnp.max(acq.acquisition(post, q, best)))
        grid_max = float(top(grid))
        everywhere = float(top(jnp.asarray(rng.random((grid.shape[0], 2)))))
    xs = np.asarray(xs)
    assert np.all((xs >= lo - 1e-12) & (xs <= hi + 1e-12))
    assert float(values[0]) >= grid_max - 1e-3
    assert everywhere > grid_max + 1.0  # the box does constrain the answer


def test_proposals_lie_in_the_trust_region_and_the_option_turns_it_off():
    space = {"a": search.Float(0.0, 1.0), "b": search.Float(0.0, 1.0),
             "c": search.Categorical(["x", "y", "z"])}

    def objective(c):
        return (c["a"] - 0.3) ** 2 + 3 * (c["b"] - 0.7) ** 2 + (c["c"] != "y")

    tuner = Bayes(space, seed=0, initial=4)
    for _ in range(5):
        configs = tuner.ask(2)
        tuner.tell(configs, [objective(c) for c in configs])
    x, y, _ = tuner.observations()
    rounds = [t.round for t in tuner.trials]
    side = tr.length(y, tuner.initial, rounds)
    proposal = tuner.ask(1)[0]
    # The fit used for the proposal is the one the tuner keeps: its box, around the best
    # observation, holds the float coordinates (the categorical one is not bounded).
    lo, hi = tr.box(x[np.argmin(y)], np.asarray(tuner._params.log_lengthscale)[0], side)
    u = tuner.space.encode(proposal)
    assert np.all((u[:2] >= lo[:2] - 1e-9) & (u[:2] <= hi[:2] + 1e-9)), (u, lo, hi)
    assert np.prod(hi[:2] - lo[:2]) < 0.5  # a real restriction
    assert Bayes(space, trust_region=False).trust_region is False


def test_trust_region_argument_is_checked():
    with pytest.raises(ValueError, match="Bayes: trust_region must be True or False, got 1"):
        Bayes({"a": search.Float(0.0, 1.0)}, trust_region=1)  # type: ignore[arg-type]
