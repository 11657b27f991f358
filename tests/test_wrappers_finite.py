"""Non-finite handling: ``skip_non_finite`` (``apply_if_finite``) and ``dynamic_loss_scale``.

Skipping equals running the inner transformation on the finite gradients alone (params and
inner state, rtol 1e-6: the inner clock counts applied updates only), the consecutive-error
counter follows a hand trace, finiteness is agreed across shards with ``axis_name``, and loss
scaling recovers from injected overflows (scale trajectory by hand, params equal to the inner
optimizer on the unscaled finite gradients) and rescues float16 gradients that underflow.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import gradxform as gx
from helpers import assert_trees_close, gradient_stream, nested_params

STEPS = 16
BAD = (3, 7, 8, 15)

INNER = {"adam": lambda: gx.adam(0.05), "sgd_momentum": lambda: gx.sgd(0.05, momentum=0.9)}


def _stack(trees):
    return jax.tree.map(lambda *x: jnp.stack(x), *trees)


def _poisoned_stream(params):
    grads = gradient_stream(params, STEPS)
    values = [jnp.nan, jnp.inf, -jnp.inf, jnp.nan]
    for i, t in enumerate(BAD):  # one bad entry in one leaf is enough
        grads[t] = dict(grads[t])
        grads[t]["dense"] = dict(grads[t]["dense"], w=grads[t]["dense"]["w"].at[1, 2].set(
            values[i]))
    return grads


def _scan(tx, params, grads):
    def body(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        return (gx.apply_updates(p, u), s), None

    (p, s), _ = jax.jit(lambda c, g: jax.lax.scan(body, c, g))((params, tx.init(params)),
                                                              _stack(grads))
    return p, s


@pytest.mark.parametrize("name", INNER)
def test_skipping_equals_the_inner_on_finite_gradients_only(name):
    params = nested_params()
    grads = _poisoned_stream(params)
    p, s = _scan(gx.skip_non_finite(INNER[name]()), params, grads)
    good = [g for t, g in enumerate(grads) if t not in BAD]
    p_ref, s_ref = _scan(INNER[name](), params, good)
    assert_trees_close(p, p_ref, rtol=1e-6, atol=1e-6, leaf_scale=True)
    assert_trees_close(s.inner.inner, s_ref.inner, rtol=1e-6, atol=1e-6, leaf_scale=True)
    assert int(s.inner.skipped) == len(BAD)
    assert int(s.inner.consecutive) == 1 and not bool(s.inner.last_finite)  # step 15 was bad
    assert s.count is None or int(s.count) == STEPS  # sgd needs no count


def test_consecutive_error_counter_follows_a_hand_trace():
    finite = [True, False, False, True, False, False, False, False, True, False]
    # max_consecutive_errors=2: the third non-finite update in a row is let through and the
    # count restarts
    expected_consecutive = [0, 1, 2, 0, 1, 2, 0, 1, 0, 1]
    expected_applied = [True, False, False, True, False, False, True, False, True, False]
    tx = gx.skip_non_finite(gx.sgd(1.0), max_consecutive_errors=2)
    params = {"x": jnp.zeros(())}
    state = tx.init(params)
    step = jax.jit(tx.update)
    for t, ok in enumerate(finite):
        g = {"x": jnp.asarray(1.0 if ok else jnp.inf)}
        u, state = step(g, state, params)
        assert int(state.inner.consecutive) == expected_consecutive[t], t
        assert bool(state.inner.last_finite) == ok
        applied = float(u["x"]) != 0.0
        assert applied == expected_applied[t], t
    assert int(state.inner.skipped) == expected_applied.count(False)


def test_inner_hyperparams_at_the_inner_clock():
    tx = gx.skip_non_finite(gx.sgd(gx.linear_schedule(1.0, 0.0, 10)))
    params = {"x": jnp.zeros(())}
    state = tx.init(params)
    step = jax.jit(tx.update)
    for v in (1.0, jnp.nan, 1.0, jnp.inf, jnp.nan, 1.0):
        _, state = step({"x": jnp.asarray(v)}, state, params)
    np.testing.assert_allclose(gx.hyperparams(tx, state)["learning_rate"], 0.7)  # 3 applied


def test_apply_if_finite_is_optax_spelling():
    assert gx.apply_if_finite(gx.adam(0.1), 3) == gx.skip_non_finite(gx.adam(0.1), 3)
    with pytest.raises(ValueError, match=r"^apply_if_finite: max_consecutive_errors must be "
                                         r">= 0, got -1"):
        gx.apply_if_finite(gx.adam(0.1), -1)


@pytest.mark.parametrize("wrapper", ["skip_non_finite", "dynamic_loss_scale"])
@pytest.mark.parametrize("agree", [True, False])
def test_axis_name_agrees_across_shards(agree, wrapper):
    mesh = jax.make_mesh((8,), ("d",))
    rows = jax.sharding.NamedSharding(mesh, P("d"))
    params = jax.device_put({"w": jnp.ones((8, 4))}, rows)
    grads = jax.device_put({"w": jnp.ones((8, 4)).at[3, 1].set(jnp.inf)}, rows)
    axis = "d" if agree else None
    tx = (gx.skip_non_finite(gx.sgd(0.1), axis_name=axis) if wrapper == "skip_non_finite" else
          gx.dynamic_loss_scale(gx.sgd(0.1), initial_scale=1.0, axis_name=axis))

    def shard(p, g):
        s = tx.init(p)
        u, s = tx.update(g, s, p)
        return u, s.inner.skipped.reshape(1)

    f = jax.shard_map(shard, mesh=mesh, in_specs=(P("d"), P("d")), out_specs=(P("d"), P("d")))
    updates, skipped = jax.jit(f)(params, grads)
    if agree:
        assert np.all(np.asarray(updates["w"]) == 0) and np.all(np.asarray(skipped) == 1)
    else:
        assert np.all(np.asarray(updates["w"])[3] == 0) and np.asarray(skipped).tolist() == [
            0, 0, 0, 1, 0, 0, 0, 0]
        assert np.all(np.asarray(updates["w"])[[0, 1, 2, 4, 5, 6, 7]] == -0.1)


# --------------------------------------------------------------------------------------------
# Dynamic loss scaling.


@pytest.mark.parametrize("name", INNER)
def test_loss_scaling_recovers_from_injected_overflows(name):
    params = nested_params()
    true_grads = gradient_stream(params, 20)
    overflow = {2, 3, 11}
    tx = gx.dynamic_loss_scale(INNER[name](), initial_scale=2.0**10, growth_interval=4)

    def body(carry, inputs):
        p, s = carry
        g, bad = inputs
        scale = gx.hyperparams(tx, s)["loss_scale"]
        scaled = jax.tree.map(lambda x: jnp.where(bad, jnp.inf, x * scale), g)  # d(S loss)
        u, s = tx.update(scaled, s, p)
        return (gx.apply_updates(p, u), s), scale

    flags = jnp.asarray([t in overflow for t in range(20)])
    (p, s), scales = jax.jit(lambda c, x: jax.lax.scan(body, c, x))(
        (params, tx.init(params)), (_stack(true_grads), flags))
    # the scale, by hand: halve on overflow, double after 4 finite steps in a row
    expected, scale, good = [], 2.0**10, 0
    for t in range(20):
        expected.append(scale)
        if t in overflow:
            scale, good = scale / 2, 0
        else:
            good += 1
            if good == 4:
                scale, good = scale * 2, 0
    np.testing.assert_array_equal(np.asarray(scales), expected)
    np.testing.assert_allclose(gx.hyperparams(tx, s)["loss_scale"], scale)
    assert int(s.inner.skipped) == len(overflow)
    # params and state equal the inner optimizer on the finite, unscaled gradients
    p_ref, s_ref = _scan(INNER[name](), params,
                         [g for t, g in enumerate(true_grads) if t not in overflow])
    assert_trees_close(p, p_ref, rtol=1e-6, atol=1e-6, leaf_scale=True)
    assert_trees_close(s.inner.inner, s_ref.inner, rtol=1e-6, atol=1e-6, leaf_scale=True)


def test_loss_scaling_rescues_float16_gradients():
    x = jnp.asarray(np.linspace(-1, 1, 16), jnp.float16)
    params = {"w": jnp.asarray(0.5, jnp.float32)}

    def loss(p):  # a float16 model whose gradients are ~1e-8: below float16's smallest value
        y = x * p["w"].astype(jnp.float16) * jnp.asarray(1e-3, jnp.float16)
        return jnp.sum(y * y).astype(jnp.float32) * 1e-3

    exact = jax.grad(lambda p: 1e-9 * p["w"] ** 2 * jnp.sum(x.astype(jnp.float32) ** 2))(params)
    assert float(jax.grad(loss)(params)["w"]) == 0.0  # underflow without scaling
    tx = gx.dynamic_loss_scale(gx.sgd(1.0))
    state = tx.init(params)
    scale = gx.hyperparams(tx, state)["loss_scale"]
    grads = jax.grad(lambda p: loss(p) * scale)(params)
    updates, state = tx.update(grads, state, params)
    np.testing.assert_allclose(-updates["w"], exact["w"], rtol=2e-2)


def test_loss_scale_stays_finite_and_above_its_floor():
    tx = gx.dynamic_loss_scale(gx.sgd(0.1), initial_scale=2.0**120, growth_interval=1,
                               min_scale=4.0)
    params = {"x": jnp.zeros(())}

    @jax.jit
    def repeat(state, value, n):
        g = {"x": jnp.asarray(value)}
        return jax.lax.fori_loop(0, n, lambda i, s: tx.update(g, s, params)[1], state)

    state = repeat(tx.init(params), 0.0, 12)
    assert np.isfinite(float(state.inner.scale))
    state = repeat(state, jnp.nan, 200)
    assert float(state.inner.scale) == 4.0


@pytest.mark.parametrize("make,message", [
    (lambda: gx.dynamic_loss_scale(gx.sgd(0.1), initial_scale=0.0),
     "dynamic_loss_scale: initial_scale must be > 0, got 0.0"),
    (lambda: gx.dynamic_loss_scale(gx.sgd(0.1), growth_interval=0),
     "dynamic_loss_scale: growth_interval must be >= 1, got 0"),
    (lambda: gx.dynamic_loss_scale(gx.sgd(0.1), growth_factor=1.0),
     "dynamic_loss_scale: growth_factor must be > 1, got 1.0"),
    (lambda: gx.dynamic_loss_scale(gx.sgd(0.1), backoff_factor=1.0),
     "dynamic_loss_scale: backoff_factor must be in (0, 1), got 1.0"),
    (lambda: gx.dynamic_loss_scale(gx.sgd(0.1), min_scale=-1.0),
     "dynamic_loss_scale: min_scale must be > 0, got -1.0"),
    (lambda: gx.dynamic_loss_scale(gx.sgd(0.1), growth_interval=gx.constant_schedule(2)),
     "dynamic_loss_scale: growth_interval must be a whole number or an array, not a schedule"),
    (lambda: gx.skip_non_finite(gx.sgd(0.1), max_consecutive_errors=1.5),
     "skip_non_finite: max_consecutive_errors must be a whole number, got 1.5"),
])
def test_argument_checks(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert message in str(info.value)
