"""Line searches, L-BFGS and BFGS directions.

* every accepted step satisfies Armijo's condition (backtracking) or the strong Wolfe
  conditions (zoom), checked by evaluating the objective in the test;
* golden-section search brackets the exact minimiser of a 1-D quadratic (both when the first
  guess is too long and too short) and of a slice of the textbook's Gabor model;
* no point is evaluated twice and ``num_fun_evals`` is what the objective really saw (counted
  by a callback inside the objective);
* optax parity: optax's documented calls of ``scale_by_backtracking_linesearch``,
  ``scale_by_zoom_linesearch``, ``lbfgs``, ``scale_by_lbfgs`` and ``value_and_grad_from_state``;
* NumPy references from Nocedal & Wright for the L-BFGS (two-loop) and BFGS directions;
* missing or wrong arguments get errors naming them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradxform as gx
from helpers import standard_promotion
from reference import quasi_newton as ref
from targets import gabor_data, gabor_loss, gabor_model, rosenbrock_loss

C1 = 1e-4
C2 = 0.9


def _trajectory(tx, loss, x0, steps):
    """For each step k of ``tx`` (jit + scan): f(x_k), grad f(x_k), the update u_k, f(x_k + u_k)
    and grad f(x_k + u_k), all evaluated here from ``loss`` (not read from the optimizer), and
    the slopes <grad f(x_k), u_k> and <grad f(x_k + u_k), u_k>."""
    solver = gx.Solver(tx, loss)

    @jax.jit
    def run(x0):
        def body(carry, _):
            x, state = carry
            new_x, state = solver.step(x, state)
            u = jax.tree.map(lambda a, b: a - b, new_x, x)
            value, grad = jax.value_and_grad(loss)(x)
            new_value, new_grad = jax.value_and_grad(loss)(gx.apply_updates(x, u))
            dot = lambda a, b: sum(jnp.vdot(p, q) for p, q in  # noqa: E731
                                   zip(jax.tree.leaves(a), jax.tree.leaves(b)))
            moved = sum(jnp.sum(jnp.abs(leaf)) for leaf in jax.tree.leaves(u)) > 0
            return (new_x, state), dict(value=value, grad_norm=jnp.sqrt(dot(grad, grad)),
                                        slope=dot(grad, u), new_value=new_value,
                                        new_slope=dot(new_grad, u), moved=moved)

        return jax.lax.scan(body, (x0, solver.init(x0)), None, length=steps)[1]

    out = {k: np.asarray(v) for k, v in run(x0).items()}
    return [{k: v[i] for k, v in out.items()} for i in range(steps)]


def _quadratic(params):
    a = jnp.asarray([1.0, 10.0, 100.0], params["w"].dtype)
    return 0.5 * jnp.sum(a * (params["w"] - 1) ** 2) + 0.5 * jnp.sum(params["b"] ** 2)


_QUAD_START = {"w": np.asarray([3.0, -2.0, 0.5]), "b": np.asarray([[1.0, -1.0]])}
_ROSEN_START = {"x": -1.2, "y": 1.0}
_GABOR_START = {"phi0": -1.0, "phi1": 14.0}
PROBLEMS = {
    "quadratic": (_quadratic, _QUAD_START),
    "rosenbrock": (rosenbrock_loss, _ROSEN_START),
    "gabor": (gabor_loss, _GABOR_START),
}


def _start(problem):
    loss, start = PROBLEMS[problem]
    return loss, jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), start)


ARMIJO_CASES = {
    "gd+backtracking-gabor": (lambda: gx.gradient_descent_linesearch(), "gabor"),
    "lbfgs+backtracking-rosenbrock": (
        lambda: gx.lbfgs(linesearch=gx.backtracking_linesearch()), "rosenbrock"),
    "newton-gabor": (lambda: gx.newton(), "gabor"),
}


@pytest.mark.parametrize("case", ARMIJO_CASES)
def test_every_backtracking_step_satisfies_armijo(case):
    make, problem = ARMIJO_CASES[case]
    with jax.enable_x64(True):
        loss, x0 = _start(problem)
        steps = _trajectory(make(), loss, x0, 40)
    taken = 0
    for k in steps:
        if k["grad_norm"] < 1e-7:
            break
        assert k["moved"], f"{case}: no step at gradient norm {k['grad_norm']:.2e}"
        taken += 1
        assert k["new_value"] <= k["value"] + C1 * k["slope"], (case, taken, k)
    assert taken >= 5


WOLFE_CASES = {
    "lbfgs-gabor": (lambda: gx.lbfgs(), "gabor"),
    "bfgs-quadratic": (lambda: gx.bfgs(), "quadratic"),
    "gd+zoom-rosenbrock": (lambda: gx.gradient_descent_linesearch(
        linesearch=gx.zoom_linesearch(initial_guess_strategy="keep")), "rosenbrock"),
}


@pytest.mark.parametrize("case", WOLFE_CASES)
def test_every_zoom_step_satisfies_strong_wolfe(case):
    make, problem = WOLFE_CASES[case]
    with jax.enable_x64(True):
        loss, x0 = _start(problem)
        steps = _trajectory(make(), loss, x0, 30)
    taken = 0
    for k in steps:
        if k["grad_norm"] < 1e-6:
            break
        taken += 1
        assert k["slope"] < 0, (case, taken, k)
        assert k["new_value"] <= k["value"] + C1 * k["slope"], (case, taken, k)
        assert abs(k["new_slope"]) <= C2 * abs(k["slope"]), (case, taken, k)
    assert taken >= 5


# --------------------------------------------------------------------------------------------
# Golden section.


def _first_golden_step(loss, x0, **kwargs):
    ls = gx.golden_section_linesearch(**kwargs)
    tx = gx.gradient_descent_linesearch(linesearch=ls)
    state = tx.init(x0)
    value, grad = jax.value_and_grad(loss)(x0)
    updates, state = jax.jit(lambda s: tx.update(grad, s, x0, value=value, grad=grad,
                                                 value_fn=loss))(state)
    return updates, state.inner[1], grad


@pytest.mark.parametrize("scale", [3.0, 0.01], ids=["guess-too-long", "guess-too-short"])
def test_golden_section_brackets_the_minimiser_of_a_quadratic(scale):
    # f(w) = scale (w - 2)^2 from w = -1 along -f'(-1) = 6 scale: the minimiser is at
    # eta* = 3 / (6 scale), below the first guess 1 for scale=3, far above it for scale=0.01
    with jax.enable_x64(True):
        def loss(p):
            return scale * (p["w"] - 2.0) ** 2 + 1.0

        x0 = {"w": jnp.asarray(-1.0)}
        updates, ls_state, _ = _first_golden_step(loss, x0, tol=1e-8)
        exact = 3.0 / (6.0 * scale)
        info = ls_state.info
        lower, upper = float(info.lower), float(info.upper)
        assert lower <= exact <= upper, (lower, exact, upper)
        assert upper - lower <= 1e-6 * exact
        assert float(ls_state.learning_rate) == pytest.approx(exact, rel=1e-6)
        np.testing.assert_allclose(float(updates["w"]), 3.0, rtol=1e-6)
        assert int(info.num_fun_evals) <= 60


def test_golden_section_brackets_the_minimiser_on_a_slice_of_the_gabor_model():
    """From (-1, 14) along minus the gradient; on [0, 0.5] the loss has one minimiser (found
    here by a dense grid refined by bisection of the slope in NumPy, from the model's
    formula)."""
    with jax.enable_x64(True):
        x0 = {"phi0": jnp.asarray(-1.0), "phi1": jnp.asarray(14.0)}
        _, ls_state, grad = _first_golden_step(gabor_loss, x0, tol=1e-7, max_learning_rate=0.5)
        x, y = gabor_data()
        p0 = np.asarray([-1.0, 14.0])
        d = -np.asarray([float(grad["phi0"]), float(grad["phi1"])])

        def phi(t):
            return np.sum((gabor_model(p0 + t * d, x) - y) ** 2)

        grid = np.linspace(0.0, 0.5, 5001)
        values = np.array([phi(t) for t in grid])
        k = int(np.argmin(values))
        assert 0 < k < len(grid) - 1
        lo, hi = grid[k - 1], grid[k + 1]
        for _ in range(60):  # bisection on the sign of the slope (central differences)
            mid, h = (lo + hi) / 2, 1e-9
            if phi(mid + h) - phi(mid - h) > 0:
                hi = mid
            else:
                lo = mid
        exact = (lo + hi) / 2
        info = ls_state.info
        assert float(info.lower) <= exact <= float(info.upper), (info, exact)
        assert float(info.upper) - float(info.lower) <= 1e-6
        assert phi(float(ls_state.learning_rate)) <= values.min()


# --------------------------------------------------------------------------------------------
# Honest counting: every point once.


def _counting(loss):
    seen = []

    def counted(params):
        value = loss(params)
        jax.debug.callback(lambda p: seen.append(np.concatenate(
            [np.ravel(np.asarray(leaf)) for leaf in jax.tree.leaves(p)])), params)
        return value

    return counted, seen


@pytest.mark.parametrize("method", [
    "lbfgs", "gd",
    pytest.param(lambda: gx.gradient_descent_linesearch(
        linesearch=gx.golden_section_linesearch()), id="golden")])
def test_no_point_is_evaluated_twice_and_the_count_is_honest(method):
    with jax.enable_x64(True):
        counted, seen = _counting(rosenbrock_loss)
        method = method if isinstance(method, str) else method()
        x0 = {"x": jnp.asarray(-1.2), "y": jnp.asarray(1.0)}
        result = jax.jit(lambda x: gx.minimize(counted, x, method, maxiter=60))(x0)
        jax.effects_barrier()
        points = [tuple(p) for p in seen]
        assert len(points) == int(result.num_fun_evals)
        assert len(set(points)) == len(points), "a point was evaluated twice"
        assert int(result.num_steps) >= 10


# --------------------------------------------------------------------------------------------
# optax parity (optax's documented calls).


def _l2(params, x, y):
    return optax.l2_loss(x.dot(params), y)


def _gx_l2(params, x, y):
    return 0.5 * (x.dot(params) - y) ** 2


def _data_loop(lib, opt, fn, params, xs, ys):
    """optax's documented loop with data passed to value_fn (jitted step)."""

    @jax.jit
    def step(p, s, x, y):
        value, grad = jax.value_and_grad(fn)(p, x, y)
        u, s = opt.update(grad, s, p, value=value, grad=grad, value_fn=fn, x=x, y=y)
        return lib.apply_updates(p, u), s

    p, s, out = params, opt.init(params), []
    for x, y in zip(xs, ys):
        p, s = step(p, s, x, y)
        out.append(p)
    return out


def test_backtracking_matches_optax_documented_example():
    """optax's docstring example: sgd(1.) + backtracking(15), value_fn with extra data."""
    params = jnp.asarray([1.0, 2.0, 3.0])
    xs, ys = jnp.tile(jnp.asarray([3.0, 2.0, 1.0]), (5, 1)), jnp.zeros(5)
    with standard_promotion():
        expected = _data_loop(optax, optax.chain(
            optax.sgd(learning_rate=1.0),
            optax.scale_by_backtracking_linesearch(max_backtracking_steps=15)),
            _l2, params, xs, ys)
    ours = _data_loop(gx, gx.chain(
        gx.sgd(learning_rate=1.0), gx.scale_by_backtracking_linesearch(max_backtracking_steps=15)),
        _gx_l2, params, xs, ys)
    for p, want in zip(ours, expected):
        np.testing.assert_allclose(p, want, rtol=1e-6)
    np.testing.assert_allclose(_gx_l2(ours[-1], xs[0], ys[0]), 5.81, rtol=1e-2)  # optax's


def _sum_sq(x):
    return jnp.sum(x**2)


def _loop(lib, opt, fn, params, steps):
    """The documented loop, jitted: value and gradient from the state when it has them."""
    value_and_grad = lib.value_and_grad_from_state(fn)

    @jax.jit
    def step(params, state):
        value, grad = value_and_grad(params, state=state)
        u, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=fn)
        return lib.apply_updates(params, u), state

    state, out = opt.init(params), []
    for _ in range(steps):
        params, state = step(params, state)
        out.append(params)
    return out


def test_value_and_grad_from_state_loop_matches_optax():
    """optax's documented loop with value_and_grad_from_state and a backtracking search with
    store_grad=True, 5 steps."""
    params = jnp.asarray([1.0, 2.0, 3.0])
    ours = gx.chain(gx.sgd(1.0), gx.scale_by_backtracking_linesearch(15, store_grad=True))
    theirs = optax.chain(optax.sgd(1.0), optax.scale_by_backtracking_linesearch(
        max_backtracking_steps=15, store_grad=True))
    with standard_promotion():
        expected = _loop(optax, theirs, _sum_sq, params, 5)
    for a, b in zip(_loop(gx, ours, _sum_sq, params, 5), expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_lbfgs_reproduces_optax_documented_values():
    """optax.lbfgs's docstring: f(x) = sum(x^2) from (1, 2, 3), two steps of the loop with
    value_and_grad_from_state print 7.52E+00 and 7.46E-14 (the first step has length 1, the
    second lands on the minimum up to rounding)."""
    with jax.enable_x64(True):
        params = _loop(gx, gx.lbfgs(), _sum_sq, jnp.asarray([1.0, 2.0, 3.0]), 2)
        values = [float(_sum_sq(p)) for p in params]
    assert f"{values[0]:.2E}" == "7.52E+00"
    assert values[1] < 1e-12


def test_zoom_reaches_optax_documented_values():
    """optax's example: sgd(1.) + zoom(15) on a least-squares fit with data passed to
    value_fn; both reach the minimum of each sample's loss (optax prints 2.56E-13 ...)."""
    params = jnp.asarray([1.0, 2.0, 3.0])
    xs, ys = jnp.tile(jnp.asarray([3.0, 2.0, 1.0]), (3, 1)), jnp.zeros(3)
    with standard_promotion():
        expected = _data_loop(optax, optax.chain(
            optax.sgd(learning_rate=1.0),
            optax.scale_by_zoom_linesearch(max_linesearch_steps=15)), _l2, params, xs, ys)
    ours = _data_loop(gx, gx.chain(
        gx.sgd(learning_rate=1.0), gx.scale_by_zoom_linesearch(max_linesearch_steps=15)),
        _gx_l2, params, xs, ys)
    for p, want, x, y in zip(ours, expected, xs, ys):
        assert float(_gx_l2(p, x, y)) < 1e-10 and float(_gx_l2(want, x, y)) < 1e-10
        np.testing.assert_allclose(p, want, rtol=1e-5, atol=1e-5)


def test_scale_by_lbfgs_matches_optax_step_by_step():
    """A fixed learning rate, no line search: the directions alone, 30 steps on a quadratic
    with a non-diagonal Hessian (every curvature pair is positive), float32, params after every
    step and the memory at the end."""
    rng = np.random.default_rng(0)
    q = rng.normal(size=(6, 6))
    hessian = jnp.asarray(q @ q.T / 6 + np.diag(np.linspace(0.5, 3.0, 6)), jnp.float32)
    x0 = jnp.asarray(rng.normal(size=6), jnp.float32)

    def grad(x):
        return hessian @ x

    def run(lib, opt):
        @jax.jit
        def step(x, s):
            u, s = opt.update(grad(x), s, x)
            return lib.apply_updates(x, u), s

        x, s, out = x0, opt.init(x0), []
        for _ in range(30):
            x, s = step(x, s)
            out.append(x)
        return out, s

    with standard_promotion():
        expected, o_s = run(optax, optax.lbfgs(learning_rate=0.1, memory_size=4,
                                               linesearch=None))
    ours, s = run(gx, gx.lbfgs(learning_rate=0.1, memory_size=4, linesearch=None))
    assert float(jnp.linalg.norm(ours[-1])) < 0.1 * float(jnp.linalg.norm(x0))
    for x, want in zip(ours, expected):
        np.testing.assert_allclose(x, want, rtol=2e-5, atol=1e-6)
    o_lbfgs = o_s[0]
    np.testing.assert_allclose(s.inner[0].diff_params_memory, o_lbfgs.diff_params_memory,
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(s.inner[0].weights_memory, o_lbfgs.weights_memory, rtol=1e-4)


# --------------------------------------------------------------------------------------------
# NumPy references (Nocedal & Wright).

_RNG = np.random.default_rng(3)
_A = _RNG.normal(size=(5, 5))
_CENTER = _RNG.normal(size=5)


def _np_grad(x):
    # a smooth strongly convex function: sum(cosh(A (x - c))) / 5 + |x|^2 / 2
    z = _A @ (x - _CENTER)
    return _A.T @ np.sinh(z) / 5 + x


def _jnp_grad(x):
    z = jnp.asarray(_A) @ (x - jnp.asarray(_CENTER))
    return jnp.asarray(_A).T @ jnp.sinh(z) / 5 + x


@pytest.mark.parametrize("name", ["lbfgs", "bfgs"])
def test_directions_match_nocedal_wright(name):
    x0 = _RNG.normal(size=5) * 0.3
    if name == "lbfgs":
        tx = gx.lbfgs(learning_rate=0.3, memory_size=3, linesearch=None)
        expected = ref.lbfgs_fixed_step(_np_grad, x0, 3, 0.3, 25)
    else:
        tx = gx.bfgs(learning_rate=0.3, linesearch=None)
        expected = ref.bfgs_fixed_step(_np_grad, x0, 0.3, 25)
    with jax.enable_x64(True):
        x, s = jnp.asarray(x0), tx.init(jnp.asarray(x0))
        step = jax.jit(lambda x, s: tx.update(_jnp_grad(x), s, x))
        for want in expected:
            u, s = step(x, s)
            x = gx.apply_updates(x, u)
            np.testing.assert_allclose(x, want, rtol=1e-10, atol=1e-12)


def test_lbfgs_leaves_out_pairs_without_positive_curvature():
    """Gradients of a concave function (s^T y < 0): the direction stays a descent direction
    (optax's keeps the pair and its direction turns uphill)."""
    tx = gx.lbfgs(learning_rate=0.1, linesearch=None)

    def body(carry, _):
        x, s = carry
        g = -2.0 * x + jnp.asarray([0.3, 0.1])   # gradient of -|x|^2 + <(0.3, 0.1), x>
        u, s = tx.update(g, s, x)
        return (gx.apply_updates(x, u), s), jnp.vdot(u, g)

    x = jnp.asarray([1.0, -0.5])
    _, slopes = jax.jit(lambda x: jax.lax.scan(body, (x, tx.init(x)), None, length=5))(x)
    assert np.all(np.asarray(slopes) < 0), slopes


# --------------------------------------------------------------------------------------------
# Errors.


@pytest.mark.parametrize("ls", [gx.backtracking_linesearch(), gx.zoom_linesearch(),
                                gx.golden_section_linesearch()],
                         ids=["backtracking", "zoom", "golden"])
def test_missing_arguments_are_named(ls):
    params = jnp.asarray([1.0, 2.0])
    state = ls.init(params)
    value, grad = jax.value_and_grad(_sum_sq)(params)
    name = type(ls).__name__
    with pytest.raises(ValueError, match=rf"^{name}: value_fn is required"):
        ls.update(-grad, state, params, value=value, grad=grad)
    with pytest.raises(ValueError, match=rf"^{name}: value is required"):
        ls.update(-grad, state, params, grad=grad, value_fn=_sum_sq)
    with pytest.raises(ValueError, match=rf"^{name}: grad is required"):
        ls.update(-grad, state, params, value=value, value_fn=_sum_sq)
    with pytest.raises(ValueError, match=rf"^{name}: value must be the scalar value"):
        ls.update(-grad, state, params, value=params, grad=grad, value_fn=_sum_sq)
    with pytest.raises(TypeError, match=rf"^{name}: value_fn must be the objective"):
        ls.update(-grad, state, params, value=value, grad=grad, value_fn=3.0)


def test_the_factory_is_named_in_errors_of_a_chain():
    opt = gx.newton()
    params = jnp.asarray([1.0, 2.0])
    with pytest.raises(ValueError, match="^newton: value_fn is required"):
        opt.update(params, opt.init(params), params, value=jnp.asarray(1.0), grad=params)
    with pytest.raises(TypeError, match="^lbfgs: optimises real params only"):
        gx.lbfgs().init(jnp.zeros(2, jnp.complex64))


RANGE_CHECKS = [
    (lambda: gx.zoom_linesearch(slope_rtol=0.5, curv_rtol=0.4),
     "zoom_linesearch: curv_rtol must be larger than slope_rtol"),
    (lambda: gx.zoom_linesearch(curv_rtol=1.0), "zoom_linesearch: curv_rtol must be in (0, 1)"),
    (lambda: gx.zoom_linesearch(max_linesearch_steps=0),
     "zoom_linesearch: max_linesearch_steps must be a whole number >= 1, got 0"),
    (lambda: gx.zoom_linesearch(initial_guess_strategy="two"),
     "zoom_linesearch: initial_guess_strategy must be 'one' or 'keep'"),
    (lambda: gx.backtracking_linesearch(decrease_factor=1.0),
     "backtracking_linesearch: decrease_factor must be in (0, 1), got 1.0"),
    (lambda: gx.scale_by_backtracking_linesearch(-1),
     "scale_by_backtracking_linesearch: max_backtracking_steps must be a whole number >= 0"),
    (lambda: gx.golden_section_linesearch(tol=0.0),
     "golden_section_linesearch: tol must be in (0, 1), got 0.0"),
    (lambda: gx.lbfgs(memory_size=0), "lbfgs: memory_size must be a whole number >= 1, got 0"),
    (lambda: gx.lbfgs(-1.0), "lbfgs: learning_rate must be >= 0, got -1.0"),
    (lambda: gx.newton(damping=-1.0), "newton: damping must be >= 0, got -1.0"),
]


@pytest.mark.parametrize("make,message", RANGE_CHECKS, ids=[m for _, m in RANGE_CHECKS])
def test_range_checks(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)


def test_value_and_grad_from_state_needs_a_linesearch():
    opt = gx.sgd(0.1)
    params = jnp.asarray([1.0])
    with pytest.raises(ValueError, match="holds no value and gradient"):
        gx.value_and_grad_from_state(_sum_sq)(params, state=opt.init(params))


def test_verbose_reports_a_search_that_takes_no_step(capfd):
    """optax's verbose=True: a line search along an ascent direction says why it stopped."""
    params = jnp.asarray([1.0, 2.0])
    tx = gx.chain(gx.scale(1.0), gx.scale_by_backtracking_linesearch(3, verbose=True))
    value, grad = jax.value_and_grad(_sum_sq)(params)
    updates, _ = jax.jit(lambda: tx.update(grad, tx.init(params), params, value=value,
                                           grad=grad, value_fn=_sum_sq))()
    jax.effects_barrier()
    np.testing.assert_array_equal(updates, 0.0)
    assert "no step in 4 evaluations satisfies sufficient decrease" in capfd.readouterr().out
