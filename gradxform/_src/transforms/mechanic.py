r"""Mechanic: learn the scale of any optimizer's steps online, by coin betting."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import dtypes, tree
from gradxform._src.base import GradientTransformation, child, hyper, static, transformation
from gradxform._src.transforms.parameter_free import _reject_complex, _vdot
from gradxform._src.types import Hyper

__all__ = ["mechanize", "MechanicState"]


class MechanicState(NamedTuple):
    """State of :class:`mechanize`: the base optimizer's state, Mechanic's per-beta statistics
    ``r``, ``m``, ``v``, ``s`` (vectors of length ``num_betas``) and the reference point
    :math:`x_0`."""

    base_optimizer_state: Any
    r: jax.Array
    m: jax.Array
    v: jax.Array
    s: jax.Array
    x0: Any


class mechanize(GradientTransformation):
    r"""Mechanic (Cutkosky, Defazio, Mehta 2023): learn the scale of a base optimizer's steps.

    The params move along the sum :math:`\Delta_t` of the base optimizer's updates, scaled by a
    learned factor :math:`s_t = \sum_i s_{t,i}`: :math:`x_{t+1} = x_0 + s_{t+1}\Delta_{t+1}`.
    With :math:`\Delta_t = (x_t - x_0)/(s_t + \epsilon)` recomputed from the params, the base
    update :math:`d_t`, and the gradient with Mechanic's own decay
    :math:`\tilde g_t = g_t + \lambda s_t \frac{\lVert g_t\rVert}{\lVert x_t\rVert + \epsilon}
    x_t`, for every :math:`\beta_i = 1 - 10^{-i}`, :math:`i = 1..n`:

    .. math::
        h_t &= \langle \tilde g_t, \Delta_t\rangle, \qquad
        m_{t,i} = \max(\beta_i m_{t-1,i},\ |h_t| + \epsilon), \qquad
        v_{t,i} = \beta_i^2 v_{t-1,i} + h_t^2, \\
        r_{t,i} &= \beta_i r_{t-1,i} + \operatorname{clip}(h_t, \pm m_{t-1,i})\, s_{t-1,i},
        \qquad s_{t,i} = \frac{\frac{s_{init}}{n} m_{t,i} + \max(r_{t,i}, 0)}
        {\sqrt{v_{t,i}} + \epsilon}, \\
        u_t &= x_0 + s_t\,(\Delta_t + d_t) - x_t

    The base optimizer sees the raw gradients (and every extra argument of ``update``) and
    runs on the same step count. A learning-rate schedule inside it still shapes the steps;
    its peak value only sets their units (1 is fine).

    Conventions. As optax (written by the authors): :math:`x_0` is the params of the first
    update (so pre-trained weights loaded after ``init`` count), and :math:`h_t` is clipped
    to :math:`\pm m_{t-1}` in :math:`r` (added after the paper). Complex params are rejected
    (:math:`h_t` is a real inner product).

    Low-precision params. The first steps are about ``s_init`` times the base optimizer's:
    bfloat16 params near 1 cannot move by 1e-6 of a step, so :math:`\Delta` stays 0 and the
    scale never grows. Keep float32 params or raise ``s_init`` (1e-3 works).

    Args:
      base_optimizer: the optimizer whose steps are scaled (gradxform or optax; not a
        normalised one like LARS or LAMB).
      weight_decay: :math:`\lambda` >= 0, Mechanic's own decay (independent of any in the
        base optimizer).
      eps: :math:`\epsilon` > 0.
      s_init: :math:`s_{init}` > 0, the initial scale.
      num_betas: :math:`n` >= 1, the number of decays :math:`\beta_i = 1 - 10^{-i}`.

    Example::

        opt = gx.mechanize(gx.adam(1.0))

    References:
      Cutkosky, Defazio, Mehta, *Mechanic: A Learning Rate Tuner*, NeurIPS 2023 (Algorithm 1,
      the memory-efficient form).
    """

    base_optimizer: GradientTransformation = child(converter=transformation)
    weight_decay: Hyper = hyper(default=1e-2, interval="[0, inf)")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    s_init: Hyper = hyper(default=1e-6, interval="(0, inf)")
    num_betas: int = static(default=6)
    uses_count = True
    flat_support = "elementwise"  # dot products over the whole tree

    def check(self):
        n = self.num_betas
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise self.error(f"must be a whole number >= 1, got {n!r}", "num_betas")

    def init_state(self, params):
        _reject_complex(self, params)
        sd = tree.real_accumulator_dtype(params)
        n = self.num_betas
        zeros = lambda: jnp.zeros([n], sd)  # noqa: E731
        return MechanicState(self.base_optimizer.init_state(params), zeros(), zeros(), zeros(),
                             jnp.full([n], tree.scalar(self.s_init, sd), sd),
                             tree.zeros_like(params))

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        base_updates, base_state = self.base_optimizer.apply(updates, state.base_optimizer_state,
                                                             params, step)
        sd = state.s.dtype
        c = lambda v: tree.scalar(v, sd)  # noqa: E731
        wd, eps, s_init = (step.value(self.weight_decay), step.value(self.eps),
                           step.value(self.s_init))
        x = tree.cast_like(jax.tree.map(jnp.asarray, params), state.x0)
        x0 = jax.tree.map(lambda a, b: jnp.where(step.count == 0, b, a), state.x0, x)
        s_sum = jnp.sum(state.s)
        grads = tree.cast_like(updates, state.x0)
        factor = c(wd) * s_sum * tree.global_norm(grads) / (tree.global_norm(x) + c(eps))
        grads = jax.tree.map(lambda g, p: g + factor.astype(p.dtype) * p, grads, x)
        delta_prev = jax.tree.map(lambda p, p0: (p0 - p) / (s_sum + c(eps)).astype(p.dtype),
                                  x, x0)
        h = _vdot(grads, delta_prev, sd)
        betas = jnp.asarray([1.0 - 0.1**i for i in range(1, self.num_betas + 1)], sd)
        clipped_h = jnp.clip(h, -state.m, state.m)
        m = jnp.maximum(betas * state.m, jnp.abs(h) + c(eps))
        v = betas**2 * state.v + h**2
        r = betas * state.r + clipped_h * state.s
        wealth = c(s_init / self.num_betas) * m + jnp.maximum(r, jnp.zeros_like(r))
        s = wealth / (tree.safe_sqrt(v) + c(eps))
        scale = jnp.sum(s)

        def one(u, p, p0, d_prev, b):
            delta = d_prev - dtypes.cast(b, d_prev.dtype)
            return ((p0 - scale.astype(p0.dtype) * delta) - p).astype(u.dtype)

        out = jax.tree.map(one, updates, x, x0, delta_prev, base_updates)
        return out, MechanicState(base_state, r, m, v, s, x0)

    def links(self, state, step):
        return iter([("base_optimizer", self.base_optimizer, state.base_optimizer_state, step)])
