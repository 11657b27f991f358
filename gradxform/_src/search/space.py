"""Search spaces: the parameters of a search and their encoding in the unit cube.

A space maps names to parameters::

    space = Space({"learning_rate": Float(1e-5, 1.0, log=True), "b1": Float(0.5, 0.99),
                   "warmup": Int(0, 500), "opt": Categorical(["adam", "lion"]),
                   "b2": Float(0.9, 0.999, when={"opt": "adam"})})

A configuration is a plain dict ``{name: value}``. Every tuner works on the *encoding* of a
configuration, a point of the unit cube ``[0, 1]^dim``:

* ``Float(lo, hi)``: one coordinate ``(x - lo) / (hi - lo)``; with ``log=True`` the same on
  ``log x``.
* ``Int(lo, hi)`` with ``n = hi - lo + 1`` values: one coordinate ``(x - lo + 0.5) / n``, the
  centre of the value's cell; decoding takes ``lo + min(floor(u n), n - 1)``. With ``log=True``
  the cells are equal on the log scale instead (``lo >= 1``).
* ``Categorical(choices)`` with ``n`` choices: ``n`` one-hot coordinates; decoding takes the
  argmax of the block (the first on ties).
* A conditional parameter (``when={"opt": "adam"}``) exists only when its parents take one of the
  given values. It keeps its coordinates; while inactive they are all ``0.5``, and decoding drops
  it from the configuration.

Any point of the cube decodes to a valid configuration, so a tuner may propose anywhere in it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Categorical", "Float", "Group", "Int", "Param", "Space", "as_space"]

_INACTIVE = 0.5


# --------------------------------------------------------------------------------------------
# Conditions.


def _parse_when(owner: str, when: Any) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """``{"opt": "adam"}`` or ``{"opt": ["adam", "adamw"]}`` as ``(("opt", ("adam",)),)``."""
    if when is None:
        return ()
    if not isinstance(when, Mapping) or not when:
        raise TypeError(
            f"{owner}: when must be a non-empty dict {{parent name: value or list of values}}, "
            f"got {when!r}"
        )
    parsed = []
    for parent, values in when.items():
        if not isinstance(parent, str):
            raise TypeError(f"{owner}: when must map parameter names (str) to values, got key "
                            f"{parent!r}")
        if isinstance(values, (list, tuple, set, frozenset)):
            values = tuple(values)
        else:
            values = (values,)
        if not values:
            raise ValueError(f"{owner}: when[{parent!r}] lists no value, so the parameter "
                             "could never be active")
        parsed.append((parent, values))
    return tuple(parsed)


def _real(owner: str, arg: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {arg} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {arg} must be finite, got {value!r}")
    return value


def _as_int(value: numbers.Real | np.ndarray | np.generic) -> int:
    """A number already checked to be whole, as an ``int``."""
    # numbers.Real declares __trunc__ but not __int__, yet every registered real type (float,
    # Fraction, the NumPy scalars, which lack __trunc__) defines __int__, which int() calls.
    return int(value)  # type: ignore[arg-type]


def _integer(owner: str, arg: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            return _as_int(value)
        raise TypeError(f"{owner}: {arg} must be a whole number, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------
# Parameters.


class Param:
    """Base of the parameter kinds. ``width`` unit-cube coordinates encode one value.

    Parameters are immutable values: equal when their arguments are equal.
    """

    #: ``"float"``, ``"int"`` or ``"categorical"``.
    kind = "param"
    _when: tuple[tuple[str, tuple[Any, ...]], ...]

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable; build a new one instead")

    @property
    def when(self) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        return self._when

    @property
    def width(self) -> int:
        return 1

    def encode_value(self, x: Any) -> np.ndarray:
        raise NotImplementedError

    def decode_value(self, u: np.ndarray) -> Any:
        raise NotImplementedError

    def check_value(self, name: str, x: Any, where: str = "Space") -> Any:
        """``x`` as this parameter's Python type, or an error naming the parameter."""
        raise NotImplementedError

    def grid(self, n: int) -> list[Any]:
        """At most ``n`` values spread over the parameter's range (all values if fewer)."""
        raise NotImplementedError

    def center(self) -> Any:
        """The value at the centre of the range (placeholder of an inactive parameter)."""
        return self.decode_value(np.full(self.width, 0.5))

    def perturb(self, x: Any, factor: float) -> Any:
        """``x`` moved by ``factor`` on its natural scale, kept inside the range."""
        return x


class Float(Param):
    """A real parameter in ``[low, high]``, on a linear or (``log=True``) logarithmic scale.

    Args:
      low: the lower bound (> 0 if ``log``).
      high: the upper bound, > ``low``.
      log: sample and encode on the log scale (learning rates, weight decays).
      when: the parameter exists only if each named parent takes one of the given values,
        ``{"opt": "adam"}`` or ``{"opt": ["adam", "adamw"]}``.

    Example::

        search.Float(1e-5, 1.0, log=True)
    """

    kind = "float"
    low: float
    high: float
    log: bool

    def __init__(self, low: float, high: float, *, log: bool = False,
                 when: Mapping[str, Any] | None = None):
        low, high = _real("Float", "low", low), _real("Float", "high", high)
        if not low < high:
            raise ValueError(f"Float: low must be < high, got low={low!r}, high={high!r}")
        if log and low <= 0:
            raise ValueError(f"Float: log=True needs low > 0 (the scale is log x), got "
                             f"low={low!r}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "log", bool(log))
        object.__setattr__(self, "_when", _parse_when("Float", when))

    def _t(self, x):
        return np.log(x) if self.log else x

    def _inv(self, t):
        return float(np.exp(t)) if self.log else float(t)

    def encode_value(self, x):
        lo, hi = self._t(self.low), self._t(self.high)
        return np.array([(self._t(float(x)) - lo) / (hi - lo)], np.float64)

    def decode_value(self, u):
        u = float(np.clip(u[0], 0.0, 1.0))
        if u in (0.0, 1.0):  # the bounds exactly, without a round trip through log
            return self.low if u == 0.0 else self.high
        lo, hi = self._t(self.low), self._t(self.high)
        return float(np.clip(self._inv(lo + u * (hi - lo)), self.low, self.high))

    def check_value(self, name, x, where="Space"):
        if isinstance(x, bool) or not isinstance(x, (numbers.Real, np.ndarray, np.generic)):
            raise TypeError(f"{where}: {name} must be a real number for {self!r}, got {x!r}")
        x = float(x)
        if not (self.low <= x <= self.high):
            raise ValueError(f"{where}: {name} = {x!r} is outside {self!r}")
        return x

    def grid(self, n):
        if n == 1:
            return [self.center()]
        return [self.decode_value(np.array([u])) for u in np.linspace(0.0, 1.0, n)]

    def perturb(self, x, factor):
        if self.log:
            y = float(np.exp(np.log(x) + np.log(factor)))
        else:
            y = x * factor if x != 0 else x + (factor - 1.0) * (self.high - self.low)
        return float(np.clip(y, self.low, self.high))

    def __repr__(self):
        return (f"Float({self.low!r}, {self.high!r}{', log=True' if self.log else ''}"
                f"{_when_repr(self.when)})")

    def __eq__(self, other):
        return (type(other) is Float and (self.low, self.high, self.log, self.when)
                == (other.low, other.high, other.log, other.when))

    def __hash__(self):
        return hash((Float, self.low, self.high, self.log, self.when))


class Int(Param):
    """A whole-number parameter in ``[low, high]`` (both included).

    Each of the ``n = high - low + 1`` values owns a cell of width ``1/n`` of its coordinate
    (equal cells on the log scale with ``log=True``, which needs ``low >= 1``).

    Args:
      low: the smallest value.
      high: the largest value, >= ``low``.
      log: cells of equal width on the log scale (layer widths, batch sizes).
      when: see :class:`Float`.
    """

    kind = "int"
    low: int
    high: int
    log: bool

    def __init__(self, low: int, high: int, *, log: bool = False,
                 when: Mapping[str, Any] | None = None):
        low, high = _integer("Int", "low", low), _integer("Int", "high", high)
        if not low <= high:
            raise ValueError(f"Int: low must be <= high, got low={low}, high={high}")
        if log and low < 1:
            raise ValueError(f"Int: log=True needs low >= 1, got low={low}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "log", bool(log))
        object.__setattr__(self, "_when", _parse_when("Int", when))

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    def _log_edges(self):
        return math.log(self.low - 0.5), math.log(self.high + 0.5)

    def encode_value(self, x):
        x = int(x)
        if self.log:
            a, b = self._log_edges()
            return np.array([(math.log(x) - a) / (b - a)], np.float64)
        return np.array([(x - self.low + 0.5) / self.size], np.float64)

    def decode_value(self, u):
        u = float(np.clip(u[0], 0.0, 1.0))
        if self.log:
            a, b = self._log_edges()
            return int(np.clip(round(math.exp(a + u * (b - a))), self.low, self.high))
        return self.low + min(math.floor(u * self.size), self.size - 1)

    def check_value(self, name, x, where="Space"):
        if isinstance(x, bool) or not isinstance(x, (numbers.Real, np.ndarray, np.generic)):
            raise TypeError(f"{where}: {name} must be a whole number for {self!r}, got {x!r}")
        if not float(x).is_integer():
            raise ValueError(f"{where}: {name} must be a whole number for {self!r}, got {x!r}")
        x = _as_int(x)
        if not (self.low <= x <= self.high):
            raise ValueError(f"{where}: {name} = {x!r} is outside {self!r}")
        return x

    def grid(self, n):
        if n >= self.size:
            return list(range(self.low, self.high + 1))
        if n == 1:
            return [self.center()]
        if self.log:
            values = np.geomspace(self.low, self.high, n)
        else:
            values = np.linspace(self.low, self.high, n)
        return sorted({round(v) for v in values})

    def perturb(self, x, factor):
        if self.log:
            y = math.exp(math.log(x) + math.log(factor))
        else:
            y = x * factor if x != 0 else x + (factor - 1.0) * (self.high - self.low)
        y = round(y)
        if y == x:  # a small integer would never move: step by one in the factor's direction
            y = x + (1 if factor > 1 else -1)
        return int(np.clip(y, self.low, self.high))

    def __repr__(self):
        return (f"Int({self.low}, {self.high}{', log=True' if self.log else ''}"
                f"{_when_repr(self.when)})")

    def __eq__(self, other):
        return (type(other) is Int and (self.low, self.high, self.log, self.when)
                == (other.low, other.high, other.log, other.when))

    def __hash__(self):
        return hash((Int, self.low, self.high, self.log, self.when))


class Categorical(Param):
    """One of a list of choices (strings, numbers, flags, or any objects such as functions).

    Encoded as one one-hot coordinate per choice. In a vectorized objective a categorical
    parameter arrives as the int32 *index* of the choice (pick a branch with ``lax.switch`` or
    index an array of values).

    Args:
      choices: the distinct choices, at least one.
      when: see :class:`Float`.
    """

    kind = "categorical"
    choices: tuple[Any, ...]

    def __init__(self, choices: Sequence[Any], *, when: Mapping[str, Any] | None = None):
        if isinstance(choices, (str, bytes)) or not isinstance(choices, Iterable):
            raise TypeError(f"Categorical: choices must be a list of choices, got {choices!r}")
        choices = tuple(choices)
        if not choices:
            raise ValueError("Categorical: choices must not be empty")
        for i, a in enumerate(choices):
            for b in choices[:i]:
                if _same(a, b):
                    raise ValueError(f"Categorical: choices must be distinct, {a!r} is listed "
                                     "twice")
        object.__setattr__(self, "choices", choices)
        object.__setattr__(self, "_when", _parse_when("Categorical", when))

    @property
    def width(self):
        return len(self.choices)

    def index(self, x: Any) -> int:
        """The position of choice ``x``, or -1."""
        for i, c in enumerate(self.choices):
            if _same(c, x):
                return i
        return -1

    def encode_value(self, x):
        out = np.zeros(self.width, np.float64)
        out[self.index(x)] = 1.0
        return out

    def decode_value(self, u):
        return self.choices[int(np.argmax(np.asarray(u)))]

    def check_value(self, name, x, where="Space"):
        i = self.index(x)
        if i < 0:
            raise ValueError(f"{where}: {name} = {x!r} is not one of the choices of {self!r}")
        return self.choices[i]

    def grid(self, n):
        return list(self.choices)

    def center(self):
        return self.choices[0]

    def __repr__(self):
        shown = ", ".join(_choice_repr(c) for c in self.choices)
        return f"Categorical([{shown}]{_when_repr(self.when)})"

    def __eq__(self, other):
        return (type(other) is Categorical and len(self.choices) == len(other.choices)
                and all(_same(a, b) for a, b in zip(self.choices, other.choices))
                and self.when == other.when)

    def __hash__(self):
        return hash((Categorical, len(self.choices), self.when))


def _same(a: Any, b: Any) -> bool:
    """Choice equality that keeps ``True`` apart from ``1`` and compares functions by identity."""
    if type(a) is not type(b) and (isinstance(a, bool) or isinstance(b, bool)):
        return False
    try:
        return bool(a is b or a == b)
    except Exception:  # noqa: BLE001 - arrays and odd objects: identity only
        return a is b


def _choice_repr(c: Any) -> str:
    if callable(c) and hasattr(c, "__name__"):
        return c.__name__
    return repr(c)


def _when_repr(when) -> str:
    if not when:
        return ""
    parts = []
    for parent, values in when:
        shown = _choice_repr(values[0]) if len(values) == 1 else \
            "[" + ", ".join(_choice_repr(v) for v in values) + "]"
        parts.append(f"{parent!r}: {shown}")
    return ", when={" + ", ".join(parts) + "}"


# --------------------------------------------------------------------------------------------
# The space.


class Group(NamedTuple):
    """One parameter's coordinates: its name, kind and slice of the encoding."""

    name: str
    kind: str
    slice: slice


class Space:
    """A named set of parameters and the encoding of configurations in ``[0, 1]^dim``.

    Plain dicts ``{name: Float(...)}`` are accepted wherever a space is.

    Attributes:
      params: ``{name: parameter}`` in the order given.
      dim: the number of unit-cube coordinates.
      names: one label per coordinate (``"opt=lion"`` for a one-hot coordinate).
      groups: per parameter, ``Group(name, kind, slice of its coordinates)``.
    """

    def __init__(self, params: Mapping[str, Param]):
        if isinstance(params, Space):
            params = params.params
        if not isinstance(params, Mapping):
            raise TypeError(f"Space: needs a dict {{name: Float/Int/Categorical}}, got "
                            f"{type(params).__name__}")
        if not params:
            raise ValueError("Space: needs at least one parameter")
        for name, p in params.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"Space: parameter names must be non-empty strings, got {name!r}")
            if not isinstance(p, Param):
                raise TypeError(f"Space: {name} must be a Float, Int or Categorical, got {p!r}")
        self.params: dict[str, Param] = dict(params)
        self._order = self._dependency_order()
        groups, names, start = [], [], 0
        for name, p in self.params.items():
            groups.append(Group(name, p.kind, slice(start, start + p.width)))
            if isinstance(p, Categorical):
                names += [f"{name}={c if isinstance(c, str) else _choice_repr(c)}"
                          for c in p.choices]
            else:
                names.append(name)
            start += p.width
        self.groups: tuple[Group, ...] = tuple(groups)
        self.names: tuple[str, ...] = tuple(names)
        self.dim: int = start
        self._slices = {g.name: g.slice for g in groups}

    def _dependency_order(self) -> list[str]:
        """Names with every parent before its children; errors for unknown parents or cycles."""
        for name, p in self.params.items():
            for parent, values in p.when:
                if parent == name:
                    raise ValueError(f"Space: {name} cannot depend on itself (when={{{parent!r}: "
                                     "...}})")
                if parent not in self.params:
                    raise ValueError(f"Space: {name} depends on {parent!r}, which is not a "
                                     f"parameter of the space ({', '.join(self.params)})")
                q = self.params[parent]
                if isinstance(q, Float):
                    raise TypeError(f"Space: {name} depends on {parent!r}, a Float; a condition "
                                    "needs a Categorical or Int parent")
                for v in values:
                    try:
                        q.check_value(parent, v)
                    except (TypeError, ValueError):
                        raise ValueError(f"Space: {name} is active when {parent} = {v!r}, which "
                                         f"{parent} can never take ({q!r})") from None
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(name, path):
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = " -> ".join(path + [name])
                raise ValueError(f"Space: the conditions form a cycle: {cycle}")
            state[name] = 1
            for parent, _ in self.params[name].when:
                visit(parent, path + [name])
            state[name] = 2
            order.append(name)

        for name in self.params:
            visit(name, [])
        return order

    # -- configurations --------------------------------------------------------------------

    def is_active(self, name: str, config: Mapping[str, Any]) -> bool:
        """Whether ``name`` exists in ``config`` given the values of its parents."""
        for parent, values in self.params[name].when:
            if parent not in config:
                return False
            if not any(_same(config[parent], v) for v in values):
                return False
        return True

    def check(self, config: Mapping[str, Any], *, where: str = "Space") -> dict[str, Any]:
        """``config`` with Python values, inactive parameters dropped; errors name the parameter.

        Every active parameter must be present; names the space does not know are rejected.
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"{where}: a configuration must be a dict, got "
                            f"{type(config).__name__}")
        unknown = [k for k in config if k not in self.params]
        if unknown:
            raise ValueError(f"{where}: {unknown[0]!r} is not a parameter of the space "
                             f"({', '.join(self.params)})")
        out: dict[str, Any] = {}
        for name in self._order:
            if not self.is_active(name, out):
                continue
            if name not in config:
                raise ValueError(f"{where}: the configuration has no value for {name}")
            out[name] = self.params[name].check_value(name, config[name], where)
        return {name: out[name] for name in self.params if name in out}

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        """The configuration as a point of ``[0, 1]^dim`` (float64)."""
        config = self.check(config)
        u = np.full(self.dim, _INACTIVE, np.float64)
        for name, value in config.items():
            u[self._slices[name]] = self.params[name].encode_value(value)
        return u

    def decode(self, u: Any) -> dict[str, Any]:
        """The configuration a point of the cube stands for (values outside [0, 1] are clipped).

        Ints are rounded to their cell, categories taken by argmax of their one-hot block, and
        inactive conditional parameters dropped.
        """
        u = np.asarray(u, np.float64)
        if u.shape != (self.dim,):
            raise ValueError(f"Space.decode: expected a point of shape ({self.dim},), got "
                             f"shape {u.shape}")
        u = np.clip(np.nan_to_num(u, nan=_INACTIVE), 0.0, 1.0)
        out: dict[str, Any] = {}
        for name in self._order:
            if self.is_active(name, out):
                out[name] = self.params[name].decode_value(u[self._slices[name]])
        return {name: out[name] for name in self.params if name in out}

    def sample(self, rng: np.random.Generator | int | None, n: int) -> list[dict[str, Any]]:
        """``n`` configurations drawn uniformly (log-uniformly on log scales)."""
        rng = np.random.default_rng(rng)
        return [self.decode(u) for u in rng.random((n, self.dim))]

    def key(self, config: Mapping[str, Any]) -> tuple:
        """A hashable identity of a configuration (for de-duplication)."""
        config = self.check(config)
        out = []
        for name, value in config.items():
            p = self.params[name]
            out.append((name, p.index(value) if isinstance(p, Categorical) else value))
        return tuple(out)

    # -- batches for vectorized objectives ----------------------------------------------------

    def batch(self, configs: Sequence[Mapping[str, Any]], size: int | None = None
              ) -> dict[str, np.ndarray]:
        """Configurations as a dict of arrays, one row each, padded to ``size`` rows.

        Floats are float32, Ints int32, Categoricals the int32 index of the choice. An inactive
        conditional parameter (and every padding row) holds the parameter's centre value, so the
        arrays keep one shape for the whole search.
        """
        size = len(configs) if size is None else size
        if len(configs) > size:
            raise ValueError(f"Space.batch: {len(configs)} configurations do not fit in {size} "
                             "rows")
        out = {}
        for name, p in self.params.items():
            fill = p.center()
            col = [c.get(name, fill) for c in configs] + [fill] * (size - len(configs))
            if isinstance(p, Categorical):
                out[name] = np.asarray([p.index(v) for v in col], np.int32)
            elif isinstance(p, Int):
                out[name] = np.asarray(col, np.int32)
            else:
                out[name] = np.asarray(col, np.float32)
        return out

    # -- plain (JSON) form ------------------------------------------------------------------

    def to_plain(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON-serialisable form: a categorical choice that is not a JSON scalar becomes
        ``{"choice": index}``."""
        out = {}
        for name, value in config.items():
            p = self.params.get(name)
            if isinstance(p, Categorical) and not _json_scalar(value):
                out[name] = {"choice": p.index(value)}
            else:
                out[name] = value
        return out

    def from_plain(self, plain: Mapping[str, Any]) -> dict[str, Any]:
        """Undo :meth:`to_plain`."""
        out = {}
        for name, value in plain.items():
            p = self.params.get(name)
            if isinstance(p, Categorical) and isinstance(value, Mapping) and "choice" in value:
                value = p.choices[int(value["choice"])]
            out[name] = value
        return self.check(out)

    def display(self, value: Any) -> Any:
        """A value as shown in tables (functions by name)."""
        if _json_scalar(value):
            return value
        return _choice_repr(value)

    # -- value semantics -------------------------------------------------------------------

    def __eq__(self, other):
        return isinstance(other, Space) and list(self.params.items()) == list(
            other.params.items())

    def __hash__(self):
        return hash(tuple(self.params.items()))

    def __repr__(self):
        inner = ", ".join(f"{k!r}: {v!r}" for k, v in self.params.items())
        return f"Space({{{inner}}})"

    def __len__(self):
        return len(self.params)

    def __iter__(self):
        return iter(self.params)

    def __getitem__(self, name):
        return self.params[name]


def _json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int, float))


def as_space(space: Space | Mapping[str, Param]) -> Space:
    """``space`` itself, or a :class:`Space` built from a dict of parameters."""
    return space if isinstance(space, Space) else Space(space)
