r"""SWATS: start with Adam, switch to SGD with momentum once Adam's step size is learned."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import DType, Hyper

__all__ = ["scale_by_swats", "SwatsState"]


class SwatsState(NamedTuple):
    """State of :class:`scale_by_swats`.

    Attributes:
      mu: Adam's first moment :math:`m`; after the switch, SGD's momentum :math:`v`.
      nu: Adam's second moment :math:`a` (frozen after the switch).
      rate_average: :math:`\\lambda`, the moving average of the projected rates.
      sgd_rate: :math:`\\Lambda`, the SGD learning rate (0 before the switch).
      switched: whether the switch to SGD has happened.
    """

    mu: Any
    nu: Any
    rate_average: jax.Array
    sgd_rate: jax.Array
    switched: jax.Array


@docs.args
class scale_by_swats(GradientTransformation):
    r"""SWATS (Keskar & Socher 2017): Adam, then SGD at the rate Adam's steps imply.

    Algorithm 1 of the paper, with :math:`g_k` the gradient and :math:`k` the 1-based step.
    Adam phase:

    .. math::
        m_k &= \beta_1 m_{k-1} + (1-\beta_1) g_k, \qquad
        a_k = \beta_2 a_{k-1} + (1-\beta_2) g_k^2, \\
        p_k &= -\alpha_k\,\frac{\sqrt{1-\beta_2^k}}{1-\beta_1^k}\,
              \frac{m_k}{\sqrt{a_k} + \epsilon}, \qquad u_k = p_k, \\
        \gamma_k &= \frac{p_k^\top p_k}{-p_k^\top g_k}, \qquad
        \lambda_k = \beta_2 \lambda_{k-1} + (1-\beta_2)\gamma_k
        \quad (\text{both only if } p_k^\top g_k \ne 0)

    :math:`\gamma_k` is the SGD rate whose step, projected on Adam's, equals Adam's. If
    :math:`k > 1` and :math:`|\lambda_k/(1-\beta_2^k) - \gamma_k| < \epsilon_{switch}`, the
    phase becomes SGD with :math:`\Lambda = \lambda_k/(1-\beta_2^k)` and :math:`v_k = 0`; from
    the next step on

    .. math:: v_k = \beta_1 v_{k-1} + g_k, \qquad u_k = -(1-\beta_1)\,\Lambda\, v_k .

    The returned updates are the step itself (the learning rate and the sign are included:
    the switch compares rates in absolute units, so the rate cannot be a separate link).
    The switch is jit-safe (a flag in the state selects the phase; the state keeps one
    structure).
    After the switch, Adam's first-moment buffer holds SGD's momentum and ``learning_rate``
    (and its schedule) no longer applies, as in the paper: :math:`\Lambda` is fixed.

    Conventions. The inner products run over all leaves together (one switch for the whole
    model, as Algorithm 1 is written). ``eps`` is added to :math:`\sqrt{a_k}` before the bias
    correction of the step, as in the paper's line 12 (Kingma & Ba's "efficient" form), not to
    :math:`\sqrt{\hat a_k}` as in :func:`gradxform.adam`. Complex leaves use the real inner
    product :math:`\mathrm{Re}\, p^H g`.

    Args:
      <<learning_rate>>
      b1: :math:`\beta_1` in [0, 1): Adam's first-moment decay and SGD's momentum.
      b2: :math:`\beta_2` in [0, 1): Adam's second-moment decay and the decay of
        :math:`\lambda`.
      eps: Adam's :math:`\epsilon` > 0 (paper: 1e-9).
      eps_switch: :math:`\epsilon_{switch}` > 0, the tolerance of the switching test (paper:
        the same :math:`\epsilon` = 1e-9).
      <<mu_dtype>>
      <<nu_dtype>>

    References:
      Keskar & Socher, *Improving Generalization Performance by Switching from Adam to SGD*,
      arXiv 1712.07628, 2017 (Algorithm 1).
    """

    learning_rate: Hyper = hyper(interval="[0, inf)")
    b1: Hyper = hyper(default=0.9, interval="[0, 1)", decays_in="mu_dtype")
    b2: Hyper = hyper(default=0.999, interval="[0, 1)", decays_in="nu_dtype")
    eps: Hyper = hyper(default=1e-9, interval="(0, inf)")
    eps_switch: Hyper = hyper(default=1e-9, interval="(0, inf)")
    mu_dtype: DType = static(default=None)
    nu_dtype: DType = static(default=None)
    uses_count = True
    flat_support = "elementwise"  # dot products over the whole tree

    def init_state(self, params):
        sd = tree.real_accumulator_dtype(params)
        nu = jax.tree.map(
            lambda p: jnp.zeros(jnp.shape(p), dtypes.real_dtype(
                dtypes.accumulator_dtype(dtypes.leaf_dtype(p), self.nu_dtype))), params)
        return SwatsState(tree.zeros_like(params, self.mu_dtype), nu, jnp.zeros([], sd),
                          jnp.zeros([], sd), jnp.zeros([], jnp.bool_))  # distinct (donation)

    def apply(self, updates, state, params, step):
        lr, b1, b2 = (step.value(v) for v in (self.learning_rate, self.b1, self.b2))
        eps, eps_switch = step.value(self.eps), step.value(self.eps_switch)
        sd = state.sgd_rate.dtype
        k = step.number.astype(sd)
        debias2 = 1 - tree.scalar(b2, sd) ** k
        keep1, fresh1 = tree.complement(b1)

        def adam_phase(state):
            mu = tree.update_moment(updates, state.mu, b1, 1)
            nu = tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
            size = (tree.scalar(lr, sd) * jnp.sqrt(debias2)
                    / (1 - tree.scalar(b1, sd) ** k))

            def one(m, a):
                work = dtypes.real_dtype(m.dtype)
                denom = jnp.sqrt(a) + dtypes.safe_eps(eps, work)
                return -size.astype(m.dtype) * (m / denom.astype(m.dtype))

            p = jax.tree.map(one, mu, nu)
            p_p = _inner(p, p, sd)
            p_g = _inner(p, updates, sd)
            projected = p_g != 0
            gamma = p_p / -jnp.where(projected, p_g, jnp.ones_like(p_g))
            keep2, fresh2 = tree.complement(b2)
            average = jnp.where(projected, tree.scalar(keep2, sd) * state.rate_average
                                + tree.scalar(fresh2, sd) * gamma, state.rate_average)
            estimate = average / debias2
            switch = projected & (step.number > 1) & (
                jnp.abs(estimate - gamma) < tree.scalar(eps_switch, sd))
            mu = jax.tree.map(lambda m: jnp.where(switch, jnp.zeros_like(m), m), mu)
            rate = jnp.where(switch, estimate, state.sgd_rate)
            return tree.cast_like(p, updates), SwatsState(mu, nu, average, rate, switch)

        def sgd_phase(state):
            def one(g, v):
                v = tree.scalar(keep1, v.dtype) * v + dtypes.cast(g, v.dtype)
                rate = (tree.scalar(fresh1, sd) * state.sgd_rate).astype(v.dtype)
                return (-rate * v).astype(g.dtype), v

            u, v = tree.unzip2(updates, jax.tree.map(one, updates, state.mu))
            return u, state._replace(mu=v)

        # Both phases are computed and one is selected (elementwise work only, so this costs
        # little, and it runs eagerly without compiling a conditional at every call).
        u_adam, s_adam = adam_phase(state)
        u_sgd, s_sgd = sgd_phase(state)

        def pick(a, b):
            return jnp.where(state.switched, a, b)

        return jax.tree.map(pick, u_sgd, u_adam), jax.tree.map(pick, s_sgd, s_adam)


def _inner(a: Any, b: Any, dtype: Any) -> jax.Array:
    r"""The real inner product :math:`\mathrm{Re}\sum a^H b` over all leaves, in ``dtype``."""
    total = jnp.zeros([], dtype)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        work = dtypes.wider(x.dtype, y.dtype)
        prod = jnp.conj(x.astype(work)) * y.astype(work)
        total = total + jnp.sum(jnp.real(tree.finite_part(prod))).astype(dtype)
    return total
