"""Configs: ``from_config(to_config(tx)) == tx`` (and hash alike, through JSON text) for every
entry of the conformance table, every schedule, wrapper and router; functions are refused with
the field named; a loaded config is checked like a value built by hand."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.core import FrozenDict

import gradxform as gx
from gradxform._src.module import Module
from registry import all_entries

ENTRIES = all_entries()


def _round_trip(value):
    text = json.dumps(gx.to_config(value))
    loaded = gx.from_config(json.loads(text))
    assert loaded == value, f"{loaded!r}\n!=\n{value!r}"
    assert hash(loaded) == hash(value)
    assert repr(loaded) == repr(value)
    assert type(loaded) is type(value)
    return loaded


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_every_conformance_entry_round_trips(entry):
    for target in entry.lr:
        _round_trip(entry.make(target=target))


SCHEDULES = [
    gx.constant_schedule(0.3),
    gx.linear_schedule(1.0, 0.1, 500, 100),
    gx.polynomial_schedule(1.0, 0.01, 2.5, 700, 50),
    gx.exponential_decay(0.5, 100, 0.7, 30, staircase=True, end_value=0.05),
    gx.cosine_decay_schedule(2.0, 900, 0.1, 1.5),
    gx.warmup_cosine_decay_schedule(0.0, 1.0, 100, 1000, 1e-3),
    gx.piecewise_constant_schedule(1.0, {300: 0.5, 800: 0.1}),
    gx.join_schedules([gx.linear_schedule(0.0, 1.0, 100), gx.cosine_decay_schedule(1.0, 500)],
                      [100]),
    gx.warmup_constant_schedule(0.01, 1.0, 137),
    gx.warmup_exponential_decay_schedule(0.0, 1.0, 50, 100, 0.6, 20, True, 0.05),
    gx.piecewise_interpolate_schedule("cosine", 0.5, {250: 0.1, 1000: 0.01}),
    gx.linear_onecycle_schedule(1000, 0.1),
    gx.cosine_onecycle_schedule(333, 2.0, 0.45, 5.0, 50.0),
    gx.cosine_decay_restarts(1.0, 10, 1.5, 0.7, 0.05),
    gx.cyclic_schedule(0.01, 0.5, 50, 70, "exp_range", 0.99),
    gx.cyclic_schedule(0.01, 0.5, 50),
    gx.inverse_time_decay(1.0, 100, 2.0, staircase=True),
    gx.inverse_sqrt_schedule(1e-3, 400),
    gx.cosine_decay_schedule(1.0, 100) * gx.cyclic_schedule(0.5, 1.0, 10),
    0.5 * gx.linear_schedule(1.0, 0.0, 10),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=[type(s).__name__ + str(i)
                                                     for i, s in enumerate(SCHEDULES)])
def test_every_schedule_round_trips(schedule):
    loaded = _round_trip(schedule)
    counts = jnp.arange(0, 1200, 37)
    np.testing.assert_array_equal(jax.vmap(loaded)(counts), jax.vmap(schedule)(counts))


def _wrappers():
    for inner in (gx.adam(gx.warmup_cosine_decay_schedule(0.0, 1e-3, 10, 100)),
                  gx.sgd(0.1, momentum=0.9, nesterov=True)):
        yield gx.accumulate(inner, 4, reduction="sum", accumulator_dtype=jnp.bfloat16)
        yield gx.accumulate(inner, 2, accumulator_dtype=np.dtype("float32"),
                            drop_non_finite=False)
        yield gx.skip_non_finite(inner, 3, axis_name="batch")
        yield gx.apply_if_finite(inner)
        yield gx.dynamic_loss_scale(inner, 2.0**10, 100, axis_name=("x", "y"))
        yield gx.ema_params(inner, decay=gx.linear_schedule(0.9, 0.999, 100),
                            accumulator_dtype=np.float64)
        yield gx.swa_params(inner, start=100, every=10)
        yield gx.master_weights(inner, dtype=jnp.float64)
        yield gx.chain(inner, gx.reduce_on_plateau(0.5, 3, cooldown=2, maximize=True))
        yield gx.maximize(inner)
        yield gx.masked(inner, {"dense": True, "blocks": [False, (True, False)]})
        yield gx.masked(inner, "bias")
        yield gx.selective_transform(inner, freeze_mask=FrozenDict({"encoder": True,
                                                                      "head": False}))
        yield gx.partition({"decay": inner, "frozen": gx.set_to_zero(), "id": gx.identity()},
                           gx.by_regex({"bias": "frozen", "norm": "id"}, default="decay"))
        yield gx.partition({"a": inner, "b": gx.adam(0.1)}, {"x": "a", "y": ["b", "a"]})
        yield gx.named_chain(("clip", gx.clip_by_global_norm(1.0)), ("opt", inner))
        yield gx.MultiSteps(inner, 3, use_grad_mean=False)
    yield gx.adamw(0.1, weight_decay=0.1, mask={"w": True, "b": False})
    yield gx.adamw(jnp.asarray(0.1), b1=np.float32(0.8), weight_decay=jnp.asarray([0.1, 0.2]))
    yield gx.stack([gx.adam(lr) for lr in (1e-3, 3e-3)])
    yield gx.chain(gx.add_l2_penalty(1e-4), gx.add_l1_penalty(1e-5), gx.clip(1.0), gx.ema(0.9),
                   gx.scale(-0.1), name="custom")


WRAPPERS = list(_wrappers())
# Optimizer variants whose classes the conformance table does not reach.
VARIANTS = [gx.lars(0.1, paper_trust_ratio=True)]
# optax's core names (their other tests: tests/test_optax_core.py).
VARIANTS += [
    gx.chain(gx.zero_nans(), gx.centralize(axis=(0, 1)), gx.adaptive_grad_clip(0.01, axis=(0,)),
             gx.scale_by_param_block_norm(1e-2, axis_name="data"),
             gx.normalize_by_update_norm(-1.0, 1e-4),
             gx.scale_by_distance_over_gradients(1e-4, param_dtype=jnp.float32),
             gx.scale_by_optimistic_gradient(0.5, 2.0, accumulator_dtype=np.float64),
             gx.apply_every(4), gx.keep_params_nonnegative(), name="optax_core"),
    gx.selective_transform(gx.adam(1e-3), freeze_mask={"encoder": True, "head": False}),
]
# the line searches and variance reduction (their other tests: tests/test_linesearch.py,
# tests/test_svrg.py)
VARIANTS += [
    gx.chain(gx.scale_by_lbfgs(memory_size=7), gx.scale(-1.0),
             gx.golden_section_linesearch(max_linesearch_steps=25, tol=1e-3,
                                          max_learning_rate=2.0)),
    gx.svrg(gx.sgd(0.05, momentum=0.5), snapshot_every=17, option="II"),
]


@pytest.mark.parametrize("tx", VARIANTS, ids=[f"{t.name}{i}" for i, t in enumerate(VARIANTS)])
def test_optimizer_variants_round_trip(tx):
    _round_trip(tx)


@pytest.mark.parametrize("tx", WRAPPERS, ids=[f"{t.name}{i}" for i, t in enumerate(WRAPPERS)])
def test_every_wrapper_and_router_round_trips(tx):
    _round_trip(tx)


def test_the_round_trips_cover_every_public_value_class():
    covered = {type(m) for v in SCHEDULES + WRAPPERS + VARIANTS + [e.make() for e in ENTRIES]
               for m in v.submodules()}
    covered |= {type(v.param_labels) for v in WRAPPERS if isinstance(v, gx.partition)}
    covered |= {type(v.mask) for v in WRAPPERS if isinstance(v, gx.masked)}
    public = {getattr(gx, n) for n in gx.__all__}
    public = {c for c in public if isinstance(c, type) and issubclass(c, Module)}
    functions_inside = {gx.schedule_fn, gx.stateless, gx.Foreign, gx.by_path,
                        gx.stateless_with_tree_map, gx.conditionally_mask,
                        gx.conditionally_transform, gx.snapshot, gx.monitor, gx.measure_with_ema,
                        gx.Solver}
    abstract = {Module, gx.Schedule, gx.GradientTransformation}
    missing = public - covered - functions_inside - abstract
    assert not missing, sorted(c.__name__ for c in missing)


def test_the_format_is_readable():
    config = gx.to_config(gx.sgd(0.1, momentum=0.9))
    assert config == {"type": "chain", "fields": {
        "transforms": [
            {"type": "trace", "fields": {"decay": 0.9, "nesterov": False, "dampening": 0.0,
                                         "accumulator_dtype": None}},
            {"type": "scale_by_learning_rate", "fields": {"learning_rate": 0.1,
                                                          "flip_sign": True}}],
        "names": None, "chain_name": "sgd"}}


# --------------------------------------------------------------------------------------------
# What cannot be written, and what a loaded config must satisfy.


@pytest.mark.parametrize("tx,message", [
    (gx.adamw(0.1, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)),
     "to_config: cannot write field 'mask' of add_decayed_weights: it holds the function "),
    (gx.adam(gx.schedule_fn(lambda t: 0.1)),
     "to_config: cannot write field 'fn' of schedule_fn: it holds the function "),
    (gx.chain(gx.stateless(lambda u, p: u), gx.sgd(0.1)),
     "to_config: cannot write field 'f' of stateless"),
    (gx.partition({"a": gx.adam(0.1)}, gx.by_path(lambda path, x: "a")),
     "to_config: cannot write field 'fn' of by_path"),
    (gx.chain(optax.adam(0.1)), "to_config: cannot write field 'tx' of Foreign"),
])
def test_functions_are_refused_with_the_field_named(tx, message):
    with pytest.raises(TypeError) as info:
        gx.to_config(tx)
    assert message in str(info.value)


def test_large_arrays_and_non_values_are_refused():
    with pytest.raises(ValueError, match=r"to_config: field 'weight_decay' of "
                                         r"add_decayed_weights is an array of 5000 entries"):
        gx.to_config(gx.adamw(0.1, weight_decay=jnp.zeros(5000)))
    with pytest.raises(TypeError, match=r"to_config: expected a gradxform value"):
        gx.to_config({"lr": 0.1})


def test_a_loaded_config_is_checked():
    config = gx.to_config(gx.adam(0.1))
    config["fields"]["transforms"][0]["fields"]["b1"] = 1.0
    with pytest.raises(ValueError, match=r"^scale_by_adam: b1 must be in \[0, 1\), got 1.0"):
        gx.from_config(config)
    config = gx.to_config(gx.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100))
    config["fields"]["decay_steps"] = 10
    with pytest.raises(ValueError, match=r"decay_steps must be greater than warmup_steps"):
        gx.from_config(config)


def test_unknown_types_and_fields():
    with pytest.raises(ValueError, match=r"from_config: unknown type 'nadamax'"):
        gx.from_config({"type": "nadamax", "fields": {}})
    with pytest.raises(ValueError, match=r"from_config: clip has no field\(s\) \['factor'\]"):
        gx.from_config({"type": "clip", "fields": {"max_delta": 1.0, "factor": 2.0}})
    with pytest.raises(ValueError, match=r"from_config: clip needs the field 'max_delta'"):
        gx.from_config({"type": "clip", "fields": {}})
    # defaults fill fields a config leaves out
    assert gx.from_config({"type": "scale_by_adam", "fields": {"b1": 0.8}}) == \
        gx.scale_by_adam(b1=0.8)


def test_user_classes_register_themselves_and_clashing_names_are_qualified():
    class halve(gx.GradientTransformation):
        factor: float = gx.hyper(0.5, "(0, 1)")

        def apply(self, updates, state, params, step):
            return jax.tree.map(lambda u: u * step.value(self.factor), updates), state

    _round_trip(gx.chain(halve(0.25), gx.sgd(0.1)))

    # a class of another project with the same name as gx.scale (pytree classes live as long as
    # the process: from here on both are written with their module, which still round-trips)
    clash = type("scale", (gx.GradientTransformation,),
                 {"__module__": "other_project.transforms", "__qualname__": "scale",
                  "apply": lambda self, u, s, p, step: (u, s)})
    config = gx.to_config(gx.chain(gx.scale(2.0), clash()))
    types = [t["type"] for t in config["fields"]["transforms"]]
    assert types == ["gradxform._src.transforms.scaling.scale", "other_project.transforms.scale"]
    assert gx.from_config(json.loads(json.dumps(config))) == gx.chain(gx.scale(2.0), clash())
    with pytest.raises(ValueError, match=r"from_config: the type name 'scale' is ambiguous"):
        gx.from_config({"type": "scale", "fields": {"step_size": 1.0}})
