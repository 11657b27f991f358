"""Momentum and moving averages: ``trace`` and ``ema``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import DType, Hyper

__all__ = ["trace", "TraceState", "ema", "EmaState"]


class TraceState(NamedTuple):
    """State of :class:`trace`: the momentum buffer."""

    trace: Any


@docs.args
class trace(GradientTransformation):
    r"""Momentum (heavy ball), optionally dampened, optionally Nesterov.

    .. math::
        m_t = \beta\, m_{t-1} + (1 - d)\, g_t, \qquad
        u_t = m_t \quad\text{or, Nesterov,}\quad u_t = (1 - d)\, g_t + \beta\, m_t

    with :math:`\beta` = ``decay`` and :math:`d` = ``dampening``, :math:`m_0 = 0`.

    Conventions. ``dampening=0`` (default) is the classic form ``m = b m + g`` of Polyak and of
    optax/torch. ``dampening=decay`` gives the textbook's exponential average
    ``m = b m + (1 - b) g``, whose step is :math:`1/(1-\beta)` times smaller. The Nesterov form
    is the reformulation of Sutskever et al. (2013) used by optax and torch.

    Args:
      decay: momentum coefficient :math:`\beta` in [0, 1).
      <<nesterov>>
      dampening: :math:`d` in [0, 1).
      <<accumulator_dtype>>

    References:
      Polyak, *Some methods of speeding up the convergence of iteration methods*, 1964.
      Sutskever, Martens, Dahl, Hinton, *On the importance of initialization and momentum in
      deep learning*, ICML 2013.
    """

    decay: Hyper = hyper(interval="[0, 1)", decays_in="accumulator_dtype")
    nesterov: bool = static(default=False)
    dampening: Hyper = hyper(default=0.0, interval="[0, 1)", kw_only=True)
    accumulator_dtype: DType = static(default=None)
    flat_support = "elementwise"

    def init_state(self, params):
        return TraceState(tree.zeros_like(params, self.accumulator_dtype))

    def apply(self, updates, state, params, step):
        decay = step.value(self.decay)
        _, undamped = tree.complement(step.value(self.dampening))

        weights = tree.per_dtype(lambda d: (tree.scalar(decay, d), tree.scalar(undamped, d)))

        def one(g, m):
            b, w = weights(m.dtype)
            g32 = dtypes.cast(g, m.dtype)
            m = w * g32 + b * m
            u = w * g32 + b * m if self.nesterov else m
            return u.astype(g.dtype), m

        u, m = tree.unzip2(updates, jax.tree.map(one, updates, state.trace))
        return u, TraceState(m)


class EmaState(NamedTuple):
    """State of :class:`ema`: the moving average."""

    ema: Any


@docs.args
class ema(GradientTransformation):
    r"""Exponential moving average of the updates, optionally debiased.

    .. math:: e_t = \beta\, e_{t-1} + (1 - \beta)\, g_t, \qquad
              u_t = e_t / (1 - \beta^t) \ \text{(debias)} \quad\text{or}\quad u_t = e_t

    Args:
      decay: :math:`\beta` in [0, 1).
      debias: divide by :math:`1 - \beta^t` so early averages are not biased towards 0.
      <<accumulator_dtype>>
    """

    decay: Hyper = hyper(interval="[0, 1)", decays_in="accumulator_dtype")
    debias: bool = static(default=True)
    accumulator_dtype: DType = static(default=None)
    flat_support = "elementwise"

    @property
    def uses_count(self) -> bool:
        return self.debias

    def init_state(self, params):
        return EmaState(tree.zeros_like(params, self.accumulator_dtype))

    def apply(self, updates, state, params, step):
        decay = step.value(self.decay)
        new = tree.update_moment(updates, state.ema, decay, 1)
        out = tree.bias_correction(new, decay, step.number) if self.debias else new
        return tree.cast_like(out, updates), EmaState(new)
