"""FlatParams: the layout, gradients through ``unflatten``, every optimizer of the conformance
table on flat buffers against the per-leaf run, refusals, shardings, checkpoints, integrations.

Speed is measured by ``benchmarks/bench_flat.py``, never here.
"""

from __future__ import annotations

import functools

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradxform as gx
from helpers import assert_trees_close, gradient_stream, standard_promotion
from registry import all_entries

ENTRIES = all_entries()

#: Registry entries expected to refuse flat params. Every transformation of the library declares
#: how it runs on buffers; ``dpsgd``'s entry wraps it with ``one_example``, a transformation of
#: the test registry that declares nothing, so ``init`` must refuse it by name. An entry refusing
#: unexpectedly (or not refusing when listed) fails the sweep.
REFUSED = {"dpsgd"}


def mixed_params():
    """float32 and bfloat16 leaves, a None leaf, a scalar, a matrix and a 3-D leaf."""
    rng = np.random.default_rng(3)

    def arr(dtype, *shape):
        return jnp.asarray(rng.normal(size=shape), dtype)

    return {"w": arr(jnp.float32, 4, 3), "b": arr(jnp.float32, 3),
            "emb": arr(jnp.bfloat16, 5, 2), "norm": [arr(jnp.bfloat16, 2), None],
            "conv": arr(jnp.float32, 2, 2, 3), "s": arr(jnp.float32)}


def small_params():
    """A matrix (factored, orthogonalised), a vector, a scalar and a None leaf."""
    rng = np.random.default_rng(5)
    return {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
            "b": jnp.asarray(rng.normal(size=3), jnp.float32),
            "s": jnp.asarray(rng.normal(), jnp.float32), "unused": None}


def assert_same_tree(actual, expected):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(e, np.float32))


# --------------------------------------------------------------------------------------------
# The layout.


def test_round_trip_keeps_structure_shapes_and_dtypes():
    params = mixed_params()
    fp = gx.flat_params(params)
    assert isinstance(fp, gx.FlatParams)
    assert set(fp.buffers) == {"float32", "bfloat16"}
    assert fp.buffers["float32"].shape == (12 + 3 + 12 + 1,)
    assert fp.buffers["bfloat16"].dtype == jnp.bfloat16 and fp.buffers["bfloat16"].shape == (12,)
    assert_same_tree(fp.unflatten(), params)
    # the buffer is the leaves raveled in tree order (conv, s come after b in sorted keys)
    f32 = [params[k] for k in sorted(params) if k in ("b", "conv", "s", "w")]
    np.testing.assert_array_equal(np.asarray(fp.buffers["float32"]),
                                  np.concatenate([np.ravel(x) for x in f32]))
    # the layout is static: two flat params of one tree share the tree structure
    assert jax.tree.structure(gx.flat_params(mixed_params())) == jax.tree.structure(fp)
    other = gx.flat_params({**params, "b": jnp.zeros(4, jnp.float32)})
    assert jax.tree.structure(other) != jax.tree.structure(fp)
    assert fp.layout.flatten(params).buffers.keys() == fp.buffers.keys()


def test_group_labels_split_buffers():
    fp = gx.flat_params(mixed_params(), group=gx.by_regex([("^\\['b'\\]|norm", "no_decay")],
                                                           default="decay"))
    assert set(fp.buffers) == {"float32.decay", "float32.no_decay", "bfloat16.decay",
                               "bfloat16.no_decay"}
    assert fp.buffers["float32.no_decay"].shape == (3,)
    assert_same_tree(fp.unflatten(), mixed_params())


def test_integer_leaves_are_refused():
    with pytest.raises(TypeError, match=r"flat_params: the leaf at \['step'\] has dtype int32"):
        gx.flat_params({"w": jnp.zeros(3), "step": jnp.zeros([], jnp.int32)})


def test_layout_flatten_checks_shapes_and_dtypes():
    fp = gx.flat_params(mixed_params())
    bad = {**mixed_params(), "b": jnp.zeros(3, jnp.bfloat16)}
    with pytest.raises(ValueError, match=r"the leaf at \['b'\] is bfloat16\[3\], the flat params "
                                         r"hold float32\[3\]"):
        fp.layout.flatten(bad)


# --------------------------------------------------------------------------------------------
# Gradients: a FlatParams, assembled by one concatenate per buffer.


def _loss(tree):
    return sum(jnp.sum(jnp.sin(x.astype(jnp.float32)) * (i + 1))
               for i, x in enumerate(jax.tree.leaves(tree)))


def test_grad_is_a_flat_params_equal_to_the_per_leaf_gradient():
    params = mixed_params()
    fp = gx.flat_params(params)
    grads = jax.jit(jax.grad(lambda fp: _loss(fp.unflatten())))(fp)
    assert type(grads) is type(fp)
    assert_same_tree(grads.unflatten(), jax.grad(_loss)(params))


def _primitives(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn.primitive.name
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            yield from _primitives(sub)


def _naive_unflatten(fp):
    """Leaves cut by indexing with offsets: the transpose of each slice is a zero-padded
    full-size buffer (the pattern the flat layout avoids)."""
    layout, leaves = fp.layout, [None] * len(fp.layout.shapes)
    for group in layout.groups:
        for i, o, n in zip(group.leaves, group.offsets, group.sizes):
            leaves[i] = fp.buffers[group.name][o:o + n].reshape(layout.shapes[i])
    return layout.treedef.unflatten(leaves)


def test_backward_writes_each_leaf_gradient_once():
    params = {f"layer{i}": {"w": jnp.ones((3, 4)), "b": jnp.ones(4)} for i in range(10)}
    params["emb"] = [jnp.ones((6, 2), jnp.bfloat16), jnp.ones(3, jnp.bfloat16)]
    fp = gx.flat_params(params)
    grad = jax.grad(lambda fp: _loss(fp.unflatten()))
    prims = list(_primitives(jax.make_jaxpr(grad)(fp).jaxpr))
    assert prims.count("concatenate") == len(fp.buffers) == 2
    assert not {"pad", "dynamic_update_slice", "scatter-add", "scatter_add"} & set(prims)
    hlo = jax.jit(grad).lower(fp).as_text()
    assert "stablehlo.concatenate" in hlo   # (lowered in chunks of at most 16 operands)
    assert "stablehlo.pad" not in hlo and "dynamic_update_slice" not in hlo
    # no full-size buffer other than the concatenate's result: nothing adds padded gradients
    full = [line for line in map(str.strip, hlo.splitlines()) if line.startswith("%") and (
        line.endswith(": tensor<160xf32>") or "-> tensor<160xf32>" in line)]
    assert len(full) == 1 and "stablehlo.concatenate" in full[0]
    # the check tells the two apart: slicing by offsets pads one full buffer per leaf
    naive = list(_primitives(jax.make_jaxpr(jax.grad(
        lambda fp: _loss(_naive_unflatten(fp))))(fp).jaxpr))
    assert naive.count("pad") + naive.count("dynamic_update_slice") >= 22


# --------------------------------------------------------------------------------------------
# The conformance table: every optimizer on flat buffers equals the per-leaf run.


def _extra(entry, t):
    extra = {}
    if "value" in entry.extra:
        extra["value"] = jnp.asarray(1.0 + 0.1 * t, jnp.float32)
    if entry.needs_key:
        extra["key"] = jax.random.key(t)
    return extra


def _sum_of_squares(tree):
    return sum(jnp.sum(x * x) for x in jax.tree.leaves(tree))


def _objective(tree):
    """A smooth, non-quadratic objective whose Hessian couples the leaves (so a line search
    backtracks, L-BFGS and BFGS build curvature over several steps and Newton's Hessian is not
    block-diagonal by leaf)."""
    leaves = jax.tree.leaves(tree)
    total = sum(jnp.sum(x) for x in leaves)
    return sum((i + 1) * jnp.sum(x * x + 0.25 * x ** 4) for i, x in enumerate(leaves)) + \
        0.5 * total * total


def _run_both(tx, params, fp, grads, extras, functions=()):
    """``len(grads)`` steps of the per-leaf and of the flat run (eager: small trees share the
    compiled operations across tests).

    ``extras`` holds per-step arrays of ``update``'s keyword arguments; ``functions`` names the
    function arguments: ``obj_fn`` (the loss of the tree, as the optimizers that take it see the
    tree) and ``grad_fn`` (the gradient at other params: of the tree per leaf, of the flat params
    on flat params). With ``value_fn`` (a line search) the gradients are those of
    :func:`_objective` at the current params instead of ``grads``, and ``value=``, ``grad=`` and
    ``value_fn=`` are passed as a line search takes them: of the tree per leaf, of the flat
    params on flat params.
    """
    tree_fns, flat_fns = {}, {}
    if "obj_fn" in functions:
        tree_fns["obj_fn"] = flat_fns["obj_fn"] = _sum_of_squares
    if "grad_fn" in functions:
        tree_fns["grad_fn"] = lambda p, i: jax.grad(_sum_of_squares)(p)
        flat_fns["grad_fn"] = lambda fp, i: jax.grad(
            lambda fp: _sum_of_squares(fp.unflatten()))(fp)

    def body(carry, xs):
        params, state, fp, flat_state = carry
        g, extra = xs
        flat_g = fp.layout.flatten(g)
        if "value_fn" in functions:  # a line search: the objective, its value and gradient
            value, g = jax.value_and_grad(_objective)(params)
            flat_objective = lambda fp: _objective(fp.unflatten())  # noqa: E731
            flat_value, flat_g = jax.value_and_grad(flat_objective)(fp)
            tree_fns.update(value=value, grad=g, value_fn=_objective)
            flat_fns.update(value=flat_value, grad=flat_g, value_fn=flat_objective)
        u, state = tx.update(g, state, params, **extra, **tree_fns)
        fu, flat_state = tx.update(flat_g, flat_state, fp, **extra, **flat_fns)
        return (gx.apply_updates(params, u), state, gx.apply_updates(fp, fu), flat_state), None

    def run(carry, xs):
        for t in range(len(grads)):
            carry, _ = body(carry, jax.tree.map(lambda x, t=t: x[t], xs))
        return carry

    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *grads)
    return run((params, tx.init(params), fp, tx.init(fp)), (stacked, extras))


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_flat_equals_per_leaf(entry):
    params = small_params()
    fp = gx.flat_params(params)
    tx = entry.make()
    try:
        tx.init(fp)
    except gx.FlatUnsupportedError as e:
        assert entry.name in REFUSED, f"{entry.name} refused flat params: {e}"
        assert str(e).startswith(f"{tx.name}.init: ") and "does not declare" in str(e)
        return
    assert entry.name not in REFUSED
    for state in (tx.init(params), tx.init(fp)):  # donation needs distinct buffers
        leaves = jax.tree.leaves(state)
        assert len({id(x) for x in leaves}) == len(leaves), f"{entry.name}: a shared buffer"
    steps = 3
    extras = {}
    if "value" in entry.extra and "value_fn" not in entry.extra:  # else the objective's value
        extras["value"] = jnp.linspace(1.0, 1.2, steps, dtype=jnp.float32)
    if entry.needs_key:
        extras["key"] = jax.random.split(jax.random.key(0), steps)
    params, _, fp, _ = _run_both(tx, params, fp, gradient_stream(params, steps), extras,
                                 entry.extra)
    assert type(fp) is type(gx.flat_params(small_params()))
    assert_trees_close(fp.unflatten(), params, rtol=2e-5, atol=2e-6, leaf_scale=True,
                       what=entry.name)


def test_elementwise_state_is_resident_in_buffers():
    fp = gx.flat_params(mixed_params())
    tx = gx.chain(gx.clip_by_global_norm(1.0), gx.adamw(1e-3, weight_decay=1e-4))
    state = tx.init(fp)
    # count, then mu and nu as one float32 buffer per params buffer (bf16 moments in float32)
    moments = [x for x in jax.tree.leaves(state) if x.ndim]
    assert len(moments) == 4
    assert {x.shape for x in moments} == {(28,), (12,)}
    assert {x.dtype for x in moments} == {jnp.dtype(jnp.float32)}


def test_mixed_dtypes_on_flat_buffers_equal_the_per_leaf_run():
    params = mixed_params()
    tx = gx.chain(gx.clip_by_global_norm(1.0), gx.adamw(1e-2, weight_decay=1e-2))
    fp = gx.flat_params(params)
    state, flat_state = tx.init(params), tx.init(fp)

    @jax.jit
    def step(params, state, fp, flat_state, g):
        u, state = tx.update(g, state, params)
        fu, flat_state = tx.update(fp.layout.flatten(g), flat_state, fp)
        return (gx.apply_updates(params, u), state, gx.apply_updates(fp, fu), flat_state)

    for g in gradient_stream(params, 3):
        params, state, fp, flat_state = step(params, state, fp, flat_state, g)
    assert fp.buffers["bfloat16"].dtype == jnp.bfloat16
    assert_trees_close(fp.unflatten(), params, rtol=1e-2, atol=0)   # bf16 params: one rounding


# --------------------------------------------------------------------------------------------
# Refusals and masks.


class scale_leafwise_undeclared(gx.GradientTransformation):
    """A transformation that declares nothing about flat params."""

    def apply(self, updates, state, params, step):
        return updates, state


def test_an_undeclared_transformation_is_refused_by_name():
    fp = gx.flat_params(mixed_params())
    tx = gx.chain(gx.adam(1e-3), scale_leafwise_undeclared(), name="my_opt")
    with pytest.raises(gx.FlatUnsupportedError,
                       match=r"^my_opt.init: scale_leafwise_undeclared does not declare how it "
                             r"runs on flat params"):
        tx.init(fp)
    tx.init(mixed_params())  # the per-leaf path is unaffected


def test_every_library_transformation_declares_flat_support():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    undeclared = [c.__name__ for c in subclasses(gx.GradientTransformation)
                  if c.__module__.startswith("gradxform") and c.flat_support is None]
    assert undeclared == []


NO_DECAY = gx.by_regex([("^\\['b'\\]|norm|\\['s'\\]", False)], default=True)


def test_weight_decay_mask_splitting_a_buffer_is_refused():
    fp = gx.flat_params(mixed_params())
    with pytest.raises(gx.FlatUnsupportedError,
                       match=r"adamw.init: add_decayed_weights: the mask splits the flat buffer "
                             r"'float32' .*group=<the same mask>"):
        gx.adamw(1e-3, weight_decay=0.1, mask=NO_DECAY).init(fp)


@pytest.mark.parametrize("make", [
    lambda: gx.adamw(1e-2, weight_decay=0.1, mask=NO_DECAY),
    lambda: gx.chain(gx.add_l2_penalty(0.1, mask=NO_DECAY), gx.sgd(1e-2)),
    lambda: gx.adan(1e-2, weight_decay=0.1, mask=NO_DECAY),
], ids=["adamw", "l2", "adan_proximal"])
def test_weight_decay_mask_along_the_groups_equals_the_per_leaf_run(make):
    params = mixed_params()
    fp = gx.flat_params(params, group=NO_DECAY)
    assert len(fp.buffers) == 4
    params, _, fp, _ = _run_both(make(), params, fp, gradient_stream(params, 2), {})
    assert_trees_close(fp.unflatten(), params, rtol=1e-6, atol=0)


def test_masked_partition_and_foreign_run_on_the_leaves():
    import optax

    params = small_params()
    tx = gx.chain(
        gx.partition({"adam": gx.adam(1e-2), "sgd": gx.sgd(1e-2)},
                     gx.by_path(lambda path, x: "adam" if x.ndim > 1 else "sgd")),
        gx.masked(gx.scale(0.5), "b"),
        optax.scale_by_trust_ratio())
    with standard_promotion():  # optax does not run under strict promotion
        params, _, fp, _ = _run_both(tx, params, gx.flat_params(params),
                                     gradient_stream(params, 2), {})
    assert_trees_close(fp.unflatten(), params, rtol=1e-6, atol=0)


def test_minimize_on_flat_params():
    """``minimize`` (the Solver's loop, the line search's stored value and gradient reused) on
    flat params: the objective of the FlatParams, the same iterates as on the tree."""
    params = small_params()
    expected = gx.minimize(_objective, params, "lbfgs", maxiter=30)
    got = gx.minimize(lambda fp: _objective(fp.unflatten()), gx.flat_params(params), "lbfgs",
                      maxiter=30)
    assert type(got.x) is type(gx.flat_params(params))
    assert int(got.num_steps) == int(expected.num_steps) > 5
    assert int(got.num_fun_evals) == int(expected.num_fun_evals)
    assert_trees_close(got.x.unflatten(), expected.x, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Wrappers outside the conformance table: master copies, injected hyperparameters, windows of
# micro-batches, frozen leaves, SVRG. Each inner kind is wrapped once: elementwise (adamw),
# per leaf (lamb: one trust ratio per leaf) and on the leaves (masked: routing by path).


INNER = {
    "elementwise": lambda: gx.chain(gx.clip_by_global_norm(1.0),
                                    gx.adamw(1e-2, weight_decay=1e-2)),
    "each_leaf": lambda: gx.lamb(1e-2),
    "leaves": lambda: gx.chain(gx.masked(gx.scale(0.5), "b"), gx.adam(1e-2)),
}


def _inner_kinds():
    return [pytest.param(make, id=kind) for kind, make in INNER.items()]


@pytest.mark.parametrize("make", _inner_kinds())
def test_master_weights_on_flat_low_precision_params(make):
    params = mixed_params()                      # float32 and bfloat16 buffers
    fp = gx.flat_params(params)
    tx = gx.master_weights(make())
    state = tx.init(fp)
    # one float32 copy, of the bfloat16 buffer only
    master = [x for x in jax.tree.leaves(state.inner.master) if x.ndim]
    assert [(x.shape, x.dtype) for x in master] == [((12,), jnp.dtype(jnp.float32))]
    params, state, fp, flat_state = _run_both(tx, params, fp, gradient_stream(params, 3), {})
    assert fp.buffers["bfloat16"].dtype == jnp.bfloat16
    np.testing.assert_allclose(  # the copies: float32 sums of the same updates
        np.asarray(flat_state.inner.master.buffers["bfloat16"]),
        np.concatenate([np.ravel(state.inner.master[k][0] if k == "norm" else
                                 state.inner.master[k]) for k in ("emb", "norm")]),
        rtol=1e-5, atol=1e-7)
    assert_trees_close(fp.unflatten(), params, rtol=1e-2, atol=0)   # bf16 params: one rounding


@pytest.mark.parametrize("make", _inner_kinds())
def test_inject_hyperparams_on_flat_params(make):
    params = small_params()
    tx = gx.inject_hyperparams(lambda learning_rate: gx.chain(make(), gx.scale(learning_rate)))(
        learning_rate=gx.linear_schedule(1.0, 0.5, 3))
    params, state, fp, flat_state = _run_both(tx, params, gx.flat_params(params),
                                              gradient_stream(params, 3), {})
    assert_trees_close(fp.unflatten(), params, rtol=2e-5, atol=2e-6, leaf_scale=True)
    assert float(flat_state.inner.hyperparams["learning_rate"]) == \
        float(state.inner.hyperparams["learning_rate"])


def test_inject_hyperparams_asks_the_transformation_it_builds():
    def factory(learning_rate):
        return gx.chain(gx.sgd(learning_rate), scale_leafwise_undeclared())

    with pytest.raises(gx.FlatUnsupportedError,
                       match=r"^inject_hyperparams\(factory\).init: scale_leafwise_undeclared does "
                             r"not declare"):
        gx.inject_hyperparams(factory)(learning_rate=0.1).init(gx.flat_params(small_params()))


@pytest.mark.parametrize("make", _inner_kinds())
def test_multi_steps_on_flat_params(make):
    params = small_params()
    tx = gx.MultiSteps(make(), every_k_schedule=2)
    params, _, fp, _ = _run_both(tx, params, gx.flat_params(params),
                                 gradient_stream(params, 4), {})
    assert_trees_close(fp.unflatten(), params, rtol=2e-5, atol=2e-6, leaf_scale=True)


def test_selective_transform_on_flat_params():
    params = small_params()
    tx = gx.selective_transform(gx.adam(1e-2), freeze_mask=r"\['b'\]")
    new, _, fp, _ = _run_both(tx, params, gx.flat_params(params), gradient_stream(params, 2), {})
    np.testing.assert_array_equal(np.asarray(fp.unflatten()["b"]), np.asarray(params["b"]))
    assert_trees_close(fp.unflatten(), new, rtol=1e-6, atol=0)


@pytest.mark.parametrize("option", ["I", "II"])
def test_svrg_on_flat_params(option):
    """``loss_fn`` takes the params as given: the tree per leaf, the FlatParams on flat params."""
    rng = np.random.default_rng(7)
    data = (jnp.asarray(rng.normal(size=(6, 4, 3)), jnp.float32),
            jnp.asarray(rng.normal(size=(6, 4)), jnp.float32))
    params = {"w": jnp.asarray(rng.normal(size=(3,)), jnp.float32),
              "b": jnp.zeros((4,), jnp.float32)}

    def loss(tree, example):
        x, y = example
        return 0.5 * jnp.sum((x @ tree["w"] + tree["b"] - y) ** 2)

    tx = gx.svrg(gx.chain(gx.clip_by_global_norm(5.0), gx.sgd(0.05, momentum=0.5)),
                 snapshot_every=3, option=option)
    run = functools.partial(gx.svrg_run, tx, data=data, key=jax.random.key(2), num_epochs=2,
                            batch_size=2)
    expected = run(loss, params)
    got = run(lambda fp, example: loss(fp.unflatten(), example), gx.flat_params(params))
    assert_trees_close(got.params.unflatten(), expected.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.snapshot_losses, expected.snapshot_losses, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# Values, state and tools around them.


def test_hyperparams_config_and_vmapped_population():
    fp = gx.flat_params(mixed_params())
    opts = gx.stack([gx.adam(lr) for lr in (1e-3, 1e-2, 1e-1)])
    one = gx.adam(1e-3)
    assert gx.from_config(gx.to_config(one)) == one
    state = jax.vmap(lambda o: o.init(fp))(opts)
    assert np.allclose(gx.hyperparams(opts, state)["learning_rate"], [1e-3, 1e-2, 1e-1])
    g = fp.layout.flatten(gradient_stream(mixed_params(), 1)[0])

    def step(opt, state):
        u, state = opt.update(g, state, fp)
        return gx.apply_updates(fp, u), state

    new, _ = jax.jit(jax.vmap(step))(opts, state)
    for i, lr in enumerate((1e-3, 1e-2, 1e-1)):
        single = gx.adam(lr)
        u, _ = single.update(g, single.init(fp), fp)
        expected = gx.apply_updates(fp, u)
        # the stacked decay rates are float32 arrays, not rounded once (see tree.complement)
        assert_trees_close(jax.tree.map(lambda x, i=i: x[i], new), expected, rtol=1e-5, atol=2e-6,
                           leaf_scale=True)


def test_flax_serialization_round_trip_of_flat_state():
    fp = gx.flat_params(mixed_params())
    tx = gx.chain(gx.clip_by_global_norm(1.0), gx.adamw(1e-3, weight_decay=1e-4))
    state = tx.init(fp)
    u, state = tx.update(fp, state, fp)
    fp = gx.apply_updates(fp, u)
    blob = serialization.to_bytes({"params": fp, "opt": state})
    target = {"params": gx.flat_params(mixed_params()), "opt": tx.init(fp)}
    restored = serialization.from_bytes(target, blob)
    assert type(restored["params"]) is type(fp)
    assert jax.tree.structure(restored) == jax.tree.structure({"params": fp, "opt": state})
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves({"params": fp, "opt": state})):
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


def test_orbax_round_trip_of_flat_state(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    fp = gx.flat_params(mixed_params())
    tx = gx.adam(1e-3)
    state = tx.init(fp)
    u, state = tx.update(fp, state, fp)
    tree = {"params": gx.apply_updates(fp, u), "opt": state}
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(tmp_path / "ckpt", tree)
        ckpt.wait_until_finished()
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
        restored = ckpt.restore(tmp_path / "ckpt", abstract)
    assert type(restored["params"]) is type(fp)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(tree)):
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


def test_linen_train_state_with_flat_params():
    from flax import linen as nn
    from flax.training import train_state

    model = nn.Sequential([nn.Dense(8), nn.tanh, nn.Dense(2)])
    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 3)), jnp.float32)
    params = model.init(jax.random.key(0), x)["params"]
    fp = gx.flat_params(params)
    state = train_state.TrainState.create(apply_fn=model.apply, params=fp, tx=gx.adam(1e-2))
    tree_state = train_state.TrainState.create(apply_fn=model.apply, params=params,
                                               tx=gx.adam(1e-2))

    def loss(p):
        return jnp.mean(model.apply({"params": p}, x) ** 2)

    @jax.jit
    def step(state, tree_state):
        g = jax.grad(lambda fp: loss(fp.unflatten()))(state.params)
        tree_g = jax.grad(loss)(tree_state.params)
        return state.apply_gradients(grads=g), tree_state.apply_gradients(grads=tree_g)

    for _ in range(3):
        state, tree_state = step(state, tree_state)
    assert_trees_close(state.params.unflatten(), tree_state.params, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Shardings.


def test_shardings_are_kept_per_group():
    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
    rep, lead = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    params = {"a": jax.device_put(jnp.arange(16.0).reshape(8, 2), lead),
              "b": jax.device_put(jnp.arange(24.0).reshape(8, 3), lead),
              "c": jax.device_put(jnp.ones(5), rep), "d": jax.device_put(jnp.ones(3), rep)}
    fp = gx.flat_params(params)
    assert set(fp.buffers) == {"float32", "float32.1"}
    by_shape = {b.shape: b for b in fp.buffers.values()}
    assert by_shape[(8, 5)].sharding.spec == P("data", None)   # row i: device i's parts
    assert by_shape[(8,)].sharding.is_fully_replicated
    np.testing.assert_array_equal(np.asarray(by_shape[(8, 5)])[1], [2, 3, 3, 4, 5])
    back = fp.unflatten()
    for k in params:
        assert back[k].sharding.is_equivalent_to(params[k].sharding, params[k].ndim)
        np.testing.assert_array_equal(np.asarray(back[k]), np.asarray(params[k]))

    tx = gx.chain(gx.clip_by_global_norm(1.0), gx.adam(1e-2))
    state, flat_state = tx.init(params), tx.init(fp)

    @jax.jit
    def step(fp, state):
        g = jax.grad(lambda fp: _loss(fp.unflatten()))(fp)
        u, state = tx.update(g, state, fp)
        return gx.apply_updates(fp, u), state

    fp, flat_state = step(fp, flat_state)
    assert fp.buffers[[k for k in fp.buffers if fp.buffers[k].ndim == 2][0]].sharding.spec == \
        P("data", None)
    u, state = tx.update(jax.grad(_loss)(params), state, params)
    assert_trees_close(fp.unflatten(), gx.apply_updates(params, u), rtol=1e-6)

    shardings = gx.state_shardings(tx, fp)
    specs = {x.spec for x in jax.tree.leaves(shardings)}
    assert specs == {P(), P("data", None)}
    zero = gx.state_shardings(tx, fp, zero_axis="data")   # the 1-D buffer of 8 splits too
    assert {x.spec for x in jax.tree.leaves(zero)} == {P(), P("data"), P("data", None)}
    sharded = gx.init_sharded(tx, fp, zero_axis="data")
    assert jax.tree.structure(sharded) == jax.tree.structure(flat_state)


def test_unsupported_sharding_is_refused():
    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
    cols = jax.device_put(jnp.ones((2, 8)), NamedSharding(mesh, P(None, "data")))
    with pytest.raises(ValueError, match=r"the leaf at \['w'\] has the sharding .* split along "
                                         r"their leading dimension only"):
        gx.flat_params({"w": cols})


def test_nnx_functional_step_with_flat_params():
    from flax import nnx

    model = nnx.Sequential(nnx.Linear(3, 8, rngs=nnx.Rngs(0)), nnx.Linear(8, 2, rngs=nnx.Rngs(1)))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    fp = gx.flat_params(params)
    tx = gx.adam(1e-2)
    x = jnp.ones((4, 3), jnp.float32)

    def loss(params):
        return jnp.mean(nnx.merge(graphdef, params, rest)(x) ** 2)

    g = jax.grad(lambda fp: loss(fp.unflatten()))(fp)
    u, _ = tx.update(g, tx.init(fp), fp)
    expected_u, _ = tx.update(jax.grad(loss)(params), tx.init(params), params)
    assert_trees_close(gx.apply_updates(fp, u).unflatten(),
                       gx.apply_updates(params, expected_u), rtol=1e-6)


@pytest.mark.parametrize("make", [lambda: gx.lamb(1e-3), lambda: gx.adafactor(1e-3),
                                  lambda: gx.sm3(0.1), lambda: gx.adamw(1e-3)],
                         ids=["lamb", "adafactor", "sm3", "adamw"])
def test_init_from_shapes_equals_init_from_buffers(make):
    """``init`` of flat params given as ``jax.ShapeDtypeStruct`` buffers (to build a state
    without the params, e.g. for its shardings) gives the state ``init`` of the buffers gives,
    also for transformations that run on each leaf on its own."""
    fp = gx.flat_params(small_params())
    shapes = jax.tree.map(lambda b: jax.ShapeDtypeStruct(b.shape, b.dtype), fp)
    tx = make()
    from_shapes, from_buffers = tx.init(shapes), tx.init(fp)
    assert jax.tree.structure(from_shapes) == jax.tree.structure(from_buffers)
    for a, b in zip(jax.tree.leaves(from_shapes), jax.tree.leaves(from_buffers)):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
