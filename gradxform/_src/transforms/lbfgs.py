r"""L-BFGS: the gradient multiplied by an inverse-Hessian estimate built from the last m steps."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradxform._src import tree
from gradxform._src.base import GradientTransformation, static
from gradxform._src.transforms.linesearch import _accumulators, _no_complex, _vdot

__all__ = ["scale_by_lbfgs", "ScaleByLbfgsState"]


class ScaleByLbfgsState(NamedTuple):
    """State of :class:`scale_by_lbfgs`: the previous params and gradient, the last m
    differences of params and gradients (stacked on a leading axis, a ring buffer), their
    weights :math:`\\rho_i` and the scale :math:`\\gamma` of the initial inverse Hessian."""

    params: Any
    updates: Any
    diff_params_memory: Any
    diff_updates_memory: Any
    weights_memory: jax.Array
    identity_scale: jax.Array


@jax.jit
def two_loop(grad: Any, s_memory: Any, y_memory: Any, rho: jax.Array, gamma: jax.Array,
             newest: jax.Array) -> Any:
    r""":math:`H_k g` by the two-loop recursion over a ring buffer whose newest pair is at index
    ``newest`` (pairs with :math:`\rho_i = 0` are skipped). Compiled once per shape, so that
    eager loops do not trace the scans again at every step."""
    m, work = rho.shape[0], rho.dtype
    order = (newest - jnp.arange(m, dtype=newest.dtype)) % m  # newest first
    pick = lambda mem, i: jax.tree.map(lambda x: x[i], mem)  # noqa: E731

    def backward(q, i):
        s, y = pick(s_memory, i), pick(y_memory, i)
        alpha = rho[i] * _vdot(s, q, work)
        q = jax.tree.map(lambda qq, yy: qq - alpha.astype(qq.dtype) * yy, q, y)
        return q, alpha

    q, alphas = jax.lax.scan(backward, grad, order)
    r = jax.tree.map(lambda x: gamma.astype(x.dtype) * x, q)

    def forward(r, inputs):
        i, alpha = inputs
        s, y = pick(s_memory, i), pick(y_memory, i)
        beta = rho[i] * _vdot(y, r, work)
        return jax.tree.map(lambda rr, ss: rr + (alpha - beta).astype(rr.dtype) * ss, r, s), None

    r, _ = jax.lax.scan(forward, r, (order[::-1], alphas[::-1]))
    return r


class scale_by_lbfgs(GradientTransformation):
    r"""Multiply the gradient by the L-BFGS estimate of the inverse Hessian (the direction only).

    With :math:`s_i = x_{i+1} - x_i` and :math:`y_i = g_{i+1} - g_i` for the last :math:`m`
    steps, :math:`\rho_i = 1/(y_i^\top s_i)`, the estimate :math:`H_k` is
    :math:`\gamma_k I` updated by the BFGS formula with each stored pair, oldest first:

    .. math::
        H \leftarrow (I - \rho_i s_i y_i^\top)\, H\, (I - \rho_i y_i s_i^\top)
        + \rho_i s_i s_i^\top, \qquad
        \gamma_k = \frac{s_{k-1}^\top y_{k-1}}{y_{k-1}^\top y_{k-1}}

    and the output is :math:`H_k g_k`, computed by the two-loop recursion in :math:`O(mn)`
    without forming :math:`H_k` (Nocedal & Wright, algorithm 7.4). At the first step
    :math:`H_0 = \min(1, 1/\lVert g_0\rVert)\, I`, so the first step has length at most 1.
    Chain it with ``scale(-1.0)`` and a line search (that is :func:`lbfgs`): the pair
    :math:`(s_k, y_k)` is formed at the next update from the params and gradient it receives, so
    the step the line search chose is the one remembered.

    Conventions. The same as optax's ``scale_by_lbfgs`` (same :math:`H_0` and
    :math:`\gamma_k`), except that a pair with :math:`s^\top y \le \varepsilon \lVert s\rVert
    \lVert y\rVert` (no positive curvature, :math:`\varepsilon` the machine epsilon: possible
    without a Wolfe line search) is left out of the estimate, with :math:`\gamma` kept from the
    previous step, so that :math:`H_k` stays positive definite; optax keeps it. The memory is
    kept in float32 for bfloat16/float16 params.

    Non-finite gradients. The direction is computed from the finite part of the gradient (inf
    and NaN entries read as 0), and the gradient kept for the next pair is that finite part, so
    the pairs, :math:`\rho` and :math:`\gamma` are exactly those of a run whose non-finite
    entries were 0. A non-finite gradient entry gives that entry alone a non-finite output (the
    gradient's inf or NaN, as an elementwise method would), so the caller sees it; a line
    search chained after it moves along the finite entries only (see :class:`zoom_linesearch`).
    A param that has become non-finite keeps its last finite value in the state, so it adds
    nothing to :math:`s`.

    Args:
      memory_size: :math:`m` >= 1, the number of pairs kept.
      scale_init_precond: use :math:`\gamma_k I` (else :math:`I`, and :math:`H_0 = I`).

    References:
      Liu & Nocedal, *On the limited memory BFGS method for large scale optimization*, Math.
      Programming 1989. Nocedal & Wright, *Numerical Optimization*, 2nd ed. 2006 (algorithms
      7.4 and 7.5, eq. 7.20).
    """

    memory_size: int = static(default=10)
    scale_init_precond: bool = static(default=True)
    uses_count = True
    flat_support = "elementwise"  # inner products of the whole tree

    def check(self):
        m = self.memory_size
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise self.error(f"must be a whole number >= 1, got {m!r}", "memory_size")

    def init_state(self, params):
        _no_complex(self, params)
        m = self.memory_size
        work = tree.real_accumulator_dtype(params)
        stacked = lambda: jax.tree.map(  # noqa: E731
            lambda z: jnp.zeros((m,) + z.shape, z.dtype), tree.zeros_like(params))
        return ScaleByLbfgsState(tree.zeros_like(params), tree.zeros_like(params), stacked(),
                                 stacked(), jnp.zeros([m], work), jnp.ones([], work))

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        if not jax.tree.leaves(updates):
            return updates, state
        m, k = self.memory_size, step.count
        work = state.weights_memory.dtype
        raw = _accumulators(updates, params)
        g = jax.tree.map(tree.finite_part, raw)
        # a param made non-finite by an earlier non-finite update keeps its last finite value
        # here, so that it contributes nothing to s
        x = jax.tree.map(tree.where_finite, _accumulators(params, params), state.params)
        first = k == 0

        # 1. the newest pair (s, y), from the previous update to this one
        s = jax.tree.map(lambda a, b: a - b, x, state.params)
        y = jax.tree.map(lambda a, b: a - b, g, state.updates)
        sy, yy, ss = _vdot(s, y, work), _vdot(y, y, work), _vdot(s, s, work)
        eps = jnp.asarray(np.finfo(work).eps, work)
        valid = ~first & (sy > eps * jnp.sqrt(ss * yy))
        rho = jnp.where(valid, 1 / jnp.where(valid, sy, jnp.ones_like(sy)), jnp.zeros_like(sy))
        slot = (k + (m - 1)) % m
        s_mem = jax.tree.map(lambda mem, v: mem.at[slot].set(v), state.diff_params_memory, s)
        y_mem = jax.tree.map(lambda mem, v: mem.at[slot].set(v), state.diff_updates_memory, y)
        weights = state.weights_memory.at[slot].set(rho)

        # 2. the scale of the initial estimate
        if self.scale_init_precond:
            norm = tree.global_norm(jax.lax.stop_gradient(g)).astype(work)
            capped = jnp.minimum(jnp.ones([], work), 1 / norm)
            gamma = jnp.where(first, capped,
                              jnp.where(valid, sy / jnp.where(valid, yy, jnp.ones_like(yy)),
                                        state.identity_scale))
        else:
            gamma = jnp.ones([], work)

        # 3. the direction
        direction = two_loop(g, s_mem, y_mem, weights, gamma, slot)
        out = jax.tree.map(lambda d, r, u: tree.with_non_finite(d, r).astype(u.dtype),
                           direction, raw, updates)
        return out, ScaleByLbfgsState(x, g, s_mem, y_mem, weights, gamma)
