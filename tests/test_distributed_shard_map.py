"""Training inside ``jax.shard_map``: the data-parallel gradient, updates on local shards,
global reductions with ``axis_name``, and gradient accumulation with data parallelism.

Equality with the single-device run: 20 steps, params and state, rtol 1e-6 with an absolute
floor of 1e-6 times the largest magnitude of each leaf.
"""

from __future__ import annotations

import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradxform as gx
from helpers import assert_trees_close

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "multiprocess"))
import dp_problem as prob  # noqa: E402

N = 8
OPTIMIZERS = prob.optimizers()
IDS = list(OPTIMIZERS)
TOL = {"rtol": 1e-6, "atol": 1e-6, "leaf_scale": True}

_REFERENCE: dict = {}


def reference(name, tx=None):
    if name not in _REFERENCE:
        xs, ys = prob.make_data()
        tx = tx if tx is not None else OPTIMIZERS[name]
        _REFERENCE[name] = prob.train_single_device(tx, prob.make_params(), xs, ys)
    return _REFERENCE[name]


def data_mesh():
    return jax.make_mesh((N,), ("data",), axis_types=(AxisType.Auto,))


def replicated_specs(tree_):
    return jax.tree.map(lambda _: P(), tree_)


# --------------------------------------------------------------------------------------------
# The data-parallel gradient.


def _one_sgd_step(grad_fn, check_vma=True):
    """One plain SGD step (lr 1) in shard_map over "data"; returns the update."""
    mesh = data_mesh()
    params = prob.make_params()
    xs, ys = prob.make_data()
    tx = gx.sgd(1.0)
    specs = replicated_specs(params)

    @jax.jit
    @functools.partial(jax.shard_map, mesh=mesh, in_specs=(specs, P("data"), P("data")),
                       out_specs=specs, check_vma=check_vma)
    def step(params, x, y):
        state = tx.init(params)
        updates, _ = tx.update(grad_fn(params, x, y), state, params)
        return updates

    return step(params, xs[0], ys[0])


def test_naive_pmean_inside_shard_map_gives_n_times_the_gradient():
    """The pmap habit pmean(grad(loss)) is wrong in shard_map; data_parallel_grad is right."""
    params = prob.make_params()
    xs, ys = prob.make_data()
    expected = jax.tree.map(lambda g: -g, jax.grad(prob.loss)(params, xs[0], ys[0]))

    def naive(p, x, y):
        return jax.lax.pmean(jax.grad(prob.loss)(p, x, y), "data")

    assert_trees_close(_one_sgd_step(naive), jax.tree.map(lambda e: N * e, expected), **TOL,
                       what="naive pmean(grad) in shard_map")
    assert_trees_close(_one_sgd_step(gx.data_parallel_grad(prob.loss, "data")), expected,
                       **TOL, what="data_parallel_grad in shard_map")
    # With check_vma=False the per-device gradients are not summed and pmean is right; the
    # helper is right there too.
    assert_trees_close(_one_sgd_step(naive, check_vma=False), expected, **TOL,
                       what="pmean(grad) in shard_map(check_vma=False)")
    assert_trees_close(_one_sgd_step(gx.data_parallel_grad(prob.loss, "data"), False),
                       expected, **TOL, what="data_parallel_grad, check_vma=False")


@pytest.mark.parametrize("context", ["shard_map", "shard_map_no_vma", "pmap"])
def test_data_parallel_value_and_grad_with_aux(context):
    params = prob.make_params()
    xs, ys = prob.make_data()
    x, y = xs[0], ys[0]

    def loss_aux(p, x, y):
        return prob.loss(p, x, y), jnp.sum(x)

    fn = gx.data_parallel_value_and_grad(loss_aux, "data", has_aux=True)
    grad_only = gx.data_parallel_grad(loss_aux, "data", has_aux=True)

    def body(p, x, y):
        (value, aux), grads = fn(p, x, y)
        grads2, aux2 = grad_only(p, x, y)
        return value, grads, grads2, jax.lax.psum(aux, "data"), jax.lax.psum(aux2, "data")

    if context == "pmap":
        split = lambda a: a.reshape(N, -1, *a.shape[1:])  # noqa: E731
        out = jax.pmap(body, axis_name="data", in_axes=(None, 0, 0))(params, split(x), split(y))
        out = jax.tree.map(lambda a: a[0], out)
    else:
        specs = replicated_specs(params)
        out = jax.jit(jax.shard_map(body, mesh=data_mesh(), in_specs=(specs, P("data"), P("data")),
                                    out_specs=P(), check_vma=context == "shard_map"))(params, x, y)
    value, grads, grads2, aux, aux2 = out
    value_ref, grads_ref = jax.value_and_grad(prob.loss)(params, x, y)
    np.testing.assert_allclose(value, value_ref, rtol=1e-6)
    assert_trees_close(grads, grads_ref, **TOL, what=context)
    assert_trees_close(grads2, grads_ref, **TOL, what=context)
    np.testing.assert_allclose(aux, np.sum(x), rtol=1e-5)  # aux stays per device
    np.testing.assert_allclose(aux2, np.sum(x), rtol=1e-5)


def test_data_parallel_grad_argnums_and_errors():
    params = prob.make_params()
    xs, ys = prob.make_data()
    specs = replicated_specs(params)
    fn = gx.data_parallel_grad(lambda x, p, y: prob.loss(p, x, y), "data", argnums=1)
    out = jax.jit(jax.shard_map(fn, mesh=data_mesh(), in_specs=(P("data"), specs, P("data")),
                                out_specs=specs))(xs[0], params, ys[0])
    assert_trees_close(out, jax.grad(prob.loss)(params, xs[0], ys[0]), **TOL)
    with pytest.raises(ValueError, match="data_parallel_grad: axis_name is required"):
        gx.data_parallel_grad(prob.loss, None)
    with pytest.raises(TypeError, match="data_parallel_grad: loss_fn must be callable"):
        gx.data_parallel_grad("loss", "data")


def test_data_parallel_grad_of_params_sharded_over_the_axis():
    """ZeRO-3/FSDP style: params split over "data" and gathered in the loss."""
    params = prob.make_params()
    xs, ys = prob.make_data()
    specs = {"w1": P("data"), "b1": P("data"), "w2": P("data"), "b2": P(), "scale": P()}

    def fsdp_loss(p, x, y):
        full = {k: jax.lax.all_gather(v, "data", tiled=True) if specs[k] != P() else v
                for k, v in p.items()}
        return prob.loss(full, x, y)

    grads = jax.jit(jax.shard_map(gx.data_parallel_grad(fsdp_loss, "data"), mesh=data_mesh(),
                                  in_specs=(specs, P("data"), P("data")),
                                  out_specs=specs))(params, xs[0], ys[0])
    assert_trees_close(grads, jax.grad(prob.loss)(params, xs[0], ys[0]), **TOL)


@pytest.mark.parametrize("name", IDS)
def test_shard_map_data_parallel_matches_single_device(name):
    tx = OPTIMIZERS[name]
    mesh = data_mesh()
    params = prob.make_params()
    xs, ys = prob.make_data()
    specs = replicated_specs(params)
    state = gx.init_sharded(tx, jax.device_put(params, NamedSharding(mesh, P())))
    state_specs = gx.state_shardings(tx, params, specs)
    grad_fn = gx.data_parallel_grad(prob.loss, "data")

    @jax.jit
    @functools.partial(jax.shard_map, mesh=mesh,
                       in_specs=(specs, state_specs, P(None, "data"), P(None, "data")),
                       out_specs=(specs, state_specs))
    def train(params, state, xs, ys):
        def body(carry, batch):
            p, s = carry
            u, s = tx.update(grad_fn(p, *batch), s, p)  # replicated: shapes are global
            return (gx.apply_updates(p, u), s), None

        return jax.lax.scan(body, (params, state), (xs, ys))[0]

    out = train(params, state, xs, ys)
    assert_trees_close(out, reference(name), **TOL, what=f"shard_map data parallel {name}")


# --------------------------------------------------------------------------------------------
# Global reductions over a tree whose leaves are sharded (and some replicated).

# A tree with leaves split over "model" along different dimensions and leaves replicated over
# it (the replicated ones must count once in a global norm, not once per device).
SHARDED_SPECS = {"w": P("model"), "m": P(None, "model"), "v": P("model"), "b": P(), "s": P()}


def sharded_tree(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    shapes = {"w": (16, 3), "m": (3, 8), "v": (8,), "b": (5,), "s": ()}
    return {k: jnp.asarray(scale * rng.normal(size=s), jnp.float32) for k, s in shapes.items()}


# Every transformation that reduces over the whole tree, built with or without the axis name.
# Each entry: (id, factory(axis_name) -> transformation).
GLOBAL_REDUCTIONS = [
    ("clip_by_global_norm", lambda axis: gx.clip_by_global_norm(2.0, axis_name=axis)),
    ("clip+sgd_momentum", lambda axis: gx.chain(gx.clip_by_global_norm(2.0, axis_name=axis),
                                                gx.sgd(0.1, momentum=0.9))),
    ("clip+adam", lambda axis: gx.chain(gx.clip_by_global_norm(2.0, axis_name=axis),
                                        gx.adam(0.01))),
    ("sgd_momentum", lambda axis: gx.sgd(0.1, momentum=0.9)),
    ("adam", lambda axis: gx.adam(0.01)),
]


def _model_mesh():
    return jax.make_mesh((N,), ("model",), axis_types=(AxisType.Auto,))


def _sharded_and_plain(make, poison_step=None):
    """Train 20 steps with the tree sharded over "model" (tx built with the axis name) and
    unsharded (tx without); return both results. ``poison_step`` puts an inf into one shard's
    gradient at that step (only device 0 holds it)."""
    mesh = _model_mesh()
    params = sharded_tree(0)
    rng = np.random.default_rng(1)
    # Gradients whose global norm is above the clipping threshold at some steps, below at others.
    grads = jax.tree.map(lambda p: jnp.asarray(
        rng.normal(size=(20, *p.shape)) * rng.uniform(0.05, 1.0, size=(20,) + (1,) * p.ndim),
        jnp.float32), params)
    if poison_step is not None:
        leaves, treedef = jax.tree.flatten(grads)
        specs = jax.tree.leaves(SHARDED_SPECS, is_leaf=lambda x: isinstance(x, P))
        i = next(k for k, s in enumerate(specs) if any(e is not None for e in s))
        leaves[i] = leaves[i].at[(poison_step,) + (0,) * (leaves[i].ndim - 1)].set(jnp.inf)
        grads = jax.tree.unflatten(treedef, leaves)
    tx_sharded, tx_plain = make("model"), make(None)
    state_specs = gx.state_shardings(tx_sharded, params, SHARDED_SPECS)
    sh = jax.tree.map(lambda s: NamedSharding(mesh, s), SHARDED_SPECS)
    state = gx.init_sharded(tx_sharded, jax.device_put(params, sh))
    grad_specs = jax.tree.map(lambda s: P(None, *s), SHARDED_SPECS)

    @jax.jit
    @functools.partial(jax.shard_map, mesh=mesh,
                       in_specs=(SHARDED_SPECS, state_specs, grad_specs),
                       out_specs=(SHARDED_SPECS, state_specs, grad_specs))
    def sharded(params, state, grads):
        def body(carry, g):
            p, s = carry
            u, s = gx.update_shards(tx_sharded, g, s, p)
            return (gx.apply_updates(p, u), s), u

        (p, s), us = jax.lax.scan(body, (params, state), grads)
        return p, s, us

    @jax.jit
    def plain(params, grads):
        def body(carry, g):
            p, s = carry
            u, s = tx_plain.update(g, s, p)
            return (gx.apply_updates(p, u), s), u

        (p, s), us = jax.lax.scan(body, (params, tx_plain.init(params)), grads)
        return p, s, us

    return sharded(jax.device_put(params, sh), state, grads), plain(params, grads)


@pytest.mark.parametrize("make", [m for _, m in GLOBAL_REDUCTIONS],
                         ids=[i for i, _ in GLOBAL_REDUCTIONS])
def test_global_reductions_on_shards_match_unsharded(make):
    got, expected = _sharded_and_plain(make)
    assert_trees_close(got, expected, **TOL)


FINITE_CHECKS = [
    ("dynamic_loss_scale+adam", lambda axis: gx.dynamic_loss_scale(
        gx.adam(0.01), initial_scale=4.0, growth_interval=3, axis_name=axis)),
    ("skip_non_finite+sgd_momentum", lambda axis: gx.skip_non_finite(
        gx.sgd(0.1, momentum=0.9), axis_name=axis)),
]


@pytest.mark.parametrize("make", [m for _, m in FINITE_CHECKS], ids=[i for i, _ in FINITE_CHECKS])
def test_finite_checks_on_shards_agree_across_devices(make):
    """An overflow in one device's shard must skip the step on every device, as unsharded."""
    (p_sh, s_sh, _), (p_pl, s_pl, _) = _sharded_and_plain(make, poison_step=5)
    assert_trees_close((p_sh, s_sh), (p_pl, s_pl), **TOL)
    # Without the axis name each device decides from its own shard, so the skip counters differ
    # from device to device; shard_map's replication check rejects such a state.
    with pytest.raises(TypeError, match="manual axis types do not match"):
        _sharded_and_plain(lambda axis: make(None), poison_step=5)


def test_global_norm_counts_replicated_leaves_once():
    mesh = _model_mesh()
    tree_ = sharded_tree(3)
    expected = gx.global_norm(tree_)
    norm = jax.jit(jax.shard_map(lambda t: gx.global_norm(t, axis_name="model"), mesh=mesh,
                                 in_specs=(SHARDED_SPECS,), out_specs=P()))(tree_)
    np.testing.assert_allclose(norm, expected, rtol=1e-6)
    # Where JAX does not track replication (check_vma=False, pmap) every leaf must be a shard.
    only_shards = {k: v for k, v in tree_.items() if SHARDED_SPECS[k] != P()}
    specs = {k: SHARDED_SPECS[k] for k in only_shards}
    norm = jax.jit(jax.shard_map(lambda t: gx.global_norm(t, axis_name="model"), mesh=mesh,
                                 in_specs=(specs,), out_specs=P(), check_vma=False))(only_shards)
    np.testing.assert_allclose(norm, gx.global_norm(only_shards), rtol=1e-6)
    stacked = {k: v.reshape(N, -1) for k, v in {"w": tree_["w"], "v": tree_["v"]}.items()}
    norm = jax.pmap(lambda t: gx.global_norm(t, axis_name="model"), axis_name="model")(stacked)
    np.testing.assert_allclose(norm, gx.global_norm(stacked), rtol=1e-6)


def test_tx_update_inside_shard_map_needs_update_shards():
    """The state remembers the global shapes: tx.update on shards says so; update_shards works."""
    mesh = _model_mesh()
    params = sharded_tree(0)
    tx = gx.adam(0.1)
    state = tx.init(params)
    state_specs = gx.state_shardings(tx, params, SHARDED_SPECS)

    def body(update):
        def step(p, s):
            u, s = update(p, s)
            return u, s
        return jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(SHARDED_SPECS, state_specs),
                                     out_specs=(SHARDED_SPECS, state_specs)))

    with pytest.raises(gx.StructureMismatchError,
                       match=r"adam.update: the updates do not match the params this optimizer "
                             r"state was created for \(init\): at \['m'\] the params are "
                             r"float32\[3, 8\] but the updates are float32\[3, 1\]"):
        body(lambda p, s: tx.update(p, s, p))(params, state)
    u, s = body(lambda p, s: gx.update_shards(tx, p, s, p))(params, state)
    u_ref, s_ref = tx.update(params, state, params)
    assert_trees_close((u, s), (u_ref, s_ref), **TOL)
    assert s.spec == state.spec  # the state leaves shard_map with its global spec


def test_update_shards_errors():
    tx = gx.adam(0.1)
    params = {"w": jnp.ones((16, 4)), "b": jnp.ones(3)}
    state = tx.init(params)
    with pytest.raises(gx.StructureMismatchError,
                       match=r"update_shards: at \['w'\] the updates have shape \[3, 4\], which "
                             r"is not a shard of the params' shape \[16, 4\]"):
        gx.update_shards(tx, {"w": jnp.ones((3, 4)), "b": jnp.ones(3)}, state)
    with pytest.raises(gx.StructureMismatchError,
                       match=r"(?s)update_shards: the updates do not match the params .*leaves "
                             r"missing from the updates: \['b'\]"):
        gx.update_shards(tx, {"w": jnp.ones((2, 4))}, state)
    with pytest.raises(TypeError, match="update_shards: state must be the OptState"):
        gx.update_shards(tx, params, state.inner)


# --------------------------------------------------------------------------------------------
# Model parallelism in shard_map: each device holds a shard of the params.

MP_SPECS = {"w1": P(None, "model"), "b1": P("model"), "w2": P("model"), "b2": P(),
            "scale": P()}


def mp_loss(params, x, y):
    """The problem's loss with the hidden units split over "model"."""
    h = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
    out = jax.lax.psum(h @ params["w2"], "model") + params["b2"][None, :]
    return jnp.mean((params["scale"] * out - y) ** 2)


@pytest.mark.parametrize("layout", ["model8", "data4_model2"])
@pytest.mark.parametrize("name", IDS)
def test_model_parallel_shard_map_matches_single_device(name, layout):
    opt = OPTIMIZERS[name]
    tx = gx.chain(gx.clip_by_global_norm(0.5, axis_name="model"), opt)
    ref = reference(f"clip+{name}", gx.chain(gx.clip_by_global_norm(0.5), opt))
    if layout == "model8":
        mesh = _model_mesh()
        data_spec, grad_fn = P(), jax.grad(mp_loss)
    else:
        mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
        data_spec, grad_fn = P(None, "data"), gx.data_parallel_grad(mp_loss, "data")
    params = jax.device_put(prob.make_params(),
                            jax.tree.map(lambda s: NamedSharding(mesh, s), MP_SPECS))
    state = gx.init_sharded(tx, params)
    state_specs = gx.state_shardings(tx, params, MP_SPECS)
    xs, ys = prob.make_data()

    @jax.jit
    @functools.partial(jax.shard_map, mesh=mesh,
                       in_specs=(MP_SPECS, state_specs, data_spec, data_spec),
                       out_specs=(MP_SPECS, state_specs))
    def train(params, state, xs, ys):
        def body(carry, batch):
            p, s = carry
            u, s = gx.update_shards(tx, grad_fn(p, *batch), s, p)
            return (gx.apply_updates(p, u), s), None

        return jax.lax.scan(body, (params, state), (xs, ys))[0]

    out = train(params, state, xs, ys)
    for leaf, spec in zip(jax.tree.leaves(out[0]), jax.tree.leaves(MP_SPECS)):
        assert leaf.sharding.spec == spec
    assert_trees_close(out, ref, **TOL, what=f"model parallel {layout} {name}")


# --------------------------------------------------------------------------------------------
# 6. Gradient accumulation with data parallelism: micro-batches on every device.

MICRO = 4  # micro-batches per device per step


def _accumulate(grad_fn, p, xs, ys):
    """Mean of the gradients of the micro-batches (leading axis of xs, ys), by lax.scan."""
    def body(acc, batch):
        return jax.tree.map(jnp.add, acc, grad_fn(p, *batch)), None

    total, _ = jax.lax.scan(body, jax.tree.map(jnp.zeros_like, p), (xs, ys))
    return jax.tree.map(lambda g: g / jnp.asarray(xs.shape[0], g.dtype), total)


@pytest.mark.parametrize("engine", ["shard_map", "jit"])
@pytest.mark.parametrize("name", IDS)
def test_accumulation_with_data_parallelism_matches_big_batch(name, engine):
    tx = OPTIMIZERS[name]
    mesh = data_mesh()
    params = prob.make_params()
    xs, ys = prob.make_data()
    # [step, device, micro-batch, example, ...] -> [step, micro-batch, device * example, ...]:
    # the global micro-batch m holds micro-batch m of every device.
    regroup = lambda a: a.reshape(a.shape[0], N, MICRO, -1, *a.shape[2:]).swapaxes(1, 2).reshape(  # noqa: E731
        a.shape[0], MICRO, -1, *a.shape[2:])
    mxs, mys = regroup(xs), regroup(ys)
    specs = replicated_specs(params)
    state = gx.init_sharded(tx, jax.device_put(params, NamedSharding(mesh, P())))

    if engine == "shard_map":
        grad_fn = gx.data_parallel_grad(prob.loss, "data")
        state_specs = gx.state_shardings(tx, params, specs)

        @jax.jit
        @functools.partial(jax.shard_map, mesh=mesh,
                           in_specs=(specs, state_specs, P(None, None, "data"),
                                     P(None, None, "data")),
                           out_specs=(specs, state_specs))
        def train(params, state, xs, ys):
            def body(carry, batch):
                p, s = carry
                u, s = tx.update(_accumulate(grad_fn, p, *batch), s, p)
                return (gx.apply_updates(p, u), s), None

            return jax.lax.scan(body, (params, state), (xs, ys))[0]
    else:
        data_sh = NamedSharding(mesh, P(None, None, "data"))
        mxs, mys = jax.device_put(mxs, data_sh), jax.device_put(mys, data_sh)
        rep = NamedSharding(mesh, P())

        @functools.partial(jax.jit, out_shardings=rep)
        def train(params, state, xs, ys):
            def body(carry, batch):
                p, s = carry
                u, s = tx.update(_accumulate(jax.grad(prob.loss), p, *batch), s, p)
                return (gx.apply_updates(p, u), s), None

            return jax.lax.scan(body, (params, state), (xs, ys))[0]

    out = train(params, state, mxs, mys)
    assert_trees_close(out, reference(name), **TOL, what=f"accumulation {engine} {name}")


@pytest.mark.parametrize("name", IDS)
def test_accumulate_wrapper_with_data_parallelism_matches_big_batch(name):
    """gx.accumulate over micro-batches whose examples are split over the devices (jit with a
    sharded batch): every MICRO-th call applies one update, equal to the big-batch step."""
    tx = OPTIMIZERS[name]
    acc_tx = gx.accumulate(tx, every_k=MICRO)
    mesh = data_mesh()
    params = prob.make_params()
    xs, ys = prob.make_data()
    # [step, device * MICRO * example, ...] -> [step * MICRO, device * example, ...]: micro-batch
    # m of a step holds micro-batch m of every device, as in the test above.
    regroup = lambda a: a.reshape(a.shape[0], N, MICRO, -1, *a.shape[2:]).swapaxes(1, 2).reshape(  # noqa: E731
        a.shape[0] * MICRO, -1, *a.shape[2:])
    sh = NamedSharding(mesh, P(None, "data"))
    mxs, mys = jax.device_put(regroup(xs), sh), jax.device_put(regroup(ys), sh)
    rep = NamedSharding(mesh, P())
    params = jax.device_put(params, rep)
    state = gx.init_sharded(acc_tx, params)

    @functools.partial(jax.jit, out_shardings=rep)
    def train(params, state, xs, ys):
        def body(carry, batch):
            p, s = carry
            u, s = acc_tx.update(jax.grad(prob.loss)(p, *batch), s, p)
            return (gx.apply_updates(p, u), s), None

        return jax.lax.scan(body, (params, state), (xs, ys))[0]

    p, s = train(params, state, mxs, mys)
    ref_params, ref_state = reference(name)
    assert_trees_close(p, ref_params, **TOL, what=f"accumulate wrapper {name} params")
    assert_trees_close(s.inner.inner, ref_state.inner, **TOL,
                       what=f"accumulate wrapper {name} inner state")
