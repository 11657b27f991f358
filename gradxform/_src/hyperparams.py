"""Changing hyperparameters: in the value (``set_hyperparams``) or in the state
(``inject_hyperparams``).

A transformation is a value whose float hyperparameters are pytree leaves, so a new learning rate
is new data for ``jax.jit``: pass the optimizer as an argument and nothing recompiles. Two
places in a training loop do not take it as an argument:

* **flax nnx** keeps ``nnx.Optimizer.tx`` as a static attribute, where Python numbers are part
  of the program: assigning a new optimizer retraces. Either keep the numbers in the state
  (:func:`inject_hyperparams`, as with optax) or make them nnx data with
  :func:`hyperparams_as_arrays` (``optimizer.tx = nnx.data(gx.hyperparams_as_arrays(tx))``).
* **closures**: a ``jax.jit`` function that closes over ``opt`` bakes its numbers in. Pass
  ``opt`` as an argument instead.

:func:`set_hyperparams` builds the new value, finding a hyperparameter anywhere in a chain or a
wrapper by the name or the ``"link.field"`` path that :func:`~gradxform.hyperparams` reports.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradxform._src import dtypes
from gradxform._src.base import (
    NO_STATE,
    GradientTransformation,
    Step,
    child,
    static,
    transformation,
    walk,
)
from gradxform._src.module import Module, freeze, renamed_error, thaw
from gradxform._src.schedules import Schedule, as_schedule
from gradxform._src.types import DType, PyTree

__all__ = ["set_hyperparams", "hyperparams_as_arrays", "inject_hyperparams",
           "inject_stateful_hyperparams", "InjectHyperparamsState"]


# --------------------------------------------------------------------------------------------
# set_hyperparams: a new value with some hyperparameters changed.


class _Slot(NamedTuple):
    """One hyperparameter field of one transformation inside ``tx``."""

    position: int               # of the transformation, in walk order
    path: tuple[str, ...]       # link labels from the root
    field: str

    @property
    def key(self) -> str:
        return ".".join(self.path + (self.field,))


def _slots(tx: GradientTransformation) -> list[_Slot]:
    out: list[_Slot] = []
    for i, (path, t, _, _) in enumerate(walk(tx)):
        out.extend(_Slot(i, path, name) for name in t._hyper_fields)
    return out


def _matches(key: str, slot: _Slot) -> bool:
    """``key`` names ``slot``: its last part is the field, and its other parts are link
    labels met in this order on the way down (``"adam.learning_rate"``)."""
    parts = key.split(".")
    if parts[-1] != slot.field:
        return False
    rest = iter(slot.path)
    return all(any(p == label for label in rest) for p in parts[:-1])


def _shown_keys(slots: list[_Slot], values: dict[int, Any] | None = None) -> list[str]:
    counts: dict[str, int] = {}
    for s in slots:
        counts[s.field] = counts.get(s.field, 0) + 1
    return [s.field if counts[s.field] == 1 else s.key for s in slots]


def _resolve(tx: GradientTransformation, changes: Mapping[str, Any]) -> dict[_Slot, Any]:
    slots = _slots(tx)
    chosen: dict[_Slot, Any] = {}
    for key, value in changes.items():
        exact = [s for s in slots if s.key == key]
        found = exact or [s for s in slots if _matches(key, s)]
        if not found:
            raise KeyError(
                f"set_hyperparams: {tx.name} has no hyperparameter {key!r}; its "
                f"hyperparameters are {_shown_keys(slots)} (a name, or a path of link labels "
                "and the name, as gx.hyperparams reports them). Values an optimizer adapts "
                "at run time (a loss scale, a plateau scale) live in the state: change them "
                "with gx.tree_set(state, ...).")
        if len(found) > 1:
            raise ValueError(
                f"set_hyperparams: {key!r} is ambiguous in {tx.name}: it names "
                f"{[s.key for s in found]}; give one of these paths (or a shorter one that "
                "names a single field, such as 'label.field').")
        if found[0] in chosen:
            raise ValueError(f"set_hyperparams: {key!r} and another argument both name "
                             f"{found[0].key}")
        chosen[found[0]] = value
    return chosen


def _like(old: Any, new: Any) -> Any:
    """A number replacing an array keeps it an array (of the same dtype): the value keeps its
    tree structure, so nnx and jit treat the new value as the same program."""
    if isinstance(old, jax.Array) and isinstance(new, (int, float)) and not isinstance(new, bool):
        return jnp.asarray(new, old.dtype)
    return new


def _substitute(value: Any, pending: dict[int, list]) -> Any:
    """``value`` with nested transformations replaced, each by the next replacement queued for
    its identity (a transformation that occurs twice may get two different replacements)."""
    if isinstance(value, GradientTransformation) and pending.get(id(value)):
        return pending[id(value)].pop(0)
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_substitute(v, pending) for v in value)
    if isinstance(value, list):
        return [_substitute(v, pending) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, pending) for k, v in value.items()}
    return value


def _rebuild(t: GradientTransformation, index: list[int], chosen: dict[int, dict[str, Any]],
             ) -> GradientTransformation:
    me = index[0]
    index[0] += 1
    subs = [sub for _, sub, _, _ in t.links(NO_STATE, Step(None, {}))]
    new_subs = [_rebuild(sub, index, chosen) for sub in subs]
    own = {name: _like(getattr(t, name), value) for name, value in chosen.get(me, {}).items()}
    if not own and all(a is b for a, b in zip(subs, new_subs)):
        return t
    pending: dict[int, list] = {}
    for old, new in zip(subs, new_subs):
        pending.setdefault(id(old), []).append(new)
    fields = {}
    for f in dataclasses.fields(t):
        if f.name in own or f.name in type(t)._static_fields:
            continue
        value = getattr(t, f.name)
        replaced = _substitute(value, pending)
        if replaced is not value:
            fields[f.name] = replaced
    if any(pending.values()):
        raise TypeError(
            f"set_hyperparams: the transformations inside {t.name} are built when it runs (not "
            "fields of it), so they cannot be edited; an inject_hyperparams optimizer keeps "
            "its hyperparameters in the state: state.hyperparams[name] = value")
    return t.replace(**fields, **own)


def set_hyperparams(tx: GradientTransformation, values: Mapping[str, Any] | None = None, /,
                    **kwargs: Any) -> GradientTransformation:
    """A copy of ``tx`` with some hyperparameters changed, wherever they are inside it.

    A hyperparameter is named as :func:`~gradxform.hyperparams` reports it: by its name if only
    one transformation has it (``learning_rate``, ``b1``), else by a path of link labels and
    the name (``"scale_by_adam.eps"``; any labels that pick a single field will do, such as
    ``"decay.learning_rate"`` in a :class:`~gradxform.partition` with a group ``"decay"``).
    Paths are not valid Python keywords: pass them in a dict, ``set_hyperparams(opt,
    {"adam.b1": 0.95})``. The new values are checked as when the optimizer is built. A
    number replacing an array becomes an array of the same dtype, so the value keeps its
    tree structure (see :func:`hyperparams_as_arrays`).

    ``opt.replace(...)`` changes the fields of ``opt`` itself only; ``adam`` is a chain, whose
    learning rate is a field of its last link.

    Args:
      tx: the transformation.
      values: ``{name or path: value}``.
      **kwargs: more ``name=value`` pairs.

    Returns:
      A new transformation (``tx`` is a value and is not changed). Passed to a jitted step as
      an argument it does not recompile it, as long as only numbers changed.

    Raises:
      KeyError: a name that no hyperparameter has (the message lists those there are).
      ValueError: a name that several have (the message lists their paths), or a value out of
        range.

    Example::

        opt = gx.chain(gx.clip_by_global_norm(1.0), gx.adamw(1e-3, weight_decay=1e-4))
        opt = gx.set_hyperparams(opt, learning_rate=3e-4, weight_decay=1e-2)
        opt = gx.set_hyperparams(opt, {"scale_by_adam.b2": 0.95})
    """
    if not isinstance(tx, GradientTransformation):
        raise TypeError(f"set_hyperparams: expected a gradxform transformation, got "
                        f"{type(tx).__name__}")
    changes = dict(values or {})
    overlap = set(changes) & set(kwargs)
    if overlap:
        raise TypeError(f"set_hyperparams: {sorted(overlap)} given twice")
    changes.update(kwargs)
    if not changes:
        return tx
    by_index: dict[int, dict[str, Any]] = {}
    for slot, value in _resolve(tx, changes).items():
        by_index.setdefault(slot.position, {})[slot.field] = value
    return _rebuild(tx, [0], by_index)


def hyperparams_as_arrays(tx: Any, dtype: DType = None) -> Any:
    """``tx`` with every number in it (hyperparameters, schedule parameters) a scalar array.

    JAX traces an array leaf as data wherever the value is held; a Python number is data when
    the value is a ``jax.jit`` argument but static where a framework keeps the value as
    structure, as flax nnx does with ``nnx.Optimizer.tx``. With arrays there, a new learning
    rate does not retrace::

        optimizer = nnx.Optimizer(model, gx.adam(1e-3), wrt=nnx.Param)
        optimizer.tx = nnx.data(gx.hyperparams_as_arrays(optimizer.tx))
        ...
        optimizer.tx = nnx.data(gx.set_hyperparams(optimizer.tx, learning_rate=3e-4))

    Args:
      tx: a transformation or a schedule (any value).
      dtype: the dtype of floating-point numbers (default: JAX's default float, float32).
        Whole numbers (step counts) become int32 arrays.
    """

    def one(x):
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            return x
        if isinstance(x, int):
            return jnp.asarray(x, jnp.int32)
        return jnp.asarray(x, dtype or jnp.result_type(float))

    return jax.tree.map(one, tx)


# --------------------------------------------------------------------------------------------
# inject_hyperparams: the hyperparameters in the state.


class InjectHyperparamsState(NamedTuple):
    """State of an :func:`inject_hyperparams` optimizer.

    Attributes:
      hyperparams: ``{argument: value}``: the numeric arguments of the factory (change them
        here, ``state.hyperparams["learning_rate"] = 0.1``, and the next update uses them) and
        the current value of each scheduled one (written at every update; a value written
        there is replaced by the schedule's).
      inner_state: the state of the optimizer the factory builds.
    """

    hyperparams: dict[str, Any]
    inner_state: Any


def _float_dtype(params: PyTree) -> Any:
    """optax's default: the highest floating-point dtype of the params (float32 if none)."""
    found = None
    for x in jax.tree.leaves(params):
        dt = dtypes.leaf_dtype(x)
        if jnp.issubdtype(dt, jnp.floating):
            found = dt if found is None else dtypes.wider(found, dt)
    return found or dtypes.canonical(jnp.float32)


def _convert(value: Any, dtype: Any) -> Any:
    """Floating-point values to ``dtype`` (strongly typed arrays keep theirs); the rest as
    arrays of their own dtype."""
    if isinstance(value, jax.Array) and not getattr(value, "weak_type", False):
        return value
    current = getattr(value, "dtype", None) or jnp.result_type(value)
    if jnp.issubdtype(current, jnp.floating):
        return jnp.asarray(value, dtype)
    return jnp.asarray(value)


def _is_numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float, np.number, np.ndarray, jax.Array))


class _Injected(GradientTransformation):
    """The transformation :func:`inject_hyperparams` returns (see there)."""

    factory: Callable[..., Any] = static()
    numeric: dict[str, Any] = child()
    schedules: dict[str, Schedule] = child()
    others: Any = static(converter=freeze)
    hyperparam_dtype: DType = static(default=None)
    uses_count = True
    # the state holds scalars; the transformation built at every update runs on the buffers
    # as it declares (check_flat builds it to ask)
    flat_support = "elementwise"

    @property
    def name(self) -> str:
        return f"inject_hyperparams({getattr(self.factory, '__name__', 'factory')})"

    def check_flat(self, layout):
        dtype = self._dtype(layout.abstract())
        self._build(self._values(self.numeric, jnp.zeros([], jnp.int32), dtype)).check_flat(
            layout)

    def _dtype(self, params):
        if self.hyperparam_dtype is not None:
            return dtypes.canonical(self.hyperparam_dtype)
        return _float_dtype(params)

    def _build(self, values: Mapping[str, Any]) -> GradientTransformation:
        return transformation(self.factory(**thaw(self.others), **values))

    def check(self):
        # Build the inner transformation once, so that its argument checks run when this value
        # is built (inject_hyperparams(adam)(learning_rate=-1.0) is refused here, not at init).
        values = dict(self.numeric)
        values.update({k: s(jnp.zeros([], jnp.int32)) for k, s in self.schedules.items()})
        try:
            self._build(values)
        except (TypeError, ValueError) as e:
            named = renamed_error(e, self.name)
            if named is None:
                raise
            raise named from None

    def _values(self, stored: Mapping[str, Any], count: Any, dtype: Any) -> dict[str, Any]:
        values = {k: _convert(v, dtype) for k, v in stored.items() if k in self.numeric}
        for k, schedule in self.schedules.items():
            values[k] = _convert(schedule(count), dtype)
        return values

    def init_state(self, params):
        dtype = self._dtype(params)
        values = self._values(self.numeric, jnp.zeros([], jnp.int32), dtype)
        inner = self._build(values)
        return InjectHyperparamsState(dict(values), inner.init_state(params))

    def apply(self, updates, state, params, step):
        dtype = self._dtype(params if params is not None else updates)
        values = self._values(state.hyperparams, step.count, dtype)
        inner = self._build(values)
        new_updates, inner_state = inner.apply(updates, state.inner_state, params, step)
        return new_updates, InjectHyperparamsState(values, inner_state)

    def links(self, state, step):
        stored = state.hyperparams if isinstance(state.hyperparams, dict) else self.numeric
        count = jnp.zeros([], jnp.int32) if step.count is None else step.count
        values = {k: stored[k] for k in self.numeric}
        values.update({k: s(count) for k, s in self.schedules.items()})
        return iter([("inner", self._build(values), state.inner_state, step)])


def inject_hyperparams(inner_factory: Callable[..., Any], static_args: str | Iterable[str] = (),
                       hyperparam_dtype: DType = None) -> Callable[..., GradientTransformation]:
    """Keep the numeric arguments of an optimizer factory in the optimizer's state (optax's
    ``inject_hyperparams``).

    ``inject_hyperparams(gx.adam)(learning_rate=1e-3)`` is the optimizer ``gx.adam(1e-3)``
    whose state holds ``hyperparams = {"learning_rate": ..., "b1": ..., ...}``: every numeric
    argument of the call (given or by default), keyed by the factory's argument names. Change
    one in the state, ``state.hyperparams["learning_rate"] = 3e-4`` (or functionally
    ``gx.tree_set(state, learning_rate=3e-4)``), and the next update uses it. An argument given
    as a schedule (any callable) is evaluated at the step count at every update and its value
    written there (a value written into the state is replaced by the schedule's).

    In gradxform the hyperparameters of any optimizer are already data (pass the optimizer to
    a jitted step as an argument and a new learning rate does not recompile): this is for code
    that edits the state, and for flax nnx, where ``nnx.Optimizer.tx`` is static but
    ``optimizer.opt_state.hyperparams["learning_rate"][...] = 3e-4`` is not.

    Conventions. As optax's: ``static_args`` names arguments to keep out of the state (a
    callable that is not a schedule); booleans and non-numeric arguments always stay out;
    floating-point values are stored in ``hyperparam_dtype``, by default the highest
    floating-point dtype of the params. The factory is rebuilt from these values at every
    update, so, as with optax, a factory that branches in Python on a numeric argument needs
    it in ``static_args``. gradxform's states keep no step count of their own (the optimizer's
    is ``state.count``); the keys are the factory's arguments (``momentum`` for ``gx.sgd``),
    while :func:`~gradxform.hyperparams` reports the fields of the transformations built.

    Args:
      inner_factory: a function returning a transformation (``gx.adam``, or an optax factory).
      static_args: names of arguments kept out of the state.
      hyperparam_dtype: the dtype of floating-point hyperparameters in the state.

    Returns:
      A function with the factory's signature that builds the optimizer.

    Example::

        opt = gx.inject_hyperparams(gx.adamw)(learning_rate=1e-3, weight_decay=1e-4)
        state = opt.init(params)
        state.hyperparams["learning_rate"] = 3e-4      # the next update uses it
    """
    if not callable(inner_factory):
        raise TypeError(f"inject_hyperparams: inner_factory must be a function returning a "
                        f"transformation, got {inner_factory!r}")
    static = {static_args} if isinstance(static_args, str) else set(static_args)
    signature = inspect.signature(inner_factory)
    unknown = static - set(signature.parameters)
    if unknown:
        raise ValueError(f"inject_hyperparams: static_args {sorted(unknown)} are not arguments "
                         f"of {getattr(inner_factory, '__name__', inner_factory)}; its "
                         f"arguments are {list(signature.parameters)}")

    @functools.wraps(inner_factory)
    def build(*args: Any, **kwargs: Any) -> GradientTransformation:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        numeric, schedules, others = {}, {}, {}
        for name, value in bound.arguments.items():
            kind = signature.parameters[name].kind
            if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise TypeError(f"inject_hyperparams: {name} is a *args/**kwargs parameter of "
                                "the factory; only named arguments can be injected")
            if name in static or isinstance(value, bool):
                others[name] = value
            elif isinstance(value, Schedule) or (callable(value) and not isinstance(value,
                                                                                     Module)):
                schedules[name] = as_schedule(value)
            elif _is_numeric(value):
                numeric[name] = value
            else:
                others[name] = value
        return _Injected(factory=inner_factory, numeric=numeric, schedules=schedules,
                         others=others, hyperparam_dtype=hyperparam_dtype)

    return build


def inject_stateful_hyperparams(inner_factory: Callable[..., Any],
                                static_args: str | Iterable[str] = (),
                                hyperparam_dtype: DType = None,
                                ) -> Callable[..., GradientTransformation]:
    """optax's name for :func:`inject_hyperparams` with stateful schedules.

    gradxform's schedules are functions of the step count (values, no state of their own), so
    this is :func:`inject_hyperparams`; optax deprecates the name the same way.
    """
    return inject_hyperparams(inner_factory, static_args, hyperparam_dtype)
