"""Gradient accumulation: one window of ``every_k`` micro-batches equals one step on the whole
batch (params after every window and the inner state at the end, for SGD with momentum, Adam
and AdamW, float32 rtol 2e-6), non-finite micro-batches are dropped without poisoning the
accumulator, the inner clock counts inner updates, and the state holds no param-sized buffer
beyond the accumulator."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from helpers import assert_trees_close

K, MICRO, DIM, WINDOWS = 4, 8, 5, 12


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(WINDOWS, K * MICRO, DIM)).astype(np.float32)
    w = rng.normal(size=DIM)
    y = (x @ w + 0.3 * rng.normal(size=(WINDOWS, K * MICRO))).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y)


def _loss(p, x, y):
    return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)


def _params():
    return {"w": jnp.zeros(DIM), "b": jnp.zeros(())}


def _micro_batches(x, y):
    """(WINDOWS * K) micro-batches, window by window."""
    return (x.reshape(WINDOWS * K, MICRO, DIM), y.reshape(WINDOWS * K, MICRO))


def _train(tx, params, xs, ys, grad_hook=None):
    def body(carry, batch):
        p, s = carry
        g = jax.grad(_loss)(p, *batch)
        if grad_hook is not None:
            g = grad_hook(g, s)
        u, s = tx.update(g, s, p)
        p = gx.apply_updates(p, u)
        return (p, s), p

    (p, s), history = jax.jit(lambda c, b: jax.lax.scan(body, c, b))(
        (params, tx.init(params)), (xs, ys))
    return p, s, history


INNER = {
    "sgd_momentum": lambda: gx.sgd(0.05, momentum=0.9),
    "adam": lambda: gx.adam(0.05),
    "adamw": lambda: gx.adamw(0.05, weight_decay=0.1),  # needs the params forwarded
}


@pytest.mark.parametrize("name", INNER)
def test_equals_one_big_batch_step(name):
    x, y = _data()
    _, big_s, big_history = _train(INNER[name](), _params(), x, y)
    tx = gx.accumulate(INNER[name](), K)
    _, s, history = _train(tx, _params(), *_micro_batches(x, y))
    # params after each window, and unchanged inside a window
    per_window = jax.tree.map(lambda h: h[K - 1::K], history)
    assert_trees_close(per_window, big_history, rtol=2e-6, atol=2e-6, leaf_scale=True)
    assert_trees_close(jax.tree.map(lambda h: h[K::K], history),
                       jax.tree.map(lambda h: h[K - 1:-1:K], history), rtol=0)
    assert_trees_close(s.inner.inner, big_s.inner, rtol=2e-6, atol=2e-6, leaf_scale=True,
                       what="inner state")
    assert int(s.inner.finite) == 0 and int(s.inner.dropped) == 0
    assert_trees_close(s.inner.acc, jax.tree.map(jnp.zeros_like, s.inner.acc), rtol=0)


def test_sum_reduction_is_k_times_the_mean():
    x, y = _data()
    xs, ys = _micro_batches(x, y)
    p_mean, _, _ = _train(gx.accumulate(gx.sgd(0.04), K), _params(), xs, ys)
    p_sum, _, _ = _train(gx.accumulate(gx.sgd(0.01), K, reduction="sum"), _params(), xs, ys)
    assert_trees_close(p_sum, p_mean, rtol=1e-5, atol=1e-6, leaf_scale=True)


def _poison(bad_steps, value=jnp.nan):
    bad = jnp.asarray(bad_steps, jnp.int32)

    def hook(g, state):
        hit = jnp.any(state.count == bad)
        return jax.tree.map(lambda x: jnp.where(hit, jnp.full_like(x, value), x), g)

    return hook


def test_a_non_finite_micro_batch_is_dropped():
    x, y = _data()
    xs, ys = _micro_batches(x, y)
    tx = gx.accumulate(gx.adam(0.05), K)
    p, s, _ = _train(tx, _params(), xs, ys, _poison([5]))  # window 1, micro-batch 1
    assert int(s.inner.dropped) == 1 and int(s.inner.skipped) == 0
    assert all(np.isfinite(np.asarray(v)).all() for v in jax.tree.leaves(p))
    # window 1 is the mean of its 3 other micro-batches: the same as feeding only those
    ref = gx.adam(0.05)

    @jax.jit
    def ref_step(p, s, bx, by):  # the mean gradient of the given micro-batches
        g = jax.tree.map(lambda v: jnp.mean(v, 0),
                         jax.vmap(jax.grad(_loss), (None, 0, 0))(p, bx, by))
        u, s = ref.update(g, s, p)
        return gx.apply_updates(p, u), s

    ref_p, ref_state = _params(), ref.init(_params())
    for w in range(WINDOWS):
        rows = np.array([i for i in range(w * K, (w + 1) * K) if i != 5])
        ref_p, ref_state = ref_step(ref_p, ref_state, xs[rows], ys[rows])
    assert_trees_close(p, ref_p, rtol=2e-6, atol=2e-6, leaf_scale=True)


def test_without_dropping_a_nan_spoils_one_window_only():
    x, y = _data()
    xs, ys = _micro_batches(x, y)
    tx = gx.accumulate(gx.sgd(0.05), K, drop_non_finite=False)
    _, s, history = _train(tx, _params(), xs, ys, _poison([5]))
    w = np.asarray(history["w"])
    assert np.isnan(w[K * 2 - 1:]).all()  # the params took the NaN step of window 1
    # but the accumulator was reset, not multiplied by zero: it holds no NaN afterwards
    assert np.isfinite(np.asarray(s.inner.acc["w"])).all()


def test_a_window_of_only_non_finite_micro_batches_is_skipped():
    x, y = _data()
    xs, ys = _micro_batches(x, y)
    tx = gx.accumulate(gx.adam(0.05), K)
    p, s, history = _train(tx, _params(), xs, ys, _poison([4, 5, 6, 7], jnp.inf))
    assert int(s.inner.dropped) == K and int(s.inner.skipped) == 1
    assert_trees_close(jax.tree.map(lambda h: h[2 * K - 1], history),
                       jax.tree.map(lambda h: h[K - 1], history), rtol=0)  # no step
    # the inner clock skipped the window: equal to Adam on the other windows only
    others = np.array([w for w in range(WINDOWS) if w != 1])
    big_p, big_s, _ = _train(gx.adam(0.05), _params(), x[others], y[others])
    assert_trees_close(p, big_p, rtol=2e-6, atol=2e-6, leaf_scale=True)
    assert_trees_close(s.inner.inner, big_s.inner, rtol=2e-6, atol=2e-6, leaf_scale=True)


def test_inner_clock_in_hyperparams():
    tx = gx.accumulate(gx.sgd(gx.linear_schedule(1.0, 0.0, 10)), 3)
    params = _params()
    g = jax.tree.map(jnp.ones_like, params)
    state = jax.lax.fori_loop(0, 7, lambda i, s: tx.update(g, s, params)[1], tx.init(params))
    hp = gx.hyperparams(tx, state)
    assert int(state.count) == 7
    np.testing.assert_allclose(hp["learning_rate"], 0.8)  # 2 inner updates
    assert int(hp["every_k"]) == 3


def test_no_param_sized_buffer_beyond_the_accumulator():
    params = {"w": jnp.zeros((100, 30)), "b": jnp.zeros(30)}
    inner = gx.adam(0.1)
    state = gx.accumulate(inner, 4).init(params)
    param_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
    inner_bytes = sum(x.nbytes for x in jax.tree.leaves(inner.init(params)))
    total = sum(x.nbytes for x in jax.tree.leaves(state))
    # the accumulator, three int32 counters, and the inner state (whose count is the shared one)
    assert total == param_bytes + inner_bytes + 3 * 4
    assert [np.shape(x) for x in state.inner[1:4]] == [(), (), ()]


def test_accumulator_dtype():
    params = {"w": jnp.zeros(3, jnp.bfloat16)}
    g = {"w": jnp.full(3, 0.001, jnp.bfloat16)}
    default = gx.accumulate(gx.sgd(1.0), 2)
    assert default.init(params).inner.acc["w"].dtype == jnp.float32
    explicit = gx.accumulate(gx.sgd(1.0), 2, accumulator_dtype=jnp.bfloat16)
    s = explicit.init(params)
    assert s.inner.acc["w"].dtype == jnp.bfloat16
    u, s = explicit.update(g, s, params)
    u, s = explicit.update(g, s, params)
    assert u["w"].dtype == jnp.bfloat16 and s.inner.acc["w"].dtype == jnp.bfloat16


def test_extra_arguments_reach_the_inner_transformation_at_the_window_end():
    tx = gx.accumulate(gx.chain(gx.sgd(0.1), gx.reduce_on_plateau(patience=0)), 2)
    params = _params()
    state = tx.init(params)
    g = jax.tree.map(jnp.ones_like, params)
    for loss in (3.0, 1.0, 5.0, 5.0):  # windows see 1.0 then 5.0: one bad evaluation
        _, state = tx.update(g, state, params, value=jnp.asarray(loss))
    np.testing.assert_allclose(gx.hyperparams(tx, state)["scale"], 0.1)


@pytest.mark.parametrize("make,message", [
    (lambda: gx.accumulate(gx.sgd(0.1), 0), "accumulate: every_k must be >= 1, got 0"),
    (lambda: gx.accumulate(gx.sgd(0.1), 2.5), "accumulate: every_k must be a whole number"),
    (lambda: gx.accumulate(gx.sgd(0.1), gx.constant_schedule(2)),
     "accumulate: every_k must be a whole number or an array, not a schedule"),
    (lambda: gx.accumulate(gx.sgd(0.1), 2, reduction="max"),
     "accumulate: reduction must be 'mean' or 'sum', got 'max'"),
])
def test_argument_checks(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert message in str(info.value)
