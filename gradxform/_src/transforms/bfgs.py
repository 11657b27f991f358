r"""BFGS: the gradient multiplied by a dense inverse-Hessian estimate (small problems)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradxform._src import tree
from gradxform._src.base import GradientTransformation, static
from gradxform._src.transforms.linesearch import _no_complex

__all__ = ["scale_by_bfgs", "ScaleByBfgsState"]


class ScaleByBfgsState(NamedTuple):
    """State of :class:`scale_by_bfgs`: the inverse-Hessian estimate (a dense matrix over the
    flattened params) and the previous params and gradient, flattened."""

    inv_hessian: jax.Array
    params: jax.Array
    updates: jax.Array


def flatten(x: Any, work: Any) -> jax.Array:
    """The leaves of ``x`` raveled and concatenated, in ``work``."""
    leaves = [jnp.ravel(jnp.asarray(leaf)).astype(work) for leaf in jax.tree.leaves(x)]
    return jnp.concatenate(leaves) if leaves else jnp.zeros([0], work)


def unflatten(vector: jax.Array, like: Any) -> Any:
    """Undo :func:`flatten`: a tree shaped like ``like``, in ``like``'s dtypes."""
    leaves, treedef = jax.tree.flatten(like)
    out, start = [], 0
    for leaf in leaves:
        size = int(np.prod(np.shape(leaf)))
        out.append(vector[start:start + size].reshape(np.shape(leaf)).astype(leaf.dtype))
        start += size
    return jax.tree.unflatten(treedef, out)


class scale_by_bfgs(GradientTransformation):
    r"""Multiply the gradient by the BFGS estimate :math:`H_k` of the inverse Hessian.

    With :math:`s = x_{k} - x_{k-1}`, :math:`y = g_{k} - g_{k-1}` and
    :math:`\rho = 1/(y^\top s)`, the estimate is updated at every step (Nocedal & Wright,
    eq. 6.17):

    .. math::
        H_k = (I - \rho\, s y^\top)\, H_{k-1}\, (I - \rho\, y s^\top) + \rho\, s s^\top

    and the output is :math:`H_k g_k`. Before the first update :math:`H` is scaled to
    :math:`\frac{y^\top s}{y^\top y} I` (eq. 6.20); the very first output is
    :math:`\min(1, 1/\lVert g_0\rVert)\, g_0`, as for :class:`scale_by_lbfgs`. A pair without
    positive curvature (:math:`s^\top y \le \varepsilon \lVert s\rVert \lVert y\rVert`) leaves
    :math:`H` unchanged, so it stays positive definite. Chain it with ``scale(-1.0)`` and a
    Wolfe line search (:func:`bfgs`).

    The matrix is :math:`n \times n` for :math:`n` params in total (the leaves flattened and
    concatenated, in the float32 or float64 accumulator dtype): for small problems;
    :class:`scale_by_lbfgs` keeps :math:`2mn` numbers instead.

    Non-finite gradients. As for :class:`scale_by_lbfgs`: :math:`H`, the pair :math:`(s, y)`
    and the stored gradient are computed from the finite part of the gradient (inf and NaN
    entries read as 0), so they are those of a run whose non-finite entries were 0, and a
    non-finite gradient entry gives that entry alone a non-finite output. A param that has
    become non-finite keeps its last finite value in the state (no contribution to :math:`s`).

    Args:
      scale_init_precond: scale the initial estimate by :math:`y^\top s / y^\top y` (else
        :math:`H_0 = I` and the first output is :math:`g_0`).

    References:
      Broyden 1970; Fletcher 1970; Goldfarb 1970; Shanno 1970. Nocedal & Wright, *Numerical
      Optimization*, 2nd ed. 2006 (algorithm 6.1, eqs. 6.17 and 6.20).
    """

    scale_init_precond: bool = static(default=True)
    uses_count = True
    # a matrix over all params raveled: on flat params the same matrix, its rows and columns
    # permuted (the leaves in buffer order), which BFGS's update commutes with
    flat_support = "elementwise"

    def init_state(self, params):
        _no_complex(self, params)
        work = tree.real_accumulator_dtype(params)
        n = sum(int(np.prod(np.shape(p))) for p in jax.tree.leaves(params))
        return ScaleByBfgsState(jnp.eye(n, dtype=work), jnp.zeros([n], work),
                                jnp.zeros([n], work))

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        if not jax.tree.leaves(updates):
            return updates, state
        work = state.inv_hessian.dtype
        raw = flatten(updates, work)
        g = tree.finite_part(raw)
        # a param made non-finite by an earlier non-finite update keeps its last finite value
        x = tree.where_finite(flatten(params, work), state.params)
        first, second = step.count == 0, step.count == 1
        s, y = x - state.params, g - state.updates
        sy, yy, ss = jnp.dot(s, y), jnp.dot(y, y), jnp.dot(s, s)
        eps = jnp.asarray(np.finfo(work).eps, work)
        valid = ~first & (sy > eps * jnp.sqrt(ss * yy))
        h = state.inv_hessian
        if self.scale_init_precond:
            h = jnp.where(second & valid, (sy / jnp.where(valid, yy, jnp.ones_like(yy))) * h, h)
        rho = 1 / jnp.where(valid, sy, jnp.ones_like(sy))
        # eq. 6.17 expanded into rank-one terms: O(n^2) instead of two matrix products (the
        # factor of s s^T as rho (1 + rho y^T H y), not rho^2 y^T H y + rho, which overflows)
        hy = h @ y
        rs = rho * s
        updated = (h - (jnp.outer(rs, hy) + jnp.outer(hy, rs))
                   + (1 + rho * jnp.dot(y, hy)) * jnp.outer(rs, s))
        h = jnp.where(valid, updated, h)
        direction = h @ g
        if self.scale_init_precond:
            norm = tree.global_norm(jax.lax.stop_gradient(g)).astype(work)
            capped = jnp.minimum(jnp.ones([], work), 1 / norm)
            direction = jnp.where(first, capped * g, direction)
        # the gradient's non-finite entries stay in their places (and only there)
        direction = tree.with_non_finite(direction, raw)
        return unflatten(direction, updates), ScaleByBfgsState(h, x, g)
