"""Sign-based, normalised, layer-wise, memory-light and other optimizers: argument checks,
errors at update time, the PRNG key of noisy SGD, the loss value of Polyak SGD, conventions,
convergence where the conformance table needs a schedule or a vector leaf, and ``axis_name``
inside ``jax.shard_map`` (8 simulated devices)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

import gradxform as gx
from helpers import assert_trees_close, nested_params

# --------------------------------------------------------------------------------------------
# One test per argument check, asserting the message.

BAD_ARGUMENTS = [
    (lambda: gx.sign_sgd(-1.0), "sign_sgd: learning_rate must be >= 0, got -1.0"),
    (lambda: gx.signum(0.1, beta=1.0), "signum: beta must be in [0, 1), got 1.0"),
    (lambda: gx.normalized_sgd(0.1, eps=0.0), "normalized_sgd: eps must be > 0, got 0.0"),
    (lambda: gx.lion(0.1, b1=1.0), "lion: b1 must be in [0, 1), got 1.0"),
    (lambda: gx.lion(0.1, b2=-0.5), "lion: b2 must be in [0, 1), got -0.5"),
    (lambda: gx.lion(0.1, weight_decay=-1.0), "lion: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.lars(0.1, weight_decay=-1.0), "lars: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.lars(0.1, trust_coefficient=-1.0),
     "lars: trust_coefficient must be >= 0, got -1.0"),
    (lambda: gx.lars(0.1, eps=-1.0), "lars: eps must be >= 0, got -1.0"),
    (lambda: gx.lars(0.1, momentum=1.0), "lars: momentum must be in [0, 1), got 1.0"),
    (lambda: gx.lars(0.1, ratio_at_zero_norm=-1.0),
     "lars: ratio_at_zero_norm must be >= 0, got -1.0"),
    (lambda: gx.lars(0.1, -1.0, paper_trust_ratio=True),
     "lars: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.lars(0.1, paper_trust_ratio=True, trust_ratio_mask={"w": True}),
     "lars: paper_trust_ratio=True applies the weight decay and the trust ratio to every leaf"),
    (lambda: gx.lamb(0.1, b1=1.0), "lamb: b1 must be in [0, 1), got 1.0"),
    (lambda: gx.lamb(0.1, b2=1.0), "lamb: b2 must be in [0, 1), got 1.0"),
    (lambda: gx.lamb(0.1, eps=0.0), "lamb: eps must be > 0, got 0.0"),
    (lambda: gx.lamb(0.1, eps_root=-1.0), "lamb: eps_root must be >= 0, got -1.0"),
    (lambda: gx.lamb(0.1, weight_decay=-1.0), "lamb: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.lamb(0.1, ratio_at_zero_norm=-1.0),
     "lamb: ratio_at_zero_norm must be >= 0, got -1.0"),
    (lambda: gx.fromage(-0.1), "fromage: learning_rate must be >= 0, got -0.1"),
    (lambda: gx.fromage(0.1, min_norm=-1.0), "fromage: min_norm must be >= 0, got -1.0"),
    (lambda: gx.novograd(0.1, b1=1.0), "novograd: b1 must be in [0, 1), got 1.0"),
    (lambda: gx.novograd(0.1, b2=1.0), "novograd: b2 must be in [0, 1), got 1.0"),
    (lambda: gx.novograd(0.1, eps=0.0), "novograd: eps must be > 0, got 0.0"),
    (lambda: gx.novograd(0.1, eps_root=-1.0), "novograd: eps_root must be >= 0, got -1.0"),
    (lambda: gx.novograd(0.1, weight_decay=-1.0),
     "novograd: weight_decay must be >= 0, got -1.0"),
    (lambda: gx.adafactor(-0.1), "adafactor: learning_rate must be >= 0, got -0.1"),
    (lambda: gx.adafactor(0.1, decay_rate=-0.8), "adafactor: decay_rate must be >= 0, got -0.8"),
    (lambda: gx.adafactor(0.1, decay_offset=-1), "adafactor: decay_offset must be >= 0, got -1"),
    (lambda: gx.adafactor(0.1, decay_offset=1.5),
     "adafactor: decay_offset must be a whole number, got 1.5"),
    (lambda: gx.adafactor(0.1, clipping_threshold=0.0),
     "adafactor: clipping_threshold must be > 0, got 0.0"),
    (lambda: gx.adafactor(0.1, momentum=1.0), "adafactor: momentum must be in [0, 1), got 1.0"),
    (lambda: gx.adafactor(0.1, weight_decay_rate=-1.0),
     "adafactor: weight_decay_rate must be >= 0, got -1.0"),
    (lambda: gx.adafactor(0.1, eps=0.0), "adafactor: eps must be > 0, got 0.0"),
    (lambda: gx.adafactor(0.1, min_dim_size_to_factor=0),
     "adafactor: min_dim_size_to_factor must be a whole number >= 1, got 0"),
    (lambda: gx.sm3(-0.1), "sm3: learning_rate must be >= 0, got -0.1"),
    (lambda: gx.sm3(0.1, momentum=1.0), "sm3: momentum must be in [0, 1), got 1.0"),
    (lambda: gx.sm3(0.1, b2=0.0), "sm3: b2 must be in (0, 1], got 0.0"),
    (lambda: gx.sm3(0.1, eps=0.0), "sm3: eps must be > 0, got 0.0"),
    (lambda: gx.noisy_sgd(0.1, eta=-1.0), "noisy_sgd: eta must be >= 0, got -1.0"),
    (lambda: gx.noisy_sgd(0.1, gamma=-1.0), "noisy_sgd: gamma must be >= 0, got -1.0"),
    (lambda: gx.polyak_sgd(0.0), "polyak_sgd: max_learning_rate must be > 0, got 0.0"),
    (lambda: gx.polyak_sgd(1.0, scaling=-1.0), "polyak_sgd: scaling must be >= 0, got -1.0"),
    (lambda: gx.polyak_sgd(1.0, f_min=float("nan")), "polyak_sgd: f_min must be finite, got nan"),
    (lambda: gx.polyak_sgd(1.0, eps=-1.0), "polyak_sgd: eps must be >= 0, got -1.0"),
    (lambda: gx.polyak_sgd(1.0, variant="sps++"),
     "polyak_sgd: variant must be one of ('sps', 'sps+'), got 'sps++'"),
    (lambda: gx.scale_by_trust_ratio(min_norm=-1.0),
     "scale_by_trust_ratio: min_norm must be >= 0, got -1.0"),
    (lambda: gx.scale_by_lars(trust_coefficient=-1.0),
     "scale_by_lars: trust_coefficient must be >= 0, got -1.0"),
    (lambda: gx.scale_by_fromage(-1.0), "scale_by_fromage: learning_rate must be >= 0, got -1.0"),
    (lambda: gx.clip_by_block_rms(0.0), "clip_by_block_rms: threshold must be > 0, got 0.0"),
    (lambda: gx.scale_by_param_block_rms(0.0),
     "scale_by_param_block_rms: min_scale must be > 0, got 0.0"),
    (lambda: gx.scale_by_factored_rms(min_dim_size_to_factor=2.5),
     "scale_by_factored_rms: min_dim_size_to_factor must be a whole number >= 1, got 2.5"),
    (lambda: gx.scale_by_normalized(eps=-1.0), "scale_by_normalized: eps must be > 0, got -1.0"),
    (lambda: gx.scale_by_lion(b1=1.5), "scale_by_lion: b1 must be in [0, 1), got 1.5"),
    (lambda: gx.scale_by_lion(mode="soft"),
     "scale_by_lion: mode must be 'hard', 'smooth' or 'refined', got 'soft'"),
    (lambda: gx.scale_by_lion(mode="smooth", smooth_beta=0.0),
     "scale_by_lion: smooth_beta must be > 0, got 0.0"),
    (lambda: gx.scale_by_sm3(b2=1.5), "scale_by_sm3: b2 must be in (0, 1], got 1.5"),
    (lambda: gx.add_noise(eta=-1.0), "add_noise: eta must be >= 0, got -1.0"),
    (lambda: gx.scale_by_polyak(max_learning_rate=-1.0),
     "scale_by_polyak: max_learning_rate must be > 0, got -1.0"),
    (lambda: gx.scale_by_novograd(b1=-0.1), "scale_by_novograd: b1 must be in [0, 1), got -0.1"),
]


@pytest.mark.parametrize("build,message", BAD_ARGUMENTS, ids=[m.split(",")[0]
                                                              for _, m in BAD_ARGUMENTS])
def test_argument_checks(build, message):
    with pytest.raises((ValueError, TypeError)) as info:
        build()
    assert message in str(info.value)


# --------------------------------------------------------------------------------------------
# Errors at init and update time name the optimizer the user called.

COMPLEX = {"z": jnp.ones(3, jnp.complex64)}


@pytest.mark.parametrize("factory", [gx.sign_sgd, gx.signum, gx.lion])
def test_sign_methods_reject_complex_params_naming_the_optimizer(factory):
    with pytest.raises(TypeError, match=f"{factory.__name__}: does not support complex params "
                                        r"\(got complex64 at \['z'\]\)"):
        factory(0.1).init(COMPLEX)


def test_standalone_sign_rejects_complex_updates_naming_itself():
    tx = gx.scale_by_sign()
    state = tx.init({"z": jnp.ones(3)})
    with pytest.raises(TypeError, match="scale_by_sign: does not support complex updates"):
        tx.update(COMPLEX, state.replace(spec=gx.ParamSpec.of(COMPLEX)))


@pytest.mark.parametrize("factory", [gx.lars, gx.lamb, gx.fromage])
def test_layerwise_methods_need_params(factory):
    params = {"w": jnp.ones(3)}
    tx = factory(0.1)
    with pytest.raises(ValueError, match=f"{factory.__name__}: needs the current params"):
        tx.update(params, tx.init(params))


def test_novograd_needs_params_only_for_weight_decay():
    params = {"w": jnp.ones(3)}
    tx = gx.novograd(0.1)
    tx.update(params, tx.init(params))  # no decay: params not needed
    tx = gx.novograd(0.1, weight_decay=0.1)
    with pytest.raises(ValueError, match="novograd: needs the current params"):
        tx.update(params, tx.init(params))


def test_polyak_needs_the_loss_value():
    params = {"w": jnp.ones(3)}
    tx = gx.polyak_sgd()
    state = tx.init(params)
    with pytest.raises(ValueError, match=r"polyak_sgd: value needs the current loss: call "
                                         r"update\(updates, state, params, value=loss\)"):
        tx.update(params, state, params)
    with pytest.raises(ValueError, match=r"polyak_sgd: value must be a scalar loss, got an "
                                         r"array of shape \(3,\)"):
        tx.update(params, state, params, value=jnp.ones(3))


def test_polyak_step_uses_the_value():
    params = {"w": jnp.asarray([3.0, 4.0])}
    grads = {"w": jnp.asarray([3.0, 4.0])}          # |g|^2 = 25
    tx = gx.polyak_sgd(max_learning_rate=10.0, f_min=1.0)
    u, _ = tx.update(grads, tx.init(params), params, value=jnp.float32(6.0))
    np.testing.assert_allclose(u["w"], -(6.0 - 1.0) / 25.0 * np.array([3.0, 4.0]), rtol=1e-6)
    u, _ = tx.update(grads, tx.init(params), params, value=jnp.float32(1001.0))  # capped
    np.testing.assert_allclose(u["w"], -10.0 * np.array([3.0, 4.0]), rtol=1e-6)
    tx = gx.polyak_sgd(None)                         # Polyak's uncapped step
    u, _ = tx.update(grads, tx.init(params), params, value=jnp.float32(1000.0))
    np.testing.assert_allclose(u["w"], -40.0 * np.array([3.0, 4.0]), rtol=1e-6)
    zero = {"w": jnp.zeros(2)}                       # no gradient: no step, no NaN
    u, _ = tx.update(zero, tx.init(params), params, value=jnp.float32(1.0))
    assert np.all(np.asarray(u["w"]) == 0)


def test_polyak_plus_takes_no_ascent_step():
    params = {"w": jnp.ones(2)}
    tx_plus, tx = gx.polyak_sgd(f_min=2.0, variant="sps+"), gx.polyak_sgd(f_min=2.0)
    u_plus, _ = tx_plus.update(params, tx_plus.init(params), params, value=jnp.float32(1.0))
    u, _ = tx.update(params, tx.init(params), params, value=jnp.float32(1.0))
    assert np.all(np.asarray(u_plus["w"]) == 0)
    assert np.all(np.asarray(u["w"]) > 0)            # sps: the negative gap goes uphill


def test_polyak_hyperparams_are_readable():
    tx = gx.polyak_sgd(0.5, 2.0, f_min=0.1)
    values = gx.hyperparams(tx, tx.init({"w": jnp.ones(2)}))
    assert float(values["max_learning_rate"]) == 0.5
    assert float(values["learning_rate"]) == 2.0      # the scaling
    assert float(values["f_min"]) == pytest.approx(0.1)


# --------------------------------------------------------------------------------------------
# noisy SGD: the key is an argument of update.


def test_noisy_sgd_needs_a_key_and_keeps_none():
    params = nested_params()
    tx = gx.noisy_sgd(0.1)
    state = tx.init(params)
    assert jax.tree.leaves(state.inner) == []         # no key hidden in the state
    grads = jax.tree.map(jnp.ones_like, params)
    with pytest.raises(ValueError, match=r"noisy_sgd: key needs a PRNG key: call "
                                         r"update\(updates, state, params, key=key\)"):
        tx.update(grads, state, params)
    with pytest.raises(TypeError, match="noisy_sgd: key must be a jax.random key"):
        tx.update(grads, state, params, key=0)


def test_noisy_sgd_noise_is_a_function_of_the_key():
    params = nested_params()
    grads = jax.tree.map(jnp.zeros_like, params)
    tx = gx.noisy_sgd(1.0, eta=1.0, gamma=0.0)
    state = tx.init(params)
    step = jax.jit(jax.vmap(lambda key: tx.update(grads, state, params, key=key)[0]))
    keys = jax.random.split(jax.random.key(0), 64)
    keys = jnp.concatenate([keys, keys[:1]])          # the last key repeats the first
    batch = step(keys)                                # one vmap over keys
    w = np.asarray(batch["dense"]["w"])
    np.testing.assert_array_equal(w[0], w[-1])        # same key, same noise
    assert not np.allclose(w[0], w[1])                # another key, other noise
    noise = -w[:-1].ravel()                           # sigma = 1, lr = 1
    assert abs(noise.mean()) < 0.1 and abs(noise.std() - 1.0) < 0.1
    raw, _ = tx.update(grads, state, params, key=jax.random.PRNGKey(1))  # raw uint32 keys
    assert np.all(np.isfinite(raw["dense"]["w"]))


def test_noisy_sgd_variance_anneals():
    params = {"w": jnp.zeros(20000)}
    grads = {"w": jnp.zeros(20000)}
    tx = gx.noisy_sgd(1.0, eta=0.5, gamma=0.55)
    state = tx.init(params)
    for t in range(1, 4):
        u, state = tx.update(grads, state, params, key=jax.random.key(t))
        np.testing.assert_allclose(np.var(np.asarray(u["w"])), 0.5 / t**0.55, rtol=0.05)


# --------------------------------------------------------------------------------------------
# Conventions.


def test_lars_denominators_agree_without_weight_decay_and_differ_with_it():
    params = nested_params()
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.3), params)
    for wd, same in ((0.0, True), (0.1, False)):
        a, b = gx.lars(1.0, wd), gx.lars(1.0, wd, paper_trust_ratio=True)
        ua, _ = a.update(grads, a.init(params), params)
        ub, _ = b.update(grads, b.init(params), params)
        close = np.allclose(ua["dense"]["w"], ub["dense"]["w"], rtol=1e-6)
        assert close == same, (wd, ua["dense"]["w"], ub["dense"]["w"])


def test_adafactor_state_is_factored():
    params = {"w": jnp.ones((64, 32)), "c": jnp.ones((3, 40, 50)), "b": jnp.ones(64)}
    state = gx.adafactor(0.1, min_dim_size_to_factor=8).init(params).inner[0]
    assert state.v_row["w"].shape == (32,) and state.v_col["w"].shape == (64,)
    assert state.v_row["c"].shape == (3, 40) and state.v_col["c"].shape == (3, 50)
    assert state.v["w"].shape == (0,) and state.v["b"].shape == (64,)
    unfactored = gx.adafactor(0.1, min_dim_size_to_factor=64).init(params).inner[0]
    assert unfactored.v["w"].shape == (64, 32) and unfactored.v_row["w"].shape == (0,)


def test_adafactor_weight_decay_is_not_multiplied_by_the_learning_rate():
    params = {"w": jnp.full((2, 2), 2.0)}
    grads = {"w": jnp.zeros((2, 2))}
    tx = gx.adafactor(0.01, weight_decay_rate=0.1, multiply_by_parameter_scale=False)
    u, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(u["w"], -0.1 * 2.0, rtol=1e-6)   # -(lr * 0 + wd * theta)


def test_sm3_memory_is_one_vector_per_dimension():
    params = {"w": jnp.ones((30, 40)), "c": jnp.ones((3, 4, 5)), "s": jnp.ones(())}
    mu = gx.sm3(0.1).init(params).inner[0].mu
    assert [m.shape for m in mu["w"]] == [(30,), (40,)]
    assert [m.shape for m in mu["c"]] == [(3,), (4,), (5,)]
    assert [m.shape for m in mu["s"]] == [()]


# --------------------------------------------------------------------------------------------
# Convergence the conformance table cannot show (see tests/registry/sign_layerwise.py).


def _rosenbrock(p):
    x, y = p["xy"][0], p["xy"][1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def _final_loss(tx, params, loss, steps):
    def body(carry, _):
        p, s = carry
        u, s = tx.update(jax.grad(loss)(p), s, p)
        return (gx.apply_updates(p, u), s), None

    (p, _), _ = jax.jit(lambda: jax.lax.scan(body, (params, tx.init(params)), None,
                                             length=steps))()
    return float(loss(p))


@pytest.mark.parametrize("factory,lr", [(gx.sign_sgd, 1e-3), (gx.normalized_sgd, 1e-3)])
def test_fixed_length_steps_converge_on_rosenbrock_with_a_decaying_rate(factory, lr):
    steps = 8000
    params = {"x": jnp.float32(-1.2), "y": jnp.float32(1.0)}

    def loss(p):
        return (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2

    assert _final_loss(factory(lr), params, loss, steps) > 0.05      # the cycle
    assert _final_loss(factory(gx.cosine_decay_schedule(lr, steps)), params, loss, steps) < 1e-2


@pytest.mark.parametrize("factory,lr", [(gx.lars, 1.0), (gx.lamb, 0.03), (gx.fromage, 0.03),
                                        (gx.adafactor, 0.03)])
def test_relative_steps_converge_on_rosenbrock_in_one_leaf(factory, lr):
    steps = 4000
    params = {"xy": jnp.asarray([-1.2, 1.0], jnp.float32)}
    assert _final_loss(factory(gx.cosine_decay_schedule(lr, steps)), params, _rosenbrock,
                       steps) < 1e-2


# --------------------------------------------------------------------------------------------
# axis_name: inside shard_map, with each leaf split along its leading dimension over 8 devices,
# the layer-wise reductions give the unsharded result.

N_DEVICES = 8


def _sharded_params():
    rng = np.random.default_rng(0)

    def arr(*shape):
        return jnp.asarray(rng.normal(size=shape), jnp.float64)

    # w: the split dimension is the largest (Adafactor's column means cross it);
    # v: the split dimension is the smaller one (the row means, and their mean, cross it);
    # c: a 3-d leaf whose split dimension is the largest; b: a vector; s: a replicated scalar.
    return {"w": arr(16, 4), "v": arr(8, 32), "c": arr(8, 3, 5), "b": arr(16), "s": arr()}


def _specs(tree, leading=()):
    return jax.tree.map(lambda x: P(*leading, "x") if x.ndim > len(leading) else P(), tree)


def _train(tx, params, grads):
    def body(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        return (gx.apply_updates(p, u), s), None

    # The first step outside the scan: inside shard_map the zeros of init are replicated
    # ("invariant") while the updated state varies across devices, and a scan carry must keep
    # its type.
    first = jax.tree.map(lambda g: g[0], grads)
    rest = jax.tree.map(lambda g: g[1:], grads)
    carry, _ = body((params, tx.init(params)), first)
    (p, _), _ = jax.lax.scan(body, carry, rest)
    return p


def _run_sharded(tx, params, grads):
    mesh = jax.make_mesh((N_DEVICES,), ("x",), axis_types=(AxisType.Auto,))
    fn = jax.shard_map(lambda p, g: _train(tx, p, g), mesh=mesh,
                       in_specs=(_specs(params), _specs(grads, (None,))),
                       out_specs=_specs(params))
    return jax.jit(fn)(params, grads)


SHARDED = [
    ("lamb", lambda axis: gx.lamb(0.05, weight_decay=0.01, axis_name=axis)),
    ("lars", lambda axis: gx.lars(1.0, 0.01, trust_coefficient=0.02, axis_name=axis)),
    ("lars_paper", lambda axis: gx.lars(1.0, 0.01, trust_coefficient=0.02,
                                        paper_trust_ratio=True, axis_name=axis)),
    ("adafactor", lambda axis: gx.adafactor(0.05, min_dim_size_to_factor=3, axis_name=axis)),
]


@pytest.mark.parametrize("build", [b for _, b in SHARDED], ids=[n for n, _ in SHARDED])
def test_axis_name_gives_the_unsharded_result(build):
    assert len(jax.devices()) >= N_DEVICES
    with jax.enable_x64(True):
        params = _sharded_params()
        rng = np.random.default_rng(1)
        grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=(6,) + p.shape), p.dtype),
                             params)
        whole = jax.jit(lambda p, g: _train(build(None), p, g))(params, grads)
        sharded = _run_sharded(build("x"), params, grads)
        naive = _run_sharded(build(None), params, grads)
    assert_trees_close(sharded, whole, rtol=1e-12, atol=1e-12, what="sharded", leaf_scale=True)
    # Without axis_name each device reduces over its shard only: a different result.
    differs = [not np.allclose(a, b, rtol=1e-6) for a, b in
               zip(jax.tree.leaves(naive), jax.tree.leaves(whole))]
    assert any(differs), "the sharded run without axis_name matched: the test cannot fail"
