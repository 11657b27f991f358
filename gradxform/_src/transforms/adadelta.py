"""Adadelta: steps in the units of the parameters, from two running averages
(``scale_by_adadelta``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_adadelta", "ScaleByAdaDeltaState"]


class ScaleByAdaDeltaState(NamedTuple):
    """State of :class:`scale_by_adadelta`: running averages of squared gradients and steps."""

    e_g: Any
    e_x: Any


@docs.args
class scale_by_adadelta(GradientTransformation):
    r"""Rescale updates by Adadelta's ratio of RMS step to RMS gradient (no learning rate).

    .. math::
        E[g^2]_t = \rho E[g^2]_{t-1} + (1 - \rho) |g_t|^2, \qquad
        \Delta_t = \frac{\sqrt{E[\Delta^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}}\, g_t,
        \\
        E[\Delta^2]_t = \rho E[\Delta^2]_{t-1} + (1 - \rho) |\Delta_t|^2, \qquad u_t = \Delta_t

    with :math:`E[g^2]_0 = E[\Delta^2]_0 = 0`. The ratio has the units of the parameters, so
    Zeiler's method needs no learning rate (:func:`adadelta` uses 1 by default).

    Conventions. ``eps`` is inside both roots, as in Zeiler's Algorithm 1, optax and torch.
    The average of squared steps accumulates :math:`\Delta_t` *before* any learning rate, as
    optax and torch do (the paper has no learning rate). Zeiler's experiments use
    :math:`\rho = 0.95`; the default 0.9 is optax's and torch's.

    Args:
      rho: :math:`\rho` in [0, 1).
      eps: added inside both square roots, > 0.
      <<accumulator_dtype>>

    References:
      Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, arXiv:1212.5701, 2012 (Algorithm 1).
    """

    rho: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="accumulator_dtype")
    eps: Hyper = hyper(default=1e-6, interval="(0, inf)")
    accumulator_dtype: DType = static(default=None, kw_only=True)

    def init_state(self, params):
        return ScaleByAdaDeltaState(tree.full_like(params, 0.0, self.accumulator_dtype, real=True),
                                    tree.full_like(params, 0.0, self.accumulator_dtype, real=True))

    def apply(self, updates, state, params, step):
        rho, eps = step.value(self.rho), step.value(self.eps)
        e_g = tree.update_moment_per_elem_norm(updates, state.e_g, rho, 2)

        def one(g, eg, ex):
            e = dtypes.safe_eps(eps, eg.dtype)
            ratio = jnp.sqrt(ex + e) / jnp.sqrt(eg + e)
            work = dtypes.wider(g.dtype, ratio.dtype)
            return g.astype(work) * ratio.astype(work)

        steps = jax.tree.map(one, updates, e_g, state.e_x)
        e_x = tree.update_moment_per_elem_norm(steps, state.e_x, rho, 2)
        return tree.cast_like(steps, updates), ScaleByAdaDeltaState(e_g, e_x)
