"""The classic optimizers: SGD (momentum, Nesterov, dampening), AdaGrad, RMSprop.

Each is a short chain; the math lives in the transforms it links.
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api
from gradxform._src.transforms.adaptive import scale_by_rms, scale_by_rss
from gradxform._src.transforms.momentum import trace
from gradxform._src.transforms.scaling import scale_by_learning_rate

__all__ = ["sgd", "adagrad", "rmsprop"]


@docs.args
@api("sgd", rename={("trace", "decay"): "momentum"})
def sgd(learning_rate: Any, momentum: Any = None, nesterov: bool = False,
        dampening: Any = 0.0, accumulator_dtype: Any = None) -> chain:
    r"""Stochastic gradient descent, with optional (dampened, Nesterov) momentum.

    ``chain(trace(momentum, nesterov, dampening), scale_by_learning_rate(learning_rate))``:

    .. math:: m_t = \beta m_{t-1} + (1 - d) g_t, \qquad \theta_t = \theta_{t-1} - \eta\, m_t

    (without momentum, :math:`\theta_t = \theta_{t-1} - \eta g_t`). See :class:`trace` for the
    dampened (textbook) and Nesterov forms.

    Args:
      <<learning_rate>>
      momentum: :math:`\beta` in [0, 1), or ``None`` for plain SGD.
      <<nesterov>>
      dampening: :math:`d` in [0, 1); ``dampening=momentum`` is the textbook's average.
      <<accumulator_dtype>>

    Example::

        opt = gx.sgd(0.1, momentum=0.9, nesterov=True)
    """
    if momentum is None:
        return chain(scale_by_learning_rate(learning_rate), name="sgd")
    return chain(trace(momentum, nesterov, dampening, accumulator_dtype),
                 scale_by_learning_rate(learning_rate), name="sgd")


@docs.args
@api("adagrad")
def adagrad(learning_rate: Any, initial_accumulator_value: Any = 0.1, eps: Any = 1e-7,
            eps_in_sqrt: bool = True, accumulator_dtype: Any = None) -> chain:
    r"""AdaGrad (Duchi et al., 2011): ``chain(scale_by_rss(...), scale_by_learning_rate(lr))``.

    .. math:: G_t = G_{t-1} + g_t^2, \qquad \theta_t = \theta_{t-1} - \eta\,
              \frac{g_t}{\sqrt{G_t + \epsilon}}

    See :class:`scale_by_rss` for the placement of ``eps`` (torch puts it outside the root).

    Args:
      <<learning_rate>>
      initial_accumulator_value: :math:`G_0` >= 0.
      <<eps>>
      eps_in_sqrt: whether ``eps`` goes inside the square root.
      <<accumulator_dtype>>
    """
    return chain(scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt, accumulator_dtype),
                 scale_by_learning_rate(learning_rate), name="adagrad")


@docs.args
@api("rmsprop", rename={("trace", "decay"): "momentum"})
def rmsprop(learning_rate: Any, decay: Any = 0.9, eps: Any = 1e-8, initial_scale: Any = 0.0,
            eps_in_sqrt: bool = True, centered: bool = False, momentum: Any = None,
            nesterov: bool = False, bias_correction: bool = False,
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
    links = [scale_by_rms(decay, eps, initial_scale, eps_in_sqrt, bias_correction, centered,
                          nu_dtype),
             scale_by_learning_rate(learning_rate)]
    if momentum is not None:
        links.append(trace(momentum, nesterov))
    return chain(*links, name="rmsprop")
