"""A search whose population spans two processes (``jax.distributed`` on 127.0.0.1) gives the
trial table of a single process.

Two fresh Python processes (``tests/multiprocess/search.py``) of 4 CPU devices each form one mesh
of 8 devices and run a vectorized Sobol search and PBT with the population split over both. The
coordinator's port is picked by binding port 0 and releasing it, which can race with another
program taking the port in between; a launch that fails because the address is in use is
retried with a new port.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from gradxform import search
from search_targets import ADAM_SPACE, BRANIN_SPACE, branin_jax, regression

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "multiprocess", "search.py")
DEADLINE = 120          # seconds per attempt; a run takes about 15 on 2 cores
ATTEMPTS = 3
PORT_TAKEN = ("address already in use", "failed to add port", "failed to start rpc server")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_once(out_dir: str, port: int):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("XLA_FLAGS", None)
    procs = []
    for pid in range(2):
        out = os.path.join(out_dir, f"search{pid}.json")
        cmd = [sys.executable, WORKER, str(pid), "2", str(port), out, "20"]
        procs.append((subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True), out))
    end = time.monotonic() + DEADLINE
    logs = [""] * 2
    try:
        for i, (p, _) in enumerate(procs):
            logs[i] = p.communicate(timeout=max(end - time.monotonic(), 0.1))[0]
            if p.returncode != 0:
                break
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p, _ in procs:
            if p.poll() is None:
                p.kill()
        for i, (p, _) in enumerate(procs):
            logs[i] += p.communicate()[0] or ""
    return [p.returncode for p, _ in procs], logs, [out for _, out in procs]


def run_workers(out_dir: str, first_port: int | None = None):
    """Launch the two workers, with a new port if the one tried was taken; return the output
    files and the number of attempts."""
    for attempt in range(ATTEMPTS):
        port = first_port if attempt == 0 and first_port is not None else free_port()
        codes, logs, outs = run_once(out_dir, port)
        if codes == [0, 0]:
            return outs, attempt + 1
        taken = any(m in log.lower() for log in logs for m in PORT_TAKEN)
        if not taken or attempt == ATTEMPTS - 1:
            tail = "\n".join(f"--- process {i} ---\n" + "\n".join(log.splitlines()[-25:])
                             for i, log in enumerate(logs))
            pytest.fail(f"the workers failed (exit codes {codes}):\n{tail}")
    raise AssertionError("unreachable")


@pytest.mark.slow
def test_population_split_over_two_processes_equals_one_process(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:   # a port someone holds
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        outs, attempts = run_workers(str(tmp_path), first_port=busy.getsockname()[1])
    assert attempts == 2                            # the taken port was detected and replaced
    runs = []
    for out in outs:
        with open(out) as f:
            runs.append(json.load(f))
    assert runs[0] == runs[1]                       # both processes saw the same search
    run = runs[0]
    assert run["branin_compiles"] == 1
    single = search.minimize(branin_jax, BRANIN_SPACE, strategy="sobol", budget=20,
                             batch_size=8, vectorized=True, seed=4)
    assert [t["config"] for t in run["branin"]] == [t.config for t in single.trials]
    np.testing.assert_allclose([t["value"] for t in run["branin"]],
                               [t.value for t in single.trials], rtol=1e-6)
    pbt = search.minimize(regression(), ADAM_SPACE, strategy="pbt", budget=8, steps=3,
                          generations=3, seed=2)
    assert [t["config"] for t in run["pbt"]] == [t.config for t in pbt.trials]
    assert [t["info"] for t in run["pbt"]] == [t.info for t in pbt.trials]
    np.testing.assert_allclose([t["value"] for t in run["pbt"]], [t.value for t in pbt.trials],
                               rtol=1e-5)
    np.testing.assert_allclose(run["pbt_best_params"], pbt.state[0], rtol=1e-5, atol=1e-7)
