"""``gx.microbatching.micro_vmap`` against ``jax.vmap`` and optax's ``micro_vmap``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradxform as gx

X = jnp.asarray(np.random.default_rng(0).normal(size=(8, 3)), jnp.float32)
W = jnp.asarray(np.random.default_rng(1).normal(size=(3,)), jnp.float32)


def _f(x, w):
    return {"dot": x @ w, "sq": x * x}


KINDS = ["concat", "sum", "mean", "running_mean"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [None, 2, 4])
def test_agrees_with_optax_and_vmap(kind, size):
    kinds = gx.microbatching.AccumulationType[kind.upper()]
    mine = jax.jit(gx.microbatching.micro_vmap(_f, (0, None), microbatch_size=size,
                                               accumulator=kinds))(X, W)
    theirs = optax.microbatching.micro_vmap(
        _f, (0, None), microbatch_size=size,
        accumulator=optax.microbatching.AccumulationType[kind.upper()])(X, W)
    full = jax.vmap(_f, (0, None))(X, W)
    reduce = {"concat": lambda v: v, "sum": lambda v: jnp.sum(v, 0),
              "mean": lambda v: jnp.mean(v, 0), "running_mean": lambda v: jnp.mean(v, 0)}[kind]
    for key in full:
        np.testing.assert_allclose(mine[key], theirs[key], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(mine[key], reduce(full[key]), rtol=1e-5, atol=1e-6)


def test_every_argument_mapped_by_an_int_keywords_too_and_a_tree_of_kinds():
    kinds = {"dot": "sum", "sq": "concat"}
    out = gx.microbatching.micro_vmap(lambda x, w, *, s: {"dot": s * (x @ w), "sq": x * x},
                                      microbatch_size=4, accumulator=kinds)(
        X, jnp.broadcast_to(W, (8, 3)), s=jnp.arange(8.0, dtype=jnp.float32))
    np.testing.assert_allclose(out["dot"], jnp.sum(jnp.arange(8.0) * (X @ W)), rtol=1e-5)
    np.testing.assert_allclose(out["sq"], X * X)


def test_refuses_what_it_cannot_do():
    with pytest.raises(NotImplementedError, match="out_axes"):
        gx.microbatching.micro_vmap(_f, out_axes=1)
    with pytest.raises(ValueError, match="not a multiple"):
        gx.microbatching.micro_vmap(_f, (0, None), microbatch_size=3)(X, W)
    with pytest.raises(ValueError, match="in_axes has 1 entries"):
        gx.microbatching.micro_vmap(_f, (0,), microbatch_size=2)(X, W)
