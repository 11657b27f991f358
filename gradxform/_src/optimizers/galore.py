"""GaLore: an optimizer run on low-rank projections of the weight matrices' gradients; the math
lives in ``transforms/galore.py``."""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api
from gradxform._src.transforms.galore import scale_by_galore
from gradxform._src.transforms.regularisation import add_decayed_weights
from gradxform._src.transforms.scaling import scale_by_learning_rate
from gradxform._src.types import Hyper

__all__ = ["galore"]


@docs.args
@api("galore")
def galore(learning_rate: Hyper, rank: int = 128, update_proj_gap: Hyper = 200,
           scale: Hyper = 1.0, base_optimizer: Any = None, weight_decay: Hyper = 0.0,
           mask: Any = None, weight_dimension_numbers: Any = None) -> chain:
    r"""GaLore (Zhao et al. 2024): ``chain(scale_by_galore(...), add_decayed_weights(wd, mask),
    scale_by_learning_rate(lr))``.

    .. math:: \theta_t = \theta_{t-1} - \eta\left(\alpha P_t\,
              \operatorname{base}(P_t^\top G_t) + \lambda\theta_{t-1}\right)

    for a projected matrix (``base`` is Adam by default, :math:`P_t` its gradient's top-``rank``
    singular vectors, refreshed every ``update_proj_gap`` steps); other leaves take the base
    optimizer's step. The decay is decoupled and applied in the full space. See
    :class:`scale_by_galore`.

    Args:
      <<learning_rate>>
      rank: the projection rank >= 1.
      update_proj_gap: steps between refreshes of the projectors, >= 1.
      scale: :math:`\alpha`, multiplies the projected-back updates.
      base_optimizer: the transformation in the projected space (default
        ``scale_by_adam()``); it must not need the params, and should not include a learning
        rate (else set ``learning_rate=1``).
      <<weight_decay>>
      <<mask>>
      weight_dimension_numbers: which leaves are projected, and how (see
        :class:`scale_by_galore`).
    """
    return chain(scale_by_galore(rank=rank, update_proj_gap=update_proj_gap, scale=scale,
                                 base_optimizer=base_optimizer,
                                 weight_dimension_numbers=weight_dimension_numbers),
                 add_decayed_weights(weight_decay=weight_decay, mask=mask),
                 scale_by_learning_rate(learning_rate=learning_rate), name="galore")
