"""Every ordered pair of the wrappers with a clock or a copy of the params: the verdict of the
composition table, and for the pairs it accepts, what they do on a stream with one NaN.

Observed from outside (updates, params, averaged and slow params), never from the wrappers'
internals: updates land exactly at the applied steps the table implies, the windows of
``accumulate`` stay aligned after a skipped micro-batch, the EMA is the average of the params
after the applied updates only, and lookahead syncs every ``sync_period`` applied updates.
"""

import itertools
import re
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from gradxform._src.wrappers import composition

K, SYNC, DECAY, NAN_AT, STEPS = 4, 2, 0.5, 5, 12
P0 = {"w": jnp.asarray([1.0, -0.5, 2.0])}


def wrap(kind, inner, drop=True):
    if kind == "accumulate":
        return gx.accumulate(inner, every_k=K, drop_non_finite=drop)
    if kind == "skip_non_finite":
        return gx.skip_non_finite(inner)
    if kind == "dynamic_loss_scale":  # a scale of 1 throughout: only its skipping shows
        return gx.dynamic_loss_scale(inner, initial_scale=1.0, min_scale=1.0)
    if kind == "ema_params":
        return gx.ema_params(inner, decay=DECAY)
    return gx.lookahead(inner, sync_period=SYNC, slow_step_size=0.5)


PAIRS = [(o, i, d) for o, i in itertools.product(composition.KINDS, repeat=2)
         for d in ((True, False) if "accumulate" in (o, i) else (True,))]


def build(outer, inner, drop):
    return wrap(outer, wrap(inner, gx.sgd(0.1, momentum=0.5), drop=drop), drop=drop)


def expected_rule(outer, inner, drop):
    for rule in composition.RULES:
        if rule.outer == outer and rule.inner == inner:
            probe_outer = type("O", (), {"drop_non_finite": drop})()
            if rule.applies(probe_outer, None, True):
                return rule
    raise AssertionError(f"no rule for {outer}({inner})")


def skips(outer, inner, drop):
    """Whether some wrapper of the pair keeps a NaN out of the params (then the stream has one)."""
    kinds = {outer, inner}
    return bool({"skip_non_finite", "dynamic_loss_scale"} & kinds) or (
        "accumulate" in kinds and drop)


def applied_steps(outer, inner, drop):
    kinds = {outer, inner}
    if "accumulate" in kinds:
        ends = [t for t in range(STEPS) if t % K == K - 1]
        window_skipped = (outer == "accumulate" and not drop
                          and inner in ("skip_non_finite", "dynamic_loss_scale"))
        return [t for t in ends if not (window_skipped and t // K == NAN_AT // K)]
    if kinds & {"skip_non_finite", "dynamic_loss_scale"}:
        return [t for t in range(STEPS) if t != NAN_AT]
    return list(range(STEPS))


def trajectory(opt, with_nan):
    state = opt.init(P0)
    step = jax.jit(lambda p, s, g: opt.update(g, s, p))
    params, out = P0, []
    for t in range(STEPS):
        value = jnp.nan if (with_nan and t == NAN_AT) else 0.5 + t
        updates, state = step(params, state, {"w": jnp.full(3, value, jnp.float32)})
        params = gx.apply_updates(params, updates)
        out.append((np.asarray(updates["w"]), np.asarray(params["w"]), state))
    return out


@pytest.mark.parametrize("outer,inner,drop", PAIRS,
                         ids=[f"{o}({i}){'' if d else '-keep'}" for o, i, d in PAIRS])
def test_pair(outer, inner, drop):
    rule = expected_rule(outer, inner, drop)
    if rule.verdict == "error":
        with pytest.raises(ValueError, match=f"{outer}: {inner} inside it"):
            build(outer, inner, drop)
        return
    if rule.verdict == "warning":
        with pytest.warns(UserWarning, match=f"{outer}: {inner} inside it"):
            build(outer, inner, drop)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt = build(outer, inner, drop)
    with_nan = skips(outer, inner, drop)
    run = trajectory(opt, with_nan)
    applied = applied_steps(outer, inner, drop)
    moved = [t for t, (u, _, _) in enumerate(run) if np.any(u != 0)]
    assert moved == applied, (moved, applied)
    assert all(np.all(np.isfinite(p)) for _, p, _ in run)
    state = run[-1][2]
    if "ema_params" in (outer, inner):  # the EMA of the params after the applied updates
        ema = np.asarray(P0["w"])
        for t in applied:
            ema = DECAY * ema + (1 - DECAY) * run[t][1]
        np.testing.assert_allclose(gx.averaged_params(opt, state)["w"], ema, rtol=1e-6)
    if "lookahead" in (outer, inner):  # slow weights move at every SYNC-th applied update
        slow = [np.asarray(gx.lookahead_slow_params(opt, s, P0)["w"]) for _, _, s in run]
        changed = [t for t in range(STEPS)
                   if not np.array_equal(slow[t], slow[t - 1] if t else np.asarray(P0["w"]))]
        assert changed == applied[SYNC - 1::SYNC], (changed, applied)
    if with_nan and outer in ("skip_non_finite", "dynamic_loss_scale") and inner == "accumulate":
        counters = gx.step_metrics(opt, state, P0)
        assert int(counters["skipped"]) == 1 and int(counters["dropped"]) == 1


def test_skipped_micro_batch_does_not_shift_the_windows():
    """The issue's case: updates at micro-steps 3, 7, 11 (not 4, 8), the last window applied."""
    opt = gx.skip_non_finite(gx.accumulate(gx.sgd(0.1), every_k=4))
    run = trajectory(opt, with_nan=True)
    assert [t for t, (u, _, _) in enumerate(run) if np.any(u != 0)] == [3, 7, 11]
    # the window with the NaN is the mean of its three finite micro-batches
    np.testing.assert_allclose(run[7][0], -0.1 * np.mean([4.5, 6.5, 7.5]), rtol=1e-6)


def test_ema_decays_per_applied_update_not_per_micro_batch():
    opt = gx.ema_params(gx.accumulate(gx.sgd(1.0), every_k=4), decay=0.9)
    state = opt.init(P0)
    for _ in range(4):
        _, state = opt.update({"w": jnp.ones(3)}, state, P0)
    # one applied update: the average moved once, by (1 - 0.9), not by 1 - 0.9**4
    np.testing.assert_allclose(gx.averaged_params(opt, state)["w"],
                               P0["w"] - 0.1 * 1.0, rtol=1e-6)


def test_the_documented_table_is_the_code_table():
    page = (Path(__file__).resolve().parent.parent / "docs" / "wrappers.md").read_text()
    assert "[[wrapper-composition]]" in page
    table = composition.table_markdown()
    assert table.count("\n") == len(composition.RULES) + 1
    pairs = {(r.outer, r.inner) for r in composition.RULES}
    assert pairs == set(itertools.product(composition.KINDS, repeat=2))
    for rule in composition.RULES:
        assert re.search(re.escape(f"| `{rule.outer}` | `{rule.inner}` |"), table)


def test_conditional_wrappers_tell_applied_updates():
    """conditionally_transform passes the updates through at the steps it skips (they reach
    the params); conditionally_mask zeroes them (they do not)."""
    every_other = lambda t: t % 2 == 0  # noqa: E731
    for cls, moved in ((gx.conditionally_transform, list(range(6))),
                       (gx.conditionally_mask, [0, 2, 4])):
        opt = gx.ema_params(gx.chain(cls(gx.sgd(0.1), every_other), gx.scale(-1.0)), decay=0.5)
        state, params, history = opt.init(P0), P0, []
        for t in range(6):
            updates, state = opt.update({"w": jnp.full(3, -1.0 - t)}, state, params)
            params = gx.apply_updates(params, updates)
            history.append(np.asarray(params["w"]))
        ema = np.asarray(P0["w"])
        for t in moved:
            ema = 0.5 * ema + 0.5 * history[t]
        np.testing.assert_allclose(gx.averaged_params(opt, state)["w"], ema, rtol=1e-6)
        assert int(gx.step_metrics(opt, state, P0)["skipped"]) == 3
