"""MADGRAD: dual averaging with momentum and a cube-root adaptive scale; the math lives in
``transforms/madgrad.py``."""

from __future__ import annotations

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api
from gradxform._src.transforms.madgrad import scale_by_madgrad
from gradxform._src.transforms.regularisation import add_decayed_weights
from gradxform._src.types import DType, Hyper

__all__ = ["madgrad"]


@docs.args
@api("madgrad")
def madgrad(learning_rate: Hyper, momentum: Hyper = 0.9, weight_decay: Hyper = 0.0,
            eps: Hyper = 1e-6, *, accumulator_dtype: DType = None) -> chain:
    r"""MADGRAD (Defazio & Jelassi 2021).

    ``chain(add_decayed_weights(weight_decay), scale_by_madgrad(lr, momentum, eps))``:

    .. math:: z_{k+1} = x_0 - \frac{\sum_{i \le k} \lambda_i g_i}
              {\sqrt[3]{\sum_{i \le k} \lambda_i g_i^2} + \epsilon}, \qquad
              x_{k+1} = c\, x_k + (1 - c)\, z_{k+1}, \qquad
              \lambda_k = (\gamma_k + \epsilon)\sqrt{k+1}

    See :class:`scale_by_madgrad`. The weight decay is coupled (added to the gradient), as in
    optax and the authors' code.

    Args:
      <<learning_rate>>
      momentum: :math:`c` in [0, 1).
      weight_decay: coupled decay >= 0.
      eps: > 0.
      <<accumulator_dtype>>
    """
    return chain(add_decayed_weights(weight_decay=weight_decay),
                 scale_by_madgrad(learning_rate=learning_rate, momentum=momentum, eps=eps,
                                  accumulator_dtype=accumulator_dtype), name="madgrad")
