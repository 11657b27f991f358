"""``gx.tree_utils`` / ``gx.tree`` against ``optax.tree_utils``: the tree math on plain trees, the
state helpers on optax and gradxform states, and optax's own helpers on gradxform states."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
import pytest

import gradxform as gx
from helpers import nested_params, standard_promotion
from registry import all_entries

tu = gx.tree_utils
X = {"a": jnp.asarray([1.0, -2.0, 3.0]), "b": [jnp.asarray([[0.5, -4.0]]), jnp.asarray(2.0)]}
Y = {"a": jnp.asarray([0.5, 1.0, -1.0]), "b": [jnp.asarray([[2.0, 1.0]]), jnp.asarray(-3.0)]}
C = {"a": jnp.asarray([1 + 2j, 3 - 1j]), "b": jnp.asarray(2 - 1j)}
C2 = {"a": jnp.asarray([2 - 1j, 1j]), "b": jnp.asarray(1 + 1j)}

MATH = [
    ("tree_add", (X, Y)), ("tree_add", (X, Y, X)), ("tree_sub", (X, Y)), ("tree_mul", (X, Y)),
    ("tree_div", (X, Y)), ("tree_scale", (2.5, X)), ("tree_add_scale", (X, 0.5, Y)),
    ("tree_vdot", (X, Y)), ("tree_vdot", (C, C2)), ("tree_sum", (X,)), ("tree_max", (X,)),
    ("tree_min", (X,)), ("tree_size", (X,)), ("tree_conj", (C,)), ("tree_real", (C,)),
    ("tree_norm", (X,)), ("tree_norm", (X, 1)), ("tree_norm", (X, "inf")),
    ("tree_norm", (X, 2, True)), ("tree_norm", (C,)), ("tree_batch_shape", (X, (2, 3))),
    ("tree_zeros_like", (X,)), ("tree_ones_like", (X, jnp.int32)),
    ("tree_full_like", (X, 3.0)), ("tree_clip", (X, -1.0, 1.0)), ("tree_clip", (X, None, 0.0)),
    ("tree_where", (True, X, Y)), ("tree_allclose", (X, X)), ("tree_allclose", (X, Y)),
    ("tree_cast", (X, jnp.bfloat16)), ("tree_cast", (X, None)),
    ("tree_cast_like", (X, jax.tree.map(lambda x: x.astype(jnp.float16), X))),
    ("tree_dtype", ({"a": jnp.ones(2, jnp.float16), "b": jnp.ones(2)}, "highest")),
    ("tree_dtype", ({"a": jnp.ones(2, jnp.float16), "b": jnp.ones(2)}, "lowest")),
    ("tree_dtype", ({"a": jnp.ones(2, jnp.int8), "b": jnp.ones(2)}, "promote")),
    ("tree_dtype", (X,)),
    ("tree_split_key_like", (jax.random.key(0), X)),
    ("tree_random_like", (jax.random.key(1), X)),
    ("tree_random_like", (jax.random.key(2), X, jax.random.uniform, jnp.float16)),
    ("tree_unwrap_random_key_data", ({"k": jax.random.key(3), "x": jnp.ones(2)},)),
    ("tree_update_moment", (X, Y, 0.9, 2)), ("tree_update_moment_per_elem_norm", (C, jax.tree.map(
        jnp.abs, C2), 0.9, 2)), ("tree_update_infinity_moment", (X, Y, 0.9, 1e-3)),
    ("tree_bias_correction", (X, 0.9, 3)),
]


@pytest.mark.parametrize("name,args", MATH, ids=[f"{n}{i}" for i, (n, _) in enumerate(MATH)])
def test_tree_math_matches_optax(name, args):
    mine = getattr(tu, name)(*args)
    with standard_promotion():
        theirs = getattr(otu, name)(*args)
    mine, theirs = otu.tree_unwrap_random_key_data((mine, theirs))
    assert jax.tree.structure(mine) == jax.tree.structure(theirs)
    for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(theirs)):
        if isinstance(b, np.dtype) or isinstance(a, np.dtype):
            assert a == b
            continue
        assert np.asarray(a).dtype == np.asarray(b).dtype, name
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    # the short names of gx.tree are the same functions
    assert getattr(gx.tree, name[len("tree_"):]) is getattr(tu, name)


def test_every_optax_tree_utils_name_is_provided():
    public = {n for n in dir(otu) if n.startswith("tree_") or n == "NamedTupleKey"}
    deprecated = {"tree_scalar_mul", "tree_add_scalar_mul", "tree_l1_norm", "tree_l2_norm",
                  "tree_linf_norm"}
    assert public - deprecated - set(tu.__all__) == set()
    short = {n for n in dir(optax.tree) if not n.startswith("_")}
    assert short - set(gx.tree.__all__) == set()


def _keys(found):
    return sorted((jax.tree_util.keystr(p), jax.tree.structure(v)) for p, v in found)


@pytest.mark.parametrize("key", ["count", "mu", "nu", "ScaleByAdamState", "learning_rate",
                                 "hyperparams", "inner_state", "absent"])
def test_state_helpers_match_optax_on_optax_and_gradxform_states(key):
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    states = [optax.inject_hyperparams(optax.adam)(1e-3).init(params),
              optax.chain(optax.add_noise(0.1, 0.5, 0), optax.adam(1e-3)).init(params),
              gx.adam(1e-3).init(params), gx.inject_hyperparams(gx.adam)(1e-3).init(params),
              gx.chain(gx.clip(1.0), gx.adamw(1e-3)).init(params)]
    for state in states:
        mine, theirs = tu.tree_get_all_with_path(state, key), otu.tree_get_all_with_path(state, key)
        assert _keys(mine) == _keys(theirs), (key, state)
        if len(theirs) == 1:
            assert tu.tree_get(state, key) is otu.tree_get(state, key)
        if len(theirs) > 1:
            with pytest.raises(KeyError, match=f"tree_get: '{key}' occurs {len(theirs)} times"):
                tu.tree_get(state, key)
        if key == "absent":
            assert tu.tree_get(state, key, default=3) == 3
            with pytest.raises(KeyError, match="tree_set: no value at 'absent'"):
                tu.tree_set(state, absent=1)


def test_tree_set_on_gradxform_states_keeps_the_param_spec_and_matches_optax():
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    opt = gx.adam(gx.cosine_decay_schedule(1e-2, 100))
    state = opt.init(params)
    resumed = gx.tree_set(state, count=jnp.asarray(50, jnp.int32))
    assert type(resumed) is type(state) and resumed.spec == state.spec
    assert float(gx.hyperparams(opt, resumed)["learning_rate"]) == pytest.approx(5e-3)
    updates, new = jax.jit(opt.update)(params, resumed, params)   # update accepts it
    assert int(new.count) == 51
    zeros = jax.tree.map(jnp.zeros_like, state.inner[0].mu)
    filt = lambda path, _: "ScaleByAdamState" in jax.tree_util.keystr(path)  # noqa: E731
    assert jax.tree.structure(tu.tree_set(state, filt, mu=zeros)) == jax.tree.structure(
        otu.tree_set(state, filt, mu=zeros))
    ostate = optax.adam(1e-3).init(params)
    a, b = tu.tree_set(ostate, count=7), otu.tree_set(ostate, count=7)
    assert jax.tree.structure(a) == jax.tree.structure(b) and tu.tree_get(a, "count") == 7


def test_optax_tree_map_params_lines_up_with_gradxform_states_and_update_refuses_its_result():
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    opt = gx.chain(gx.clip_by_global_norm(1.0), gx.adamw(1e-3))
    state = opt.init(params)
    specs = jax.tree.map(lambda _: "P", params)
    shardings = otu.tree_map_params(opt, lambda _, s: s, state, specs,
                                    transform_non_params=lambda _: "R")
    is_str = lambda x: isinstance(x, str)  # noqa: E731
    assert jax.tree.structure(shardings, is_leaf=is_str) == jax.tree.structure(state)
    assert shardings.count == "R" and shardings.inner[1][0].mu == {"b": "P", "w": "P"}
    # as a prefix of the real state, as jax.device_put / jit shardings use it
    paired = jax.tree.map(lambda s, x: (s, x.shape), shardings, state, is_leaf=is_str)
    assert paired.inner[1][0].nu["w"] == ("P", (2, 3))
    cast = otu.tree_map_params(opt, lambda p: p.astype(jnp.bfloat16), state)
    with pytest.raises(TypeError, match="this state was built from a params placeholder.*"
                                        "gx.tree_map_params"):
        opt.update(params, cast, params)
    mine = gx.tree_map_params(opt, lambda p: p.astype(jnp.bfloat16), state)
    assert mine.spec == state.spec and mine.inner[1][0].mu["w"].dtype == jnp.bfloat16
    jax.jit(opt.update)(params, mine, params)
    # on optax states gx.tree_map_params is optax's
    ostate = optax.adam(1e-3).init(params)
    a = gx.tree_map_params(optax.adam(1e-3), lambda p: p + 1, ostate)
    b = otu.tree_map_params(optax.adam(1e-3), lambda p: p + 1, ostate)
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_tree_map_params_over_the_conformance_table():
    params = nested_params()
    for entry in all_entries():
        opt = entry.make(0.1)
        state = opt.init(params)
        mine = gx.tree_map_params(opt, lambda p: p + 1, state)
        theirs = otu.tree_map_params(opt, lambda p: p + 1, state)
        assert jax.tree.structure(mine) == jax.tree.structure(state), entry.name
        assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(mine),
                                                        jax.tree.leaves(theirs))), entry.name
        changed = [not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(mine),
                                                            jax.tree.leaves(state))]
        if entry.name == "adam":  # the moments are mapped, the count is not
            assert sum(changed) == 12 and len(changed) == 13


def test_placeholder_states_of_routing_transformations():
    params = {"enc": {"w": jnp.ones((2, 2))}, "head": {"w": jnp.ones(2), "b": jnp.zeros(2)}}
    frozen = {"enc": True, "head": {"w": True, "b": False}}
    opt = gx.partition({"a": gx.adam(1e-3),
                        "b": gx.selective_transform(gx.sgd(0.1, momentum=0.9),
                                                    freeze_mask=frozen)},
                       {"enc": "a", "head": "b"})
    state = opt.init(params)
    mapped = gx.tree_map_params(opt, lambda p: p * 0 + 7, state)
    assert jax.tree.structure(mapped) == jax.tree.structure(state)
    assert float(mapped.inner["b"][0].trace["head"]["b"][0]) == 7.0
