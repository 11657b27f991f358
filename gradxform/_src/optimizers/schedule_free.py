"""Schedule-Free SGD and AdamW: iterate averaging instead of a learning-rate schedule.
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api, argument_error, field_of, validate
from gradxform._src.optimizers.sgd import sgd
from gradxform._src.schedules import (
    Schedule,
    constant_schedule,
    join_schedules,
    linear_schedule,
)
from gradxform._src.transforms.regularisation import add_decayed_weights
from gradxform._src.transforms.rmsprop import scale_by_rms
from gradxform._src.transforms.scaling import scale_by_learning_rate
from gradxform._src.transforms.schedule_free import schedule_free

__all__ = ["schedule_free_sgd", "schedule_free_adamw"]


def _warmup_constant(learning_rate: Any, warmup_steps: int | None, where: str) -> Any:
    """0 -> ``learning_rate`` linearly over ``warmup_steps`` steps, then constant.

    ``learning_rate`` was converted and checked (``validate``): a callable is a schedule here.
    A schedule with ``warmup_steps`` is refused rather than composed: whether the warm-up should
    multiply the schedule or lead up to its value at the end of the warm-up is the user's call.
    """
    if warmup_steps is None:
        return learning_rate
    if isinstance(learning_rate, Schedule):
        raise argument_error(
            where, "warmup_steps",
            f"warms up a constant learning_rate, but learning_rate is a schedule "
            f"({learning_rate!r}); put the warm-up in the schedule (for example "
            f"gx.warmup_cosine_decay_schedule or gx.join_schedules) and leave warmup_steps=None")
    return join_schedules(schedules=(linear_schedule(init_value=0.0, end_value=learning_rate,
                                           transition_steps=warmup_steps),
                           constant_schedule(value=learning_rate)), boundaries=(warmup_steps,))


_WARMUP = {field_of(linear_schedule, "transition_steps"): "warmup_steps",
           field_of(linear_schedule, "end_value"): "learning_rate",
           field_of(constant_schedule, "value"): "learning_rate"}


@api("schedule_free_sgd", rename=_WARMUP)
def schedule_free_sgd(learning_rate: Any = 1.0, warmup_steps: int | None = None,
                      b1: Any = 0.9, weight_decay: Any = None, weight_lr_power: Any = 2.0,
                      state_dtype: Any = None) -> schedule_free:
    r"""Schedule-Free SGD (Defazio et al. 2024): :class:`schedule_free` around plain SGD.

    .. math:: z_{t+1} = z_t - \gamma_t \nabla f(y_t), \qquad
              x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}, \qquad
              y_{t+1} = \beta x_{t+1} + (1 - \beta) z_{t+1}

    The params are :math:`y`; evaluate at :math:`x` =
    ``gx.schedule_free_eval_params(state, params)``.

    Args:
      learning_rate: :math:`\gamma` >= 0 (a number, an array or a schedule; the warm-up makes a
        number a schedule).
      warmup_steps: length of a linear warm-up from 0 to a constant ``learning_rate``, or
        ``None`` (with a scheduled learning rate, put the warm-up in the schedule).
      b1: the interpolation :math:`\beta` in (0, 1].
      weight_decay: coupled weight decay (:math:`\lambda y` added to the gradient, as in the
        authors' SGD), or ``None``.
      weight_lr_power: power of the learning rate in the averaging weights, >= 0.
      state_dtype: dtype of :math:`z` (default by the dtype policy).

    References:
      Defazio et al., *The Road Less Scheduled*, NeurIPS 2024, Algorithm 1.
    """
    learning_rate = validate(scale_by_learning_rate, "learning_rate", learning_rate)
    lr = _warmup_constant(learning_rate, warmup_steps, "schedule_free_sgd")
    base = sgd(learning_rate=lr)
    if weight_decay is not None:
        base = chain(add_decayed_weights(weight_decay=weight_decay), base)
    return schedule_free(base, learning_rate=lr, b1=b1, weight_lr_power=weight_lr_power,
                         state_dtype=state_dtype, label="schedule_free_sgd")


@docs.args
@api("schedule_free_adamw", rename={**_WARMUP, field_of(scale_by_rms, "decay"): "b2"})
def schedule_free_adamw(learning_rate: Any = 0.0025, warmup_steps: int | None = None,
                        b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8,
                        weight_decay: Any = 0.0, weight_lr_power: Any = 2.0,
                        state_dtype: Any = None) -> schedule_free:
    r"""Schedule-Free AdamW (Defazio et al. 2024): :class:`schedule_free` around RMS scaling.

    The base optimizer is Adam without momentum,
    ``chain(scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
    add_decayed_weights(weight_decay), scale_by_learning_rate(learning_rate))``:

    .. math:: v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \qquad
              z_{t+1} = z_t - \gamma_t\Big(\frac{g_t}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}
              + \lambda y_t\Big)

    and :math:`x`, :math:`y` as in :func:`schedule_free_sgd`. The weight decay is taken at
    :math:`y`, as in the authors' code.

    Args:
      learning_rate: :math:`\gamma` >= 0 (a number, an array or a schedule).
      warmup_steps: length of a linear warm-up from 0 to a constant ``learning_rate``, or
        ``None`` (with a scheduled learning rate, put the warm-up in the schedule).
      b1: the interpolation :math:`\beta` in (0, 1].
      <<b2>>
      eps: added to the denominator outside the square root, > 0.
      weight_decay: decoupled weight decay >= 0, multiplied by the learning rate.
      weight_lr_power: power of the learning rate in the averaging weights, >= 0.
      state_dtype: dtype of :math:`z` (default by the dtype policy).

    References:
      Defazio et al., *The Road Less Scheduled*, NeurIPS 2024 (the AdamW variant, as in the
      authors' ``AdamWScheduleFree``).
    """
    learning_rate = validate(scale_by_learning_rate, "learning_rate", learning_rate)
    lr = _warmup_constant(learning_rate, warmup_steps, "schedule_free_adamw")
    base = chain(scale_by_rms(decay=b2, eps=eps, initial_scale=0.0, eps_in_sqrt=False,
                              bias_correction=True),
                 add_decayed_weights(weight_decay=weight_decay),
                 scale_by_learning_rate(learning_rate=lr))
    return schedule_free(base, learning_rate=lr, b1=b1, weight_lr_power=weight_lr_power,
                         state_dtype=state_dtype, label="schedule_free_adamw")
