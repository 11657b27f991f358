"""Simple regret of gradxform.search against optuna and scikit-optimize on four test functions.

For each problem (Branin 2-D, Hartmann 6-D, Rosenbrock 4-D, Ackley 5-D, each on its usual box
with its known optimum) and each method, run ``--seeds`` independent searches of ``--budget``
evaluations and print the median simple regret (best value found minus the optimum) after 20,
50 and 100 evaluations (at 50 also the number of seeds that end above the anchor), then the
time each method spends per suggestion at 20 and 100 observations (Bayes after compilation;
its one-time compilation is printed apart).

Methods: gradxform ``Random``, ``Sobol``, ``Bayes`` with batches of 1 and of 4 (``ask(4)``), and
``Bayes(warp="power", trust_region=False)`` (the defaults before the trust region, suffix
``_global``), and the options ``acquisition="ts"`` (Thompson sampling, ``_ts``),
``acquisition="hedge"`` (GP-Hedge, ``_hedge``), ``lengthscale_floor=0.4`` (``_floor``), the
annealed floor ``lengthscale_floor=1, floor_decay=1`` (``_anneal``), the same with the local
phase ``local_side=0.1`` (``_local``), the local phase alone with a box of 4 times the
region's sides (``_localbox``) and ``batch="qlogei"`` (batches of 4 maximising Monte-Carlo
qLogEI jointly, ``_qlogei``);
optuna's TPE and GP samplers, scikit-optimize's ``gp_minimize`` and the
``bayesian-optimization`` package's ``BayesianOptimization`` (its defaults: 5 random points,
then its GP and acquisition) when they are installed (``pip install -e .[bench]``; optuna's GP
sampler also needs torch). Their versions are printed. The anchors of the issue (median
regret at 50 evaluations, best of several libraries, measured on this kind of machine) are
printed beside the table with the ratio of gradxform's Bayes to them, and for each median
after 50 evaluations a distribution-free 95% interval (:func:`median_interval`).

Usage::

    python benchmarks/bench_search_regret.py                     # 10 seeds x 100 evaluations
    python benchmarks/bench_search_regret.py --seeds 3 --budget 50 --problems branin,ackley5
    python benchmarks/bench_search_regret.py --methods bayes1,bayes4,random
    python benchmarks/bench_search_regret.py --methods bayes1 --seeds 10 --first-seed 10
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import math
import os
import sys
import time
import warnings

import numpy as np

from gradxform import search
from gradxform._src.search import bayes as bayes_module
from gradxform._src.search.bayes import Bayes

# --------------------------------------------------------------------------------------------
# Test functions (minimisation), on their usual boxes.


def branin(x):
    x1, x2 = x[..., 0], x[..., 1]
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - t) * np.cos(x1) + 10


_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                 [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])


def hartmann6(x):
    inner = np.sum(_H_A * (x[..., None, :] - _H_P) ** 2, axis=-1)
    return -np.sum(_H_ALPHA * np.exp(-inner), axis=-1)


def rosenbrock(x):
    return np.sum(100 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (1 - x[..., :-1]) ** 2, axis=-1)


def ackley(x):
    d = x.shape[-1]
    return (-20 * np.exp(-0.2 * np.sqrt(np.sum(x ** 2, axis=-1) / d))
            - np.exp(np.sum(np.cos(2 * math.pi * x), axis=-1) / d) + 20 + math.e)


# name: (function, box per coordinate, optimum value, anchor regret at 50 evaluations)
PROBLEMS = {
    "branin": (branin, [(-5.0, 10.0), (0.0, 15.0)], 0.397887357729738, 3.6e-5),
    "hartmann6": (hartmann6, [(0.0, 1.0)] * 6, -3.322368011415511, 1.7e-3),
    "rosenbrock4": (rosenbrock, [(-5.0, 10.0)] * 4, 0.0, 4.8),
    "ackley5": (ackley, [(-32.768, 32.768)] * 5, 0.0, 1.96),
}
CHECKPOINTS = (20, 50, 100)


def space_of(box):
    return {f"x{i}": search.Float(lo, hi) for i, (lo, hi) in enumerate(box)}


def point(config, box):
    return np.array([config[f"x{i}"] for i in range(len(box))])


# --------------------------------------------------------------------------------------------
# Methods. Each returns (values in evaluation order, {observations: seconds of one suggestion}).


def run_tuner(make, problem, budget, seed, batch=1):
    f, box, _, _ = PROBLEMS[problem]
    tuner = make(space_of(box), seed)
    values, times, compile_s = [], {}, 0.0
    while len(values) < budget:
        k = min(batch, budget - len(values))
        traced = sum(bayes_module.TRACE_COUNTS.values())
        t = time.perf_counter()
        configs = tuner.ask(k)
        dt = time.perf_counter() - t
        if sum(bayes_module.TRACE_COUNTS.values()) != traced:
            compile_s += dt  # this ask compiled something: not a steady-state time
        elif len(values) in (20, 99):
            times[len(values) + (len(values) == 99)] = dt / k
        vals = [float(f(point(c, box))) for c in configs]
        tuner.tell(configs, vals)
        values += vals
    if budget >= 100 and batch == 1:  # one more suggestion, at exactly 100 observations
        traced = sum(bayes_module.TRACE_COUNTS.values())
        t = time.perf_counter()
        tuner.ask(1)
        dt = time.perf_counter() - t
        if sum(bayes_module.TRACE_COUNTS.values()) == traced:
            times[100] = dt
    return values, times, compile_s


def run_optuna(sampler_name, problem, budget, seed):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    f, box, _, _ = PROBLEMS[problem]
    sampler = (optuna.samplers.TPESampler(seed=seed) if sampler_name == "tpe"
               else optuna.samplers.GPSampler(seed=seed))
    study = optuna.create_study(sampler=sampler)
    values, times = [], {}

    def suggest():
        trial = study.ask()
        x = np.array([trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(box)])
        return trial, x

    while len(values) < budget:
        t = time.perf_counter()
        trial, x = suggest()
        dt = time.perf_counter() - t
        if len(values) in (20, 100):
            times[len(values)] = dt
        v = float(f(x))
        study.tell(trial, v)
        values.append(v)
    if budget >= 100:
        t = time.perf_counter()
        suggest()
        times[100] = time.perf_counter() - t
    return values, times, 0.0


def run_skopt(problem, budget, seed):
    from skopt import gp_minimize

    f, box, _, _ = PROBLEMS[problem]
    stamps = [time.perf_counter()]

    def objective(x):
        return float(f(np.asarray(x)))

    def callback(res):
        stamps.append(time.perf_counter())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = gp_minimize(objective, box, n_calls=budget, random_state=seed, callback=callback)
    # Time of one iteration (fit, suggestion and a negligible evaluation) after n observations.
    gaps = np.diff(stamps)
    times = {n: gaps[n] for n in (20, 99) if n < len(gaps)}
    if 99 in times:
        times[100] = times.pop(99)
    return list(map(float, res.func_vals)), times, 0.0


def run_bayesopt(problem, budget, seed):
    """The ``bayesian-optimization`` package with its defaults (5 random points, then its GP
    and acquisition), maximising the negated function."""
    from bayes_opt import BayesianOptimization

    f, box, _, _ = PROBLEMS[problem]
    values, stamps = [], []

    def objective(**config):
        stamps.append(time.perf_counter())
        values.append(float(f(np.array([config[f"x{i}"] for i in range(len(box))]))))
        return -values[-1]

    bounds = {f"x{i}": (lo, hi) for i, (lo, hi) in enumerate(box)}
    optimizer = BayesianOptimization(f=objective, pbounds=bounds, random_state=seed, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer.maximize(init_points=min(5, budget), n_iter=max(budget - 5, 0))
    # Time of one suggestion (fit and acquisition; the evaluation is negligible) after n
    # observations: the gap between the n-th and the (n+1)-th evaluation.
    gaps = np.diff(stamps)
    times = {n: gaps[n - 1] for n in (20, 100) if n <= len(gaps)}
    return values[:budget], times, 0.0


#: Bayes's options measured, by method suffix: (constructor options, batch sizes).
BAYES_VARIANTS = {
    "": ({}, (1, 4)),  # the default
    # the acquisition over the whole cube and Yeo-Johnson warping (the defaults before the
    # trust region)
    "_global": ({"warp": "power", "trust_region": False}, (1, 4)),
    "_power": ({"warp": "power"}, (1,)),  # Yeo-Johnson output warping only
    "_auto": ({"warp": "auto"}, (1,)),  # the output warping chosen per fit by GP likelihood
    "_ts": ({"acquisition": "ts"}, (1, 4)),  # Thompson sampling in the trust region
    "_hedge": ({"acquisition": "hedge"}, (1, 4)),  # GP-Hedge over log EI, log PI and UCB
    "_floor": ({"lengthscale_floor": 0.4}, (1, 4)),  # length scales >= 0.4 x the region's side
    # the floor 1.0 x (L / 0.8) x L, fading as the region's side L shrinks
    "_anneal": ({"lengthscale_floor": 1.0, "floor_decay": 1.0}, (1, 4)),
    # the annealed floor, and a GP of the observations near the incumbent once L <= 0.1
    "_local": ({"lengthscale_floor": 1.0, "floor_decay": 1.0, "local_side": 0.1}, (1, 4)),
    "_qlogei": ({"batch": "qlogei"}, (4,)),  # batches maximising qLogEI jointly
    # the local phase alone with a larger box of observations (class attributes, set on the
    # tuner): 4 times the region's sides, length scales at least a tenth of that box
    "_localbox": ({"local_side": 0.1, "local_factor": 4.0, "local_floor": 0.1}, (1,)),
}
#: Options of BAYES_VARIANTS that are attributes of the tuner, not constructor arguments.
ATTRIBUTES = ("local_factor", "local_floor")


def run_bayes(problem, budget, seed, *, options, batch):
    def make(space, seed):
        tuner = Bayes(space, seed=seed,
                      **{k: v for k, v in options.items() if k not in ATTRIBUTES})
        for k in ATTRIBUTES:
            if k in options:
                setattr(tuner, k, options[k])
        return tuner

    return run_tuner(make, problem, budget, seed, batch)


def methods_available(requested):
    have_optuna = importlib.util.find_spec("optuna") is not None
    have_torch = importlib.util.find_spec("torch") is not None
    have_skopt = importlib.util.find_spec("skopt") is not None
    have_bayesopt = importlib.util.find_spec("bayes_opt") is not None
    table = {
        "random": lambda p, b, s: run_tuner(lambda sp, sd: search.Random(sp, seed=sd), p, b, s),
        "sobol": lambda p, b, s: run_tuner(lambda sp, sd: search.Sobol(sp, seed=sd), p, b, s),
    }
    for suffix, (options, batches) in BAYES_VARIANTS.items():
        for batch in batches:
            table[f"bayes{batch}{suffix}"] = functools.partial(run_bayes, options=options,
                                                                batch=batch)
    if have_optuna:
        table["optuna_tpe"] = lambda p, b, s: run_optuna("tpe", p, b, s)
        if have_torch:
            table["optuna_gp"] = lambda p, b, s: run_optuna("gp", p, b, s)
    if have_skopt:
        table["skopt_gp"] = run_skopt
    if have_bayesopt:
        table["bayesopt_gp"] = run_bayesopt
    if requested:
        missing = [m for m in requested if m not in table]
        if missing:
            print(f"not available here (not installed or unknown): {', '.join(missing)}")
        table = {m: table[m] for m in requested if m in table}
    return table


def versions():
    from importlib import metadata

    out = []
    for mod, dist in (("jax", "jax"), ("optuna", "optuna"), ("skopt", "scikit-optimize"),
                      ("bayes_opt", "bayesian-optimization"), ("torch", "torch")):
        if importlib.util.find_spec(mod) is not None:
            out.append(f"{mod} {metadata.version(dist)}")
    return ", ".join(out)


def median_interval(values, level=0.95):
    """A distribution-free confidence interval of the median of ``values``: the order
    statistics ``(x_(k), x_(n+1-k))`` with the largest ``k`` whose coverage, from the binomial
    distribution of the number of values below the median, is at least ``level`` (for 10
    seeds, the 2nd and 9th smallest, 97.9%); ``(min, max)`` when no ``k`` reaches it."""
    from scipy.stats import binom

    x = np.sort(np.asarray(values, np.float64))
    n, k = x.size, 1
    while k < n // 2 and 1.0 - 2.0 * binom.cdf(k, n, 0.5) >= level:
        k += 1
    return float(x[k - 1]), float(x[n - k])


def fmt(x):
    if x is None or not np.isfinite(x):
        return "-"
    return f"{x:.2e}" if (x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e3)) else f"{x:.3g}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed + seeds - 1 (held-out seeds)")
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--methods", default="",
                        help="comma-separated subset of random, sobol, bayes1, bayes4, "
                             "bayes1_global, bayes4_global, bayes1_power, bayes1_auto, "
                             "bayes1_ts, bayes4_ts, bayes1_hedge, bayes4_hedge, "
                             "bayes1_floor, bayes4_floor, bayes1_anneal, bayes4_anneal, "
                             "bayes1_local, bayes4_local, bayes1_localbox, bayes4_qlogei, "
                             "optuna_tpe, optuna_gp, skopt_gp, bayesopt_gp "
                             "(default: all available)")
    args = parser.parse_args()
    problems = [p for p in args.problems.split(",") if p]
    for p in problems:
        if p not in PROBLEMS:
            raise SystemExit(f"unknown problem {p!r}; choose from {', '.join(PROBLEMS)}")
    methods = methods_available([m for m in args.methods.split(",") if m])
    checkpoints = [c for c in CHECKPOINTS if c <= args.budget]
    print(f"# simple regret, median over {args.seeds} seeds; budget {args.budget}; "
          f"{versions()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    timing = {}
    compile_total = {}
    for problem in problems:
        _, _, optimum, anchor = PROBLEMS[problem]
        print(f"\n## {problem} (optimum {optimum:.6g}; anchor at 50 evaluations: {anchor:g})")
        header = f"{'method':<15}" + "".join(f"{'@' + str(c):>11}" for c in checkpoints)
        if 50 in checkpoints:
            header += f"{'@50/anchor':>12}{'misses':>8}{'median @50, 95% interval':>27}"
        print(header + f"{'seconds':>9}")
        for name, run in methods.items():
            regrets = {c: [] for c in checkpoints}
            t0 = time.perf_counter()
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                values, times, compile_s = run(problem, args.budget, seed)
                best = np.minimum.accumulate(np.asarray(values))
                for c in checkpoints:
                    regrets[c].append(best[c - 1] - optimum)
                for n, dt in times.items():
                    timing.setdefault((name, problem, n), []).append(dt)
                compile_total[name] = compile_total.get(name, 0.0) + compile_s
                print(f"  [{problem} {name} seed {seed}: regret@{args.budget} "
                      f"{fmt(best[-1] - optimum)}]", file=sys.stderr, flush=True)
            med = {c: float(np.median(regrets[c])) for c in checkpoints}
            row = f"{name:<15}" + "".join(f"{fmt(med[c]):>11}" for c in checkpoints)
            if 50 in checkpoints:  # and how many seeds end above the anchor
                misses = sum(r > anchor for r in regrets[50])
                low, high = median_interval(regrets[50])
                row += (f"{fmt(med[50] / anchor):>12}{f'{misses}/{args.seeds}':>8}"
                        f"{fmt(low) + ' .. ' + fmt(high):>27}")
            print(row + f"{time.perf_counter() - t0:>9.1f}", flush=True)

    print("\n## milliseconds per suggestion (median over seeds; Bayes after compilation)")
    ns = sorted({n for (_, _, n) in timing})
    print(f"{'method':<15}{'problem':<13}" + "".join(f"{'@' + str(n):>10}" for n in ns))
    for name in methods:
        for problem in problems:
            cells = [timing.get((name, problem, n)) for n in ns]
            if all(c is None for c in cells):
                continue
            print(f"{name:<15}{problem:<13}" + "".join(
                f"{1e3 * float(np.median(c)):>10.1f}" if c else f"{'-':>10}" for c in cells))
    for name, total in compile_total.items():
        if total > 0:
            print(f"{name}: asks that compiled took {total:.1f} s in total (one-time: the "
                  "compiled programs are reused by later searches of the same dimension)")


if __name__ == "__main__":
    main()
