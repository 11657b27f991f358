"""AdaBelief: Adam scaled by the belief in the gradient (``scale_by_belief``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_belief", "ScaleByBeliefState"]


class ScaleByBeliefState(NamedTuple):
    """State of :class:`scale_by_belief`: the first moment and the prediction-error variance."""

    mu: Any
    nu: Any


@docs.args
class scale_by_belief(GradientTransformation):
    r"""Rescale updates by AdaBelief: Adam whose second moment is the variance of the gradient
    around its moving average (no learning rate).

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        s_t = \beta_2 s_{t-1} + (1 - \beta_2) |g_t - m_t|^2 + \epsilon_{root}, \\
        u_t = \frac{m_t / (1 - \beta_1^t)}{\sqrt{s_t / (1 - \beta_2^t)} + \epsilon}

    with :math:`t` the 1-based step number. A step is large where the gradient agrees with
    its prediction :math:`m_t` (small :math:`s_t`) and small where it does not.
    ``nesterov=True`` uses Dozat's look-ahead moment, as optax does.

    Conventions. This is Zhuang et al.'s Algorithm 2: :math:`\epsilon_{root}` is added to
    :math:`s_t` at every step and kept in the state (it accumulates), and :math:`\epsilon`
    is added outside the root; the paper writes the same :math:`\epsilon` in both places. The
    defaults ``eps = eps_root = 1e-16`` are those of optax and of the authors' released code
    (the paper's experiments used 1e-8).

    Args:
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1).
      eps: added outside the square root, > 0.
      eps_root: added to :math:`s_t` at every step, >= 0 (> 0 when differentiating through
        the optimizer, as :math:`s` can be 0).
      <<nesterov>>
      <<mu_dtype>>
      <<nu_dtype>>

    References:
      Zhuang, Tang, Ding, Tatikonda, Dvornek, Papademetris, Duncan, *AdaBelief Optimizer:
      Adapting Stepsizes by the Belief in Observed Gradients*, NeurIPS 2020 (Algorithm 2).
    """

    b1: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="mu_dtype")
    b2: Hyper = hyper(default=0.999, interval="[0, 1)", decays_in="nu_dtype")
    eps: Hyper = hyper(default=1e-16, interval="(0, inf)")
    eps_root: Hyper = hyper(default=1e-16, interval="[0, inf)")
    nesterov: bool = static(default=False, kw_only=True)
    mu_dtype: DType = static(default=None, kw_only=True)
    nu_dtype: DType = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "elementwise"

    def init_state(self, params):
        return ScaleByBeliefState(tree.zeros_like(params, self.mu_dtype),
                                  tree.full_like(params, 0.0, self.nu_dtype, real=True))

    def apply(self, updates, state, params, step):
        b1, b2 = step.value(self.b1), step.value(self.b2)
        eps, eps_root = step.value(self.eps), step.value(self.eps_root)
        mu = tree.update_moment(updates, state.mu, b1, 1)
        error = jax.tree.map(lambda g, m: dtypes.cast(g, m.dtype) - m, updates, mu)
        nu = tree.update_moment_per_elem_norm(error, state.nu, b2, 2)
        nu = jax.tree.map(lambda v: v + tree.scalar(eps_root, v.dtype), nu)
        t = step.number
        mu_hat = tree.nesterov_moment(updates, mu, b1, t) if self.nesterov else (
            tree.bias_correction(mu, b1, t))
        nu_hat = tree.bias_correction(nu, b2, t)
        out = tree.divide_by_root(mu_hat, nu_hat, eps, 0.0, updates)
        return out, ScaleByBeliefState(mu, nu)
