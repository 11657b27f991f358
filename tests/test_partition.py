"""Routing leaves: ``partition`` (parameter groups), ``masked`` and ``freeze``.

* partition by regex on a real flax model's params equals optax's ``partition`` with the
  equivalent label tree (params after every step, rtol 1e-6);
* label trees match params by path (plain dict labels for ``FrozenDict`` params), prefixes,
  callables on the params or on the path, equinox trees (non-array leaves filtered to None) and
  None leaves;
* freezing leaves no optimizer state for frozen leaves (the state's bytes are those of the
  trainable leaves alone) and zero updates;
* nested routers agree with the equivalent flat partition;
* errors name the call, the leaf and the fix.
"""

from __future__ import annotations

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.core import FrozenDict

import gradxform as gx
from helpers import assert_trees_close, gradient_stream, nested_params, standard_promotion


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(8)(x))
        x = nn.LayerNorm()(x)
        return nn.Dense(2)(x)


def flax_params():
    return MLP().init(jax.random.key(0), jnp.ones((1, 3)))


def _nbytes(tree_):
    return sum(x.nbytes for x in jax.tree.leaves(tree_))


def _steps(tx, params, grads, extra=None):
    """Params after every step (jitted)."""
    state = tx.init(params)

    @jax.jit
    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return gx.apply_updates(p, u), s

    out = []
    for g in grads:
        params, state = step(params, state, g)
        out.append(params)
    return out, state


def test_path_strings():
    params = flax_params()
    paths = [gx.path_string(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    assert "['params']['Dense_0']['bias']" in paths
    assert "['params']['LayerNorm_0']['scale']" in paths
    model = eqx.filter(eqx.nn.MLP(2, 2, 4, 1, key=jax.random.key(0)), eqx.is_array)
    paths = [gx.path_string(p) for p, _ in jax.tree_util.tree_flatten_with_path(model)[0]]
    assert paths[:2] == [".layers[0].weight", ".layers[0].bias"]


def test_partition_by_regex_on_a_flax_model_matches_optax():
    params = flax_params()
    grads = gradient_stream(params, 25)
    labels = gx.by_regex([(r"bias|\['scale'\]", "no_decay")], default="decay")
    tx = gx.partition({"decay": gx.adamw(1e-2, weight_decay=0.1), "no_decay": gx.adam(1e-2)},
                      labels)
    label_tree = jax.tree_util.tree_map_with_path(
        lambda p, _: "no_decay" if ("bias" in str(p) or "scale" in str(p)) else "decay", params)
    ox = optax.partition({"decay": optax.adamw(1e-2, weight_decay=0.1),
                          "no_decay": optax.adam(1e-2)}, label_tree)
    mine, state = _steps(tx, params, grads)
    with standard_promotion():
        theirs, _ = _steps(ox, params, grads)
    for t, (a, b) in enumerate(zip(mine, theirs)):
        assert_trees_close(a, b, rtol=1e-6, atol=1e-6, leaf_scale=True, what=f"step {t + 1}")
    # each group keeps moments for its own leaves only
    mu_no_decay = state.inner["no_decay"][0].mu
    kept = {gx.path_string(p) for p, _ in jax.tree_util.tree_flatten_with_path(mu_no_decay)[0]}
    assert kept == {"['params']['Dense_0']['bias']", "['params']['Dense_1']['bias']",
                    "['params']['LayerNorm_0']['bias']", "['params']['LayerNorm_0']['scale']"}


def test_plain_dict_labels_match_frozen_dict_params_by_path():
    params = flax_params()
    grads = gradient_stream(params, 5)
    labels = {"params": {"Dense_0": "a", "LayerNorm_0": "b", "Dense_1": "a"}}  # a prefix
    tx = gx.partition({"a": gx.sgd(0.1, 0.9), "b": gx.adam(0.1)}, labels)
    frozen, _ = _steps(tx, FrozenDict(params), [FrozenDict(g) for g in grads])
    plain, _ = _steps(tx, params, grads)
    assert isinstance(frozen[-1], FrozenDict)
    assert_trees_close(dict(frozen[-1]), plain[-1], rtol=0, check_structure=False)


def test_equinox_model_with_non_array_leaves_filtered_out():
    model = eqx.nn.MLP(3, 2, 8, 2, key=jax.random.key(0))
    params = eqx.filter(model, eqx.is_array)
    grads = eqx.filter_grad(lambda m: jnp.sum(m(jnp.ones(3)) ** 2))(model)
    tx = gx.partition({"w": gx.adam(1e-2), "b": gx.set_to_zero()},
                      gx.by_regex([(r"\.bias$", "b")], default="w"))
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    for layer, g in zip(updates.layers, grads.layers):
        assert np.all(np.asarray(layer.bias) == 0)
        np.testing.assert_array_equal(np.asarray(layer.weight) != 0,
                                      np.asarray(g.weight) != 0)  # adam moves what has a gradient
        assert layer.weight.shape == g.weight.shape
    assert updates.activation is None
    model = eqx.apply_updates(model, updates)


def test_callables_on_params_and_on_paths_agree_with_a_label_tree():
    params = nested_params()
    grads = gradient_stream(params, 6)
    transforms = {"matrix": gx.adam(0.05), "vector": gx.sgd(0.05, 0.5)}

    def kind(x):
        return "matrix" if x.ndim >= 2 else "vector"

    label_tree = jax.tree.map(kind, params)
    by_tree, _ = _steps(gx.partition(transforms, label_tree), params, grads)
    by_params, _ = _steps(gx.partition(transforms, lambda p: jax.tree.map(kind, p)), params,
                          grads)
    by_path, _ = _steps(gx.partition(transforms, gx.by_path(lambda path, x: kind(x))), params,
                        grads)
    assert_trees_close(by_params[-1], by_tree[-1], rtol=0)
    assert_trees_close(by_path[-1], by_tree[-1], rtol=0)
    # the matrices followed adam alone
    alone, _ = _steps(gx.adam(0.05), params["dense"]["w"], [g["dense"]["w"] for g in grads])
    np.testing.assert_allclose(by_tree[-1]["dense"]["w"], alone[-1], rtol=1e-6)
    assert by_tree[-1]["unused"] is None


@pytest.mark.parametrize("inner", ["adam", "sgd"])
def test_freeze_keeps_no_state_and_zero_updates(inner):
    make = {"adam": lambda: gx.adam(0.05), "sgd": lambda: gx.sgd(0.05, momentum=0.9)}[inner]
    params = {"encoder": {"w": jnp.ones((64, 32)), "b": jnp.ones(32)},
              "head": {"w": jnp.ones((32, 4)), "b": jnp.ones(4)}}
    grads = gradient_stream(params, 5)
    tx = gx.selective_transform(make(), freeze_mask={"encoder": True, "head": False})
    history, state = _steps(tx, params, grads)
    head_only = make().init(params["head"])
    assert _nbytes(state.inner) == _nbytes(head_only.inner)
    assert _nbytes(state.inner) < _nbytes(make().init(params).inner) / 10
    assert_trees_close(history[-1]["encoder"], params["encoder"], rtol=0)
    alone, _ = _steps(make(), params["head"], [g["head"] for g in grads])
    assert_trees_close(history[-1]["head"], alone[-1], rtol=1e-6)
    # the same by regex
    by_regex, state2 = _steps(gx.selective_transform(make(), freeze_mask=r"\['encoder'\]"),
                              params, grads)
    assert _nbytes(state2.inner) == _nbytes(state.inner)
    assert_trees_close(by_regex[-1], history[-1], rtol=0)


def test_freeze_leaves_integer_leaves_alone():
    params = {"w": jnp.ones(3), "step": jnp.zeros((), jnp.int32)}
    tx = gx.selective_transform(gx.adam(0.1), freeze_mask={"w": False, "step": True})
    state = tx.init(params)
    grads = {"w": jnp.ones(3), "step": jnp.zeros((), jnp.int32)}
    updates, _ = tx.update(grads, state, params)
    assert updates["step"].dtype == jnp.int32 and int(updates["step"]) == 0
    with pytest.raises(TypeError, match=r"selective_transform: the leaf at \['step'\] has dtype "
                                        r"int32 and is routed to the trainable leaves \(adam\)"):
        gx.selective_transform(gx.adam(0.1), freeze_mask={"w": False, "step": False}).init(params)


@pytest.mark.parametrize("inner", ["adam", "sgd"])
def test_masked_passes_unselected_leaves_through(inner):
    make = {"adam": lambda: gx.adam(0.05), "sgd": lambda: gx.sgd(0.05, momentum=0.9)}[inner]
    params = nested_params()
    grads = gradient_stream(params, 4)
    tx = gx.masked(make(), "dense")
    state = tx.init(params)
    u, state = tx.update(grads[0], state, params)
    assert_trees_close(u["blocks"], grads[0]["blocks"], rtol=0)
    alone = make()
    u_alone, _ = alone.update(grads[0]["dense"], alone.init(params["dense"]), params["dense"])
    assert_trees_close(u["dense"], u_alone, rtol=1e-6)


def test_nested_routers_equal_the_flat_partition():
    params = nested_params()
    grads = gradient_stream(params, 8)
    flat = gx.partition(
        {"w": gx.adam(0.05), "b": gx.sgd(0.1, 0.9), "rest": gx.set_to_zero()},
        {"dense": {"w": "w", "b": "b"}, "blocks": "rest", "scale": "w"})
    nested = gx.partition(
        {"dense": gx.partition({"w": gx.adam(0.05), "b": gx.sgd(0.1, 0.9)},
                               gx.by_regex([(r"\['w'\]", "w")], default="b")),
         "other": gx.selective_transform(
             gx.masked(gx.adam(0.05), {"blocks": False, "scale": True}),
             freeze_mask={"blocks": True, "scale": False})},
        gx.by_regex([("dense", "dense")], default="other"))
    a, state_a = _steps(flat, params, grads)
    b, state_b = _steps(nested, params, grads)
    for x, y in zip(a, b):
        assert_trees_close(y, x, rtol=1e-6)
    assert _nbytes(state_a) == _nbytes(state_b)


def test_a_group_may_be_empty_and_none_leaves_are_skipped():
    params = nested_params()
    tx = gx.partition({"all": gx.adam(0.1), "none": gx.adam(0.1)}, "all")
    state = tx.init(params)
    assert jax.tree.leaves(state.inner["none"]) == [] or all(
        x.shape == () for x in jax.tree.leaves(state.inner["none"]))
    u, _ = tx.update(gradient_stream(params, 1)[0], state, params)
    assert u["unused"] is None


def test_values_equal_and_hash_alike():
    def make():
        return gx.partition({"a": gx.adam(0.1), "b": gx.sgd(0.1)},
                            gx.by_regex([("bias", "b")], default="a"))

    assert make() == make() and hash(make()) == hash(make())
    def frozen(mask):
        return gx.selective_transform(gx.adam(0.1), freeze_mask=mask)

    assert frozen({"a": True}) == frozen({"a": True})
    assert frozen({"a": True}) != frozen({"a": False})
    assert gx.masked(gx.sgd(0.1), "x") == gx.masked(gx.sgd(0.1), gx.by_regex("x"))


def test_freeze_is_optaxs_zeroing_mask():
    """``freeze(mask)`` zeroes the masked leaves' updates and passes the others on, as optax's;
    a chained optimizer still keeps state for every leaf (selective_transform does not)."""
    params = {"encoder": jnp.ones(3), "head": jnp.ones(2)}
    mask = {"encoder": True, "head": False}
    grads = gradient_stream(params, 4)
    mine, state = _steps(gx.chain(gx.freeze(mask), gx.adamw(0.1, weight_decay=0.5)), params,
                         grads)
    with standard_promotion():
        theirs, _ = _steps(optax.chain(optax.freeze(mask), optax.adamw(0.1, weight_decay=0.5)),
                           params, grads)
    for a, b in zip(mine, theirs):
        assert_trees_close(a, b, rtol=1e-6)
    assert not np.allclose(mine[-1]["encoder"], params["encoder"])  # decayed all the same
    assert state.inner[1][0].mu["encoder"].shape == (3,)


class _add_offset(gx.GradientTransformation):
    """u + offset, with ``offset`` an extra argument of ``update`` (a tree like the updates)."""

    def apply(self, updates, state, params, step):
        return jax.tree.map(lambda u, o: u + o, updates, step.extra["offset"]), state


def _optax_add_offset():
    def update(updates, state, params=None, *, offset=None):
        return jax.tree.map(lambda u, o: u + o, updates, offset), state

    return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


@pytest.mark.parametrize("router", ["masked", "partition"])
def test_mask_compatible_extra_args(router):
    """An extra argument shaped like the updates reaches the inner transformation masked, as
    optax's ``mask_compatible_extra_args=True`` does; by default it is passed on whole."""
    params = {"a": jnp.ones(2), "b": jnp.ones(3)}
    grads = {"a": jnp.asarray([1.0, 2.0]), "b": jnp.asarray([3.0, 4.0, 5.0])}
    offset = {"a": jnp.asarray([10.0, 20.0]), "b": jnp.asarray([30.0, 40.0, 50.0])}

    def build(lib, inner, flag):
        if router == "masked":
            return lib.masked(inner, {"a": True, "b": False}, mask_compatible_extra_args=flag)
        return lib.partition({"x": inner, "y": lib.scale(2.0)}, {"a": "x", "b": "y"},
                             mask_compatible_extra_args=flag)

    tx = build(gx, _add_offset(), True)
    u, _ = tx.update(grads, tx.init(params), params, offset=offset)
    with standard_promotion():
        otx = build(optax, _optax_add_offset(), True)
        expected, _ = otx.update(grads, otx.init(params), params, offset=offset)
    assert_trees_close(u, expected, rtol=0)
    np.testing.assert_array_equal(u["a"], [11.0, 22.0])
    whole = build(gx, _add_offset(), False)
    with pytest.raises(ValueError, match="tree structure|structure"):
        whole.update(grads, whole.init(params), params, offset=offset)
    with pytest.raises(TypeError, match=f"^{router}: mask_compatible_extra_args must be a "
                                        f"bool, got 1"):
        build(gx, _add_offset(), 1)


# --------------------------------------------------------------------------------------------
# Errors.


def test_error_unknown_label_at_construction():
    with pytest.raises(ValueError, match=r"^partition: param_labels give the label 'c', which is "
                                         r"not a key of transforms \('a', 'b'\)"):
        gx.partition({"a": gx.adam(0.1), "b": gx.sgd(0.1)}, {"x": "a", "y": "c"})
    with pytest.raises(ValueError, match=r"^partition: param_labels give the label 'z'"):
        gx.partition({"a": gx.adam(0.1)}, gx.by_regex([("x", "a")], default="z"))


def test_error_unknown_label_from_a_callable():
    tx = gx.partition({"a": gx.adam(0.1)}, gx.by_path(lambda path, x: "zzz"))
    with pytest.raises(ValueError, match=r"partition: the leaf at \['x'\] has the label 'zzz', "
                                         r"which is not a key of transforms \('a',\)"):
        tx.init({"x": jnp.ones(2)})


def test_error_leaf_without_label():
    tx = gx.partition({"a": gx.adam(0.1)}, {"x": "a"})
    with pytest.raises(ValueError, match=r"partition: no entry of the labels covers the leaf at "
                                         r"\['y'\]"):
        tx.init({"x": jnp.ones(2), "y": jnp.ones(2)})


def test_error_misspelt_key():
    tx = gx.masked(gx.adam(0.1), {"dense": True, "blocks": False, "scale": False,
                                  "unsued": True})
    with pytest.raises(ValueError, match=r"masked: the entry of the mask at \['unsued'\] is not "
                                         r"in the params \(a misspelt key\?\)"):
        tx.init(nested_params())


def test_error_mask_of_non_bools():
    tx = gx.masked(gx.adam(0.1), {"x": "yes"})
    with pytest.raises(TypeError, match=r"masked: the mask must hold bools, got 'yes' for the "
                                        r"leaf at \['x'\]"):
        tx.init({"x": jnp.ones(2)})


def test_error_non_array_leaf():
    tx = gx.partition({"a": gx.adam(0.1)}, "a")
    with pytest.raises(TypeError, match=r"partition: the leaf at \['act'\] is not an array .*"
                                        r"eqx.filter\(model, eqx.is_array\)"):
        tx.init({"w": jnp.ones(2), "act": jax.nn.relu})


def test_error_regex_without_match_or_default():
    tx = gx.partition({"a": gx.adam(0.1)}, gx.by_regex([("w", "a")]))
    with pytest.raises(ValueError, match=r"by_regex: no rule matches the leaf at \['b'\] and "
                                         r"there is no default"):
        tx.init({"w": jnp.ones(2), "b": jnp.ones(2)})


def test_error_invalid_regex_and_bad_rules():
    with pytest.raises(ValueError, match=r"^by_regex: rules holds an invalid regular expression "
                                         r"'\(unclosed'"):
        gx.by_regex("(unclosed")
    with pytest.raises(TypeError, match=r"^by_regex: rules must be \(pattern, label\) pairs"):
        gx.by_regex([("a", "b", "c")])


def test_error_transforms_not_a_dict():
    with pytest.raises(TypeError, match=r"^partition: transforms must be a non-empty dict"):
        gx.partition([gx.adam(0.1)], "a")
    with pytest.raises(TypeError, match=r"^partition: transforms labels \(the keys\) must be "
                                        r"strings, got 1"):
        gx.partition({1: gx.adam(0.1)}, 1)
