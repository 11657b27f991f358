"""Type aliases used in signatures and field annotations across the package.

``Hyper`` is what every float hyperparameter accepts: a Python number, an array (for example a
batch of values to ``vmap`` over) or a schedule evaluated at the step count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, Union

import jax
import numpy as np

if TYPE_CHECKING:
    from gradxform._src.schedules import Schedule

__all__ = ["PyTree", "Numeric", "Hyper", "DType", "AxisName", "Mask", "Params", "Updates",
           "ScalarOrSchedule", "MaskOrFn", "TreeDef"]

PyTree: TypeAlias = Any
"""Any JAX pytree (nested dicts, lists, tuples, registered classes) of arrays."""

Numeric: TypeAlias = Union[float, int, jax.Array, np.ndarray, np.number]
"""A real number or an array of them."""

Hyper: TypeAlias = Union[float, int, jax.Array, np.ndarray, np.number, "Schedule",
                         Callable[[jax.Array], jax.Array]]
"""A float hyperparameter: a number, an array or a schedule (``count -> value``)."""

DType: TypeAlias = Any
"""A dtype (``jnp.float32``, ``np.dtype('bfloat16')``, ``"float32"``) or ``None`` for the
default of the dtype policy."""

AxisName: TypeAlias = Union[str, tuple[str, ...], None]
"""The name(s) of mapped axes (``shard_map``/``pmap``) a reduction spans, or ``None``."""

Mask: TypeAlias = Any
"""Which leaves something applies to: a tree of bools matched to the params by path (or a prefix
of it), a callable ``params -> tree``, a regular expression string, or a
:class:`~gradxform.by_regex` / :class:`~gradxform.by_path` rule."""


if TYPE_CHECKING:

    class TreeDef(Protocol):
        """What gradxform uses of a tree definition (``jax.tree.structure``).

        jaxlib ships ``PyTreeDef`` without type stubs, so type checkers see an unknown type;
        annotating a tree definition with this protocol makes its methods checkable.
        """

        @property
        def num_leaves(self) -> int: ...

        def flatten_up_to(self, tree: Any) -> list[Any]: ...

        def unflatten(self, leaves: Iterable[Any]) -> Any: ...

        def __eq__(self, other: object) -> bool: ...

        def __hash__(self) -> int: ...

else:
    TreeDef = jax.tree_util.PyTreeDef


# Names optax uses in its signatures, for code written against them.

Params: TypeAlias = Any
"""A tree of parameter arrays (optax's ``Params``)."""

Updates: TypeAlias = Any
"""A tree of updates shaped like the params (optax's ``Updates``)."""

ScalarOrSchedule: TypeAlias = Hyper
"""What a float hyperparameter accepts: a number, an array or a schedule (optax's
``ScalarOrSchedule``; gradxform's ``Hyper``)."""

MaskOrFn: TypeAlias = Mask
"""optax's name for :data:`Mask` (``None`` where a mask is optional: all leaves)."""
