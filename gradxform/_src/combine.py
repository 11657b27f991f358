"""Combining transformations: ``chain``, ``named_chain``; routing leaves: ``masked``,
``freeze``, ``selective_transform``, ``partition``.

A chain runs its links one after the other on the updates. All links share the chain's single
step counter (see :mod:`gradxform._src.base`); the state of a chain is the tuple of its links'
states (a dict for ``named_chain``). Links may be optax transformations: they keep their own
state and counters.

**Routing leaves.** ``masked``, ``selective_transform`` and ``partition`` send each leaf of the
params to a transformation (``freeze`` is ``masked(set_to_zero(), mask)``). Which leaf goes
where is given by a *mask* (bools) or *labels*, in one of four forms:

* a tree with the params' structure, or a prefix of it (``{"encoder": False, "head": True}``).
  It is matched to the params **by key path**, not by container type, so a plain ``dict`` mask
  works for flax ``FrozenDict`` params or an nnx ``State``; ``None`` leaves of the params are
  empty and need no entry;
* a callable ``params -> tree`` (as optax). A callable that *is* a tree of bools (an equinox
  module or a registered dataclass with ``__call__`` whose leaves are the bools) is used as the
  tree, not called;
* :class:`by_regex`: regular expressions searched (``re.search``) in each leaf's *path string*;
  a plain string given as a mask is such a regex;
* :class:`by_path`: a callable ``fn(path_string, leaf) -> label``.

The *path string* of a leaf is ``jax.tree_util.keystr`` of its key path, with the ``.value`` of
flax nnx Variables left out: ``"['params']['Dense_0']['bias']"`` for nested dicts (flax linen),
``".layers[0].weight"`` for attributes and sequences (equinox), ``"[1][0]"`` for lists and
tuples. :func:`path_string` computes it.

A routed transformation sees only its own leaves; the others appear to it as ``None`` (an empty
subtree), so it keeps **no state at all** for them. Routers nest: a mask inside a partition is
matched against the partition's sub-tree, whose other leaves are ``None``. A transformation that
is routed no leaf at all is not run (its state stays as ``init`` made it); params that are a
single array work like any other tree.

**A mask that selects nothing is an error.** When the params have leaves but a mask selects
none of them (a callable or a regular expression that matches no path, a mask of ``False``),
``masked``, ``freeze`` and the masks of the weight-decay transformations raise instead of
silently doing nothing (``adamw(mask=by_regex("kernel"))`` on a model whose weights are called
``"w"`` would train without weight decay); a :class:`by_regex` rule of a ``partition`` that
labels no leaf raises too. ``on_empty="warn"`` (a ``UserWarning``) or ``"allow"`` on
``masked``, ``freeze`` and ``partition`` accept it. Empty params (no leaves) are fine: every
router returns the empty tree.

Equinox modules hold non-array leaves (activation functions); give optimizers
``eqx.filter(model, eqx.is_array)`` (non-arrays become ``None``), as with optax. Integer and
boolean array leaves can only be routed to ``set_to_zero`` or ``identity`` (or frozen).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradxform._src.base import (
    NO_STATE,
    GradientTransformation,
    Step,
    child,
    described,
    identity,
    is_params_placeholder,
    set_to_zero,
    static,
    transformation,
)
from gradxform._src.module import Invalid, api, thaw
from gradxform._src.module import freeze as freeze_tree
from gradxform._src.routing import (
    ON_EMPTY,
    _show,
    by_path,
    by_regex,
    check_selects_some,
    mask_leaves,
    path_string,
    route,
)
from gradxform._src.types import Mask, PyTree, TreeDef

__all__ = ["chain", "named_chain", "masked", "freeze", "selective_transform", "partition",
           "by_regex", "by_path", "path_string", "mask_leaves", "multi_transform"]


def _links(transforms: Any) -> tuple[GradientTransformation, ...]:
    """Field converter of :class:`chain`: every link a transformation (optax ones wrapped)."""
    links = []
    for i, tx in enumerate(transforms):
        if not (hasattr(tx, "init") and hasattr(tx, "update")):
            raise Invalid(f"[{i}] is not a transformation: expected a transformation (an object "
                          f"with init and update), got {described(tx)}", TypeError)
        links.append(transformation(tx))
    return tuple(links)


def _optional_tuple(value: Any) -> tuple | None:
    return None if value is None else tuple(value)


class chain(GradientTransformation):
    """Apply transformations in sequence: ``u <- t_n(... t_2(t_1(u)))``.

    Args:
      *transforms: gradxform or optax transformations.
      name: a name for messages and ``repr`` (the optimizers set it: ``adam`` is a chain named
        ``"adam"``).
      names: labels for the links' states (``named_chain`` sets them); without names the state
        is a tuple.

    Example::

        opt = gx.chain(gx.clip_by_global_norm(1.0), gx.scale_by_adam(), gx.scale(-1e-3))
    """

    transforms: tuple[GradientTransformation, ...] = child(converter=_links)
    names: tuple[str, ...] | None = static(default=None, converter=_optional_tuple)
    chain_name: str | None = static(default=None)
    flat_support = "elementwise"

    def __init__(self, *transforms: Any, name: str | None = None,
                 names: tuple[str, ...] | None = None):
        if len(transforms) == 1 and isinstance(transforms[0], (list, tuple)) and not hasattr(
            transforms[0], "init"
        ):
            transforms = tuple(transforms[0])
        self.__init_fields__(transforms=transforms, names=names, chain_name=name)

    def check(self):
        if self.chain_name is not None and not isinstance(self.chain_name, str):
            raise self.error(f"must be a string (the name errors and states show), got "
                             f"{self.chain_name!r}", "name", TypeError)
        if self.names is not None:
            if len(self.names) != len(self.transforms):
                raise self.error(f"needs one name per transformation, got {len(self.names)} "
                                 f"names for {len(self.transforms)} transformations")
            if len(set(self.names)) != len(self.names):
                raise self.error(f"names must be distinct, got {self.names}")

    @property
    def name(self) -> str:
        return self.chain_name or "chain"

    def labels(self) -> tuple[str, ...]:
        if self.names is not None:
            return self.names
        base = [t.name for t in self.transforms]
        return tuple(b if base.count(b) == 1 else f"{b}[{i}]" for i, b in enumerate(base))

    def check_updates(self, spec, updates, where):
        if self.transforms:  # the first link is the one that receives them
            return self.transforms[0].check_updates(spec, updates, where)
        return super().check_updates(spec, updates, where)

    def init_state(self, params):
        states = tuple(t.init_state(params) for t in self.transforms)
        return dict(zip(self.names, states)) if self.names is not None else states

    def _states(self, state) -> list:
        """One state per link; an error if the state has another number of links (a zip would
        silently drop the links without a state). Without a state (:func:`walk` of the
        transformations alone) every link gets the placeholder."""
        if state is NO_STATE:
            return [NO_STATE] * len(self.transforms)
        if self.names is not None:
            if not isinstance(state, Mapping) or set(state) != set(self.names):
                raise TypeError(f"{self.name}: the state must be a dict with the keys "
                                f"{self.names}, got {_shape_of(state)}")
            return [state[n] for n in self.names]
        if not isinstance(state, (tuple, list)) or len(state) != len(self.transforms):
            raise TypeError(f"{self.name}: the state must hold one state per link "
                            f"({len(self.transforms)}), got {_shape_of(state)}")
        return list(state)

    def apply(self, updates, state, params, step):
        states = self._states(state)
        new_states = []
        for t, s in zip(self.transforms, states):
            updates, s = t.apply(updates, s, params, step)
            new_states.append(s)
        if self.names is not None:
            return updates, dict(zip(self.names, new_states))
        return updates, tuple(new_states)

    def links(self, state, step):
        states = self._states(state)
        return iter(zip(self.labels(), self.transforms, states, [step] * len(states)))

    def __repr__(self):
        inner = ", ".join(repr(t) for t in self.transforms)
        extra = f", name={self.chain_name!r}" if self.chain_name else ""
        if self.names is not None:
            inner = ", ".join(f"{n}={t!r}" for n, t in zip(self.names, self.transforms))
            return f"named_chain({inner}{extra})"
        return f"chain({inner}{extra})"


def _shape_of(state: Any) -> str:
    if isinstance(state, Mapping):
        return f"a dict with the keys {tuple(state)}"
    if isinstance(state, (tuple, list)):
        return f"a {type(state).__name__} of {len(state)}"
    return type(state).__name__


@api("named_chain")
def named_chain(*named: tuple[str, Any]) -> chain:
    """A chain whose state is a dict keyed by the given names.

    Example::

        opt = gx.named_chain(("clip", gx.clip_by_global_norm(1.0)), ("adam", gx.adam(1e-3)))
        state.inner["adam"]
    """
    for item in named:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(f"named_chain: expected (name, transformation) pairs, got {item!r}")
    return chain(*(t for _, t in named), names=tuple(n for n, _ in named))


# --------------------------------------------------------------------------------------------
# Paths, and masks or labels matched to the params by path.



def _select(tree_: PyTree, keep: list) -> PyTree:
    """``tree_`` with the leaves where ``keep`` is False replaced by ``None``."""
    leaves, treedef = jax.tree.flatten(tree_)
    return jax.tree.unflatten(treedef, [x if k else None for x, k in zip(leaves, keep)])


def _merge(original: PyTree, parts: list[tuple[PyTree, list]]) -> PyTree:
    """Leaf ``i`` from the part whose ``keep[i]`` is True, from ``original`` where none is."""
    treedef: TreeDef
    leaves, treedef = jax.tree.flatten(original)
    out = list(leaves)
    for tree_, keep in parts:
        for i, (x, k) in enumerate(zip(treedef.flatten_up_to(tree_), keep)):
            if k:
                out[i] = x
    return treedef.unflatten(out)


def _select_extra(step: Step, updates: PyTree, keep: list, enabled: bool) -> Step:
    """``step`` whose extra arguments with the updates' tree structure keep only the leaves
    ``keep`` selects, if ``enabled`` (optax's ``mask_compatible_extra_args``)."""
    if not enabled or not step.extra:
        return step
    structure: TreeDef = jax.tree.structure(updates)
    extra = {k: _select(v, keep) if jax.tree.structure(v) == structure else v
             for k, v in step.extra.items()}
    return step._replace(extra=extra)


def _flag(value: Any) -> bool:
    """Field converter of a bool flag."""
    if not isinstance(value, (bool, np.bool_)):
        raise Invalid(f"must be a bool, got {value!r}", TypeError)
    return bool(value)


def _is_stateless_passthrough(tx: GradientTransformation) -> bool:
    return isinstance(tx, (set_to_zero, identity))


def _check_routable(where: str, tx: GradientTransformation, params: PyTree, keep: list,
                    group: str) -> None:
    """Non-float leaves may only go to set_to_zero/identity; say so clearly otherwise."""
    if _is_stateless_passthrough(tx):
        return
    for (path, leaf), k in zip(jax.tree_util.tree_flatten_with_path(params)[0], keep):
        if not k:
            continue
        dtype = getattr(leaf, "dtype", None)
        if dtype is None and not isinstance(leaf, (int, float, complex, np.generic)):
            raise TypeError(
                f"{where}: the leaf at {_show(path)} is not an array ({type(leaf).__name__}); "
                "optimizers take trees of arrays. For equinox modules give the optimizer "
                "eqx.filter(model, eqx.is_array), where non-array leaves are None.")
        if dtype is not None and not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(
                f"{where}: the leaf at {_show(path)} has dtype {np.dtype(dtype).name} and is "
                f"routed to {group} ({tx.name}), which can only optimise floating-point leaves. "
                "Route integer and boolean leaves to set_to_zero() or freeze them.")


def _check_on_empty(module: masked | selective_transform | partition) -> None:
    if module.on_empty not in ON_EMPTY:
        raise module.error(f"must be one of {ON_EMPTY}, got {module.on_empty!r}", "on_empty")


def _prepare_mask(mask: Any) -> Any:
    """Field converter of masks: a regex string becomes :class:`by_regex`; a tree is frozen
    (hashable), and a plain function is compared by its code and captured values
    (``module.StableFunction``), so the same ``lambda`` written in a loop is the same
    program."""
    if isinstance(mask, str):
        return by_regex(mask)
    return freeze_tree(mask)


def _labelled_transforms(transforms: Any) -> dict[str, GradientTransformation]:
    """Field converter of :class:`partition`: a non-empty ``{label: transformation}`` dict."""
    if not isinstance(transforms, Mapping) or not transforms:
        raise Invalid(f"must be a non-empty dict {{label: transformation}}, got {transforms!r}",
                      TypeError)
    out = {}
    for label, tx in transforms.items():
        if not isinstance(label, str):
            raise Invalid(f"labels (the keys) must be strings, got {label!r}", TypeError)
        try:
            out[label] = transformation(tx)
        except Invalid as e:
            raise Invalid(f"[{label!r}] {e.message}", e.kind) from None
    return out


# --------------------------------------------------------------------------------------------
# masked, freeze, selective_transform, partition.


class masked(GradientTransformation):
    """Apply ``inner`` to the leaves where ``mask`` is True; leave the others unchanged.

    The inner transformation sees (and keeps state for) only the selected leaves; the others
    appear to it as ``None``. Unselected leaves are passed through as they came (use
    :class:`selective_transform` to zero them instead).

    Args:
      inner: the transformation to apply to the selected leaves (gradxform or optax).
      mask: which leaves ``inner`` sees: a tree of bools matched to the params by path (or a
        prefix of it), a callable ``params -> tree of bools``, a regex string searched in each
        leaf's path string, or a :class:`by_regex`/:class:`by_path` rule (see the module
        documentation).
      mask_compatible_extra_args: keyword-only; also mask the keyword arguments of ``update``
        that have the updates' tree structure (optax's option), so ``inner`` sees its leaves of
        them only. Default: they are passed on whole.
      on_empty: what happens when the mask selects no leaf of (non-empty) params: ``"raise"``
        (default), ``"warn"`` or ``"allow"``.

    Example::

        # Adam on the matrices, plain SGD on the rest
        gx.chain(gx.masked(gx.scale_by_adam(), lambda p: jax.tree.map(lambda x: x.ndim > 1, p)),
                 gx.scale(-1e-3))
    """

    inner: GradientTransformation = child(converter=transformation)
    mask: Mask = static(converter=_prepare_mask)
    mask_compatible_extra_args: bool = static(default=False, kw_only=True, converter=_flag)
    flat_support = "leaves"  # routes leaves by path
    on_empty: str = static(default="raise", kw_only=True)

    def check(self):
        _check_on_empty(self)

    def _keep(self, tree_):
        return route(self.mask, tree_, self.name, "mask")

    def init_state(self, params):
        if is_params_placeholder(params):  # a template of the state: no leaves to route
            return self.inner.init_state(params)
        keep = self._keep(params)
        _check_routable(self.name, self.inner, params, keep, "the mask's True leaves")
        check_selects_some(keep, self.name, "mask", self.on_empty)
        return self.inner.init_state(_select(params, keep))

    def apply(self, updates, state, params, step):
        keep = self._keep(updates if params is None else params)
        if not any(keep):  # nothing routed to inner: it does not run
            return updates, state
        sub_params = None if params is None else _select(params, keep)
        sub_step = _select_extra(step, updates, keep, self.mask_compatible_extra_args)
        new, state = self.inner.apply(_select(updates, keep), state, sub_params, sub_step)
        return _merge(updates, [(new, keep)]), state

    def links(self, state, step):
        return iter([(self.inner.name, self.inner, state, step)])


@api("freeze")
def freeze(mask: Mask, *, on_empty: str = "raise") -> masked:
    r"""Zero the updates of the leaves ``mask`` selects (True = frozen); pass the others on.

    .. math:: u_i \leftarrow 0 \ (i \text{ frozen}), \qquad u_i \leftarrow u_i
              \ \text{otherwise}

    ``masked(set_to_zero(), mask)``, as optax's ``freeze``. In a chain *before* an optimizer
    (``chain(freeze(mask), adam(lr))``) the optimizer still keeps state for the frozen leaves
    (zero gradients decay Adam's moments, weight decay still moves them); to keep no state for
    them and leave them exactly as they are, wrap the optimizer instead:
    :class:`selective_transform` (``selective_transform(adam(lr), freeze_mask=mask)``).

    Args:
      mask: which leaves are frozen, in any form a mask takes: a tree of bools matched by path
        (or a prefix), a callable ``params -> tree``, a regex string, or a
        :class:`by_regex`/:class:`by_path` rule.
      on_empty: what happens when the mask freezes no leaf of (non-empty) params: ``"raise"``
        (default), ``"warn"`` or ``"allow"``.

    Example::

        opt = gx.chain(gx.freeze({"encoder": True, "head": False}), gx.sgd(1e-2))
    """
    return masked(inner=set_to_zero(), mask=mask, on_empty=on_empty)


class selective_transform(GradientTransformation):
    r"""Optimise the leaves ``freeze_mask`` leaves False; zero updates and **no optimizer
    state** for the frozen ones.

    .. math:: u_i \leftarrow 0 \ (i \text{ frozen}), \qquad u_i \leftarrow
              \mathrm{optimizer}(u)_i \ \text{otherwise}

    ``optimizer`` sees only the trainable leaves (frozen ones appear to it as ``None``), so Adam
    keeps no moments for a frozen encoder: the state's size is that of the trainable leaves.

    Conventions. As optax's ``selective_transform``, with the mask in any of the forms below.
    optax's ``freeze(mask)`` (:func:`freeze` here) only zeroes the frozen updates: chained with
    Adam, Adam still keeps moments for every leaf.

    Args:
      optimizer: the transformation for the trainable leaves (gradxform or optax).
      freeze_mask: keyword-only; which leaves are frozen (True = frozen), in any form a mask
        takes: a bool (all or nothing), a tree of bools matched by path (or a prefix), a
        callable ``params -> tree``, a regex string, or a :class:`by_regex`/:class:`by_path`
        rule.

    Example::

        opt = gx.selective_transform(gx.adam(1e-3), freeze_mask={"encoder": True,
                                                                  "head": False})
        opt = gx.selective_transform(gx.adam(1e-3), freeze_mask=r"\['encoder'\]")  # by regex
    """

    optimizer: GradientTransformation = child(converter=transformation)
    freeze_mask: Mask = static(converter=_prepare_mask, kw_only=True)
    flat_support = "leaves"  # routes leaves by path
    on_empty: str = static(default="raise", kw_only=True)

    def check(self):
        _check_on_empty(self)

    def _trainable(self, tree_):
        return [not f for f in route(self.freeze_mask, tree_, self.name, "mask")]

    def init_state(self, params):
        if is_params_placeholder(params):  # a template of the state: no leaves to route
            return self.optimizer.init_state(params)
        keep = self._trainable(params)
        _check_routable(self.name, self.optimizer, params, keep, "the trainable leaves")
        check_selects_some([not k for k in keep], self.name, "freeze_mask", self.on_empty)
        return self.optimizer.init_state(_select(params, keep))

    def apply(self, updates, state, params, step):
        keep = self._trainable(updates if params is None else params)
        zeros = jax.tree.map(jnp.zeros_like, updates)
        if not any(keep):  # everything frozen: inner does not run
            return zeros, state
        sub_params = None if params is None else _select(params, keep)
        new, state = self.optimizer.apply(_select(updates, keep), state, sub_params, step)
        zeros = jax.tree.map(jnp.zeros_like, updates)
        return _merge(zeros, [(new, keep)]), state

    def links(self, state, step):
        return iter([(self.optimizer.name, self.optimizer, state, step)])


class partition(GradientTransformation):
    """Route each leaf to the transformation of its label (parameter groups).

    Each transformation sees only the leaves with its label (the others appear to it as
    ``None``) and keeps state for them alone; the state is a dict keyed by label. Every leaf
    must get a label that is a key of ``transforms``; a transformation may get no leaves.

    Args:
      transforms: a dict ``{label: transformation}`` (gradxform or optax transformations;
        ``set_to_zero()`` freezes a group).
      param_labels: the label of each leaf: a tree of labels matched to the params by path (or
        a prefix of it), a callable ``params -> tree of labels``, or a :class:`by_regex` /
        :class:`by_path` rule (see the module documentation for the path strings).
      mask_compatible_extra_args: keyword-only; give each transformation only its leaves of
        the keyword arguments of ``update`` that have the updates' tree structure (optax's
        option). Default: they are passed on whole.
      on_empty: what happens when a :class:`by_regex` rule of ``param_labels`` labels no leaf of
        (non-empty) params: ``"raise"`` (default), ``"warn"`` or ``"allow"``. A group that a
        tree of labels gives no leaf is always fine (it was written so).

    Conventions. This is optax's ``multi_transform`` / ``partition`` and Keras'
    ``OptimizerMap``; torch expresses it with parameter groups.

    Example::

        opt = gx.partition(
            {"decay": gx.adamw(1e-3, weight_decay=0.1), "no_decay": gx.adam(1e-3)},
            gx.by_regex([("bias|scale", "no_decay")], default="decay"))
        state.inner["no_decay"]      # Adam's moments of the biases and scales only
    """

    transforms: Mapping[str, GradientTransformation] = child(converter=_labelled_transforms)
    param_labels: Any = static(converter=freeze_tree)
    mask_compatible_extra_args: bool = static(default=False, kw_only=True, converter=_flag)
    on_empty: str = static(default="raise", kw_only=True)
    flat_support = "leaves"  # routes leaves by path

    def check(self):
        _check_on_empty(self)
        labels = thaw(self.param_labels)
        given: Sequence[Any]
        if isinstance(labels, by_regex):
            given = labels.labels()
        elif callable(labels):
            return
        else:
            given = jax.tree.leaves(labels)
        for label in given:
            if label not in self.transforms:
                raise self.error(f"give the label {label!r}, which is not a key of transforms "
                                 f"{tuple(self.transforms)}", "param_labels")

    def _groups(self, tree_) -> list:
        labels = route(self.param_labels, tree_, self.name, "labels")
        flat = jax.tree_util.tree_flatten_with_path(tree_)[0]
        for (path, _), label in zip(flat, labels):
            try:
                known = label in self.transforms
            except TypeError:
                known = False
            if not known:
                raise ValueError(f"{self.name}: the leaf at {_show(path)} has the label "
                                 f"{label!r}, which is not a key of transforms "
                                 f"{tuple(self.transforms)}")
        return labels

    def _check_rules(self, params, labels) -> None:
        """Every rule of a by_regex must label some leaf (else its pattern is probably wrong)."""
        rule = thaw(self.param_labels)
        if not isinstance(rule, by_regex) or not labels or self.on_empty == "allow":
            return
        paths = [path_string(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
        for pattern, label in rule.rules:
            if not any(rule.label(path) == label and re.search(pattern, path)
                       for path in paths):
                message = (f"{self.name}: the rule ({pattern!r}, {label!r}) of the labels gives "
                           f"no leaf its label (paths: {_abbrev_paths(paths)}); check the "
                           "pattern, or pass on_empty='allow'")
                if self.on_empty == "warn":
                    warnings.warn(message, UserWarning, stacklevel=4)
                else:
                    raise ValueError(message)

    def init_state(self, params):
        if is_params_placeholder(params):  # a template of the state: no leaves to route
            return {label: tx.init_state(params) for label, tx in self.transforms.items()}
        labels = self._groups(params)
        self._check_rules(params, labels)
        state = {}
        for label, tx in self.transforms.items():
            keep = [lab == label for lab in labels]
            _check_routable(self.name, tx, params, keep, f"the group {label!r}")
            state[label] = tx.init_state(_select(params, keep))
        return state

    def apply(self, updates, state, params, step):
        labels = self._groups(updates if params is None else params)
        parts, new_state = [], {}
        for label, tx in self.transforms.items():
            keep = [lab == label for lab in labels]
            if not any(keep):  # a group without leaves does not run
                new_state[label] = state[label]
                continue
            sub_params = None if params is None else _select(params, keep)
            sub_step = _select_extra(step, updates, keep, self.mask_compatible_extra_args)
            new, new_state[label] = tx.apply(_select(updates, keep), state[label], sub_params,
                                             sub_step)
            parts.append((new, keep))
        return _merge(updates, parts), new_state

    def links(self, state, step):
        return iter([(label, tx, state[label], step) for label, tx in self.transforms.items()])


@api("multi_transform")
def multi_transform(transforms: Mapping[str, Any], param_labels: Any, *,
                    mask_compatible_extra_args: bool = False) -> partition:
    """optax's name and call for :class:`partition`: one transformation per label of the params.

    Conventions. The state is :class:`partition`'s, a dict keyed by label (optax's is
    ``MultiTransformState(inner_states)``, with each group's state in a ``MaskedState``).
    ``mask_compatible_extra_args=True`` gives each group only its leaves of the params-shaped
    extra arguments of ``update``, as in optax.

    Example::

        opt = gx.multi_transform({"decay": gx.adamw(1e-3), "no_decay": gx.adam(1e-3)},
                                 gx.by_regex([("bias|scale", "no_decay")], default="decay"))
    """
    return partition(transforms, param_labels,
                     mask_compatible_extra_args=mask_compatible_extra_args)


def _abbrev_paths(paths: list[str], n: int = 6) -> str:
    shown = ", ".join(p or "the root" for p in paths[:n])
    return f"[{shown}{', ...' if len(paths) > n else ''}]"
