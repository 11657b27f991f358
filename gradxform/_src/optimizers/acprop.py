"""ACProp: AdaBelief's centred second moment used one step late; the math lives in
``transforms/acprop.py``."""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api
from gradxform._src.transforms.acprop import scale_by_acprop
from gradxform._src.transforms.regularisation import add_decayed_weights
from gradxform._src.transforms.scaling import scale_by_learning_rate
from gradxform._src.types import DType, Hyper

__all__ = ["acprop"]


@docs.args
@api("acprop")
def acprop(learning_rate: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-16,
           eps_root: Hyper = 1e-16, weight_decay: Hyper = 0.0, mask: Any = None, *,
           mu_dtype: DType = None, nu_dtype: DType = None) -> chain:
    r"""ACProp (Zhuang et al. 2021): ``chain(scale_by_acprop(...), add_decayed_weights(wd,
    mask), scale_by_learning_rate(lr))``.

    .. math:: \theta_t = \theta_{t-1} - \eta\left(\frac{g_t}
              {\sqrt{s_{t-1}/(1-\beta_2^{t-1})} + \epsilon} + \lambda\theta_{t-1}\right)

    with the centred second moment :math:`s` of :class:`scale_by_acprop`.

    Args:
      <<learning_rate>>
      <<b1>>
      <<b2>>
      <<eps>>
      <<eps_root>>
      <<weight_decay>>
      <<mask>>
      <<mu_dtype>>
      <<nu_dtype>>
    """
    return chain(scale_by_acprop(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype,
                                 nu_dtype=nu_dtype),
                 add_decayed_weights(weight_decay=weight_decay, mask=mask),
                 scale_by_learning_rate(learning_rate=learning_rate), name="acprop")
