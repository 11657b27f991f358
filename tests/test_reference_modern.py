"""gradxform against NumPy implementations written from the papers (``tests/reference/``):
SWATS (no library has it), the papers' forms of Prodigy and D-Adaptation (no bias correction,
which optax adds), Schedule-Free SGD, lookahead, and Muon's Newton-Schulz iteration.

Float64 on an ill-conditioned quadratic with a non-diagonal Hessian, the 5 coordinates split
over a tree of two leaves (so the inner products run across leaves), every iterate compared at
rtol 1e-12 (absolute floor 1e-12 times the largest coordinate).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from reference import lookahead as ref_lookahead
from reference import muon as ref_muon
from reference import parameter_free as ref_pf
from reference import schedule_free as ref_sf
from reference import swats as ref_swats

RNG = np.random.default_rng(7)
_Q = RNG.normal(size=(5, 5))
HESSIAN = _Q @ _Q.T / 5 + np.diag([0.1, 0.5, 1.0, 2.0, 4.0])
CENTER = RNG.normal(size=5)
THETA0 = RNG.normal(size=5)


def np_grad(theta):
    return HESSIAN @ (theta - CENTER)


def split(theta):
    return {"a": theta[:3], "b": [theta[3:]]}


def join(tree):
    return jnp.concatenate([tree["a"], tree["b"][0]], axis=-1)


def gx_run(tx, steps, read=None):
    """Iterates (as flat vectors) and ``read(state, params)`` after every step, under x64."""
    hessian, center = jnp.asarray(HESSIAN), jnp.asarray(CENTER)

    def body(carry, _):
        params, state = carry
        grads = split(hessian @ (join(params) - center))
        updates, state = tx.update(grads, state, params)
        params = gx.apply_updates(params, updates)
        return (params, state), (join(params), read(state, params) if read else ())

    params = split(jnp.asarray(THETA0))
    _, (thetas, extra) = jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), None,
                                                        length=steps))(params)
    return np.asarray(thetas), extra


def assert_iterates_close(mine, reference, what):
    reference = np.asarray(reference)
    scale = np.max(np.abs(reference), axis=-1, keepdims=True)
    for k, (a, e, s) in enumerate(zip(mine, reference, scale)):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12 * float(s[0]),
                                   err_msg=f"{what}: iterate {k + 1}")


# -- SWATS --------------------------------------------------------------------------------------

# (learning rate, eps_switch, steps): switching at step 2 (then 298 SGD steps), switching late
# (step 239), and the paper's eps_switch, with which it never switches here.
SWATS_CASES = [(0.1, 3e-3, 300, 2), (0.1, 1e-3, 300, 239), (0.05, 1e-9, 200, None)]


@pytest.mark.parametrize("lr, eps_switch, steps, expected_switch", SWATS_CASES)
def test_swats_matches_algorithm_1(lr, eps_switch, steps, expected_switch):
    with jax.enable_x64(True):
        tx = gx.swats(lr, eps=1e-9, eps_switch=eps_switch)
        mine, (switched, rate) = gx_run(
            tx, steps, lambda s, p: (s.inner[0].switched, s.inner[0].sgd_rate))
    reference, k_switch, sgd_rate = ref_swats.swats(np_grad, THETA0, lr, 0.9, 0.999, 1e-9,
                                                    eps_switch, steps)
    assert k_switch == expected_switch  # the reference itself switches where the case says
    switched = np.asarray(switched)
    if k_switch is None:
        assert not switched.any()
    else:
        assert int(np.argmax(switched)) + 1 == k_switch and switched[k_switch - 1:].all()
        # At a late switch the iterates are within 1e-5 of the minimum: each projected rate is
        # a ratio of inner products of tiny steps and gradients, which carry the rounding of the
        # iterates (1e-16 relative to the point, more relative to the step); the average of 239
        # of them agrees to 2e-12.
        np.testing.assert_allclose(np.asarray(rate)[-1], sgd_rate, rtol=1e-11)
    assert_iterates_close(mine, reference, f"swats lr={lr} eps_switch={eps_switch}")


# -- Prodigy and D-Adaptation, the papers' forms ------------------------------------------------

# The paper adds d_k eps to the denominator, the authors' code and optax d_{k+1} eps; eps=1e-30
# makes that term vanish below float64 rounding so the rest of the algorithm is compared.
PF_CASES = [
    ("prodigy paper", lambda: gx.prodigy(1.0, eps=1e-30, bias_correction=False),
     lambda: ref_pf.prodigy(np_grad, THETA0, 1.0, 0.9, 0.999, 1e-30, 1e-6, 150)),
    ("prodigy bias-corrected (optax's form)",
     lambda: gx.prodigy(0.5, betas=(0.8, 0.99), eps=1e-30),
     lambda: ref_pf.prodigy(np_grad, THETA0, 0.5, 0.8, 0.99, 1e-30, 1e-6, 150,
                            bias_correction=True)),
    ("dadapt_adam paper", lambda: gx.dadapt_adamw(1.0, bias_correction=False),
     lambda: ref_pf.dadapt_adam(np_grad, THETA0, 1.0, 0.9, 0.999, 1e-8, 1e-6, 150)),
    ("dadapt_adam bias-corrected (optax's form)",
     lambda: gx.dadapt_adamw(0.5, betas=(0.8, 0.99)),
     lambda: ref_pf.dadapt_adam(np_grad, THETA0, 0.5, 0.8, 0.99, 1e-8, 1e-6, 150,
                                bias_correction=True)),
]


@pytest.mark.parametrize("name, make, reference", PF_CASES, ids=[c[0] for c in PF_CASES])
def test_parameter_free_matches_paper(name, make, reference):
    with jax.enable_x64(True):
        mine, _ = gx_run(make(), 150)
    expected = reference()
    assert np.abs(expected[-1] - THETA0).max() > 0.1  # the estimate grew: the run went somewhere
    assert_iterates_close(mine, expected, name)


# -- Schedule-Free SGD --------------------------------------------------------------------------

def test_schedule_free_sgd_matches_algorithm_1():
    with jax.enable_x64(True):
        tx = gx.schedule_free_sgd(0.05, b1=0.9)
        mine, xs = gx_run(tx, 150, lambda s, p: join(gx.schedule_free_eval_params(s, p)))
    ys, xs_ref = ref_sf.schedule_free_sgd(np_grad, THETA0, 0.05, 0.9, 150)
    assert_iterates_close(mine, ys, "schedule-free y")
    assert_iterates_close(np.asarray(xs), xs_ref, "schedule-free x")


# -- lookahead ----------------------------------------------------------------------------------

def test_lookahead_matches_algorithm_1():
    k, outer = 4, 40
    with jax.enable_x64(True):
        tx = gx.lookahead(gx.sgd(0.05, momentum=0.9), sync_period=k, slow_step_size=0.6)
        mine, slow = gx_run(tx, k * outer, lambda s, p: join(gx.lookahead_slow_params(tx, s)))
    fast_ref, slow_ref = ref_lookahead.lookahead_momentum(np_grad, THETA0, 0.05, 0.9, k, 0.6,
                                                          outer)
    assert_iterates_close(mine, fast_ref, "lookahead fast weights")
    assert_iterates_close(np.asarray(slow), slow_ref, "lookahead slow weights")


# -- Muon's Newton-Schulz -----------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 3), (3, 7), (5, 5)])
def test_newton_schulz_matches_jordan(shape):
    g = np.random.default_rng(3).normal(size=shape)
    with jax.enable_x64(True):
        mine = np.asarray(gx.orthogonalize_via_newton_schulz(jnp.asarray(g), eps=1e-7))
    expected = ref_muon.newton_schulz5(g)
    np.testing.assert_allclose(mine, expected, rtol=1e-12, atol=1e-12)
    # Jordan's coefficients leave the singular values in about [0.7, 1.2], not exactly 1.
    s = np.linalg.svd(mine, compute_uv=False)
    assert 0.6 < s.min() and s.max() < 1.25, s
    u, _, vt = np.linalg.svd(g, full_matrices=False)  # same singular vectors as U V^T
    np.testing.assert_allclose(np.abs(np.sum((u @ vt) * mine)) / np.linalg.norm(mine),
                               np.sqrt(min(shape)), rtol=0.05)
