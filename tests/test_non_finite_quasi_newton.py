"""The non-finite rule for L-BFGS, BFGS and Newton on a real objective (``docs/validation.md``,
the reliability contract, item 3).

The objective is a coupled quadratic in every param but one, plus a kink in that one at 0:
its gradient there is +inf (``sqrt(max(x, 0))``, a NaN param read as 0) or NaN
(``where(x > 0, sqrt(x), 0)``, the classic NaN gradient of a ``where``), while its value stays
finite along the finite direction and after the kinked param has become non-finite. The
reference is the same method on the quadratic alone, which does not depend on the kinked param
(so its gradient there is 0 and its Hessian row is 0): it never sees a non-finite number. The
rule says the finite entries take exactly the reference's steps, and the kinked param alone
becomes non-finite.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx

KINK = (0, 1)  # the entry of x["b"] with the kink
RNG = np.random.default_rng(3)
_M = RNG.normal(size=(8, 8))
A = jnp.asarray(_M @ _M.T / 8 + 0.5 * np.eye(8), jnp.float32)  # positive definite, coupled
C = jnp.asarray(RNG.normal(size=8), jnp.float32)
X0 = {"a": jnp.asarray(RNG.normal(size=3), jnp.float32),
      "b": jnp.asarray(RNG.normal(size=(2, 3)), jnp.float32).at[KINK].set(0.0)}
STEPS = 6


def _rest(x):
    """Every entry but the kinked one, as one vector."""
    b = x["b"].reshape(-1)
    k = np.ravel_multi_index(KINK, x["b"].shape)
    return jnp.concatenate([x["a"], b[:k], b[k + 1:]])


def quadratic(x):
    d = _rest(x) - C
    return 0.5 * d @ (A @ d)


KINKS = {
    # gradient +inf at 0 (a square root at its branch point); -inf and NaN read as 0
    "+inf": lambda t: jnp.where(jnp.isnan(t), 0.0, jnp.sqrt(jnp.maximum(t, 0.0))),
    "nan": lambda t: jnp.where(t > 0, jnp.sqrt(t), 0.0),  # gradient NaN at 0 (and at NaN)
}
OBJECTIVES = {name: (lambda x, kink=kink: quadratic(x) + kink(x["b"][KINK]))
              for name, kink in KINKS.items()}
METHODS = {"lbfgs": lambda: gx.lbfgs(memory_size=3), "bfgs": gx.bfgs, "newton": gx.newton}


def _run(tx, fun, steps=STEPS):
    """The points of ``steps`` solver steps from X0 (value, grad and value_fn threaded by
    :class:`gx.Solver`, the gradient at each new point read from the line search's state)."""
    solver = gx.Solver(tx, fun)
    step = jax.jit(solver.step)
    x, state = X0, solver.init(X0)
    points = []
    for _ in range(steps):
        x, state = step(x, state)
        points.append(x)
    return points, state


@functools.cache
def _reference(method):
    return _run(METHODS[method](), quadratic)[0]


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("kind", sorted(OBJECTIVES))
def test_finite_entries_take_the_steps_of_the_zeroed_gradient(method, kind):
    fun = OBJECTIVES[kind]
    grad0 = jax.grad(fun)(X0)["b"][KINK]
    assert (np.isnan(grad0) if kind == "nan" else grad0 == np.inf), "the objective's premise"
    points, state = _run(METHODS[method](), fun)
    expected = _reference(method)
    for t, (x, e) in enumerate(zip(points, expected), 1):
        got, want = np.asarray(_rest(x)), np.asarray(_rest(e))
        assert np.all(np.isfinite(got)), f"{method} {kind}, step {t}: a non-finite value spread"
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{method} {kind}, step {t}")
        # the kinked param alone is non-finite: its update was the gradient's inf or NaN
        assert not np.isfinite(float(x["b"][KINK])), f"{method} {kind}, step {t}"
        assert np.isfinite(float(fun(x))), f"{method} {kind}, step {t}: the loss"
    # the run made progress on the finite entries (the reference converges on the quadratic)
    assert float(quadratic(points[-1])) < 1e-2 * float(quadratic(X0)), (method, kind)
    # and nothing in the state but the kinked entry's own per-entry slots is non-finite
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        leaf = np.asarray(leaf, np.float64)
        if leaf.shape[-2:] == X0["b"].shape:  # a per-entry slot of x["b"] (memory: stacked)
            leaf = leaf.reshape((-1,) + X0["b"].shape).copy()
            leaf[(slice(None),) + KINK] = 0.0
        where = jax.tree_util.keystr(path)
        if ".info." in where:  # the line search's report (inf = no step) is checked below
            continue
        assert np.all(np.isfinite(leaf)), f"{method} {kind}: state at {where}"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_the_first_update_is_non_finite_in_the_bad_entry_alone(method):
    """The step the line search accepts is the zeroed gradient's, and the bad entry's update
    is the (minus) gradient's non-finite value, as for an elementwise method."""
    fun = OBJECTIVES["+inf"]
    tx = METHODS[method]()
    state = tx.init(X0)
    value, grad = jax.value_and_grad(fun)(X0)
    updates, state = tx.update(grad, state, X0, value=value, grad=grad, value_fn=fun)
    zeroed = {"a": grad["a"], "b": grad["b"].at[KINK].set(0.0)}
    ref_updates, _ = tx.update(zeroed, tx.init(X0), X0, value=value, grad=zeroed,
                               value_fn=quadratic)
    assert float(updates["b"][KINK]) == -np.inf
    np.testing.assert_array_equal(np.asarray(updates["a"]), np.asarray(ref_updates["a"]))
    b, ref_b = np.asarray(updates["b"]).copy(), np.asarray(ref_updates["b"]).copy()
    b[KINK] = ref_b[KINK] = 0.0
    np.testing.assert_array_equal(b, ref_b)
    assert np.any(b), "a step was taken"


def test_minimize_reports_a_non_finite_gradient_and_keeps_the_last_finite_point():
    """``gx.minimize`` stops on a non-finite loss or gradient (status 2) and returns the last
    point where both were finite: here the start, after no step. A loop of
    :class:`gx.Solver` steps (above) goes on with the finite entries instead."""
    result = gx.minimize(OBJECTIVES["nan"], X0, method="lbfgs", maxiter=20)
    assert int(result.status) == 2 and not bool(result.success), result.message
    assert "NaN or infinite" in result.message
    assert int(result.num_steps) == 0
    for got, start in zip(jax.tree.leaves(result.x), jax.tree.leaves(X0)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(start))
    assert np.isnan(float(result.grad["b"][KINK]))
