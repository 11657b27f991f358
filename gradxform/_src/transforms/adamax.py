"""AdaMax: Adam with the infinity norm in place of the second moment (``scale_by_adamax``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.transforms.adam import ScaleByAdamState
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_adamax"]


@docs.args
class scale_by_adamax(GradientTransformation):
    r"""Rescale updates by AdaMax's first moment and exponentially weighted infinity norm.

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        u_t^{\infty} = \max(\beta_2\, u^{\infty}_{t-1}, |g_t| + \epsilon), \qquad
        u_t = \frac{m_t}{(1 - \beta_1^t)\, u^{\infty}_t}

    with :math:`u^\infty_0 = 0` and :math:`t` the 1-based step number. The infinity norm needs
    no bias correction. The state's ``nu`` holds :math:`u^\infty` (real for complex params).

    Conventions. Kingma & Ba's Algorithm 2 has no ``eps`` (:math:`u_t^\infty = \max(\beta_2
    u_{t-1}^\infty, |g_t|)`, which is 0 while the gradient is); optax and torch add ``eps`` to
    :math:`|g_t|` inside the maximum, and so does this transformation.

    Args:
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1), the decay of the infinity norm.
      eps: added to :math:`|g_t|` inside the maximum, > 0.
      <<mu_dtype>>
      <<nu_dtype>>

    References:
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015 (section 7.1,
      Algorithm 2).
    """

    b1: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="mu_dtype")
    b2: Hyper = hyper(default=0.999, interval="[0, 1)", decays_in="nu_dtype")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    mu_dtype: DType = static(default=None, kw_only=True)
    nu_dtype: DType = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "elementwise"

    def init_state(self, params):
        return ScaleByAdamState(tree.zeros_like(params, self.mu_dtype),
                                tree.full_like(params, 0.0, self.nu_dtype, real=True))

    def apply(self, updates, state, params, step):
        b1, b2, eps = step.value(self.b1), step.value(self.b2), step.value(self.eps)
        mu = tree.update_moment(updates, state.mu, b1, 1)
        mu_hat = tree.bias_correction(mu, b1, step.number)

        nu = tree.update_infinity_moment(updates, state.nu, b2, eps)

        def one(g, m, u):
            if jnp.iscomplexobj(m):
                return (m / u.astype(m.dtype)).astype(g.dtype)
            work = dtypes.wider(m.dtype, u.dtype)
            return (m.astype(work) / u.astype(work)).astype(g.dtype)

        return jax.tree.map(one, updates, mu_hat, nu), ScaleByAdamState(mu, nu)
