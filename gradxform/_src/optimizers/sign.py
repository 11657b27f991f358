"""Sign-based and normalised steps: signSGD, Signum, the normalised-gradient step, Lion.

Each is a short chain; the math lives in the transforms it links.
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api, field_of
from gradxform._src.transforms.lion import scale_by_lion
from gradxform._src.transforms.momentum import ema
from gradxform._src.transforms.normalize import scale_by_normalized
from gradxform._src.transforms.regularisation import add_decayed_weights
from gradxform._src.transforms.scaling import scale_by_learning_rate
from gradxform._src.transforms.sign import scale_by_sign

__all__ = ["sign_sgd", "signum", "normalized_sgd", "lion"]


@docs.args
@api("sign_sgd")
def sign_sgd(learning_rate: Any) -> chain:
    r"""signSGD (Bernstein et al. 2018): ``chain(scale_by_sign(), scale_by_learning_rate(lr))``.

    .. math:: \theta_t = \theta_{t-1} - \eta\,\operatorname{sign}(g_t)

    Every coordinate moves by exactly :math:`\eta`, so the iterates do not settle at a minimum
    with a constant rate: use a decaying schedule. Complex params are rejected.

    Args:
      <<learning_rate>>

    Example::

        opt = gx.sign_sgd(gx.cosine_decay_schedule(1e-2, 1000))
    """
    return chain(scale_by_sign(), scale_by_learning_rate(learning_rate=learning_rate),
                 name="sign_sgd")


@docs.args
@api("signum", rename={field_of(ema, "decay"): "beta"})
def signum(learning_rate: Any, beta: Any = 0.9, accumulator_dtype: Any = None) -> chain:
    r"""Signum (Bernstein et al. 2018): the sign of a moving average of the gradients.

    ``chain(ema(beta, debias=False), scale_by_sign(), scale_by_learning_rate(lr))``:

    .. math:: m_t = \beta m_{t-1} + (1 - \beta) g_t, \qquad
              \theta_t = \theta_{t-1} - \eta\,\operatorname{sign}(m_t)

    The average is not debiased (the sign does not need it), as in the paper and optax.
    Complex params are rejected.

    Args:
      <<learning_rate>>
      beta: :math:`\beta` in [0, 1).
      <<accumulator_dtype>>

    References:
      Bernstein, Wang, Azizzadenesheli, Anandkumar, *signSGD: Compressed Optimisation for
      Non-Convex Problems*, ICML 2018 (Algorithm 3, Signum).
    """
    return chain(ema(decay=beta, debias=False, accumulator_dtype=accumulator_dtype),
                 scale_by_sign(),
                 scale_by_learning_rate(learning_rate=learning_rate), name="signum")


@docs.args
@api("normalized_sgd")
def normalized_sgd(learning_rate: Any, eps: Any = 1e-8) -> chain:
    r"""The normalised-gradient step: move every coordinate by (about) the learning rate.

    ``chain(scale_by_normalized(eps), scale_by_learning_rate(lr))``:

    .. math:: \theta_t = \theta_{t-1} - \alpha\,\frac{g_t}{\sqrt{g_t^2 + \epsilon}}

    The step of Prince, *Understanding Deep Learning*, eqs. 6.13-6.14 (Adam without moving
    averages); see :class:`scale_by_normalized`. With a constant rate it bounces around a
    minimum by about :math:`\alpha` instead of converging: use a decaying schedule.

    Args:
      <<learning_rate>>
      <<eps>>
    """
    return chain(scale_by_normalized(eps=eps), scale_by_learning_rate(learning_rate=learning_rate),
                 name="normalized_sgd")


@docs.args
@api("lion")
def lion(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.99, mu_dtype: Any = None,
         weight_decay: Any = 1e-3, mask: Any = None) -> chain:
    r"""Lion (Chen et al. 2023): sign of a momentum interpolation, with decoupled weight decay.

    ``chain(scale_by_lion(b1, b2), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(lr))``:

    .. math:: \theta_t = \theta_{t-1} - \eta\left(\operatorname{sign}(\beta_1 m_{t-1}
              + (1-\beta_1) g_t) + \lambda\theta_{t-1}\right), \qquad
              m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t

    Conventions. Defaults as optax (``weight_decay=1e-3``); the paper's experiments use a
    learning rate 3-10x smaller and a weight decay 3-10x larger than AdamW's. The decay is
    multiplied by the learning rate, as in the paper's Algorithm 2. Complex params are
    rejected.

    Args:
      <<learning_rate>>
      b1: interpolation weight of the momentum in the update, in [0, 1).
      b2: decay of the momentum, in [0, 1).
      <<mu_dtype>>
      <<weight_decay>>
      <<mask>>
    """
    return chain(scale_by_lion(b1=b1, b2=b2, mu_dtype=mu_dtype),
                 add_decayed_weights(weight_decay=weight_decay, mask=mask),
                 scale_by_learning_rate(learning_rate=learning_rate), name="lion")
