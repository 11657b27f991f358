"""One process of a multi-process data-parallel training run on 127.0.0.1.

Usage::

    python train.py PROCESS_ID NUM_PROCESSES PORT OUT.npz [INIT_TIMEOUT_SECONDS]

Every process joins the run with ``jax.distributed.initialize`` (gloo collectives on CPU),
contributes ``8 / NUM_PROCESSES`` simulated CPU devices to one global mesh over ``"data"``, feeds
its own rows of every batch (``jax.make_array_from_process_local_data``), keeps the params
replicated and the optimizer state sharded ZeRO-1 style over all 8 devices (so across the
processes), trains SGD with momentum and Adam for the problem's 20 steps, and saves the params
and the gathered state to ``OUT.npz``.
"""

from __future__ import annotations

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
# Small timeouts: a peer that never comes or dies makes the others fail in seconds.
jax.distributed.initialize(
    coordinator_address=f"127.0.0.1:{PORT}", num_processes=NUM_PROCESSES,
    process_id=PROCESS_ID, initialization_timeout=INIT_TIMEOUT,
    heartbeat_timeout_seconds=10, shutdown_timeout_seconds=10,
)

import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import gradxform as gx  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dp_problem as prob  # noqa: E402


def local_rows(sharding, shape, axis):
    """The contiguous range of ``axis`` this process's devices hold."""
    spans = {(idx[axis].start or 0, idx[axis].stop or shape[axis])
             for idx in sharding.addressable_devices_indices_map(shape).values()}
    start, stop = min(s for s, _ in spans), max(e for _, e in spans)
    assert sum(e - s for s, e in spans) == stop - start, "this process's rows are not contiguous"
    return slice(start, stop)


def main():
    assert jax.process_count() == NUM_PROCESSES and jax.device_count() == DEVICES
    mesh = jax.make_mesh((DEVICES,), ("data",), axis_types=(AxisType.Auto,))
    replicated = NamedSharding(mesh, P())
    data_sh = NamedSharding(mesh, P(None, "data"))
    xs, ys = prob.make_data()  # the whole data set; each process keeps only its rows
    rows = local_rows(data_sh, xs.shape, 1)
    xs = jax.make_array_from_process_local_data(data_sh, xs[:, rows], xs.shape)
    ys = jax.make_array_from_process_local_data(data_sh, ys[:, rows], ys.shape)
    host_params = prob.make_params()
    param_sh = jax.tree.map(lambda _: replicated, host_params)
    results = {}
    for name, tx in prob.optimizers().items():
        params = jax.tree.map(
            lambda a: jax.make_array_from_callback(a.shape, replicated, lambda i, a=a: a[i]),
            host_params)
        state = gx.init_sharded(tx, params, zero_axis="data")
        state_sh = gx.state_shardings(tx, params, zero_axis="data")

        def train(params, state, xs, ys, tx=tx):
            def body(carry, batch):
                p, s = carry
                u, s = tx.update(jax.grad(prob.loss)(p, *batch), s, p)
                return (gx.apply_updates(p, u), s), None

            return jax.lax.scan(body, (params, state), (xs, ys))[0]

        params, state = jax.jit(train, out_shardings=(param_sh, state_sh))(params, state, xs, ys)
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            results[f"{name}/params{jax.tree_util.keystr(path)}"] = np.asarray(
                leaf.addressable_data(0))
        gathered = multihost_utils.process_allgather(state, tiled=True)
        for path, leaf in jax.tree_util.tree_flatten_with_path(gathered)[0]:
            results[f"{name}/state{jax.tree_util.keystr(path)}"] = np.asarray(leaf)
        sharded = [leaf for leaf in jax.tree.leaves(state)
                   if not leaf.sharding.is_fully_replicated]
        results[f"{name}/sharded_state_leaves"] = np.asarray(len(sharded))
    np.savez(OUT, **results)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
