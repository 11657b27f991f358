"""Properties every registered optimizer has (the optimizers-as-values thesis and the dtype
policy), checked over the whole conformance table:

* a stack of the same optimizer with different learning rates trains in one ``vmap``;
* the current learning rate (a schedule evaluated at the step) is readable with
  ``gx.hyperparams``;
* ``jax.grad`` of a few steps' loss with respect to the learning rate matches central finite
  differences (float64);
* bfloat16 params: float32 accumulators, bfloat16 updates and params, the loss falls;
* ``None`` leaves and empty trees work;
* complex params are optimised as complex numbers (the update of gradients rotated by a phase
  is the real update rotated by that phase, as ``|g|^2`` moments give), or rejected with an
  error naming the optimizer.
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from helpers import assert_trees_close, gradient_stream, nested_params
from registry import all_entries
from targets import TARGETS

ENTRIES = all_entries()
IDS = [e.name for e in ENTRIES]
QUAD_INIT, QUAD_LOSS = TARGETS["quadratic"]


def _sum_of_squares(params):
    total = jnp.zeros([], jnp.float32)
    for x in jax.tree.leaves(params):
        total = total + jnp.sum(jnp.abs(x) ** 2).astype(jnp.float32)
    return total


def _extra(entry, value, key, loss=_sum_of_squares, grad=None):
    out = {}
    if "value" in entry.extra:
        out["value"] = value
    if entry.needs_key:
        out["key"] = key
    if "obj_fn" in entry.extra:  # the objective, for second-order estimates (Sophia)
        out["obj_fn"] = loss
    if "grad_fn" in entry.extra:  # the gradient at another point (SAM's opaque mode)
        out["grad_fn"] = lambda p, i: jax.tree.map(jnp.conj, jax.grad(loss)(p))
    if "value_fn" in entry.extra:  # the objective, for line searches
        out["value_fn"] = loss
    if "grad" in entry.extra:  # the gradient at the current params, for line searches
        out["grad"] = grad
    return out


def _train(entry, tx, params, loss, steps):
    state = tx.init(params)

    def body(carry, key):
        p, s = carry
        value, g = jax.value_and_grad(loss)(p)
        u, s = tx.update(g, s, p, **_extra(entry, value, key, loss, g))
        return (gx.apply_updates(p, u), s), value

    keys = jax.random.split(jax.random.key(0), steps)
    (params, state), values = jax.lax.scan(body, (params, state), keys)
    return params, state, values


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_vmap_over_learning_rates(entry):
    base = entry.lr["quadratic"]
    lrs = [base * f for f in (0.25, 0.5, 1.0, 2.0)]
    stacked = gx.stack([entry.make(lr) for lr in lrs])
    params = QUAD_INIT(jnp.float32)
    train = jax.jit(lambda tx: _train(entry, tx, params, QUAD_LOSS, 20)[0])
    batched = jax.jit(jax.vmap(train))(stacked)
    for i, lr in enumerate(lrs):
        # Each optimizer alone, passed through jit as a value like the vmapped stack is, so
        # both see float32 hyperparameters (see gradxform._src.tree.complement).
        alone = train(entry.make(lr))
        one = jax.tree.map(operator.itemgetter(i), batched)
        if entry.vmap_atol is None:
            assert_trees_close(one, alone, rtol=1e-6, atol=1e-6, what=f"{entry.name} lr={lr}",
                               leaf_scale=True)
        else:
            assert_trees_close(one, alone, rtol=0, atol=entry.vmap_atol,
                               what=f"{entry.name} lr={lr}")


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_current_learning_rate_is_readable(entry):
    if entry.lr_key is None:
        pytest.skip(f"{entry.name} has no learning rate")
    base = entry.lr["quadratic"]
    schedule = gx.linear_schedule(base, base / 10, 10)
    tx = entry.make(schedule)
    params = QUAD_INIT(jnp.float32)
    _, state, _ = _train(entry, tx, params, QUAD_LOSS, 4)
    values = gx.hyperparams(tx, state)
    assert entry.lr_key in values, f"{entry.name}: keys are {sorted(values)}"
    np.testing.assert_allclose(values[entry.lr_key], float(schedule(4)), rtol=1e-6)


# Entries whose table learning rate sits where the loss after 5 steps is not a smooth,
# non-constant function of it on the quadratic; the meta-gradient is checked at another rate.
META_LR = {
    # DoG's first step moves each leaf by lr * r_eps * |g| / sqrt(|g|^2 + eps): at lr = 1 that
    # equals the initial distance r_eps up to eps, the kink of max(r_eps, |x_1 - x_0|).
    "dog": 0.5,
    # MoMo's step is min(lr, (f - f*) / |d|^2): at lr = 1 the cap never binds on the quadratic
    # (the loss does not depend on lr there); at 0.01 it binds on every step.
    "momo": 0.01,
    # Newton's step on a quadratic with lr = 1 lands on the minimum: the loss after 5 steps is
    # (1 - lr)^10 times the first, whose derivative at lr = 1 is 0.
    "newton": 0.5,
}
# Entries whose final loss does not depend on the learning rate (the gradient checked against
# finite differences is 0, not asserted non-zero): COCOB's bet is invariant to a factor on the
# gradients, which is what its learning_rate is (as in optax).
META_CONSTANT = {"cocob"}


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_meta_gradient_wrt_learning_rate(entry):
    """d(loss after 5 steps)/d(lr) by reverse mode equals central finite differences, in
    float64. An optimizer that stopped the gradient of its learning rate (or got it wrong)
    fails; a finite-only check would pass with a gradient of 0."""
    if entry.lr_key is None or isinstance(entry.lr["quadratic"], gx.Schedule):
        pytest.skip(f"{entry.name}: the learning rate is not a number here")
    with jax.enable_x64(True):
        params = QUAD_INIT(jnp.float64)

        def final_loss(lr):
            p, _, _ = _train(entry, entry.make(lr), params, QUAD_LOSS, 5)
            return QUAD_LOSS(p)

        # One program gives the values for the finite differences and the gradient.
        value_and_grad = jax.jit(jax.value_and_grad(final_loss))
        lr = jnp.float64(META_LR.get(entry.name, entry.lr["quadratic"]))
        value, grad = value_and_grad(lr)
        eps = 1e-6
        central = (value_and_grad(lr + eps)[0] - value_and_grad(lr - eps)[0]) / (2 * eps)
        np.testing.assert_allclose(float(grad), float(central), rtol=1e-5, atol=1e-6,
                                   err_msg=f"{entry.name}: d loss / d lr")
        if entry.name in META_CONSTANT:
            # the loss is the same at other rates: the zero derivative is not a stopped one
            assert abs(float(value_and_grad(lr * 3)[0]) - float(value)) < 1e-9, entry.name
        else:
            assert float(grad) != 0.0, entry.name


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_bfloat16_params(entry):
    params = QUAD_INIT(jnp.bfloat16)
    tx = entry.make(target="quadratic")
    state = tx.init(params)
    for leaf in jax.tree.leaves(state.inner):
        if jnp.issubdtype(leaf.dtype, jnp.floating) and leaf.ndim > 0:
            assert leaf.dtype == jnp.float32, f"{entry.name}: accumulator in {leaf.dtype}"
    value, g = jax.value_and_grad(QUAD_LOSS)(params)
    updates, _ = tx.update(g, state, params,
                         **_extra(entry, value, jax.random.key(0), QUAD_LOSS, g))
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))
    new_params, _, values = _train(entry, tx, params, QUAD_LOSS, 60)
    assert all(p.dtype == jnp.bfloat16 for p in jax.tree.leaves(new_params))
    final = float(QUAD_LOSS(new_params))
    assert np.isfinite(final) and final < float(values[0]), f"{entry.name}: {final}"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_none_leaves_and_empty_trees(entry):
    tx = entry.make(target="quadratic")
    params = nested_params()
    grads = jax.tree.map(jnp.ones_like, params)
    value = jnp.float32(1.0)
    if "value_fn" in entry.extra:  # a line search: value, gradient and objective agree
        value, grads = jax.value_and_grad(_sum_of_squares)(params)
    state = tx.init(params)
    extra = _extra(entry, value, jax.random.key(0), grad=grads)
    updates, state = tx.update(grads, state, params, **extra)
    assert updates["unused"] is None
    assert jax.tree.structure(updates) == jax.tree.structure(params)
    empty_state = tx.init({})
    updates, _ = tx.update({}, empty_state, {}, **extra)
    assert updates == {}


PHASE = np.exp(0.7j)
# Entries that optimise complex params as pairs of reals on purpose: not equivariant to a
# phase (the real and imaginary parts get their own moments). Their complex run must be the
# given real optimizer's run on the pairs (real part, imaginary part) as separate leaves.
REAL_VIEW = {"split_real_and_imaginary": lambda lr: gx.adam(lr)}


def _check_real_view(entry, tx, real_tx, params, grads):
    split = lambda tree: jax.tree.map(lambda x: (jnp.real(x), jnp.imag(x)), tree)  # noqa: E731
    p_cplx, s_cplx = params, tx.init(params)
    p_real, s_real = split(params), real_tx.init(split(params))
    for t, g in enumerate(grads):
        u_cplx, s_cplx = tx.update(g, s_cplx, p_cplx)
        u_real, s_real = real_tx.update(split(g), s_real, p_real)
        p_cplx = gx.apply_updates(p_cplx, u_cplx)
        p_real = gx.apply_updates(p_real, u_real)
        assert_trees_close(split(p_cplx), p_real, rtol=2e-6, atol=2e-6, leaf_scale=True,
                           what=f"{entry.name}: params after step {t + 1}, complex vs pairs")
# Yogi starts its first moment at initial_accumulator_value = 1e-6, a real number, as optax
# does: the rotated run differs from the rotated real run by about 1e-6 / |g| relatively.
COMPLEX_RTOL = {"yogi": 1e-4}


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_complex_params(entry):
    """Complex params are complex numbers, not pairs of reals: with params and gradients
    rotated by a phase (``e^{0.7i}``), the params after each of 4 steps are the real run's
    rotated by the same phase. Dropping or mishandling the imaginary part (``g**2`` for
    ``|g|**2``, real and imaginary moments kept apart) breaks it. Params rather than updates
    are compared: schedule-free updates are differences of iterates, exact to the params'
    rounding only."""
    real_params = {"w": nested_params()["dense"]["w"], "b": nested_params()["blocks"][1][0]}
    grads = gradient_stream(real_params, 4)
    kwargs = dict(entry.kwargs)
    if entry.needs_key and entry.supports_complex:
        kwargs["eta"] = 0.0  # random noise is not rotated with the problem: compare without it
    tx = entry.factory(entry.lr["quadratic"], **kwargs)
    extra = _extra(entry, jnp.float32(3.0), jax.random.key(0))
    rotate = lambda tree: jax.tree.map(  # noqa: E731
        lambda x: (x.astype(jnp.complex64) * jnp.complex64(PHASE)), tree)
    if not entry.supports_complex:
        with pytest.raises((TypeError, ValueError), match=entry.factory.__name__):
            params = rotate(real_params)
            tx.update(rotate(grads[0]), tx.init(params), params, **extra)
        return
    if entry.name in REAL_VIEW:
        _check_real_view(entry, tx, REAL_VIEW[entry.name](entry.lr["quadratic"]),
                         rotate(real_params), [rotate(g) for g in grads])
        return
    p_real, s_real = real_params, tx.init(real_params)
    p_cplx = rotate(real_params)
    s_cplx = tx.init(p_cplx)
    for t, g in enumerate(grads):
        u_real, s_real = tx.update(g, s_real, p_real, **extra)
        u_cplx, s_cplx = tx.update(rotate(g), s_cplx, p_cplx, **extra)
        p_real = gx.apply_updates(p_real, u_real)
        p_cplx = gx.apply_updates(p_cplx, u_cplx)
        rtol = COMPLEX_RTOL.get(entry.name, 2e-6)
        assert_trees_close(p_cplx, rotate(p_real), rtol=rtol, atol=rtol, leaf_scale=True,
                           what=f"{entry.name}: params after step {t + 1}, complex vs rotated "
                                "real")
        moved = np.abs(np.asarray(u_real["w"])) > 0  # ADOPT's first update is zero
        ratio = np.asarray(u_cplx["w"])[moved] / np.asarray(u_real["w"])[moved]
        assert np.all(np.abs(np.angle(ratio) - 0.7) < 1e-2), (
            f"{entry.name}: step {t + 1}, the update is not rotated with the gradient")
