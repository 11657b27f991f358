"""Combining transformations: ``chain``, ``named_chain`` and ``masked``.

A chain runs its links one after the other on the updates. All links share the chain's single
step counter (see :mod:`gradxform._src.base`); the state of a chain is the tuple of its links'
states (a dict for ``named_chain``). Links may be optax transformations: they keep their own
state and counters.
"""

from __future__ import annotations

from typing import Any

import jax

from gradxform._src.base import GradientTransformation, as_transformation
from gradxform._src.module import api, child, freeze, static, thaw

__all__ = ["chain", "named_chain", "masked", "mask_leaves"]

PyTree = Any


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

    transforms: tuple = child()
    names: tuple | None = static(None)
    chain_name: str | None = static(None)

    def __init__(self, *transforms: Any, name: str | None = None,
                 names: tuple[str, ...] | None = None):
        if len(transforms) == 1 and isinstance(transforms[0], (list, tuple)) and not hasattr(
            transforms[0], "init"
        ):
            transforms = tuple(transforms[0])
        object.__setattr__(self, "transforms", tuple(as_transformation(t) for t in transforms))
        object.__setattr__(self, "names", None if names is None else tuple(names))
        object.__setattr__(self, "chain_name", name)
        self.__post_init__()

    def check(self):
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

    def init_state(self, params):
        states = tuple(t.init_state(params) for t in self.transforms)
        return dict(zip(self.names, states)) if self.names is not None else states

    def apply(self, updates, state, params, step):
        states = [state[n] for n in self.names] if self.names is not None else list(state)
        new_states = []
        for t, s in zip(self.transforms, states):
            updates, s = t.apply(updates, s, params, step)
            new_states.append(s)
        if self.names is not None:
            return updates, dict(zip(self.names, new_states))
        return updates, tuple(new_states)

    def links(self, state, step):
        states = [state[n] for n in self.names] if self.names is not None else list(state)
        return iter(zip(self.labels(), self.transforms, states, [step] * len(states)))

    def __repr__(self):
        inner = ", ".join(repr(t) for t in self.transforms)
        extra = f", name={self.chain_name!r}" if self.chain_name else ""
        if self.names is not None:
            inner = ", ".join(f"{n}={t!r}" for n, t in zip(self.names, self.transforms))
            return f"named_chain({inner}{extra})"
        return f"chain({inner}{extra})"


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
# Masks.


def mask_leaves(mask: Any, params: PyTree, where: str) -> PyTree:
    """A tree of bools shaped like ``params`` from a mask (a callable, a tree, or a prefix)."""
    mask = thaw(mask)
    if callable(mask):
        mask = mask(params)
    try:
        return jax.tree.map(
            lambda m, sub: jax.tree.map(lambda _: bool(m), sub), mask, params,
            is_leaf=lambda x: isinstance(x, bool),
        )
    except ValueError as e:
        raise ValueError(
            f"{where}: the mask must be a tree of bools with the structure of the params (or a "
            f"prefix of it), or a callable returning one.\n  mask:   {jax.tree.structure(mask)}"
            f"\n  params: {jax.tree.structure(params)}"
        ) from e


def _select(tree_: PyTree, keep: PyTree) -> PyTree:
    """``tree_`` with the leaves where ``keep`` is False replaced by ``None``."""
    return jax.tree.map(lambda x, k: x if k else None, tree_, keep)


def _merge(original: PyTree, inner: PyTree, keep: PyTree) -> PyTree:
    """Leaves of ``inner`` where ``keep``, of ``original`` elsewhere."""
    leaves, treedef = jax.tree.flatten(original)
    keep_leaves = jax.tree.leaves(keep)
    inner_leaves = jax.tree.leaves(inner, is_leaf=lambda x: x is None)
    return jax.tree.unflatten(
        treedef, [i if k else o for o, i, k in zip(leaves, inner_leaves, keep_leaves)]
    )


class masked(GradientTransformation):
    """Apply ``inner`` to the leaves where ``mask`` is True; leave the others unchanged.

    The inner transformation sees (and keeps state for) only the selected leaves; the others
    appear to it as ``None``.

    Args:
      inner: the transformation to apply to the selected leaves.
      mask: a tree of bools with the params' structure (or a prefix of it), or a callable
        ``params -> tree of bools``.
    """

    inner: Any = child()
    mask: Any = static()

    def __post_init__(self):
        object.__setattr__(self, "inner", as_transformation(self.inner))
        object.__setattr__(self, "mask", freeze(self.mask))
        super().__post_init__()

    def _keep(self, params):
        return mask_leaves(self.mask, params, "masked")

    def init_state(self, params):
        return self.inner.init_state(_select(params, self._keep(params)))

    def apply(self, updates, state, params, step):
        keep = self._keep(updates if params is None else params)
        sub_params = None if params is None else _select(params, keep)
        new, state = self.inner.apply(_select(updates, keep), state, sub_params, step)
        return _merge(updates, new, keep), state

    def links(self, state, step):
        return iter([("masked", self.inner, state, step)])

