r"""Scaling by a schedule under optax's name: ``scale_by_schedule``."""

from __future__ import annotations

from typing import Any

from gradxform._src.module import api
from gradxform._src.transforms.scaling import scale

__all__ = ["scale_by_schedule"]


@api("scale_by_schedule")
def scale_by_schedule(step_size_fn: Any) -> scale:
    r"""Multiply the updates by a schedule's value at the step count.

    .. math:: u_t \leftarrow s(t)\, u_t, \qquad t = \text{number of updates before this one}

    Returns :class:`scale` with ``step_size=step_size_fn``: every float hyperparameter of
    gradxform already takes a schedule, so this is the same value as ``gx.scale(schedule)``.
    A plain function ``count -> value`` is wrapped in :class:`schedule_fn`; prefer the schedule
    values of gradxform (``gx.cosine_decay_schedule(...)``), which compare equal and can be
    saved with :func:`to_config`.

    Conventions. As ``optax.scale_by_schedule``, which keeps its own step count in its state;
    here the count is the optimizer's (``state.count``), shared by all links of a chain.

    Args:
      step_size_fn: a schedule, or a function ``count -> step size`` (``count`` an int32
        scalar, 0 at the first update).

    Example::

        decay = gx.linear_schedule(-1e-3, 0.0, 1000)
        tx = gx.chain(gx.scale_by_adam(), gx.scale_by_schedule(decay))
    """
    if not callable(step_size_fn):
        raise TypeError(f"scale_by_schedule: step_size_fn must be a schedule (a function of the "
                        f"step count), got {step_size_fn!r}; for a constant factor use "
                        f"gx.scale({step_size_fn!r})")
    return scale(step_size=step_size_fn)
