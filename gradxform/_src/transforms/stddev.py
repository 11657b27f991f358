r"""Centered RMS scaling under optax's name: ``scale_by_stddev``."""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.module import api
from gradxform._src.transforms.rmsprop import scale_by_rms

__all__ = ["scale_by_stddev"]


@docs.args
@api("scale_by_stddev")
def scale_by_stddev(decay: Any = 0.9, eps: Any = 1e-8, initial_scale: Any = 0.0,
                    eps_in_sqrt: bool = True, bias_correction: bool = False, *,
                    nu_dtype: Any = None) -> scale_by_rms:
    r"""Divide by the root of the centered moving average of squares (the gradients' stddev).

    .. math::
        m_t = \rho\, m_{t-1} + (1 - \rho)\, g_t, \qquad
        v_t = \rho\, v_{t-1} + (1 - \rho)\, g_t^2, \qquad
        u_t = \frac{g_t}{\sqrt{v_t - m_t^2 + \epsilon}}

    This is :class:`scale_by_rms` with ``centered=True`` (RMSprop after Graves 2013), which it
    returns; see there for ``eps_in_sqrt`` and ``bias_correction``. The state is a
    :class:`ScaleByStddevState` (``mu``, ``nu``).

    Conventions. As ``optax.scale_by_stddev``, whose state keeps its own step count when
    ``bias_correction`` is set; here the count is the optimizer's (``state.count``).

    Args:
      decay: :math:`\rho` in [0, 1).
      <<eps>>
      initial_scale: initial value of :math:`v` (>= 0).
      eps_in_sqrt: whether ``eps`` goes inside the square root.
      bias_correction: divide both averages by :math:`1 - \rho^t`.
      <<nu_dtype>>

    References:
      Graves, *Generating Sequences With Recurrent Neural Networks*, 2013 (eqs. 38-45).
    """
    return scale_by_rms(decay=decay, eps=eps, initial_scale=initial_scale,
                        eps_in_sqrt=eps_in_sqrt, bias_correction=bias_correction, centered=True,
                        nu_dtype=nu_dtype)
