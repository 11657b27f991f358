"""optax's wrapper names with optax's calls (``MultiSteps``, ``multi_transform``,
``microbatch``), sweeps with ``gx.stack`` (the field that differs, masks given as functions), and
``step_metrics`` (the step as the state counts it, the wrappers' counters)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradxform as gx
from helpers import gradient_stream, max_rel_err, nested_params, standard_promotion


def _scan(opt, apply, params, grads):
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *grads)

    def body(carry, g):
        p, s = carry
        u, s = opt.update(g, s, p)
        p = apply(p, u)
        return (p, s), p

    return jax.jit(lambda p, gs: jax.lax.scan(body, (p, opt.init(p)), gs))(params, stacked)


def test_multisteps_matches_optax(use_grad_mean=True):
    params = nested_params()
    grads = gradient_stream(params, 120)
    mine = gx.MultiSteps(gx.adam(1e-2), every_k_schedule=3, use_grad_mean=use_grad_mean)
    theirs = optax.MultiSteps(optax.adam(1e-2), every_k_schedule=3, use_grad_mean=use_grad_mean)
    (_, s_mine), path_mine = _scan(mine, gx.apply_updates, params, grads)
    with standard_promotion():
        (_, s_theirs), path_theirs = _scan(theirs.gradient_transformation(),
                                           optax.apply_updates, params, grads)
    assert max_rel_err(path_mine, path_theirs) < 2e-6
    assert bool(mine.has_updated(s_mine)) == bool(theirs.has_updated(s_theirs)) is True
    assert mine.gradient_transformation() is mine and mine.inner_opt == gx.adam(1e-2)
    init, update = mine.gradient_transformation()
    state = init(params)
    for t in range(3):
        assert not bool(mine.has_updated(state))
        _, state = jax.jit(update)(grads[t], state, params)
    assert bool(mine.has_updated(state))


def test_multisteps_skip_function_drops_the_micro_batch_and_keeps_the_window():
    params = {"w": jnp.ones(2)}

    def skip_large(updates, gradient_step, params):
        return jnp.max(jnp.abs(updates["w"])) > 10.0, ()

    for use_grad_mean, expected in ((True, [0.0, -1.0, 0.0, -4.0]),
                                    (False, [0.0, -1.0, 0.0, -8.0])):
        opt = gx.MultiSteps(gx.sgd(1.0), 2, use_grad_mean, should_skip_update_fn=skip_large)
        state = opt.init(params)
        out = []
        for g in (1.0, 100.0, 3.0, 5.0):
            u, state = opt.update({"w": jnp.full(2, g)}, state, params)
            out.append(float(u["w"][0]))
        assert out == expected   # the skipped 100 is dropped; the windows end at 1 and 3
    with pytest.raises(TypeError, match="every_k_schedule must be a whole number"):
        gx.MultiSteps(gx.sgd(1.0), lambda step: 2)


def test_multi_transform_matches_optax():
    params = nested_params()
    grads = gradient_stream(params, 100)
    labels = lambda p: jax.tree.map(lambda x: "adam" if jnp.ndim(x) > 1 else "sgd", p)  # noqa
    mine = gx.multi_transform({"adam": gx.adam(1e-2), "sgd": gx.sgd(1e-2, momentum=0.9)},
                              labels)
    theirs = optax.multi_transform({"adam": optax.adam(1e-2),
                                    "sgd": optax.sgd(1e-2, momentum=0.9)}, labels)
    (_, _), path_mine = _scan(mine, gx.apply_updates, params, grads)
    with standard_promotion():
        (_, _), path_theirs = _scan(theirs, optax.apply_updates, params, grads)
    assert max_rel_err(path_mine, path_theirs) < 1e-6
    masked_extra = gx.multi_transform({"a": gx.sgd(1.0)}, "a", mask_compatible_extra_args=True)
    assert masked_extra == gx.partition({"a": gx.sgd(1.0)}, "a", mask_compatible_extra_args=True)


def test_microbatch_matches_optax():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(12, 3)), jnp.float32)
    w = jnp.asarray(rng.normal(size=3), jnp.float32)

    def fun(w, x, *, scale):
        pred = x @ w
        return pred, jnp.sum(pred ** 2) * scale, jax.grad(lambda w: jnp.mean((x @ w) ** 2))(w)

    kinds = optax.microbatching.AccumulationType
    for mine_acc, their_acc, real in [
            (("concat", "sum", "mean"), (kinds.CONCAT, kinds.SUM, kinds.MEAN), None),
            ((gx.microbatching.AccumulationType.CONCAT, "running_mean", "sum"),
             (kinds.CONCAT, kinds.RUNNING_MEAN, kinds.SUM), None),
            ("running_mean", kinds.RUNNING_MEAN, jnp.asarray(2))]:
        if real is not None:  # an output that RUNNING_MEAN can take whole
            f = lambda w, x, *, scale: fun(w, x, scale=scale)[1:]  # noqa: E731
        else:
            f = fun
        mine = gx.microbatch(f, 1, 3, mine_acc, num_real_microbatches=real)(w, x, scale=2.0)
        theirs = optax.microbatch(f, 1, 3, their_acc, num_real_microbatches=real)(w, x,
                                                                                   scale=2.0)
        for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(theirs)):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    whole = fun(w, x, scale=2.0)
    concat, total, mean_grad = gx.microbatch(fun, 1, 4, ("concat", "sum", "mean"))(
        w, x, scale=2.0)
    np.testing.assert_allclose(concat, whole[0], rtol=1e-6)
    np.testing.assert_allclose(total, whole[1], rtol=1e-5)
    np.testing.assert_allclose(mean_grad, whole[2], rtol=1e-5)
    with pytest.raises(ValueError, match="batch size 12 is not a multiple of microbatch_size=5"):
        gx.microbatch(fun, 1, 5)(w, x, scale=1.0)
    assert gx.microbatch(fun, 1, None) is fun


# --------------------------------------------------------------------------------------------
# Sweeps: gx.stack and masks given as functions.


def test_stack_names_the_field_that_differs_and_why():
    with pytest.raises(ValueError, match=r"stack: .*: chain.transforms\[0\].nesterov differs: "
                                         r"False in values\[0\] but True in values\[1\]"):
        gx.stack([gx.adam(1e-3), gx.adam(1e-3, nesterov=True)])
    with pytest.raises(ValueError, match=r"chain.transforms\[1\].learning_rate is 0.001 in "
                                         r"values\[0\] but linear_schedule"):
        gx.stack([gx.adam(1e-3), gx.adam(gx.linear_schedule(1.0, 0.0, 10))])

    def mask_for(depth):
        return gx.masked(gx.adam(1e-3), lambda p: jax.tree.map(lambda x: x.ndim > depth, p))

    with pytest.raises(ValueError, match=r"masked.mask differs: the function captures 'depth', "
                                         r"which differs: 1 and 2"):
        gx.stack([mask_for(1), mask_for(2)])

    class Mask:  # a callable object: compared by identity
        def __call__(self, p):
            return jax.tree.map(lambda x: x.ndim > 1, p)

    with pytest.raises(ValueError, match=r"are callables compared by identity.*gx.by_regex"):
        gx.stack([gx.masked(gx.adam(1e-3), Mask()), gx.masked(gx.adam(1e-3), Mask())])


def test_lambda_masks_stack_and_do_not_recompile():
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    opts = [gx.adamw(lr, weight_decay=1e-2, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
            for lr in (1e-3, 1e-2, 1e-1)]
    stacked = gx.stack(opts)
    states = jax.vmap(lambda o: o.init(params))(stacked)
    updates, _ = jax.vmap(lambda o, s: o.update(params, s, params))(stacked, states)
    assert updates["w"].shape == (3, 2, 3)
    traces = []

    @jax.jit
    def step(opt, state):
        traces.append(1)
        return opt.update(params, state, params)

    for lr in (1e-3, 2e-3, 3e-3):  # a new lambda object each time, the same function
        opt = gx.masked(gx.adam(lr), lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
        step(opt, opt.init(params))
    assert len(traces) == 1
    threshold = 1
    a = gx.by_path(lambda path, x: x.ndim > threshold)
    threshold = 2
    b = gx.by_path(lambda path, x: x.ndim > threshold)
    assert a != b   # the global it reads differs


# --------------------------------------------------------------------------------------------
# step_metrics


def test_step_metrics_counts_steps_as_the_state_and_reports_wrapper_counters():
    params = {"w": jnp.ones(3)}
    opt = gx.dynamic_loss_scale(gx.accumulate(gx.sgd(gx.linear_schedule(1.0, 0.0, 100)), 2),
                                initial_scale=8.0)
    state = opt.init(params)
    rows = []
    for t in range(4):
        grads = {"w": jnp.full(3, jnp.inf if t == 1 else 1.0)}
        updates, new_state = opt.update(grads, state, params)
        rows.append(gx.step_metrics(opt, state, grads, updates))
        state = new_state
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3]
    assert [float(r["loss_scale"]) for r in rows] == [8.0, 8.0, 4.0, 4.0]
    assert [int(r["skipped"]) for r in rows] == [0, 0, 1, 1]
    assert [int(r["dropped"]) for r in rows] == [0, 0, 1, 1]
    assert set(rows[0]) == {"step", "learning_rate", "loss_scale", "skipped", "dropped",
                            "skipped_windows", "grad_norm", "update_norm"}
    assert "skipped" not in gx.step_metrics(opt, state, params, counters=False)
    with pytest.warns(UserWarning):
        both = gx.skip_non_finite(gx.chain(gx.skip_non_finite(gx.sgd(0.1))))
    keys = set(gx.step_metrics(both, both.init(params), params))
    assert {"skipped", "chain.skip_non_finite.skipped"} <= keys
