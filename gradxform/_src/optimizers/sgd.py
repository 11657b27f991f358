"""Stochastic gradient descent: plain, with momentum (heavy ball, Nesterov, dampened), with
annealed noise, and with Polyak's step size.

Each is a short chain; the math lives in the transforms it links.
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api, field_of
from gradxform._src.transforms.momentum import trace
from gradxform._src.transforms.noise import add_noise
from gradxform._src.transforms.polyak import scale_by_polyak
from gradxform._src.transforms.scaling import scale_by_learning_rate

__all__ = ["sgd", "noisy_sgd", "polyak_sgd"]


@docs.args
@api("sgd", rename={field_of(trace, "decay"): "momentum"})
def sgd(learning_rate: Any, momentum: Any = None, nesterov: bool = False,
        accumulator_dtype: Any = None, *, dampening: Any = 0.0) -> chain:
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
        return chain(scale_by_learning_rate(learning_rate=learning_rate), name="sgd")
    return chain(trace(decay=momentum, nesterov=nesterov, dampening=dampening,
                       accumulator_dtype=accumulator_dtype),
                 scale_by_learning_rate(learning_rate=learning_rate), name="sgd")


@docs.args
@api("noisy_sgd")
def noisy_sgd(learning_rate: Any, eta: Any = 0.01, gamma: Any = 0.55) -> chain:
    r"""SGD with annealed Gaussian gradient noise (Neelakantan et al. 2015).

    ``chain(add_noise(eta, gamma), scale_by_learning_rate(lr))``:

    .. math:: \theta_t = \theta_{t-1} - \eta_{lr}\left(g_t + \mathcal N(0, \sigma_t^2)\right),
              \qquad \sigma_t^2 = \eta / t^\gamma

    The PRNG key is passed at every step: ``opt.update(grads, state, params, key=key)`` (see
    :class:`add_noise` for why, and for how to reproduce optax's noise).

    Args:
      <<learning_rate>>
      eta: initial noise variance >= 0.
      gamma: annealing exponent >= 0.

    Example::

        key, sub = jax.random.split(key)
        updates, state = opt.update(grads, state, params, key=sub)
    """
    return chain(add_noise(eta=eta, gamma=gamma),
                 scale_by_learning_rate(learning_rate=learning_rate), name="noisy_sgd")


@docs.args
@api("polyak_sgd", rename={field_of(scale_by_learning_rate, "learning_rate"): "scaling"})
def polyak_sgd(max_learning_rate: Any = 1.0, scaling: Any = 1.0, f_min: Any = 0.0,
               eps: Any = 0.0, variant: str = "sps") -> chain:
    r"""SGD with Polyak's step size (SPS_max, Loizou et al. 2021).

    ``chain(scale_by_polyak(f_min, max_learning_rate, eps, variant),
    scale_by_learning_rate(scaling))``:

    .. math:: \theta_{t+1} = \theta_t - s\,\min\left(\frac{f(\theta_t) - f^\star}
              {\lVert g_t\rVert^2 + \epsilon},\ \gamma_{max}\right) g_t

    The loss is passed at every step: ``opt.update(grads, state, params, value=loss)``.
    ``gx.hyperparams`` reports :math:`s` as ``learning_rate`` and :math:`\gamma_{max}` as
    ``max_learning_rate``.

    Conventions. This is the formula of optax's documentation. optax's code applies ``scaling``
    before computing the norm, so its ``scaling=s`` divides the ratio by :math:`s` (Loizou et
    al.'s constant :math:`c`) and multiplies the cap by :math:`s`: optax's
    ``polyak_sgd(M, s, f_min, eps)`` equals ``polyak_sgd(M * s**2, 1 / s, f_min, eps / s**2)``
    here (tested); the two agree for ``scaling=1``. Loizou et al.'s SPS_max with constant
    :math:`c` and bound :math:`\gamma_b` is ``polyak_sgd(c * gamma_b, 1 / c)``.
    ``max_learning_rate=None`` gives Polyak's uncapped step.

    Args:
      max_learning_rate: :math:`\gamma_{max}` > 0 (or ``None``).
      scaling: :math:`s` >= 0, a number, array or schedule.
      f_min: :math:`f^\star`, the optimal loss or a lower bound of it.
      eps: :math:`\epsilon` >= 0 added to the squared gradient norm.
      variant: ``"sps"``, or ``"sps+"`` to use :math:`(f - f^\star)_+`.

    Example::

        value, grads = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params, value=value)
    """
    return chain(scale_by_polyak(f_min=f_min, max_learning_rate=max_learning_rate, eps=eps,
                                 variant=variant),
                 scale_by_learning_rate(learning_rate=scaling), name="polyak_sgd")
