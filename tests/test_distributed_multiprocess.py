"""Several processes on 127.0.0.1 with ``jax.distributed``: the same params as one process.

Two fresh Python processes (``tests/multiprocess/train.py``) of 4 CPU devices each form one
mesh of 8 devices, each feeds its half of every batch, and they train with params replicated
and the optimizer state sharded across both. Both must end with identical params, equal (with
the state) to the single-process run.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from helpers import assert_trees_close

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "multiprocess", "train.py")
sys.path.insert(0, os.path.join(HERE, "multiprocess"))
import dp_problem as prob  # noqa: E402

DEADLINE = 90  # seconds: a hang guard for the whole run (it takes about 10 on 2 cores)
# The coordinator could not listen on its port (another process took it meanwhile).
PORT_TAKEN = re.compile(r"address already in use|failed to (bind|add port|start)", re.I)


def free_port() -> int:
    """A port that was free a moment ago. Another process may take it before the coordinator
    listens on it: :func:`run` then starts again on a new port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(num_processes, out_dir, deadline, attempts=3, **kwargs):
    """Launch the workers and wait for them; relaunch on a new port if the port was taken."""
    for _ in range(attempts):
        procs = launch(num_processes, out_dir, **kwargs)
        codes, logs = wait_all(procs, deadline)
        if not any(PORT_TAKEN.search(log) for log in logs):
            break
    return procs, codes, logs


def launch(num_processes, out_dir, init_timeout=20, only=None):
    """Start the workers (or only the ids in ``only``); return [(process, out path)]."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("XLA_FLAGS", None)
    port = free_port()
    procs = []
    for pid in range(num_processes) if only is None else only:
        out = os.path.join(out_dir, f"process{pid}.npz")
        cmd = [sys.executable, WORKER, str(pid), str(num_processes), str(port), out,
               str(init_timeout)]
        procs.append((subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True), out))
    return procs


def wait_all(procs, deadline):
    """Wait for every process; kill all of them if one fails or the deadline passes."""
    end = time.monotonic() + deadline
    logs = [""] * len(procs)
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
            rest = p.communicate()[0]
            logs[i] += rest or ""
    return [p.returncode for p, _ in procs], logs


def _tail(logs):
    return "\n".join(f"--- process {i} ---\n" + "\n".join(log.splitlines()[-25:])
                     for i, log in enumerate(logs))


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
    procs, codes, logs = run(2, str(tmp_path), DEADLINE)
    assert codes == [0, 0], f"the workers failed (exit codes {codes}):\n{_tail(logs)}"
    runs = [dict(np.load(out)) for _, out in procs]
    assert runs[0].keys() == runs[1].keys()
    for key in runs[0]:  # both processes hold the same params (and the same gathered state)
        np.testing.assert_array_equal(runs[0][key], runs[1][key], err_msg=key)
    xs, ys = prob.make_data()
    for name, tx in prob.optimizers().items():
        assert int(runs[0][f"{name}/sharded_state_leaves"]) > 0  # the state spans processes
        params, state = prob.train_single_device(tx, prob.make_params(), xs, ys)
        expected = {f"{name}/params{jax.tree_util.keystr(p)}": np.asarray(v)
                    for p, v in jax.tree_util.tree_flatten_with_path(params)[0]}
        expected.update({f"{name}/state{jax.tree_util.keystr(p)}": np.asarray(v)
                         for p, v in jax.tree_util.tree_flatten_with_path(state)[0]})
        actual = {k: runs[0][k] for k in expected}
        assert_trees_close(actual, expected, rtol=1e-6, atol=1e-6, leaf_scale=True,
                           what=f"2 processes, {name}")


@pytest.mark.slow
def test_a_missing_peer_fails_fast(tmp_path):
    """Process 0 of 2 alone: initialize gives up after its timeout instead of hanging.

    How long that takes is not asserted (a shared machine makes any bound flaky); the 60 s
    deadline only guards against a hang, and a process we had to kill fails the test.
    """
    _, codes, logs = run(2, str(tmp_path), 60, init_timeout=3, only=[0])
    assert codes[0] not in (0, None, -9), _tail(logs)  # it stopped itself; we did not kill it
    assert "deadline exceeded" in logs[0].lower(), _tail(logs)
