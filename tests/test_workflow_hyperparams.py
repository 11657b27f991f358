"""Editing hyperparameters: ``set_hyperparams`` (in the value), ``inject_hyperparams`` (in the
state, optax parity), ``hyperparams_as_arrays``; optax's tuple protocol; Python-number gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradxform as gx
from helpers import gradient_stream, max_rel_err, nested_params, run, standard_promotion

PARAMS = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}


# --------------------------------------------------------------------------------------------
# set_hyperparams


def test_set_hyperparams_finds_fields_inside_chains_and_wrappers():
    opt = gx.chain(gx.clip_by_global_norm(1.0), gx.adamw(1e-3, weight_decay=1e-4))
    new = gx.set_hyperparams(opt, learning_rate=3e-4, weight_decay=1e-2)
    hp = gx.hyperparams(new, new.init(PARAMS))
    assert float(hp["learning_rate"]) == pytest.approx(3e-4)
    assert float(hp["weight_decay"]) == pytest.approx(1e-2)
    assert float(hp["max_norm"]) == 1.0 and float(hp["b1"]) == pytest.approx(0.9)
    assert float(gx.hyperparams(opt, opt.init(PARAMS))["learning_rate"]) == pytest.approx(1e-3)
    paths = gx.set_hyperparams(opt, {"scale_by_adam.b2": 0.95})
    assert float(gx.hyperparams(paths, paths.init(PARAMS))["b2"]) == pytest.approx(0.95)
    # through wrappers, and a schedule replacing a number
    wrapped = gx.ema_params(gx.accumulate(gx.adam(1e-3), every_k=2), decay=0.9)
    sched = gx.cosine_decay_schedule(1e-2, 10)
    new = gx.set_hyperparams(wrapped, learning_rate=sched, decay=0.5, every_k=4)
    assert new.inner.inner.transforms[1].learning_rate == sched
    assert new.decay == 0.5 and new.inner.every_k == 4


def test_set_hyperparams_names_by_label_path_and_reports_ambiguity_and_missing_names():
    groups = gx.partition({"a": gx.adam(1e-3), "b": gx.sgd(0.1)}, {"w": "a", "b": "b"})
    with pytest.raises(ValueError, match=r"'learning_rate' is ambiguous in partition: it names "
                       r"\['a.scale_by_learning_rate.learning_rate', "
                       r"'b.scale_by_learning_rate.learning_rate'\]"):
        gx.set_hyperparams(groups, learning_rate=1.0)
    new = gx.set_hyperparams(groups, {"a.learning_rate": 5.0})
    hp = gx.hyperparams(new, new.init(PARAMS))
    assert float(hp["a.scale_by_learning_rate.learning_rate"]) == 5.0
    assert float(hp["b.scale_by_learning_rate.learning_rate"]) == pytest.approx(0.1)
    with pytest.raises(KeyError, match=r"adam has no hyperparameter 'lr'; its hyperparameters "
                       r"are \['b1', 'b2', 'eps', 'eps_root', 'learning_rate'\]"):
        gx.set_hyperparams(gx.adam(1e-3), lr=1.0)
    with pytest.raises(ValueError, match=r"scale_by_adam: b1 must be in \[0, 1\), got 1.0"):
        gx.set_hyperparams(gx.adam(1e-3), b1=1.0)
    with pytest.raises(TypeError, match=r"adam.replace: 'learning_rate' is a hyperparameter of "
                       r"a transformation inside adam.*gx.set_hyperparams\(opt, learning_rate"):
        gx.adam(1e-3).replace(learning_rate=1e-2)
    opt = gx.adam(1e-3)
    shared = gx.chain(opt, opt)  # the same object twice: each occurrence gets its own value
    new = gx.set_hyperparams(shared, {"adam[0].learning_rate": 1.0, "adam[1].learning_rate": 2.0})
    assert [t.transforms[1].learning_rate for t in new.transforms] == [1.0, 2.0]


def test_set_hyperparams_keeps_arrays_arrays_and_does_not_retrace():
    opt = gx.hyperparams_as_arrays(gx.adam(gx.cosine_decay_schedule(1e-3, 100)))
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(opt))
    new = gx.set_hyperparams(opt, b1=0.8)
    assert isinstance(new.transforms[0].b1, jax.Array) and new.transforms[0].b1.dtype == jnp.float32
    traces = []

    @jax.jit
    def step(opt, state, g):
        traces.append(1)
        return opt.update(g, state, PARAMS)

    state = opt.init(PARAMS)
    for lr in (1e-3, 2e-3, 5e-3):
        opt = gx.set_hyperparams(opt, learning_rate=gx.hyperparams_as_arrays(
            gx.cosine_decay_schedule(lr, 100)), b2=0.99)
        step(opt, state, PARAMS)
    assert len(traces) == 1


# --------------------------------------------------------------------------------------------
# inject_hyperparams


def test_inject_hyperparams_matches_optax_and_takes_edits_in_the_state():
    params = nested_params()
    grads = gradient_stream(params, 100)
    mine = gx.inject_hyperparams(gx.adam)(learning_rate=1e-2, b1=0.8)
    theirs = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2, b1=0.8)
    s_mine, s_theirs = mine.init(params), theirs.init(params)
    assert set(s_mine.hyperparams) == set(s_theirs.hyperparams)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *grads)

    def trajectory(opt, apply, p, s, gs):
        def body(carry, g):
            p, s = carry
            u, s = opt.update(g, s, p)
            p = apply(p, u)
            return (p, s), p
        return jax.lax.scan(body, (p, s), gs)

    run_mine = jax.jit(lambda p, s, gs: trajectory(mine, gx.apply_updates, p, s, gs))
    run_theirs = jax.jit(lambda p, s, gs: trajectory(theirs, optax.apply_updates, p, s, gs))
    first = jax.tree.map(lambda x: x[:50], stacked)
    rest = jax.tree.map(lambda x: x[50:], stacked)
    (p_mine, s_mine), path_mine = run_mine(params, s_mine, first)
    with standard_promotion():
        (p_theirs, s_theirs), path_theirs = run_theirs(params, s_theirs, first)
    worst = max_rel_err(path_mine, path_theirs)
    unedited = gx.tree_set(s_mine, learning_rate=s_mine.hyperparams["learning_rate"])
    p_half = p_mine
    # the optax idiom: edit the dict in the state
    s_mine.hyperparams["learning_rate"] = jnp.asarray(3e-3)
    s_theirs.hyperparams["learning_rate"] = jnp.asarray(3e-3)
    (p_mine, s_mine), path_mine = run_mine(p_mine, s_mine, rest)
    with standard_promotion():
        (p_theirs, s_theirs), path_theirs = run_theirs(p_theirs, s_theirs, rest)
    worst = max(worst, max_rel_err(path_mine, path_theirs))
    _, path_unedited = run_mine(p_half, unedited, rest)  # the edit is what changed the path
    assert max_rel_err(path_mine, path_unedited) > 1e-2
    assert worst < 1e-5, worst
    assert float(s_mine.hyperparams["learning_rate"]) == pytest.approx(3e-3)


def test_inject_hyperparams_schedules_keys_and_functional_edits():
    opt = gx.inject_hyperparams(gx.sgd)(learning_rate=gx.linear_schedule(1.0, 0.0, 10),
                                        momentum=0.9)
    ref = optax.inject_hyperparams(optax.sgd)(learning_rate=optax.linear_schedule(1.0, 0.0, 10),
                                              momentum=0.9)
    state, ref_state = opt.init(PARAMS), ref.init(PARAMS)
    # the factory's numeric arguments (gx.sgd also has torch's dampening)
    assert set(ref_state.hyperparams) == {"learning_rate", "momentum"}
    assert set(state.hyperparams) == {"learning_rate", "momentum", "dampening"}
    for _ in range(3):
        _, state = opt.update(PARAMS, state, PARAMS)
        with standard_promotion():
            _, ref_state = ref.update(PARAMS, ref_state, PARAMS)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(
        float(ref_state.hyperparams["learning_rate"]))
    edited = gx.tree_set(state, momentum=jnp.asarray(0.5))
    assert float(edited.hyperparams["momentum"]) == 0.5 and type(edited) is type(state)
    assert float(gx.hyperparams(opt, edited)["decay"]) == 0.5   # as the inner optimizer sees it
    with pytest.raises(AttributeError, match="keeps no hyperparameters in its state"):
        _ = gx.adam(1e-3).init(PARAMS).hyperparams
    with pytest.raises(ValueError, match=r"static_args \['nope'\] are not arguments of adam"):
        gx.inject_hyperparams(gx.adam, static_args="nope")
    assert gx.inject_stateful_hyperparams(gx.adam)(1e-3).init(PARAMS).hyperparams.keys() == \
        gx.inject_hyperparams(gx.adam)(1e-3).init(PARAMS).hyperparams.keys()


# --------------------------------------------------------------------------------------------
# optax's tuple protocol, Python numbers


def test_transformations_unpack_like_optax_tuples():
    opt = gx.adam(1e-3)
    init, update = opt
    assert init == opt.init and update == opt.update and opt[0] == opt.init
    assert opt[1] == opt.update
    state = init(PARAMS)
    updates, state = update(PARAMS, state, PARAMS)
    assert int(state.count) == 1
    chained = optax.chain(optax.clip(1.0), opt)   # optax unpacks nothing, but zips init/update
    chained.update(PARAMS, chained.init(PARAMS), PARAMS)


def test_python_number_gradients_work():
    opt = gx.adam(0.1)
    state = opt.init(1.0)
    updates, state = opt.update(1.0, state, 1.0)
    assert updates.dtype == jnp.float32 and float(updates) == pytest.approx(-0.1, rel=1e-5)
    ref, ref_state = optax.adam(0.1), optax.adam(0.1).init(1.0)
    with standard_promotion():
        expected, _ = ref.update(1.0, ref_state, 1.0)
    np.testing.assert_allclose(updates, expected, rtol=1e-6)
    tree_state = opt.init({"a": jnp.ones(2, jnp.bfloat16), "s": 2.0})
    u, _ = opt.update({"a": jnp.ones(2, jnp.bfloat16), "s": 3.0}, tree_state)
    assert u["s"].dtype == jnp.float32 and u["a"].dtype == jnp.bfloat16
    with pytest.raises(gx.StructureMismatchError, match="float32.* but the updates are int32"):
        opt.update({"a": jnp.ones(2, jnp.bfloat16), "s": jnp.asarray(3)}, tree_state)


def test_run_helper_with_injected_optimizer_is_jittable_and_vmappable():
    params = nested_params()
    grads = gradient_stream(params, 5)
    opt = gx.inject_hyperparams(gx.adamw)(learning_rate=1e-2, weight_decay=1e-3)
    history = run(opt, params, grads)
    plain = run(gx.adamw(1e-2, weight_decay=1e-3), params, grads)
    assert max_rel_err(history[-1][0], plain[-1][0]) < 1e-5
