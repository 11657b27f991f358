r"""Copies of the params that follow the trained ones slowly, for target networks and
evaluation: ``incremental_update`` (Polyak averaging) and ``periodic_update`` (a copy refreshed
every so many steps).

These act on params, not on updates: call them in the training step after
:func:`apply_updates`. Inside an optimizer, :class:`ema_params` keeps such an average in the
state instead.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp

from gradxform._src import tree
from gradxform._src.base import StructureMismatchError
from gradxform._src.types import PyTree, TreeDef

__all__ = ["incremental_update", "periodic_update"]


def _concrete(value: Any) -> float | None:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return None


def _check_structure(where: str, new: PyTree, old: PyTree) -> None:
    new_def: TreeDef = jax.tree.structure(new)
    if new_def != jax.tree.structure(old):
        raise StructureMismatchError(
            f"{where}: new_tensors and old_tensors have different tree structures.\n"
            f"  new_tensors: {jax.tree.structure(new)}\n  old_tensors: {jax.tree.structure(old)}")


def incremental_update(new_tensors: PyTree, old_tensors: PyTree, step_size: Any) -> PyTree:
    r"""Move a slow copy of the params a fraction ``step_size`` of the way to the new params.

    .. math:: \bar\theta \leftarrow \tau\,\theta + (1 - \tau)\,\bar\theta

    with :math:`\tau` = ``step_size`` (the soft target update of DDPG; :math:`1 - \tau` is the
    decay of an exponential moving average). Each leaf is computed and returned in the dtype of
    the old tensor; ``None`` leaves stay ``None``.

    Conventions. As ``optax.incremental_update``.

    Args:
      new_tensors: the latest params.
      old_tensors: the slow copy.
      step_size: :math:`\tau` in [0, 1] (a number, or an array, checked when it is a number).

    References:
      Polyak & Juditsky, *Acceleration of Stochastic Approximation by Averaging*, SIAM J.
      Control Optim. 1992. Lillicrap et al., *Continuous control with deep reinforcement
      learning*, ICLR 2016 (soft target updates).

    Example::

        target = gx.incremental_update(params, target, step_size=0.005)
    """
    value = _concrete(step_size)
    if value is not None and not (0.0 <= value <= 1.0):
        raise ValueError(f"incremental_update: step_size must be in [0, 1], got {step_size!r}")
    _check_structure("incremental_update", new_tensors, old_tensors)
    fresh, keep = tree.complement(step_size)

    def one(new, old):
        old = jnp.asarray(old)
        new = jnp.asarray(new).astype(old.dtype)
        return tree.scalar(fresh, old.dtype) * new + tree.scalar(keep, old.dtype) * old

    return jax.tree.map(one, new_tensors, old_tensors)


def periodic_update(new_tensors: PyTree, old_tensors: PyTree, steps: Any,
                    update_period: Any) -> PyTree:
    r"""The new params every ``update_period`` steps, the old copy otherwise.

    .. math:: \bar\theta \leftarrow \begin{cases} \theta & t \bmod K = 0 \\ \bar\theta &
              \text{otherwise} \end{cases}

    with :math:`t` = ``steps`` (the number of updates of the online params) and :math:`K` =
    ``update_period``: the target network of DQN, refreshed every :math:`K` steps.

    Conventions. As ``optax.periodic_update`` (a ``lax.cond``: both trees must have the same
    structure, shapes and dtypes).

    Args:
      new_tensors: the latest params.
      old_tensors: the slow copy.
      steps: :math:`t`, an integer scalar (may be traced).
      update_period: :math:`K`, a whole number >= 1.

    References:
      Mnih et al., *Human-level control through deep reinforcement learning*, Nature 2015.
      Grill et al., *Bootstrap Your Own Latent*, NeurIPS 2020.

    Example::

        target = gx.periodic_update(params, target, state.count, 1000)
    """
    value = _concrete(update_period)
    if value is not None and not (value >= 1 and math.isfinite(value) and value.is_integer()):
        raise ValueError(f"periodic_update: update_period must be a whole number >= 1, got "
                         f"{update_period!r}")
    _check_structure("periodic_update", new_tensors, old_tensors)
    steps = jnp.asarray(steps)
    refresh = jnp.mod(steps, jnp.asarray(update_period, steps.dtype)) == 0
    return jax.lax.cond(refresh, lambda: new_tensors, lambda: old_tensors)
