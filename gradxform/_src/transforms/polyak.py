r"""Polyak's step size: the step that would reach the optimal value if the loss were linear."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import Hyper

__all__ = ["scale_by_polyak"]

_VARIANTS = ("sps", "sps+")


@docs.args
class scale_by_polyak(GradientTransformation):
    r"""Scale the whole update by Polyak's step size, from the current loss value.

    .. math::
        \gamma_t = \min\left(\frac{f(\theta_t) - f^\star}{\lVert g_t\rVert^2 + \epsilon},\
        \gamma_{max}\right), \qquad u_t = \gamma_t\, g_t

    with :math:`\lVert g\rVert` the norm of the whole tree and :math:`\gamma_t = 0` where
    :math:`\lVert g_t\rVert^2 + \epsilon = 0`. ``variant="sps+"`` uses :math:`(f - f^\star)_+`
    (Garrigos et al. 2023), so a loss below the guess :math:`f^\star` gives no step instead of
    an ascent step.

    **The loss value is an argument of** ``update``: ``tx.update(grads, state, params,
    value=loss)`` (``jax.value_and_grad`` gives both); a missing value is an error.

    Conventions. ``max_learning_rate=None`` removes the cap (Polyak's original step, 1987);
    optax always caps it (default 1). optax returns no step where
    :math:`\lVert g\rVert^2 + \epsilon \le 2.2\cdot10^{-16}`; here only where it is exactly 0
    (a threshold on a squared norm depends on the loss's units).

    Args:
      f_min: :math:`f^\star`, a guess of (or lower bound on) the optimal loss; 0 for models that
        interpolate their data.
      max_learning_rate: :math:`\gamma_{max}` > 0, or ``None`` for no cap.
      eps: :math:`\epsilon` >= 0 added to the squared norm.
      variant: ``"sps"`` or ``"sps+"``.

    References:
      Polyak, *Introduction to Optimization*, 1987 (section 5.3). Loizou, Vaswani, Laradji,
      Lacoste-Julien, *Stochastic Polyak Step-size for SGD: An Adaptive Learning Rate for Fast
      Convergence*, AISTATS 2021 (SPS_max). Garrigos, Gower, Schaipp, *Function Value Learning:
      Adaptive Learning Rates Based on the Polyak Stepsize and Function Splitting in ERM*, 2023.
    """

    f_min: Hyper = hyper(default=0.0)
    max_learning_rate: Hyper | None = hyper(default=1.0, interval="(0, inf)", optional=True)
    eps: Hyper = hyper(default=0.0, interval="[0, inf)")
    variant: str = static(default="sps")
    flat_support = "elementwise"  # one norm of the whole tree

    def check(self):
        if self.variant not in _VARIANTS:
            raise self.error(f"must be one of {_VARIANTS}, got {self.variant!r}", "variant")

    def apply(self, updates, state, params, step):
        value = step.extra.get("value")
        if value is None:
            raise self.error("needs the current loss: call update(updates, state, params, "
                             "value=loss) (jax.value_and_grad returns both)", "value")
        if jnp.ndim(value) != 0:
            raise self.error(f"must be a scalar loss, got an array of shape {jnp.shape(value)}",
                             "value")
        leaves = jax.tree.leaves(updates)
        if not leaves:
            return updates, state
        work = jnp.float32
        for g in leaves:
            work = dtypes.wider(work, dtypes.real_dtype(g.dtype))
        sq = tree.finite_total(
            leaves, lambda g: tree.abs_sq(g.astype(dtypes.wider(g.dtype, work))).astype(work))
        gap = jnp.asarray(value).astype(work) - tree.scalar(step.value(self.f_min), work)
        if self.variant == "sps+":
            gap = jnp.maximum(gap, jnp.zeros_like(gap))
        denom = sq + tree.scalar(step.value(self.eps), work)
        positive = denom > 0
        gamma = gap / jnp.where(positive, denom, jnp.ones_like(denom))
        cap = step.value(self.max_learning_rate)
        if cap is not None:
            gamma = jnp.minimum(gamma, tree.scalar(cap, work))
        gamma = jnp.where(positive, gamma, jnp.zeros_like(gamma))
        return jax.tree.map(lambda g: tree.scale_by(g, gamma), updates), state
