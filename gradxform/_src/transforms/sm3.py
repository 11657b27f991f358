r"""SM3: AdaGrad-like scaling with one accumulator per row, column, ... of each leaf."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_sm3", "ScaleBySm3State"]


class ScaleBySm3State(NamedTuple):
    """State of :class:`scale_by_sm3`.

    ``mu``: per leaf, a tuple with one accumulator vector per dimension (a scalar leaf has one
    scalar accumulator); ``nu``: the momentum of the scaled updates.
    """

    mu: Any
    nu: Any


def _expand(vector: jax.Array, axis: int, ndim: int) -> jax.Array:
    """``vector`` reshaped to broadcast along every axis but ``axis`` of an ``ndim`` array."""
    shape = [1] * ndim
    shape[axis] = vector.shape[0]
    return jnp.reshape(vector, shape)


@docs.args
class scale_by_sm3(GradientTransformation):
    r"""Scale by SM3's cover-based accumulators (SM3-II), then take a moving average.

    Each leaf of shape :math:`(n_1, \dots, n_k)` is covered by its slices along every dimension
    (rows, columns, ...); each slice :math:`r` keeps one accumulator :math:`\mu(r)`:

    .. math::
        \nu_t(i) = \beta_2' \min_{r \ni i} \mu_{t-1}(r) + \gamma\, g_t(i)^2, \qquad
        \mu_t(r) = \max_{i \in r} \nu_t(i), \\
        s_t = g_t / \sqrt{\nu_t + \epsilon} \ (0 \text{ where } \nu_t = 0), \qquad
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) s_t, \qquad u_t = m_t

    with :math:`(\gamma, \beta_2') = (1, 1)` for ``b2 = 1`` (the paper's sums, AdaGrad-like) and
    :math:`(1-\beta_2, \beta_2)` otherwise. Memory is :math:`\sum_j n_j` per leaf instead of
    :math:`\prod_j n_j`. Vectors and scalars are covered by single coordinates (plain AdaGrad).

    Conventions. As optax's ``scale_by_sm3``: ``eps`` inside the root, the 0/0 = 0 convention,
    momentum as a dampened moving average of the scaled update (``b1 = 0``: the paper's SM3-II
    without momentum). Scalar leaves are supported (optax fails on them). Complex gradients use
    :math:`|g|^2`. There is no ``axis_name``: the maxima over slices are not completed across
    shards.

    Args:
      b1: momentum :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in (0, 1]; 1 for the paper's sums.
      <<eps>>
      <<accumulator_dtype>>

    References:
      Anil, Gupta, Koren, Singer, *Memory-Efficient Adaptive Optimization*, NeurIPS 2019
      (Algorithm SM3-II).
    """

    b1: Hyper = hyper(default=0.9, interval="[0, 1)")
    b2: Hyper = hyper(default=1.0, interval="(0, 1]")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    accumulator_dtype: DType = static(default=None, kw_only=True)
    flat_support = "each_leaf"  # one accumulator per row, column, ... of each leaf

    def init_state(self, params):
        def accumulators(p):
            acc = dtypes.real_dtype(dtypes.accumulator_dtype(dtypes.leaf_dtype(p),
                                                             self.accumulator_dtype))
            shape = tuple(jnp.shape(p))
            if not shape:
                return (jnp.zeros([], acc),)
            return tuple(jnp.zeros((n,), acc) for n in shape)

        mu = jax.tree.map(accumulators, params)
        return ScaleBySm3State(mu, tree.zeros_like(params, self.accumulator_dtype))

    def apply(self, updates, state, params, step):
        b1, b2, eps = step.value(self.b1), step.value(self.b2), step.value(self.eps)

        def one(g, mu):
            acc = mu[0].dtype
            if isinstance(b2, (int, float)):
                keep, fresh = (1.0, 1.0) if b2 == 1 else tree.complement(b2)
                keep, fresh = tree.scalar(keep, acc), tree.scalar(fresh, acc)
            else:
                keep = jnp.asarray(b2).astype(acc)
                fresh = jnp.where(keep == 1, jnp.ones_like(keep), 1 - keep)
            g2 = tree.abs_sq(g.astype(dtypes.wider(g.dtype, acc))).astype(acc)
            if g.ndim < 2:
                previous = mu[0]
            else:
                previous = functools.reduce(
                    jnp.minimum, [_expand(m, i, g.ndim) for i, m in enumerate(mu)])
            nu = fresh * g2 + keep * previous
            inv = jnp.where(nu > 0, jax.lax.rsqrt(nu + dtypes.safe_eps(eps, acc)),
                            jnp.zeros_like(nu))
            new_mu: tuple[jax.Array, ...]
            if g.ndim < 2:
                new_mu = (nu,)
            else:
                axes = range(g.ndim)
                finite = tree.finite_part(nu)  # a non-finite entry must not poison a cover
                # initial=0: nu >= 0, and a cover over a 0-size axis is 0 (no error)
                new_mu = tuple(jnp.max(finite, axis=tuple(j for j in axes if j != i),
                                       initial=jnp.zeros([], acc))
                               for i in axes)
            work = dtypes.wider(g.dtype, acc)
            return g.astype(work) * inv.astype(work), new_mu

        # state.mu has a tuple where updates have a leaf: tree.map hands each leaf its tuple.
        scaled, mu = tree.unzip2(updates, jax.tree.map(one, updates, state.mu))
        nu = tree.update_moment(scaled, state.nu, b1, 1)
        return tree.cast_like(nu, updates), ScaleBySm3State(mu, nu)

