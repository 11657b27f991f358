"""Values: frozen dataclasses that are pytrees, compare equal by content and check their arguments.

Every transformation and every schedule in gradxform is a :class:`Module`. A module's fields are
of three kinds, declared with :func:`hyper`, :func:`static` and :func:`child`:

* ``hyper``: a float hyperparameter, a pytree leaf (a Python number or an array). Changing it is
  new data, not a new program: jit does not retrace, vmap can batch over it, grad can
  differentiate through it. A Python number is range-checked when the module is built; arrays
  are checked when they are concrete; traced values cannot be checked (documented at each use).
  Layers above this one widen what a field accepts through its ``converter`` and ``accepts``
  hooks (transformations accept schedules, see ``gradxform._src.base.hyper``).
* ``static``: structure (flags, dtypes, sizes, names, masks). Part of the tree definition, so a
  different value is a different program.
* ``child``: nested modules or pytrees of them (the links of a chain, the inner optimizer of a
  wrapper).

Any field may have a ``converter`` (run once, when a value is built, never when JAX rebuilds a
value from its leaves) and may be keyword-only (``kw_only=True``).

**Errors name the call the user made.** A failed check raises an ordinary ``ValueError`` or
``TypeError`` whose text names the module and the argument (``scale_by_adam: b1 must be in
[0, 1), got 1.0``) and which carries an :class:`Origin` (the module class, the field, the
message). A public factory decorated with :func:`api` re-raises such an error under its own
name, with the argument renamed where it passes it on under another name: ``@api("sgd",
rename={field_of(trace, "decay"): "momentum"})`` turns ``trace: decay must be in [0, 1)`` into
``sgd: momentum must be in [0, 1)``. The mechanism is local: the decorator (or a
:func:`renaming` block) sits at the call site; nothing is global.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import numbers
import types
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, dataclass_transform

import jax
import numpy as np

from gradxform._src import dtypes
from gradxform._src.types import TreeDef

__all__ = ["Module", "hyper", "static", "child", "field_of", "api", "renaming", "Origin",
           "Invalid", "argument_error", "renamed_error", "validate", "Interval", "freeze",
           "thaw", "StableFunction", "stable_function", "describe_difference", "class_holding"]

_KIND = "gradxform.kind"
_INTERVAL = "gradxform.interval"
_INTEGER = "gradxform.integer"
_DECAYS_IN = "gradxform.decays_in"
_CONVERTER = "gradxform.converter"
_ACCEPTS = "gradxform.accepts"
_OPTIONAL = "gradxform.optional"


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


def hyper(default: Any = dataclasses.MISSING, interval: str | None = None, *,
          integer: bool = False, decays_in: str | None = None,
          converter: Callable[[Any], Any] | None = None,
          accepts: Callable[[Any], bool] | None = None,
          accepts_phrase: str | None = None, optional: bool = False,
          kw_only: bool = False) -> Any:
    """A float hyperparameter field: a pytree leaf, checked against ``interval``.

    Args:
      default: the default value (omit for a required argument).
      interval: written as in mathematics, ``"[0, 1)"``, ``"(0, inf)"``; every value must also
        be finite.
      integer: ask for a whole number (step counts of schedules).
      decays_in: the static field holding the dtype of the accumulator this decay rate
        multiplies (``"mu_dtype"``): a rate that rounds to 1 in an explicitly requested dtype is
        rejected.
      converter: applied to the value given by the user, before the checks.
      accepts: a predicate for values other than numbers and arrays that the field takes as
        they are (schedules); they are not range-checked here.
      accepts_phrase: how errors describe what the field accepts (default: "a real number or an
        array").
      optional: ``None`` is a value of the field (it means "none": no cap, no warm-up), which
        its documentation says. A field whose default is ``None`` is optional; any other field
        rejects ``None`` when the value is built.
      kw_only: the argument is keyword-only.
    """
    meta = {_KIND: "hyper", _INTERVAL: Interval.parse(interval) if interval else None,
            _INTEGER: integer, _DECAYS_IN: decays_in, _CONVERTER: converter,
            _ACCEPTS: (accepts, accepts_phrase), _OPTIONAL: optional or default is None}
    return dataclasses.field(default=default, metadata=meta, kw_only=kw_only)


def static(default: Any = dataclasses.MISSING, *,
           converter: Callable[[Any], Any] | None = None, kw_only: bool = False) -> Any:
    """A structural field: flags, dtypes, sizes, names. Part of the tree definition."""
    return dataclasses.field(default=default, kw_only=kw_only,
                             metadata={_KIND: "static", _CONVERTER: converter})


def child(default: Any = dataclasses.MISSING, *,
          converter: Callable[[Any], Any] | None = None, kw_only: bool = False) -> Any:
    """A field holding nested modules (or pytrees of them)."""
    return dataclasses.field(default=default, kw_only=kw_only,
                             metadata={_KIND: "child", _CONVERTER: converter})


def _kind(field: dataclasses.Field) -> str:
    return field.metadata.get(_KIND, "child")


def field_of(cls: type, name: str) -> dataclasses.Field:
    """The field ``name`` of the module class ``cls`` (an error at import time if it has none).

    Used as the key of a rename: ``rename={field_of(trace, "decay"): "momentum"}``.
    """
    found = {f.name: f for f in dataclasses.fields(cls)}.get(name)
    if found is None:
        raise AttributeError(f"{cls.__name__} has no field {name!r}")
    return found


# --------------------------------------------------------------------------------------------
# Errors that know which argument they are about.


class Origin(NamedTuple):
    """What an argument error is about, kept on the exception so callers can rename it.

    Attributes:
      owner: the module class whose check failed.
      field: the dataclass field checked, or ``None`` (a message about the whole value).
      arg: the argument name shown (the field's name until a caller renames it).
      call: the call name shown (the module's class name until a public call renames it).
      message: the rest of the text (``"must be in [0, 1), got 1.0"``).
    """

    owner: type | None
    field: dataclasses.Field | None
    arg: str | None
    call: str
    message: str


_ORIGIN = "__gradxform_origin__"


def _text(origin: Origin) -> str:
    if origin.arg is None:
        return f"{origin.call}: {origin.message}"
    sep = "" if origin.message.startswith(("=", "[")) else " "
    return f"{origin.call}: {origin.arg}{sep}{origin.message}"


def _raisable(origin: Origin, exc: type[BaseException]) -> BaseException:
    err = exc(_text(origin))
    setattr(err, _ORIGIN, origin)
    return err


def argument_error(owner: type | str, field: dataclasses.Field | str | None, message: str,
                   exc: type[BaseException] = ValueError) -> BaseException:
    """An ``exc`` reading ``"<owner>: <field> <message>"`` that :func:`api` can rename.

    ``owner`` is a module class (or a call name); ``field`` a dataclass field, a plain argument
    name, or ``None`` for a message about the whole call.
    """
    cls = owner if isinstance(owner, type) else None
    call = owner.__name__ if isinstance(owner, type) else str(owner)
    if isinstance(field, str) and cls is not None and dataclasses.is_dataclass(cls):
        field = {f.name: f for f in dataclasses.fields(cls)}.get(field, field)
    fld = field if isinstance(field, dataclasses.Field) else None
    arg = field.name if isinstance(field, dataclasses.Field) else field
    return _raisable(Origin(cls, fld, arg, call, message), exc)


def renamed_error(error: BaseException, call: str | None = None,
                  rename: Mapping[dataclasses.Field, str] | None = None) -> BaseException | None:
    """``error`` said by ``call`` with its argument renamed, or ``None`` if it is no argument
    error (it has no :class:`Origin`)."""
    origin = getattr(error, _ORIGIN, None)
    if origin is None:
        return None
    arg = origin.arg
    if rename and origin.field is not None and origin.field in rename:
        arg = rename[origin.field]
    new = origin._replace(arg=arg, call=call or origin.call)
    if new == origin:
        return None
    return _raisable(new, type(error))


class Invalid(Exception):
    """Raised by a field converter: the value is wrong; the module adds the call and the field.

    ``Invalid("must be a transformation, got 3", TypeError)`` becomes ``TypeError("chain:
    transforms must be a transformation, got 3")``.
    """

    def __init__(self, message: str, kind: type[BaseException] = ValueError):
        super().__init__(message)
        self.message, self.kind = message, kind


def api(name: str, rename: Mapping[dataclasses.Field, str] | None = None):
    """Decorate a public factory so that argument errors raised while it builds name it.

    ``rename`` maps fields of the modules it builds to the factory's own argument names, for
    arguments passed on under another name: ``sgd(momentum=...)`` builds ``trace(decay=...)``,
    so ``@api("sgd", rename={field_of(trace, "decay"): "momentum"})``. An error raised inside a
    nested public call is renamed again by the outer one: the user sees the call they made.
    """
    rename = dict(rename or {})
    for key in rename:
        if not isinstance(key, dataclasses.Field):
            raise TypeError(f"api({name!r}): rename keys must be fields (field_of(cls, name)), "
                            f"got {key!r}")

    def decorate(fn):
        @functools.wraps(fn)
        def public(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except (ValueError, TypeError) as e:
                new = renamed_error(e, name, rename)
                if new is None:
                    raise
                raise new from None

        # Marks a public factory (read by the hint for an uncalled factory, base.described).
        public.__gradxform_api__ = name  # type: ignore[attr-defined]  # a function attribute
        return public

    return decorate


@contextlib.contextmanager
def renaming(rename: Mapping[dataclasses.Field, str]) -> Iterator[None]:
    """Rename the argument of errors raised in a block of a factory.

    For a factory that builds the same kind of module twice from different arguments (``muon``
    builds two ``add_decayed_weights``, from ``weight_decay`` and ``adam_weight_decay``).
    """
    try:
        yield
    except (ValueError, TypeError) as e:
        new = renamed_error(e, None, rename)
        if new is None:
            raise
        raise new from None


# --------------------------------------------------------------------------------------------
# Checking hyperparameters.


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _check_hyper(cls: type, field: dataclasses.Field, value: Any) -> None:
    """Range-check one hyperparameter value (numbers and concrete arrays; not tracers).

    ``None`` is accepted only by an optional field (see :func:`hyper`).
    """
    accepts, phrase = field.metadata.get(_ACCEPTS, (None, None))
    phrase = phrase or "a real number or an array"

    def error(message, exc=ValueError):
        return argument_error(cls, field, message, exc)

    if value is None:
        if field.metadata.get(_OPTIONAL, True):
            return
        raise error(f"must be {phrase}, got None", TypeError)
    if _is_tracer(value):
        return
    if accepts is not None and accepts(value):
        return

    if isinstance(value, Module):
        what = "a whole number" if field.metadata.get(_INTEGER) else "a real number"
        raise error(f"must be {what} or an array, not {_short_repr(value)}", TypeError)
    if isinstance(value, bool) or isinstance(value, (str, bytes)) or isinstance(value, complex):
        raise error(f"must be {phrase}, got {value!r}", TypeError)
    if isinstance(value, numbers.Real):
        values = np.asarray([float(value)])
    elif hasattr(value, "shape") and hasattr(value, "dtype"):
        if isinstance(value, jax.ShapeDtypeStruct):
            return
        arr = np.asarray(value)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise error(f"must hold real numbers, got an array of dtype {arr.dtype}", TypeError)
        values = arr.astype(np.float64).ravel()
    else:
        raise error(f"must be {phrase}, got {type(value).__name__} {value!r}", TypeError)
    interval: Interval | None = field.metadata.get(_INTERVAL)
    for v in values:
        shown = value
        if np.ndim(value) != 0:
            shown = f"{float(v)!r} (in an array of shape {np.shape(value)})"
        if not math.isfinite(v):
            raise error(f"must be finite, got {shown}")
        if interval is not None and v not in interval:
            raise error(f"must be {interval.phrase()}, got {shown}")
        if field.metadata.get(_INTEGER) and not float(v).is_integer():
            raise error(f"must be a whole number, got {shown}")


def _check_flag(value: Any) -> Any:
    """The default converter of a static field annotated ``bool``: ``"yes"`` or ``3`` would be
    read as true without a word."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise Invalid(f"must be True or False, got {value!r}", TypeError)


def _check_dtype(value: Any) -> Any:
    """The default converter of a static field annotated ``DType`` (accumulator and state
    dtypes): ``None`` (the dtype policy's choice) or a floating-point or complex dtype, kept as
    given."""
    if value is None:
        return value
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise Invalid(f"must be a floating-point dtype, got {value!r}", TypeError) from None
    if not jax.numpy.issubdtype(dtype, jax.numpy.inexact):
        raise Invalid(f"must be a floating-point dtype, got {dtype}: an accumulator in "
                      f"{dtype} would round every update", TypeError)
    return value


_DEFAULT_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "bool": _check_flag, "DType": _check_dtype, "DType | None": _check_dtype}


def _convert(cls: type, field: dataclasses.Field, value: Any) -> Any:
    converter = field.metadata.get(_CONVERTER)
    if converter is None and _kind(field) == "static" and isinstance(field.type, str):
        converter = _DEFAULT_CONVERTERS.get(field.type)
    if converter is None:
        return value
    try:
        return converter(value)
    except Invalid as e:
        raise argument_error(cls, field, e.message, e.kind) from None


def validate(cls: type, name: str, value: Any) -> Any:
    """Convert and check ``value`` as the field ``name`` of ``cls`` would, and return it.

    For a factory that checks an argument it passes on in another form (``schedule_free_sgd``
    turns its learning rate into a warm-up schedule, whose own checks would name other
    arguments).
    """
    field = field_of(cls, name)
    value = _convert(cls, field, value)
    if _kind(field) == "hyper":
        _check_hyper(cls, field, value)
    return value


# --------------------------------------------------------------------------------------------
# Freezing containers so that static fields can hold them and stay hashable.


@dataclasses.dataclass(frozen=True)
class _Frozen:
    """A pytree stored as (tree definition, leaves) so it can live in static fields."""

    treedef: Any
    leaves: tuple

    def __repr__(self) -> str:
        return repr(thaw(self))


def class_holding(base: type, attribute: str, value: Any, cache: dict) -> type:
    """The subclass of ``base`` whose class attribute ``attribute`` is ``value``, made once per
    value and kept in ``cache``.

    Static metadata of a NamedTuple pytree (the param spec of ``OptState``, the layout of
    ``FlatParams``) lives on such a subclass: JAX compares node types, so it is part of the tree
    structure without being a leaf, and rebuilding the tuple from its fields keeps it.
    """
    found = cache.get(value)
    if found is None:
        found = type(base.__name__, (base,), {"__slots__": (), attribute: value,
                                               "__module__": base.__module__})
        cache[value] = found
    return found


def freeze(tree: Any) -> Any:
    """Make a pytree of hashable leaves hashable (callables and None pass through; a plain
    Python function becomes a :class:`StableFunction`, compared by what it computes)."""
    if isinstance(tree, types.FunctionType):
        return StableFunction(tree)
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
# Functions held by values (masks), compared by what they compute.


_PLAIN = (int, float, complex, str, bytes, bool, type(None), type, types.ModuleType,
          types.CodeType, np.dtype)


def _value_key(value: Any) -> Any:
    """A key for a value a function reads: the value itself if it is a plain hashable one
    (numbers, strings, modules, types), a function's own key, else its identity."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, tuple):
        return tuple(_value_key(v) for v in value)
    if isinstance(value, types.FunctionType):
        return _function_key(value)
    if isinstance(value, (Module, StableFunction)):
        return value
    return ("object", id(value))


def _global_names(code: types.CodeType) -> list[str]:
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(_global_names(const))
    return names


def _function_key(fn: types.FunctionType) -> tuple:
    """What ``fn`` computes: its code, the values in its closure, its defaults and the globals
    its code (and nested code) reads."""
    closure = tuple(_value_key(cell.cell_contents) for cell in (fn.__closure__ or ()))
    defaults = _value_key(fn.__defaults__ or ())
    kwdefaults = tuple(sorted((k, _value_key(v)) for k, v in (fn.__kwdefaults__ or {}).items()))
    names = sorted(set(_global_names(fn.__code__)))
    globals_ = tuple((n, _value_key(fn.__globals__[n])) for n in names if n in fn.__globals__)
    return (fn.__code__, closure, defaults, kwdefaults, globals_)


class StableFunction:
    """A plain Python function held by a value (a mask), compared by what it computes.

    Two lambdas written at the same place of the source are different objects, so a mask given
    as ``lambda p: ...`` in a loop would make every optimizer a new program (jit recompiles,
    ``gx.stack`` refuses to stack them). This wrapper compares functions by their code, the
    values in their closure, their defaults and the globals their code reads: the same lambda
    built twice with the same captured values is equal, hashes alike and is the same program;
    one capturing another value (or reading another global) is not. Values that are not plain
    numbers, strings, modules or types (arrays, lists) are compared by identity.
    """

    __slots__ = ("fn", "_key")

    def __init__(self, fn: types.FunctionType):
        self.fn = fn
        self._key = _function_key(fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StableFunction):
            return NotImplemented
        return self.fn is other.fn or self._key == other._key

    def __hash__(self) -> int:
        try:
            return hash(self._key)
        except TypeError:  # an unhashable default or closure value slipped through
            return hash(self.fn.__code__)

    def __repr__(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))

    @property
    def __name__(self) -> str:  # noqa: A003 - reads like the function it wraps
        return getattr(self.fn, "__name__", "function")

    def differences(self, other: StableFunction) -> str:
        """Why ``other`` is not equal to this function, in words."""
        mine, theirs = self._key, other._key
        if mine[0] is not theirs[0]:
            return ("two different functions (different code: defined at different places, "
                    "or a different function)")
        free = self.fn.__code__.co_freevars
        for name, a, b in zip(free, mine[1], theirs[1]):
            if a != b:
                return (f"the function captures {name!r}, which differs: "
                        f"{_short_repr(_cell(self.fn, name))} and "
                        f"{_short_repr(_cell(other.fn, name))}")
        if mine[2] != theirs[2] or mine[3] != theirs[3]:
            return (f"the function's default arguments differ: {self.fn.__defaults__} and "
                    f"{other.fn.__defaults__}")
        for (name, a), (_, b) in zip(mine[4], theirs[4]):
            if a != b:
                return f"the function reads the global {name!r}, whose values differ"
        return "the function captures a value compared by identity (an array, a list)"


def _cell(fn: types.FunctionType, name: str) -> Any:
    index = fn.__code__.co_freevars.index(name)
    return fn.__closure__[index].cell_contents if fn.__closure__ else None


def stable_function(value: Any) -> Any:
    """A plain Python function (a lambda, a ``def``) as a :class:`StableFunction`; any other
    value as it is (modules such as ``by_regex`` are values already)."""
    if isinstance(value, types.FunctionType):
        return StableFunction(value)
    return value


# --------------------------------------------------------------------------------------------
# Modules.


def _leaf_key(x: Any) -> Any:
    if _is_tracer(x):
        return ("tracer", id(x))
    if isinstance(x, numbers.Complex) and not isinstance(x, bool):
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


@dataclass_transform(frozen_default=True, eq_default=False,
                    field_specifiers=(hyper, static, child, dataclasses.field))
class Module:
    """Base of gradxform values: a frozen dataclass registered as a pytree.

    Subclasses are turned into frozen dataclasses automatically. ``hyper`` and ``child`` fields
    are pytree children, ``static`` fields are tree-definition metadata. Equality and hashing go
    by content (two ``adam(1e-3)`` are equal and hash alike), ``repr`` shows the fields.
    Unflattening (inside jit, vmap, grad) bypasses ``__init__``, so conversions and checks run
    only when a user builds a value.

    A subclass whose call signature differs from its fields (``chain(*transforms)``) writes its
    own ``__init__`` mapping the arguments to fields and ends it with
    ``self.__init_fields__(field=value, ...)``, which sets the fields, converts and checks them.
    """

    __slots__ = ()
    _data_fields: ClassVar[tuple[str, ...]] = ()
    _static_fields: ClassVar[tuple[str, ...]] = ()
    _hyper_fields: ClassVar[tuple[str, ...]] = ()

    #: The dataclass ``__init__`` of a subclass: sets the fields, converts and checks them.
    __init_fields__: ClassVar[Callable[..., None]]
    if TYPE_CHECKING:  # made by dataclasses.dataclass in __init_subclass__
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own_init = cls.__dict__.get("__init__")
        if own_init is not None:
            delattr(cls, "__init__")
        dataclasses.dataclass(frozen=True, eq=False, repr=False)(cls)
        # The generated __init__ stays reachable as __init_fields__ when the class has its own.
        cls.__init_fields__ = cls.__init__
        if own_init is not None:
            cls.__init__ = own_init  # type: ignore[method-assign]  # restored after dataclass()
        fields = dataclasses.fields(cls)
        cls._data_fields = tuple(f.name for f in fields if _kind(f) != "static")
        cls._static_fields = tuple(f.name for f in fields if _kind(f) == "static")
        cls._hyper_fields = tuple(f.name for f in fields if _kind(f) == "hyper")
        jax.tree_util.register_pytree_with_keys(
            cls, cls._flatten_with_keys, cls._unflatten, cls._flatten
        )

    # -- construction ------------------------------------------------------------------------

    def __post_init__(self) -> None:
        cls = type(self)
        fields = dataclasses.fields(self)
        for field in fields:
            value = getattr(self, field.name)
            converted = _convert(cls, field, value)
            if converted is not value:
                object.__setattr__(self, field.name, converted)
            if _kind(field) == "hyper":
                _check_hyper(cls, field, converted)
        for field in fields:
            dtype_field = field.metadata.get(_DECAYS_IN)
            if dtype_field:
                self._check_decay_fits(field, dtype_field)
        self.check()

    def _check_decay_fits(self, field: dataclasses.Field, dtype_field: str) -> None:
        """Reject a decay rate that rounds to 1 in an explicitly requested accumulator dtype.

        ``b2 = 0.999`` is 1.0 in bfloat16: the moment would never forget, silently.
        """
        largest = dtypes.largest_decay_below_one(getattr(self, field.name),
                                                 getattr(self, dtype_field))
        if largest is not None:
            dtype = dtypes.real_dtype(dtypes.canonical(getattr(self, dtype_field)))
            raise self.error(
                f"={getattr(self, field.name)} rounds to 1.0 in {dtype_field}={dtype.name}, so "
                f"the accumulator would never decay; keep the default accumulator dtype "
                f"(float32) or use {field.name} <= {largest}", field.name)

    def check(self) -> None:
        """Further argument checks of a subclass, run after the per-field ones."""

    def error(self, message: str, field: str | None = None,
              exc: type[BaseException] = ValueError) -> BaseException:
        """An exception naming this module (and the argument ``field``, if given).

        A public call decorated with :func:`api` renames it to the call the user made.
        """
        return argument_error(type(self), field, message, exc)

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (converted and checked like a new value)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(f"{type(self).__name__}.replace: no field named "
                            f"{', '.join(map(repr, unknown))}; fields: {sorted(names)}")
        values = {name: getattr(self, name) for name in names}
        values.update(changes)
        new = object.__new__(type(self))
        type(self).__init_fields__(new, **values)
        return new

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
        tree_a: TreeDef
        tree_b: TreeDef
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


def describe_difference(a: Any, b: Any, names: tuple[str, str] = ("a", "b")) -> str | None:
    """Where two values differ in structure (not only in numbers), in words: the first field
    that differs and why; ``None`` if their tree structures are equal.

    ``names`` are how the two values are called in the text (``("values[0]", "values[2]")``).
    """
    if _same_structure(a, b):
        return None
    return _difference(a, b, "", names) or (
        f"{names[0]} and {names[1]} have different tree structures")


def _same_structure(a: Any, b: Any) -> bool:
    structure: Any = jax.tree.structure(a)
    return bool(structure == jax.tree.structure(b))


def _static_equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and other values without a truth value
        return a is b


def _difference(a: Any, b: Any, path: str, names: tuple[str, str]) -> str | None:
    where = path or "the value"
    n0, n1 = names
    if a is None or b is None or type(a) is not type(b):
        return (f"{where} is {_short_repr(a)} in {n0} but {_short_repr(b)} in {n1} (a different "
                f"kind of value, not another number)")
    if isinstance(a, Module):
        for field in dataclasses.fields(type(a)):
            va, vb = getattr(a, field.name), getattr(b, field.name)
            sub = f"{path}.{field.name}" if path else f"{type(a).__name__}.{field.name}"
            if _kind(field) == "static":
                if not _static_equal(va, vb):
                    return _static_difference(sub, va, vb, names)
            elif not _same_structure(va, vb):
                return _difference(va, vb, sub, names)
        return None
    if isinstance(a, (tuple, list)):
        if len(a) != len(b):
            return f"{where} has {len(a)} entries in {n0} but {len(b)} in {n1}"
        for i, (x, y) in enumerate(zip(a, b)):
            if not _same_structure(x, y):
                return _difference(x, y, f"{path}[{i}]", names)
        return None
    if isinstance(a, Mapping):
        if list(a) != list(b):
            return f"{where} has the keys {list(a)} in {n0} but {list(b)} in {n1}"
        for k in a:
            if not _same_structure(a[k], b[k]):
                return _difference(a[k], b[k], f"{path}[{k!r}]", names)
        return None
    return None


def _static_difference(path: str, a: Any, b: Any, names: tuple[str, str]) -> str:
    n0, n1 = names
    a, b = thaw(a), thaw(b)
    if isinstance(a, StableFunction) and isinstance(b, StableFunction):
        return (f"{path} differs: {a.differences(b)}. Functions held by a value are compared by "
                "their code, the values they capture and the globals they read; build the "
                "function from the same values (or use gx.by_regex / gx.by_path).")
    if callable(a) and callable(b) and not isinstance(a, Module):
        return (f"{path} differs: {_short_repr(a)} in {n0} and {_short_repr(b)} in {n1} are "
                "callables compared by identity (two objects written alike are still two "
                "objects). Create it once and reuse it, or use gx.by_regex / gx.by_path.")
    return (f"{path} differs: {_short_repr(a)} in {n0} but {_short_repr(b)} in {n1} (a "
            "structural argument, part of the program, not a number)")


def _modules_in(value: Any) -> Iterator[Module]:
    if isinstance(value, Module):
        yield from value.submodules()
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _modules_in(v)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _modules_in(v)
