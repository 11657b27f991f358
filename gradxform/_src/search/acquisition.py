r"""Acquisition functions of Bayesian optimisation and their maximisation over the unit cube.

Conventions: the surrogate models a function to **maximise** (the Bayes tuner feeds it the
negated, standardised losses), :math:`\mu` and :math:`\sigma^2` are the posterior mean and
variance of the latent function (:func:`gradxform._src.search.gp.predict`), and :math:`f^*` is
the best value observed so far.

**Log expected improvement** (the default). With :math:`z = (\mu - f^*)/\sigma`,

.. math::

    \mathrm{EI} = \sigma\, h(z), \qquad h(z) = \varphi(z) + z\,\Phi(z), \qquad
    \log\mathrm{EI} = \log h(z) + \log\sigma .

:math:`h(z)` underflows to 0 in float64 near :math:`z = -38`, where the gradient of EI is
then exactly 0 and a gradient-based maximiser cannot move: the "vanishing gradient" of EI that
Ament et al. (2023) identify. Their log-h evaluates :math:`\log h` directly on three branches,

.. math::

    \log h(z) = \begin{cases}
      \log(\varphi(z) + z\Phi(z)) & z > -1 \\
      -\tfrac{z^2}{2} - c_1 + \operatorname{log1mexp}\left(
        \log(\operatorname{erfcx}(-z/\sqrt2)\,|z|) + c_2\right) & -1/\sqrt\epsilon < z \le -1 \\
      -\tfrac{z^2}{2} - c_1 - 2\log|z| & z \le -1/\sqrt\epsilon
    \end{cases}

with :math:`c_1 = \tfrac12\log 2\pi`, :math:`c_2 = \tfrac12\log\tfrac\pi2`,
:math:`\operatorname{log1mexp}(a) = \log(1 - e^a)` computed stably, :math:`\epsilon` the
machine epsilon, and :math:`\operatorname{erfcx}(x) = e^{x^2}\operatorname{erfc}(x)`. It is
finite, smooth and strictly increasing in :math:`z` for every finite :math:`z`.

**Upper confidence bound** (``"ucb"``): :math:`\mu + \sqrt{\beta}\,\sigma` (Srinivas et al.
2010), :math:`\beta` trading exploration for exploitation.

**Log probability of improvement** (``"logpi"``): :math:`\log\Phi((\mu - f^* - \xi)/\sigma)`
(Kushner 1964) with a margin :math:`\xi` = :data:`PI_MARGIN`, the most exploitative of the
three; with log EI and UCB it makes the portfolio of GP-Hedge.

**GP-Hedge** (Hoffman et al. 2011) chooses among the nominees of a portfolio of acquisitions
(each one's maximiser) at random, acquisition :math:`i` with probability

.. math::

    p_i = \frac{e^{\eta g_i}}{\sum_j e^{\eta g_j}}, \qquad
    g_i \leftarrow g_i + \mu_t(x_i^{t})

where the gain :math:`g_i` sums, over past rounds, the posterior mean (after that round's
observation) at acquisition :math:`i`'s nominee :math:`x_i^t`, whether or not it was the one
evaluated (:func:`hedge_probabilities`).

**Maximisation** (:func:`maximize`): score a set of quasi-random candidates (scrambled Sobol
points and perturbations of the best observations, drawn by the caller), take the best few as
starts, and run gradient ascent on all of them at once with :func:`gradxform.adam` (cosine
decaying step, scaled by the sides of the box the ascent is confined to: the cube, or the
Bayes tuner's trust region), projecting onto the box after every step; only the coordinates
marked ``free`` move (integer and categorical coordinates stay at the values their candidate
had).

References:
  S. Ament, S. Daulton, D. Eriksson, M. Balandat & E. Bakshy, *Unexpected Improvements to
  Expected Improvement for Bayesian Optimization*, NeurIPS 2023 (eq. 9: the log-h function).
  D. R. Jones, M. Schonlau & W. J. Welch, *Efficient Global Optimization of Expensive
  Black-Box Functions*, J. Global Optim. 1998 (expected improvement).
  N. Srinivas, A. Krause, S. Kakade & M. Seeger, *Gaussian Process Optimization in the Bandit
  Setting*, ICML 2010 (GP-UCB).
  M. Hoffman, E. Brochu & N. de Freitas, *Portfolio Allocation for Bayesian Optimization*,
  UAI 2011 (GP-Hedge).
  H. J. Kushner, *A New Method of Locating the Maximum Point of an Arbitrary Multipeak Curve in
  the Presence of Noise*, J. Basic Eng. 1964 (probability of improvement).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import erfcx, log_ndtr, ndtr

from gradxform._src.base import apply_updates
from gradxform._src.optimizers.adam import adam
from gradxform._src.schedules import cosine_decay_schedule
from gradxform._src.search import gp

__all__ = [
    "KINDS",
    "PI_MARGIN",
    "PORTFOLIO",
    "acquisition",
    "acquisition_of",
    "ascend",
    "hedge_probabilities",
    "log_expected_improvement",
    "log_h",
    "log_probability_of_improvement",
    "maximize",
    "upper_confidence_bound",
]

KINDS = ("logei", "ucb", "logpi")
#: The improvement log PI asks for (standardised units): without one, PI's maximiser is a
#: point next to the incumbent, improving on it by next to nothing with probability 1/2.
PI_MARGIN = 0.01
#: The portfolio of GP-Hedge, in the order of its gains.
PORTFOLIO = ("logei", "logpi", "ucb")
_C1 = 0.5 * math.log(2.0 * math.pi)
_C2 = 0.5 * math.log(math.pi / 2.0)
_LOG2 = math.log(2.0)


def _log1mexp(a: jax.Array) -> jax.Array:
    """``log(1 - exp(a))`` for ``a < 0``, accurate on both sides of ``-log 2``."""
    a = jnp.minimum(a, -1e-300)
    near = a > -_LOG2
    return jnp.where(near, jnp.log(-jnp.expm1(jnp.where(near, a, -1.0))),
                     jnp.log1p(-jnp.exp(jnp.where(near, -1.0, a))))


@jax.custom_jvp
def log_h(z: jax.Array) -> jax.Array:
    r"""``log(phi(z) + z Phi(z))``, finite and with a useful gradient for every finite ``z``.

    The three branches of Ament et al. (2023, eq. 9); each branch is evaluated on inputs
    clamped to its own domain. The derivative is given in closed form: :math:`h'(z) = \Phi(z)`,
    so :math:`(\log h)'(z) = \exp(\log\Phi(z) - \log h(z))`, finite everywhere (it tends
    to :math:`-z` in the lower tail), without differentiating through the three branches.
    """
    eps = jnp.finfo(z.dtype).eps
    tail = -1.0 / math.sqrt(float(eps))
    z_up = jnp.maximum(z, -1.0)
    up = jnp.log(jnp.exp(-0.5 * z_up ** 2 - _C1) + z_up * ndtr(z_up))
    z_mid = jnp.clip(z, tail, -1.0)
    mid = (-0.5 * z_mid ** 2 - _C1
           + _log1mexp(jnp.log(erfcx(-z_mid / math.sqrt(2.0)) * -z_mid) + _C2))
    z_tail = jnp.minimum(z, tail)
    low = -0.5 * z_tail ** 2 - _C1 - 2.0 * jnp.log(-z_tail)
    return jnp.where(z > -1.0, up, jnp.where(z > tail, mid, low))


@log_h.defjvp
def _log_h_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    value = log_h(z)
    return value, jnp.exp(log_ndtr(z) - value) * dz


def log_expected_improvement(mean: jax.Array, var: jax.Array, best: jax.Array) -> jax.Array:
    """``log EI`` of a maximisation at posterior ``mean``, ``var`` over the incumbent ``best``."""
    sigma = jnp.sqrt(var)
    return log_h((mean - best) / sigma) + jnp.log(sigma)


def upper_confidence_bound(mean: jax.Array, var: jax.Array, beta: jax.Array) -> jax.Array:
    """``mean + sqrt(beta * var)``."""
    return mean + jnp.sqrt(beta * var)


def log_probability_of_improvement(mean: jax.Array, var: jax.Array, best: jax.Array,
                                   margin: float = 0.0) -> jax.Array:
    """``log PI = log Phi((mean - best - margin) / sigma)`` of a maximisation over the
    incumbent ``best``: the probability of improving on it by at least ``margin``."""
    return log_ndtr((mean - best - margin) / jnp.sqrt(var))


def hedge_probabilities(gains: np.ndarray, eta: float) -> np.ndarray:
    """GP-Hedge's probabilities of choosing each acquisition: the softmax of ``eta * gains``."""
    a = eta * np.asarray(gains, np.float64)
    w = np.exp(a - np.max(a))
    return w / np.sum(w)


def acquisition(post: gp.Posterior, x: jax.Array, best: jax.Array, *, kind: str = "logei",
                beta: jax.Array | float = 2.0) -> jax.Array:
    """The acquisition value at each row of ``x`` [m, d] under the posterior ``post``."""
    mean, var = gp.predict(post, x)
    return acquisition_of(kind, mean, var, best, beta)


def acquisition_of(kind: str, mean: jax.Array, var: jax.Array, best: jax.Array,
                   beta: jax.Array | float = 2.0) -> jax.Array:
    """The acquisition ``kind`` given the posterior ``mean`` and ``var``."""
    if kind == "logei":
        return log_expected_improvement(mean, var, best)
    if kind == "ucb":
        return upper_confidence_bound(mean, var, jnp.asarray(beta, mean.dtype))
    if kind == "logpi":
        return log_probability_of_improvement(mean, var, best, PI_MARGIN)
    raise ValueError(f"acquisition must be one of {KINDS}, got {kind!r}")


def maximize(post: gp.Posterior, best: jax.Array, candidates: jax.Array, free: jax.Array, *,
             kind: str = "logei", beta: jax.Array | float = 2.0, starts: int = 8,
             steps: int = 50, learning_rate: float = 0.02, lower: jax.Array | None = None,
             upper: jax.Array | None = None,
             score: Callable[[jax.Array], jax.Array] | None = None):
    """Maximise the acquisition: candidate scoring, then multi-start projected gradient ascent.

    Args:
      post: the GP posterior (:func:`gp.condition`).
      best: the incumbent value (for log EI).
      candidates: [m, d] points in the cube, or a tuple of such pools (a global one and a
        local one): the best of each pool, an equal share of ``starts`` per pool, start the
        ascent, so that a crowded region cannot take every start.
      free: [d] bool, the coordinates the ascent may move.
      kind: ``"logei"``, ``"ucb"`` or ``"logpi"``.
      beta: the UCB exploration weight.
      starts: number of ascent starts (<= m).
      steps: Adam steps per start (the step decays by cosine to 1% of ``learning_rate``).
      learning_rate: the initial Adam step, as a fraction of each side of the box a start
        ascends in (of the unit cube by default).
      lower, upper: [pools, d] the box each pool's starts ascend in (the candidates of a pool
        should lie in its box); default the unit cube.
      score: a differentiable function of points [m, d] to maximise in place of the
        acquisition ``kind`` (a Thompson sample, :mod:`thompson`).

    Returns:
      ``(x, value, mean)``: the best point found by each start [starts, d], sorted by decreasing
      acquisition value, its value [starts] and its posterior mean [starts].
    """
    def by_kind(x):
        return acquisition(post, x, best, kind=kind, beta=beta)

    score = by_kind if score is None else score

    pools = candidates if isinstance(candidates, (tuple, list)) else (candidates,)
    x0_parts: list[jax.Array] = []
    top_parts: list[jax.Array] = []
    lo_parts: list[jax.Array] = []
    hi_parts: list[jax.Array] = []
    for i, pool in enumerate(pools):
        share = starts // len(pools) + (i < starts % len(pools))
        lo = jnp.zeros(pool.shape[-1], pool.dtype) if lower is None else lower[i]
        hi = jnp.ones(pool.shape[-1], pool.dtype) if upper is None else upper[i]
        lo_parts.append(jnp.broadcast_to(lo, (share, pool.shape[-1])))
        hi_parts.append(jnp.broadcast_to(hi, (share, pool.shape[-1])))
        values = score(pool)
        values = jnp.where(jnp.isfinite(values), values, -jnp.inf)
        v, top = lax.top_k(values, share)
        x0_parts.append(pool[top])
        top_parts.append(v)
    x0, top_values = jnp.concatenate(x0_parts), jnp.concatenate(top_parts)
    box_lo, box_hi = jnp.concatenate(lo_parts), jnp.concatenate(hi_parts)
    best_x, best_v = ascend(score, x0, top_values, box_lo, box_hi, free, steps=steps,
                            learning_rate=learning_rate)
    mean, _ = gp.predict(post, best_x)
    return best_x, best_v, mean


def ascend(score: Callable[[jax.Array], jax.Array], x0: jax.Array, values: jax.Array,
           lower: jax.Array, upper: jax.Array, free: jax.Array, *, steps: int = 50,
           learning_rate: float = 0.02) -> tuple[jax.Array, jax.Array]:
    """Projected gradient ascent of ``score`` from each start, independently.

    Args:
      score: a differentiable function of the starts [m, ...] to their values [m].
      x0: the starts [m, ...]; ``values`` [m] their scores.
      lower, upper: the box each start ascends in (broadcast against ``x0``).
      free: the coordinates the ascent may move (broadcast against ``x0``).
      steps, learning_rate: Adam steps, and the initial step as a fraction of each side of
        the box (decaying by cosine to 1% of it).

    Returns:
      ``(x, value)``: the best point each start visited [m, ...], sorted by decreasing value,
      and its value [m].
    """
    free_f = jnp.broadcast_to(free, x0.shape[1:]).astype(x0.dtype)[None]
    box_lo, box_hi = jnp.broadcast_to(lower, x0.shape), jnp.broadcast_to(upper, x0.shape)
    extra = (1,) * (x0.ndim - 1)
    opt = adam(learning_rate=cosine_decay_schedule(init_value=learning_rate,
                                                   decay_steps=steps, alpha=0.01))

    def loss(x):
        v = score(x)
        return -jnp.sum(jnp.where(jnp.isfinite(v), v, 0.0)), v

    def keep(x, v, best_x, best_v):
        improved = jnp.isfinite(v) & (v > best_v)
        return (jnp.where(improved.reshape(-1, *extra), x, best_x),
                jnp.where(improved, v, best_v))

    def body(carry, _):
        x, state, best_x, best_v = carry
        (_, v), g = jax.value_and_grad(loss, has_aux=True)(x)
        best_x, best_v = keep(x, v, best_x, best_v)
        g = jnp.where(jnp.isfinite(g), g, 0.0) * free_f
        u, state = opt.update(g, state, x)
        # Steps in units of the box: a step of 2% of the cube would cross a small trust
        # region from face to face.
        u = jax.tree.map(lambda a: a * (box_hi - box_lo), u)
        return (jnp.clip(apply_updates(x, u), box_lo, box_hi), state, best_x, best_v), None

    carry = (x0, opt.init(x0), x0, values)
    (x, _, best_x, best_v), _ = lax.scan(body, carry, None, length=steps)
    best_x, best_v = keep(x, score(x), best_x, best_v)
    order = jnp.argsort(-best_v)
    return best_x[order], best_v[order]
