"""Which leaves a mask or a labelling selects: the rules (``by_regex``, ``by_path``), the path
strings they match, and :func:`route`, which turns a mask or labels in any of their forms into
one value per leaf. The routers of :mod:`gradxform._src.combine` and the flat buffers of
:mod:`gradxform._src.flat` use them; this module needs no transformation, so both can.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from gradxform._src.module import Module, argument_error, stable_function, static, thaw
from gradxform._src.types import PyTree

__all__ = ["path_key", "path_string", "by_regex", "by_path", "route", "mask_leaves",
           "check_selects_some", "ON_EMPTY"]


def path_key(path: tuple) -> tuple:
    """A leaf path with transparent boxes removed (``.value`` of flax nnx Variables)."""
    return tuple(k for k in path if not (isinstance(k, jax.tree_util.GetAttrKey)
                                         and k.name == "value"))


def path_string(path: tuple) -> str:
    """The string a :class:`by_regex` rule is searched in: ``"['params']['Dense_0']['bias']"``.

    ``jax.tree_util.keystr`` of the key path, with the ``.value`` of flax nnx Variables left
    out (see the module documentation for the format of each container).
    """
    return jax.tree_util.keystr(path_key(tuple(path)))


def _plain_key(key: Any) -> Any:
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return getattr(key, attr)
    return key


def _plain_path(path: tuple) -> tuple:
    """A key path as plain keys, so that a dict mask matches FrozenDict or nnx State params."""
    return tuple(_plain_key(k) for k in path_key(tuple(path)))


def _show(path: tuple) -> str:
    return path_string(path) or "the root"


class by_regex(Module):
    """Labels (or a mask) from regular expressions searched in each leaf's path string.

    Rules are tried in order; the first whose pattern ``re.search``-es the path string gives the
    label. Leaves no rule matches get ``default`` (an error if there is none). A single pattern
    string is a mask: True where it matches, False elsewhere.

    Args:
      rules: a pattern (a mask), a sequence of ``(pattern, label)`` pairs, or a dict
        ``{pattern: label}`` (in its order).
      default: the label of leaves no rule matches; ``None`` makes them an error.

    Example::

        # no weight decay on biases and normalisation scales (flax linen names)
        labels = gx.by_regex([("bias|scale|norm", "no_decay")], default="decay")
        opt = gx.partition({"decay": gx.adamw(1e-3, weight_decay=0.1),
                            "no_decay": gx.adam(1e-3)}, labels)
        frozen = gx.selective_transform(gx.adam(1e-3),
                                        freeze_mask=gx.by_regex(r"\\['encoder'\\]"))
    """

    rules: tuple = static()
    default: Any = static(default=None)

    def __init__(self, rules: Any, default: Any = None):
        if isinstance(rules, str):
            rules, default = ((rules, True),), (False if default is None else default)
        elif isinstance(rules, Mapping):
            rules = tuple(rules.items())
        else:
            rules = tuple(tuple(r) if isinstance(r, (list, tuple)) else r for r in rules)
        self.__init_fields__(rules=rules, default=default)

    def check(self):
        if not self.rules:
            raise self.error("needs at least one rule", "rules")
        for rule in self.rules:
            if not (isinstance(rule, tuple) and len(rule) == 2 and isinstance(rule[0], str)):
                raise self.error(f"must be (pattern, label) pairs with a string pattern, got "
                                 f"{rule!r}", "rules", TypeError)
            try:
                re.compile(rule[0])
            except re.error as e:
                raise self.error(f"holds an invalid regular expression {rule[0]!r}: {e}",
                                 "rules") from None
            _check_hashable(self, rule[1], "rules")
        if self.default is not None:
            _check_hashable(self, self.default, "default")

    def labels(self) -> tuple:
        """Every label these rules can give."""
        out = tuple(label for _, label in self.rules)
        return out if self.default is None else out + (self.default,)

    def label(self, path: str) -> Any:
        """The label of the leaf whose path string is ``path``."""
        for pattern, label in self.rules:
            if re.search(pattern, path):
                return label
        if self.default is None:
            raise ValueError(
                f"by_regex: no rule matches the leaf at {path or 'the root'} and there is no "
                f"default; rules: {[p for p, _ in self.rules]}. Add a rule or a default.")
        return self.default

    def __call__(self, params: PyTree) -> PyTree:
        return jax.tree_util.tree_map_with_path(lambda p, _: self.label(path_string(p)),
                                                params)


class by_path(Module):
    """Labels (or a mask) from a function of each leaf's path string and value.

    ``fn(path, leaf) -> label``, with ``path`` as described in :func:`path_string`. Two
    ``by_path`` values are equal when their functions compute the same thing: the same code
    with the same captured values (a ``lambda`` written once and built twice is equal).

    Example::

        labels = gx.by_path(lambda path, x: "matrix" if x.ndim >= 2 else "vector")
    """

    fn: Callable[[str, Any], Any] = static(converter=stable_function)

    def check(self):
        if not callable(self.fn):
            raise self.error(f"must be callable, got {self.fn!r}", "fn", TypeError)

    def __call__(self, params: PyTree) -> PyTree:
        return jax.tree_util.tree_map_with_path(lambda p, x: self.fn(path_string(p), x), params)


def _check_hashable(module: Module, value: Any, field: str) -> None:
    try:
        hash(value)
    except TypeError:
        raise module.error(f"labels must be hashable (strings), got {value!r}", field,
                           TypeError) from None


def _as_bool(value: Any, path: tuple, where: str, what: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, jax.core.Tracer):
        raise argument_error(where, None, f"the {what} at {_show(path)} is a traced value; "
                             "masks decide the structure of the program and must be concrete "
                             "Python bools", TypeError)
    if hasattr(value, "dtype") and np.ndim(value) == 0 and np.dtype(value.dtype) == np.bool_:
        return bool(value)
    # an argument error, so that the optimizer the user called is named (adamw, not
    # add_decayed_weights)
    raise argument_error(where, None, f"the {what} must hold bools, got {value!r} for the leaf "
                         f"at {_show(path)}", TypeError)


def route(spec: Any, params: PyTree, where: str, what: str = "mask") -> list:
    """One entry of ``spec`` per leaf of ``params`` (in ``jax.tree.leaves`` order).

    ``spec`` is a tree matched to ``params`` by key path (a prefix of it is enough), a callable
    ``params -> tree``, or a frozen tree. Errors name ``where`` and show both trees.
    """
    spec = thaw(spec)
    if callable(spec) and not _is_tree_of(spec, what):
        spec = spec(params)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    table = {_plain_path(path): (path, value)
             for path, value in jax.tree_util.tree_flatten_with_path(spec)[0]}
    values, used = [], set()
    for path, _ in flat:
        key = _plain_path(path)
        for n in range(len(key), -1, -1):
            if key[:n] in table:
                used.add(key[:n])
                values.append(table[key[:n]][1])
                break
        else:
            raise argument_error(
                where, None,
                f"no entry of the {what} covers the leaf at {_show(path)}. The {what} "
                f"must be a tree with the params' structure (or a prefix of it), a callable "
                f"returning one, or a by_regex/by_path rule.\n  {what}: "
                f"{jax.tree.structure(spec)}\n  params: {jax.tree.structure(params)}")
    unused = set(table) - used - {()}  # a whole-tree entry fits any params, empty ones too
    if unused:  # entries where the params hold None (an empty subtree) are fine
        known = {_plain_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(
            params, is_leaf=lambda x: x is None)[0]}
        for key in sorted(unused, key=str):
            if not any(k[:len(key)] == key for k in known):
                raise argument_error(
                    where, None,
                    f"the entry of the {what} at {_show(table[key][0])} is not in the "
                    f"params (a misspelt key?).\n  {what}: {jax.tree.structure(spec)}\n"
                    f"  params: {jax.tree.structure(params)}")
    if what == "mask":
        values = [_as_bool(v, p, where, what) for (p, _), v in zip(flat, values)]
    return values


def _is_tree_of(spec: Any, what: str) -> bool:
    """True for a callable that is itself a tree of bools (a mask) or of strings (labels), such
    as an equinox module with ``__call__``: it is used as the tree, not called."""
    if isinstance(spec, (by_regex, by_path)):
        return False
    leaves = jax.tree.leaves(spec)
    if not leaves or (len(leaves) == 1 and leaves[0] is spec):
        return False
    if what == "mask":
        return all(isinstance(x, (bool, np.bool_)) or (
            hasattr(x, "dtype") and np.ndim(x) == 0 and np.dtype(x.dtype) == np.bool_)
            for x in leaves)
    return all(isinstance(x, str) for x in leaves)


ON_EMPTY = ("raise", "warn", "allow")


def check_selects_some(keep: list, where: str, arg: str = "mask", on_empty: str = "raise",
                       hint: str = "") -> None:
    """Raise (or warn) if ``keep`` has entries but none is True: a mask that selects no leaf.

    Params without leaves select nothing and are fine. The error names ``where`` and ``arg``
    (and is renamed to the optimizer the user called, like argument errors).
    """
    if not keep or any(keep) or on_empty == "allow":
        return
    message = (f"selects none of the {len(keep)} leaves of the params, so {where} would "
               f"silently do nothing. Check the mask (a misspelt regular expression, a "
               f"callable testing the wrong property){hint}.")
    if on_empty == "warn":
        warnings.warn(f"{where}: {arg} {message}", UserWarning, stacklevel=4)
        return
    raise argument_error(where, arg, message)


def mask_leaves(mask: Any, params: PyTree, where: str) -> PyTree:
    """A tree of bools shaped like ``params`` from a mask (a tree, a prefix, a callable).

    A mask that selects no leaf of non-empty params is an error (see the module documentation):
    to apply a penalty to no leaf, leave it out (or wrap it: ``masked(add_decayed_weights(wd),
    mask, on_empty="allow")``).
    """
    mask = thaw(mask)
    if isinstance(mask, str):
        mask = by_regex(mask)
    keep = route(mask, params, where, "mask")
    check_selects_some(keep, where, hint="; to allow a mask that may select nothing, apply the "
                       "penalty through masked(..., on_empty='allow')")
    return jax.tree.unflatten(jax.tree.structure(params), keep)
