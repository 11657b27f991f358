r"""COCOB-Backprop: stochastic subgradient descent as a coin-betting game, without a step size."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.transforms.parameter_free import _reject_complex
from gradxform._src.types import DType, Hyper, Numeric, TreeDef

__all__ = ["scale_by_cocob", "COCOBState"]


class COCOBState(NamedTuple):
    r"""State of :class:`scale_by_cocob`: the starting point :math:`w_1`, the negative gradient
    sum :math:`\theta`, the largest gradient :math:`L`, the sum of absolute gradients
    :math:`G` and the reward."""

    init_particles: Any
    cumulative_gradients: Any
    scale: Any
    subgradients: Any
    reward: Any


@docs.args
class scale_by_cocob(GradientTransformation):
    r"""COCOB-Backprop: bet a fraction of the wealth won so far on every coordinate.

    With :math:`g_t` the gradient, per coordinate and starting from :math:`L_0 = \epsilon`,
    :math:`G_0 = R_0 = \theta_0 = 0`:

    .. math::
        L_t &= \max(L_{t-1}, |g_t|), \qquad G_t = G_{t-1} + |g_t|, \qquad
        R_t = \max\big(R_{t-1} - g_t (w_t - w_1),\ 0\big), \qquad
        \theta_t = \theta_{t-1} - g_t, \\
        w_{t+1} &= w_1 + \frac{\theta_t}{L_t \max(G_t + L_t,\ \alpha L_t)}\,(L_t + R_t),
        \qquad u_t = w_{t+1} - w_t

    The update is the full step (sign included): no learning rate follows it. The wealth
    :math:`L_t + R_t` grows while the gradients keep their sign, so the step grows too; the
    factor :math:`\alpha L_t` caps the bet of the first steps.

    Conventions. The paper writes :math:`g_t` for the *negative* gradient; here it is the
    gradient, as the update receives it. :math:`w_1` is taken from the params of the first
    update (optax takes those given to ``init``; the two agree unless the params are replaced
    in between, and this way ``init`` accepts ``jax.ShapeDtypeStruct`` leaves). The rule is
    invariant to a common scale of the gradients except through :math:`\epsilon`. Complex
    params are rejected: the reward is a product of real coordinates.

    Args:
      alpha: :math:`\alpha` > 0, the bound on the fraction bet early on (the paper's 100).
      eps: :math:`\epsilon` > 0, the initial :math:`L` (avoids dividing by zero); a number or
        an array, not a schedule (it is used once).
      <<accumulator_dtype>>

    References:
      Orabona & Tommasi, *Training Deep Networks without Learning Rates Through Coin
      Betting*, NeurIPS 2017 (Algorithm 2, COCOB-Backprop).
    """

    alpha: Hyper = hyper(default=100.0, interval="(0, inf)")
    eps: Numeric = hyper(default=1e-8, interval="(0, inf)", schedule=False)
    accumulator_dtype: DType = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "elementwise"

    def init_state(self, params):
        _reject_complex(self, params)
        acc = self.accumulator_dtype
        return COCOBState(
            tree.zeros_like(params, acc), tree.zeros_like(params, acc),
            tree.full_like(params, self.eps, acc), tree.zeros_like(params, acc),
            tree.zeros_like(params, acc))

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        alpha = step.value(self.alpha)
        first = step.count == 0

        def one(g, p, p0, theta, scale, grad_sum, reward):
            c = lambda v: tree.scalar(v, p0.dtype)  # noqa: E731
            g = dtypes.cast(g, p0.dtype)
            w = dtypes.cast(jnp.asarray(p), p0.dtype)
            p0 = jnp.where(first, w, p0)
            scale = jnp.maximum(scale, jnp.abs(g))
            grad_sum = grad_sum + jnp.abs(g)
            reward = jnp.maximum(reward - g * (w - p0), jnp.zeros_like(reward))
            theta = theta - g
            bet = theta / (scale * jnp.maximum(grad_sum + scale, c(alpha) * scale))
            new_w = p0 + bet * (scale + reward)
            return (-w + new_w), (p0, theta, scale, grad_sum, reward)

        treedef: TreeDef
        flat, treedef = jax.tree.flatten(updates)
        rest = [treedef.flatten_up_to(t) for t in (params, *state)]
        out = [one(g, *r) for g, *r in zip(flat, *rest)]
        new_updates = treedef.unflatten([u.astype(g.dtype) for (u, _), g in zip(out, flat)])
        fields = [treedef.unflatten([s[i] for _, s in out]) for i in range(5)]
        return new_updates, COCOBState(*fields)
