"""ADOPT: Adam reordered so that it converges for any beta2 (``scale_by_adopt``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.transforms.adam import ScaleByAdamState
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_adopt"]


def _clip(x: jax.Array, c: jax.Array) -> jax.Array:
    """``x`` clipped to ``[-c, c]``; a complex ``x`` has its modulus clipped instead."""
    if jnp.iscomplexobj(x):
        size = jnp.abs(x)
        factor = jnp.where(size > c, c / jnp.where(size > c, size, jnp.ones_like(size)),
                           jnp.ones_like(size))
        return x * factor.astype(x.dtype)
    return jnp.clip(x, -c, c)


@docs.args
class scale_by_adopt(GradientTransformation):
    r"""Rescale updates by ADOPT: normalise by the *previous* second moment, then average.

    With :math:`t` = ``step.count`` (0 on the first update):

    .. math::
        t = 0:&\quad v_0 = |g_0|^2,\ m_0 = 0,\ u_0 = 0 \quad\text{(no step)} \\
        t \ge 1:&\quad m_t = \beta_1 m_{t-1} + (1 - \beta_1)\,
            \operatorname{clip}\!\Big(\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)}, c_t\Big),
            \qquad u_t = m_t, \\
        &\quad v_t = \beta_2 v_{t-1} + (1 - \beta_2) |g_t|^2

    with the clipping bound :math:`c_t = t^{p}` (``clip_exponent`` :math:`p`, 1/4 by
    default; ``use_clipping=False`` drops the clip). Because :math:`g_t` is normalised by a
    second moment that does not contain it, ADOPT converges for any :math:`\beta_2`.
    ``nesterov=True`` returns :math:`\beta_1 m_t + (1 - \beta_1)\,\operatorname{clip}(\cdot)`.
    Complex updates have their modulus clipped.

    Conventions. As the paper (Algorithm 2, the clipped form), optax and the authors' code:
    ``eps`` bounds :math:`\sqrt{v}` from below (it is not added), and the first update only
    initialises :math:`v`. optax takes the clipping bound as a function of the step; here it
    is :math:`t^p`, a hyperparameter like any other. ``optax.contrib.scale_by_adopt`` forms
    :math:`1 - \beta_2` after casting :math:`\beta_2` to float32 (0.9999 gives a weight 1.7e-4
    off); here it is formed from the number given, before any cast. Passing ``b1``, ``b2`` as
    float32 arrays gives optax's float32 numbers.

    Args:
      b1: :math:`\beta_1` in [0, 1).
      b2: :math:`\beta_2` in [0, 1).
      eps: lower bound of :math:`\sqrt{v}`, > 0.
      clip_exponent: :math:`p` >= 0 in the clipping bound :math:`t^p`.
      use_clipping: clip the normalised gradient (recommended, especially early in training).
      <<nesterov>>
      <<mu_dtype>>
      <<nu_dtype>>

    References:
      Taniguchi, Harada, Minegishi, Oshima, Jeong, Nagahara, Iiyama, Suzuki, Iwasawa, Matsuo,
      *ADOPT: Modified Adam Can Converge with Any beta2 with the Optimal Rate*, NeurIPS 2024
      (Algorithms 1 and 2).
    """

    b1: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="mu_dtype")
    b2: Hyper = hyper(default=0.9999, interval="[0, 1)", decays_in="nu_dtype")
    eps: Hyper = hyper(default=1e-6, interval="(0, inf)")
    clip_exponent: Hyper = hyper(default=0.25, interval="[0, inf)", kw_only=True)
    use_clipping: bool = static(default=True, kw_only=True)
    nesterov: bool = static(default=False, kw_only=True)
    mu_dtype: DType = static(default=None)
    nu_dtype: DType = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "elementwise"

    def init_state(self, params):
        return ScaleByAdamState(tree.zeros_like(params, self.mu_dtype),
                                tree.full_like(params, 0.0, self.nu_dtype, real=True))

    def apply(self, updates, state, params, step):
        b1, b2 = step.value(self.b1), step.value(self.b2)
        eps, exponent = step.value(self.eps), step.value(self.clip_exponent)
        keep1, fresh1 = tree.complement(b1)
        keep2, fresh2 = tree.complement(b2)
        later = step.count > 0

        def weights(keep, fresh, dtype, first_keep):
            # On the first update v is set to g^2 (keep 0) and m is kept (keep 1).
            k, f = tree.scalar(keep, dtype), tree.scalar(fresh, dtype)
            first = jnp.asarray(first_keep, dtype)
            return jnp.where(later, k, first), jnp.where(later, f, 1 - first)

        def one(g, m, v):
            kv, fv = weights(keep2, fresh2, v.dtype, 0)
            gw = g.astype(dtypes.wider(g.dtype, m.dtype))
            v_new = fv * tree.abs_sq(gw).astype(v.dtype) + kv * v
            scaled = gw.astype(m.dtype) / jnp.maximum(jnp.sqrt(v), dtypes.safe_eps(
                eps, v.dtype)).astype(m.dtype)
            if self.use_clipping:
                work = dtypes.real_dtype(m.dtype)
                # t^p, with 0 at t = 0 (where no step is taken) computed without 0^p, whose
                # derivative in p is not finite.
                t = jnp.maximum(step.count, 1).astype(work)
                bound = jnp.where(later, t ** tree.scalar(exponent, work), jnp.zeros_like(t))
                scaled = _clip(scaled, bound)
            km, fm = weights(keep1, fresh1, dtypes.real_dtype(m.dtype), 1)
            km, fm = km.astype(m.dtype), fm.astype(m.dtype)
            m_new = fm * scaled + km * m
            out = fm * scaled + km * m_new if self.nesterov else m_new
            return out.astype(g.dtype), m_new, v_new

        out, mu, nu = tree.unzip3(updates, jax.tree.map(one, updates, state.mu, state.nu))
        return out, ScaleByAdamState(mu, nu)
