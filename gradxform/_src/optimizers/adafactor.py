"""Adafactor: factored second moments, update clipping and relative step sizes.
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.base import GradientTransformation
from gradxform._src.combine import chain
from gradxform._src.module import api, field_of
from gradxform._src.transforms.adafactor import scale_by_factored_rms
from gradxform._src.transforms.block_rms import clip_by_block_rms, scale_by_param_block_rms
from gradxform._src.transforms.momentum import ema
from gradxform._src.transforms.regularisation import add_decayed_weights
from gradxform._src.transforms.scaling import scale, scale_by_learning_rate

__all__ = ["adafactor"]


@docs.args
@api("adafactor", rename={
    field_of(scale_by_factored_rms, "step_offset"): "decay_offset",
    field_of(scale_by_factored_rms, "epsilon"): "eps",
    field_of(clip_by_block_rms, "threshold"): "clipping_threshold",
    field_of(ema, "decay"): "momentum",
    field_of(ema, "accumulator_dtype"): "dtype_momentum",
    field_of(add_decayed_weights, "weight_decay"): "weight_decay_rate",
    field_of(add_decayed_weights, "mask"): "weight_decay_mask",
})
def adafactor(learning_rate: Any = None, min_dim_size_to_factor: int = 128,
              decay_rate: Any = 0.8, decay_offset: Any = 0,
              multiply_by_parameter_scale: bool = True, clipping_threshold: Any = 1.0,
              momentum: Any = None, dtype_momentum: Any = None, weight_decay_rate: Any = None,
              eps: Any = 1e-30, factored: bool = True, weight_decay_mask: Any = None, *,
              axis_name: Any = None) -> chain:
    r"""Adafactor (Shazeer & Stern 2018): factored second moments, update clipping, relative
    step sizes.

    ``chain(scale_by_factored_rms(...), clip_by_block_rms(clipping_threshold),
    scale_by_learning_rate(lr, flip_sign=False), scale_by_param_block_rms(),
    ema(momentum, debias=False), add_decayed_weights(weight_decay_rate), scale(-1))``, each link
    only when enabled:

    .. math::
        U_t = g_t / \sqrt{\hat V_t}, \qquad
        \hat U_t = U_t / \max(1, \operatorname{RMS}(U_t)/d), \qquad
        \theta_{t+1} = \theta_t - \rho_t \max(\epsilon_2, \operatorname{RMS}(\theta_t))\,\hat U_t

    with the factored :math:`\hat V_t` and the decay :math:`1 - t^{-0.8}` of
    :class:`scale_by_factored_rms` (leaves of rank >= 2 whose second-largest dimension is at
    least ``min_dim_size_to_factor``), update clipping :class:`clip_by_block_rms` and the
    relative step size :class:`scale_by_param_block_rms` (``multiply_by_parameter_scale``).
    The paper's relative step :math:`\rho_t = \min(10^{-2}, 1/\sqrt t)` is a learning-rate
    schedule, for example
    ``gx.schedule_fn(lambda c: jnp.minimum(1e-2, jax.lax.rsqrt(c + 1.0)))``.

    Conventions. Arguments, defaults and order of the links follow optax (so its results are
    reproduced): ``learning_rate=None`` applies no rate; the momentum is a moving average of
    the scaled step; the weight decay ``weight_decay_rate`` is added *after* the learning rate,
    so it is **not** multiplied by it (unlike ``adamw``): the step is
    :math:`-(\rho\,\hat U + \lambda\theta)`. The momentum accumulator follows the dtype policy
    (optax: float32 always). The second-moment decay is computed in the accumulator dtype
    (optax: float32).

    Args:
      learning_rate: the step size :math:`\rho` (a number, array or schedule), or ``None``.
      min_dim_size_to_factor: factor a leaf only if its second-largest dimension is at least
        this.
      decay_rate: the exponent :math:`c` >= 0 of the decay :math:`1 - t^{-c}` (0.8).
      decay_offset: whole number >= 0 subtracted from the step (restart the decay for
        fine-tuning).
      multiply_by_parameter_scale: scale by the params' RMS (relative step size).
      clipping_threshold: :math:`d` > 0 of the update clipping, or ``None`` for none.
      momentum: moving-average decay in [0, 1), or ``None`` for no momentum.
      dtype_momentum: dtype of the momentum (default: the dtype policy).
      weight_decay_rate: decoupled weight decay >= 0 (not multiplied by the learning rate), or
        ``None``.
      eps: :math:`\epsilon_1` > 0 added to the squared gradients.
      factored: use the factored estimate (``False``: a full second moment, like RMSprop with
        the decay schedule).
      weight_decay_mask: which leaves are decayed, as ``mask`` elsewhere.
      <<axis_name>>

    References:
      Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*, ICML
      2018 (Algorithms 4 and 5).
    """
    links: list[GradientTransformation] = [scale_by_factored_rms(
        factored=factored, decay_rate=decay_rate, step_offset=decay_offset,
        min_dim_size_to_factor=min_dim_size_to_factor, epsilon=eps, axis_name=axis_name)]
    if clipping_threshold is not None:
        links.append(clip_by_block_rms(threshold=clipping_threshold, axis_name=axis_name))
    if learning_rate is not None:
        links.append(scale_by_learning_rate(learning_rate=learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        links.append(scale_by_param_block_rms(axis_name=axis_name))
    if momentum is not None:
        links.append(ema(decay=momentum, debias=False, accumulator_dtype=dtype_momentum))
    if weight_decay_rate is not None:
        links.append(add_decayed_weights(weight_decay=weight_decay_rate, mask=weight_decay_mask))
    links.append(scale(step_size=-1.0))
    return chain(*links, name="adafactor")
