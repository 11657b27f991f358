r"""NovoGrad: layer-wise second moments (one number per leaf) and gradient-normalised momentum."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_novograd", "ScaleByNovogradState"]


class ScaleByNovogradState(NamedTuple):
    """State of :class:`scale_by_novograd`: the momentum (like the params) and one second moment
    per leaf (a real scalar)."""

    mu: Any
    nu: Any


@docs.args
class scale_by_novograd(GradientTransformation):
    r"""NovoGrad's update (no learning rate): momentum of layer-normalised gradients.

    Per leaf :math:`l`, with :math:`\lVert\cdot\rVert` the leaf's l2 norm:

    .. math::
        v_1 = \lVert g_1\rVert^2, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) \lVert g_t\rVert^2, \\
        d_t = \frac{g_t}{\sqrt{v_t + \epsilon_{root}} + \epsilon} + \lambda\,\theta_t, \qquad
        m_1 = d_1, \qquad m_t = \beta_1 m_{t-1} + d_t, \qquad u_t = m_t

    The second moment is a single number per leaf (memory like SGD with momentum), and the
    weight decay :math:`\lambda` is added to the normalised gradient, decoupled from the
    adaptive scaling but inside the momentum (the paper's form).

    Conventions. As the paper (Algorithm 1) and optax: the momentum is not dampened (no
    :math:`1-\beta_1` factor), the first step initialises both moments without decay, ``eps`` is
    outside the root. Complex gradients use :math:`|g|^2`. Needs ``params`` unless
    ``weight_decay`` is 0.

    Args:
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1) (the paper's 0.25 for speech, 0.98 for others).
      <<eps>>
      eps_root: :math:`\epsilon_{root}` >= 0 inside the root.
      weight_decay: :math:`\lambda` >= 0 (multiplied by the learning rate, like the gradient).
      <<mu_dtype>>

    References:
      Ginsburg, Castonguay, Hrinchuk, Kuchaiev, Lavrukhin, Leary, Li, Nguyen, Zhang, Cohen,
      *Stochastic Gradient Methods with Layer-wise Adaptive Moments for Training of Deep
      Networks*, 2019 (Algorithm 1).
    """

    b1: Hyper = hyper(default=0.9, interval="[0, 1)")
    b2: Hyper = hyper(default=0.25, interval="[0, 1)")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    eps_root: Hyper = hyper(default=0.0, interval="[0, inf)")
    weight_decay: Hyper = hyper(default=0.0, interval="[0, inf)")
    mu_dtype: DType = static(default=None)
    uses_count = True
    flat_support = "each_leaf"  # one second moment per leaf

    def init_state(self, params):
        def scalar_like(p):
            acc = dtypes.accumulator_dtype(dtypes.leaf_dtype(p), self.mu_dtype)
            return jnp.zeros([], dtypes.real_dtype(acc))

        return ScaleByNovogradState(tree.zeros_like(params, self.mu_dtype),
                                    jax.tree.map(scalar_like, params))

    def apply(self, updates, state, params, step):
        b1, b2 = step.value(self.b1), step.value(self.b2)
        eps, eps_root = step.value(self.eps), step.value(self.eps_root)
        wd = step.value(self.weight_decay)
        use_params = params is not None
        if not use_params and not (isinstance(wd, (int, float)) and wd == 0):
            self.require_params(params)
        keep, fresh = tree.complement(b2)
        first = step.count == 0

        def one(g, p, m, v):
            work = dtypes.wider(g.dtype, m.dtype)
            g_w = g.astype(work)
            [n] = tree.finite_sums([g_w], tree.abs_sq)  # inf and NaN left out
            n = n.astype(v.dtype)
            v = jnp.where(first, n, tree.scalar(fresh, v.dtype) * n
                          + tree.scalar(keep, v.dtype) * v)
            denom = tree.safe_sqrt(v + tree.scalar(eps_root, v.dtype))
            denom = (denom + dtypes.safe_eps(eps, v.dtype)).astype(work)
            d = g_w / denom
            if use_params:
                d = d + tree.scalar(wd, work) * jnp.asarray(p).astype(work)
            d = d.astype(m.dtype)
            m = jnp.where(first, d, tree.scalar(b1, m.dtype) * m + d)
            return m.astype(g.dtype), m, v

        out = jax.tree.map(one, updates, params if use_params else updates, state.mu,
                           state.nu)
        u, mu, nu = tree.unzip3(updates, out)
        return u, ScaleByNovogradState(mu, nu)
