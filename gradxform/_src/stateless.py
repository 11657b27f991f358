r"""Writing small transformations the optax way: ``stateless_with_tree_map``, ``EmptyState``,
``init_empty_state`` and ``with_extra_args_support``.

gradxform's own way is a subclass of :class:`GradientTransformation` (see ``CONTRIBUTING.md``)
or :class:`stateless`; these names let code written against optax's helpers run unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from gradxform._src.base import GradientTransformation, as_transformation, static
from gradxform._src.types import PyTree

__all__ = ["EmptyState", "init_empty_state", "stateless_with_tree_map", "with_extra_args_support"]


class EmptyState(NamedTuple):
    """An empty state (no arrays), for transformations that keep none.

    gradxform's own stateless transformations keep ``()``; both are empty pytrees.
    """


def init_empty_state(params: PyTree) -> EmptyState:
    """``EmptyState()``, whatever the params: the state of a stateless transformation."""
    del params
    return EmptyState()


class stateless_with_tree_map(GradientTransformation):
    r"""A stateless transformation from a function of one update array and its param array.

    .. math:: u_i \leftarrow f(u_i, \theta_i) \quad\text{for every leaf } i

    ``f(u, p)`` gets ``p = None`` when ``update`` is called without params. :class:`stateless`
    takes a function of the whole trees instead. Two values are equal when they wrap the same
    function object.

    Conventions. As ``optax.stateless_with_tree_map``; the state is ``()``.

    Args:
      f: ``f(update_array, param_array_or_None) -> update_array``.

    Example::

        # halve the update of every leaf whose param is larger than 1 in magnitude
        tx = gx.stateless_with_tree_map(
            lambda u, p: jnp.where(jnp.abs(p) > 1, u / 2, u))
    """

    f: Callable[[Any, Any], Any] = static()
    flat_support = "leaves"  # fn sees the leaves it was written for

    def check(self):
        if not callable(self.f):
            raise self.error(f"must be callable, got {self.f!r}", "f", TypeError)

    def apply(self, updates, state, params, step):
        if params is None:
            return jax.tree.map(lambda u: self.f(u, None), updates), state
        return jax.tree.map(self.f, updates, params), state


def with_extra_args_support(tx: Any) -> GradientTransformation:
    """A transformation whose ``update`` accepts keyword arguments: ``tx`` itself.

    Every gradxform transformation takes extra keyword arguments in ``update`` (and passes them
    to the links that use them), so a gradxform value is returned unchanged. An optax (or other
    duck-typed) transformation is wrapped in :class:`Foreign`, which passes the keyword
    arguments on only if its ``update`` takes them.

    Example::

        tx = gx.with_extra_args_support(gx.adam(1e-3))   # the same value
    """
    return as_transformation(tx)
