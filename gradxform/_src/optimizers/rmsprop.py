"""RMSprop: divide by a moving root mean square of the gradients (centered, with momentum).
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api, field_of
from gradxform._src.transforms.momentum import trace
from gradxform._src.transforms.rmsprop import scale_by_rms
from gradxform._src.transforms.scaling import scale_by_learning_rate

__all__ = ["rmsprop"]


@docs.args
@api("rmsprop", rename={field_of(trace, "decay"): "momentum"})
def rmsprop(learning_rate: Any, decay: Any = 0.9, eps: Any = 1e-8, initial_scale: Any = 0.0,
            eps_in_sqrt: bool = True, centered: bool = False, momentum: Any = None,
            nesterov: bool = False, bias_correction: bool = False, *,
            nu_dtype: Any = None) -> chain:
    r"""RMSprop (Tieleman & Hinton, 2012), optionally centered and with momentum.

    ``chain(scale_by_rms(...), scale_by_learning_rate(lr), trace(momentum))`` (momentum is
    applied to the already-scaled step, as in optax, torch and Graves 2013):

    .. math:: v_t = \rho v_{t-1} + (1-\rho) g_t^2, \qquad
              \theta_t = \theta_{t-1} - \eta\, \frac{g_t}{\sqrt{v_t + \epsilon}}

    Args:
      <<learning_rate>>
      decay: :math:`\rho` in [0, 1).
      <<eps>>
      initial_scale: initial second moment (>= 0).
      eps_in_sqrt: whether ``eps`` goes inside the square root (torch: outside).
      centered: divide by the estimated standard deviation instead (Graves 2013).
      momentum: momentum in [0, 1) applied after scaling, or ``None``.
      <<nesterov>>
      bias_correction: debias the moving averages.
      <<nu_dtype>>
    """
    links = [scale_by_rms(decay=decay, eps=eps, initial_scale=initial_scale,
                          eps_in_sqrt=eps_in_sqrt, bias_correction=bias_correction,
                          centered=centered, nu_dtype=nu_dtype),
             scale_by_learning_rate(learning_rate=learning_rate)]
    if momentum is not None:
        links.append(trace(decay=momentum, nesterov=nesterov))
    return chain(*links, name="rmsprop")
