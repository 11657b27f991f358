"""Values: frozen dataclasses that are pytrees, compare equal by content and check their arguments.

Every transformation and every schedule in gradxform is a :class:`Module`. A module's fields are
of three kinds, declared with :func:`hyper`, :func:`static` and :func:`child`:

* ``hyper``: a float hyperparameter. It is a pytree leaf (a Python number or an array) or a
  schedule (itself a module whose numbers are leaves). Changing it is new data, not a new program:
  jit does not retrace, vmap can batch over it, grad can differentiate through it. A Python number
  is range-checked when the module is built; arrays are checked when they are concrete; traced
  values cannot be checked (documented at each use).
* ``static``: structure (flags, dtypes, sizes, names, masks). Part of the tree definition, so a
  different value is a different program.
* ``child``: nested modules or pytrees of them (the links of a chain, the inner optimizer of a
  wrapper).

Errors raised while checking name the public call the user made (``adam: b1 must be in [0, 1),
got 1.0``), see :func:`api`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
import numbers
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np

__all__ = ["Module", "hyper", "static", "child", "api", "api_name", "running", "Interval", "freeze",
           "thaw"]

_KIND = "gradxform.kind"
_INTERVAL = "gradxform.interval"
_INTEGER = "gradxform.integer"
_DECAYS_IN = "gradxform.decays_in"


# --------------------------------------------------------------------------------------------
# Field declarations.


@dataclasses.dataclass(frozen=True)
class Interval:
    """A real interval such as ``[0, 1)`` or ``(0, inf)``, with the phrase used in errors."""

    lo: float
    hi: float
    lo_closed: bool
    hi_closed: bool

    @classmethod
    def parse(cls, text: str) -> Interval:
        text = text.replace(" ", "")
        lo_s, hi_s = text[1:-1].split(",")
        return cls(float(lo_s), float(hi_s), text[0] == "[", text[-1] == "]")

    def __contains__(self, x: float) -> bool:
        above = x >= self.lo if self.lo_closed else x > self.lo
        below = x <= self.hi if self.hi_closed else x < self.hi
        return above and below

    def phrase(self) -> str:
        def num(v):
            return str(int(v)) if float(v).is_integer() else repr(v)

        if math.isinf(self.hi) and not math.isinf(self.lo):
            return f"{'>=' if self.lo_closed else '>'} {num(self.lo)}"
        if math.isinf(self.lo) and not math.isinf(self.hi):
            return f"{'<=' if self.hi_closed else '<'} {num(self.hi)}"
        left = "[" if self.lo_closed else "("
        right = "]" if self.hi_closed else ")"
        return f"in {left}{num(self.lo)}, {num(self.hi)}{right}"


def hyper(default: Any = dataclasses.MISSING, interval: str | None = None, *, integer: bool = False,
          decays_in: str | None = None):
    """A float hyperparameter field: a pytree leaf or a schedule, checked against ``interval``.

    ``interval`` is written as in mathematics, ``"[0, 1)"``, ``"(0, inf)"``; every value must
    also be finite. ``integer=True`` asks for a whole number (step counts of schedules).
    ``decays_in="mu_dtype"`` names the static field holding the dtype of the accumulator this
    decay rate multiplies: a rate that rounds to 1 in an explicitly requested dtype is rejected.
    """
    meta = {_KIND: "hyper", _INTERVAL: Interval.parse(interval) if interval else None,
            _INTEGER: integer, _DECAYS_IN: decays_in}
    return dataclasses.field(default=default, metadata=meta)


def static(default: Any = dataclasses.MISSING):
    """A structural field: flags, dtypes, sizes, names. Part of the tree definition."""
    return dataclasses.field(default=default, metadata={_KIND: "static"})


def child(default: Any = dataclasses.MISSING):
    """A field holding nested modules (or pytrees of them)."""
    return dataclasses.field(default=default, metadata={_KIND: "child"})


def _kind(field: dataclasses.Field) -> str:
    return field.metadata.get(_KIND, "child")


# --------------------------------------------------------------------------------------------
# Naming the public call in errors.

_API: contextvars.ContextVar[tuple[str, Mapping[tuple[str, str], str]] | None]
_API = contextvars.ContextVar("gradxform_api", default=None)


def api(name: str, rename: Mapping[tuple[str, str], str] | None = None):
    """Decorate a public factory so argument errors raised while it builds name it.

    ``rename`` maps ``(module class name, field)`` to the factory's own argument name, for
    factories that pass an argument on under another name (``sgd(momentum=...)`` builds
    ``trace(decay=...)``).
    """

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if _API.get() is not None:  # an outer public call already named itself
                return fn(*args, **kwargs)
            token = _API.set((name, dict(rename or {})))
            try:
                return fn(*args, **kwargs)
            finally:
                _API.reset(token)

        return wrapper

    return decorate


@contextlib.contextmanager
def running(name: str) -> Iterator[None]:
    """While a transformation called ``name`` runs ``init`` or ``update``, errors its links raise
    name it (``sign_sgd: ...`` rather than the link's class), unless a public call already does.
    """
    if _API.get() is not None:
        yield
        return
    token = _API.set((name, {}))
    try:
        yield
    finally:
        _API.reset(token)


@contextlib.contextmanager
def _no_api() -> Iterator[None]:
    token = _API.set(None)
    try:
        yield
    finally:
        _API.reset(token)


def api_name(module_cls: type, field: str | None = None) -> tuple[str, str | None]:
    """The (call name, argument name) to use in a message about ``module_cls.field``."""
    current = _API.get()
    if current is None:
        return module_cls.__name__, field
    name, rename = current
    return name, rename.get((module_cls.__name__, field), field)


# --------------------------------------------------------------------------------------------
# Checking hyperparameters.


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _check_hyper(cls: type, field: dataclasses.Field, value: Any) -> None:
    """Range-check one hyperparameter value (numbers and concrete arrays; not tracers)."""
    from gradxform._src.schedules import Schedule  # late import: schedules are modules

    if value is None or isinstance(value, Schedule) or _is_tracer(value):
        return
    call, arg = api_name(cls, field.name)
    if isinstance(value, bool) or isinstance(value, (str, bytes)) or isinstance(value, complex):
        raise TypeError(
            f"{call}: {arg} must be a real number, an array or a schedule, got {value!r}"
        )
    if isinstance(value, numbers.Real):
        values = np.asarray([float(value)])
    elif hasattr(value, "shape") and hasattr(value, "dtype"):
        if isinstance(value, jax.ShapeDtypeStruct):
            return
        arr = np.asarray(value)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(
                f"{call}: {arg} must hold real numbers, got an array of dtype {arr.dtype}"
            )
        values = arr.astype(np.float64).ravel()
    else:
        raise TypeError(
            f"{call}: {arg} must be a real number, an array or a schedule, "
            f"got {type(value).__name__} {value!r}"
        )
    interval: Interval | None = field.metadata.get(_INTERVAL)
    for v in values:
        shown = value
        if np.ndim(value) != 0:
            shown = f"{float(v)!r} (in an array of shape {np.shape(value)})"
        if not math.isfinite(v):
            raise ValueError(f"{call}: {arg} must be finite, got {shown}")
        if interval is not None and v not in interval:
            raise ValueError(f"{call}: {arg} must be {interval.phrase()}, got {shown}")
        if field.metadata.get(_INTEGER) and not float(v).is_integer():
            raise ValueError(f"{call}: {arg} must be a whole number, got {shown}")


# --------------------------------------------------------------------------------------------
# Freezing containers so that static fields can hold them and stay hashable.


@dataclasses.dataclass(frozen=True)
class _Frozen:
    """A pytree stored as (tree definition, leaves) so it can live in static fields."""

    treedef: Any
    leaves: tuple

    def __repr__(self) -> str:
        return repr(thaw(self))


def freeze(tree: Any) -> Any:
    """Make a pytree of hashable leaves hashable (callables and None pass through)."""
    if tree is None or callable(tree) or isinstance(tree, _Frozen):
        return tree
    leaves, treedef = jax.tree.flatten(tree)
    return _Frozen(treedef, tuple(leaves))


def thaw(frozen: Any) -> Any:
    """Undo :func:`freeze`."""
    if isinstance(frozen, _Frozen):
        return jax.tree.unflatten(frozen.treedef, frozen.leaves)
    return frozen


# --------------------------------------------------------------------------------------------
# Modules.


def _leaf_key(x: Any) -> Any:
    if _is_tracer(x):
        return ("tracer", id(x))
    if isinstance(x, numbers.Number) and not isinstance(x, bool):
        return float(x) if isinstance(x, numbers.Real) else complex(x)
    try:
        arr = np.asarray(x)
    except Exception:  # noqa: BLE001 - an opaque leaf is compared by identity
        return ("object", id(x))
    if arr.ndim == 0:
        return arr.item()
    return (arr.shape, tuple(arr.ravel().tolist()))


def _leaf_equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if _is_tracer(a) or _is_tracer(b):
        return False
    try:
        a_arr, b_arr = np.asarray(a), np.asarray(b)
    except Exception:  # noqa: BLE001
        return a == b
    return a_arr.shape == b_arr.shape and bool(np.array_equal(a_arr, b_arr))


def _short_repr(x: Any) -> str:
    if _is_tracer(x):
        return f"<traced {x.dtype}{list(x.shape)}>"
    if isinstance(x, (np.ndarray, jax.Array)) and not isinstance(x, jax.core.Tracer):
        if x.size <= 8:
            return f"array({np.asarray(x).tolist()}, {x.dtype})"
        return f"array<{x.dtype}{list(x.shape)}>"
    if isinstance(x, type):
        return x.__name__
    if isinstance(x, np.dtype):
        return x.name
    if callable(x) and not isinstance(x, Module):
        return getattr(x, "__qualname__", None) or getattr(x, "__name__", None) or repr(x)
    return repr(x)


class Module:
    """Base of gradxform values: a frozen dataclass registered as a pytree.

    Subclasses are turned into frozen dataclasses automatically. ``hyper`` and ``child`` fields
    are pytree children, ``static`` fields are tree-definition metadata. Equality and hashing go
    by content (two ``adam(1e-3)`` are equal and hash alike), ``repr`` shows the fields.
    Unflattening (inside jit, vmap, grad) bypasses ``__init__``, so checks run only when a user
    builds a value.
    """

    __slots__ = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(frozen=True, eq=False, repr=False)(cls)
        fields = dataclasses.fields(cls)
        cls._data_fields = tuple(f.name for f in fields if _kind(f) != "static")
        cls._static_fields = tuple(f.name for f in fields if _kind(f) == "static")
        cls._hyper_fields = tuple(f.name for f in fields if _kind(f) == "hyper")
        jax.tree_util.register_pytree_with_keys(
            cls, cls._flatten_with_keys, cls._unflatten, cls._flatten
        )

    # -- construction ------------------------------------------------------------------------

    def __post_init__(self) -> None:
        from gradxform._src import dtypes  # late import: the policy module uses modules' errors
        from gradxform._src.schedules import as_schedule  # late import: schedules are modules

        for field in dataclasses.fields(self):
            if _kind(field) != "hyper":
                continue
            value = getattr(self, field.name)
            if callable(value) and not isinstance(value, Module):
                value = as_schedule(value)
                object.__setattr__(self, field.name, value)
            _check_hyper(type(self), field, value)
        for field in dataclasses.fields(self):
            if field.metadata.get(_DECAYS_IN):
                dtypes.check_decay_fits(self, field.name, field.metadata[_DECAYS_IN])
        self.check()

    def check(self) -> None:
        """Further argument checks of a subclass, run after the per-field ones."""

    def error(self, message: str, field: str | None = None, exc: type = ValueError):
        """An exception naming the public call (and the argument, if ``field`` is given)."""
        call, arg = api_name(type(self), field)
        if arg is not None:
            sep = "" if message.startswith("=") else " "
            return exc(f"{call}: {arg}{sep}{message}")
        return exc(f"{call}: {message}")

    def replace(self, **changes: Any):
        """A copy with some fields changed (checked like a new value)."""
        with _no_api():
            return dataclasses.replace(self, **changes)

    # -- pytree ------------------------------------------------------------------------------

    def _flatten(self):
        children = tuple(getattr(self, n) for n in self._data_fields)
        aux = tuple(getattr(self, n) for n in self._static_fields)
        return children, aux

    def _flatten_with_keys(self):
        children = tuple(
            (jax.tree_util.GetAttrKey(n), getattr(self, n)) for n in self._data_fields
        )
        aux = tuple(getattr(self, n) for n in self._static_fields)
        return children, aux

    @classmethod
    def _unflatten(cls, aux, children):
        obj = object.__new__(cls)
        for name, value in zip(cls._data_fields, children):
            object.__setattr__(obj, name, value)
        for name, value in zip(cls._static_fields, aux):
            object.__setattr__(obj, name, value)
        return obj

    # -- value semantics ---------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        leaves_a, tree_a = jax.tree.flatten(self)
        leaves_b, tree_b = jax.tree.flatten(other)
        return tree_a == tree_b and all(map(_leaf_equal, leaves_a, leaves_b))

    def __hash__(self) -> int:
        leaves, treedef = jax.tree.flatten(self)
        return hash((treedef, tuple(_leaf_key(x) for x in leaves)))

    def __repr__(self) -> str:
        parts = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if _kind(field) == "static" and field.default is not dataclasses.MISSING:
                if value == field.default:
                    continue
            parts.append(f"{field.name}={_short_repr(value)}")
        return f"{type(self).__name__}({', '.join(parts)})"

    # -- traversal ---------------------------------------------------------------------------

    def submodules(self) -> Iterator[Module]:
        """This module and every module nested in its fields, depth first."""
        yield self
        for name in self._data_fields:
            yield from _modules_in(getattr(self, name))


def _modules_in(value: Any) -> Iterator[Module]:
    if isinstance(value, Module):
        yield from value.submodules()
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _modules_in(v)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _modules_in(v)

