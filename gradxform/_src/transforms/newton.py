r"""Newton's direction from the exact Hessian, shifted where it is not positive definite."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradxform._src import tree
from gradxform._src.base import GradientTransformation, Step, hyper
from gradxform._src.transforms.bfgs import flatten, unflatten
from gradxform._src.transforms.linesearch import _fn_kwargs, _no_complex, jit_with_objective
from gradxform._src.types import Hyper

__all__ = ["scale_by_newton", "ScaleByNewtonState"]


class ScaleByNewtonState(NamedTuple):
    """State of :class:`scale_by_newton`: the radius :math:`r` of shifted steps, the previous
    params (flattened), and the length of the previous direction if it was shifted (0 if
    not)."""

    radius: jax.Array
    params: jax.Array
    shifted_norm: jax.Array


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
            0 & \mu_1 > \delta \max_i |\mu_i| \\
            -\mu_1 + \max\big(\delta \max_i |\mu_i|,\ \lVert g\rVert / r_k\big)
              & \text{otherwise}
        \end{cases}

    with :math:`\lambda` = ``damping`` and :math:`\delta` = ``min_curvature``. Where :math:`H`
    is positive definite this is Newton's step (quadratic convergence near a minimum). Where it
    is indefinite or singular, as near a saddle point or a maximum, every shifted curvature is
    at least :math:`\lVert g\rVert / r_k`, so :math:`-d` is a descent direction of length at
    most :math:`r_k`: the method neither heads for the nearest stationary point regardless of
    its kind (the textbook's warning about Newton's method) nor jumps far along a direction of
    negative curvature.

    The radius adapts like a trust region's: it starts at ``radius``; after a shifted step it
    doubles if the line search took the whole step, and becomes the length of the step taken
    if it shortened it; after an unshifted step it grows to that step's length if smaller.
    Chain it with ``scale(-1.0)`` and a line search starting at the unit step (that is
    :func:`newton`), which keeps every step downhill.

    Non-finite gradients. The solve reads the finite parts of the gradient and of the Hessian
    (inf and NaN entries read as 0), so the finite entries of the direction are those of a run
    whose non-finite entries were 0, and a non-finite gradient entry gives that entry alone a
    non-finite output (the gradient's inf or NaN, as an elementwise method would). Where the
    objective has a kink (``sqrt`` at 0, a ``jnp.where`` with a NaN branch) the Hessian's row
    of that entry is NaN: it reads as zero curvature, so :math:`H` counts as singular and the
    step is shifted, at most :math:`r_k` long. A param that has become non-finite keeps its
    last finite value in the state, so it does not count in the length of the step taken.

    ``update`` needs the objective: ``value_fn=`` (and the other line-search arguments when
    chained with one), as for the line searches; its extra named arguments are passed on.

    Args:
      damping: :math:`\lambda` >= 0, a shift always applied (a Levenberg-Marquardt damping).
      min_curvature: :math:`\delta` in [0, 1), the smallest curvature, relative to the largest,
        for which the Hessian counts as positive definite (0: any positive curvature; badly
        scaled problems can have condition numbers of 1e15 and need it).
      radius: :math:`r_0` > 0, the initial radius of shifted steps (in the params' units).

    References:
      Nocedal & Wright, *Numerical Optimization*, 2nd ed. 2006 (section 3.4, Newton's method
      with Hessian modification; section 4.3, the shifted system of trust-region steps, and
      algorithm 4.1 for the radius). Levenberg 1944; Marquardt 1963. Li, Fukushima, Qi &
      Yamashita, *Regularized Newton methods for convex minimization problems with singular
      solutions*, Comput. Optim. Appl. 2004 (a shift proportional to the gradient norm).
    """

    damping: Hyper = hyper(default=0.0, interval="[0, inf)")
    min_curvature: Hyper = hyper(default=0.0, interval="[0, 1)")
    radius: Hyper = hyper(default=1.0, interval="(0, inf)")
    uses_count = True
    # the Hessian over all params raveled: on flat params the same matrix with its rows and
    # columns permuted (value_fn takes the FlatParams), which the eigendecomposition commutes with
    flat_support = "elementwise"

    def init_state(self, params):
        _no_complex(self, params)
        work = tree.real_accumulator_dtype(params)
        n = sum(int(np.prod(np.shape(p))) for p in jax.tree.leaves(params))
        return ScaleByNewtonState(jnp.zeros([], work), jnp.zeros([n], work),
                                  jnp.zeros([], work))

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        if not any(np.size(x) for x in jax.tree.leaves(updates)):  # no entries (0-size)
            return updates, state
        value_fn = step.extra.get("value_fn")
        if value_fn is None:
            raise self.error("is required: Newton's method differentiates the objective twice, "
                             "call update(grad, state, params, value_fn=f) (with value= and "
                             "grad= too when chained with a line search)", "value_fn")
        kwargs = _fn_kwargs(value_fn, dict(step.extra))
        return _newton_direction_jit(self, updates, state, params, kwargs, step.count,
                                     value_fn=value_fn)


def _newton_direction(tx, updates, state, params, kwargs, count, *, value_fn):
    """The shifted Newton direction and the new radius (compiled once per objective and
    shapes)."""
    step = Step(count, {})
    work = state.params.dtype
    sg = jax.lax.stop_gradient
    # one vector in the working dtype (leaves of mixed dtypes are cast explicitly, which
    # ravel_pytree's concatenation refuses under strict promotion)
    at = flatten(sg(params), work)
    hessian = jax.hessian(lambda v: value_fn(unflatten(v, params), **kwargs))(at).astype(work)
    # the non-finite rule: the solve reads finite parts only (a non-finite Hessian entry, as
    # the second derivative of a kink gives, reads as 0)
    hessian = tree.finite_part(hessian)
    mu, vectors = jnp.linalg.eigh((hessian + hessian.T) / 2)
    raw = flatten(updates, work)
    g = tree.finite_part(raw)
    # a param made non-finite by an earlier non-finite update keeps its last finite value
    x = tree.where_finite(at, state.params)

    # the radius, from how the line search treated the previous step
    taken = jnp.linalg.norm(x - state.params)
    first = count == 0
    grown = jnp.where(taken >= 0.999 * state.shifted_norm, 2 * state.radius, taken)
    radius = jnp.where(state.shifted_norm > 0, grown, jnp.maximum(state.radius, taken))
    radius = jnp.where(first, tree.scalar(step.value(tx.radius), work), radius)
    radius = jnp.where(radius > 0, radius, tree.scalar(step.value(tx.radius), work))

    # the shift is a decision, not a function of the params: no derivative through it (the
    # norm of a zero gradient has none)
    g_norm = jnp.linalg.norm(sg(g))
    floor = tree.scalar(step.value(tx.min_curvature), work) * jnp.max(jnp.abs(mu))
    definite = mu[0] > floor
    lift = jnp.maximum(floor, g_norm / radius)
    tau = tree.scalar(step.value(tx.damping), work) + jnp.where(
        definite, jnp.zeros_like(lift), lift - mu[0])
    shifted = sg(mu + tau)
    # H = 0 and g = 0 (a flat region): no step
    shifted = jnp.where(shifted > 0, shifted, jnp.ones_like(shifted))
    direction = vectors @ ((vectors.T @ g) / shifted)
    shifted_norm = jnp.where(definite, jnp.zeros_like(g_norm), jnp.linalg.norm(sg(direction)))
    # the gradient's non-finite entries stay in their places (and only there)
    direction = tree.with_non_finite(direction, raw)
    return unflatten(direction, updates), ScaleByNewtonState(sg(radius), x, shifted_norm)


_newton_direction_jit = jit_with_objective(_newton_direction)
