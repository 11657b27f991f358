"""``gx.minimize`` and ``gx.Solver``.

* each method converges (float32 and float64, pytree params, data through ``args=``);
* ``vmap`` over 64 problems gives what 64 separate solves give (float32 and float64);
* Newton converges quadratically on a strongly convex problem and never steps uphill on an
  indefinite one (where the pure Newton step does);
* a loss that turns NaN stops with ``success=False`` and a reason, never loops; so do
  ``maxiter`` and a tolerance below the dtype's resolution;
* the solver threads ``value=``, ``grad=``, ``value_fn=`` in a jitted loop and counts
  evaluations;
* bad input gets errors naming the argument.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from targets import gabor_loss, rosenbrock_loss


def _rosenbrock_vec(x):
    return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def _quadratic(params, scales):
    return 0.5 * jnp.sum(scales * (params["w"] - 1) ** 2)


CONVERGENCE = [
    # (method, problem, dtype, tol)
    ("lbfgs", "rosenbrock", "f64", 1e-8),
    ("lbfgs", "rosenbrock", "f32", 1e-3),
    ("bfgs", "gabor", "f64", 1e-8),
    ("newton", "rosenbrock", "f64", 1e-10),
    ("gd", "quadratic", "f64", 1e-6),
]


@pytest.mark.parametrize("method,problem,dtype,tol", CONVERGENCE,
                         ids=["-".join(c[:3]) for c in CONVERGENCE])
def test_methods_converge(method, problem, dtype, tol):
    with jax.enable_x64(dtype == "f64"):
        dt = jnp.float64 if dtype == "f64" else jnp.float32
        if problem == "rosenbrock":
            fun, args = rosenbrock_loss, ()
            x0, x_star = {"x": jnp.asarray(-1.2, dt), "y": jnp.asarray(1.0, dt)}, [1.0, 1.0]
        elif problem == "gabor":
            fun, args = gabor_loss, ()
            x0 = {"phi0": jnp.asarray(-1.0, dt), "phi1": jnp.asarray(14.0, dt)}
            x_star = [-0.1597, 17.2006]  # the global minimum (tests/targets.py)
        else:
            fun, args = _quadratic, (jnp.asarray([1.0, 4.0, 10.0], dt),)
            x0, x_star = {"w": jnp.zeros(3, dt)}, [1.0, 1.0, 1.0]
        result = jax.jit(lambda x0, args: gx.minimize(fun, x0, method, args=args, tol=tol))(
            x0, args)
        assert bool(result.success), result.message
        assert int(result.status) == 0
        assert float(result.grad_norm) <= tol
        assert jax.tree.structure(result.x) == jax.tree.structure(x0)
        assert all(leaf.dtype == dt for leaf in jax.tree.leaves(result.x))
        found = np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(result.x)])
        np.testing.assert_allclose(found, x_star, rtol=1e-2 if dtype == "f32" else 1e-4)
        assert int(result.num_fun_evals) >= int(result.num_steps) >= 1
        assert int(result.num_hess_evals) == (int(result.num_steps) if method == "newton"
                                              else 0)


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_vmap_over_64_problems_equals_64_solves(dtype):
    """64 shifted Rosenbrock problems from 64 starts, batched through x0 and args.

    Batched and single programs may round differently in the last bit (vectorised code fuses
    multiply-adds differently). In float64 that never changes a decision of the solver: the
    same steps, evaluations and stops, and x equal to 1e-10. In float32, near a tolerance of
    1e-3, a last-bit difference can add or save a step: the stops and successes are the same
    and x agrees to the accuracy the tolerance asks for.
    """
    with jax.enable_x64(dtype == "f64"):
        dt = jnp.float64 if dtype == "f64" else jnp.float32
        rng = np.random.default_rng(0)
        starts = jnp.asarray(rng.uniform(-2, 2, size=(64, 3)), dt)
        shifts = jnp.asarray(rng.uniform(-0.5, 0.5, size=(64, 3)), dt)

        def fun(x, shift):
            return _rosenbrock_vec(x - shift)

        tol = 1e-6 if dtype == "f64" else 1e-3

        def solve(x0, shift):
            return gx.minimize(fun, x0, args=(shift,), tol=tol)

        batched = jax.jit(jax.vmap(solve))(starts, shifts)
        # lax.map runs the 64 solves one after the other, each unbatched
        alone = jax.jit(lambda s, t: jax.lax.map(lambda a: solve(*a), (s, t)))(starts, shifts)
        assert np.all(np.asarray(batched.success))
        np.testing.assert_array_equal(batched.status, alone.status)
        if dtype == "f64":
            np.testing.assert_array_equal(batched.num_steps, alone.num_steps)
            np.testing.assert_array_equal(batched.num_fun_evals, alone.num_fun_evals)
            np.testing.assert_allclose(batched.x, alone.x, rtol=1e-10, atol=0)
            np.testing.assert_allclose(batched.x, shifts + 1, atol=1e-6)
        else:
            np.testing.assert_allclose(batched.x, alone.x, rtol=0, atol=2e-3)
            np.testing.assert_allclose(batched.x, shifts + 1, atol=2e-3)
    assert list(batched.message[:2]) == [gx.MinimizeResult.STATUS[int(c)]
                                         for c in batched.status[:2]]


# --------------------------------------------------------------------------------------------
# Newton.


def _newton_iterates(fun, x0, steps):
    solver = gx.Solver(gx.newton(), fun)

    def body(carry, _):
        x, state = carry
        x, state = solver.step(x, state)
        return (x, state), (x, state.value)

    _, (xs, values) = jax.jit(lambda x0: jax.lax.scan(
        body, (x0, solver.init(x0)), None, length=steps))(x0)
    return np.asarray(xs), np.asarray(values)


def test_newton_converges_quadratically_on_a_strongly_convex_problem():
    """L2-regularised logistic regression on 40 random points: e_{k+1} <= C e_k^2."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(40, 4))
    labels = np.where(a @ np.asarray([1.0, -2.0, 0.5, 0.0]) + rng.normal(size=40) > 0, 1.0, -1.0)
    with jax.enable_x64(True):
        a_, y_ = jnp.asarray(a), jnp.asarray(labels)

        def fun(w):
            return jnp.mean(jnp.logaddexp(0.0, -y_ * (a_ @ w))) + 0.05 * jnp.sum(w * w)

        xs, _ = _newton_iterates(fun, jnp.zeros(4), 8)
        x_star = xs[-1]
        errors = np.linalg.norm(xs - x_star, axis=1)[:-1]
    assert errors[0] > 1e-2  # the start is not already at the minimum
    pairs = [(e0, e1) for e0, e1 in zip(errors[:-1], errors[1:]) if 1e-12 < e0 < 0.1]
    assert len(pairs) >= 2, errors
    for e0, e1 in pairs:
        assert e1 <= 5.0 * e0**2, errors


def test_newton_never_steps_uphill_on_an_indefinite_problem():
    """f = x^2 - y^2 + y^4/4 from (0.1, 0.5): the Hessian diag(2, 3y^2 - 2) is indefinite and
    the pure Newton step heads uphill to the saddle at 0; the shifted step goes down to a
    minimum (f = -1 at y = +-sqrt 2)."""
    def fun(p):
        x, y = p[0], p[1]
        return x * x - y * y + y**4 / 4

    def np_fun(p):
        return p[0] ** 2 - p[1] ** 2 + p[1] ** 4 / 4

    x0 = np.asarray([0.1, 0.5])
    hessian = np.diag([2.0, 3 * x0[1] ** 2 - 2])
    gradient = np.asarray([2 * x0[0], x0[1] ** 3 - 2 * x0[1]])
    assert np.linalg.eigvalsh(hessian)[0] < 0
    assert np_fun(x0 - np.linalg.solve(hessian, gradient)) > np_fun(x0)  # the textbook's warning
    with jax.enable_x64(True):
        _, values = _newton_iterates(fun, jnp.asarray(x0), 25)
    values = np.concatenate([[np_fun(x0)], values])
    assert np.all(np.diff(values) <= 0), values
    np.testing.assert_allclose(values[-1], -1.0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Stopping.


def test_nan_loss_stops_with_a_reason():
    with jax.enable_x64(True):
        # a fixed step that diverges to inf/NaN: stops at the last finite point
        result = gx.minimize(_rosenbrock_vec, jnp.asarray([-1.2, 1.0]), gx.sgd(0.1),
                             maxiter=500)
        assert not bool(result.success) and int(result.status) == 2
        assert int(result.num_steps) < 500
        assert np.all(np.isfinite(np.asarray(result.x))) and np.isfinite(float(result.value))
        assert "NaN" in result.message
        # NaN at the start: no step
        result = gx.minimize(lambda x: jnp.sum(jnp.log(x)), jnp.asarray([-1.0, 2.0]))
        assert int(result.status) == 2 and int(result.num_steps) == 0
        assert int(result.num_fun_evals) == 1


def test_a_nan_region_is_never_entered():
    """The minimum of (x - 3)^2 lies beyond x = 1 where the loss is NaN: the line search never
    accepts a NaN point; the run ends unsuccessfully within maxiter."""
    def fun(x):
        return jnp.sum(jnp.where(x < 1.0, (x - 3.0) ** 2, jnp.nan))

    with jax.enable_x64(True):
        result = jax.jit(lambda x: gx.minimize(fun, x, maxiter=50))(jnp.asarray([0.0]))
    assert not bool(result.success) and int(result.status) in (1, 3)
    assert int(result.num_steps) <= 50
    assert 0.9 < float(result.x[0]) < 1.0 and np.isfinite(float(result.value))


def test_maxiter_and_an_unreachable_tolerance_stop():
    """One compiled program (maxiter is traced): 3 steps stop at maxiter; float32 cannot
    resolve a gradient norm of 1e-12 at the Gabor model's minimum, so the line search runs out
    of decrease and says so."""
    x0 = {"phi0": jnp.asarray(-1.0), "phi1": jnp.asarray(14.0)}
    solve = jax.jit(lambda x, n: gx.minimize(gabor_loss, x, tol=1e-12, maxiter=n))
    result = solve(x0, 3)
    assert int(result.num_steps) == 3 and int(result.status) == 1 and not bool(result.success)
    assert result.message.startswith("stopped: maxiter")
    result = solve(x0, 500)
    assert int(result.status) == 3, result.message
    assert int(result.num_steps) < 500
    assert float(result.grad_norm) < 1e-3 and abs(float(result.value) - 1.00255) < 1e-4


# --------------------------------------------------------------------------------------------
# The solver.


def test_solver_in_a_jitted_loop_with_data():
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        a, b = jnp.asarray(rng.normal(size=(20, 3))), jnp.asarray(rng.normal(size=20))

        def loss(w, a, b):
            return 0.5 * jnp.mean((a @ w - b) ** 2)

        solver = gx.Solver(gx.lbfgs(), loss)
        w = jnp.zeros(3)
        state = solver.init(w, a, b)
        step = jax.jit(solver.step)
        evals = 1
        for _ in range(8):
            w, state = step(w, state, a, b)
            evals += int(state.opt_state.inner[2].info.num_fun_evals)
        np.testing.assert_allclose(w, jnp.linalg.lstsq(a, b)[0], rtol=1e-6)
        assert int(state.num_fun_evals) == evals
        np.testing.assert_allclose(state.value, loss(w, a, b), rtol=1e-12)
        np.testing.assert_allclose(state.grad, jax.grad(loss)(w, a, b), atol=1e-12)


def test_solver_without_a_linesearch_and_with_fresh_batches():
    with jax.enable_x64(True):
        solver = gx.Solver(gx.adam(0.1), lambda w: jnp.sum((w - 2.0) ** 2))
        w, state = jnp.zeros(2), solver.init(jnp.zeros(2))
        for _ in range(3):
            w, state = solver.step(w, state)
        assert int(state.num_fun_evals) == 4  # one per step, and one at the start
        np.testing.assert_allclose(state.value, jnp.sum((w - 2.0) ** 2))

        # a new batch every step: reuse=False evaluates on it before updating
        def loss(w, target):
            return jnp.sum((w - target) ** 2)

        solver = gx.Solver(gx.gradient_descent_linesearch(), loss, reuse=False)
        w = jnp.zeros(2)
        state = solver.init(w, jnp.asarray([1.0, 1.0]))
        w, state = solver.step(w, state, jnp.asarray([3.0, -1.0]))
        # the step follows the gradient on the new batch (the old one would give (1, 1))
        np.testing.assert_allclose(w[0] / w[1], -3.0, rtol=1e-12)
        assert int(state.num_fun_evals) == 2 + int(state.opt_state.inner[1].info.num_fun_evals)


# --------------------------------------------------------------------------------------------
# Bad input.


BAD = [
    (lambda: gx.minimize(lambda x: x**2, jnp.ones(3)), ValueError,
     "minimize: fun must return a scalar real loss (shape ()), got an array of shape (3,)"),
    (lambda: gx.minimize(lambda x: jnp.sum(x**2), jnp.ones(3), tol=0.0), ValueError,
     "minimize: tol must be > 0 and finite, got 0.0"),
    (lambda: gx.minimize(lambda x: jnp.sum(x**2), jnp.ones(3), tol=-1e-3), ValueError,
     "minimize: tol must be > 0 and finite, got -0.001"),
    (lambda: gx.minimize(lambda x: jnp.sum(x**2), jnp.ones(3), maxiter=0), ValueError,
     "minimize: maxiter must be a whole number >= 1, got 0"),
    (lambda: gx.minimize(lambda x: jnp.sum(x**2), jnp.ones(3), maxiter=2.5), TypeError,
     "minimize: maxiter must be a whole number >= 1, got 2.5"),
    (lambda: gx.minimize(lambda x: jnp.sum(x**2), jnp.ones(3), maxiter=jnp.asarray(0)),
     ValueError, "minimize: maxiter must be a whole number >= 1, got Array(0"),
    (lambda: gx.minimize(lambda x: jnp.sum(x**2), jnp.ones(3), "cg"), ValueError,
     "minimize: method must be one of ['bfgs', 'gd', 'lbfgs', 'newton'] or a transformation"),
    (lambda: gx.minimize(lambda x: jnp.sum(x**2), jnp.ones(3), memory=3), TypeError,
     "minimize: unknown option(s) ['memory'] for method 'lbfgs'"),
    (lambda: gx.minimize(3.0, jnp.ones(3)), TypeError, "minimize: fun must be the objective"),
    (lambda: gx.minimize(lambda x: jnp.sum(x), jnp.ones(3, jnp.int32)), TypeError,
     "minimize: x0 must hold real floating-point arrays, got a leaf of dtype int32"),
    (lambda: gx.Solver(gx.lbfgs(), "loss"), TypeError, "Solver: fun must be the objective"),
]


@pytest.mark.parametrize("call,exc,message", BAD, ids=[m for _, _, m in BAD])
def test_bad_input_is_named(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert str(info.value).startswith(message), str(info.value)


def test_options_reach_the_method():
    """memory_size=1 as an option builds lbfgs(memory_size=1): the same run, step for step
    (and not the default memory of 10, which takes 36 steps here)."""
    with jax.enable_x64(True):
        x0 = jnp.asarray([-1.2, 1.0])
        small = jax.jit(lambda x: gx.minimize(_rosenbrock_vec, x, memory_size=1,
                                              maxiter=2000))(x0)
        same = jax.jit(lambda x: gx.minimize(_rosenbrock_vec, x, gx.lbfgs(memory_size=1),
                                             maxiter=2000))(x0)
    assert bool(small.success) and int(small.num_steps) != 36
    assert int(same.num_steps) == int(small.num_steps)
    assert int(same.num_fun_evals) == int(small.num_fun_evals)
