r"""Fromage's step: a relative (trust-ratio) step followed by a shrink that keeps norms bounded."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes
from gradxform._src.base import GradientTransformation, hyper
from gradxform._src.types import Hyper

__all__ = ["scale_by_fromage"]


def _coefficients(lr: Any, work: Any) -> tuple[jax.Array, jax.Array]:
    r"""``(eta / s, 1/s - 1)`` with ``s = sqrt(1 + eta^2)``, the second without cancellation.

    ``1/s - 1 = -eta^2 / (s (1 + s))``; a Python number is computed in double precision and
    rounded once.
    """
    if isinstance(lr, (int, float)):
        s = math.sqrt(1.0 + lr * lr)
        return jnp.asarray(lr / s, work), jnp.asarray(-(lr * lr) / (s * (1.0 + s)), work)
    rate = jnp.asarray(lr).astype(work)
    root = jnp.sqrt(1 + rate * rate)
    return rate / root, -(rate * rate) / (root * (1 + root))


@docs.args
class scale_by_fromage(GradientTransformation):
    r"""Fromage's update from a trust-ratio-scaled direction :math:`d` (learning rate included).

    .. math::
        \theta_{t+1} = \frac{\theta_t - \eta\, d_t}{\sqrt{1 + \eta^2}}, \qquad
        d_t = \frac{\lVert\theta_t\rVert}{\lVert g_t\rVert} g_t \ \text{(per leaf)}

    so the returned update is
    :math:`u = -\frac{\eta}{\sqrt{1+\eta^2}}\,d + \left(\frac{1}{\sqrt{1+\eta^2}} - 1\right)\theta`.
    Place it after :class:`scale_by_trust_ratio` (``fromage`` does). The step
    :math:`\eta d` is orthogonal-ish to :math:`\theta` and has relative length :math:`\eta`;
    dividing by :math:`\sqrt{1+\eta^2}` undoes the growth of the norm that such steps would cause
    (Bernstein et al. 2020, Algorithm 1). Unlike other links this one holds the learning rate,
    because Fromage uses it twice.

    Conventions. As optax: the shrink is applied as the decoupled decay
    :math:`(1/\sqrt{1+\eta^2} - 1)\theta` added to the update; here it is formed without
    cancellation (``1/s - 1 = -eta^2 / (s (1 + s))``). Needs ``params``.

    Args:
      <<learning_rate>>

    References:
      Bernstein, Vahdat, Yue, Liu, *On the distance between two neural networks and the
      stability of learning*, NeurIPS 2020 (Algorithm 1, Fromage).
    """

    learning_rate: Hyper = hyper(interval="[0, inf)")
    flat_support = "elementwise"

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        lr = step.value(self.learning_rate)

        def one(d, p):
            work = dtypes.wider(d.dtype, jnp.float32)
            step_size, shrink = _coefficients(lr, dtypes.real_dtype(work))
            d_w, p_w = d.astype(work), jnp.asarray(p).astype(work)
            return (-step_size.astype(work) * d_w + shrink.astype(work) * p_w).astype(d.dtype)

        return jax.tree.map(one, updates, params), state
