"""The protocol: transformations, their state, the step they see, and the errors they raise.

A transformation has two methods, duck-compatible with optax (flax's ``TrainState`` and
``nnx.Optimizer``, and ``optax.chain``, call nothing else)::

    state = tx.init(params)
    updates, state = tx.update(updates, state, params=None, **extra_args)

A transformation is a :class:`~gradxform._src.module.Module`: an immutable value whose float
hyperparameters are pytree leaves.

**Where the step count lives.** ``init`` wraps the transformation's own state in an
:class:`OptState` that holds one step counter for the whole tree of transformations (only if some
part of it needs one: a schedule, a bias correction). Links of a chain and inner optimizers of
wrappers do not keep counters of their own; they read the shared count from the :class:`Step`
passed to :meth:`GradientTransformation.apply`. Wrappers that run their inner transformation on
a different clock (accumulation, skipping non-finite steps) hand it a different ``Step``.

**What the state remembers.** ``OptState.spec`` records, as static metadata that costs nothing
at run time, the leaf paths, shapes and dtypes of the params the state was built for. ``update``
rejects updates (and params) that differ, naming the first leaf that differs and showing both.
Nothing is broadcast. This holds for stateless transformations too.

**Who made the state.** ``OptState.made_by`` is a one-entry dict ``{key: ()}`` whose key names
the transformation that built the state and fingerprints its structure (the classes, links,
flags, dtypes and masks, everything but the numbers: see :func:`fingerprint`). It holds no array,
so it costs nothing at run time, but it is part of the state's tree structure: ``update``
rejects a state made by another transformation (naming what differs), and a checkpoint restored
into the state of another optimizer fails in flax and orbax, which compare the keys.

Writing a transformation means subclassing :class:`GradientTransformation` and implementing
``init_state(params)`` (arrays only; ``()`` when stateless) and ``apply(updates, state, params,
step)``. ``apply`` must return a state of the same structure, shapes and dtypes it received.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, NamedTuple, dataclass_transform

import jax
import jax.numpy as jnp
import numpy as np

from gradxform._src import dtypes, flat, tree
from gradxform._src import module as _module
from gradxform._src.module import Invalid, Module, child, renamed_error, static, thaw
from gradxform._src.routing import path_key as _path_key
from gradxform._src.schedules import Schedule, as_schedule
from gradxform._src.types import PyTree, TreeDef

__all__ = [
    "GradientTransformation", "OptState", "Step", "ParamSpec", "StructureMismatchError",
    "stateless", "identity", "set_to_zero", "apply_updates", "hyperparams", "Foreign", "stack",
    "hyper", "static", "child", "walk", "walk_from", "find_link", "ParamsPlaceholder",
    "is_params_placeholder", "PLACEHOLDER_SPEC", "NO_STATE", "fingerprint", "ForeignStateError",
]


# --------------------------------------------------------------------------------------------
# Fields of transformations.


def _as_hyper(value: Any) -> Any:
    if isinstance(value, Module) and not isinstance(value, Schedule):
        raise Invalid(f"must be a real number, an array or a schedule, got {value!r}", TypeError)
    return as_schedule(value)


def hyper(default: Any = dataclasses.MISSING, interval: str | None = None, *,
          integer: bool = False, decays_in: str | None = None, schedule: bool = True,
          converter: Callable[[Any], Any] | None = None, optional: bool = False,
          kw_only: bool = False) -> Any:
    """A float hyperparameter of a transformation: a number, an array or a schedule.

    A plain function ``count -> value`` becomes a :class:`~gradxform.schedule_fn`. Numbers and
    concrete arrays are checked against ``interval`` when the value is built (see
    :func:`gradxform._src.module.hyper` for ``integer`` and ``decays_in``); schedules were
    checked when they were built. ``schedule=False`` for arguments that are used once (sizes,
    initial values), which take numbers and arrays only. ``converter`` runs first (presets
    given by name, lists turned into arrays). ``None`` is refused unless the default is
    ``None`` or the field is ``optional``.
    """
    if not schedule:
        return _module.hyper(default, interval, integer=integer, decays_in=decays_in,
                             converter=converter, optional=optional, kw_only=kw_only)

    def convert(value):
        return _as_hyper(value if converter is None else converter(value))

    return _module.hyper(default, interval, integer=integer, decays_in=decays_in,
                         converter=convert, accepts=lambda v: isinstance(v, Schedule),
                         accepts_phrase="a real number, an array or a schedule",
                         optional=optional, kw_only=kw_only)


class StructureMismatchError(ValueError):
    """Updates or params do not match the tree the optimizer state was created for."""


# --------------------------------------------------------------------------------------------
# What a state remembers of its params.


def _shape_dtype(x: Any) -> tuple[tuple[int, ...], np.dtype]:
    return tuple(np.shape(x)) if not hasattr(x, "shape") else tuple(x.shape), dtypes.leaf_dtype(x)


def _describe(shape: tuple, dtype: np.dtype) -> str:
    return f"{dtype.name}[{', '.join(map(str, shape))}]"


class ParamSpec:
    """Leaf paths, shapes and dtypes of a params tree; hashable, compared once per trace."""

    __slots__ = ("paths", "shapes", "dtypes", "_hash", "_treedef")

    def __init__(self, paths: tuple, shapes: tuple, dtypes_: tuple, treedef: Any = None):
        self.paths, self.shapes, self.dtypes = paths, shapes, dtypes_
        self._hash = hash((paths, shapes, dtypes_))
        self._treedef = treedef  # a shortcut for check(); not part of the value

    @classmethod
    def of(cls, params: PyTree) -> ParamSpec:
        flat, treedef = jax.tree_util.tree_flatten_with_path(params)
        paths = tuple(_path_key(p) for p, _ in flat)
        shapes, dts = zip(*(_shape_dtype(x) for _, x in flat)) if flat else ((), ())
        return cls(paths, tuple(shapes), tuple(dts), treedef)

    def __eq__(self, other: object) -> bool:
        return self is other or (
            isinstance(other, ParamSpec) and self._hash == other._hash
            and (self.paths, self.shapes, self.dtypes)
            == (other.paths, other.shapes, other.dtypes)
        )

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"ParamSpec({len(self.paths)} leaves)"

    def __reduce__(self):
        return ParamSpec, (self.paths, self.shapes, self.dtypes)

    def check(self, tree_: PyTree, where: str, what: str) -> None:
        """Raise :class:`StructureMismatchError` if ``tree_`` differs from these params."""
        if self._treedef is not None:  # the same tree structure: compare shapes and dtypes only
            leaves, treedef = jax.tree.flatten(tree_)
            if treedef == self._treedef and all(
                    getattr(x, "shape", None) == s and getattr(x, "dtype", None) == d
                    for x, s, d in zip(leaves, self.shapes, self.dtypes)):
                return
        other = ParamSpec.of(tree_)
        if other == self:
            return
        header = (f"{where}: the {what} do not match the params this optimizer state was "
                  f"created for (init)")
        fix = (f"The {what} must have the same tree structure, shapes and dtypes as the params "
               "given to init; nothing is broadcast or cast. Build the state again with init "
               "if the model changed, or cast the gradients to the params' dtypes.")
        if other.paths != self.paths:
            mine, theirs = set(self.paths), set(other.paths)
            missing = [jax.tree_util.keystr(p) for p in self.paths if p not in theirs][:5]
            extra = [jax.tree_util.keystr(p) for p in other.paths if p not in mine][:5]
            lines = [header + ": the tree structures differ."]
            if missing:
                lines.append(f"  leaves missing from the {what}: {', '.join(missing)}")
            if extra:
                lines.append(f"  leaves not in the params: {', '.join(extra)}")
            if not missing and not extra:
                lines.append("  the same leaves in a different order or nesting")
            lines.append(f"  params ({len(self.paths)} leaves): "
                         f"{_abbrev([jax.tree_util.keystr(p) for p in self.paths])}")
            lines.append(f"  {what} ({len(other.paths)} leaves): "
                         f"{_abbrev([jax.tree_util.keystr(p) for p in other.paths])}")
            lines.append(fix)
            raise StructureMismatchError("\n".join(lines))
        for path, s1, d1, s2, d2 in zip(self.paths, self.shapes, self.dtypes,
                                        other.shapes, other.dtypes):
            if s1 != s2 or d1 != d2:
                raise StructureMismatchError(
                    f"{header}: at {jax.tree_util.keystr(path) or 'the root'} the params are "
                    f"{_describe(s1, d1)} but the {what} are {_describe(s2, d2)}.\n{fix}"
                )


def _abbrev(items: list[str], n: int = 8) -> str:
    shown = ", ".join(items[:n])
    return f"[{shown}{', ...' if len(items) > n else ''}]"


# --------------------------------------------------------------------------------------------
# The state and the step.


# --------------------------------------------------------------------------------------------
# What a state remembers of the transformation that made it.


def _plain_repr(value: Any) -> str:
    """``repr`` without memory addresses, so that it is the same in every process."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


def _structure_of(value: Any) -> Any:
    """A hashable, process-independent description of a static or child value: a string, or a
    tagged tuple ``("module", class, fields)``, ``("seq", type, items)``, ``("map", items)``,
    ``("tree", treedef, leaves)``."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    if isinstance(value, Module):
        return _structure(value)
    if isinstance(value, np.dtype):
        return f"dtype {value.name}"
    if isinstance(value, type):
        scalar = issubclass(value, np.generic) or isinstance(getattr(value, "dtype", None),
                                                               np.dtype)
        return f"dtype {np.dtype(value).name}" if scalar else f"class {value.__qualname__}"
    if isinstance(value, Mapping):
        return ("map", tuple((repr(k), _structure_of(v)) for k, v in value.items()))
    if isinstance(value, (tuple, list)):
        return ("seq", type(value).__name__, tuple(_structure_of(v) for v in value))
    thawed = thaw(value)
    if thawed is not value:
        leaves, treedef = jax.tree.flatten(thawed)
        return ("tree", _plain_repr(treedef), tuple(_structure_of(x) for x in leaves))
    if callable(value):
        return (f"function {getattr(value, '__module__', '?')}."
                f"{getattr(value, '__qualname__', type(value).__name__)}")
    return _plain_repr(value)


def _structure(module: Module) -> tuple:
    """The structure of a module: its class, and per field the described static or child value;
    for a hyperparameter only whether it is set (its number, array or schedule is data)."""
    parts = []
    for field in dataclasses.fields(module):
        value = getattr(module, field.name)
        if field.name in module._hyper_fields:
            parts.append((field.name, "unset" if value is None else "set"))
        else:
            parts.append((field.name, _structure_of(value)))
    return ("module", type(module).__name__, tuple(parts))


def _show_part(part: Any) -> str:
    """A short text for one side of a difference."""
    if isinstance(part, tuple):
        if part[0] == "module":
            return part[1]
        if part[0] == "seq":
            n = len(part[2])
            return f"{n} link{'s' if n != 1 else ''} ({', '.join(map(_show_part, part[2]))})"
        if part[0] == "map":
            return f"{{{', '.join(k for k, _ in part[1])}}}"
        return "a tree"
    return part if len(part) <= 80 else part[:77] + "..."


def _first_difference(a: Any, b: Any, path: str = "") -> tuple[str, str, str] | None:
    """Where two described structures first differ: ``(path, a's part, b's part)``."""
    if a == b:
        return None
    here = path or "the transformation"
    if not (isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0]):
        return here, _show_part(a), _show_part(b)
    kind = a[0]
    if kind == "module":
        if a[1] != b[1]:
            return here, a[1], b[1]
        for (name, va), (_, vb) in zip(a[2], b[2]):
            found = _first_difference(va, vb, f"{path}.{name}" if path else name)
            if found:
                return found
    elif kind == "seq" and len(a[2]) == len(b[2]):
        for i, (va, vb) in enumerate(zip(a[2], b[2])):
            found = _first_difference(va, vb, f"{path}[{i}]")
            if found:
                return found
    elif kind == "map" and [k for k, _ in a[1]] == [k for k, _ in b[1]]:
        for (k, va), (_, vb) in zip(a[1], b[1]):
            found = _first_difference(va, vb, f"{path}[{k}]")
            if found:
                return found
    return here, _show_part(a), _show_part(b)


_KNOWN_STRUCTURES: dict[str, tuple] = {}
_KEY_OF_TREEDEF: collections.OrderedDict[Any, str] = collections.OrderedDict()


def fingerprint(tx: GradientTransformation) -> str:
    """The key ``init`` records in ``OptState.made_by``: the transformation's name and a hash of
    its structure (classes, links, flags, dtypes, masks, which hyperparameters are set), not of
    its numbers. Equal for ``adam(1e-3)`` and ``adam(3e-4)`` or a scheduled learning rate,
    different for ``adam`` and ``adamw`` or ``adam(nesterov=True)``. The same in every process.
    """
    treedef = jax.tree.structure(tx)  # equal tree definitions, equal structures: computed once
    key = _KEY_OF_TREEDEF.get(treedef)
    if key is None:
        structure = _structure(tx)
        digest = hashlib.sha256(repr(structure).encode()).hexdigest()[:12]
        key = f"{re.sub(r'[^A-Za-z0-9_]+', '_', tx.name).strip('_') or 'tx'}-{digest}"
        _KNOWN_STRUCTURES[key] = structure
        _KEY_OF_TREEDEF[treedef] = key
        if len(_KEY_OF_TREEDEF) > 4096:  # fresh lambdas in masks make fresh tree definitions
            _KEY_OF_TREEDEF.popitem(last=False)
    return key


def _made_by_key(made_by: Any) -> str | None:
    if isinstance(made_by, Mapping) and len(made_by) == 1:
        key = next(iter(made_by))
        return key if isinstance(key, str) else None
    return None


def _check_made_by(tx: GradientTransformation, state: OptState, where: str) -> None:
    """Raise :class:`ForeignStateError` if ``state`` was not made by ``tx``'s ``init``."""
    mine = fingerprint(tx)
    theirs = _made_by_key(state.made_by)
    if theirs == mine:
        return
    if theirs is None:
        raise ForeignStateError(
            f"{where}: the state does not say which transformation made it (made_by="
            f"{state.made_by!r}); build it with {tx.name}.init(params)")
    their_name = theirs.rsplit("-", 1)[0]
    structure = _KNOWN_STRUCTURES.get(theirs)
    found = None if structure is None else _first_difference(structure, _KNOWN_STRUCTURES[mine])
    if structure is None:
        detail = "(its structure is not known in this process)"
    elif found is None:
        detail = f"which has the structure of {tx.name} under another name"
    else:
        path, a, b = found
        detail = f"which differs from {tx.name} at {path}: {a} there, {b} here"
    raise ForeignStateError(
        f"{where}: the state was made by the init of another transformation, {their_name!r}, "
        f"{detail}. A state fits only the transformation whose init made it (the same "
        "classes, links, flags, dtypes and masks; the numbers may differ). Build the state "
        f"with {tx.name}.init(params), or keep using the optimizer that made it.")


class ForeignStateError(TypeError):
    """A state given to ``update`` was made by another transformation's ``init``."""


# --------------------------------------------------------------------------------------------
# The state and the step.


class _OptStateFields(NamedTuple):
    count: jax.Array | None  # type: ignore[assignment]  # shadows tuple.count, as optax's do
    inner: PyTree
    made_by: Any = None


class _PlaceholderSpec(ParamSpec):
    """The spec of a state built from a params *placeholder* (no params at all).

    optax's ``tree_utils.tree_map_params`` calls ``init`` with a placeholder object and zips
    the result with a real state; such a state only serves as a template of the real one's
    structure. It is equal to itself only, and ``update`` refuses it.
    """

    __slots__ = ()

    def __init__(self):
        super().__init__((), (), ())
        self._hash = hash("gradxform.params-placeholder")

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return "ParamSpec(params placeholder)"


PLACEHOLDER_SPEC = _PlaceholderSpec()


@jax.tree_util.register_pytree_node_class
class ParamsPlaceholder:
    """A stand-in for a params tree, with no leaves: ``init(ParamsPlaceholder())`` builds a
    state whose params-shaped parts are this object (see :func:`gradxform.tree_map_params`)."""

    def tree_flatten(self):
        return (), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        del aux, children
        return cls()

    def __repr__(self) -> str:
        return "ParamsPlaceholder()"


def is_params_placeholder(x: Any) -> bool:
    """True for gradxform's :class:`ParamsPlaceholder` and for optax's (``tree_map_params``)."""
    if isinstance(x, ParamsPlaceholder):
        return True
    cls = type(x)
    return (cls.__name__ == "_ParamsPlaceholder"
            and str(getattr(cls, "__module__", "")).startswith("optax."))


class _OptStateType(type):
    """The metaclass of the per-spec state classes.

    A state class compares equal only to itself, except the class of a state built from a
    params placeholder (:data:`PLACEHOLDER_SPEC`), which equals every state class: JAX compares
    NamedTuple node types with ``==``, so such a template lines up with any real state in
    ``jax.tree.map`` (optax's ``tree_map_params`` zips the two). All state classes hash alike,
    as equality requires.
    """

    def __eq__(cls, other: object) -> bool:
        if cls is other:
            return True
        if not isinstance(other, _OptStateType):
            return NotImplemented
        return cls.spec is PLACEHOLDER_SPEC or other.spec is PLACEHOLDER_SPEC  # type: ignore[attr-defined]

    def __ne__(cls, other: object) -> bool:
        equal = _OptStateType.__eq__(cls, other)
        return equal if equal is NotImplemented else not equal

    def __hash__(cls) -> int:
        return hash(_OptStateType)


class OptState(_OptStateFields, metaclass=_OptStateType):
    """The state ``init`` returns: one step counter, the transformation's state, who made it.

    A NamedTuple ``(count, inner, made_by)``, so tools that know NamedTuples handle it as they
    handle optax's states (``flax.serialization.to_bytes``, orbax, ``jax.tree`` paths
    ``.count`` and ``.inner``). ``made_by`` is ``{fingerprint(tx): ()}``: no array, only tree
    structure, which flax and orbax save and compare when restoring. The param spec is static:
    it belongs to the *type*. ``OptState(count, inner, made_by, spec=spec)`` returns an instance
    of the subclass made once for that spec, so two states built for the same params have the
    same tree structure and states for other params do not, and rebuilding a state from its
    fields (``type(state)(count, inner, made_by)``, as JAX and flax do) keeps its spec.

    Attributes:
      count: int32 number of updates applied so far, or ``None`` if nothing in the
        transformation needs a count.
      inner: the state of the transformation itself (a NamedTuple, tuple, dict or ``()``).
      made_by: ``{key: ()}``, the :func:`fingerprint` of the transformation whose ``init`` made
        the state.
      spec: static :class:`ParamSpec` of the params given to ``init``.
    """

    __slots__ = ()
    spec: ClassVar[ParamSpec]  # set on the subclass made for each spec (for_spec)
    _by_spec: ClassVar[dict[ParamSpec, type[OptState]]] = {}

    def __new__(cls, count: jax.Array | None, inner: PyTree, made_by: Any = None, *,
                spec: ParamSpec | None = None):
        if isinstance(made_by, ParamSpec):
            raise TypeError("OptState: the third field is made_by ({fingerprint(tx): ()}); "
                            "give the param spec by keyword: OptState(count, inner, made_by, "
                            "spec=spec)")
        if spec is None:
            if cls is OptState:
                raise TypeError("OptState: needs the ParamSpec of the params (spec=...); build "
                                "states with the optimizer's init")
            return super().__new__(cls, count, inner, made_by)
        return super().__new__(OptState.for_spec(spec), count, inner, made_by)

    @staticmethod
    def for_spec(spec: ParamSpec) -> type[OptState]:
        """The subclass of :class:`OptState` holding ``spec`` (made once per spec)."""
        return _module.class_holding(OptState, "spec", spec, OptState._by_spec)

    def __repr__(self) -> str:
        return f"OptState(count={self.count!r}, inner={self.inner!r})"

    def __reduce__(self):
        return _rebuild_opt_state, (self.count, self.inner, self.made_by, self.spec)

    def replace(self, **changes: Any) -> OptState:
        """A copy with ``count``, ``inner``, ``made_by`` or ``spec`` changed."""
        values = {"count": self.count, "inner": self.inner, "made_by": self.made_by,
                  "spec": self.spec, **changes}
        return OptState(values.pop("count"), values.pop("inner"), values.pop("made_by"),
                        **values)


    @property
    def hyperparams(self) -> dict[str, Any]:
        """The hyperparameters an :func:`~gradxform.inject_hyperparams` optimizer keeps in its
        state (``opt_state.hyperparams["learning_rate"]``, as with optax).

        The dict itself, so optax's ``opt_state.hyperparams["learning_rate"] = x`` works (in
        flax nnx: ``optimizer.opt_state.hyperparams["learning_rate"][...] = x``).
        """
        found = getattr(self.inner, "hyperparams", None)
        if not isinstance(found, dict):
            raise AttributeError(
                "this optimizer keeps no hyperparameters in its state: build it with "
                "gx.inject_hyperparams(gx.adam)(learning_rate=...) to edit them there, or read "
                "them with gx.hyperparams(opt, state) and change them with "
                "gx.set_hyperparams(opt, ...)")
        return found


def _rebuild_opt_state(count, inner, made_by, spec):
    return OptState(count, inner, made_by, spec=spec)


class Step(NamedTuple):
    """What a transformation sees of the current step besides updates, state and params.

    Attributes:
      count: int32 number of updates completed before this one (0 on the first update), or
        ``None`` if no part of the transformation declared it needs it.
      extra: the keyword arguments given to ``update`` (``value=loss``, ``key=...``).
    """

    count: jax.Array | None  # type: ignore[assignment]  # shadows tuple.count
    extra: Mapping[str, Any]

    def value(self, hyperparameter: Any) -> Any:
        """The current value of a hyperparameter (a schedule is evaluated at ``count``)."""
        if isinstance(hyperparameter, Schedule):
            if self.count is None:
                raise RuntimeError("a schedule was evaluated without a step count")
            return hyperparameter(self.count)
        return hyperparameter

    @property
    def number(self) -> jax.Array:
        """The 1-based number of this update (``count + 1``), as used by bias corrections."""
        return tree.safe_increment(self.count)


# --------------------------------------------------------------------------------------------
# The transformation.


@dataclass_transform(frozen_default=True, eq_default=False,
                    field_specifiers=(hyper, static, child, dataclasses.field))
class GradientTransformation(Module):
    """Base of every gradxform transformation. See the module docstring for the protocol."""

    @property
    def uses_count(self) -> bool:
        """True if ``apply`` reads ``step.count`` (bias corrections, schedules of its own).

        A subclass sets ``uses_count = True``, or a property where it depends on a flag.
        """
        return False

    #: How this transformation runs on the buffers of a :class:`~gradxform.FlatParams`:
    #:
    #: * ``"elementwise"``: coordinate by coordinate, or through reductions over the whole tree
    #:   (global norms, dot products), so a buffer is just a longer leaf: ``init_state`` and
    #:   ``apply`` see the buffers. Nested transformations are checked in turn.
    #: * ``"each_leaf"``: it treats each leaf on its own, whatever its path (a norm, an RMS, row
    #:   and column statistics per leaf): ``init_state`` and ``apply`` run once per shape,
    #:   vectorised with ``jax.vmap`` over the leaves of that shape, each leaf seen as the
    #:   whole tree; the state is a tuple with one entry per run of leaves of one shape.
    #: * ``"leaves"``: it needs the tree (paths, a key per leaf, an inner transformation):
    #:   ``init_state`` and ``apply`` see the original tree (views of the buffers) and the new
    #:   updates are packed into buffers again. The result equals the per-leaf run, at the
    #:   per-leaf cost; nested transformations see leaves too.
    #: * ``"layout"``: ``apply`` sees the buffers and reads ``updates.layout`` itself (a mask
    #:   of whole buffers, say); :meth:`check_flat` refuses what it cannot do.
    #: * ``None`` (not declared): ``init`` refuses flat params, naming the transformation.
    flat_support: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        wrappers = {"leaves": (flat.init_on_leaves, flat.apply_on_leaves),
                    "each_leaf": (flat.init_each_leaf, flat.apply_each_leaf)}
        if cls.flat_support not in (None, "elementwise", "layout", *wrappers):
            raise TypeError(f"{cls.__name__}.flat_support must be 'elementwise', 'each_leaf', "
                            f"'leaves', 'layout' or None, got {cls.flat_support!r}")
        if cls.flat_support in wrappers:  # see flat_support: run on the leaves
            for name, wrap in zip(("init_state", "apply"), wrappers[cls.flat_support]):
                method = getattr(cls, name)
                if getattr(method, "flat_support", None) != cls.flat_support:
                    setattr(cls, name, wrap(method))

    # -- to implement ------------------------------------------------------------------------

    def init_state(self, params: PyTree) -> PyTree:
        """This transformation's own state for ``params`` (arrays only). Default: ``()``."""
        del params
        return ()

    def apply(self, updates: PyTree, state: PyTree, params: PyTree | None, step: Step):
        """Transform ``updates``; return ``(new_updates, new_state)``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement apply")

    def links(self, state: PyTree, step: Step) -> Iterator[tuple[str, Any, PyTree, Step]]:
        """The nested transformations as ``(label, transformation, state, step)``.

        Used to read hyperparameters; wrappers that run an inner transformation override it.
        """
        del state, step
        return iter(())

    def applied(self, state: PyTree, step: Step) -> jax.Array | None:
        """How many updates have reached the params so far, as of ``step`` with ``state``.

        Every update, by default. A wrapper that skips updates or accumulates them hands its
        inner transformation a slower clock (``links``); this is the slowest clock found
        below this transformation, so ``ema_params`` and ``lookahead`` can tell an applied
        update from a skipped or accumulated one. ``None`` if there is no step count.
        """
        found = step.count
        for _, sub, sub_state, sub_step in self.links(state, step):
            count = sub.applied(sub_state, sub_step)
            if count is not None:
                found = count if found is None else jnp.minimum(found, count)
        return found

    def state_counters(self, state: PyTree) -> Mapping[str, Any]:
        """Counters this transformation keeps in ``state`` (updates skipped, micro-batches
        dropped), which :func:`~gradxform.step_metrics` reports. Default: none."""
        del state
        return {}

    def state_hyperparams(self, state: PyTree) -> Mapping[str, Any]:
        """Values this transformation adapts at run time and keeps in ``state``.

        ``hyperparams`` reports them beside the fields (the scale of ``reduce_on_plateau``, the
        current loss scale). Default: none.
        """
        del state
        return {}

    def check_flat(self, layout: flat.Layout) -> None:
        """Raise :class:`~gradxform.FlatUnsupportedError` if this transformation cannot run on
        buffers of ``layout``; called by ``init`` when the params are a ``FlatParams``.

        The default follows :attr:`flat_support`: ``None`` refuses, ``"leaves"`` and
        ``"each_leaf"`` accept (the nested transformations see leaves; an ``axis_name`` for
        ``shard_map`` is refused), ``"elementwise"`` and ``"layout"`` check the nested
        transformations. Override it to refuse an argument the buffers cannot honour.
        """
        if self.flat_support is None:
            raise flat.FlatUnsupportedError(
                f"{self.name} does not declare how it runs on flat params (its flat_support is "
                "not set), so it is not run on them: a transformation that reduces over each "
                "leaf would silently mix the leaves of a buffer. Give init the tree of params "
                "itself (the per-leaf path), or declare flat_support on the class (see "
                "GradientTransformation.flat_support).")
        if self.flat_support in ("leaves", "each_leaf"):
            axis_name = getattr(self, "axis_name", None)
            if axis_name is not None:
                raise flat.FlatUnsupportedError(
                    f"{self.name} reduces over each leaf across the shards of axis_name="
                    f"{axis_name!r} (shard_map), which flat params do not hold; use jit "
                    "with shardings, or the per-leaf params")
            return
        for name in self._data_fields:
            for t in _transformations_in(getattr(self, name)):
                t.check_flat(layout)

    # -- the protocol ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The name used in messages (a chain built by ``adam`` is called ``adam``)."""
        return type(self).__name__

    @property
    def needs_count(self) -> bool:
        """True if some part of this transformation reads the step count."""
        for m in self.submodules():
            if isinstance(m, Schedule) or (
                isinstance(m, GradientTransformation) and m.uses_count
            ):
                return True
        return False

    def init(self, params: PyTree) -> OptState:
        """The initial state for ``params`` (arrays or ``jax.ShapeDtypeStruct``).

        Given a params placeholder (optax's ``tree_utils.tree_map_params`` passes one), the
        state is a template: its params-shaped parts are the placeholder, and its structure
        compares equal to the state of any params, but ``update`` refuses it.
        """
        count = jnp.zeros([], jnp.int32) if self.needs_count else None
        if isinstance(params, flat.FlatParams):
            try:
                self.check_flat(params.layout)
            except flat.FlatUnsupportedError as e:
                raise flat.FlatUnsupportedError(f"{self.name}.init: {e}") from None
        placeholder = is_params_placeholder(params)
        if not placeholder:
            params = _arrays_for_numbers(params)
        try:
            inner = self.init_state(params)
        except (ValueError, TypeError) as e:
            named = renamed_error(e, self.name)
            if named is None:
                raise
            raise named from None
        return OptState(count, inner, {fingerprint(self): ()},
                        spec=PLACEHOLDER_SPEC if placeholder else ParamSpec.of(params))

    def __iter__(self) -> Iterator[Callable[..., Any]]:
        """``init, update = tx``, as optax's transformations (tuples) unpack."""
        return iter((self.init, self.update))

    def __getitem__(self, index: int) -> Callable[..., Any]:
        """``tx[0]`` is ``tx.init``, ``tx[1]`` is ``tx.update`` (optax's tuple positions)."""
        return (self.init, self.update)[index]

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (converted and checked like a new value).

        Only this value's own fields; to change a hyperparameter anywhere inside a chain or a
        wrapper (``adam`` is a chain) use :func:`gradxform.set_hyperparams`.
        """
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            inside = sorted({name for t in self.submodules()
                             if isinstance(t, GradientTransformation) and t is not self
                             for name in t._hyper_fields} & set(unknown))
            if inside:
                raise TypeError(
                    f"{self.name}.replace: {', '.join(map(repr, inside))} is a hyperparameter of "
                    f"a transformation inside {self.name}, not a field of it (its fields: "
                    f"{sorted(names)}). Use gx.set_hyperparams(opt, {inside[0]}=...), which finds "
                    "it anywhere in a chain or wrapper.")
        return super().replace(**changes)

    def update(self, updates: PyTree, state: OptState, params: PyTree | None = None,
               **extra_args: Any) -> tuple[PyTree, OptState]:
        """Transform ``updates`` (usually gradients); return ``(updates, new_state)``."""
        where = f"{self.name}.update"
        if not isinstance(state, OptState):
            raise TypeError(
                f"{where}: state must be the OptState returned by {self.name}.init, got "
                f"{type(state).__name__}. Was the state built by another optimizer?"
            )
        if state.spec is PLACEHOLDER_SPEC:
            raise TypeError(
                f"{where}: this state was built from a params placeholder, so it does not know "
                "the params it is for (optax.tree_utils.tree_map_params returns such a state: "
                "its structure is a template of the state's, good for shardings and specs). To "
                "map a function over a state and keep using it, call gx.tree_map_params, which "
                "takes the same arguments and keeps the state's params spec.")
        _check_made_by(self, state, where)
        updates = _arrays_for_numbers(updates, state.spec)
        self.check_updates(state.spec, updates, where)
        if params is not None:
            params = _arrays_for_numbers(params, state.spec)
            state.spec.check(params, where, "params")
        step = Step(state.count, extra_args)
        try:
            new_updates, inner = self.apply(updates, state.inner, params, step)
        except (ValueError, TypeError) as e:
            named = renamed_error(e, self.name)
            if named is None:
                raise
            raise named from None
        count = None if state.count is None else tree.safe_increment(state.count)
        return new_updates, OptState(count, inner, state.made_by, spec=state.spec)

    def check_updates(self, spec: ParamSpec, updates: PyTree, where: str) -> None:
        """Check the updates given to ``update`` against the params' ``spec`` (raises).

        By default they must have the params' structure, shapes and dtypes; a transformation
        that takes per-example gradients (a leading batch axis) overrides this, and a chain
        asks its first link.
        """
        spec.check(updates, where, "updates")

    def require_params(self, params: PyTree | None) -> PyTree:
        """``params``, or an error naming this transformation if they were not given."""
        if params is None:
            raise self.error("needs the current params: call update(updates, state, params)",
                             exc=ValueError)
        return params


def _is_python_number(x: Any) -> bool:
    return isinstance(x, (int, float, complex)) and not isinstance(x, bool)


def _arrays_for_numbers(tree_: PyTree, spec: ParamSpec | None = None) -> PyTree:
    """Python numbers among the leaves become arrays (of the spec's dtype at that leaf).

    A Python float has no dtype; as a gradient or a param it means a scalar of the params'
    dtype. Arrays are left as they are (the spec check then compares their dtypes).
    """
    leaves = jax.tree.leaves(tree_)
    if not any(_is_python_number(x) for x in leaves):
        return tree_
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree_)
    table = {} if spec is None else dict(zip(spec.paths, spec.dtypes))
    out = []
    for path, x in flat:
        if _is_python_number(x):
            x = jnp.asarray(x, table.get(_path_key(path), dtypes.leaf_dtype(x)))
        out.append(x)
    return jax.tree_util.tree_unflatten(treedef, out)


def _transformations_in(value: Any) -> Iterator[GradientTransformation]:
    """The transformations held by a field value (itself, or inside tuples, lists, dicts)."""
    if isinstance(value, GradientTransformation):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _transformations_in(v)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _transformations_in(v)


# --------------------------------------------------------------------------------------------
# Small transformations every chain needs.


class stateless(GradientTransformation):
    """A transformation without state from ``f(updates, params) -> updates``.

    Two ``stateless`` values are equal when they wrap the same function object.

    Example::

        halve = gx.stateless(lambda u, p: jax.tree.map(lambda g: g / 2, u))
    """

    f: Callable[[PyTree, PyTree | None], PyTree] = static()
    flat_support = "leaves"  # f sees the leaves it was written for

    def check(self):
        if not callable(self.f):
            raise self.error(f"must be callable, got {self.f!r}", "f", TypeError)

    def apply(self, updates, state, params, step):
        return self.f(updates, params), state


class identity(GradientTransformation):
    """Leave updates unchanged: ``u <- u``."""

    flat_support = "elementwise"

    def apply(self, updates, state, params, step):
        return updates, state


class set_to_zero(GradientTransformation):
    """Replace every update by zeros of the same shape and dtype: ``u <- 0``.

    With :func:`~gradxform.masked` or :func:`~gradxform.partition` this freezes leaves.
    """

    flat_support = "elementwise"

    def apply(self, updates, state, params, step):
        return jax.tree.map(jnp.zeros_like, updates), state


class Foreign(GradientTransformation):
    """An optax (or any duck-typed) transformation used as a link of a gradxform chain.

    It keeps its own state (and its own step counter, if it has one). Keyword arguments given to
    ``update`` are passed on if its ``update`` accepts them.
    """

    tx: Any = static()
    flat_support = "leaves"  # an optax transformation may reduce over each leaf

    def check(self):
        if not (hasattr(self.tx, "init") and hasattr(self.tx, "update")):
            raise self.error(f"needs an object with init and update, got {self.tx!r}", "tx",
                             TypeError)

    @property
    def name(self) -> str:
        return f"Foreign({type(self.tx).__name__})"

    def init_state(self, params):
        return _distinct_buffers(self.tx.init(params))

    def apply(self, updates, state, params, step):
        try:
            sig = inspect.signature(self.tx.update)
            takes_extra = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        except (TypeError, ValueError):
            takes_extra = False
        if takes_extra:
            return self.tx.update(updates, state, params, **step.extra)
        return self.tx.update(updates, state, params)

    def state_hyperparams(self, state) -> Mapping[str, Any]:
        """Hyperparameters an optax ``inject_hyperparams`` state exposes, if any."""
        found = getattr(state, "hyperparams", None)
        return dict(found) if isinstance(found, Mapping) else {}


def _distinct_buffers(state: PyTree) -> PyTree:
    """``state`` with every array that occurs twice copied, so that the state can be donated
    (a foreign ``init`` may put one array in two fields)."""
    seen: set[int] = set()

    def one(x):
        if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer):
            if id(x) in seen:
                return jnp.array(x, copy=True)
            seen.add(id(x))
        return x

    return jax.tree.map(one, state)


def _uncalled_hint(value: Any) -> str:
    """A hint for a factory or class passed where a transformation was expected."""
    name = getattr(value, "__name__", None)
    is_class = isinstance(value, type) and issubclass(value, GradientTransformation)
    is_factory = callable(value) and (getattr(value, "__gradxform_api__", None) is not None
                                      or str(getattr(value, "__module__", "")).startswith(
                                          ("gradxform", "optax")))
    if name and (is_class or is_factory):
        return f"; did you forget to call it? ({name}(...) builds a transformation)"
    return ""


def _describe_value(value: Any) -> str:
    if callable(value) and not hasattr(value, "init"):
        return f"the function {getattr(value, '__qualname__', value)!r}"
    return repr(value)


def described(value: Any) -> str:
    """How a value that is not a transformation is shown in errors (with a hint if it is a
    factory or class that was not called)."""
    return f"{_describe_value(value)}{_uncalled_hint(value)}"


def transformation(value: Any) -> GradientTransformation:
    """Field converter: a gradxform transformation as it is, an optax one as :class:`Foreign`."""
    if isinstance(value, GradientTransformation):
        return value
    if hasattr(value, "init") and hasattr(value, "update"):
        return Foreign(value)
    raise Invalid(f"must be a transformation (gradxform or optax: an object with init and "
                  f"update), got {described(value)}", TypeError)


def as_transformation(tx: Any) -> GradientTransformation:
    """``tx`` itself if it is a gradxform transformation, else wrapped as :class:`Foreign`."""
    if isinstance(tx, GradientTransformation):
        return tx
    if hasattr(tx, "init") and hasattr(tx, "update"):
        return Foreign(tx)
    raise TypeError(f"expected a transformation (an object with init and update), got "
                    f"{described(tx)}")


# --------------------------------------------------------------------------------------------
# Applying updates and reading hyperparameters.


def apply_updates(params: PyTree, updates: PyTree) -> PyTree:
    """``p <- p + u`` leaf by leaf; each result has the dtype of its param.

    The sum is formed in the wider of the two dtypes and cast back, so low-precision params
    lose no more than one rounding. ``None`` leaves stay ``None``.
    """

    def one(p, u):
        p = p if isinstance(p, jax.Array) else jnp.asarray(p)
        wide = dtypes.wider(p.dtype, u.dtype)
        if p.dtype == u.dtype == wide:  # the common case: no casts to stage
            return jax.lax.add(p, u)
        return (p.astype(wide) + u.astype(wide)).astype(p.dtype)

    try:
        return jax.tree.map(one, params, updates)
    except ValueError as e:
        raise StructureMismatchError(
            f"apply_updates: params and updates have different tree structures.\n"
            f"  params:  {jax.tree.structure(params)}\n  updates: {jax.tree.structure(updates)}"
        ) from e


class _NoState:
    """The state seen by :func:`walk` when it walks a transformation without one: every field
    and item of it is itself, so ``links`` can hand it on."""

    def __getattr__(self, name: str) -> _NoState:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> _NoState:
        return self

    def __repr__(self) -> str:
        return "<no state>"


NO_STATE = _NoState()


def walk(tx: GradientTransformation, state: OptState | None = None,
         ) -> Iterator[tuple[tuple[str, ...], GradientTransformation, PyTree, Step]]:
    """Every transformation inside ``tx``, depth first and ``tx`` first, as ``(path, t, state,
    step)``: its path of link labels, its part of ``state.inner`` and the step it sees (wrappers
    on their own clock hand their inner transformation another count).

    Without a state, the transformations alone (their states are a placeholder and their step
    counts ``None``): what :func:`set_hyperparams` edits.

    The one traversal behind :func:`hyperparams`, :func:`set_hyperparams` and the readers of
    wrapper states.
    """
    if state is None:
        yield from walk_from(tx, NO_STATE, Step(None, {}))
    else:
        yield from walk_from(tx, state.inner, Step(state.count, {}))


def walk_from(tx: GradientTransformation, inner_state: PyTree, step: Step, path: tuple = (),
              ) -> Iterator[tuple[tuple[str, ...], GradientTransformation, PyTree, Step]]:
    """:func:`walk` from a transformation's own state (``state.inner``) and the step it sees."""
    yield path, tx, inner_state, step
    for label, sub, sub_state, sub_step in tx.links(inner_state, step):
        yield from walk_from(sub, sub_state, sub_step, path + (label,))


def find_link(tx: GradientTransformation, state: OptState, cls: type,
              where: str) -> tuple[Any, PyTree]:
    """The first transformation of type ``cls`` inside ``tx`` (by :func:`walk`) and its part of
    ``state``; errors name ``where``."""
    if not isinstance(state, OptState):
        raise TypeError(f"{where}: state must be the OptState returned by the optimizer's init "
                        f"or update, got {type(state).__name__}")
    for _, t, st, _ in walk(tx, state):
        if isinstance(t, cls):
            return t, st
    raise ValueError(f"{where}: the optimizer {tx.name!r} contains no {cls.__name__} "
                     f"transformation, so there is nothing to read from its state")


def hyperparams(tx: GradientTransformation, state: OptState) -> dict[str, jax.Array]:
    """The current value of every hyperparameter of ``tx``, schedules evaluated at the step.

    Keys are field names (``"learning_rate"``, ``"b1"``, ...). A name that occurs in more than
    one link is prefixed by the link's label, for example ``"scale_by_adam.eps"``. Works inside
    jit and with vmapped optimizers (values gain the batch axis).

    Example::

        lr = gx.hyperparams(opt, opt_state)["learning_rate"]
    """
    if not isinstance(state, OptState):
        raise TypeError(f"hyperparams: state must be an OptState, got {type(state).__name__}")
    found: list[tuple[tuple[str, ...], str, Any]] = []
    for path, t, st, step in walk(tx, state):
        for name in t._hyper_fields:
            value = getattr(t, name)
            if value is not None:
                found.append((path, name, jnp.asarray(step.value(value))))
        for name, value in t.state_hyperparams(st).items():
            found.append((path, name, jnp.asarray(value)))
    counts: dict[str, int] = {}
    for _, name, _ in found:
        counts[name] = counts.get(name, 0) + 1
    out = {}
    for path, name, value in found:
        key = name if counts[name] == 1 or not path else ".".join(path + (name,))
        out[key] = value
    return out


def stack(values: Any) -> Any:
    """Stack values (transformations, schedules) that differ only in their numbers.

    Every numeric leaf gains a leading axis, so the result can be passed to ``jax.vmap`` with
    ``in_axes=0`` to train all of them in one program. Values that differ in structure (a flag,
    a dtype, a schedule of another kind, a different mask) cannot be stacked: the error names
    the first field that differs and why.

    Sweep-friendly masks. A mask or label function is compared by what it computes: its code,
    the values it captures and the globals it reads. ``mask=lambda p: ...`` written once
    inside the loop that builds the optimizers stacks (and does not recompile a jitted step
    when a new optimizer is passed); a lambda that captures a value that differs between the
    optimizers does not, and a callable *object* is compared by identity. Write masks as
    :class:`~gradxform.by_regex` / :class:`~gradxform.by_path` rules or trees of bools, or
    create the callable once, outside the loop.

    Example::

        opts = gx.stack([gx.adam(lr) for lr in (1e-3, 3e-3, 1e-2)])
        losses = jax.vmap(train)(opts)
    """
    values = list(values)
    if not values:
        raise ValueError("stack: needs at least one value")
    structures: list[TreeDef] = [jax.tree.structure(v) for v in values]
    for i, s in enumerate(structures[1:], 1):
        if s != structures[0]:
            why = _module.describe_difference(values[0], values[i], ("values[0]", f"values[{i}]"))
            why = (why or "").rstrip(".")
            raise ValueError(
                "stack: the values differ in structure (flags, dtypes, sizes, masks or schedule "
                f"kinds), not only in numbers, so they cannot share one program: {why}.\n"
                f"  values[0]: {values[0]!r}\n  values[{i}]: {values[i]!r}"
            )
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *values)
