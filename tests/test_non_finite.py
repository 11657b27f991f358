"""The non-finite rule, for every optimizer of the conformance table (``docs/validation.md``).

A gradient entry that is +inf, -inf or NaN stays in its own place:

1. every finite entry's update, and the state that belongs to finite entries, is exactly what
   the optimizer computes with the non-finite entries replaced by zero (norms, sums, factored
   statistics, trust ratios, orthogonalisation and parameter-free estimates leave them out);
2. in later steps with finite gradients nothing else becomes non-finite (only the bad entry's
   own update, param and per-entry state may stay non-finite);
3. ``skip_non_finite`` and ``dynamic_loss_scale`` recover: the bad step is skipped, the inner
   state is untouched, and the run continues exactly as if the step had not happened.

There is no 0/0 anywhere: zero gradients (with zero params too) give finite updates and state.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from helpers import assert_trees_close, gradient_stream, nested_params
from registry import all_entries, step_arguments

ENTRIES = all_entries()
IDS = [e.name for e in ENTRIES]
PARAMS = nested_params()
GRADS = gradient_stream(PARAMS, 4)
BAD_SHAPE, BAD_INDEX = (4, 3), (1, 2)  # the entry of PARAMS["dense"]["w"] made non-finite
VALUES = {"+inf": np.inf, "-inf": -np.inf, "nan": np.nan}


def _extra(entry, params, grads):
    """The update's extra arguments; a line search gets an objective whose gradient at
    ``params`` is ``grads`` (:func:`registry.objective_at`)."""
    return step_arguments(entry, params, grads, value=2.5)


def _inject(grads, value):
    out = jax.tree.map(lambda x: x, grads)
    out["dense"]["w"] = out["dense"]["w"].at[BAD_INDEX].set(value)
    return out


def _own_entry(x):
    """A bool array: True where ``x`` may differ (the bad entry of a per-entry leaf)."""
    mask = np.zeros(np.shape(x), bool)
    if np.shape(x) == BAD_SHAPE:
        mask[BAD_INDEX] = True
    return mask


def _assert_rest_equal(actual, expected, what):
    flat_a = jax.tree_util.tree_flatten_with_path(actual)[0]
    flat_e = jax.tree_util.tree_flatten_with_path(expected)[0]
    assert jax.tree.structure(actual) == jax.tree.structure(expected), what
    for (path, a), (_, e) in zip(flat_a, flat_e):
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        rest = ~_own_entry(a)
        where = f"{what} at {jax.tree_util.keystr(path)}"
        assert np.all(np.isfinite(a[rest])), f"{where}: a non-finite value spread"
        np.testing.assert_allclose(a[rest], e[rest], rtol=1e-6, atol=1e-30, err_msg=where)


def _assert_confined(tree_, what):
    for path, x in jax.tree_util.tree_flatten_with_path(tree_)[0]:
        x = np.asarray(x, np.float64)
        bad = ~np.isfinite(x) & ~_own_entry(x)
        assert not bad.any(), f"{what} at {jax.tree_util.keystr(path)}: {int(bad.sum())} " \
                              "non-finite entries outside the bad one"


# Entries where part 1 of the rule (finite entries as with the bad entry zeroed) does not
# apply to the update with this file's objective, and why; part 2 (nothing else becomes
# non-finite) is checked for them, and that no finite entry moves.
_NO_STEP = ("with a non-finite entry in the gradient, the objective of this file "
            "(registry.objective_at: <g, x - p> + |x - p|^2 / 2) is NaN at every trial point "
            "(inf * 0), so the line search accepts no step: no finite entry moves, and "
            "info.decrease_error is inf, the documented signal")
NOT_AS_ZEROED = {
    "gradient_descent_linesearch": _NO_STEP,
    # the direction's state (pairs, BFGS matrix, Newton's radius) is still exactly that of the
    # zeroed gradient: checked below; tests/test_non_finite_quasi_newton.py checks the step
    # itself with an objective that stays finite along the finite direction
    "lbfgs": _NO_STEP, "bfgs": _NO_STEP, "newton": _NO_STEP,
}


def _direction_state(state):
    """The state without the line search's part: what the links before it keep."""
    flat = jax.tree_util.tree_flatten(
        state, is_leaf=lambda x: isinstance(x, gx.LinesearchState))[0]
    return [x for x in flat if not isinstance(x, gx.LinesearchState)]


def _without_search_info(state):
    """The state without the line search's ``info`` (its ``decrease_error`` and
    ``curvature_error`` are inf by design when no step is accepted)."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(state)
    return [x for path, x in flat if ".info." not in jax.tree_util.keystr(path)]


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_a_non_finite_entry_stays_in_its_place(entry):
    tx = entry.make(target="quadratic")

    @jax.jit  # one compilation for the 13 steps below (eager, a per-leaf optimizer
    def step(grads, state, params):  # dispatches thousands of small ops)
        updates, state = tx.update(grads, state, params, **_extra(entry, params, grads))
        return updates, state, gx.apply_updates(params, updates)

    state0 = tx.init(PARAMS)
    ref_updates, ref_state, _ = step(_inject(GRADS[0], 0.0), state0, PARAMS)
    for name, value in VALUES.items():
        updates, state, params = step(_inject(GRADS[0], value), state0, PARAMS)
        if entry.name in NOT_AS_ZEROED:
            _assert_confined((updates, _without_search_info(state)),
                             f"{entry.name} {name}, step 1")
            for u in jax.tree.leaves(updates):  # no step: no finite entry moves
                u = np.asarray(u, np.float64)
                assert not np.any(u[~_own_entry(u)]), f"{entry.name} {name}: a step was taken"
            _assert_rest_equal(_direction_state(state), _direction_state(ref_state),
                               f"{entry.name} {name}: the direction's state")
        else:
            _assert_rest_equal(updates, ref_updates, f"{entry.name} {name}: updates")
            _assert_rest_equal(state, ref_state, f"{entry.name} {name}: state")
        for t in (1, 2, 3):
            updates, state, params = step(GRADS[t], state, params)
            _assert_confined((updates, _without_search_info(state), params),
                             f"{entry.name} {name}, step {t + 1}")


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_zero_gradients_and_zero_params_give_no_nan(entry):
    tx = entry.make(target="quadratic")
    update = jax.jit(lambda g, s, p: tx.update(g, s, p, **_extra(entry, p, g)))
    for params in (PARAMS, jax.tree.map(jnp.zeros_like, PARAMS)):
        zeros = jax.tree.map(jnp.zeros_like, params)
        state = tx.init(params)
        for _ in range(2):
            updates, state = update(zeros, state, params)
            # a line search that accepts no step (no descent direction) reports it in its
            # info by an inf error (documented); nothing else may be non-finite
            for x in jax.tree.leaves((updates, _without_search_info(state))):
                assert np.all(np.isfinite(np.asarray(x, np.float64))), entry.name


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_skip_non_finite_and_loss_scaling_recover(entry):
    """The wrapped run with an overflowing step in the middle equals the plain run without it."""
    plain = entry.make(target="quadratic")
    bad = _inject(GRADS[1], np.inf)
    with jax.disable_jit():  # the wrappers' lax.cond runs one branch in Python: no compilation
        expected, p, s = [], PARAMS, plain.init(PARAMS)
        for g in (GRADS[0], GRADS[2]):
            u, s = plain.update(g, s, p, **_extra(entry, p, g))
            p = gx.apply_updates(p, u)
            expected.append(u)
        scale = 4.0
        for wrapper in (gx.skip_non_finite(plain),
                        gx.dynamic_loss_scale(plain, initial_scale=scale, min_scale=1.0)):
            p, s = PARAMS, wrapper.init(PARAMS)
            got = []
            for g in (GRADS[0], bad, GRADS[2]):
                extra = _extra(entry, p, g)  # of the true (unscaled) gradient
                if isinstance(wrapper, gx.dynamic_loss_scale):  # the user scales the loss
                    loss_scale = gx.hyperparams(wrapper, s)["loss_scale"]
                    g = jax.tree.map(lambda x, c=loss_scale: x * c.astype(x.dtype), g)
                inner_before = s.inner.inner
                u, s = wrapper.update(g, s, p, **extra)
                p = gx.apply_updates(p, u)
                got.append(u)
                if g is bad:
                    assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves(u))
                    assert_trees_close(s.inner.inner, inner_before, rtol=0,
                                       what=f"{entry.name}: inner state after a skipped step")
            assert int(s.inner.skipped) == 1
            what = f"{entry.name} in {type(wrapper).__name__}"
            assert_trees_close(got[0], expected[0], rtol=1e-6, what=what)
            assert_trees_close(got[2], expected[1], rtol=1e-5, atol=1e-7, leaf_scale=True,
                               what=what)


def test_clip_by_global_norm_with_an_inf_entry():
    """The issue's example: the finite entries are clipped by the finite entries' norm, not
    zeroed, and the inf entry stays inf in its place."""
    tx = gx.chain(gx.clip_by_global_norm(1.0), gx.sgd(1.0))
    params = {"w": jnp.zeros(3)}
    grads = {"w": jnp.asarray([3.0, np.inf, 4.0])}
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["w"]), [-0.6, -np.inf, -0.8], rtol=1e-6)
    grads = {"w": jnp.asarray([3.0, np.nan, 4.0])}
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["w"])[[0, 2]], [-0.6, -0.8], rtol=1e-6)
    assert np.isnan(np.asarray(updates["w"])[1])
    # step_metrics still reports the overflow
    assert not np.isfinite(float(gx.global_norm({"w": jnp.asarray([3.0, np.inf])})))


def test_adam_keeps_the_bad_entry_non_finite_and_the_rest_exact():
    """The documented state: Adam's second moment of the bad entry is inf from then on."""
    tx = gx.adam(1e-3)
    params = {"w": jnp.ones(3)}
    u, state = tx.update({"w": jnp.asarray([1.0, np.inf, 2.0])}, tx.init(params), params)
    mu, nu = state.inner[0]
    assert np.isinf(float(nu["w"][1])) and np.isinf(float(mu["w"][1]))
    assert np.isnan(float(u["w"][1]))
    np.testing.assert_allclose(np.asarray(u["w"])[[0, 2]], [-1e-3, -1e-3], rtol=1e-4)
