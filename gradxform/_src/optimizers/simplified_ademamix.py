"""Simplified AdEMAMix: one slow momentum sum mixed with the current gradient; the math lives
in ``transforms/simplified_ademamix.py``."""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api
from gradxform._src.transforms.regularisation import add_decayed_weights
from gradxform._src.transforms.scaling import scale_by_learning_rate
from gradxform._src.transforms.simplified_ademamix import scale_by_simplified_ademamix
from gradxform._src.types import DType, Hyper

__all__ = ["simplified_ademamix"]


@docs.args
@api("simplified_ademamix")
def simplified_ademamix(learning_rate: Hyper, b1: Hyper = 0.99, b2: Hyper = 0.95,
                        alpha: Hyper = 0.0, eps: Hyper = 1e-8, eps_root: Hyper = 0.0,
                        weight_decay: Hyper = 0.0, mask: Any = None, *,
                        mu_dtype: DType = None, nu_dtype: DType = None) -> chain:
    r"""Simplified AdEMAMix (Morwani et al. 2025): ``chain(scale_by_simplified_ademamix(...),
    add_decayed_weights(wd, mask), scale_by_learning_rate(lr))``.

    .. math:: \theta_t = \theta_{t-1} - \eta\left(\frac{m_t + \alpha g_t}
              {\sqrt{\hat\nu_t + \epsilon_{root}} + \epsilon} + \lambda\theta_{t-1}\right),
              \qquad m_t = \beta_1 m_{t-1} + g_t

    See :class:`scale_by_simplified_ademamix`: the momentum is a sum, so the learning rate is
    about :math:`1 - \beta_1` times Adam's.

    Args:
      <<learning_rate>>
      b1: the accumulator's decay in [0, 1).
      <<b2>>
      alpha: the weight >= 0 of the current gradient (a number, array or schedule).
      <<eps>>
      <<eps_root>>
      <<weight_decay>>
      <<mask>>
      <<mu_dtype>>
      <<nu_dtype>>
    """
    return chain(scale_by_simplified_ademamix(b1=b1, b2=b2, alpha=alpha, eps=eps,
                                              eps_root=eps_root, mu_dtype=mu_dtype,
                                              nu_dtype=nu_dtype),
                 add_decayed_weights(weight_decay=weight_decay, mask=mask),
                 scale_by_learning_rate(learning_rate=learning_rate),
                 name="simplified_ademamix")
