"""``reduce_on_plateau``: the scale after every update equals a NumPy reference of torch's
``ReduceLROnPlateau`` (relative threshold on ``|best|``), including negative losses, maximising,
cooldown, a floor and averaging windows; and equals optax's for positive losses (with optax's
patience one higher)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradxform as gx
from helpers import standard_promotion
from reference.plateau import reduce_on_plateau as reference


def _stream(kind, n=120, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    if kind == "positive":
        return 1.0 / (1 + 0.05 * t) + 0.02 * rng.normal(size=n) + 0.05
    if kind == "negative":
        return -5.0 - 2.0 * (1 - np.exp(-t / 20)) + 0.002 * rng.normal(size=n)
    if kind == "flat_negative":
        return np.full(n, -10.0)
    if kind == "accuracy":
        return np.minimum(0.9, 0.5 + 0.01 * t) + 0.003 * rng.normal(size=n)
    raise ValueError(kind)


def _scales(tx, values):
    params = {"x": jnp.zeros(())}

    def body(s, v):
        u, s = tx.update({"x": jnp.ones(())}, s, params, value=v)
        return s, (gx.hyperparams(tx, s)["scale"], u["x"])

    _, (scales, updates) = jax.jit(lambda s, v: jax.lax.scan(body, s, v))(
        tx.init(params), jnp.asarray(values, jnp.float32))
    np.testing.assert_allclose(updates, scales, rtol=1e-7)  # the updates are scaled
    return np.asarray(scales)


CASES = [
    ("positive", {"patience": 3}),
    ("positive_cooldown_floor",
     {"patience": 2, "cooldown": 4, "factor": 0.5, "min_scale": 0.05}),
    ("positive_windows", {"patience": 1, "accumulation_size": 5, "rtol": 1e-3}),
    ("negative", {"patience": 4, "rtol": 1e-3}),
    ("flat_negative", {"patience": 5, "factor": 0.5}),
    ("accuracy", {"patience": 3, "maximize": True, "atol": 1e-3}),
]


@pytest.mark.parametrize("kind,kwargs", CASES, ids=[c[0] for c in CASES])
def test_matches_the_reference(kind, kwargs):
    values = _stream(kind.replace("_cooldown_floor", "").replace("_windows", ""))
    values = np.asarray(values, np.float32).astype(np.float64)  # what the float32 state sees
    got = _scales(gx.reduce_on_plateau(**kwargs), values)
    expected = reference(values, **kwargs)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[-1] < 1.0  # the stream plateaus: some reduction happened


def test_negative_losses_reduce_on_a_plateau():
    # with a threshold of (1 - rtol) * best, a constant negative loss looks like an improvement
    # at every step and the scale never drops; relative to |best| the first value sets the
    # best and every patience + 1 = 3 bad values halve the scale
    got = _scales(gx.reduce_on_plateau(patience=2, factor=0.5), np.full(10, -3.0))
    np.testing.assert_allclose(got, [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125])


def test_matches_optax_on_positive_losses():
    values = np.asarray(_stream("positive", 200, seed=3), np.float32)
    for kwargs in ({"patience": 3},
                   {"patience": 2, "cooldown": 3, "factor": 0.5, "rtol": 1e-3, "atol": 1e-3,
                    "min_scale": 0.01, "accumulation_size": 4}):
        got = _scales(gx.reduce_on_plateau(**kwargs), values)
        ox_kwargs = dict(kwargs, patience=kwargs["patience"] + 1)
        if "rtol" not in ox_kwargs:
            ox_kwargs["rtol"] = 1e-4
        ox = optax.contrib.reduce_on_plateau(**ox_kwargs)
        with standard_promotion():
            def body(state, v, ox=ox):
                _, state = ox.update({"x": jnp.ones(())}, state, value=v)
                return state, state.scale

            _, theirs = jax.jit(lambda s, v: jax.lax.scan(body, s, v))(
                ox.init({"x": jnp.zeros(())}), jnp.asarray(values))
        np.testing.assert_allclose(got, theirs, rtol=1e-6)


@pytest.mark.parametrize("inner", [lambda: gx.adam(0.1), lambda: gx.sgd(0.1, 0.9)],
                         ids=["adam", "sgd"])
def test_composes_after_an_optimizer(inner):
    tx = gx.chain(inner(), gx.reduce_on_plateau(patience=0, factor=0.5))
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    plain = inner()
    plain_state = plain.init(params)
    for t, loss in enumerate([3.0, 2.0, 2.5, 2.5, 2.5]):
        g = {"w": jnp.asarray([1.0, -2.0, 0.5]) * (t + 1)}
        u, state = tx.update(g, state, params, value=jnp.asarray(loss))
        u_plain, plain_state = plain.update(g, plain_state, params)
    scale = float(gx.hyperparams(tx, state)["scale"])
    assert scale == 0.125
    np.testing.assert_allclose(u["w"], scale * u_plain["w"], rtol=1e-6)
    assert float(gx.hyperparams(tx, state)["learning_rate"]) == pytest.approx(0.1)


def test_missing_or_bad_value():
    tx = gx.reduce_on_plateau()
    params = {"x": jnp.zeros(2)}
    with pytest.raises(ValueError, match=r"^reduce_on_plateau: needs the monitored value: call "
                                         r"update\(updates, state, params, value=loss\)"):
        tx.update(params, tx.init(params), params)
    with pytest.raises(ValueError, match=r"^reduce_on_plateau: value must be a scalar, got "
                                         r"shape \(2,\)"):
        tx.update(params, tx.init(params), params, value=jnp.ones(2))


@pytest.mark.parametrize("kwargs,message", [
    ({"factor": 1.0}, "reduce_on_plateau: factor must be in (0, 1), got 1.0"),
    ({"patience": -1}, "reduce_on_plateau: patience must be >= 0, got -1"),
    ({"rtol": 2.0}, "reduce_on_plateau: rtol must be in [0, 1], got 2.0"),
    ({"atol": -1e-3}, "reduce_on_plateau: atol must be >= 0, got -0.001"),
    ({"accumulation_size": 0}, "reduce_on_plateau: accumulation_size must be >= 1, got 0"),
    ({"cooldown": gx.constant_schedule(1)},
     "reduce_on_plateau: cooldown must be a whole number or an array, not a schedule"),
    ({"min_scale": 1.5}, "reduce_on_plateau: min_scale must be in [0, 1], got 1.5"),
])
def test_argument_checks(kwargs, message):
    with pytest.raises((ValueError, TypeError)) as info:
        gx.reduce_on_plateau(**kwargs)
    assert message in str(info.value)
