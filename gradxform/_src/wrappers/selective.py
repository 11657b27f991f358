r"""optax's name for freezing with no state for the frozen leaves: ``selective_transform``."""

from __future__ import annotations

from typing import Any

from gradxform._src.combine import freeze
from gradxform._src.module import api

__all__ = ["selective_transform"]


@api("selective_transform")
def selective_transform(optimizer: Any, *, freeze_mask: Any) -> freeze:
    r"""Optimise the leaves ``freeze_mask`` leaves False; zero updates and no state for the rest.

    .. math:: u_i \leftarrow 0 \ (i \text{ frozen}), \qquad u_i \leftarrow
              \mathrm{optimizer}(u)_i \ \text{otherwise}

    Returns :class:`freeze` (``gx.freeze(optimizer, freeze_mask)``): the optimizer sees only
    the trainable leaves and keeps no state for the frozen ones.

    Conventions. As ``optax.selective_transform``. ``freeze_mask`` may be a bool (all or
    nothing), a tree of bools matched to the params by path (or a prefix of it), a callable
    ``params -> tree of bools``, a regex string or a :class:`by_regex` rule. optax's own
    ``optax.freeze(mask)`` only zeroes updates (the chained optimizer still keeps state for
    every leaf): ``gx.masked(gx.set_to_zero(), mask)`` is that.

    Args:
      optimizer: the transformation for the trainable leaves (gradxform or optax).
      freeze_mask: keyword-only; which leaves are frozen (True = frozen).

    Example::

        opt = gx.selective_transform(gx.adam(1e-3), freeze_mask={"encoder": True,
                                                                  "head": False})
    """
    return freeze(inner=optimizer, frozen=freeze_mask)
