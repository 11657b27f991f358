"""Configs: any gradxform value as a JSON-serialisable dict, and back.

``to_config(tx)`` writes a transformation (or a schedule, or any :class:`Module`) as nested
dicts of plain JSON values; ``from_config(config)`` builds it again, checked like a value built
by hand, and ``from_config(to_config(tx)) == tx``. Useful for experiment logs and searches.

The format. A module is ``{"type": <class name>, "fields": {<field>: <value>}}`` with every
dataclass field. Values are written as:

* ``None``, booleans, integers, finite floats and strings: as themselves (non-finite floats as
  ``{"float": "inf"}``);
* tuples: JSON lists; lists: ``{"list": [...]}``; dicts: ``{"dict": [[key, value], ...]}``
  (in order); flax ``FrozenDict``: ``{"frozendict": [[key, value], ...]}``;
* dtypes: ``{"dtype": "bfloat16", "kind": "jax" | "numpy" | "dtype" | "builtin"}`` (the kind
  keeps ``jnp.bfloat16`` and ``np.dtype("bfloat16")`` apart);
* arrays (hyperparameters given as arrays, masks of array bools): ``{"array": nested lists,
  "dtype": "float32", "jax": true}`` (``"scalar": true`` for NumPy scalars), up to 4096
  entries;
* masks and label trees frozen in static fields: ``{"frozen": <tree>}``;
* nested modules: as above.

Functions cannot be written: a callable mask, ``schedule_fn``, ``stateless``, an optax
transformation (``Foreign``) raise an error naming the field; use a tree of bools, a
:class:`by_regex` rule or a schedule class instead.

Class names are looked up among the subclasses of :class:`Module` defined when
``from_config`` is called (every class of gradxform, and any defined by the user). A name
defined by two classes is written as ``"module.qualname"``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradxform._src.module import Module, _Frozen, freeze, thaw

__all__ = ["to_config", "from_config"]

MAX_ARRAY_SIZE = 4096

_BUILTIN_DTYPES = {"float": float, "int": int, "bool": bool, "complex": complex}


# --------------------------------------------------------------------------------------------
# The registry of classes.


def _subclasses(cls: type) -> list[type]:
    out: list[type] = []
    sub: type
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def _registry() -> dict[str, list[type]]:
    table: dict[str, list[type]] = {}
    for cls in _subclasses(Module):
        for name in {cls.__qualname__, f"{cls.__module__}.{cls.__qualname__}"}:
            bucket = table.setdefault(name, [])
            if cls not in bucket:
                bucket.append(cls)
    return table


def _type_name(cls: type, table: dict[str, list[type]]) -> str:
    if len(table.get(cls.__qualname__, ())) == 1:
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


# --------------------------------------------------------------------------------------------
# Writing.


class _Where:
    """The field being written, for error messages."""

    def __init__(self, module: Module | None = None, field: str | None = None):
        self.module, self.field = module, field

    def __str__(self) -> str:
        if self.module is None:
            return "the value"
        return f"field {self.field!r} of {type(self.module).__name__}"


def _dtype_kind(x: Any) -> str | None:
    if isinstance(x, np.dtype):
        return "dtype"
    if isinstance(x, type) and any(x is d for d in _BUILTIN_DTYPES.values()):
        return "builtin"
    if isinstance(x, type) and issubclass(x, np.generic):
        return "numpy"
    name = getattr(x, "dtype", None)
    if isinstance(x, type) and name is not None and getattr(jnp, getattr(name, "name", ""),
                                                            None) is x:
        return "jax"
    return None


def _encode(x: Any, where: _Where, table) -> Any:
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, Module):
        return _encode_module(x, table)
    if isinstance(x, _Frozen):
        return {"frozen": _encode(thaw(x), where, table)}
    kind = _dtype_kind(x)
    if kind is not None:
        name = x.__name__ if kind == "builtin" else np.dtype(x).name
        return {"dtype": name, "kind": kind}
    if isinstance(x, numbers.Integral) and not isinstance(x, np.generic):
        return int(x)
    if isinstance(x, float):
        return x if math.isfinite(x) else {"float": repr(x)}
    if isinstance(x, jax.core.Tracer):
        raise TypeError(f"to_config: {where} is a traced value; write configs outside jit")
    if isinstance(x, (np.ndarray, np.generic, jax.Array)):
        arr = np.asarray(x)
        if arr.size > MAX_ARRAY_SIZE:
            raise ValueError(f"to_config: {where} is an array of {arr.size} entries; configs "
                             f"hold arrays of at most {MAX_ARRAY_SIZE}")
        out = {"array": _encode_list(arr), "dtype": arr.dtype.name}
        if isinstance(x, jax.Array):
            out["jax"] = True
        elif isinstance(x, np.generic):
            out["scalar"] = True
        return out
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return [_encode(v, where, table) for v in x]
    if isinstance(x, list):
        return {"list": [_encode(v, where, table) for v in x]}
    if type(x) is dict:
        return {"dict": [[_encode(k, where, table), _encode(v, where, table)]
                         for k, v in x.items()]}
    if type(x).__name__ == "FrozenDict" and type(x).__module__.startswith("flax"):
        return {"frozendict": [[_encode(k, where, table), _encode(v, where, table)]
                               for k, v in x.items()]}
    if callable(x):
        name = getattr(x, "__qualname__", None) or getattr(x, "__name__", None) or repr(x)
        raise TypeError(
            f"to_config: cannot write {where}: it holds the function {name}, and functions "
            "cannot be serialised. Use a tree of bools or labels, a by_regex rule or a schedule "
            "class instead.")
    raise TypeError(f"to_config: cannot write {where}: a {type(x).__name__} ({x!r}); configs "
                    "hold numbers, strings, dtypes, tuples, lists, dicts, small arrays and "
                    "gradxform values")


def _encode_list(arr: np.ndarray) -> Any:
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError("to_config: complex arrays cannot be written")
    return arr.tolist() if arr.dtype != np.bool_ else arr.astype(bool).tolist()


def _encode_module(module: Module, table) -> dict:
    fields = {}
    for f in dataclasses.fields(module):
        fields[f.name] = _encode(getattr(module, f.name), _Where(module, f.name), table)
    return {"type": _type_name(type(module), table), "fields": fields}


def to_config(value: Module) -> dict:
    """A JSON-serialisable dict describing ``value`` (a transformation, a schedule, a rule).

    Example::

        config = gx.to_config(gx.adamw(gx.cosine_decay_schedule(1e-3, 1000), weight_decay=0.1))
        json.dump(config, open("run.json", "w"))
        opt = gx.from_config(json.load(open("run.json")))
    """
    if not isinstance(value, Module):
        raise TypeError(f"to_config: expected a gradxform value (a transformation or a "
                        f"schedule), got {type(value).__name__}")
    return _encode_module(value, _registry())


# --------------------------------------------------------------------------------------------
# Reading.


def _decode(x: Any, table) -> Any:
    if x is None or isinstance(x, (bool, str, int, float)):
        return x
    if isinstance(x, list):
        return tuple(_decode(v, table) for v in x)
    if not isinstance(x, dict):
        raise TypeError(f"from_config: unexpected {type(x).__name__} {x!r}")
    if "type" in x and "fields" in x:
        return _decode_module(x, table)
    if "frozen" in x:
        return freeze(_decode(x["frozen"], table))
    if "dtype" in x and "kind" in x:
        kind, name = x["kind"], x["dtype"]
        if kind == "builtin":
            return _BUILTIN_DTYPES[name]
        if kind == "dtype":
            return np.dtype(name)
        if kind == "numpy":
            return np.dtype(name).type
        return getattr(jnp, name)
    if "array" in x:
        arr = np.asarray(x["array"], np.dtype(x["dtype"]))
        if x.get("scalar"):
            return arr[()]
        return jnp.asarray(arr) if x.get("jax") else arr
    if "float" in x:
        return float(x["float"])
    if "list" in x:
        return [_decode(v, table) for v in x["list"]]
    if "dict" in x:
        return {_decode(k, table): _decode(v, table) for k, v in x["dict"]}
    if "frozendict" in x:
        from flax.core import FrozenDict

        return FrozenDict({_decode(k, table): _decode(v, table) for k, v in x["frozendict"]})
    raise ValueError(f"from_config: unrecognised entry {x!r}")


def _decode_module(config: dict, table) -> Module:
    name = config["type"]
    classes = table.get(name, [])
    if not classes:
        raise ValueError(f"from_config: unknown type {name!r}; import the module that defines "
                         "it before calling from_config")
    if len(classes) > 1:
        raise ValueError(f"from_config: the type name {name!r} is ambiguous "
                         f"({', '.join(f'{c.__module__}.{c.__qualname__}' for c in classes)})")
    cls = classes[0]
    given = dict(config["fields"])
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in given:
            values[f.name] = _decode(given.pop(f.name), table)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"from_config: {name} needs the field {f.name!r}")
    if given:
        raise ValueError(f"from_config: {name} has no field(s) {sorted(given)}")
    # The fields, not the call signature (chain(*transforms) has its own __init__): set,
    # converted and checked as a value built by hand.
    obj = object.__new__(cls)
    cls.__init_fields__(obj, **values)
    return obj


def from_config(config: dict) -> Module:
    """The value described by ``config`` (from :func:`to_config`), checked like a new value."""
    if not isinstance(config, dict) or "type" not in config:
        raise TypeError("from_config: expected a dict written by to_config, with a 'type' key")
    return _decode_module(config, _registry())
