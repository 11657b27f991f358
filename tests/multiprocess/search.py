"""One process of a two-process search on 127.0.0.1: the population axis over both processes.

Usage::

    python search.py PROCESS_ID NUM_PROCESSES PORT OUT.json [INIT_TIMEOUT_SECONDS]

Every process joins with ``jax.distributed.initialize``, contributes ``8 / NUM_PROCESSES``
simulated CPU devices to one mesh over ``"population"``, and runs the same two searches with the
same seeds: a vectorized Sobol search of the Branin function (batches of 8 configurations, one
per device) and PBT on the shared regression problem (8 members, their states split over the
processes). Each process writes the trial tables it saw to ``OUT.json``.
"""

from __future__ import annotations

import json
import os
import sys

import jax

PROCESS_ID, NUM_PROCESSES, PORT, OUT = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                        sys.argv[4])
INIT_TIMEOUT = int(sys.argv[5]) if len(sys.argv) > 5 else 20
DEVICES = 8

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_num_cpu_devices", DEVICES // NUM_PROCESSES)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
# The coordinator listens on the loopback interface only (by default it binds every interface).
jax.distributed.initialize(
    coordinator_address=f"127.0.0.1:{PORT}", coordinator_bind_address=f"127.0.0.1:{PORT}",
    num_processes=NUM_PROCESSES,
    process_id=PROCESS_ID, initialization_timeout=INIT_TIMEOUT,
    heartbeat_timeout_seconds=10, shutdown_timeout_seconds=10,
)

import numpy as np  # noqa: E402

from gradxform import search  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import search_targets as targets  # noqa: E402


def table(result):
    return [{"config": t.config, "value": t.value, "info": t.info} for t in result.trials]


def main():
    assert jax.process_count() == NUM_PROCESSES and jax.device_count() == DEVICES
    mesh = jax.make_mesh((DEVICES,), ("population",))
    out = {}
    branin = search.minimize(targets.branin_jax, targets.BRANIN_SPACE, strategy="sobol",
                             budget=20, batch_size=8, vectorized=True, seed=4, mesh=mesh)
    out["branin"] = table(branin)
    out["branin_compiles"] = branin.compiles
    pbt = search.minimize(targets.regression(), targets.ADAM_SPACE, strategy="pbt", budget=8,
                          steps=3, generations=3, seed=2, mesh=mesh)
    out["pbt"] = table(pbt)
    out["pbt_best_params"] = np.asarray(pbt.state[0]).tolist()
    with open(OUT, "w") as f:
        json.dump(out, f)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
