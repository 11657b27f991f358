"""optax code runs unchanged: every name gradxform shares with optax accepts optax's call.

The names are found, not listed: every name of ``gradxform.__all__`` that ``optax``,
``optax.contrib`` or ``optax.schedules`` also exports (so names added later are covered). For
each one, optax's signature is read with ``inspect`` and:

* **order**: gradxform's positional parameters are a prefix of optax's, names and order
  (``scale_by_adam(0.9, 0.999)`` means what it means in optax); what optax does not have is
  keyword-only;
* **arguments**: optax's documented call runs: optax's required arguments get sample values by
  name (:data:`SAMPLES`), given positionally, and, in a second call, every argument of optax's
  signature by keyword, the optional ones at optax's defaults;
* **defaults**: the value built with gradxform's defaults equals the one built with optax's
  defaults given explicitly (gradxform's values compare by content);
* **results**: both libraries' results agree (rtol 1e-6, with an absolute floor of 1e-6 times
  the largest magnitude in the leaf, as the parity tests): the first updates of a
  transformation (two steps on a small tree, extra arguments ``value=``, ``obj_fn=`` and
  ``key=``; a line search or L-BFGS runs on a quadratic, with the gradients of the loss and
  the ``value=``, ``grad=`` and ``value_fn=`` of optax's documentation), the values of a
  schedule at a few steps, the arrays a function returns (or what :data:`RESULT_CALLS` does
  with it: the optimizer an ``inject_hyperparams`` factory builds, a micro-batched function
  on a batch). The calls
  run in float64 (``jax.enable_x64``), so that float32 rounding, which some algorithms amplify
  in their first steps (Prodigy's estimate of D is formed from params 1e-6 apart), cannot
  pass for a difference in the algorithm.

optax's submodules exported under the same name (``gx.tree``, ``gx.tree_utils``,
``gx.microbatching``) are namespaces, not calls: each member of optax's must be in gradxform's
and take optax's parameters (positional order, keyword names); their results are compared in
``test_workflow_tree_utils.py`` and ``test_workflow_optax_names.py``.

A difference that ``docs/migrating_from_optax.md`` does not list in its "Signature differences"
table fails, and so does a listed difference that no longer exists (the page stays true).
``python tests/test_optax_signatures.py`` prints every difference found.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import re
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import optax.schedules
import pytest

import gradxform as gx

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "migrating_from_optax.md"
SECTION = "Signature differences"
KINDS = ("order", "arguments", "defaults", "results")
SOURCES = (("optax", optax), ("optax.contrib", optax.contrib),
           ("optax.schedules", optax.schedules))
RTOL = 1e-6  # and an absolute floor of RTOL times the largest magnitude in the leaf
DTYPE = jnp.float64  # under jax.enable_x64
STEPS = 2

# --------------------------------------------------------------------------------------------
# The shared names.


def _optax_object(name: str) -> tuple[str, Any] | None:
    """Where optax exports ``name``; a deprecated alias (``optax.dpsgd``, moved to
    ``optax.contrib``) only if there is no other."""
    found = []
    for where, module in SOURCES:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obj = getattr(module, name, None)
        if obj is not None:
            deprecated = any(issubclass(w.category, DeprecationWarning) for w in caught)
            found.append((deprecated, where, obj))
    if not found:
        return None
    _, where, obj = min(found, key=lambda f: f[0])
    return where, obj


def _is_type_alias(obj: Any) -> bool:
    """optax's type names that are aliases (``OptState``, ``Schedule``), not calls."""
    return getattr(obj, "__origin__", None) is not None


def _is_namespace(obj: Any) -> bool:
    """optax's submodules exported under a name (``optax.tree``): namespaces, not calls."""
    return isinstance(obj, types.ModuleType)


SHARED = {name: found for name in gx.__all__ if (found := _optax_object(name)) is not None}
NAMESPACES = sorted(n for n, (_, obj) in SHARED.items() if _is_namespace(obj))
CALLED = sorted(n for n, (_, obj) in SHARED.items()
                if not _is_type_alias(obj) and not _is_namespace(obj))
ALIASES = sorted(n for n, (_, obj) in SHARED.items() if _is_type_alias(obj))


def _signature(obj: Any) -> inspect.Signature:
    return inspect.signature(obj)


def _positional(sig: inspect.Signature) -> list[str]:
    """Positional parameters in order, ``*`` for a variadic one."""
    out = []
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            out.append(p.name)
        elif p.kind is p.VAR_POSITIONAL:
            out.append("*")
    return out


# --------------------------------------------------------------------------------------------
# Sample arguments, by parameter name (per library where the value is a transformation).


# Names whose optax version takes one matrix as params: optax's scale_by_muon orthogonalises
# every leaf, and without weight_dimension_numbers it cannot map over a tree.
ONE_MATRIX = {"scale_by_muon"}


def _tree(name: str, rng: np.random.Generator, scale: float = 1.0) -> Any:
    """Two leaves of one shape (each new shape costs JAX a compilation of every operation)."""
    if name in ONE_MATRIX:
        return jnp.asarray(scale * rng.normal(size=(3, 4)), DTYPE)
    return {"w": jnp.asarray(scale * rng.normal(size=(3, 4)), DTYPE),
            "b": jnp.asarray(scale * rng.normal(size=(3, 4)), DTYPE)}


def _params(name: str = "") -> Any:
    return _tree(name, np.random.default_rng(0))


# Names whose update takes per-example gradients (a leading batch axis on every leaf).
PER_EXAMPLE = {"differentially_private_aggregate", "dpsgd"}


def _grads(step: int, name: str = "") -> Any:
    rng = np.random.default_rng(100 + step)
    scale = 10.0 ** rng.uniform(-1, 0.5)
    if name in PER_EXAMPLE:
        return jax.tree.map(lambda *xs: jnp.stack(xs), *[_tree(name, rng, scale)
                                                        for _ in range(5)])
    return _tree(name, rng, scale)


@contextlib.contextmanager
def optax_promotion():
    """optax runs under JAX's default promotion rules (the suite runs stricter ones)."""
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        yield


def _loss(params: Any) -> jax.Array:
    return 0.5 * sum(jnp.sum(x * x) for x in jax.tree.leaves(params))


# Names whose update follows a loss (a line search, L-BFGS): they run on a quadratic, with the
# gradient of the loss as updates (times -1 for a bare line search, which searches along the
# direction it is given: optax's documentation chains it after ``sgd``), and the extra
# arguments of optax's documentation, ``value=``, ``grad=`` and ``value_fn=``.
ON_A_LOSS = {"lbfgs": 1.0, "scale_by_lbfgs": 1.0, "scale_by_backtracking_linesearch": -1.0,
             "scale_by_zoom_linesearch": -1.0}


def _quadratic(params: Any) -> jax.Array:
    """A convex quadratic with curvatures between 0.5 and 3 (a line search has work to do)."""
    curvature = _tree("", np.random.default_rng(5))
    return 0.5 * sum(jnp.sum((0.5 + 2.5 * jnp.abs(jnp.tanh(c))) * x * x)
                     for c, x in zip(jax.tree.leaves(curvature), jax.tree.leaves(params)))


def _lbfgs_after_a_step(lib: Any) -> tuple[Any, Any]:
    """The params and state of the library's ``lbfgs`` after one step on :func:`_quadratic`
    (the state holds the value and gradient at the new params)."""
    tx, params = lib.lbfgs(), _params()
    with optax_promotion() if lib is optax else contextlib.nullcontext():
        state = tx.init(params)
        value, grad = jax.value_and_grad(_quadratic)(params)
        updates, state = tx.update(grad, state, params, value=value, grad=grad,
                                   value_fn=_quadratic)
        return lib.apply_updates(params, updates), state


def _adam_state(lib: Any) -> Any:
    """The state of the library's ``adam(0.1)`` after a step (moments that are not zeros)."""
    tx, params = lib.adam(0.1), _params()
    with optax_promotion() if lib is optax else contextlib.nullcontext():
        return tx.update(_grads(0), tx.init(params), params)[1]


def _at_lbfgs_state(lib: Any, value_and_grad: Callable) -> Any:
    params, state = _lbfgs_after_a_step(lib)
    return value_and_grad(params, state=state)


def _summed(params: Any, batch: jax.Array) -> jax.Array:
    """A function of a batch whose sum over micro-batches is its value on the whole batch."""
    return jnp.sum(batch ** 2) * jnp.sum(params["w"])


def _doubled(x: Any) -> Any:
    return 2.0 * x


def _norm(tree: Any) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree.leaves(tree)))


def _spd() -> jax.Array:
    a = np.random.default_rng(3).normal(size=(4, 4))
    return jnp.asarray(a @ a.T + 4 * np.eye(4), DTYPE)


def _per_example() -> dict:
    rng = np.random.default_rng(4)
    return {"w": jnp.asarray(rng.normal(size=(5, 3, 4)), DTYPE),
            "b": jnp.asarray(rng.normal(size=(5, 3, 4)), DTYPE)}


def _double(u, p):
    del p
    return jax.tree.map(lambda x: 2.0 * x, u)


def _double_leaf(g, p):
    del p
    return 2.0 * g


def _every_other(count, **extra):
    del extra
    return count % 2 == 0


def _decaying(count):
    return jnp.asarray(0.5, DTYPE) / (1 + jnp.asarray(count, DTYPE))


def _schedule_free_state(lib: Any) -> tuple[Any, Any]:
    """A schedule-free optimizer's state after two steps, and the params it was taken at."""
    module = optax.contrib if lib is optax else gx
    tx = module.schedule_free_adamw(0.1)
    params = _params()
    with optax_promotion() if lib is optax else contextlib.nullcontext():
        state = tx.init(params)
        for i in range(2):
            updates, state = tx.update(_grads(i), state, params)
            params = lib.apply_updates(params, updates)
    return state, params


# Each entry: parameter name -> function of the library (optax or gradxform) giving a value.
SAMPLES: dict[str, Callable[[Any], Any]] = {
    # hyperparameters
    "learning_rate": lambda lib: 0.1,
    "step_size": lambda lib: 0.5,
    "decay": lambda lib: 0.9,
    "max_delta": lambda lib: 0.1,
    "max_norm": lambda lib: 1.0,
    "threshold": lambda lib: 1.0,
    "clipping": lambda lib: 0.05,
    "eta": lambda lib: 0.01,
    "gamma": lambda lib: 0.55,
    "eps": lambda lib: 1e-8,
    "order": lambda lib: 2,
    "count": lambda lib: jnp.asarray(3, jnp.int32),
    "max_consecutive_errors": lambda lib: 3,
    "sync_period": lambda lib: 2,
    "slow_step_size": lambda lib: 0.5,
    "max_squared_norm": lambda lib: 10.0,
    "gradient_step": lambda lib: jnp.asarray(1, jnp.int32),
    "l2_norm_clip": lambda lib: 1.0,
    "noise_multiplier": lambda lib: 0.5,
    "seed": lambda lib: 0,
    "global_l2_norm_clip": lambda lib: 1.0,
    "min_norm": lambda lib: 1e-6,
    "min_rms": lambda lib: 1e-6,
    "p": lambda lib: 2,
    "steps": lambda lib: jnp.asarray(4, jnp.int32),
    "update_period": lambda lib: 2,
    "every_k_schedule": lambda lib: 2,
    "max_backtracking_steps": lambda lib: 15,
    "max_linesearch_steps": lambda lib: 15,
    "argnums": lambda lib: 1,
    "microbatch_size": lambda lib: 2,
    # schedules
    "init_value": lambda lib: 1.0,
    "peak_value": lambda lib: 1.0,
    "end_value": lambda lib: 0.01,
    "value": lambda lib: 0.5,
    "transition_steps": lambda lib: 10,
    "decay_steps": lambda lib: 20,
    "warmup_steps": lambda lib: 5,
    "decay_rate": lambda lib: 0.5,
    "power": lambda lib: 2.0,
    "interpolate_type": lambda lib: "linear",
    "boundaries": lambda lib: [10],
    "schedules": lambda lib: [lib.constant_schedule(1.0), lib.linear_schedule(1.0, 0.0, 10)],
    "cosine_kwargs": lambda lib: [
        {"init_value": 0.0, "peak_value": 1.0, "warmup_steps": 2, "decay_steps": 10},
        {"init_value": 0.0, "peak_value": 0.5, "warmup_steps": 3, "decay_steps": 20}],
    "step_size_fn": lambda lib: _decaying,
    # transformations and what routes leaves to them
    "inner": lambda lib: lib.adam(0.1),
    "opt": lambda lib: lib.adam(0.1),
    "initable": lambda lib: lib.adam(0.1),
    "inner_factory": lambda lib: lib.adam,
    "tx": lambda lib: lib.adam(0.1),
    "optimizer": lambda lib: lib.adam(0.1),
    "base_optimizer": lambda lib: lib.sgd(0.1),
    "fast_optimizer": lambda lib: lib.sgd(0.1),
    "adv_optimizer": lambda lib: lib.sgd(0.01),
    "transforms": lambda lib: {"a": lib.adam(0.1), "b": lib.sgd(0.1)},
    "mask": lambda lib: {"w": True, "b": False},
    "freeze_mask": lambda lib: {"w": False, "b": True},
    "param_labels": lambda lib: {"w": "a", "b": "b"},
    "should_transform_fn": lambda lib: _every_other,
    "f": lambda lib: _double,
    "measure": lambda lib: _norm,
    "measure_name": lambda lib: "norm",
    "measures": lambda lib: {"norm": _norm},
    "value_fn": lambda lib: _quadratic,
    "fun": lambda lib: _summed,
    # trees and arrays
    "updates": lambda lib: _grads(0),
    "params": lambda lib: _params(),
    "grads": lambda lib: _per_example(),
    "moment": lambda lib: _params(),
    "moments": lambda lib: _params(),
    "new_tensors": lambda lib: _grads(0),
    "old_tensors": lambda lib: _params(),
    "x": lambda lib: jnp.asarray([3.0, -4.0], DTYPE),
    "matrix": lambda lib: _spd(),
    "loc": lambda lib: jnp.asarray([0.5, -1.0], DTYPE),
    "log_scale": lambda lib: jnp.asarray([0.1, -0.3], DTYPE),
    # the protocol
    "init": lambda lib: lambda params: (),
    "update": lambda lib: lambda updates, state, params=None: (updates, state),
}

# The variadic arguments of optax's documented call, by name.
VARIADIC: dict[str, Callable[[Any], list]] = {
    "chain": lambda lib: [lib.scale_by_adam(), lib.scale(-0.1)],
    "named_chain": lambda lib: [("adam", lib.scale_by_adam()), ("lr", lib.scale(-0.1))],
    "tree_map_params": lambda lib: [],
}

# Where a parameter name means something else for one call.
OVERRIDES: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("stateless_with_tree_map", "f"): lambda lib: _double_leaf,
    ("schedule_free_eval_params", "state"): lambda lib: _schedule_free_state(lib)[0],
    ("schedule_free_eval_params", "params"): lambda lib: _schedule_free_state(lib)[1],
    ("tree_map_params", "f"): lambda lib: _doubled,
    ("tree_map_params", "state"): lambda lib: _adam_state(lib),
}

# Names whose result is a function of something else than a step count: what is compared.
RESULT_CALLS: dict[str, Callable[[Any, Any, str], Any]] = {
    "inject_hyperparams": lambda lib, built, name: _run(built(learning_rate=0.1), lib, name),
    "inject_stateful_hyperparams": lambda lib, built, name: _run(built(learning_rate=0.1), lib,
                                                                 name),
    "microbatch": lambda lib, built, name: built(_params(), jnp.arange(8.0, dtype=DTYPE)),
    "value_and_grad_from_state": lambda lib, built, name: _at_lbfgs_state(lib, built),
}
# Fields of optax's state classes (NamedTuples): any value does.
STATE_FIELD = object()


def _sample(lib: Any, name: str, param: str, owner: Any) -> Any:
    if (name, param) in OVERRIDES:
        return OVERRIDES[name, param](lib)
    if param in SAMPLES:
        return SAMPLES[param](lib)
    if _is_namedtuple_class(owner):
        return _params()
    raise KeyError(f"no sample value for the parameter {param!r} of {name}: add one to "
                   f"SAMPLES (or OVERRIDES) in {Path(__file__).name}")


def _is_namedtuple_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, tuple) and hasattr(obj, "_fields")


# --------------------------------------------------------------------------------------------
# Calls.


@dataclasses.dataclass
class Call:
    """optax's call of one name: its positional and keyword arguments, per library."""

    name: str
    positional: list[str]          # optax's required positional-or-keyword parameters
    keyword: dict[str, Any]        # every optax parameter at optax's default (or a sample)
    required_keyword: list[str]    # optax's required keyword-only parameters
    variadic: bool                 # optax's signature has *args
    positional_only: list[str]     # optax's positional-only parameters

    def args(self, lib: Any, owner: Any) -> tuple[list, dict]:
        """The required arguments as optax's docs pass them (positionally, keyword-only ones
        by name), with values for ``lib``."""
        pos = [_sample(lib, self.name, p, owner) for p in self.positional]
        if self.variadic:
            if self.name not in VARIADIC:
                raise KeyError(f"no sample for the *args of {self.name}: add one to VARIADIC")
            pos += VARIADIC[self.name](lib)
        kw = {p: _sample(lib, self.name, p, owner) for p in self.required_keyword}
        return pos, kw

    def all_keywords(self, lib: Any, owner: Any) -> tuple[list, dict]:
        """Every parameter of optax's signature by keyword (positional-only ones, and the
        variadic arguments, by position), optional ones at optax's default."""
        values = {p: (_sample(lib, self.name, p, owner) if v is inspect.Parameter.empty else v)
                  for p, v in self.keyword.items()}
        pos = [values.pop(p) for p in self.positional_only]
        if self.variadic:
            pos += VARIADIC[self.name](lib)
        return pos, values


def optax_call(name: str) -> Call:
    sig = _signature(SHARED[name][1])
    positional, keyword, required_keyword = [], {}, []
    variadic = False
    for p in sig.parameters.values():
        variadic |= p.kind is p.VAR_POSITIONAL
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        keyword[p.name] = p.default
        if p.default is p.empty:
            if p.kind is p.KEYWORD_ONLY:
                required_keyword.append(p.name)
            else:
                positional.append(p.name)
    positional_only = [p.name for p in sig.parameters.values() if p.kind is p.POSITIONAL_ONLY]
    return Call(name, positional, keyword, required_keyword, variadic, positional_only)


def _quiet(fn: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def _build_optax(name: str) -> Any:
    call = optax_call(name)
    obj = SHARED[name][1]
    pos, kw = call.args(optax, obj)
    with optax_promotion():
        return _quiet(lambda: obj(*pos, **kw))


# --------------------------------------------------------------------------------------------
# Comparing results.


def _is_transformation(x: Any) -> bool:
    return hasattr(x, "init") and hasattr(x, "update") and not isinstance(x, type)


def _promotion(lib: Any) -> contextlib.AbstractContextManager:
    return optax_promotion() if lib is optax else contextlib.nullcontext()


def _accepted(update: Callable, extra: dict) -> dict:
    """The extra arguments an optax ``update`` takes (all of them if it has ``**kwargs``)."""
    parameters = inspect.signature(update).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return extra
    names = {p.name for p in parameters}
    return {k: v for k, v in extra.items() if k in names}


def _run(tx: Any, lib: Any, name: str) -> list:
    """The updates of ``STEPS`` steps; extra arguments ``value`` (the loss), ``obj_fn`` (the
    loss function) and ``key``, those that optax's ``update`` takes (names of
    :data:`ON_A_LOSS`: the gradients of :func:`_quadratic`, ``value=``, ``grad=`` and
    ``value_fn=``)."""
    params = _params(name)
    with _promotion(lib):
        state = _quiet(lambda: tx.init(params))
        out = []
        for i in range(STEPS):
            if name in ON_A_LOSS:
                value, grad = jax.value_and_grad(_quadratic)(params)
                grads = jax.tree.map(lambda g: ON_A_LOSS[name] * g, grad)
                extra = {"value": value, "grad": grad, "value_fn": _quadratic}
            else:
                grads = _grads(i, name)
                extra = {"value": _loss(params), "key": jax.random.key(i), "obj_fn": _loss}
            if lib is optax:
                extra = _accepted(tx.update, extra)
            updates, state = tx.update(grads, state, params, **extra)
            out.append(updates)
            if jax.tree.structure(updates) == jax.tree.structure(params):
                params = lib.apply_updates(params, updates)  # (not for measurements)
    return out


COUNTS = (0, 1, 2, 4, 7, 12, 25, 40)


def _outputs(result: Any, lib: Any, name: str) -> Any:
    """What is compared of a call's result: updates, schedule values, or the result itself."""
    if name in RESULT_CALLS:
        with _promotion(lib):
            return RESULT_CALLS[name](lib, result, name)
    if _is_transformation(result):
        return _run(result, lib, name)
    if callable(result) and not isinstance(result, type):
        with _promotion(lib):
            return jax.vmap(result)(jnp.asarray(COUNTS, jnp.int32))
    if hasattr(result, "log_prob"):
        with _promotion(lib):
            return result.log_prob(jnp.asarray([0.3, 0.2], DTYPE))
    return result


def _same_numbers(a: Any, b: Any) -> bool:
    leaves_a = [x for x in jax.tree.leaves(a) if x is not None]
    leaves_b = [x for x in jax.tree.leaves(b) if x is not None]
    if len(leaves_a) != len(leaves_b):
        return False
    for x, y in zip(leaves_a, leaves_b):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape and x.size != y.size:
            return False
        x, y = x.astype(np.float64).ravel(), y.astype(np.float64).ravel()
        floor = RTOL * float(np.max(np.abs(y), initial=0.0, where=np.isfinite(y)))
        if not np.allclose(x, y, rtol=RTOL, atol=floor, equal_nan=True):
            return False
    return True


# --------------------------------------------------------------------------------------------
# The differences of one name.


@dataclasses.dataclass
class Found:
    kinds: set[str] = dataclasses.field(default_factory=set)
    notes: list[str] = dataclasses.field(default_factory=list)

    def add(self, kind: str, note: str) -> None:
        self.kinds.add(kind)
        self.notes.append(f"{kind}: {note}")


def order_difference(name: str) -> str | None:
    theirs = _positional(_signature(SHARED[name][1]))
    mine = _positional(_signature(getattr(gx, name)))
    if theirs[:len(mine)] == mine:
        return None
    return f"positional parameters {mine} here, {theirs} in optax"


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"


def call_differences(name: str) -> Found:
    """Run optax's call of ``name`` against gradxform and compare with optax's result."""
    with jax.enable_x64(True):
        return _call_differences(name)


def _call_differences(name: str) -> Found:
    found = Found()
    call = optax_call(name)
    mine = getattr(gx, name)
    theirs = SHARED[name][1]
    pos, kw = call.args(gx, theirs)
    try:
        by_position = _quiet(lambda: mine(*pos, **kw))
    except Exception as e:  # noqa: BLE001 - any failure is the finding
        found.add("arguments", f"{name}(required arguments) raised {_describe(e)}")
        by_position = None
    kw_pos, kw_all = call.all_keywords(gx, theirs)
    try:
        by_keyword = _quiet(lambda: mine(*kw_pos, **kw_all))
    except Exception as e:  # noqa: BLE001
        found.add("arguments", f"{name}(every optax argument by keyword) raised {_describe(e)}")
        by_keyword = None
    if by_position is None or _is_namedtuple_class(mine):
        return found
    if isinstance(by_position, gx.Module) and by_keyword is not None and by_keyword != by_position:
        found.add("defaults", f"optax's defaults build {by_keyword!r}, gradxform's "
                              f"{by_position!r}")
    reference = _build_optax(name)
    try:
        expected = _outputs(reference, optax, name)
        actual = _outputs(by_position, gx, name)
        same = _same_numbers(actual, expected)
        detail = "the numbers differ"
    except Exception as e:  # noqa: BLE001
        same, detail = False, f"comparing raised {_describe(e)}"
    if not same:
        found.add("results", detail)
    return found


def differences(name: str) -> Found:
    found = Found()
    order = order_difference(name)
    if order:
        found.add("order", order)
    called = call_differences(name)
    found.kinds |= called.kinds
    found.notes += called.notes
    return found


# --------------------------------------------------------------------------------------------
# What the guide lists.


def listed_differences(text: str | None = None) -> dict[str, set[str]]:
    """``{name: kinds}`` from the table of the guide's "Signature differences" section: the
    first column names one or more ``gx.name`` in backticks, the second the kinds."""
    text = GUIDE.read_text() if text is None else text
    match = re.search(rf"^## {SECTION}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"{GUIDE.name} has no '## {SECTION}' section"
    out: dict[str, set[str]] = {}
    for line in match.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not line.lstrip().startswith("|") or set(cells[0]) <= {"-", " "}:
            continue
        kinds = {k for k in KINDS if re.search(rf"\b{k}\b", cells[1])}
        for name in re.findall(r"`(?:gx\.)?(\w+)`", cells[0]):
            out.setdefault(name, set()).update(kinds)
    return out


LISTED = listed_differences()


def _check(name: str, kinds: set[str], notes: list[str], only: tuple[str, ...]) -> None:
    listed = LISTED.get(name, set()) & set(only)
    found = kinds & set(only)
    unlisted = sorted(found - listed)
    stale = sorted(listed - found)
    assert not unlisted, (
        f"{name}: optax's call differs ({', '.join(unlisted)}) and "
        f"docs/migrating_from_optax.md does not list it under '{SECTION}':\n  "
        + "\n  ".join(notes))
    assert not stale, (f"{name}: docs/migrating_from_optax.md lists a difference in "
                       f"{', '.join(stale)} that no longer exists; remove it from the table")


# --------------------------------------------------------------------------------------------
# Tests.


def test_the_shared_names_are_found():
    """The data the tests run over: optax's names in gradxform.__all__ (a sanity floor)."""
    assert len(CALLED) >= 150, CALLED
    assert {"adam", "scale_by_adam", "chain", "sgdr_schedule", "muon"} <= set(CALLED)
    assert set(ALIASES) <= {"OptState", "Schedule"}, ALIASES


def test_listed_names_are_shared_names():
    unknown = sorted(set(LISTED) - set(CALLED))
    assert not unknown, f"the guide's '{SECTION}' table names {unknown}, not shared with optax"


@pytest.mark.parametrize("name", CALLED)
def test_positional_order_is_optax_order(name):
    """gradxform's positional parameters are a prefix of optax's (names and order)."""
    note = order_difference(name)
    _check(name, {"order"} if note else set(), [f"order: {note}"], ("order",))


@pytest.mark.parametrize("name", CALLED)
def test_optax_call_runs_and_agrees(name):
    """optax's documented call runs, with optax's defaults, and gives optax's results."""
    found = call_differences(name)
    _check(name, found.kinds, found.notes, ("arguments", "defaults", "results"))


# --------------------------------------------------------------------------------------------
# Namespaces: optax's submodules exported under the same name (gx.tree, gx.tree_utils,
# gx.microbatching). Their members' signatures are compared here; their results against
# optax's in test_workflow_tree_utils.py (every tree function) and test_workflow_optax_names.py
# (microbatch, reshape_batch_axis, AccumulationType).


def _members(namespace: str) -> list[str]:
    module = SHARED[namespace][1]
    return sorted(n for n in dir(module)
                  if not n.startswith("_") and not _is_namespace(getattr(module, n)))


MEMBERS = [(ns, member) for ns in NAMESPACES for member in _members(ns)]
# optax members gradxform does not have yet; the guide names each of them.
NOT_PROVIDED: set[tuple[str, str]] = set()


def member_difference(namespace: str, member: str) -> str | None:
    """How ``gx.<namespace>.<member>`` refuses optax's call: a positional order that is not a
    prefix of optax's, an optax keyword it does not take, a parameter it requires that optax
    does not have."""
    theirs = getattr(SHARED[namespace][1], member)
    mine = getattr(getattr(gx, namespace), member, None)
    if mine is None:
        return "missing"
    if not callable(theirs):
        return None if mine == theirs else f"{mine!r} here, {theirs!r} in optax"
    try:
        sig_theirs, sig_mine = _signature(theirs), _signature(mine)
    except (TypeError, ValueError):  # a builtin or an enum without a signature
        return None
    pos_theirs, pos_mine = _positional(sig_theirs), _positional(sig_mine)
    if pos_theirs[:len(pos_mine)] != pos_mine:
        return f"positional parameters {pos_mine} here, {pos_theirs} in optax"
    params = sig_mine.parameters.values()
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    keywords = {p.name for p in sig_theirs.parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    refused = sorted(keywords - set(sig_mine.parameters)) if not takes_any else []
    if refused:
        return f"optax's keywords {refused} are refused"
    required = sorted(p.name for p in params if p.default is p.empty
                      and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                      and p.name not in sig_theirs.parameters)
    if required:
        return f"requires {required}, which optax does not have"
    return None


def test_the_namespaces_are_found():
    assert set(NAMESPACES) == {"tree", "tree_utils", "microbatching"}, NAMESPACES
    assert not set(NAMESPACES) & set(CALLED)
    assert len(MEMBERS) >= 70, MEMBERS


@pytest.mark.parametrize("namespace,member", MEMBERS, ids=[f"{n}.{m}" for n, m in MEMBERS])
def test_namespace_members_take_optax_call(namespace, member):
    """Each member of optax's namespace is in gradxform's, with optax's parameters."""
    note = member_difference(namespace, member)
    if (namespace, member) in NOT_PROVIDED:
        assert note == "missing", f"gx.{namespace}.{member} exists now: remove it from " \
                                  f"NOT_PROVIDED and from the guide's sentence"
        assert f"{namespace}.{member}" in GUIDE.read_text(), "the guide must name it"
        return
    assert note is None, f"gx.{namespace}.{member}: {note}"


def test_guide_table_parser():
    text = ("## Signature differences\n\n| name | differs in | instead |\n| --- | --- | --- |\n"
            "| `gx.a`, `gx.b` | arguments, results | ... |\n| `c` | order | ... |\n\n## Next\n"
            "| `d` | order | |\n")
    assert listed_differences(text) == {"a": {"arguments", "results"},
                                        "b": {"arguments", "results"}, "c": {"order"}}


if __name__ == "__main__":
    import time

    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")
    start = time.perf_counter()
    for name in CALLED:
        try:
            found = differences(name)
        except Exception as e:  # noqa: BLE001
            print(f"{name:34s} HARNESS {type(e).__name__}: {e}")
            continue
        if found.kinds:
            print(f"{name:34s} {', '.join(sorted(found.kinds))}")
            for note in found.notes:
                print(f"{'':36s}{note}")
    for namespace, member in MEMBERS:
        member_note = member_difference(namespace, member)
        if member_note:
            print(f"{namespace + '.' + member:34s} {member_note}")
    print(f"{len(CALLED)} names in {time.perf_counter() - start:.1f} s")
