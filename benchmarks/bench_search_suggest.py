"""Time per suggestion of the Bayes tuner at 10, 50 and 100 observations, after compilation.

For each dimension and observation count ``n``, a tuner is told ``n - warm`` quasi-random
observations of Hartmann-like test values, then runs ``warm`` ask/tell rounds (compiling what
it needs and fitting its GP the first time), and the next ``ask(1)`` (at ``n`` observations) is
timed; the median over ``--repeats`` tuners is printed, beside the first (compiling) ask of the
whole run. Also times ``ask(4)`` per point, with the batch rule ``--batch`` (``believer`` or
``qlogei``; the first ``ask(4)`` of the run, which compiles the batch program of ``qlogei``, is
printed apart). Wall-clock and CPU milliseconds (the process's CPU time, all threads: on a
loaded machine the wall clock measures the load as much as the tuner).

Usage::

    python benchmarks/bench_search_suggest.py
    python benchmarks/bench_search_suggest.py --dims 2,6 --counts 10,50,100 --repeats 5
    python benchmarks/bench_search_suggest.py --counts 20,100 --batch qlogei
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from gradxform import search
from gradxform._src.search import bayes as bayes_module
from gradxform._src.search.bayes import Bayes


def objective(x):
    # A smooth, multimodal function of the cube (a sum of Gaussian bumps).
    centres = np.linspace(0.2, 0.8, 3)[:, None]
    return -float(np.sum(np.exp(-20 * np.sum((x[None, :] - centres) ** 2, axis=-1))))


def time_ask(dim, n, k, seed, warm, batch="believer"):
    space = {f"x{i}": search.Float(0.0, 1.0) for i in range(dim)}
    tuner = Bayes(space, seed=seed, batch=batch)
    rng = np.random.default_rng(seed)
    configs = [{f"x{i}": float(v) for i, v in enumerate(row)}
               for row in rng.random((max(n - warm, 1), dim))]
    tuner.tell(configs, [objective(np.array(list(c.values()))) for c in configs])
    while len(tuner.trials) < n:
        c = tuner.ask(1)
        tuner.tell(c, [objective(np.array(list(x.values()))) for x in c])
    traced = sum(bayes_module.TRACE_COUNTS.values())
    t, cpu = time.perf_counter(), time.process_time()
    tuner.ask(k)
    dt, dcpu = time.perf_counter() - t, time.process_time() - cpu
    return dt / k, dcpu / k, sum(bayes_module.TRACE_COUNTS.values()) != traced


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="2,6")
    parser.add_argument("--counts", default="10,50,100")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument("--batch", default="believer", help="the batch rule of ask(4)")
    args = parser.parse_args()
    dims = [int(d) for d in args.dims.split(",")]
    counts = [int(n) for n in args.counts.split(",")]
    print(f"# ms per suggestion, median of {args.repeats}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; batch rule {args.batch}")
    t = time.perf_counter()
    time_ask(dims[0], counts[0], 1, 0, args.warm)
    print(f"# first ask of the run (compiles): {time.perf_counter() - t:.1f} s")
    dt, _, _ = time_ask(dims[0], counts[0], 4, 0, args.warm, args.batch)
    print(f"# first ask(4) after it (compiles the batch program of {args.batch!r} if it has "
          f"one): {4 * dt:.1f} s")
    print(f"{'dim':>4}{'k':>3}" + "".join(f"{'wall@' + str(n):>10}" for n in counts)
          + "".join(f"{'cpu@' + str(n):>10}" for n in counts))
    for dim in dims:
        for k in (1, 4):
            walls, cpus = [], []
            for n in counts:
                times = []
                for seed in range(args.repeats + 1):
                    dt, dcpu, compiled = time_ask(dim, n, k, seed, args.warm, args.batch)
                    if not compiled and seed > 0:
                        times.append((dt, dcpu))
                for cells, i in ((walls, 0), (cpus, 1)):
                    cells.append(f"{1e3 * np.median([t[i] for t in times]):>10.1f}" if times
                                 else f"{'-':>10}")
            print(f"{dim:>4}{k:>3}" + "".join(walls) + "".join(cpus), flush=True)


if __name__ == "__main__":
    main()
