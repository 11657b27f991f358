"""Averaged params: ``ema_params`` and ``swa_params`` equal a hand computation (NumPy, float64,
over the params the inner optimizer produces), for Adam and SGD; ``averaged_params`` reads them
in the params' dtypes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from helpers import assert_trees_close, gradient_stream, nested_params

STEPS = 30
INNER = {"adam": lambda: gx.adam(0.05), "sgd_momentum": lambda: gx.sgd(0.05, momentum=0.9)}


def _history(tx, params, grads):
    """(params after every step as a list, final state)."""

    def body(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        p = gx.apply_updates(p, u)
        return (p, s), p

    stacked = jax.tree.map(lambda *x: jnp.stack(x), *grads)
    (_, s), hist = jax.jit(lambda c, g: jax.lax.scan(body, c, g))((params, tx.init(params)),
                                                                 stacked)
    return [jax.tree.map(lambda h, t=t: h[t], hist) for t in range(len(grads))], s


def _np(tree_):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree_)


@pytest.mark.parametrize("name", INNER)
def test_ema_equals_a_hand_computation(name):
    params = nested_params()
    grads = gradient_stream(params, STEPS)
    hist, state = _history(gx.ema_params(INNER[name](), decay=0.8), params, grads)
    plain, _ = _history(INNER[name](), params, grads)
    assert_trees_close(hist[-1], plain[-1], rtol=0)  # training follows the raw params
    avg = _np(params)
    for theta in plain:
        avg = jax.tree.map(lambda a, p: 0.8 * a + 0.2 * p, avg, _np(theta))
    assert_trees_close(gx.averaged_params(gx.ema_params(INNER[name](), 0.8), state), avg,
                       rtol=1e-6, atol=1e-6, leaf_scale=True)


def test_ema_with_a_decay_schedule():
    params = nested_params()
    grads = gradient_stream(params, STEPS)
    decay = gx.linear_schedule(0.0, 0.9, 10)
    tx = gx.ema_params(gx.sgd(0.1), decay=decay)
    _, state = _history(tx, params, grads)
    plain, _ = _history(gx.sgd(0.1), params, grads)
    avg = _np(params)
    for t, theta in enumerate(plain):
        b = 0.9 * min(t, 10) / 10
        avg = jax.tree.map(lambda a, p, b=b: b * a + (1 - b) * p, avg, _np(theta))
    assert_trees_close(gx.averaged_params(tx, state), avg, rtol=1e-6, atol=1e-6,
                       leaf_scale=True)


@pytest.mark.parametrize("name", INNER)
@pytest.mark.parametrize("start,every", [(1, 1), (5, 3)])
def test_swa_equals_a_hand_computation(name, start, every):
    params = nested_params()
    grads = gradient_stream(params, STEPS)
    tx = gx.swa_params(INNER[name](), start=start, every=every)

    def body(carry, g):  # the average after every update
        p, s = carry
        u, s = tx.update(g, s, p)
        return (gx.apply_updates(p, u), s), gx.averaged_params(tx, s)

    _, averages = jax.jit(lambda c, g: jax.lax.scan(body, c, g))(
        (params, tx.init(params)), jax.tree.map(lambda *x: jnp.stack(x), *grads))
    plain, _ = _history(INNER[name](), params, grads)
    for n in range(1, STEPS + 1):
        chosen = [plain[m - 1] for m in range(start, n + 1) if (m - start) % every == 0]
        if chosen:
            expected = jax.tree.map(lambda *x: np.mean(np.stack(x), 0),
                                    *[_np(c) for c in chosen])
        else:
            expected = _np(plain[n - 1])  # before start the average follows the params
        assert_trees_close(jax.tree.map(lambda a, n=n: a[n - 1], averages), expected,
                           rtol=1e-6, atol=1e-6, leaf_scale=True, what=f"after {n} updates")


def test_averaged_params_come_back_in_the_params_dtypes():
    params = {"w": jnp.ones(3, jnp.bfloat16), "b": jnp.ones((), jnp.float32)}
    tx = gx.ema_params(gx.sgd(0.1), 0.99)
    state = tx.init(params)
    assert state.inner.averaged["w"].dtype == jnp.float32  # accumulator dtype policy
    g = {"w": jnp.ones(3, jnp.bfloat16), "b": jnp.ones((), jnp.float32)}
    _, state = tx.update(g, state, params)
    avg = gx.averaged_params(tx, state)
    assert avg["w"].dtype == jnp.bfloat16 and avg["b"].dtype == jnp.float32


def test_averaged_params_under_a_partition():
    params = {"a": jnp.ones(2), "b": jnp.ones(2)}
    tx = gx.partition({"x": gx.ema_params(gx.sgd(0.1), 0.5), "y": gx.sgd(0.1)},
                      {"a": "x", "b": "y"})
    state = tx.init(params)
    _, state = tx.update({"a": jnp.ones(2), "b": jnp.ones(2)}, state, params)
    avg = gx.averaged_params(tx, state)
    np.testing.assert_allclose(avg["a"], 0.95)
    assert avg["b"] is None


def test_errors():
    with pytest.raises(ValueError, match=r"averaged_params: adam must hold exactly one "
                                         r"ema_params or swa_params, found 0"):
        gx.averaged_params(gx.adam(0.1), gx.adam(0.1).init({"x": jnp.ones(2)}))
    tx = gx.ema_params(gx.sgd(0.1))
    with pytest.raises(ValueError, match=r"ema_params: needs the current params"):
        tx.update({"x": jnp.ones(2)}, tx.init({"x": jnp.ones(2)}))
    with pytest.raises(ValueError, match=r"^ema_params: decay must be in \[0, 1\], got 1.5"):
        gx.ema_params(gx.sgd(0.1), 1.5)
    with pytest.raises(ValueError, match=r"^swa_params: start must be >= 1, got 0"):
        gx.swa_params(gx.sgd(0.1), start=0)
    with pytest.raises(TypeError, match=r"^swa_params: every must be a whole number or an "
                                        r"array, not a schedule"):
        gx.swa_params(gx.sgd(0.1), every=gx.constant_schedule(2))
