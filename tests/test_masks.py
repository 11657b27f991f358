"""Routing leaves: bare arrays as params, callable pytrees as masks, empty params, and masks
that select nothing (an error unless asked for)."""

from __future__ import annotations

import dataclasses
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from helpers import assert_trees_close

W = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
B = jnp.asarray(np.random.default_rng(1).normal(size=(3,)), jnp.float32)


def one_update(tx, params, grads):
    return tx.update(grads, tx.init(params), params)[0]


# --------------------------------------------------------------------------------------------
# A bare array as params.


@pytest.mark.parametrize("make", [
    lambda: gx.masked(gx.adamw(0.1, weight_decay=0.5), True),
    lambda: gx.masked(gx.adamw(0.1, weight_decay=0.5), lambda p: True),
    lambda: gx.partition({"a": gx.adamw(0.1, weight_decay=0.5), "b": gx.sgd(1.0)}, "a"),
    lambda: gx.selective_transform(gx.adamw(0.1, weight_decay=0.5), freeze_mask=False,
                                   on_empty="allow"),
    lambda: gx.chain(gx.freeze(False, on_empty="allow"), gx.adamw(0.1, weight_decay=0.5)),
], ids=["masked", "masked_callable", "partition", "selective_transform", "freeze"])
def test_a_bare_array_routed_to_a_transformation(make):
    grads = W * 0.5
    expected = one_update(gx.adamw(0.1, weight_decay=0.5), W, grads)
    assert_trees_close(one_update(make(), W, grads), expected, rtol=1e-6)
    wrapped = one_update(make(), {"w": W}, {"w": grads})["w"]
    assert_trees_close(wrapped, expected, rtol=1e-6)


def test_a_bare_array_routed_away_from_a_transformation():
    grads = W * 0.5
    u = one_update(gx.masked(gx.adamw(0.1), False, on_empty="allow"), W, grads)
    assert_trees_close(u, grads, rtol=0)  # passed through, adamw did not run
    u = one_update(gx.selective_transform(gx.adamw(0.1), freeze_mask=True), W, grads)
    assert_trees_close(u, jnp.zeros_like(W), rtol=0)
    u = one_update(gx.freeze(True), W, grads)
    assert_trees_close(u, jnp.zeros_like(W), rtol=0)
    u = one_update(gx.partition({"a": gx.adamw(0.1), "b": gx.sgd(1.0)}, "b"), W, grads)
    assert_trees_close(u, -grads, rtol=0)


@pytest.mark.parametrize("leaf", [W, B], ids=["matrix", "vector"])
def test_muon_on_a_bare_array(leaf):
    grads = leaf * 0.5 + 0.1
    bare = one_update(gx.muon(0.02, weight_decay=0.1), leaf, grads)
    in_dict = one_update(gx.muon(0.02, weight_decay=0.1), {"x": leaf}, {"x": grads})["x"]
    assert_trees_close(bare, in_dict, rtol=1e-6)
    assert float(jnp.max(jnp.abs(bare))) > 0


# --------------------------------------------------------------------------------------------
# A callable pytree as a mask is the tree of bools, not a function to call.


class EqxMask(eqx.Module):
    w: bool
    b: bool

    def __call__(self, x):
        raise AssertionError("a mask that is a tree must not be called")


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class DataclassMask:
    w: bool
    b: bool

    def __call__(self, x):
        raise AssertionError("a mask that is a tree must not be called")


class EqxParams(eqx.Module):
    w: jax.Array
    b: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class DataclassParams:
    w: jax.Array
    b: jax.Array


@pytest.mark.parametrize("mask_cls, params_cls", [(EqxMask, EqxParams),
                                                  (DataclassMask, DataclassParams)])
def test_a_callable_pytree_mask_is_used_as_the_tree(mask_cls, params_cls):
    params = params_cls(W, B)
    grads = params_cls(jnp.ones_like(W), jnp.ones_like(B))
    for tx in (gx.masked(gx.add_decayed_weights(0.5), mask_cls(True, False)),
               gx.add_decayed_weights(0.5, mask=mask_cls(True, False))):
        u = one_update(tx, params, grads)
        assert_trees_close(u.w, 1 + 0.5 * W, rtol=1e-6)
        assert_trees_close(u.b, jnp.ones_like(B), rtol=0)
    for tx in (gx.selective_transform(gx.sgd(1.0), freeze_mask=mask_cls(False, True)),
               gx.chain(gx.freeze(mask_cls(False, True)), gx.sgd(1.0))):
        u = one_update(tx, params, grads)
        assert_trees_close(u.w, -jnp.ones_like(W), rtol=0)
        assert_trees_close(u.b, jnp.zeros_like(B), rtol=0)
    grads = params_cls(jnp.zeros_like(W), jnp.zeros_like(B))
    labels = gx.partition({"decay": gx.add_decayed_weights(0.5), "none": gx.identity()},
                          _Labels("decay", "none"))
    u = one_update(labels, params, grads)
    assert_trees_close(u.w, 0.5 * W, rtol=1e-6)
    assert float(jnp.max(jnp.abs(u.b))) == 0.0


class _Labels(eqx.Module):
    w: str = eqx.field(static=False)
    b: str = eqx.field(static=False)

    def __call__(self, x):
        raise AssertionError("labels that are a tree must not be called")


def test_a_callable_that_is_not_a_tree_of_bools_is_still_called():
    called = []

    def mask(params):
        called.append(True)
        return {"w": True, "b": False}

    one_update(gx.masked(gx.add_decayed_weights(0.5), mask), {"w": W, "b": B},
               {"w": W, "b": B})
    assert called
    part = jax.tree_util.Partial(lambda scale, p: jax.tree.map(lambda x: x.ndim > 1, p),
                                 jnp.ones(2))  # a pytree with non-bool leaves: a function
    u = one_update(gx.masked(gx.set_to_zero(), part), {"w": W, "b": B}, {"w": W, "b": B})
    assert float(jnp.max(jnp.abs(u["w"]))) == 0.0 and float(jnp.max(jnp.abs(u["b"]))) > 0


# --------------------------------------------------------------------------------------------
# Empty params with a whole-tree mask or label give the empty tree (as optax).


@pytest.mark.parametrize("make", [
    lambda: gx.masked(gx.adam(1e-3), True),
    lambda: gx.masked(gx.adam(1e-3), False),
    lambda: gx.masked(gx.adam(1e-3), "bias"),
    lambda: gx.selective_transform(gx.adam(1e-3), freeze_mask=True),
    lambda: gx.freeze(True),
    lambda: gx.partition({"a": gx.adam(1e-3)}, "a"),
    lambda: gx.partition({"a": gx.adam(1e-3)}, gx.by_regex([("w", "a")], default="a")),
    lambda: gx.adamw(1e-3, mask=True),
    lambda: gx.muon(1e-3),
], ids=["masked_true", "masked_false", "masked_regex", "selective_transform", "freeze",
        "partition", "regex_labels", "adamw_mask", "muon"])
@pytest.mark.parametrize("empty", [{}, [], ()], ids=["dict", "list", "tuple"])
def test_empty_params_give_the_empty_tree(make, empty):
    tx = make()
    updates, _ = tx.update(empty, tx.init(empty), empty)
    assert updates == empty and type(updates) is type(empty)


# --------------------------------------------------------------------------------------------
# A mask that selects no leaf is an error, unless asked for.

PARAMS = {"encoder": {"w": W}, "head": {"w": W, "b": B}}
GRADS = jax.tree.map(jnp.ones_like, PARAMS)

EMPTY_MASKS = [
    ("regex", "kernel"),
    ("by_regex", gx.by_regex(r"\['kernel'\]")),
    ("callable", lambda p: jax.tree.map(lambda x: x.ndim > 2, p)),
    ("tree", {"encoder": False, "head": False}),
    ("prefix", False),
]


@pytest.mark.parametrize("kind, mask", EMPTY_MASKS, ids=[k for k, _ in EMPTY_MASKS])
def test_masked_selecting_nothing_raises(kind, mask):
    with pytest.raises(ValueError, match=r"masked: mask selects none of the 3 leaves of the "
                                         r"params, so masked would silently do nothing"):
        gx.masked(gx.adam(1e-3), mask).init(PARAMS)


@pytest.mark.parametrize("kind, mask", EMPTY_MASKS, ids=[k for k, _ in EMPTY_MASKS])
def test_weight_decay_mask_selecting_nothing_raises_naming_the_optimizer(kind, mask):
    tx = gx.adamw(1e-3, weight_decay=0.1, mask=mask)
    state = tx.init(PARAMS)
    with pytest.raises(ValueError, match=r"adamw: mask selects none of the 3 leaves of the "
                                         r"params, so add_decayed_weights would silently do "
                                         r"nothing"):
        tx.update(GRADS, state, PARAMS)


def test_freezing_nothing_raises():
    with pytest.raises(ValueError, match=r"selective_transform: freeze_mask selects none of "
                                         r"the 3 leaves"):
        gx.selective_transform(gx.adam(1e-3), freeze_mask=r"\['decoder'\]").init(PARAMS)
    # freeze(mask) is the value masked(set_to_zero(), mask), as optax's: the error names it so
    with pytest.raises(ValueError, match=r"masked: mask selects none of the 3 leaves"):
        gx.freeze(r"\['decoder'\]").init(PARAMS)


def test_partition_rule_labelling_nothing_raises():
    labels = gx.by_regex([(r"\['bias'\]", "no_decay")], default="decay")
    tx = gx.partition({"decay": gx.adamw(1e-3), "no_decay": gx.adam(1e-3)}, labels)
    with pytest.raises(ValueError, match=r"partition: the rule \(\"\\\\\['bias'\\\\\]\", "
                                         r"'no_decay'\) of the labels gives no leaf its label"):
        tx.init(PARAMS)
    # a tree of labels may give a group nothing: it was written so
    tree_labels = {"encoder": "decay", "head": "decay"}
    gx.partition({"decay": gx.adamw(1e-3), "no_decay": gx.adam(1e-3)}, tree_labels).init(PARAMS)


def test_on_empty_warn_and_allow():
    with pytest.warns(UserWarning, match="masked: mask selects none of the 3 leaves"):
        tx = gx.masked(gx.adam(1e-3), "kernel", on_empty="warn")
        state = tx.init(PARAMS)
    u, _ = tx.update(GRADS, state, PARAMS)
    assert_trees_close(u, GRADS, rtol=0)  # adam did not run: updates pass through
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tx = gx.masked(gx.add_decayed_weights(0.1, mask=None), "kernel", on_empty="allow")
        tx.update(GRADS, tx.init(PARAMS), PARAMS)
        labels = gx.by_regex([(r"\['bias'\]", "no_decay")], default="decay")
        gx.partition({"decay": gx.sgd(1.0), "no_decay": gx.adam(1.0)}, labels,
                     on_empty="allow").init(PARAMS)
    with pytest.raises(ValueError, match=r"masked: on_empty must be one of \('raise', 'warn', "
                                         r"'allow'\), got 'ignore'"):
        gx.masked(gx.adam(1e-3), True, on_empty="ignore")
