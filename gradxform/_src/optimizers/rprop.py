"""Rprop: per-coordinate step sizes adapted from the signs of successive gradients.
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api
from gradxform._src.transforms.rprop import scale_by_rprop
from gradxform._src.transforms.scaling import scale

__all__ = ["rprop"]


@docs.args
@api("rprop")
def rprop(learning_rate: Any, eta_minus: Any = 0.5, eta_plus: Any = 1.2,
          min_step_size: Any = 1e-6, max_step_size: Any = 50.0, *,
          skip_after_sign_change: bool = True, accumulator_dtype: Any = None) -> chain:
    r"""Rprop (Riedmiller & Braun, 1993), as iRprop- (Igel & Hüsken, 2000) by default.

    ``chain(scale_by_rprop(...), scale(-1))``:
    :math:`\theta_t = \theta_{t-1} - \Delta_t \operatorname{sign}(g_t)` with per-coordinate
    step sizes :math:`\Delta_t` that grow by ``eta_plus`` while the gradient keeps its sign and
    shrink by ``eta_minus`` when it flips (no step is taken then). See :class:`scale_by_rprop`.

    Rprop is a full-batch method: it reads only gradient signs, which noise flips.
    ``learning_rate`` is the initial step size :math:`\Delta_0` (not a schedule; it is used
    once, by ``init``). Complex params are rejected. Unlike optax 0.2.8, whose update lags one
    step behind its state, the step taken is the current one (see :class:`scale_by_rprop`).

    Args:
      learning_rate: the initial step size :math:`\Delta_0` > 0.
      eta_minus: factor in (0, 1] applied to the step size on a sign change.
      eta_plus: factor >= 1 applied while the sign is kept.
      min_step_size: lower bound of the step sizes, >= 0.
      max_step_size: upper bound of the step sizes, >= ``min_step_size``.
      skip_after_sign_change: iRprop- (True, as optax and torch) or Rprop- (False).
      <<accumulator_dtype>>
    """
    return chain(scale_by_rprop(learning_rate=learning_rate, eta_minus=eta_minus, eta_plus=eta_plus,
                                min_step_size=min_step_size, max_step_size=max_step_size,
                                skip_after_sign_change=skip_after_sign_change,
                                accumulator_dtype=accumulator_dtype),
                 scale(step_size=-1.0), name="rprop")
