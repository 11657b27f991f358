"""The bad-input table (``docs/validation.md``): what a new user might pass, and what happens.

Every row is one input and its exact outcome: either the error (its type, exactly, and a
fragment of its message that names the public call and the argument, and inside ``chain`` the
position of the link), or the documented value (checked against a closed form written here, not
against the library). The categories follow the contract's items; ``python
tests/test_bad_inputs.py`` prints the counts by category and outcome.

Values computed here: Adam's first update is ``-lr * g / (|g| + eps)`` (bias correction cancels
at step 1), SGD's is ``-lr * g``; global-norm clipping scales by ``max_norm / ||g||`` over the
finite entries (the non-finite rule).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradxform as gx
import gradxform.search as gs
from gradxform._src.base import ForeignStateError, StructureMismatchError


class Raises(NamedTuple):
    exc: type[BaseException]
    fragment: str | tuple[str, ...]  # a tuple: every part in the message


class Value(NamedTuple):
    check: Callable[[Any], None]
    what: str


class Case(NamedTuple):
    category: str
    name: str
    build: Callable[[], Any]
    outcome: Raises | Value


CASES: list[Case] = []


def case(category: str, name: str, build: Callable[[], Any], outcome: Raises | Value) -> None:
    CASES.append(Case(category, name, build, outcome))


def raises(exc: type[BaseException], fragment: str | tuple[str, ...]) -> Raises:
    return Raises(exc, fragment)


P = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
G = {"w": jnp.full((2, 3), 0.5), "b": jnp.full(3, -0.25)}


def first_update(tx: Any, grads: Any = G, params: Any = P, state: Any = None, **extra: Any):
    """The first update of ``tx`` on ``grads`` (state from ``init(params)`` unless given)."""
    state = tx.init(params) if state is None else state
    return tx.update(grads, state, params, **extra)[0]


def close_to(expected: Callable[[], Any], rtol: float = 1e-5, atol: float = 0.0):
    def check(result):
        want = expected()
        assert jax.tree.structure(result) == jax.tree.structure(want)
        for a, e in zip(jax.tree.leaves(result), jax.tree.leaves(want)):
            a64, e64 = np.asarray(a, np.float64), np.asarray(e, np.float64)
            assert a64.shape == e64.shape
            np.testing.assert_allclose(a64, e64, rtol=rtol, atol=atol)
    return check


def adam_step(g, lr=1e-3, eps=1e-8):
    return jax.tree.map(lambda x: -lr * np.asarray(x, np.float64)
                        / (np.abs(np.asarray(x, np.float64)) + eps), g)


def sgd_step(g, lr):
    return jax.tree.map(lambda x: -lr * np.asarray(x, np.float64), g)


# ============================================================================================
# 1. Construction: hyperparameters given as Python numbers (item 1).

NUMBERS = [  # (factory, positional args, keyword args, the message fragment)
    ("adam", (-1e-3,), {}, "adam: learning_rate must be >= 0, got -0.001"),
    ("adam", (1e-3,), {"b1": 1.0}, "adam: b1 must be in [0, 1), got 1.0"),
    ("adam", (1e-3,), {"b2": -0.1}, "adam: b2 must be in [0, 1), got -0.1"),
    ("adam", (1e-3,), {"eps": 0.0}, "adam: eps must be > 0, got 0.0"),
    ("adam", (math.inf,), {}, "adam: learning_rate must be finite, got inf"),
    ("adam", (math.nan,), {}, "adam: learning_rate must be finite, got nan"),
    ("adamw", (1e-3,), {"weight_decay": -0.1}, "adamw: weight_decay must be >= 0, got -0.1"),
    ("adamw", (1e-3,), {"b1": 1.0}, "adamw: b1 must be in [0, 1), got 1.0"),
    ("adabelief", (1e-3,), {"b2": 1.0}, "adabelief: b2 must be in [0, 1), got 1.0"),
    ("adadelta", (1e-3,), {"rho": 1.0}, "adadelta: rho must be in [0, 1), got 1.0"),
    ("adafactor", (1e-2,), {"decay_rate": -0.8}, "adafactor: decay_rate must be >= 0, got -0.8"),
    ("adafactor", (1e-2,), {"min_dim_size_to_factor": -1},
     "adafactor: min_dim_size_to_factor must be a whole number >= 1, got -1"),
    ("adafactor", (1e-2,), {"clipping_threshold": 0.0},
     "adafactor: clipping_threshold must be > 0, got 0.0"),
    ("adagrad", (-1.0,), {}, "adagrad: learning_rate must be >= 0, got -1.0"),
    ("adagrad", (0.1,), {"initial_accumulator_value": -1.0},
     "adagrad: initial_accumulator_value must be >= 0, got -1.0"),
    ("adamax", (1e-3,), {"b2": 1.0}, "adamax: b2 must be in [0, 1), got 1.0"),
    ("amsgrad", (1e-3,), {"b1": -0.5}, "amsgrad: b1 must be in [0, 1), got -0.5"),
    ("nadam", (1e-3,), {"eps": 0.0}, "nadam: eps must be > 0, got 0.0"),
    ("radam", (1e-3,), {"threshold": -1.0}, "radam: threshold must be >= 4, got -1.0"),
    ("novograd", (1e-3,), {"b1": 1.0}, "novograd: b1 must be in [0, 1), got 1.0"),
    ("yogi", (1e-3,), {"eps": -1.0}, "yogi: eps must be > 0, got -1.0"),
    ("lamb", (1e-3,), {"b1": 2.0}, "lamb: b1 must be in [0, 1), got 2.0"),
    ("lars", (1e-3,), {"trust_coefficient": -1.0},
     "lars: trust_coefficient must be >= 0, got -1.0"),
    ("lion", (1e-4,), {"b1": 1.0}, "lion: b1 must be in [0, 1), got 1.0"),
    ("lion", (1e-4,), {"weight_decay": -1.0}, "lion: weight_decay must be >= 0, got -1.0"),
    ("fromage", (-1.0,), {}, "fromage: learning_rate must be >= 0, got -1.0"),
    ("noisy_sgd", (1e-3,), {"eta": -1.0}, "noisy_sgd: eta must be >= 0, got -1.0"),
    ("noisy_sgd", (1e-3,), {"gamma": -1.0}, "noisy_sgd: gamma must be >= 0, got -1.0"),
    ("rmsprop", (0.1,), {"decay": 1.0}, "rmsprop: decay must be in [0, 1), got 1.0"),
    ("rmsprop", (0.1,), {"momentum": 1.2}, "rmsprop: momentum must be in [0, 1), got 1.2"),
    ("rprop", (1e-3,), {"eta_minus": 1.5}, "rprop: eta_minus must be in (0, 1], got 1.5"),
    ("rprop", (1e-3,), {"eta_plus": 0.5}, "rprop: eta_plus must be >= 1, got 0.5"),
    ("sgd", (-0.1,), {}, "sgd: learning_rate must be >= 0, got -0.1"),
    ("sgd", (0.1,), {"momentum": 1.5}, "sgd: momentum must be in [0, 1), got 1.5"),
    ("sign_sgd", (-1.0,), {}, "sign_sgd: learning_rate must be >= 0, got -1.0"),
    ("muon", (1e-3,), {"beta": 1.0}, "muon: beta must be in [0, 1), got 1.0"),
    ("muon", (1e-3,), {"ns_steps": 0}, "muon: ns_steps must be a whole number >= 1, got 0"),
    ("prodigy", (-1.0,), {}, "prodigy: learning_rate must be >= 0, got -1.0"),
    ("polyak_sgd", (), {"max_learning_rate": -1.0},
     "polyak_sgd: max_learning_rate must be > 0, got -1.0"),
    ("clip_by_global_norm", (0.0,), {}, "clip_by_global_norm: max_norm must be > 0, got 0.0"),
    ("clip_by_global_norm", (math.inf,), {},
     "clip_by_global_norm: max_norm must be finite, got inf"),
    ("clip", (-1.0,), {}, "clip: max_delta must be > 0, got -1.0"),
    ("adaptive_grad_clip", (-0.1,), {}, "adaptive_grad_clip: clipping must be > 0, got -0.1"),
    ("scale_by_adam", (), {"b1": 1.0}, "scale_by_adam: b1 must be in [0, 1), got 1.0"),
    ("trace", (), {"decay": 1.0}, "trace: decay must be in [0, 1), got 1.0"),
    ("add_decayed_weights", (-1e-4,), {},
     "add_decayed_weights: weight_decay must be >= 0, got -0.0001"),
    ("scale_by_learning_rate", (-1.0,), {},
     "scale_by_learning_rate: learning_rate must be >= 0, got -1.0"),
]
for fn, args, kwargs, fragment in NUMBERS:
    label = ",".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
    case("construction: numbers", f"{fn}({label})",
         (lambda f=fn, a=args, k=kwargs: getattr(gx, f)(*a, **k)), raises(ValueError, fragment))

# wrappers
for name, build, fragment in [
    ("lookahead sync_period=0", lambda: gx.lookahead(gx.sgd(0.1), 0, 0.5),
     "lookahead: sync_period must be >= 1, got 0"),
    ("lookahead slow_step_size=1.5", lambda: gx.lookahead(gx.sgd(0.1), 5, 1.5),
     "lookahead: slow_step_size must be in [0, 1], got 1.5"),
    ("MultiSteps every_k=0", lambda: gx.MultiSteps(gx.sgd(0.1), every_k_schedule=0),
     "MultiSteps: every_k must be >= 1, got 0"),
    ("MultiSteps every_k=2.5", lambda: gx.MultiSteps(gx.sgd(0.1), every_k_schedule=2.5),
     "MultiSteps: every_k must be a whole number, got 2.5"),
    ("accumulate 0", lambda: gx.accumulate(gx.sgd(0.1), 0),
     "accumulate: every_k must be >= 1, got 0"),
    ("apply_every 0", lambda: gx.apply_every(0), "apply_every: k must be >= 1, got 0"),
    ("skip_non_finite -1", lambda: gx.skip_non_finite(gx.sgd(0.1), max_consecutive_errors=-1),
     "skip_non_finite: max_consecutive_errors must be >= 0, got -1"),
    ("skip_non_finite 1.5", lambda: gx.skip_non_finite(gx.sgd(0.1), max_consecutive_errors=1.5),
     "skip_non_finite: max_consecutive_errors must be a whole number, got 1.5"),
    ("apply_if_finite -1", lambda: gx.apply_if_finite(gx.sgd(0.1), -1),
     "apply_if_finite: max_consecutive_errors must be >= 0, got -1"),
    ("ema_params decay=1.5", lambda: gx.ema_params(gx.sgd(0.1), decay=1.5),
     "ema_params: decay must be in [0, 1], got 1.5"),
    ("swa_params every=0", lambda: gx.swa_params(gx.sgd(0.1), every=0),
     "swa_params: every must be >= 1, got 0"),
    ("reduce_on_plateau factor=1.5", lambda: gx.reduce_on_plateau(factor=1.5),
     "reduce_on_plateau: factor must be in (0, 1), got 1.5"),
    ("sam sync_period=0", lambda: gx.sam(gx.sgd(0.1), gx.sgd(0.1), sync_period=0),
     "sam: sync_period must be a whole number >= 1, got 0"),
    ("inject_hyperparams(adam) learning_rate=-1",
     lambda: gx.inject_hyperparams(gx.adam)(learning_rate=-1.0),
     "inject_hyperparams(adam): learning_rate must be >= 0, got -1.0"),
    ("inject_hyperparams(adam) b1=1", lambda: gx.inject_hyperparams(gx.adam)(
        learning_rate=1e-3, b1=1.0), "inject_hyperparams(adam): b1 must be in [0, 1), got 1.0"),
    ("chain(clip, adam(-1))", lambda: gx.chain(gx.clip(1.0), gx.adam(-1.0)),
     "adam: learning_rate must be >= 0, got -1.0"),
]:
    case("construction: numbers", name, build, raises(ValueError, fragment))


# ============================================================================================
# 1. Construction: concrete arrays, wrong kinds of values.

for name, build, fragment in [
    ("adam lr [1e-3, -1]", lambda: gx.adam(jnp.array([1e-3, -1.0])),
     "adam: learning_rate must be >= 0, got -1.0 (in an array of shape (2,))"),
    ("adam lr [1e-3, nan]", lambda: gx.adam(jnp.array([1e-3, jnp.nan])),
     "adam: learning_rate must be finite, got nan (in an array of shape (2,))"),
    ("adam b1 np [0.9, 1.0]", lambda: gx.adam(1e-3, b1=np.array([0.9, 1.0])),
     "adam: b1 must be in [0, 1), got 1.0 (in an array of shape (2,))"),
    ("sgd momentum [[0.5], [1.0]]", lambda: gx.sgd(0.1, momentum=jnp.array([[0.5], [1.0]])),
     "sgd: momentum must be in [0, 1), got 1.0 (in an array of shape (2, 1))"),
    ("adamw weight_decay [-1]", lambda: gx.adamw(1e-3, weight_decay=jnp.array([-1.0])),
     "adamw: weight_decay must be >= 0, got -1.0 (in an array of shape (1,))"),
    ("clip_by_global_norm [0]", lambda: gx.clip_by_global_norm(jnp.zeros(1)),
     "clip_by_global_norm: max_norm must be > 0, got 0.0 (in an array of shape (1,))"),
]:
    case("construction: arrays", name, build, raises(ValueError, fragment))

for name, build, fragment in [
    ("adam '0.1'", lambda: gx.adam("0.1"),
     "adam: learning_rate must be a real number, an array or a schedule, got '0.1'"),
    ("adam complex", lambda: gx.adam(1e-3 + 1j),
     "adam: learning_rate must be a real number, an array or a schedule, got (0.001+1j)"),
    ("adam True", lambda: gx.adam(True),
     "adam: learning_rate must be a real number, an array or a schedule, got True"),
    ("adam None", lambda: gx.adam(None),
     "adam: learning_rate must be a real number, an array or a schedule, got None"),
    ("adam list", lambda: gx.adam([1e-3, 1e-4]),
     "adam: learning_rate must be a real number, an array or a schedule, got list"),
    ("scale 'x'", lambda: gx.scale("x"),
     "scale: step_size must be a real number, an array or a schedule, got 'x'"),
]:
    case("construction: kinds", name, build, raises(TypeError, fragment))


# ============================================================================================
# 1. Construction: links, flags, dtypes, names (structural arguments).

NOT_TX = "is not a transformation: expected a transformation (an object with init and update)"
for name, build, exc, fragment in [
    ("chain(adam, lambda)", lambda: gx.chain(gx.adam(1e-3), lambda x: x), TypeError,
     f"chain: transforms[1] {NOT_TX}, got the function"),
    ("chain(sgd, 3)", lambda: gx.chain(gx.sgd(0.1), 3), TypeError,
     f"chain: transforms[1] {NOT_TX}, got 3"),
    ("chain(None)", lambda: gx.chain(None), TypeError, f"chain: transforms[0] {NOT_TX}, got None"),
    ("chain('adam')", lambda: gx.chain("adam"), TypeError,
     f"chain: transforms[0] {NOT_TX}, got 'adam'"),
    ("chain(gx.adam) uncalled", lambda: gx.chain(gx.adam), TypeError,
     "did you forget to call it? (adam(...) builds a transformation)"),
    ("chain(clip, chain(sgd, 2.0))", lambda: gx.chain(gx.clip(1.0), gx.chain(gx.sgd(0.1), 2.0)),
     TypeError, f"chain: transforms[1] {NOT_TX}, got 2.0"),
    ("chain name=3", lambda: gx.chain(gx.sgd(0.1), name=3), TypeError,
     "chain: name must be a string"),
    ("named_chain lambda", lambda: gx.named_chain(("a", gx.sgd(0.1)), ("b", lambda x: x)),
     TypeError, f"named_chain: transforms[1] {NOT_TX}"),
    ("named_chain not a pair", lambda: gx.named_chain(gx.sgd(0.1)), TypeError,
     "named_chain: expected (name, transformation) pairs"),
    ("named_chain same names", lambda: gx.named_chain(("a", gx.sgd(0.1)), ("a", gx.adam(0.1))),
     ValueError, "named_chain: names must be distinct, got ('a', 'a')"),
    ("masked(lambda, mask)", lambda: gx.masked(lambda x: x, {"w": True, "b": False}), TypeError,
     "masked: inner must be a transformation (gradxform or optax: an object with init and "
     "update), got the function"),
    ("partition with a lambda", lambda: gx.partition({"a": lambda x: x}, {"w": "a", "b": "a"}),
     TypeError, "partition: transforms['a'] must be a transformation"),
    ("partition({})", lambda: gx.partition({}, {"w": "a"}), TypeError,
     "partition: transforms must be a non-empty dict {label: transformation}, got {}"),
    ("lookahead(3)", lambda: gx.lookahead(3, 5, 0.5), TypeError,
     "lookahead: fast_optimizer must be a transformation"),
    ("maximize(3)", lambda: gx.maximize(3), TypeError, "maximize: inner must be a transformation"),
    ("ema_params(lambda)", lambda: gx.ema_params(lambda x: x, decay=0.9), TypeError,
     "ema_params: inner must be a transformation"),
    ("master_weights(lambda)", lambda: gx.master_weights(lambda g: g), TypeError,
     "master_weights: inner must be a transformation"),
    ("master_weights dtype=int32", lambda: gx.master_weights(gx.sgd(0.1), dtype=jnp.int32),
     TypeError, "master_weights: dtype must be a floating-point dtype"),
    ("adam mu_dtype=int32", lambda: gx.adam(1e-3, mu_dtype=jnp.int32), TypeError,
     "adam: mu_dtype must be a floating-point dtype, got int32"),
    ("adam nu_dtype='foo'", lambda: gx.adam(1e-3, nu_dtype="foo"), TypeError,
     "adam: nu_dtype must be a floating-point dtype, got 'foo'"),
    ("sgd accumulator_dtype=bool", lambda: gx.sgd(0.1, momentum=0.9, accumulator_dtype=bool),
     TypeError, "sgd: accumulator_dtype must be a floating-point dtype, got bool"),
    ("adam b2 rounds to 1 in bf16", lambda: gx.adam(1e-3, nu_dtype=jnp.bfloat16), ValueError,
     "adam: b2=0.999 rounds to 1.0 in nu_dtype=bfloat16"),
    ("rmsprop centered='yes'", lambda: gx.rmsprop(1e-3, centered="yes"), TypeError,
     "rmsprop: centered must be True or False, got 'yes'"),
    ("adam nesterov=1", lambda: gx.adam(1e-3, nesterov=1), TypeError,
     "adam: nesterov must be True or False, got 1"),
    ("trace nesterov='x'", lambda: gx.trace(decay=0.9, nesterov="x"), TypeError,
     "trace: nesterov must be True or False, got 'x'"),
    ("ema debias='x'", lambda: gx.ema(0.9, debias="x"), TypeError,
     "ema: debias must be True or False, got 'x'"),
    ("dpsgd seed=0", lambda: gx.dpsgd(1e-3, l2_norm_clip=1.0, noise_multiplier=0.1, seed=0),
     TypeError, "dpsgd: seed must be None, got 0"),
    ("by_regex('(')", lambda: gx.masked(gx.sgd(0.1), gx.by_regex("(")), ValueError,
     "by_regex: rules holds an invalid regular expression '('"),
    ("by_regex([])", lambda: gx.by_regex([]), ValueError,
     "by_regex: rules needs at least one rule"),
    ("by_path(3)", lambda: gx.by_path(3), TypeError, "by_path: fn must be callable, got 3"),
    ("inject_hyperparams(3)", lambda: gx.inject_hyperparams(3), TypeError,
     "inject_hyperparams: inner_factory must be a function returning a transformation, got 3"),
    ("set_hyperparams lr=", lambda: gx.set_hyperparams(gx.adam(1e-3), lr=1e-4), KeyError,
     "set_hyperparams: adam has no hyperparameter 'lr'"),
    ("set_hyperparams b1=1.5", lambda: gx.set_hyperparams(gx.adam(1e-3), b1=1.5), ValueError,
     "b1 must be in [0, 1), got 1.5"),
    ("stack(adam, sgd)", lambda: gx.stack([gx.adam(1e-3), gx.sgd(1e-3)]), ValueError,
     "stack: the values differ in structure"),
    ("stack([])", lambda: gx.stack([]), ValueError, "stack: needs at least one value"),
    ("multi_transform unknown label", lambda: gx.multi_transform(
        {"a": gx.sgd(0.1)}, {"w": "a", "b": "c"}).init(P), ValueError,
     "multi_transform: param_labels give the label 'c', which is not a key of transforms"),
    ("schedule_free_sgd schedule + warmup", lambda: gx.schedule_free_sgd(
        learning_rate=gx.constant_schedule(1e-3), warmup_steps=10), ValueError,
     "schedule_free_sgd: warmup_steps warms up a constant learning_rate, but learning_rate is "
     "a schedule"),
    ("scale_by_schedule(3)", lambda: gx.scale_by_schedule(3), TypeError,
     "scale_by_schedule: step_size_fn must be a schedule (a function of the step count), got 3"),
]:
    case("construction: structure", name, build, raises(exc, fragment))

# optax transformations are links like any other
case("construction: structure", "chain(optax.clip, sgd) is accepted",
     lambda: first_update(gx.chain(optax.clip(0.3), gx.sgd(1.0))),
     Value(close_to(lambda: sgd_step({"w": np.full((2, 3), 0.3), "b": np.full(3, -0.25)}, 1.0)),
           "optax.clip(0.3) then -g"))


# ============================================================================================
# 1. Schedules and their arguments (schedules as arguments of schedules included).

for name, build, exc, fragment in [
    ("linear_schedule(0, schedule, 10)",
     lambda: gx.linear_schedule(0.0, gx.constant_schedule(1e-3), 10), TypeError,
     "linear_schedule: end_value must be a real number or an array, not constant_schedule"),
    ("cosine_decay_schedule(schedule, 10)",
     lambda: gx.cosine_decay_schedule(gx.constant_schedule(1.0), 10), TypeError,
     "cosine_decay_schedule: init_value must be a real number or an array, not "
     "constant_schedule"),
    ("linear_schedule steps=-5", lambda: gx.linear_schedule(1.0, 0.0, -5), ValueError,
     "linear_schedule: transition_steps must be >= 0, got -5"),
    ("linear_schedule steps=2.5", lambda: gx.linear_schedule(1.0, 0.0, 2.5), ValueError,
     "linear_schedule: transition_steps must be a whole number, got 2.5"),
    ("exponential_decay rate=0", lambda: gx.exponential_decay(1.0, 10, 0.0), ValueError,
     "exponential_decay: decay_rate must be > 0, got 0.0"),
    ("exponential_decay steps=0", lambda: gx.exponential_decay(1.0, 0, 0.5), ValueError,
     "exponential_decay: transition_steps must be > 0, got 0"),
    ("cosine_decay_schedule steps=0", lambda: gx.cosine_decay_schedule(1.0, 0), ValueError,
     "cosine_decay_schedule: decay_steps must be > 0, got 0"),
    ("cosine_decay_schedule steps=10.5", lambda: gx.cosine_decay_schedule(1.0, decay_steps=10.5),
     ValueError, "cosine_decay_schedule: decay_steps must be a whole number, got 10.5"),
    ("warmup_cosine decay<warmup", lambda: gx.warmup_cosine_decay_schedule(
        0.0, 1.0, warmup_steps=100, decay_steps=50), ValueError,
     "warmup_cosine_decay_schedule: decay_steps must be greater than warmup_steps"),
    ("warmup_constant warmup=-1", lambda: gx.warmup_constant_schedule(0.0, 1.0, -1), ValueError,
     "warmup_constant_schedule: warmup_steps must be >= 0, got -1"),
    ("constant_schedule(nan)", lambda: gx.adam(gx.constant_schedule(math.nan)), ValueError,
     "constant_schedule: value must be finite, got nan"),
    ("join_schedules boundaries", lambda: gx.join_schedules([gx.constant_schedule(1.0)], [5]),
     ValueError, "join_schedules: boundaries must have one entry fewer than schedules"),
    ("join_schedules with 3", lambda: gx.join_schedules([gx.constant_schedule(1.0), 3], [5]),
     TypeError, "join_schedules: schedules must be schedules, got 3"),
    ("piecewise_constant key -1", lambda: gx.piecewise_constant_schedule(1.0, {-1: 0.5}),
     ValueError, "piecewise_constant_schedule: boundaries_and_scales keys must be whole step "
     "numbers >= 0, got -1"),
    ("piecewise_constant scale -0.5", lambda: gx.piecewise_constant_schedule(1.0, {10: -0.5}),
     ValueError, "piecewise_constant_schedule: boundaries_and_scales values must be finite "
     "scales >= 0, got -0.5 at step 10"),
    ("schedule_fn(3)", lambda: gx.schedule_fn(3), TypeError,
     "schedule_fn: fn must be callable, got 3"),
    ("cosine_decay_restarts t_mul=0.5", lambda: gx.cosine_decay_restarts(1.0, 10, t_mul=0.5),
     ValueError, "cosine_decay_restarts: t_mul must be >= 1, got 0.5"),
    ("cosine_decay_restarts alpha=1.5", lambda: gx.cosine_decay_restarts(1.0, 10, alpha=1.5),
     ValueError, "cosine_decay_restarts: alpha must be in [0, 1], got 1.5"),
    ("sgdr_schedule([])", lambda: gx.sgdr_schedule([]), ValueError,
     "sgdr_schedule: cosine_kwargs needs at least one cycle (a dict)"),
    ("cyclic_schedule mode", lambda: gx.cyclic_schedule(0.1, 1.0, 20, mode="foo"), ValueError,
     "cyclic_schedule: mode must be 'triangular', 'triangular2' or 'exp_range', got 'foo'"),
    ("cyclic_schedule step 0", lambda: gx.cyclic_schedule(0.1, 1.0, 0), ValueError,
     "cyclic_schedule: step_size_up must be >= 1, got 0"),
    ("linear_onecycle 0 steps", lambda: gx.linear_onecycle_schedule(0, 1.0), ValueError,
     "linear_onecycle_schedule: transition_steps must be >= 1, got 0"),
    ("inverse_sqrt warmup -1", lambda: gx.inverse_sqrt_schedule(1.0, -1), ValueError,
     "inverse_sqrt_schedule: warmup_steps must be >= 1, got -1"),
]:
    case("construction: schedules", name, build, raises(exc, fragment))

# documented values: optax's convention for a zero-length polynomial schedule (the initial
# value), and schedules evaluated at a fractional count (interpolated, as optax does)
case("construction: schedules", "polynomial_schedule(transition_steps=0) is constant",
     lambda: float(gx.polynomial_schedule(1.0, 0.0, 1.0, 0)(jnp.asarray(5))),
     Value(lambda v: np.testing.assert_allclose(v, 1.0), "init_value (optax's convention)"))
case("construction: schedules", "linear_schedule at count 5.5",
     lambda: float(gx.linear_schedule(1.0, 0.0, 10)(jnp.asarray(5.5))),
     Value(lambda v: np.testing.assert_allclose(v, 0.45, rtol=1e-6), "1 - 5.5/10"))


# ============================================================================================
# 1. Search spaces.

for name, build, exc, fragment in [
    ("Float(1, 0.1)", lambda: gs.Float(1.0, 0.1), ValueError,
     "Float: low must be < high, got low=1.0, high=0.1"),
    ("Float log low<0", lambda: gs.Float(-1.0, 1.0, log=True), ValueError,
     "Float: log=True needs low > 0"),
    ("Float(nan, 1)", lambda: gs.Float(math.nan, 1.0), ValueError,
     "Float: low must be finite, got nan"),
    ("Int(5, 1)", lambda: gs.Int(5, 1), ValueError, "Int: low must be <= high, got low=5, high=1"),
    ("Int(0.5, 3)", lambda: gs.Int(0.5, 3), TypeError, "Int: low must be a whole number, got 0.5"),
    ("Categorical([])", lambda: gs.Categorical([]), ValueError,
     "Categorical: choices must not be empty"),
    ("Space lr=3", lambda: gs.Space({"lr": 3}), TypeError,
     "Space: lr must be a Float, Int or Categorical, got 3"),
    ("Grid points=0", lambda: gs.Grid({"lr": gs.Float(1e-4, 1e-2, log=True)}, points=0),
     ValueError, "Grid: points must be >= 1, got 0"),
    ("Random seed=-1", lambda: gs.Random({"lr": gs.Float(1e-4, 1e-2, log=True)}, seed=-1),
     ValueError, "Random: seed must be a whole number >= 0, got -1"),
]:
    case("construction: search spaces", name, build, raises(exc, fragment))


# ============================================================================================
# 2. update: gradients and params that do not match the params of init.

MISMATCH = "the updates do not match the params this optimizer state was created for (init)"
STATE = gx.adam(1e-3).init(P)
for name, grads, fragment in [
    ("transposed leaf", {"w": jnp.ones((3, 2)), "b": jnp.ones(3)},
     "at ['w'] the params are float32[2, 3] but the updates are float32[3, 2]"),
    ("flattened leaf", {"w": jnp.ones(6), "b": jnp.ones(3)},
     "at ['w'] the params are float32[2, 3] but the updates are float32[6]"),
    ("bfloat16 leaf", {"w": jnp.ones((2, 3), jnp.bfloat16), "b": jnp.ones(3)},
     "at ['w'] the params are float32[2, 3] but the updates are bfloat16[2, 3]"),
    ("a leaf missing", {"w": jnp.ones((2, 3))}, "leaves missing from the updates: ['b']"),
    ("an extra leaf", {"w": jnp.ones((2, 3)), "b": jnp.ones(3), "c": jnp.ones(1)},
     "leaves not in the params: ['c']"),
    ("a list for a dict", [jnp.ones((2, 3)), jnp.ones(3)], "leaves not in the params: [0], [1]"),
    ("None for the gradients", None, "leaves missing from the updates: ['b'], ['w']"),
]:
    case("update: tree mismatch", name,
         (lambda g=grads: gx.adam(1e-3).update(g, STATE, P)),
         raises(StructureMismatchError, (f"adam.update: {MISMATCH}: ", fragment)))
case("update: tree mismatch", "params of another shape",
     lambda: first_update(gx.adamw(1e-3), G, {"w": jnp.ones((3, 2)), "b": jnp.ones(3)},
                          state=gx.adamw(1e-3).init(P)),
     raises(StructureMismatchError, "adamw.update: the params do not match the params this "
            "optimizer state was created for (init): at ['w'] the params are float32[2, 3]"))
case("update: tree mismatch", "integer params", lambda: gx.adam(1e-3).init(
     {"w": jnp.ones(3, jnp.int32)}), raises(TypeError, "gradxform optimises floating-point "
                                             "leaves only, got a leaf of dtype int32"))
case("update: tree mismatch", "apply_updates trees differ",
     lambda: gx.apply_updates(P, {"w": jnp.ones((2, 3))}),
     raises(StructureMismatchError, "apply_updates: params and updates have different tree "
            "structures"))


# ============================================================================================
# 2. update: a state this transformation did not create.

MADE_BY = "the state was made by the init of another transformation, 'adam', which differs"
for name, differs in [
    ("adamw", "from adamw at transforms: 2 links (scale_by_adam, scale_by_learning_rate) there, "
              "3 links (scale_by_adam, add_decayed_weights, scale_by_learning_rate) here"),
    ("adabelief", "from adabelief at transforms[0]: scale_by_adam there, scale_by_belief here"),
    ("yogi", "from yogi at transforms[0]: scale_by_adam there, scale_by_yogi here"),
    ("nadam", "from nadam at transforms[0].nesterov: False there, True here"),
    ("adamax", "from adamax at transforms[0]: scale_by_adam there, scale_by_adamax here"),
    ("rmsprop", "from rmsprop at transforms[0]: scale_by_adam there, scale_by_rms here"),
    ("sgd", "from sgd at transforms: 2 links (scale_by_adam, scale_by_learning_rate) there, "
            "1 link (scale_by_learning_rate) here"),
    ("lion", "from lion at transforms: 2 links"),
    ("amsgrad", "from amsgrad at transforms[0]: scale_by_adam there, scale_by_amsgrad here"),
    ("radam", "from radam at transforms[0]: scale_by_adam there, scale_by_radam here"),
]:
    case("update: foreign state", f"adam's state to {name}",
         (lambda n=name: first_update(getattr(gx, n)(1e-3), state=STATE)),
         raises(ForeignStateError, f"{name}.update: {MADE_BY} {differs}"))
for name, build, fragment in [
    ("sgd(momentum)", lambda: first_update(gx.sgd(0.1, momentum=0.9), state=STATE),
     f"sgd.update: {MADE_BY} from sgd at transforms[0]: scale_by_adam there, trace here"),
    ("chain(clip, adam)", lambda: first_update(
        gx.chain(gx.clip_by_global_norm(1.0), gx.adam(1e-3)), state=STATE),
     f"chain.update: {MADE_BY} from chain at transforms[0]: scale_by_adam there, "
     "clip_by_global_norm here"),
    ("adam(nesterov=True)", lambda: first_update(gx.adam(1e-3, nesterov=True), state=STATE),
     f"adam.update: {MADE_BY} from adam at transforms[0].nesterov: False there, True here"),
    ("adam(mu_dtype=bf16)", lambda: first_update(gx.adam(1e-3, mu_dtype=jnp.bfloat16),
                                                 state=STATE),
     f"adam.update: {MADE_BY} from adam at transforms[0].mu_dtype: None there, dtype bfloat16"),
]:
    case("update: foreign state", f"adam's state to {name}", build,
         raises(ForeignStateError, fragment))
for name, state, got in [("state.inner", STATE.inner, "tuple"), ("a dict", {"count": 0}, "dict"),
                         ("None", None, "NoneType")]:
    case("update: foreign state", f"adam given {name}",
         (lambda s=state: gx.adam(1e-3).update(G, s, P)),
         raises(TypeError, f"adam.update: state must be the OptState returned by adam.init, got "
                f"{got}"))
case("update: foreign state", "the same optimizer with another learning rate continues",
     lambda: first_update(gx.adam(3e-4), state=STATE),
     Value(close_to(lambda: adam_step(G, lr=3e-4)), "adam's first step with lr=3e-4"))


# ============================================================================================
# 2. update: params needed but not given.

for name, make in [("adamw", lambda: gx.adamw(1e-3)),
                   ("lookahead", lambda: gx.lookahead(gx.sgd(0.1), 5, 0.5)),
                   ("ema_params", lambda: gx.ema_params(gx.sgd(0.1), decay=0.9)),
                   ("master_weights", lambda: gx.master_weights(gx.sgd(0.1))),
                   ("lamb", lambda: gx.lamb(1e-3)),
                   ("lars", lambda: gx.lars(1e-3))]:
    case("update: params missing", name,
         (lambda m=make: m().update(G, m().init(P))),
         raises(ValueError, f"{name}: needs the current params: call update(updates, state, "
                "params)"))


# ============================================================================================
# Masks and labels checked at update (the params are known there).

for name, build, exc, fragment in [
    ("masked selects nothing", lambda: first_update(
        gx.masked(gx.sgd(1.0), {"w": False, "b": False})), ValueError,
     "masked: mask selects none of the 2 leaves of the params, so masked would silently do "
     "nothing"),
    ("masked mask misses a leaf", lambda: first_update(gx.masked(gx.sgd(1.0), {"w": True})),
     ValueError, "masked: no entry of the mask covers the leaf at ['b']"),
    ("masked mask=3", lambda: first_update(gx.masked(gx.sgd(1.0), 3)), TypeError,
     "masked: the mask must hold bools, got 3 for the leaf at ['b']"),
    ("masked mask with 'x'", lambda: first_update(gx.masked(gx.sgd(1.0), {"w": True, "b": "x"})),
     TypeError, "masked: the mask must hold bools, got 'x' for the leaf at ['b']"),
    ("adamw mask=3 names adamw", lambda: first_update(gx.adamw(1.0, mask=3)), TypeError,
     "adamw: the mask must hold bools, got 3 for the leaf at ['b']"),
    ("adamw mask misses a leaf names adamw", lambda: first_update(
        gx.adamw(1.0, mask={"w": True})), ValueError,
     "adamw: no entry of the mask covers the leaf at ['b']"),
    ("adamw mask selects nothing", lambda: first_update(
        gx.adamw(1.0, mask={"w": False, "b": False})), ValueError,
     "adamw: mask selects none of the 2 leaves"),
    ("masked misspelt key", lambda: first_update(
        gx.masked(gx.sgd(1.0), {"w": True, "b": True, "bais": False})), ValueError,
     "masked: the entry of the mask at ['bais'] is not in the params (a misspelt key?)"),
    ("partition unknown label", lambda: first_update(
        gx.partition({"a": gx.sgd(1.0)}, {"w": "a", "b": "z"})), ValueError,
     "partition: param_labels give the label 'z', which is not a key of transforms ('a',)"),
    ("partition label list", lambda: first_update(
        gx.partition({"a": gx.sgd(0.1)}, {"w": "a", "b": ["a"]})), ValueError,
     "partition: no entry of the labels covers the leaf at ['b']"),
]:
    case("update: masks and labels", name, build, raises(exc, fragment))


# ============================================================================================
# 3. Non-finite gradients: the documented rule (values). An entry that is +inf, -inf or NaN
# stays in its place; finite entries get what they would get with it replaced by 0.

def _with(value):
    return {"w": G["w"].at[0, 0].set(value), "b": G["b"]}


def _finite_part(g):
    return jax.tree.map(lambda x: np.where(np.isfinite(np.asarray(x)), np.asarray(x), 0.0), g)


def non_finite_rule(expected_finite: Callable[[Any], Any], own: str):
    """Finite entries as ``expected_finite(finite part)``; the bad entry ``own``: ``"nan"``,
    ``"non-finite"``, or a number."""
    def check_for(value):
        def check(u):
            want = expected_finite(_finite_part(_with(value)))
            for key in ("w", "b"):
                a, e = np.asarray(u[key], np.float64), np.asarray(want[key], np.float64)
                keep = np.ones(a.shape, bool)
                if key == "w":
                    keep[0, 0] = False
                    bad = a[0, 0]
                    if own == "nan":
                        assert np.isnan(bad), bad
                    elif own == "non-finite":
                        assert not np.isfinite(bad), bad
                    else:
                        np.testing.assert_allclose(bad, float(own), rtol=1e-5)
                np.testing.assert_allclose(a[keep], e[keep], rtol=1e-5, atol=1e-12)
        return check
    return check_for


def _clip_then_sgd(g):
    norm = math.sqrt(sum(float(np.sum(np.asarray(x, np.float64) ** 2)) for x in
                         jax.tree.leaves(g)))
    return sgd_step(g, 1.0 / max(norm, 1.0))


NON_FINITE = [  # (name, make, expected on the finite part, the bad entry)
    ("adam", lambda: gx.adam(1e-3), adam_step, "nan"),
    ("sgd", lambda: gx.sgd(1.0), lambda g: sgd_step(g, 1.0), "non-finite"),
    ("sgd(momentum)", lambda: gx.sgd(1.0, momentum=0.9), lambda g: sgd_step(g, 1.0),
     "non-finite"),
    ("chain(clip_by_global_norm(1), sgd(1))",
     lambda: gx.chain(gx.clip_by_global_norm(1.0), gx.sgd(1.0)), _clip_then_sgd, "non-finite"),
    ("lion", lambda: gx.lion(1e-3, weight_decay=0.0),
     lambda g: jax.tree.map(lambda x: -1e-3 * np.sign(x), g), None),
]
for value_name, value in [("+inf", np.inf), ("-inf", -np.inf), ("nan", np.nan)]:
    for name, make, expected, own in NON_FINITE:
        if own is None:  # lion: sign(+-inf) is a finite step, sign(nan) is nan
            own = "nan" if np.isnan(value) else str(-1e-3 * np.sign(value))
        case("non-finite gradients", f"{name} with {value_name}",
             (lambda m=make, v=value: first_update(m(), _with(v))),
             Value(non_finite_rule(expected, own)(value), f"finite entries as if 0, {own} "
                                                           "in place"))
for name, make in [("skip_non_finite(adam)", lambda: gx.skip_non_finite(gx.adam(1e-3))),
                   ("apply_if_finite(adam, 3)", lambda: gx.apply_if_finite(gx.adam(1e-3), 3))]:
    case("non-finite gradients", f"{name} skips the step",
         (lambda m=make: first_update(m(), _with(np.inf))),
         Value(close_to(lambda: jax.tree.map(np.zeros_like, G)), "a zero update"))


# ============================================================================================
# 3. Zero gradients and zero norms: no 0/0 (values).

Z = jax.tree.map(jnp.zeros_like, G)
ZP = jax.tree.map(jnp.zeros_like, P)
for name, make, params in [
    ("adam", lambda: gx.adam(1e-3), P),
    ("clip_by_global_norm", lambda: gx.clip_by_global_norm(1.0), P),
    ("lamb, zero params", lambda: gx.lamb(1e-3), ZP),
    ("lars, zero params", lambda: gx.lars(1e-3), ZP),
    ("normalize_by_update_norm", lambda: gx.normalize_by_update_norm(), P),
    ("rmsprop", lambda: gx.rmsprop(1e-3), P),
    ("adafactor", lambda: gx.adafactor(1e-2), P),
    ("adagrad", lambda: gx.adagrad(1e-2), P),
    ("novograd", lambda: gx.novograd(1e-2), P),
    ("fromage, zero params", lambda: gx.fromage(1e-2), ZP),
]:
    case("zero inputs", f"{name}: zero gradients",
         (lambda m=make, p=params: first_update(m(), Z, p)),
         Value(close_to(lambda: jax.tree.map(np.zeros_like, G)), "a zero update"))
# yogi's moments start at initial_accumulator_value = 1e-6 (optax's): m = 0.9e-6 / 0.1,
# v = 1e-6 / 0.001, u = -lr m / (sqrt(v) + eps) with eps = 1e-3
case("zero inputs", "yogi: zero gradients", lambda: first_update(gx.yogi(1e-2), Z),
     Value(close_to(lambda: jax.tree.map(lambda x: np.full(x.shape, -1e-2 * 9e-6 / (
         math.sqrt(1e-3) + 1e-3)), G)), "its initial accumulators' step (documented)"))
case("zero inputs", "adam on float16 zero gradients",
     lambda: first_update(gx.adam(1e-3), {"w": jnp.zeros(3, jnp.float16)},
                          {"w": jnp.zeros(3, jnp.float16)}),
     Value(close_to(lambda: {"w": np.zeros(3)}), "a zero float16 update"))


# ============================================================================================
# Odd params: bare arrays, scalars, empty trees, callable pytrees as masks (values).

X = jnp.full(4, 0.5)


def _bare(make):
    tx = make()
    return tx.update(X, tx.init(X), X)[0]


for name, make, expected in [
    ("adam", lambda: gx.adam(1e-3), lambda: adam_step(X)),
    ("masked(adamw, True)", lambda: gx.masked(gx.adamw(1e-3, weight_decay=0.1), True),
     lambda: -1e-3 * (np.ones(4) + 0.1 * 0.5)),
    ("partition({'a': adamw}, 'a')", lambda: gx.partition(
        {"a": gx.adamw(1e-3, weight_decay=0.1)}, "a"), lambda: -1e-3 * (np.ones(4) + 0.1 * 0.5)),
    ("muon on a matrix", None, None),
]:
    if make is None:
        case("odd params", "muon on a bare matrix", lambda: (lambda t, m: t.update(
            m, t.init(m), m)[0])(gx.muon(1e-3), jnp.eye(3)),
            Value(lambda u: (np.asarray(u).shape == (3, 3) and bool(np.all(np.isfinite(u)))
                             and float(np.abs(np.asarray(u)).max()) > 0) or pytest.fail(str(u)),
                  "a finite, non-zero update"))
        continue
    case("odd params", f"{name} on a bare array", (lambda m=make: _bare(m)),
         Value(close_to(expected, rtol=1e-4), "the same update as in a dict"))
case("odd params", "adam on a Python float",
     lambda: (lambda t: t.update(0.5, t.init(1.0), 1.0)[0])(gx.adam(1e-3)),
     Value(close_to(lambda: np.asarray(-1e-3), rtol=1e-4), "-lr"))
for name, make in [("adam", lambda: gx.adam(1.0)), ("masked tree {}", lambda: gx.masked(
        gx.sgd(1.0), {})), ("masked callable", lambda: gx.masked(
        gx.sgd(1.0), lambda p: jax.tree.map(lambda _: True, p))),
        ("partition labels {}", lambda: gx.partition({"a": gx.sgd(1.0)}, {}))]:
    case("odd params", f"{name} on empty params {{}}",
         (lambda m=make: (lambda t: t.update({}, t.init({}), {})[0])(m())),
         Value(lambda u: (u == {}) or pytest.fail(repr(u)), "the empty tree"))


class BoolMask(eqx.Module):
    w: bool
    b: bool

    def __call__(self, params):
        raise AssertionError("a callable pytree mask must not be called")


class Params(eqx.Module):
    w: jax.Array
    b: jax.Array


EP = Params(P["w"], P["b"])
EG = Params(G["w"], G["b"])
case("odd params", "masked with an equinox mask (callable pytree)",
     lambda: (lambda t: t.update(EG, t.init(EP), EP)[0])(gx.masked(gx.sgd(1.0),
                                                                    BoolMask(True, False))),
     Value(lambda u: (np.testing.assert_allclose(u.w, -0.5), np.testing.assert_allclose(
         u.b, -0.25)), "sgd on w, b passed through"))
case("odd params", "adamw with an equinox mask (callable pytree)",
     lambda: (lambda t: t.update(Params(jnp.zeros((2, 3)), jnp.zeros(3)), t.init(EP), EP)[0])(
         gx.adamw(1.0, weight_decay=0.5, mask=BoolMask(False, True))),
     Value(lambda u: (np.testing.assert_allclose(u.w, 0.0), np.testing.assert_allclose(
         u.b, -0.5)), "decay only on b"))


# ============================================================================================
# Not checkable when the optimizer is built (documented): traced values, schedules' ranges.

case("not checkable (documented)", "a traced learning rate of -1",
     lambda: int(jax.jit(lambda lr: gx.adam(lr).init({"w": jnp.zeros(2)}).count)(-1.0)),
     Value(lambda c: (c == 0) or pytest.fail(str(c)), "no error: the value is unknown"))
case("not checkable (documented)", "a schedule that turns negative",
     lambda: float(gx.adam(gx.linear_schedule(1e-3, -1e-3, 10)).transforms[1].learning_rate(
         jnp.asarray(10))),
     Value(lambda v: np.testing.assert_allclose(v, -1e-3), "no error: schedules are evaluated "
                                                           "at each step"))
case("not checkable (documented)", "sgd(nesterov=True) without momentum",
     lambda: first_update(gx.sgd(1.0, nesterov=True)),
     Value(close_to(lambda: sgd_step(G, 1.0)), "plain SGD (optax's convention)"))
case("not checkable (documented)", "scale(-1) is a sign flip",
     lambda: first_update(gx.scale(-1.0)),
     Value(close_to(lambda: sgd_step(G, 1.0)), "-g"))


# ============================================================================================


def _id(c: Case) -> str:
    return f"{c.category}: {c.name}"


@pytest.mark.parametrize("c", CASES, ids=[_id(c) for c in CASES])
def test_bad_input(c: Case):
    if isinstance(c.outcome, Raises):
        with pytest.raises(BaseException) as info:
            c.build()
        assert type(info.value) is c.outcome.exc, (type(info.value), str(info.value))
        text = info.value.args[0] if isinstance(info.value, KeyError) else str(info.value)
        parts = c.outcome.fragment
        for part in (parts,) if isinstance(parts, str) else parts:
            assert part in text, text
    else:
        c.outcome.check(c.build())


def counts() -> dict[str, collections.Counter]:
    out: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for c in CASES:
        kind = c.outcome.exc.__name__ if isinstance(c.outcome, Raises) else "value"
        out[c.category][kind] += 1
    return out


def test_the_table_covers_every_category():
    found = counts()
    assert len(CASES) >= 150, len(CASES)
    assert len({_id(c) for c in CASES}) == len(CASES)  # every row has its own name
    assert all(sum(v.values()) >= 3 for v in found.values()), found


if __name__ == "__main__":
    table = counts()
    kinds = sorted({k for v in table.values() for k in v})
    print("| category | " + " | ".join(kinds) + " | total |")
    print("|---" * (len(kinds) + 2) + "|")
    for cat, v in table.items():
        print(f"| {cat} | " + " | ".join(str(v.get(k, 0)) for k in kinds)
              + f" | {sum(v.values())} |")
    total = collections.Counter()
    for v in table.values():
        total.update(v)
    print("| all | " + " | ".join(str(total.get(k, 0)) for k in kinds)
          + f" | {sum(total.values())} |")
