"""``gx.microbatching.micro_grad`` and custom ``Accumulator``s: against per-example gradients
computed by ``jax.vmap(jax.grad)`` and against optax's functions of the same names."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradxform as gx
from helpers import standard_promotion

mb = gx.microbatching


def loss(params, x, y):
    pred = x @ params["w"] + params["b"]
    return 0.5 * jnp.mean((pred - y) ** 2)


def data(n=8):
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=3), jnp.float32), "b": jnp.float32(0.5)}
    x = jnp.asarray(rng.normal(size=(n, 3)), jnp.float32)
    y = jnp.asarray(rng.normal(size=n), jnp.float32)
    return params, x, y


def per_example_grads(params, x, y):
    """Independent reference: the gradient of each example's loss, by vmap."""
    return jax.vmap(lambda xi, yi: jax.grad(loss)(params, xi[None], yi[None]))(x, y)


def clip(g):
    return gx.tree.scale(jnp.minimum(1.0, 0.5 / gx.tree.norm(g)), g)


@pytest.mark.parametrize("microbatch_size", [None, 2, 4])
@pytest.mark.parametrize("kind", ["sum", "mean"])
def test_micro_grad_sums_transformed_per_example_gradients(microbatch_size, kind):
    params, x, y = data()
    grads, aux = mb.micro_grad(loss, batch_argnums=(1, 2), microbatch_size=microbatch_size,
                               accumulator=kind, transform_fn=clip,
                               metrics_fn=gx.tree.norm)(params, x, y)
    each = per_example_grads(params, x, y)
    clipped = jax.vmap(clip)(each)
    reduce = jnp.sum if kind == "sum" else jnp.mean
    expected = jax.tree.map(lambda g: reduce(g, axis=0), clipped)
    for k in ("w", "b"):
        np.testing.assert_allclose(grads[k], expected[k], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(aux.metrics, jax.vmap(gx.tree.norm)(each), rtol=1e-6)
    np.testing.assert_allclose(aux.values, jax.vmap(lambda a, b: loss(params, a[None], b[None]))(
        x, y), rtol=1e-6)
    assert aux.aux is None


def test_micro_grad_matches_optax():
    params, x, y = data()

    def run(lib):
        return lib.microbatching.micro_grad(
            loss, batch_argnums=(1, 2), microbatch_size=4,
            accumulator=lib.microbatching.AccumulationType.MEAN,
            transform_fn=lambda g: (g, jax.tree.map(jnp.square, g)),
            metrics_fn=lambda g: jnp.linalg.norm(g["w"]))(params, x, y)

    mine = run(gx)
    with standard_promotion():
        theirs = run(optax)
    for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_micro_grad_with_aux_and_without_batch_dim():
    params, x, y = data(6)

    def loss_aux(p, xi, yi):          # one example, no batch axis
        r = xi @ p["w"] + p["b"] - yi
        return 0.5 * r**2, {"residual": r}

    grads, aux = mb.micro_grad(loss_aux, has_aux=True, batch_argnums=(1, 2),
                               keep_batch_dim=False, microbatch_size=3)(params, x, y)
    residual = x @ params["w"] + params["b"] - y
    np.testing.assert_allclose(aux.aux["residual"], residual, rtol=1e-6)
    np.testing.assert_allclose(grads["w"], residual @ x, rtol=1e-5)
    np.testing.assert_allclose(grads["b"], jnp.sum(residual), rtol=1e-5)


def test_micro_grad_refuses_no_batch_argument():
    with pytest.raises(ValueError, match="micro_grad: batch_argnums"):
        mb.micro_grad(loss, batch_argnums=())


def _maximum(lib):
    return lib.microbatching.Accumulator(
        init=lambda s: jax.tree.map(lambda t: jnp.full(t.shape, -jnp.inf, t.dtype), s),
        update=lambda c, v, i: jax.tree.map(jnp.maximum, c, v),
        finalize=lambda c: c,
        aggregate=lambda rows: jax.tree.map(lambda r: jnp.max(r, axis=0), rows))


def test_custom_accumulator_in_microbatch_and_micro_vmap_matches_optax():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(12, 2)), jnp.float32)

    def f(rows):
        return {"max": rows, "sum": rows}

    for lib in (gx, optax):
        acc = {"max": _maximum(lib), "sum": lib.microbatching.AccumulationType.SUM}
        out = lib.microbatching.micro_vmap(f, microbatch_size=3, accumulator=acc)(x)
        np.testing.assert_allclose(out["max"], jnp.max(x, axis=0))
        np.testing.assert_allclose(out["sum"], jnp.sum(x, axis=0), rtol=1e-6)
        whole = lib.microbatching.microbatch(lambda b: jnp.max(b, axis=0), argnums=0,
                                             microbatch_size=4, accumulator=_maximum(lib))(x)
        np.testing.assert_allclose(whole, jnp.max(x, axis=0))


def test_accumulator_that_is_not_a_prefix_is_refused():
    with pytest.raises(ValueError, match="micro_vmap: the accumulator .* is not a prefix"):
        mb.micro_vmap(lambda r: r, microbatch_size=2,
                      accumulator={"a": "sum"})(jnp.ones((4, 2)))
