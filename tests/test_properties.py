"""Properties of every optimizer in the conformance table, over random trees (hypothesis).

Trees are nested dicts, lists and tuples with ``None`` leaves, scalars, 0-size and odd shapes,
in float32, bfloat16, float16 or a mix. For each optimizer and tree:

* finite params and gradients give finite updates and a finite state;
* updates have the gradients' dtypes and structure; the state keeps the structure, shapes and
  dtypes ``init`` gave it;
* the update is the same eagerly, under ``jit`` (with params and state donated), inside
  ``lax.scan`` and under ``vmap`` over a batch of one;
* ``init`` from ``jax.ShapeDtypeStruct`` gives the state ``init`` from the arrays gives (its
  structure, shapes and dtypes; and, after the first update, its values: states that copy the
  params take the copy then).

Profiles (``tests/conftest.py``): ``fast``, the default: every optimizer on one explicit rich
tree (nested containers, ``None``, a scalar, 0-size and odd shapes, all three dtypes), and 8
drawn (optimizer, tree) pairs, ``derandomize=True`` so CI is deterministic; ``long``, by flag
(``pytest tests/test_properties.py --hypothesis-profile=long``) or environment
(``GRADXFORM_HYPOTHESIS_PROFILE=long``): 40 drawn trees per optimizer and 400 drawn pairs, with
random seeds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from registry import all_entries, step_arguments

ENTRIES = all_entries()
IDS = [e.name for e in ENTRIES]
FAST = settings.default.phases == (Phase.explicit,)  # the default profile (conftest.py)
DTYPES = {"f32": jnp.float32, "bf16": jnp.bfloat16, "f16": jnp.float16}
SHAPES = [(), (1,), (3,), (2, 3), (1, 5), (3, 1, 2), (4, 4), (0,), (0, 3), (2, 0, 2)]
SCALES = [1e-3, 1.0, 30.0]
# Agreement between eager, jit, scan and vmap: XLA may fuse and contract differently, and
# under jit it may keep a bfloat16/float16 intermediate in float32 (excess precision), so a
# float32 state leaf fed by a low-precision gradient agrees only to that gradient's rounding:
# the tolerance is the one of the least precise dtype in the tree.
RTOL = {np.dtype(jnp.float32): 2e-5, np.dtype(jnp.bfloat16): 2e-2, np.dtype(jnp.float16): 4e-3}


# --------------------------------------------------------------------------------------------
# Trees of leaf descriptions: (shape, dtype name, scale, seed), or None.


def _leaf(dtype_choice):
    dtype = st.sampled_from(sorted(DTYPES)) if dtype_choice == "mixed" else st.just(dtype_choice)
    return st.tuples(st.sampled_from(SHAPES), dtype, st.sampled_from(SCALES),
                     st.integers(0, 2**16))


@st.composite
def descriptions(draw):
    dtype_choice = draw(st.sampled_from(["f32", "bf16", "f16", "mixed"]))
    leaf = st.one_of(st.none(), _leaf(dtype_choice))
    tree = st.recursive(
        leaf,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.lists(children, min_size=1, max_size=3).map(tuple),
            st.dictionaries(st.sampled_from(["a", "b", "kernel", "bias", "w"]), children,
                            max_size=3)),
        max_leaves=6)
    # Params that are ``None`` itself cannot be told from "no params given" (update's default):
    # an empty model is ``{}``. Every other tree, a bare array included, is drawn.
    return draw(tree.filter(lambda t: t is not None))


RICH = {"dense": {"kernel": ((3, 2), "f32", 1.0, 1), "bias": ((2,), "bf16", 1e-3, 2)},
        "blocks": [((2, 0, 2), "f16", 1.0, 3), (((), "f32", 30.0, 4), None),
                   ((1, 5), "f16", 30.0, 5)],
        "scale": ((), "bf16", 1.0, 6), "unused": None, "empty": ((0,), "f32", 1.0, 7),
        "odd": ((3, 1, 2), "f32", 1e-3, 8)}


def _is_description(x):
    return x is None or (isinstance(x, tuple) and len(x) == 4 and isinstance(x[0], tuple)
                         and isinstance(x[1], str))


def realise(description, salt):
    def make(d):
        if d is None:
            return None
        shape, dtype, scale, seed = d
        values = np.random.default_rng(seed + salt).normal(size=shape) * scale
        return jnp.asarray(values, DTYPES[dtype])
    return jax.tree.map(make, description, is_leaf=_is_description)


# --------------------------------------------------------------------------------------------


def _extra(entry, params, grads):
    """A line search gets an objective whose gradient at ``params`` is ``grads``
    (:func:`registry.objective_at`)."""
    return step_arguments(entry, params, grads, value=1.5, key=jax.random.key(3))


def _check_close(a, b, what, rtol):
    assert jax.tree.structure(a) == jax.tree.structure(b), what
    for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what} at {path}"
        if x.size == 0 or x.dtype == np.bool_ or np.issubdtype(x.dtype, np.integer):
            np.testing.assert_array_equal(x, y, err_msg=f"{what} at {path}")
            continue
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        scale = max(float(np.max(np.abs(y64))), 1e-30)
        np.testing.assert_allclose(x64, y64, rtol=rtol, atol=rtol * scale,
                                   err_msg=f"{what} at {jax.tree_util.keystr(path)}")


def _finite(tree_, what):
    for path, x in jax.tree_util.tree_flatten_with_path(tree_)[0]:
        x = np.asarray(x)
        if np.issubdtype(x.dtype, np.inexact) or x.dtype == jnp.bfloat16:
            assert np.all(np.isfinite(x.astype(np.float64))), \
                f"{what} at {jax.tree_util.keystr(path)} is not finite"


def _same_layout(a, b, what):
    assert jax.tree.structure(a) == jax.tree.structure(b), f"{what}: the structure changed"
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert (x.shape, x.dtype) == (y.shape, y.dtype), f"{what}: {x.shape, x.dtype} " \
                                                         f"became {y.shape, y.dtype}"


def check_optimizer(entry, description, transforms=("jit", "scan", "vmap")):
    tx = entry.make(target="quadratic")
    params = realise(description, 0)
    grads = realise(description, 1000)
    extra = _extra(entry, params, grads)

    rtol = max([RTOL[np.dtype(x.dtype)] for x in jax.tree.leaves(params)], default=2e-5)
    state = tx.init(params)
    abstract = tx.init(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params))
    _same_layout(abstract, state, f"{entry.name}: init from shapes vs from arrays")

    # eager
    updates, new_state = tx.update(grads, state, params, **extra)
    _finite((updates, new_state), f"{entry.name}: eager")
    assert jax.tree.structure(updates) == jax.tree.structure(grads)
    for u, g in zip(jax.tree.leaves(updates), jax.tree.leaves(grads)):
        assert u.dtype == g.dtype and u.shape == g.shape, entry.name
    _same_layout(new_state, state, f"{entry.name}: after update")
    from_abstract = tx.update(grads, abstract, params, **extra)
    _check_close(from_abstract, (updates, new_state),
                 f"{entry.name}: first update from an init from shapes", rtol)

    # jit (params and state donated), lax.scan over one step, vmap over a batch of one: one
    # compiled program
    def all_three(params, state, grads):
        jit_out = tx.update(grads, state, params, **extra)
        if transforms == ("jit",):
            return jit_out, jit_out, jit_out

        def body(carry, g):
            s = carry
            u, s = tx.update(g, s, params, **extra)
            return s, u

        scan_state, scan_updates = jax.lax.scan(
            body, state, jax.tree.map(lambda x: x[None], grads), length=1)
        scan_out = (jax.tree.map(lambda x: x[0], scan_updates), scan_state)
        if jax.tree.leaves(params):
            one = lambda tree: jax.tree.map(lambda x: x[None], tree)  # noqa: E731
            batched = jax.vmap(lambda p, s, g: tx.update(g, s, p, **extra))(
                one(params), one(state), one(grads))
            vmap_out = jax.tree.map(lambda x: x[0], batched)
        else:
            vmap_out = jit_out
        return jit_out, scan_out, vmap_out

    copies = jax.tree.map(jnp.array, (params, state))
    jit_out, scan_out, vmap_out = jax.jit(all_three, donate_argnums=(0, 1))(*copies, grads)
    _check_close(jit_out, (updates, new_state), f"{entry.name}: jit vs eager", rtol)
    _check_close(scan_out, jit_out, f"{entry.name}: lax.scan vs jit", rtol)
    _check_close(vmap_out, jit_out, f"{entry.name}: vmap of one vs jit", rtol)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
@given(description=descriptions())
@example(description=RICH)
def test_every_optimizer_on_random_trees(entry, description):
    # The fast profile checks eager against jit here (the conformance table runs every entry
    # under lax.scan and vmap on its targets); the drawn pairs below check all four.
    check_optimizer(entry, description, ("jit",) if FAST else ("jit", "scan", "vmap"))


@settings(phases=[Phase.explicit, Phase.generate],
          max_examples=8 if FAST else 10 * settings.default.max_examples)
@given(entry=st.sampled_from(ENTRIES), description=descriptions())
def test_random_optimizers_on_random_trees(entry, description):
    """Drawn trees, each for a drawn optimizer (8 in the fast profile)."""
    check_optimizer(entry, description)
