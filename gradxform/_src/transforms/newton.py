r"""Newton's direction from the exact Hessian, shifted where it is not positive definite."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from gradxform._src import tree
from gradxform._src.base import GradientTransformation, Step, hyper
from gradxform._src.transforms.bfgs import flatten, unflatten
from gradxform._src.transforms.linesearch import _fn_kwargs, _no_complex
from gradxform._src.types import Hyper

__all__ = ["scale_by_newton"]


class scale_by_newton(GradientTransformation):
    r"""Multiply the gradient by the inverse of the (shifted) Hessian: Newton's direction.

    The Hessian :math:`H` of the objective at the current params is computed with
    ``jax.hessian`` over the flattened params (an :math:`n \times n` matrix: small problems
    only). With :math:`\mu_1 \le \dots \le \mu_n` its eigenvalues, it is used as it is when it
    is safely positive definite, and shifted by a multiple of the identity otherwise
    (Levenberg-Marquardt style):

    .. math::
        d = (H + \tau I)^{-1} g, \qquad
        \tau = \lambda + \begin{cases}
            0 & \mu_1 \ge \delta \max_i |\mu_i| \\
            -\mu_1 + \max\big(\delta \max_i |\mu_i|,\ \lVert g\rVert / r\big)
              & \text{otherwise}
        \end{cases}

    with :math:`\lambda` = ``damping``, :math:`\delta` = ``min_curvature`` and :math:`r` =
    ``radius``. Where :math:`H` is positive definite this is Newton's step (quadratic
    convergence near a minimum). Where it is indefinite or singular, as near a saddle point or a
    maximum, every shifted curvature is at least :math:`\lVert g\rVert / r`, so :math:`-d` is a
    descent direction of length at most :math:`r`: the method does not head for the nearest
    stationary point regardless of its kind (the textbook's warning about Newton's method), nor
    jump far along a direction of negative curvature. Chain it with ``scale(-1.0)`` and a line
    search starting at the unit step (that is :func:`newton`), which keeps every step downhill.

    ``update`` needs the objective: ``value_fn=`` (and the other line-search arguments when
    chained with one), as for the line searches; its extra named arguments are passed on.

    Args:
      damping: :math:`\lambda` >= 0, a shift always applied (a Levenberg-Marquardt damping).
      min_curvature: :math:`\delta` in [0, 1), the smallest curvature, relative to the largest,
        for which the Hessian counts as positive definite.
      radius: :math:`r` > 0, the longest step taken where it does not (in the params' units).

    References:
      Nocedal & Wright, *Numerical Optimization*, 2nd ed. 2006 (section 3.4, Newton's method
      with Hessian modification; section 4.3, the shifted system of trust-region steps).
      Levenberg 1944; Marquardt 1963. Li, Fukushima, Qi & Yamashita, *Regularized Newton
      methods for convex minimization problems with singular solutions*, Comput. Optim. Appl.
      2004 (a shift proportional to the gradient norm).
    """

    damping: Hyper = hyper(0.0, "[0, inf)")
    min_curvature: Hyper = hyper(1e-8, "[0, 1)")
    radius: Hyper = hyper(1.0, "(0, inf)")

    def init_state(self, params):
        _no_complex(self, params)
        return ()

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        if not jax.tree.leaves(updates):
            return updates, state
        value_fn = step.extra.get("value_fn")
        if value_fn is None:
            raise self.error("is required: Newton's method differentiates the objective twice, "
                             "call update(grad, state, params, value_fn=f) (with value= and "
                             "grad= too when chained with a line search)", "value_fn")
        kwargs = _fn_kwargs(value_fn, dict(step.extra))
        run = _newton_direction
        try:
            hash(value_fn)
        except TypeError:  # an unhashable objective cannot key the cache: trace every call
            run = _newton_direction.__wrapped__
        return run(self, updates, params, kwargs, step.count, value_fn=value_fn), state


@functools.partial(jax.jit, static_argnames=("value_fn",))
def _newton_direction(tx, updates, params, kwargs, count, *, value_fn):
    """The shifted Newton direction (compiled once per objective and shapes)."""
    step = Step(count, {})
    work = tree.real_accumulator_dtype(params)
    flat, unravel = ravel_pytree(jax.lax.stop_gradient(params))
    hessian = jax.hessian(lambda v: value_fn(unravel(v), **kwargs))(flat).astype(work)
    mu, vectors = jnp.linalg.eigh((hessian + hessian.T) / 2)
    g = flatten(updates, work)
    # the shift is a decision, not a function of the params: no derivative through it (the
    # norm of a zero gradient has none)
    floor = tree.scalar(step.value(tx.min_curvature), work) * jnp.max(jnp.abs(mu))
    definite = mu[0] >= floor
    lift = jnp.maximum(floor, jnp.linalg.norm(jax.lax.stop_gradient(g))
                       / tree.scalar(step.value(tx.radius), work))
    tau = tree.scalar(step.value(tx.damping), work) + jnp.where(
        definite, jnp.zeros_like(lift), lift - mu[0])
    shifted = jax.lax.stop_gradient(mu + tau)
    # H = 0 and g = 0 (a flat region): no step
    shifted = jnp.where(shifted > 0, shifted, jnp.ones_like(shifted))
    direction = vectors @ ((vectors.T @ g) / shifted)
    return unflatten(direction, updates)
