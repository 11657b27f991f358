r"""Lion's update: the sign of an interpolation between momentum and gradient."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.transforms.sign import reject_complex
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_lion", "ScaleByLionState"]


class ScaleByLionState(NamedTuple):
    """State of :class:`scale_by_lion`: the momentum."""

    mu: Any


@docs.args
class scale_by_lion(GradientTransformation):
    r"""Lion's direction (no learning rate): the sign of a momentum/gradient interpolation.

    .. math::
        c_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad u_t = \operatorname{sign}(c_t),
        \qquad m_t = \beta_2 m_{t-1} + (1 - \beta_2) g_t

    with :math:`m_0 = 0`. The update uses :math:`\beta_1` but the momentum is tracked with the
    (larger) :math:`\beta_2`, so the current gradient weighs more in the step than in the memory.

    Conventions. As in the paper (Algorithm 2) and optax: no bias correction (the sign does not
    need one), ``sign(0) = 0``. Complex params are rejected. optax's variants of the sign are
    here too: ``mode="smooth"`` takes :math:`\tanh(s\,c_t)` (:math:`s` = ``smooth_beta``),
    ``mode="refined"`` keeps :math:`c_t` where :math:`|c_t| < 1` and its sign elsewhere.

    Args:
      b1: :math:`\beta_1`, the interpolation weight of the momentum in the update, in [0, 1).
      b2: :math:`\beta_2`, the decay of the momentum, in [0, 1).
      <<mu_dtype>>
      mode: keyword-only; ``"hard"`` (the sign, the default), ``"smooth"`` or ``"refined"``.
      smooth_beta: keyword-only; the slope :math:`s` > 0 of ``"smooth"``.

    References:
      Chen, Liang, Huang, Real, Wang, Pham, Dong, Luong, Hsieh, Lu, Le, *Symbolic Discovery of
      Optimization Algorithms*, NeurIPS 2023 (Algorithm 2).
    """

    b1: Hyper = hyper(default=0.9, interval="[0, 1)")
    b2: Hyper = hyper(default=0.99, interval="[0, 1)")
    mu_dtype: DType = static(default=None)
    flat_support = "elementwise"

    mode: str = static(default="hard", kw_only=True)
    smooth_beta: Hyper = hyper(default=1.0, interval="(0, inf)", kw_only=True)

    def check(self):
        if self.mode not in ("hard", "smooth", "refined"):
            raise self.error(f"must be 'hard', 'smooth' or 'refined', got {self.mode!r}", "mode")

    def init_state(self, params):
        reject_complex(self, params, "params")
        return ScaleByLionState(tree.zeros_like(params, self.mu_dtype))

    def apply(self, updates, state, params, step):
        reject_complex(self, updates, "updates")
        keep, fresh = tree.complement(step.value(self.b1))
        beta = step.value(self.smooth_beta)
        weights = tree.per_dtype(lambda d: (tree.scalar(fresh, d), tree.scalar(keep, d)))

        def direction(g, m):
            g_m = dtypes.cast(g, m.dtype)
            w_fresh, w_keep = weights(m.dtype)
            c = w_fresh * g_m + w_keep * m
            if self.mode == "smooth":
                d = jnp.tanh(tree.scalar(beta, m.dtype) * c)
            elif self.mode == "refined":
                d = jnp.where(jnp.abs(c) < 1, c, jnp.sign(c))
            else:
                d = jnp.sign(c)
            return d.astype(g.dtype)

        u = jax.tree.map(direction, updates, state.mu)
        mu = tree.update_moment(updates, state.mu, step.value(self.b2), 1)
        return u, ScaleByLionState(mu)
