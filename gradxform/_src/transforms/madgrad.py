r"""MADGRAD: momentumized, adaptive, dual-averaged gradient steps."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.transforms.parameter_free import _reject_complex
from gradxform._src.types import DType, Hyper, TreeDef

__all__ = ["scale_by_madgrad", "MadgradState"]


class MadgradState(NamedTuple):
    """State of :class:`scale_by_madgrad`: the weighted sums of squared gradients
    (:math:`v_k`) and of gradients (:math:`s_k`), and the initial point :math:`x_0`."""

    grad_sum_sq: Any
    s: Any
    x0: Any


@docs.args
class scale_by_madgrad(GradientTransformation):
    r"""MADGRAD's step: dual averaging with a cube-root adaptive scale and momentum.

    With :math:`k` the 0-based step count, :math:`\gamma_k` = ``learning_rate`` and
    :math:`c` = ``momentum``:

    .. math::
        \lambda_k &= (\gamma_k + \epsilon)\sqrt{k + 1}, \qquad
        s_{k+1} = s_k + \lambda_k g_k, \qquad v_{k+1} = v_k + \lambda_k g_k^2, \\
        z_{k+1} &= x_0 - \frac{s_{k+1}}{\sqrt[3]{v_{k+1}} + \epsilon}, \qquad
        x_{k+1} = c\, x_k + (1 - c)\, z_{k+1}, \qquad u_k = x_{k+1} - x_k

    The update is the full step (sign included): the learning rate is part of the rule (it
    weighs the gradients in the sums), so no ``scale_by_learning_rate`` follows it.

    Conventions. As optax and the authors' PyTorch code: :math:`\epsilon` is added to the
    learning rate in :math:`\lambda_k` (the paper's Algorithm 1 has :math:`\gamma_k` alone), and
    ``momentum`` :math:`c` weighs the previous iterate (the paper's :math:`1 - c_{k+1}`).
    :math:`x_0` is the params of the first update (optax: those given to ``init``). Complex
    params are rejected (the scale is a cube root of squares).

    Args:
      <<learning_rate>>
      momentum: :math:`c` in [0, 1).
      eps: :math:`\epsilon` > 0.
      <<accumulator_dtype>>

    References:
      Defazio & Jelassi, *Adaptivity without Compromise: A Momentumized, Adaptive, Dual
      Averaged Gradient Method for Stochastic Optimization*, arXiv 2101.11075, 2021 (Algorithm 1).
    """

    learning_rate: Hyper = hyper(interval="[0, inf)")
    momentum: Hyper = hyper(default=0.9, interval="[0, 1)")
    eps: Hyper = hyper(default=1e-6, interval="(0, inf)")
    accumulator_dtype: DType = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "elementwise"

    def init_state(self, params):
        _reject_complex(self, params)
        acc = self.accumulator_dtype
        return MadgradState(tree.zeros_like(params, acc), tree.zeros_like(params, acc),
                            tree.zeros_like(params, acc))

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        lr, eps = step.value(self.learning_rate), step.value(self.eps)
        _, fresh = tree.complement(step.value(self.momentum))
        first = step.count == 0

        def one(g, p, v, s, x0):
            c = lambda val: tree.scalar(val, v.dtype)  # noqa: E731
            lam = c(lr + eps) * jnp.sqrt(step.number.astype(v.dtype))
            g = dtypes.cast(g, v.dtype)
            x = dtypes.cast(jnp.asarray(p), v.dtype)
            x0 = jnp.where(first, x, x0)
            v = v + lam * (g * g)
            s = s + lam * g
            z = x0 - s / (jnp.cbrt(v) + c(eps))
            # x_{k+1} - x_k = (1 - c)(z_{k+1} - x_k), written so: exactly 0 where z = x (zero
            # gradients from x_0), where (1 - c) z + c x - x rounds to a few ulps of x
            return c(fresh) * (z - x), (v, s, x0)

        treedef: TreeDef
        flat, treedef = jax.tree.flatten(updates)
        rest = [treedef.flatten_up_to(t) for t in (params, *state)]
        out = [one(g, *r) for g, *r in zip(flat, *rest)]
        new_updates = treedef.unflatten([u.astype(g.dtype) for (u, _), g in zip(out, flat)])
        return new_updates, MadgradState(*(treedef.unflatten([s[i] for _, s in out])
                                           for i in range(3)))
