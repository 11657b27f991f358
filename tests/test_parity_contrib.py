"""Parity with ``optax.contrib`` for SAM, COCOB, DoG, DoWG, Mechanic, MoMo, MoMo-Adam, MADGRAD,
Sophia, GaLore, DP-SGD, ACProp, Simplified AdEMAMix and the complex split.

As in ``test_parity_optax.py``: 120 steps on ``helpers.nested_params()`` (dicts, lists, tuples,
a None leaf, a scalar, vectors, a 4x3 and a 2x2 matrix) with a fixed stream of gradients of
varied magnitude; the params after every step and the optimizer state at the end must agree to
rtol 1e-6 in float32, with an absolute floor of 1e-6 times the leaf's largest magnitude over the
run (float64: 1e-12 for the cases in ``F64_CASES``). Both optimizers run in one ``lax.scan``
per case (optax under standard promotion), so the extra arguments each step needs are formed
from optax's state inside the scan:

* ``value``: a loss stream for MoMo; ``obj_fn`` (a quartic loss) and, for Sophia's Hutchinson
  estimator, the sample key optax is about to draw from its own state; ``grad_fn`` for SAM's
  opaque mode;
* DP-SGD: per-example gradients (4 examples, some clipped, some not) and optax's state key,
  which reproduces optax's noise (see ``differentially_private_aggregate``).

Differences from optax, each tested elsewhere (``test_contrib.py``): GaLore's params here have
no ``None`` leaf (optax's GaLore fails on one) and its float64 SVD is float32 in optax (no
float64 case); SAM's transparent mode with ``sync_period=1``; zero-norm guards (``normalize``,
MoMo); the initial point taken at the first update rather than at ``init`` (identical here,
where the params do not change in between).

Run as a script, the module prints the largest error of each case: the largest
``|gradxform - optax| / (|optax| + leaf scale)`` over every step, leaf and entry of the params
and over the final state, the scale of a leaf being its largest magnitude (the test requires
it <= 1e-6 in float32, <= 1e-12 in float64).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib as oc
import pytest

import gradxform as gx
from helpers import gradient_stream, nested_params, standard_promotion

STEPS = 120
BATCH = 4  # examples per DP-SGD step


def quartic(params):
    """A smooth loss with a non-constant Hessian, for Sophia's estimator and SAM's gradients."""
    leaves = [x for x in jax.tree.leaves(params)]
    return sum(jnp.sum(0.5 * x * x + 0.05 * x**4 + 0.1 * x) for x in leaves)


def value_stream(t):
    """Loss values for MoMo: positive, around 1 (above the lower bounds used)."""
    return 1.0 + 0.5 * jnp.sin(0.3 * t)


def without_none(dtype):
    """``nested_params`` without its None leaf (optax's GaLore fails on one)."""
    params = nested_params(dtype)
    del params["unused"]
    return params


def with_3d(dtype):
    params = without_none(dtype)
    rng = np.random.default_rng(7)
    params["conv"] = jnp.asarray(rng.normal(size=(3, 4, 5)), dtype)
    return params


def complex_params(dtype):
    """Complex and real leaves (the complex split's input)."""
    rng = np.random.default_rng(3)
    cdtype = jnp.complex128 if dtype == jnp.float64 else jnp.complex64
    return {"z": jnp.asarray(rng.normal(size=(3, 2)) + 1j * rng.normal(size=(3, 2)), cdtype),
            "w": jnp.asarray(rng.normal(size=(4,)), dtype),
            "s": (jnp.asarray(1j * rng.normal(), cdtype),)}


def complex_stream(params, steps, seed=1):
    rng = np.random.default_rng(seed)

    def draw(p):
        shape = np.shape(p)
        if jnp.iscomplexobj(p):
            return jnp.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape), p.dtype)
        return jnp.asarray(rng.normal(size=shape), p.dtype)

    return [jax.tree.map(lambda p: 10.0 ** rng.uniform(-2, 1) * draw(p), params)
            for _ in range(steps)]


def per_example_stream(params, steps, seed=1):
    """Per-example gradients: each leaf gains a leading axis of ``BATCH`` examples, of norms
    spread around the clipping norm 1."""
    rng = np.random.default_rng(seed)

    def one_step(scales):
        return jax.tree.map(
            lambda p: jnp.asarray(scales.reshape((BATCH,) + (1,) * np.ndim(p))
                                  * rng.normal(size=(BATCH,) + np.shape(p)) / 3, p.dtype),
            params)

    return [one_step(10.0 ** rng.uniform(-1.5, 1, size=BATCH)) for _ in range(steps)]


def _ox_key(state):
    """The key (or sample key) optax is about to use, found in its state."""
    for s in jax.tree.leaves(state, is_leaf=lambda x: hasattr(x, "rng_key")
                             or isinstance(x, oc.HutchinsonState)):
        if isinstance(s, oc.HutchinsonState):
            return jax.random.split(s.key)[1]
        if hasattr(s, "rng_key"):
            return s.rng_key
    raise AssertionError("no key in optax's state")


# -- state extractors: (gradxform state, optax state) -> (mine, theirs) -----------------------

def no_state(g, o):
    return (), ()


def fields(i_gx, i_ox, *names, ox_names=None):
    def pick(g, o):
        mine = g.inner[i_gx] if i_gx is not None else g.inner
        theirs = o[i_ox] if i_ox is not None else o
        return ([getattr(mine, n) for n in names],
                [getattr(theirs, n) for n in (ox_names or names)])
    return pick


def mechanic_state(g, o):
    mine, theirs = g.inner, o
    return ([mine.r, mine.m, mine.v, mine.s, mine.x0, mine.base_optimizer_state[0].mu],
            [theirs.r, theirs.m, theirs.v, theirs.s, theirs.x0,
             theirs.base_optimizer_state[0].mu])


def sophia_state(g, o):
    return (g.inner[0].mu, g.inner[0].nu), (o[0].mu, o[0].nu)


def galore_state(g, o):
    mine, theirs = g.inner[0], o[0]
    projectors = [p for p in jax.tree.leaves(theirs.projector) if p.size]
    return ((jax.tree.leaves(mine.projector), mine.base_optimizer_state.mu,
             mine.base_optimizer_state.nu),
            (projectors, theirs.base_optimizer_state.mu, theirs.base_optimizer_state.nu))


def sam_transparent_state(g, o):
    mine, theirs = g.inner, o
    return (mine.cache, mine.opt_state[0].trace), (theirs.cache, theirs.opt_state[0].trace)


def split_state(g, o):
    mine, theirs = g.inner.inner_state[0], o.inner_state[0]
    return (mine.mu, mine.nu), (theirs.mu, theirs.nu)


def dims_3d(params):
    dims = jax.tree.map(lambda p: gx.GaLoreDimensionNumbers() if p.ndim == 2 else None, params)
    dims["conv"] = gx.GaLoreDimensionNumbers(reduction_axis=(0, 2), output_axis=1)
    return dims


def ox_dims_3d(params):
    dims = jax.tree.map(lambda p: oc.GaLoreDimensionNumbers() if p.ndim == 2 else None, params)
    dims["conv"] = oc.GaLoreDimensionNumbers(reduction_axis=(0, 2), output_axis=1)
    return dims


# (id, builder () -> (gradxform tx, optax tx), state extractor, params, extra)
CASES = [
    ("sam_transparent",
     lambda: (gx.sam(gx.sgd(0.1, 0.9), gx.chain(gx.normalize(), gx.sgd(0.05))),
              oc.sam(optax.sgd(0.1, 0.9), optax.chain(oc.normalize(), optax.sgd(0.05)))),
     sam_transparent_state, nested_params, None),
    ("sam_opaque_default_ascent_period_3",
     lambda: (gx.sam(gx.sgd(0.05, 0.9), None, 3, opaque_mode=True, rho=0.1),
              oc.sam(optax.sgd(0.05, 0.9), optax.chain(oc.normalize(), optax.sgd(0.1)), 3,
                     opaque_mode=True)),
     lambda g, o: (g.inner.opt_state[0].trace, o.opt_state[0].trace), nested_params, "grad_fn"),
    ("sam_opaque_adam_ascent_no_reset",
     lambda: (gx.sam(gx.sgd(0.05), gx.adam(0.01), 2, False, True),
              oc.sam(optax.sgd(0.05), optax.adam(0.01), 2, False, True)),
     lambda g, o: ((g.inner.adv_state[0].mu, g.inner.adv_state[0].nu, g.inner.opt_state),
                   (o.adv_state[0].mu, o.adv_state[0].nu, ())), nested_params, "grad_fn"),
    ("cocob_options", lambda: (gx.cocob(0.5, 20.0, 1e-4, 0.01), oc.cocob(0.5, 20.0, 1e-4, 0.01)),
     fields(2, 2, *gx.COCOBState._fields), nested_params, None),
    ("dog", lambda: (gx.dog(), oc.dog()),
     fields(1, 1, *gx.DoGState._fields), nested_params, None),
    ("dog_distance_decay", lambda: (gx.dog(0.5, ("distance", 0.1), 1e-6, 0.01),
                                    oc.dog(0.5, ("distance", 0.1), 1e-6, 0.01)),
     fields(1, 1, *gx.DoGState._fields), nested_params, None),
    ("dowg_options", lambda: (gx.dowg(0.5, 0.01, 1e-3, 0.01), oc.dowg(0.5, 0.01, 1e-3, 0.01)),
     fields(1, 1, *gx.DoWGState._fields), nested_params, None),
    ("mechanize_adam", lambda: (gx.mechanize(gx.adam(1.0)), oc.mechanize(optax.adam(1.0))),
     mechanic_state, nested_params, None),
    ("momo_decay_adaptive_bound", lambda: (gx.momo(0.5, 0.8, 0.1, 0.01, True),
                                           oc.momo(0.5, 0.8, 0.1, 0.01, True)),
     fields(0, None, "exp_avg", "barf", "gamma", "lb"), nested_params, "value"),
    ("momo_adam_decay_adaptive_bound",
     lambda: (gx.momo_adam(0.05, 0.8, 0.99, 1e-6, 0.1, 0.01, True),
              oc.momo_adam(0.05, 0.8, 0.99, 1e-6, 0.1, 0.01, True)),
     fields(0, None, "exp_avg", "exp_avg_sq", "barf", "gamma", "lb"), nested_params, "value"),
    ("madgrad_options", lambda: (gx.madgrad(0.05, 0.5, 0.01, 1e-4),
                                 oc.madgrad(0.05, 0.5, 0.01, 1e-4)),
     fields(1, 1, "grad_sum_sq", "s", "x0"), nested_params, None),
    ("sophia_options",
     lambda: (gx.sophia(0.02, 0.9, 0.95, 1e-6, 0.01, None, 0.05, 0.5, 3),
              oc.sophia(0.02, 0.9, 0.95, 1e-6, 0.01, None, 0.05, 0.5, 3,
                        oc.hutchinson_estimator_diag_hessian(jax.random.key(5)))),
     sophia_state, nested_params, "sophia"),
    ("galore_3d_rank_1_decay",
     lambda: (gx.galore(0.01, 1, 5, 0.25, gx.scale_by_adam(b1=0.8), 0.01,
                        weight_dimension_numbers=dims_3d),
              oc.galore(0.01, 1, 5, 0.25, optax.scale_by_adam(b1=0.8), 0.01,
                        weight_dimension_numbers=ox_dims_3d)),
     galore_state, with_3d, None),
    ("dpsgd_momentum_nesterov",
     lambda: (gx.dpsgd(0.1, 0.5, 1.1, None, 0.9, True), oc.dpsgd(0.1, 0.5, 1.1, 4, 0.9, True)),
     lambda g, o: (g.inner[1].trace, o[1].trace), nested_params, "dp"),
    ("acprop_options",
     lambda: (gx.acprop(0.01, 0.8, 0.99, 1e-8, 1e-10, 0.01),
              oc.acprop(0.01, 0.8, 0.99, 1e-8, 1e-10, 0.01)),
     fields(0, 0, "mu", "nu"), nested_params, None),
    ("simplified_ademamix_options",
     lambda: (gx.simplified_ademamix(1e-3, 0.9, 0.99, 5.0, 1e-6, 1e-8, 0.01),
              oc.simplified_ademamix(1e-3, 0.9, 0.99, 5.0, 1e-6, 1e-8, 0.01)),
     fields(0, 0, "m", "n"), nested_params, None),
    ("split_real_and_imaginary_adam",
     lambda: (gx.split_real_and_imaginary(gx.adam(0.01)),
              oc.split_real_and_imaginary(optax.adam(0.01))),
     split_state, complex_params, "complex"),
]

# float64 runs (rtol 1e-12) of two cases whose float32 results differ from optax's in the last
# bits (XLA fuses the two programs differently, although every operation is the same): in
# float64 they agree to rounding too. (Each run compiles both optimizers: the suite's time
# budget allows a few.)
F64_CASES = {"acprop_options", "simplified_ademamix_options"}


def _inputs(params, extra):
    if extra == "dp":
        return per_example_stream(params, STEPS)
    if extra == "complex":
        return complex_stream(params, STEPS)
    return gradient_stream(params, STEPS)


def _extras(extra, t, ox_state, dtype):
    """The keyword arguments of this step: (for gradxform, for optax)."""
    if extra == "value":
        kw = {"value": value_stream(t.astype(dtype))}
        return kw, kw
    if extra == "grad_fn":
        kw = {"grad_fn": lambda p, i: jax.grad(quartic)(p)}
        return kw, kw
    if extra == "sophia":
        return {"obj_fn": quartic, "key": _ox_key(ox_state)}, {"obj_fn": quartic}
    if extra == "dp":
        return {"key": _ox_key(ox_state)}, {}
    return {}, {}


def run_case(case, dtype):
    """Params after every step and final states of both: (gx history, ox history, gx state,
    ox state, params)."""
    _, build, _, params_fn, extra = case
    gx_tx, ox_tx = build()
    params = params_fn(dtype)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *_inputs(params, extra))

    def body(carry, inputs):
        p_gx, s_gx, p_ox, s_ox = carry
        g, t = inputs
        kw_gx, kw_ox = _extras(extra, t, s_ox, dtype)
        u, s_gx = gx_tx.update(g, s_gx, p_gx, **kw_gx)
        p_gx = gx.apply_updates(p_gx, u)
        with standard_promotion():
            u, s_ox = ox_tx.update(g, s_ox, p_ox, **kw_ox)
            p_ox = optax.apply_updates(p_ox, u)
        return (p_gx, s_gx, p_ox, s_ox), (p_gx, p_ox)

    with standard_promotion():
        s_ox = ox_tx.init(params)
    carry = (params, gx_tx.init(params), params, s_ox)
    run = jax.jit(lambda c, xs: jax.lax.scan(body, c, xs))
    (_, s_gx, _, s_ox), (hist_gx, hist_ox) = run(carry, (stacked, jnp.arange(STEPS)))
    return jax.device_get((hist_gx, hist_ox, s_gx, s_ox)) + (params,)


def largest_error(actual, expected):
    """``max |a - e| / (|e| + s)`` over the leaves, ``s`` the leaf's largest magnitude (over
    every step, for a history): ``<= r`` is ``assert_allclose`` with rtol ``r`` and an absolute
    floor of ``r`` times the leaf's scale, the criterion of the other parity tests."""
    worst = 0.0
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        a, e = np.asarray(a), np.asarray(e)
        if not e.size:
            continue
        scale = max(float(np.max(np.abs(e))), 1e-30)
        worst = max(worst, float(np.max(np.abs(a - e) / (np.abs(e) + scale))))
    return worst


def errors(case, dtype):
    hist_gx, hist_ox, s_gx, s_ox, _ = run_case(case, dtype)
    mine, theirs = case[2](s_gx, s_ox)
    return largest_error(hist_gx, hist_ox), largest_error(mine, theirs)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_parity_float32(case):
    params_err, state_err = errors(case, jnp.float32)
    assert params_err <= 1e-6, f"{case[0]}: params differ from optax by {params_err:.2e}"
    assert state_err <= 1e-6, f"{case[0]}: state differs from optax by {state_err:.2e}"


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in F64_CASES],
                         ids=[c[0] for c in CASES if c[0] in F64_CASES])
def test_parity_float64(case):
    with jax.enable_x64(True):
        params_err, state_err = errors(case, jnp.float64)
    assert params_err <= 1e-12, f"{case[0]}: params differ from optax by {params_err:.2e}"
    assert state_err <= 1e-12, f"{case[0]}: state differs from optax by {state_err:.2e}"


if __name__ == "__main__":
    import os
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")
    print("| case | float32 params | float32 state | float64 params | float64 state |")
    print("| --- | --- | --- | --- | --- |")
    for case in CASES:
        p32, s32 = errors(case, jnp.float32)
        row = f"| {case[0]} | {p32:.1e} | {s32:.1e} |"
        if case[0] in F64_CASES:
            with jax.enable_x64(True):
                p64, s64 = errors(case, jnp.float64)
            row += f" {p64:.1e} | {s64:.1e} |"
        else:
            row += " - | - |"
        print(row)
