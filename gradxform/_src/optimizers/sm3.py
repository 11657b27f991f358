"""SM3: memory-efficient adaptive step sizes from covers of the parameter's axes.
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api, field_of
from gradxform._src.transforms.scaling import scale_by_learning_rate
from gradxform._src.transforms.sm3 import scale_by_sm3

__all__ = ["sm3"]


@docs.args
@api("sm3", rename={field_of(scale_by_sm3, "b1"): "momentum"})
def sm3(learning_rate: Any, momentum: Any = 0.9, *, b2: Any = 1.0, eps: Any = 1e-8,
        accumulator_dtype: Any = None) -> chain:
    r"""SM3 (Anil et al. 2019): ``chain(scale_by_sm3(momentum, b2, eps),
    scale_by_learning_rate(lr))``.

    .. math:: \nu_t(i) = \min_{r \ni i} \mu_{t-1}(r) + g_t(i)^2, \qquad
              m_t = \beta_1 m_{t-1} + (1-\beta_1)\frac{g_t}{\sqrt{\nu_t}}, \qquad
              \theta_{t+1} = \theta_t - \eta\, m_t

    AdaGrad-like steps with one accumulator per row, column, ... of each leaf; see
    :class:`scale_by_sm3`.

    Args:
      <<learning_rate>>
      momentum: :math:`\beta_1` in [0, 1) (``None`` or 0: no momentum, the paper's SM3-II).
      b2: in (0, 1]; 1 (default) for the paper's sums, below 1 for moving averages.
      <<eps>>
      <<accumulator_dtype>>
    """
    return chain(scale_by_sm3(b1=0.0 if momentum is None else momentum, b2=b2, eps=eps,
                              accumulator_dtype=accumulator_dtype),
                 scale_by_learning_rate(learning_rate=learning_rate), name="sm3")
