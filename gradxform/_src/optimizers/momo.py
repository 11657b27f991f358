"""MoMo and MoMo-Adam: momentum methods with a Polyak-type step from the loss value.

Both take the loss as an extra argument of ``update`` (``value=``); the math lives in
``transforms/momo.py``.
"""

from __future__ import annotations

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api
from gradxform._src.transforms.momo import scale_by_momo, scale_by_momo_adam
from gradxform._src.types import DType, Hyper

__all__ = ["momo", "momo_adam"]


@docs.args
@api("momo")
def momo(learning_rate: Hyper = 1.0, beta: Hyper = 0.9, lower_bound: Hyper = 0.0,
         weight_decay: Hyper = 0.0, adapt_lower_bound: bool = False, *,
         accumulator_dtype: DType = None) -> chain:
    r"""MoMo (Schaipp et al. 2024): SGD with momentum and an adaptive Polyak-type step.

    ``chain(scale_by_momo(...))``:

    .. math:: x_{t+1} = \frac{x_t}{1 + \alpha_t\lambda} - \tau_t d_t, \qquad
              \tau_t = \min\Big(\alpha_t,\ \frac{\big((1+\alpha_t\lambda)(\bar f_t - f_*
              - \gamma_t) + \langle d_t, x_t\rangle\big)_+}{\lVert d_t\rVert^2}\Big)

    with the averages of :class:`scale_by_momo`. The step never exceeds ``learning_rate``, so
    it can be set large (1 by default). The loss is passed at every step:
    ``opt.update(grads, state, params, value=loss)``.

    Args:
      <<learning_rate>>
      beta: momentum in [0, 1).
      lower_bound: a lower bound of the loss (0 for most losses).
      weight_decay: >= 0.
      adapt_lower_bound: estimate the lower bound on the fly (MoMo*).
      <<accumulator_dtype>>

    Example::

        value, grads = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params, value=value)
    """
    return chain(scale_by_momo(learning_rate=learning_rate, beta=beta, lower_bound=lower_bound,
                               weight_decay=weight_decay, adapt_lower_bound=adapt_lower_bound,
                               accumulator_dtype=accumulator_dtype), name="momo")


@docs.args
@api("momo_adam")
def momo_adam(learning_rate: Hyper = 1e-2, b1: Hyper = 0.9, b2: Hyper = 0.999,
              eps: Hyper = 1e-8, lower_bound: Hyper = 0.0, weight_decay: Hyper = 0.0,
              adapt_lower_bound: bool = False, *, accumulator_dtype: DType = None) -> chain:
    r"""MoMo-Adam (Schaipp et al. 2024): Adam(W) with an adaptive Polyak-type step.

    ``chain(scale_by_momo_adam(...))``:

    .. math:: x_{t+1} = \frac{x_t}{1 + \alpha_t\lambda} - \tau_t \frac{m_t}{D_t}, \qquad
              \tau_t = \min\Big(\frac{\alpha_t}{1 - \beta_1^t},\ \frac{\big((1+\alpha_t\lambda)
              (\bar f_t - (1-\beta_1^t) f_* - \gamma_t) + \langle m_t, x_t\rangle\big)_+}
              {\langle m_t, m_t/D_t\rangle}\Big)

    with Adam's preconditioner :math:`D_t` (see :class:`scale_by_momo_adam`). The loss is
    passed at every step: ``opt.update(grads, state, params, value=loss)``.

    Args:
      <<learning_rate>>
      <<b1>>
      <<b2>>
      <<eps>>
      lower_bound: a lower bound of the loss.
      weight_decay: >= 0.
      adapt_lower_bound: estimate the lower bound on the fly.
      <<accumulator_dtype>>
    """
    return chain(scale_by_momo_adam(learning_rate=learning_rate, b1=b1, b2=b2, eps=eps,
                                    lower_bound=lower_bound, weight_decay=weight_decay,
                                    adapt_lower_bound=adapt_lower_bound,
                                    accumulator_dtype=accumulator_dtype), name="momo_adam")
