"""The line searches and Newton's direction compile once per objective structure: an objective
that is a pytree of JAX arrays (``jax.tree_util.Partial`` holding data) with new data reuses the
compiled code; the Python body of an objective runs only while it is traced, so counting its
calls counts the traces."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx

TRACES: list[str] = []


def _loss(target, x):
    TRACES.append("traced")
    return 0.5 * jnp.sum((x["w"] - target) ** 2) + 0.25 * jnp.sum(x["w"] ** 4)


OPTIMIZERS = {
    "lbfgs": gx.lbfgs, "newton": gx.newton,
    "backtracking": lambda: gx.gradient_descent_linesearch(),
    "golden_section": lambda: gx.gradient_descent_linesearch(
        linesearch=gx.golden_section_linesearch()),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_partial_objective_with_new_data_is_not_traced_again(name):
    tx = OPTIMIZERS[name]()
    params = {"w": jnp.asarray([0.5, -1.0, 2.0], jnp.float32)}
    state = tx.init(params)
    counts = []
    for k in range(3):
        fun = jax.tree_util.Partial(_loss, jnp.full([3], 0.1 * k, jnp.float32))
        value, grad = jax.value_and_grad(fun)(params)
        TRACES.clear()
        updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=fun)
        params = gx.apply_updates(params, updates)
        counts.append(len(TRACES))
        assert np.all(np.isfinite(np.asarray(params["w"])))
    assert counts[0] > 0, "the first call traces the objective"
    assert counts[1:] == [0, 0], f"{name}: traced again for new data: {counts}"


def test_a_plain_function_is_still_keyed_by_itself():
    """A closure is a new function at every call (traced again); the same function is not."""
    tx = gx.lbfgs()
    params = {"w": jnp.asarray([0.5, -1.0, 2.0], jnp.float32)}
    state = tx.init(params)
    target = jnp.zeros([3], jnp.float32)

    def fun(x):
        return _loss(target, x)

    counts = []
    for _ in range(2):
        value, grad = jax.value_and_grad(fun)(params)
        TRACES.clear()
        updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=fun)
        params = gx.apply_updates(params, updates)
        counts.append(len(TRACES))
    assert counts[0] > 0 and counts[1] == 0, counts
