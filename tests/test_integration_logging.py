"""Logging: ``gx.step_metrics`` inside a jitted step, written to CSV and to TensorBoard.

Expected values are computed independently: the learning rate from the schedule's formula
written out in NumPy, norms with ``np.linalg.norm`` over all leaves concatenated in float64.
"""

from __future__ import annotations

import csv
import glob
import io
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from helpers import nested_params

WARMUP, TOTAL, PEAK = 4, 20, 0.05


def reference_warmup_cosine(count):
    """Linear warmup 0 -> PEAK over WARMUP steps, then cosine decay to 0 by step TOTAL."""
    if count < WARMUP:
        return PEAK * count / WARMUP
    t = min(count - WARMUP, TOTAL - WARMUP)
    return PEAK * 0.5 * (1 + np.cos(np.pi * t / (TOTAL - WARMUP)))


def flat_norm(tree):
    leaves = [np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(tree)]
    return float(np.linalg.norm(np.concatenate(leaves)))


def loss_fn(params):
    return sum(jnp.sum(jnp.sin(x) ** 2 + 0.5 * x * x) for x in jax.tree.leaves(params))


def run_logged(tx, steps, **kwargs):
    """Train ``steps`` jitted steps; return per-step (metrics, grads, updates) as NumPy."""
    params = nested_params()
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, new_state = tx.update(grads, state, params)
        metrics = gx.step_metrics(tx, state, grads, updates, loss, **kwargs)
        return gx.apply_updates(params, updates), new_state, metrics, grads, updates

    out = []
    for _ in range(steps):
        params, state, metrics, grads, updates = step(params, state)
        out.append((metrics, grads, updates))
    return out


def test_step_metrics_values():
    tx = gx.adamw(gx.warmup_cosine_decay_schedule(0.0, PEAK, WARMUP, TOTAL), weight_decay=1e-2)
    history = run_logged(tx, 12)
    for count, (m, grads, updates) in enumerate(history):
        assert set(m) == {"step", "loss", "learning_rate", "grad_norm", "update_norm"}
        assert int(m["step"]) == count
        np.testing.assert_allclose(float(m["learning_rate"]), reference_warmup_cosine(count),
                                   rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(float(m["grad_norm"]), flat_norm(grads), rtol=1e-5)
        np.testing.assert_allclose(float(m["update_norm"]), flat_norm(updates), rtol=1e-5)
        assert all(np.ndim(v) == 0 for v in m.values())
    losses = [float(m["loss"]) for m, _, _ in history]
    assert losses[-1] < losses[0]


def test_step_metrics_without_a_count_and_with_selected_hyperparameters():
    tx = gx.sgd(0.1, momentum=0.9)  # no schedule, no bias correction: the state has no count
    assert tx.init(nested_params()).count is None
    m, _, _ = run_logged(tx, 1)[0]
    assert "step" not in m and float(m["learning_rate"]) == pytest.approx(0.1)
    m, _, _ = run_logged(tx, 1, step=41, hyperparams=True)[0]
    assert int(m["step"]) == 41
    assert {"learning_rate", "decay", "dampening"} <= set(m)
    m, _, _ = run_logged(tx, 1, hyperparams=["decay"])[0]
    assert set(m) == {"loss", "decay", "grad_norm", "update_norm"}
    np.testing.assert_allclose(float(m["decay"]), 0.9, rtol=1e-7)


def test_step_metrics_reports_every_learning_rate_of_a_chain():
    tx = gx.chain(gx.adam(1e-3), gx.scale_by_learning_rate(0.5, flip_sign=False))
    m, _, _ = run_logged(tx, 1)[0]
    rates = {k: float(v) for k, v in m.items() if k.endswith("learning_rate")}
    assert sorted(rates.values()) == pytest.approx([1e-3, 0.5])
    assert all("." in k for k in rates)  # prefixed by the link's label, as gx.hyperparams does


def test_step_metrics_errors():
    tx = gx.adam(1e-3)
    params = nested_params()
    state = tx.init(params)
    with pytest.raises(KeyError, match=r"step_metrics: 'momentum' not among the hyperparameters "
                                        r"of this optimizer; it has \['b1', "):
        gx.step_metrics(tx, state, params, hyperparams="momentum")
    with pytest.raises(TypeError, match="step_metrics: state must be the OptState"):
        gx.step_metrics(tx, state.inner, params)


def test_csv_logger_round_trip(tmp_path):
    tx = gx.adam(gx.cosine_decay_schedule(1e-2, 10))
    history = run_logged(tx, 6)
    path = tmp_path / "metrics.csv"
    with gx.CSVLogger(path) as log:
        for m, _, _ in history[:3]:
            log.write(m)
    with gx.CSVLogger(path, append=True) as log:  # resuming appends without a second header
        for m, _, _ in history[3:]:
            log.write(m)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    for row, (m, _, _) in zip(rows, history):
        assert list(row) == ["step"] + sorted(set(m) - {"step"})
        assert int(row["step"]) == int(m["step"])
        for key in ("loss", "learning_rate", "grad_norm", "update_norm"):
            assert float(row[key]) == float(m[key])  # written with full precision


def test_csv_logger_write_many_from_scan():
    tx = gx.rmsprop(1e-2)
    params = nested_params()

    def body(carry, _):
        params, state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, new_state = tx.update(grads, state, params)
        metrics = gx.step_metrics(tx, state, grads, updates, loss, step=0)
        return (gx.apply_updates(params, updates), new_state), metrics

    _, stacked = jax.jit(lambda c: jax.lax.scan(body, c, None, length=5))(
        (params, tx.init(params)))
    buffer = io.StringIO()
    log = gx.CSVLogger(buffer)
    log.write_many(stacked)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "step,grad_norm,learning_rate,loss,update_norm"
    assert len(lines) == 6
    np.testing.assert_allclose(float(lines[5].split(",")[3]), float(stacked["loss"][4]))
    with pytest.raises(ValueError, match="differ from the header"):
        log.write({"loss": 1.0})
    with pytest.raises(ValueError, match=r"'step' must be a scalar, got shape \(5,\)"):
        log.write({k: v for k, v in stacked.items()})
    with pytest.raises(ValueError, match="the same leading"):
        log.write_many({"a": np.zeros(3), "b": np.zeros(4)})


def _read_tensorboard_scalars(logdir):
    """Parse TensorBoard event files (TFRecord framing) into {tag: [(step, value), ...]}."""
    from tensorboardX.proto import event_pb2

    found: dict[str, list] = {}
    for path in sorted(glob.glob(f"{logdir}/events.out.tfevents.*")):
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            record = data[pos + 12:pos + 12 + length]
            pos += 12 + length + 4  # length, its crc, the record, its crc
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def test_tensorboardx_recipe(tmp_path):
    tbx = pytest.importorskip("tensorboardX")
    tx = gx.adam(gx.cosine_decay_schedule(1e-2, 10))
    history = run_logged(tx, 4)
    writer = tbx.SummaryWriter(logdir=str(tmp_path))
    for m, _, _ in history:  # the recipe of the documentation
        step = int(m["step"])
        for name, value in m.items():
            if name != "step":
                writer.add_scalar(name, float(value), step)
    writer.close()
    scalars = _read_tensorboard_scalars(tmp_path)
    assert set(scalars) == {"loss", "learning_rate", "grad_norm", "update_norm"}
    assert [s for s, _ in scalars["learning_rate"]] == [0, 1, 2, 3]
    np.testing.assert_allclose([v for _, v in scalars["learning_rate"]],
                               [float(m["learning_rate"]) for m, _, _ in history], rtol=1e-6)
