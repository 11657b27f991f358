"""``tree.finite_sums`` and the norms built on it: the sums over the finite entries, taken by the
plain sums unless one is not finite (the fast path of the non-finite rule)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from gradxform._src import tree
from gradxform._src.transforms import _leafwise


def _reference(leaves):
    out = []
    for x in leaves:
        x = np.asarray(x, np.float64)
        out.append(float(np.sum(np.where(np.isfinite(x), x, 0.0) ** 2)))
    return out


LEAVES = [np.linspace(-2, 3, 12, dtype=np.float32).reshape(3, 4),
          np.asarray([0.5, -1.5, 2.0], np.float32), np.float32(4.0)]


@pytest.mark.parametrize("bad", [None, np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("mode", ["eager", "jit", "vmap"])
def test_finite_sums_are_the_sums_over_finite_entries(bad, mode):
    leaves = [x.copy() for x in LEAVES]
    if bad is not None:
        leaves[0][1, 2] = bad
    expected = _reference(leaves)

    def f(*xs):
        return tree.finite_sums([jnp.asarray(x) for x in xs], tree.abs_sq)

    if mode == "jit":
        found = jax.jit(f)(*leaves)
    elif mode == "vmap":  # the cond becomes a select: both branches, the same result
        stacked = jax.vmap(f)(*[np.stack([x, np.zeros_like(x)]) for x in leaves])
        found = [s[0] for s in stacked]
        np.testing.assert_array_equal([float(s[1]) for s in stacked], 0.0)
    else:
        found = f(*leaves)
    np.testing.assert_allclose([float(s) for s in found], expected, rtol=1e-6)


def test_an_overflowing_sum_stays_inf():
    """Finite entries whose squares overflow float32: inf by both paths (not hidden)."""
    x = jnp.full((4,), 3e19, jnp.float32)
    assert np.isinf(float(tree.finite_sums([x], tree.abs_sq)[0]))
    assert np.isinf(float(tree.global_norm({"x": x}, ignore_non_finite=True)))


def test_empty_and_mixed_dtypes():
    assert tree.finite_sums([], tree.abs_sq) == []
    leaves = [jnp.asarray([1.0, jnp.inf], jnp.bfloat16), jnp.asarray([2.0, 3.0], jnp.float32)]
    found = tree.finite_sums(leaves, lambda x: tree.abs_sq(x.astype(jnp.float32)))
    np.testing.assert_allclose([float(s) for s in found], [1.0, 13.0])


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_clip_and_layer_norms_read_the_finite_part(bad):
    g = {"a": jnp.asarray([3.0, 4.0, bad], jnp.float32), "b": jnp.asarray([12.0], jnp.float32)}
    # the global norm of the finite entries is 13
    np.testing.assert_allclose(float(tree.global_norm(g, ignore_non_finite=True)), 13.0)
    u, _ = gx.clip_by_global_norm(1.0).update(g, gx.clip_by_global_norm(1.0).init(g))
    np.testing.assert_allclose(np.asarray(u["a"][:2]), [3 / 13, 4 / 13], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(u["b"]), [12 / 13], rtol=1e-6)
    np.testing.assert_allclose(float(_leafwise.norm(g["a"])), 5.0)


def test_meta_gradient_through_the_fast_path():
    """The derivative of the clipped update by the clip threshold passes the cond."""
    g = {"a": jnp.asarray([3.0, 4.0], jnp.float32)}

    def f(c):
        tx = gx.clip_by_global_norm(c)
        u, _ = tx.update(g, tx.init(g))
        return u["a"][0]

    # below the norm 5 the update is 3 c / 5, so the derivative is 0.6
    np.testing.assert_allclose(float(jax.grad(f)(jnp.float32(2.0))), 0.6, rtol=1e-6)


def test_a_norm_that_keeps_non_finite_entries_reports_them():
    """``global_norm`` without ``ignore_non_finite`` (for logging) shows a NaN or an inf."""
    for bad in (np.nan, np.inf):
        g = {"a": jnp.asarray([3.0, bad], jnp.float32)}
        found = float(tree.global_norm(g))
        assert (np.isnan(found) if np.isnan(bad) else found == np.inf), (bad, found)
    np.testing.assert_allclose(float(jax.grad(tree.safe_sqrt)(jnp.float32(0.0))), 0.0)


@pytest.mark.parametrize("bad", [None, np.inf, np.nan])
@pytest.mark.parametrize("mode", ["eager", "jit", "vmap"])
def test_finite_total_is_the_total_over_finite_entries(bad, mode):
    """Leaves of repeated shapes (stacked in the recomputing branch), a scalar and a bfloat16
    leaf: the total equals the sum of the per-leaf reference."""
    leaves = [x.copy() for x in LEAVES] + [LEAVES[0] * 2, LEAVES[1] - 1, np.float32(-3.0)]
    if bad is not None:
        leaves[3][2, 1] = bad
        leaves[4][0] = -bad
    expected = sum(_reference(leaves)) + 6.0 ** 2

    def f(*xs):
        parts = [jnp.asarray(x) for x in xs] + [jnp.asarray([6.0, bad or 0.0], jnp.bfloat16)]
        return tree.finite_total(parts, lambda v: tree.abs_sq(v.astype(jnp.float32)))

    if mode == "jit":
        found = jax.jit(f)(*leaves)
    elif mode == "vmap":  # both branches run; the second member is all zeros
        found, zero = jax.vmap(f)(*[np.stack([x, np.zeros_like(x)]) for x in leaves])
        assert float(zero) == 36.0
    else:
        found = f(*leaves)
    assert found.dtype == jnp.float32
    np.testing.assert_allclose(float(found), expected, rtol=1e-6)


def test_finite_total_gradient_is_that_of_the_per_leaf_sums():
    """``2 x`` on the fast path; with a non-finite entry, what the per-leaf sums give."""
    xs = [jnp.asarray([1.0, 2.0], jnp.float32), jnp.asarray([3.0, 4.0], jnp.float32),
          jnp.asarray([5.0, 6.0], jnp.float32)]
    for bad in (None, np.inf):
        leaves = xs if bad is None else [xs[0], xs[1].at[0].set(bad), xs[2]]
        found = jax.grad(lambda ls: tree.finite_total(ls, tree.abs_sq))(leaves)
        per_leaf = jax.grad(lambda ls: sum(tree.finite_sums(ls, tree.abs_sq)))(leaves)
        for g, w in zip(found, per_leaf):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
        if bad is None:
            np.testing.assert_array_equal(np.asarray(found[2]), [10.0, 12.0])
    assert float(tree.finite_total([], tree.abs_sq)) == 0.0
