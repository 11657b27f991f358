"""Shared test machinery: nested test trees, gradient streams, runners and comparisons."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import gradxform as gx


def nested_params(dtype=jnp.float32, seed: int = 0) -> Any:
    """A tree with dicts, lists, tuples, a None leaf, scalars, vectors and matrices."""
    rng = np.random.default_rng(seed)

    def arr(*shape):
        return jnp.asarray(rng.normal(size=shape), dtype)

    return {
        "dense": {"w": arr(4, 3), "b": arr(3)},
        "blocks": [arr(2, 2), (arr(5), arr())],
        "scale": arr(),
        "unused": None,
    }


def gradient_stream(params: Any, steps: int, seed: int = 1) -> list[Any]:
    """``steps`` gradient trees shaped like ``params``, of varied sign and magnitude."""
    rng = np.random.default_rng(seed)
    def one_step(scale: float) -> Any:
        return jax.tree.map(
            lambda p: jnp.asarray(scale * rng.normal(size=np.shape(p)), p.dtype), params)

    return [one_step(10.0 ** rng.uniform(-2, 1)) for _ in range(steps)]


@contextlib.contextmanager
def standard_promotion():
    """optax itself does not run under strict promotion; compare it under the default rules."""
    with jax.numpy_dtype_promotion("standard"):
        yield


def run(tx, params, grads, *, jit: bool = True, use_optax_apply: bool = False,
        extra: dict | None = None):
    """Apply ``tx`` to a fixed gradient stream; return the list of (params, state) per step."""
    state = tx.init(params)

    def step(p, s, g):
        u, s = tx.update(g, s, p, **(extra or {}))
        return gx.apply_updates(p, u), s

    if jit:
        step = jax.jit(step)
    history = []
    for g in grads:
        params, state = step(params, state, g)
        history.append((params, state))
    return history


def assert_trees_close(actual, expected, rtol=1e-6, atol=0.0, what="", leaf_scale=False,
                       check_structure=True):
    """Leafwise ``assert_allclose`` with the leaf path in the message, after checking that the
    two trees have the same structure.

    ``leaf_scale=True`` measures ``atol`` relative to the largest magnitude in each expected leaf
    (so a parameter passing through zero is judged against its leaf's scale, not against 0).
    ``check_structure=False`` compares trees of different container types (an optax state
    against a gradxform one) leaf by leaf, requiring only the same number of leaves.
    """
    actual, expected = _without_makers(actual), _without_makers(expected)
    flat_a, tree_a = jax.tree_util.tree_flatten_with_path(actual)
    flat_e, tree_e = jax.tree_util.tree_flatten_with_path(expected)
    if check_structure:
        assert tree_a == tree_e, f"{what}: the tree structures differ:\n  {tree_a}\n  {tree_e}"
    else:  # different container types, the same leaves in the same order
        assert len(flat_a) == len(flat_e), f"{what}: {tree_a} != {tree_e}"
    for (path, a), (_, e) in zip(flat_a, flat_e):
        leaf_atol = atol
        if leaf_scale and np.size(e):
            leaf_atol = atol * max(float(np.max(np.abs(np.asarray(e)))), 1e-30)
        np.testing.assert_allclose(
            np.asarray(a, np.float64) if not np.iscomplexobj(a) else np.asarray(a),
            np.asarray(e, np.float64) if not np.iscomplexobj(e) else np.asarray(e),
            rtol=rtol, atol=leaf_atol, err_msg=f"{what} at {jax.tree_util.keystr(path)}")


def _without_makers(tree_):
    """``tree_`` with the ``made_by`` of every optimizer state blanked: two optimizers that differ
    only in static options (an ``axis_name``) have states of the same values, which is what a
    comparison is about (``made_by`` is tested in ``test_foreign_states.py``)."""
    return jax.tree.map(lambda x: x._replace(made_by=None) if isinstance(x, gx.OptState) else x,
                        tree_, is_leaf=lambda x: isinstance(x, gx.OptState))


def max_rel_err(actual, expected) -> float:
    """Largest relative error over all leaves (denominator floored at 1e-30)."""
    worst = 0.0
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        if a.size:
            worst = max(worst, float(np.max(np.abs(a - e) / np.maximum(np.abs(e), 1e-30))))
    return worst


class TraceCounter:
    """Wrap a function to count how many times jit traces it."""

    def __init__(self, fn: Callable):
        self.fn, self.count = fn, 0

    def __call__(self, *args, **kwargs):
        self.count += 1
        return self.fn(*args, **kwargs)
