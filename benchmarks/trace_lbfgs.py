"""gradxform's lbfgs and scipy's L-BFGS-B side by side on one problem: where the counts differ.

For each iteration: the evaluations it took in each solver, the distance between the two
iterates (relative), the step lengths and the values; then, for tighter and tighter gradient
tolerances, the evaluation at which each solver first meets them, and the first at which it
reaches the minimum value (``f <= 1e-20``; the Moré-Garbow-Hillstrom problems used here have
f* = 0). Both solvers run once, far past the benchmark's tolerance (scipy with ``gtol=1e-14``
stops when its line search fails), and every evaluated point is recorded by a callback.

    python benchmarks/trace_lbfgs.py [--problem powell_badly_scaled] [--iterations 100]

This explains a count in ``bench_minimize.py`` rather than timing anything.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from bench_minimize import problems

import gradxform as gx

jax.config.update("jax_enable_x64", True)


def run_scipy(fun, x0, gtol):
    value_and_grad = jax.jit(jax.value_and_grad(fun))
    points, iterates = [], [np.asarray(x0)]
    ends = [1]

    def objective(x):
        points.append(np.array(x))
        value, grad = value_and_grad(x)
        return float(value), np.asarray(grad, np.float64)

    def callback(xk):
        iterates.append(np.array(xk))
        ends.append(len(points))

    res = scipy.optimize.minimize(objective, np.asarray(x0, np.float64), jac=True,
                                  method="L-BFGS-B", callback=callback,
                                  options=dict(gtol=gtol, ftol=0.0, maxiter=5000,
                                               maxfun=100000))
    return points, iterates, ends, res


def run_gradxform(fun, x0, iterations):
    points = []

    def recorded(x):
        jax.debug.callback(lambda x: points.append(np.array(x)), x)
        return fun(x)

    solver = gx.Solver(gx.lbfgs(), recorded)
    step = jax.jit(solver.step)
    x, state = x0, solver.init(x0)
    jax.effects_barrier()
    iterates, ends = [np.asarray(x0)], [len(points)]
    grad = jax.jit(jax.grad(fun))
    for _ in range(iterations):
        x, state = step(x, state)
        jax.effects_barrier()
        moved = not np.array_equal(np.asarray(x), iterates[-1])
        iterates.append(np.asarray(x))
        ends.append(len(points))
        if not moved or float(jnp.linalg.norm(grad(x))) <= 1e-12:
            break  # converged, or the line search found no lower point (rounding)
    return points, iterates, ends


def first_hits(points, value_and_grad):
    rows = [(np.asarray(v).item(), float(np.linalg.norm(g)))
            for v, g in (value_and_grad(p) for p in points)]
    hits = {}
    for tol in (1e-6, 1e-8, 1e-10):
        hits[f"|g| <= {tol:g}"] = next((i + 1 for i, (_, n) in enumerate(rows) if n <= tol), None)
    hits["f <= 1e-20"] = next((i + 1 for i, (v, _) in enumerate(rows) if v <= 1e-20), None)
    return hits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="powell_badly_scaled")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--every", type=int, default=1, help="print every n-th iteration")
    args = parser.parse_args()
    fun, x0 = problems()[args.problem]
    value_and_grad = jax.jit(jax.value_and_grad(fun))
    sp_points, sp_iter, sp_ends, res = run_scipy(fun, x0, 1e-14)
    gx_points, gx_iter, gx_ends = run_gradxform(fun, x0, args.iterations)

    print(f"{args.problem}: per iteration (evaluations, relative distance of the iterates, "
          f"step lengths, values)")
    print(f"{'k':>4}{'ev sp':>6}{'ev gx':>6}{'|x_sp-x_gx|/|x|':>17}{'step sp':>11}{'step gx':>11}"
          f"{'f sp':>12}{'f gx':>12}")
    for k in range(1, max(len(sp_iter), len(gx_iter))):
        if k % args.every and k != 1:
            continue
        cells = []
        for iterates, ends in ((sp_iter, sp_ends), (gx_iter, gx_ends)):
            if k < len(iterates):
                x = iterates[k]
                cells.append((ends[k] - ends[k - 1], np.linalg.norm(x - iterates[k - 1]),
                              float(value_and_grad(x)[0]), x))
            else:
                cells.append(None)
        sp, ours = cells
        dist = (f"{np.linalg.norm(sp[3] - ours[3]) / np.linalg.norm(sp[3]):>17.2e}"
                if sp and ours else f"{'':>17}")
        fmt = lambda c, i, f: f"{c[i]:{f}}" if c else ""  # noqa: E731
        print(f"{k:>4}{fmt(sp, 0, '>6'):>6}{fmt(ours, 0, '>6'):>6}{dist}"
              f"{fmt(sp, 1, '>11.3e'):>11}{fmt(ours, 1, '>11.3e'):>11}"
              f"{fmt(sp, 2, '>12.4e'):>12}{fmt(ours, 2, '>12.4e'):>12}")

    print(f"\nscipy L-BFGS-B (gtol=1e-14) ended: {res.message} after {res.nfev} evaluations, "
          f"f = {res.fun:.4e}")
    print("First evaluation at which each solver meets a condition:")
    sp_hits = first_hits(sp_points, value_and_grad)
    gx_hits = first_hits(gx_points, value_and_grad)
    print(f"{'condition':<14}{'scipy L-BFGS-B':>16}{'gx lbfgs':>10}")
    for name in sp_hits:
        print(f"{name:<14}{str(sp_hits[name]):>16}{str(gx_hits[name]):>10}")


if __name__ == "__main__":
    main()
