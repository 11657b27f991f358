"""``maximize``: gradient ascent with any optimizer, negating the gradient only (torch's
``maximize=True``), so weight decay still shrinks the weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx


@pytest.mark.parametrize("inner", [lambda: gx.adam(0.1), lambda: gx.sgd(0.1, 0.5)],
                         ids=["adam", "sgd"])
def test_ascends_a_concave_function(inner):
    def reward(p):
        return -jnp.sum((p["x"] - 3.0) ** 2)

    tx = gx.maximize(inner())
    params = {"x": jnp.zeros(2)}

    def body(carry, _):
        p, s = carry
        u, s = tx.update(jax.grad(reward)(p), s, p)
        return (gx.apply_updates(p, u), s), None

    (params, _), _ = jax.jit(lambda c: jax.lax.scan(body, c, None, length=300))(
        (params, tx.init(params)))
    np.testing.assert_allclose(params["x"], 3.0, atol=1e-2)


def test_weight_decay_still_shrinks():
    params = {"w": jnp.asarray([2.0, -1.0])}
    g = {"w": jnp.asarray([0.5, 0.25])}
    inner = gx.adamw(0.1, weight_decay=0.5)
    u, _ = gx.maximize(inner).update(g, gx.maximize(inner).init(params), params)
    expected, _ = inner.update(jax.tree.map(lambda x: -x, g), inner.init(params), params)
    np.testing.assert_allclose(u["w"], expected["w"])
    # the decay term -lr * wd * w shrinks |w| on top of the ascent step
    np.testing.assert_allclose(u["w"], 0.1 * 1.0 - 0.1 * 0.5 * params["w"], atol=1e-5)
