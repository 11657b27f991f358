"""Parity with optax (and ``optax.contrib``) for the Adam variants and the adaptive classics.

Each case runs gradxform and optax side by side for 120 steps on ``helpers.nested_params()``
(dicts, lists, tuples, a None leaf, a scalar, vectors, matrices) with a fixed stream of
gradients of varied magnitude, and compares the params after every step and the optimizer state
at the end: float32 to rtol 1e-6 (absolute floor 1e-6 times the leaf's largest magnitude),
float64 to rtol 1e-12 (floor 1e-12). optax runs under standard dtype promotion.

Deliberate differences, and how optax's numbers are reached:

* ADOPT: ``optax.contrib.scale_by_adopt`` forms ``1 - b2`` *after* casting ``b2`` to float32
  (it selects ``b2`` or 0 with ``jnp.where`` first); gradxform forms it from the number given,
  before any cast (see ``gradxform._src.tree.complement``). For ``b2 = 0.9999`` the two weights
  of the new gradient differ by 1.7e-4 relatively. Passing ``b1``, ``b2`` as float32 arrays
  gives optax's float32 numbers; that is the float32 case here. In float64 both are exact.
* Rprop: ``optax.rprop`` (0.2.8) returns the *previous* step's signed step (its first update is
  0, and every later one lags by a step), while its state holds the current one. gradxform takes
  the current step, as Riedmiller & Braun, Igel & Hüsken and torch do. ``test_rprop_*`` checks
  that the two states agree at every step and that optax's update is gradxform's, one step late.
* Adan: optax weights the gradient difference by ``1 - b2``, the paper by ``b2``; the default
  is optax's (compared here), the paper's is compared with the NumPy reference
  (``tests/test_adam_variants.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import gradxform as gx
from helpers import assert_trees_close, gradient_stream, nested_params, standard_promotion

STEPS = 120
F32 = np.float32


def fields(*names, gx_link=0, ox_link=0, ox_names=None):
    """Pick the named state fields of link ``gx_link`` (gradxform) and ``ox_link`` (optax)."""
    ox_names = ox_names or names

    def pick(gx_state, ox_state):
        g, o = gx_state.inner[gx_link], ox_state[ox_link]
        return tuple(getattr(g, n) for n in names), tuple(getattr(o, n) for n in ox_names)

    return pick


def adopt_optax(b1=0.9, b2=0.9999, eps=1e-6, weight_decay=None, lr=1e-2, **kwargs):
    links = [optax.contrib.scale_by_adopt(b1, b2, eps, **kwargs)]
    if weight_decay is not None:
        links.append(optax.add_decayed_weights(weight_decay))
    links.append(optax.scale_by_learning_rate(lr))
    return optax.chain(*links)


def f32_hyper(**kwargs):
    """Hyperparameters as float32 arrays (optax's rounding; see the module docstring)."""
    return {k: jnp.asarray(v, jnp.float32) for k, v in kwargs.items()}


# (id, gradxform in float32, gradxform in float64, optax, state picker).
# A gradxform entry of None means "the same as for float32".
CASES = [
    ("amsgrad", gx.amsgrad(1e-2), None, optax.amsgrad(1e-2), fields("mu", "nu", "nu_max")),
    ("amsgrad_paper_form",
     gx.amsgrad(1e-2, bias_correction_mu=False, bias_correction_nu=False, eps_root=1e-8), None,
     optax.amsgrad(1e-2, bias_correction_mu=False, bias_correction_nu=False, eps_root=1e-8),
     fields("mu", "nu", "nu_max")),
    ("nadam", gx.nadam(1e-2), None, optax.nadam(1e-2), fields("mu", "nu")),
    ("nadamw", gx.nadamw(1e-2, weight_decay=0.1), None, optax.nadamw(1e-2, weight_decay=0.1),
     fields("mu", "nu")),
    ("radam", gx.radam(1e-2), None, optax.radam(1e-2), fields("mu", "nu")),
    ("radam_nesterov_threshold4", gx.radam(1e-2, b2=0.99, threshold=4.0, nesterov=True), None,
     optax.radam(1e-2, b2=0.99, threshold=4.0, nesterov=True), fields("mu", "nu")),
    ("adamax", gx.adamax(1e-2), None, optax.adamax(1e-2), fields("mu", "nu")),
    ("adamaxw", gx.adamaxw(1e-2, b2=0.99, weight_decay=0.1), None,
     optax.adamaxw(1e-2, b2=0.99, weight_decay=0.1), fields("mu", "nu")),
    ("adabelief", gx.adabelief(1e-2), None, optax.adabelief(1e-2), fields("mu", "nu")),
    ("adabelief_nesterov_paper_eps", gx.adabelief(1e-2, eps=1e-8, eps_root=1e-8, nesterov=True),
     None, optax.adabelief(1e-2, eps=1e-8, eps_root=1e-8, nesterov=True), fields("mu", "nu")),
    ("yogi", gx.yogi(1e-2), None, optax.yogi(1e-2), fields("mu", "nu")),
    ("yogi_options", gx.yogi(1e-2, eps=1e-4, eps_root=1e-6, initial_accumulator_value=0.01),
     None,
     optax.chain(optax.scale_by_yogi(eps=1e-4, eps_root=1e-6, initial_accumulator_value=0.01),
                 optax.scale_by_learning_rate(1e-2)),
     fields("mu", "nu")),
    ("adan", gx.adan(1e-2), None, optax.adan(1e-2), fields("m", "v", "n", "prev_grad",
                                                           ox_names=("m", "v", "n", "g"))),
    ("adan_weight_decay", gx.adan(1e-2, b1=0.9, b3=0.999, eps_root=0.0, weight_decay=0.1),
     None, optax.adan(1e-2, b1=0.9, b3=0.999, eps_root=0.0, weight_decay=0.1),
     fields("m", "v", "n", "prev_grad", ox_names=("m", "v", "n", "g"))),
    ("adopt", gx.adopt(1e-2, **f32_hyper(b1=0.9, b2=0.9999)), gx.adopt(1e-2), adopt_optax(),
     fields("mu", "nu")),
    ("adopt_nesterov_b2_0.99",
     gx.adopt(1e-2, **f32_hyper(b1=0.8, b2=0.99), nesterov=True),
     gx.adopt(1e-2, b1=0.8, b2=0.99, nesterov=True),
     adopt_optax(0.8, 0.99, nesterov=True), fields("mu", "nu")),
    ("adopt_no_clipping", gx.adopt(1e-2, **f32_hyper(b1=0.9, b2=0.9999), use_clipping=False),
     gx.adopt(1e-2, use_clipping=False), adopt_optax(use_clipping=False), fields("mu", "nu")),
    ("adoptw", gx.adoptw(1e-2, **f32_hyper(b1=0.9, b2=0.9999), weight_decay=0.1),
     gx.adoptw(1e-2, weight_decay=0.1), adopt_optax(weight_decay=0.1), fields("mu", "nu")),
    ("ademamix", gx.ademamix(1e-2, b3=0.99, weight_decay=0.1), None,
     optax.contrib.ademamix(1e-2, b3=0.99, weight_decay=0.1), fields("m1", "m2", "nu")),
    ("ademamix_defaults", gx.ademamix(1e-2, eps_root=1e-8), None,
     optax.contrib.ademamix(1e-2, eps_root=1e-8), fields("m1", "m2", "nu")),
    ("adadelta", gx.adadelta(0.5, weight_decay=0.05), None,
     optax.adadelta(0.5, weight_decay=0.05), fields("e_g", "e_x", gx_link=1, ox_link=1)),
    ("adadelta_rho_0.95", gx.adadelta(1.0, rho=0.95, eps=1e-5), None,
     optax.adadelta(1.0, rho=0.95, eps=1e-5), fields("e_g", "e_x", gx_link=1, ox_link=1)),
]


def _history(tx, params, grads, apply):
    """Params after every step and the final state (one jitted step, run in a loop)."""
    step = jax.jit(lambda p, s, g: _apply(tx.update(g, s, p), p, apply))
    state, history = tx.init(params), []
    for g in grads:
        params, state = step(params, state, g)
        history.append(params)
    return history, state


def _apply(result, params, apply):
    updates, state = result
    return apply(params, updates), state


def _run_pair(gx_tx, ox_tx, dtype, pick, tol):
    params = nested_params(dtype)
    grads = gradient_stream(params, STEPS)
    ps_gx, st_gx = _history(gx_tx, params, grads, gx.apply_updates)
    with standard_promotion():
        ps_ox, st_ox = _history(ox_tx, params, grads, optax.apply_updates)
    for t, (mine, theirs) in enumerate(zip(ps_gx, ps_ox)):
        assert_trees_close(mine, theirs, rtol=tol, atol=tol, what=f"params after step {t + 1}",
                           leaf_scale=True)
    mine, theirs = pick(st_gx, st_ox)
    assert_trees_close(mine, theirs, rtol=tol, atol=tol, what="state", leaf_scale=True)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_parity_float32(case):
    _, gx_tx, _, ox_tx, pick = case
    _run_pair(gx_tx, ox_tx, jnp.float32, pick, 1e-6)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_parity_float64(case):
    _, gx32, gx64, ox_tx, pick = case
    with jax.enable_x64(True):
        _run_pair(gx64 if gx64 is not None else gx32, ox_tx, jnp.float64, pick, 1e-12)


RPROP_CASES = [
    ("defaults", dict(learning_rate=1e-2)),
    ("bounds", dict(learning_rate=0.1, eta_minus=0.3, eta_plus=1.5, min_step_size=0.02,
                    max_step_size=0.2)),
]


def _updates_and_states(tx, params, grads):
    step = jax.jit(tx.update)
    state, out = tx.init(params), []
    for g in grads:
        u, state = step(g, state, params)
        out.append((u, state))
    return out


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("kwargs", [c[1] for c in RPROP_CASES], ids=[c[0] for c in RPROP_CASES])
def test_rprop_state_matches_optax_and_optax_update_lags(kwargs, dtype):
    with jax.enable_x64(dtype == "f64"):
        params = nested_params(jnp.float32 if dtype == "f32" else jnp.float64)
        grads = gradient_stream(params, STEPS)
        mine = _updates_and_states(gx.rprop(**kwargs), params, grads)
        with standard_promotion():
            theirs = _updates_and_states(optax.rprop(**kwargs), params, grads)
        prev = jax.tree.map(jnp.zeros_like, params)
        for t, ((u_gx, s_gx), (u_ox, s_ox)) in enumerate(zip(mine, theirs)):
            link_gx, link_ox = s_gx.inner[0], s_ox[0]
            assert_trees_close((link_gx.step_sizes, link_gx.prev_updates),
                               (link_ox.step_sizes, link_ox.prev_updates), rtol=0, atol=0,
                               what=f"state after step {t + 1}")
            # optax's update at step t is gradxform's signed step of step t - 1, or 0 where the
            # gradient's sign flipped at step t.
            flipped = jax.tree.map(lambda g, p: np.sign(g) * np.sign(p) < 0, grads[t], prev)
            lagged = jax.tree.map(lambda f, p: np.where(f, 0.0, -np.asarray(p)), flipped, prev)
            assert_trees_close(u_ox, lagged, rtol=0, atol=0, what=f"optax update {t + 1}")
            np.testing.assert_array_equal(
                np.concatenate([np.ravel(x) for x in jax.tree.leaves(u_gx)]),
                -np.concatenate([np.ravel(x) for x in jax.tree.leaves(link_gx.prev_updates)]))
            prev = link_gx.prev_updates
