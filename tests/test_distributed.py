"""Data parallelism with pmap and with jit over a mesh, and sharded optimizer state.

Every training mode runs ``STEPS`` steps of SGD with momentum and of Adam on 8 simulated CPU
devices and must reproduce the single-device run (params and state) to rtol 1e-6, with an
absolute floor of 1e-6 times the largest magnitude of each leaf.
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P

import gradxform as gx
from helpers import assert_trees_close, standard_promotion

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "multiprocess"))
import dp_problem as prob  # noqa: E402

N = 8
OPTIMIZERS = prob.optimizers()
IDS = list(OPTIMIZERS)
TOL = {"rtol": 1e-6, "atol": 1e-6, "leaf_scale": True}

_REFERENCE: dict = {}


def reference(name):
    """The single-device run of optimizer ``name`` (cached: it is the same for every mode)."""
    if name not in _REFERENCE:
        xs, ys = prob.make_data()
        _REFERENCE[name] = prob.train_single_device(OPTIMIZERS[name], prob.make_params(), xs, ys)
    return _REFERENCE[name]


def mesh_1d(kind=AxisType.Auto):
    return jax.make_mesh((N,), ("data",), axis_types=(kind,))


def assert_shardings(arrays, shardings):
    """Every array of ``arrays`` has the sharding at the same place in ``shardings``."""
    leaves, treedef = jax.tree.flatten(arrays)
    expected, expected_def = jax.tree.flatten(shardings)
    assert treedef == expected_def
    for a, s in zip(leaves, expected):
        assert a.sharding == s, (a.sharding, s)


# --------------------------------------------------------------------------------------------
# 1. pmap.


@pytest.mark.parametrize("grad_kind", ["pmean", "helper"])
@pytest.mark.parametrize("name", IDS)
def test_pmap_data_parallel_matches_single_device(name, grad_kind):
    tx = OPTIMIZERS[name]
    params = prob.make_params()
    xs, ys = prob.make_data()
    # [device, step, local batch, ...]
    split = lambda a: np.moveaxis(a.reshape(a.shape[0], N, -1, *a.shape[2:]), 1, 0)  # noqa: E731

    if grad_kind == "pmean":
        def grad_fn(p, x, y):
            return jax.lax.pmean(jax.grad(prob.loss)(p, x, y), "data")
    else:
        grad_fn = gx.data_parallel_grad(prob.loss, "data")

    def train(params, state, xs, ys):
        def body(carry, batch):
            p, s = carry
            u, s = tx.update(grad_fn(p, *batch), s, p)
            return (gx.apply_updates(p, u), s), None

        return jax.lax.scan(body, (params, state), (xs, ys))[0]

    replicate = lambda t: jax.tree.map(lambda a: jnp.broadcast_to(a, (N, *a.shape)), t)  # noqa: E731
    out = jax.pmap(train, axis_name="data")(replicate(params), replicate(tx.init(params)),
                                            split(xs), split(ys))
    for leaf in jax.tree.leaves(out):  # every device holds the same params and state
        np.testing.assert_array_equal(np.asarray(leaf), np.broadcast_to(leaf[0], leaf.shape))
    assert_trees_close(jax.tree.map(lambda a: a[0], out), reference(name), **TOL,
                       what=f"pmap {name}")


# --------------------------------------------------------------------------------------------
# 2. jit over a mesh: batch sharded over "data", params replicated.


def _train_jit(tx, params, state, xs, ys, param_sh, state_sh, data_sh):
    def train(params, state, xs, ys):
        def body(carry, batch):
            p, s = carry
            u, s = tx.update(jax.grad(prob.loss)(p, *batch), s, p)
            return (gx.apply_updates(p, u), s), None

        return jax.lax.scan(body, (params, state), (xs, ys))[0]

    xs, ys = jax.device_put(xs, data_sh), jax.device_put(ys, data_sh)
    return jax.jit(train, out_shardings=(param_sh, state_sh))(params, state, xs, ys)


@pytest.mark.parametrize("kind", [AxisType.Auto, AxisType.Explicit], ids=["auto", "explicit"])
@pytest.mark.parametrize("name", IDS)
def test_jit_sharded_batch_matches_single_device(name, kind):
    tx = OPTIMIZERS[name]
    mesh = mesh_1d(kind)
    replicated = NamedSharding(mesh, P())
    params = jax.device_put(prob.make_params(), replicated)
    state = gx.init_sharded(tx, params)
    state_sh = gx.state_shardings(tx, params)
    for leaf in jax.tree.leaves(state):  # the state comes out with the params' shardings
        assert leaf.sharding == replicated
    xs, ys = prob.make_data()
    params, state = _train_jit(tx, params, state, xs, ys,
                               jax.tree.map(lambda _: replicated, params), state_sh,
                               NamedSharding(mesh, P(None, "data")))
    for leaf in jax.tree.leaves((params, state)):
        assert leaf.sharding == replicated
    assert_trees_close((params, state), reference(name), **TOL, what=f"jit {name}")


def test_plain_jit_init_ignores_the_params_sharding():
    """The trap init_sharded avoids: jit(tx.init) puts the whole state on one device."""
    mesh = mesh_1d()
    params = jax.device_put(prob.make_params(), NamedSharding(mesh, P()))
    plain = jax.jit(gx.adam(0.1).init)(params)
    assert {type(leaf.sharding) for leaf in jax.tree.leaves(plain)} == {SingleDeviceSharding}
    placed = gx.init_sharded(gx.adam(0.1), params)
    assert all(leaf.sharding == NamedSharding(mesh, P()) for leaf in jax.tree.leaves(placed))


# --------------------------------------------------------------------------------------------
# 3. ZeRO-1: state sharded along "data", independently of the params.

# The expected partition specs, written out for this problem's shapes: w1 [8, 16], b1 [16],
# w2 [16, 4], b2 [4], scale [].
ZERO_REPLICATED_PARAMS = {  # mesh data=8, params replicated
    "w1": P("data"), "b1": P("data"), "w2": P("data"), "b2": P(), "scale": P(),
}
ZERO_SHARDED_PARAMS = {  # mesh data=4 x model=2, params sharded over "model"
    "params": {"w1": P(None, "model"), "b1": P("model"), "w2": P("model"), "b2": P(),
               "scale": P()},
    "state": {"w1": P("data", "model"), "b1": P("model"), "w2": P("model", "data"),
              "b2": P("data"), "scale": P()},
}


def _state_param_specs(state):
    """The specs of the moment leaves of ``state``, keyed by param name; and the count's."""
    found = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        key = path[-1].key if isinstance(path[-1], jax.tree_util.DictKey) else "count"
        found.setdefault(key, set()).add(leaf.sharding.spec)
    return found


@pytest.mark.parametrize("layout", ["replicated", "sharded"])
@pytest.mark.parametrize("name", IDS)
def test_zero1_state_matches_single_device(name, layout):
    tx = OPTIMIZERS[name]
    if layout == "replicated":
        mesh = mesh_1d()
        param_specs = jax.tree.map(lambda _: P(), prob.make_params())
        expected = ZERO_REPLICATED_PARAMS
    else:
        mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
        param_specs, expected = ZERO_SHARDED_PARAMS["params"], ZERO_SHARDED_PARAMS["state"]
    param_sh = jax.tree.map(lambda s: NamedSharding(mesh, s), param_specs)
    # The state is created from shapes alone, directly sharded.
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                            prob.make_params(), param_sh)
    state = gx.init_sharded(tx, abstract, zero_axis="data")
    state_sh = gx.state_shardings(tx, abstract, zero_axis="data")
    found = _state_param_specs(state)
    for key, spec in expected.items():
        assert found[key] == {spec}, (key, found[key])
    if "count" in found:
        assert found["count"] == {P()}
    assert_shardings(state, state_sh)
    params = jax.device_put(prob.make_params(), param_sh)
    xs, ys = prob.make_data()
    params, state = _train_jit(tx, params, state, xs, ys, param_sh, state_sh,
                               NamedSharding(mesh, P(None, "data")))
    assert_shardings((params, state), (param_sh, state_sh))
    assert_trees_close((params, state), reference(name), **TOL, what=f"ZeRO-1 {name}")


# --------------------------------------------------------------------------------------------
# state_shardings and init_sharded: the rules and the errors.


def _mesh_params():
    mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    specs = {"w": P(None, "model"), "v": P(), "s": P()}
    params = {"w": jnp.ones((8, 6)), "v": jnp.ones((6,)), "s": jnp.ones(())}
    return mesh, specs, params


def test_state_shardings_from_partition_specs():
    mesh, specs, params = _mesh_params()
    tx = gx.chain(gx.clip_by_global_norm(1.0), gx.adam(0.1))
    out = gx.state_shardings(tx, params, specs)
    assert jax.tree.structure(out) == jax.tree.structure(jax.eval_shape(tx.init, params))
    adam = out.inner[1][0]
    assert adam.mu == {"w": P(None, "model"), "v": P(), "s": P()}
    assert out.count == P()
    zero = gx.state_shardings(tx, params, specs, zero_axis="data", mesh=mesh)
    zadam = zero.inner[1][0]
    # w [8, 6]: dim 0 is free and 4 divides 8; v [6]: 4 does not divide 6, stays replicated.
    assert zadam.mu == {"w": P("data", "model"), "v": P(), "s": P()}
    assert zadam.nu == zadam.mu


def test_state_shardings_mirror_only_leaves_of_the_same_shape():
    mesh, specs, params = _mesh_params()
    sh = jax.tree.map(lambda s: NamedSharding(mesh, s), specs)
    # A state leaf of another shape than any param (a per-leaf scalar) is replicated.
    tx = gx.stateless(lambda u, p: u)
    out = gx.state_shardings(gx.chain(tx, gx.sgd(0.1, momentum=0.5)), params, sh)
    assert out.inner[1][0].trace["w"] == sh["w"]


class _row_stats(gx.GradientTransformation):
    """A stand-in for factored statistics: one vector per leaf, of the leaf's first dimension."""

    def init_state(self, params):
        return jax.tree.map(lambda p: jnp.zeros(p.shape[:1], p.dtype), params)

    def apply(self, updates, state, params, step):
        return updates, state


def test_state_shardings_other_shapes_mirror_nothing():
    mesh = jax.make_mesh((N,), ("data",), axis_types=(AxisType.Auto,))
    params = {"a": {"w": jnp.ones((8, 4))}, "w": jnp.ones((8,))}
    sh = {"a": {"w": NamedSharding(mesh, P(None, "data"))}, "w": NamedSharding(mesh, P("data"))}
    out = gx.state_shardings(_row_stats(), params, sh)
    # ['a']['w'] mirrors the [8, 4] param, not the [8] param at ['w'] whose path also ends it.
    assert out.inner["a"]["w"] == NamedSharding(mesh, P())
    assert out.inner["w"] == sh["w"]
    zero = gx.state_shardings(_row_stats(), params, sh, zero_axis="data")
    assert zero.inner["a"]["w"] == NamedSharding(mesh, P("data"))


def test_state_shardings_masked_state_and_single_device():
    params = {"w": jnp.ones((8, 2)), "b": jnp.ones((2,))}
    tx = gx.masked(gx.adam(0.1), {"w": True, "b": False})
    out = gx.state_shardings(tx, params)  # uncommitted arrays: one device
    dev = params["w"].sharding
    assert all(s == dev for s in jax.tree.leaves(out))
    assert out.inner[0].mu["b"] is None and out.inner[0].mu["w"] == dev


def test_state_shardings_rule_overrides():
    mesh, specs, params = _mesh_params()
    sh = jax.tree.map(lambda s: NamedSharding(mesh, s), specs)

    def rule(path, leaf):
        if any(getattr(k, "name", None) == "nu" for k in path) and leaf.ndim == 2:
            return P("data", "model")
        return None

    out = gx.state_shardings(gx.adam(0.1), params, sh, rule=rule)
    assert out.inner[0].nu["w"] == NamedSharding(mesh, P("data", "model"))
    assert out.inner[0].mu["w"] == sh["w"]
    state = gx.init_sharded(gx.adam(0.1), params, sh, rule=rule)
    assert state.inner[0].nu["w"].sharding.spec == P("data", "model")


def test_init_sharded_from_shapes_equals_init():
    mesh, specs, params = _mesh_params()
    tx = gx.adamw(0.1, weight_decay=0.1)
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)
    state = gx.init_sharded(tx, abstract, specs, mesh=mesh, zero_axis="data")
    expected = tx.init(params)
    assert jax.tree.structure(state) == jax.tree.structure(expected)
    assert_trees_close(state, expected, rtol=0)
    assert state.inner[0].mu["w"].sharding == NamedSharding(mesh, P("data", "model"))


def test_init_sharded_optax_transformations():
    mesh, specs, params = _mesh_params()
    sh = jax.tree.map(lambda s: NamedSharding(mesh, s), specs)
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                            params, sh)
    with standard_promotion():
        state = gx.init_sharded(gx.Foreign(optax.adam(0.1)), abstract, zero_axis="data")
        assert state.inner[0].mu["w"].sharding.spec == P("data", "model")
        assert state.inner[0].count.sharding.spec == P()
        # Prodigy keeps a copy of the initial params: it needs their values.
        prodigy = gx.Foreign(optax.contrib.prodigy())
        with pytest.raises(ValueError, match=r"init_sharded: .*reads the values of the params "
                                             r"\(the state leaves \.inner\.params0"):
            gx.init_sharded(prodigy, abstract)
        # D-Adaptation's state needs only shapes (optax's own init fails on them).
        dadapt = gx.init_sharded(gx.Foreign(optax.contrib.dadapt_adamw()), abstract,
                                 zero_axis="data")
        assert dadapt.inner.grad_sum["w"].sharding.spec == P("data", "model")
        placed = jax.device_put(params, sh)
        state = gx.init_sharded(prodigy, placed, zero_axis="data")
        assert state.inner.params0["w"].sharding.spec == P("data", "model")
        np.testing.assert_array_equal(state.inner.params0["w"], params["w"])


def test_state_shardings_errors():
    mesh, specs, params = _mesh_params()
    tx = gx.adam(0.1)
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)
    with pytest.raises(ValueError, match=r"state_shardings: the param at \['s'\] carries no "
                                         r"sharding"):
        gx.state_shardings(tx, abstract)
    with pytest.raises(ValueError, match="state_shardings: shardings must have the structure"):
        gx.state_shardings(tx, params, {"w": P()})
    with pytest.raises(ValueError, match=r"state_shardings: zero_axis 'batch' is not an axis "
                                         r"of the mesh"):
        gx.state_shardings(tx, params, specs, zero_axis="batch", mesh=mesh)
    with pytest.raises(ValueError, match="state_shardings: zero_axis='data' needs a mesh"):
        gx.state_shardings(tx, params, specs, zero_axis="data")
    with pytest.raises(TypeError, match="state_shardings: tx must be a transformation"):
        gx.state_shardings(lambda p: p, params, specs)
    with pytest.raises(TypeError, match="state_shardings: shardings must be all PartitionSpecs "
                                        "or all shardings"):
        gx.state_shardings(tx, params, {"w": P(), "v": NamedSharding(mesh, P()), "s": P()})
    with pytest.raises(ValueError, match="init_sharded: the shardings are PartitionSpecs; pass "
                                         "mesh="):
        gx.init_sharded(tx, params, specs)


def test_state_shardings_placement_errors():
    mesh, specs, params = _mesh_params()
    tx = gx.adam(0.1)
    other = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    two_meshes = {"w": NamedSharding(mesh, P()), "v": NamedSharding(other, P()),
                  "s": NamedSharding(mesh, P())}
    with pytest.raises(ValueError, match="state_shardings: the params live on 2 different "
                                         "meshes; pass mesh="):
        gx.state_shardings(tx, params, two_meshes)
    with pytest.raises(TypeError, match=r"state_shardings: the sharding of the param at \['s'\] "
                                        r"is a str"):
        gx.state_shardings(tx, params, {"w": P(), "v": P(), "s": "replicated"})
    devices = jax.devices()
    on_two = {"w": jax.device_put(params["w"], devices[0]),
              "v": jax.device_put(params["v"], devices[1]), "s": params["s"]}
    with pytest.raises(ValueError, match="state_shardings: cannot place state leaves that "
                                         "mirror no param"):
        gx.state_shardings(tx, on_two)
    with pytest.raises(ValueError, match=r"state_shardings: rule returned a PartitionSpec for "
                                         r"\.count but there is no mesh"):
        gx.state_shardings(tx, {"w": jnp.ones(3)}, rule=lambda path, leaf: P())
