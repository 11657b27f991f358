"""Adan: adaptive Nesterov momentum estimated from gradient differences (``scale_by_adan``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_adan", "ScaleByAdanState"]


class ScaleByAdanState(NamedTuple):
    """State of :class:`scale_by_adan`: the three moments and the previous gradient."""

    m: Any
    v: Any
    n: Any
    prev_grad: Any


@docs.args
class scale_by_adan(GradientTransformation):
    r"""Rescale updates by Adan's moment estimates (no learning rate, no weight decay).

    With :math:`d_t = g_t - g_{t-1}` (:math:`d_1 = 0`), the decays :math:`\beta_i` (weights
    of the *old* value), a difference weight :math:`\gamma` (see Conventions) and :math:`t`
    the 1-based step number:

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) d_t, \\
        n_t = \beta_3 n_{t-1} + (1 - \beta_3) |g_t + \gamma d_t|^2, \qquad
        u_t = \frac{\hat m_t + \gamma \hat v_t}{\sqrt{\hat n_t + \epsilon_{root}} + \epsilon}

    where hats divide by :math:`1 - \beta_i^t`. :math:`g_t + \gamma d_t` estimates the
    gradient at the Nesterov look-ahead point without evaluating it there.

    Conventions. Xie et al. write the weights of the *new* values, :math:`\beta_i^{paper} = 1 -
    \beta_i` (their 0.02, 0.08, 0.01 are the defaults 0.98, 0.92, 0.99 here), and weight the
    difference by :math:`1 - \beta_2^{paper}`, that is :math:`\gamma = \beta_2`, in
    :math:`n_t` and in the step (Algorithm 1, and the authors' code). optax weights it by
    :math:`\gamma = 1 - \beta_2`. The default ``paper_difference_weight=False`` keeps optax's
    :math:`\gamma = 1 - \beta_2` for drop-in compatibility; ``True`` gives the paper's
    :math:`\gamma = \beta_2`. The zero initialisation with bias corrections follows the
    authors' code and optax (Algorithm 1 instead starts from :math:`m_0 = g_0`,
    :math:`n_0 = g_0^2`). Weight decay is a separate link (see :func:`adan`).

    Args:
      b1: :math:`\beta_1` in [0, 1), decay of the gradient average.
      b2: :math:`\beta_2` in [0, 1), decay of the gradient-difference average.
      b3: :math:`\beta_3` in [0, 1), decay of the second moment.
      <<eps>>
      <<eps_root>>
      paper_difference_weight: weight the difference by :math:`\beta_2` (paper) instead of
        :math:`1 - \beta_2` (optax).
      <<accumulator_dtype>>

    References:
      Xie, Zhou, Li, Lin, Yan, *Adan: Adaptive Nesterov Momentum Algorithm for Faster
      Optimizing Deep Models*, IEEE TPAMI 2024, arXiv:2208.06677 (Algorithm 1).
    """

    b1: Hyper = hyper(default=0.98, interval="[0, 1)", decays_in="accumulator_dtype")
    b2: Hyper = hyper(default=0.92, interval="[0, 1)", decays_in="accumulator_dtype")
    b3: Hyper = hyper(default=0.99, interval="[0, 1)", decays_in="accumulator_dtype")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    eps_root: Hyper = hyper(default=0.0, interval="[0, inf)")
    paper_difference_weight: bool = static(default=False, kw_only=True)
    accumulator_dtype: DType = static(default=None, kw_only=True)
    uses_count = True

    def init_state(self, params):
        dtype = self.accumulator_dtype
        return ScaleByAdanState(tree.zeros_like(params, dtype), tree.zeros_like(params, dtype),
                                tree.full_like(params, 0.0, dtype, real=True),
                                tree.zeros_like(params, dtype))

    def apply(self, updates, state, params, step):
        b1, b2, b3 = step.value(self.b1), step.value(self.b2), step.value(self.b3)
        keep2, fresh2 = tree.complement(b2)
        weight = keep2 if self.paper_difference_weight else fresh2
        first = step.count == 0
        g = tree.cast_like(updates, state.prev_grad)
        diff = jax.tree.map(lambda x, p: jnp.where(first, jnp.zeros_like(x), x - p),
                            g, state.prev_grad)
        m = tree.update_moment(g, state.m, b1, 1)
        v = tree.update_moment(diff, state.v, b2, 1)
        look_ahead = jax.tree.map(lambda x, d: x + tree.scalar(weight, d.dtype) * d, g, diff)
        n = tree.update_moment_per_elem_norm(look_ahead, state.n, b3, 2)
        t = step.number
        m_hat = tree.bias_correction(m, b1, t)
        v_hat = tree.bias_correction(v, b2, t)
        n_hat = tree.bias_correction(n, b3, t)
        numerator = jax.tree.map(lambda a, b: a + tree.scalar(weight, b.dtype) * b, m_hat, v_hat)
        out = tree.divide_by_root(numerator, n_hat, step.value(self.eps),
                                  step.value(self.eps_root), updates)
        return out, ScaleByAdanState(m, v, n, g)
