r"""Batches chosen jointly: Monte-Carlo log expected improvement of ``q`` points (qLogEI).

The Kriging believer (:mod:`bayes`) picks a batch one point at a time; qLogEI scores the
``q`` points together, by the expected improvement of the best of them under the joint
posterior, and moves all of them at once. With :math:`\xi = (f(x_1), \dots, f(x_q))` the
latent values of the batch (the GP conditioned on the observations and on the pending
configurations, these at their posterior mean) and :math:`f^*` the best value so far, the
parallel expected improvement is

.. math::

    \mathrm{qEI}(x_{1..q}) = \mathbb E\left[\max\left(\max_j \xi_j - f^*,\ 0\right)\right],
    \qquad \xi = \mu + L \varepsilon, \quad \varepsilon \sim \mathcal N(0, I_q),

with :math:`\mu` [q] the posterior mean and :math:`L L^\top` the :math:`q \times q` posterior
covariance of the batch. It has no closed form for :math:`q > 1`; it is estimated with
:math:`N` = :data:`SAMPLES` fixed base samples :math:`\varepsilon^{(i)}` (scrambled Sobol
points mapped through the normal quantile, drawn once per proposal, so that the estimate is a
deterministic, differentiable function of the batch). Like EI, the plain estimate underflows
to 0, with a zero gradient, wherever no sample improves; Ament et al. (2023) smooth both
maxima and take the logarithm. Here, per sample :math:`i` and point :math:`j`,

.. math::

    \ell_{ij} = \log \phi^+_{\tau_0}\!\left(\xi^{(i)}_j - f^*\right), \qquad
    \phi^+_\tau(z) = \tau\left(\operatorname{softplus}(z/\tau)
      + \frac{\alpha}{1 + (z/\tau)^2}\right)

(the *fat-tailed* softplus: the Cauchy term makes its lower tail polynomial rather than
exponential, so that the logarithm's gradient stays of order :math:`1/|z|` far from the
incumbent), then the maximum over the batch is a log-sum-exp of the log improvements at
temperature :math:`\tau_{\max}` and the mean over samples a log-mean-exp:

.. math::

    \mathrm{qLogEI}(x_{1..q}) = \log \frac1N \sum_{i=1}^N \exp\left(
      \tau_{\max} \log \sum_{j=1}^q e^{\ell_{ij} / \tau_{\max}}\right).

Since :math:`\log\phi^+` is increasing, :math:`\max_j \ell_{ij}` is the log of the smoothed
improvement of the best point of the batch; smoothing the maximum of the *logs* makes its
error relative (at most a factor :math:`q^{\tau_{\max}}`, 1.4% for :math:`q = 4`) rather than
an absolute :math:`\tau_{\max} \log q` added to improvements that may be far smaller.
:math:`\tau_0` = :data:`TAU_RELU`, :math:`\tau_{\max}` = :data:`TAU_MAX`, :math:`\alpha` =
:data:`FAT` (small temperatures: the smoothing errs by less than the Monte-Carlo noise). For
:math:`q = 1` the estimate tends to log EI (:func:`acquisition.log_expected_improvement`) as
:math:`N \to \infty` and :math:`\tau_0 \to 0`.

**Maximisation** (:func:`maximize_batch`): projected gradient ascent
(:func:`acquisition.ascend`) on all :math:`q \times d` coordinates of several starting
batches at once (the Kriging believer's batch and random subsets of the points its rounds
found), inside the trust region; the batch with the largest qLogEI wins.

References:
  S. Ament, S. Daulton, D. Eriksson, M. Balandat & E. Bakshy, *Unexpected Improvements to
  Expected Improvement for Bayesian Optimization*, NeurIPS 2023 (the parallel, Monte-Carlo
  case: qLogEI and the fat-tailed softplus).
  J. T. Wilson, F. Hutter & M. P. Deisenroth, *Maximizing Acquisition Functions for Bayesian
  Optimization*, NeurIPS 2018 (Monte-Carlo acquisitions with fixed base samples, optimised
  jointly by gradient ascent).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import logsumexp
from scipy.stats import norm, qmc

from gradxform._src.search import acquisition as acq
from gradxform._src.search import gp

__all__ = ["FAT", "SAMPLES", "TAU_MAX", "TAU_RELU", "base_samples", "joint_posterior",
           "log_fatplus", "maximize_batch", "q_log_expected_improvement", "starts"]

#: Monte-Carlo samples per estimate (a power of two: Sobol points are balanced there).
SAMPLES = 128
#: The temperature of the smoothed max(0, .) (standardised units) and of the smoothed
#: maximum over the batch (log units).
TAU_RELU = 1e-6
TAU_MAX = 1e-2
#: The weight of the Cauchy tail of the fat-tailed softplus.
FAT = 0.1
#: Added to the diagonal of the batch's posterior covariance (twice the points: singular),
#: and again with :data:`FALLBACK_JITTER` should the factorisation fail.
JITTER = 1e-10
FALLBACK_JITTER = 1e-6
_LOG_FAT = math.log(FAT)


def log_fatplus(z: jax.Array, tau: float = TAU_RELU) -> jax.Array:
    r"""``log(tau * (softplus(z / tau) + FAT / (1 + (z / tau)^2)))``, finite for finite ``z``."""
    t = z / tau
    # log softplus(t) = log log1p(e^t), which is t to within e^t / 2 below t = -30.
    low = t < -30.0
    log_softplus = jnp.where(low, t, jnp.log(jax.nn.softplus(jnp.where(low, 0.0, t))))
    return jnp.logaddexp(log_softplus, _LOG_FAT - jnp.log1p(t * t)) + math.log(tau)


def base_samples(rng: np.random.Generator, q: int, n: int = SAMPLES) -> np.ndarray:
    """``n`` quasi-random standard normal vectors [n, q]: scrambled Sobol points of the cube
    through the normal quantile, the scrambling seeded from ``rng``."""
    engine = qmc.Sobol(q, scramble=True, rng=np.random.default_rng(rng.integers(2 ** 63)))
    u = engine.random(n)
    return norm.ppf(np.clip(u, 0.5 / n ** 2, 1.0 - 0.5 / n ** 2))


def joint_posterior(post: gp.Posterior, xq: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The posterior mean [q] and the lower Cholesky factor [q, q] of the posterior covariance
    of the latent values at the points ``xq`` [q, d]."""
    ks = gp.cross_covariance(post, xq)
    mean = ks.T @ post.alpha
    v = solve_triangular(post.chol, ks, lower=True)
    cov = gp.matern52(xq, xq, post.params) - v.T @ v
    cov = 0.5 * (cov + cov.T)
    eye = jnp.eye(xq.shape[0], dtype=cov.dtype)
    chol = jnp.linalg.cholesky(cov + JITTER * eye)
    retry = jnp.linalg.cholesky(cov + FALLBACK_JITTER * eye)
    return mean, jnp.where(jnp.all(jnp.isfinite(chol)), chol, retry)


def q_log_expected_improvement(post: gp.Posterior, xq: jax.Array, best: jax.Array,
                               base: jax.Array) -> jax.Array:
    """qLogEI of the batch ``xq`` [q, d] over the incumbent ``best``, estimated with the base
    samples ``base`` [N, q] (:func:`base_samples`)."""
    mean, chol = joint_posterior(post, xq)
    xi = mean[None, :] + base @ chol.T                                    # [N, q]
    log_improvement = log_fatplus(xi - best)
    best_of_batch = TAU_MAX * logsumexp(log_improvement / TAU_MAX, axis=1)  # [N]
    return logsumexp(best_of_batch) - math.log(base.shape[0])


def starts(rng: np.random.Generator, believer: np.ndarray, found: np.ndarray,
           count: int) -> np.ndarray:
    """``count`` starting batches [count, q, d]: the believer's batch [q, d], then random
    subsets of the points ``found`` [m, d] by the believer's rounds (with repeats if
    ``m < q``)."""
    q = believer.shape[0]
    others = [found[rng.choice(len(found), size=q, replace=len(found) < q)]
              for _ in range(count - 1)]
    return np.stack([believer, *others])


def maximize_batch(params: gp.Params, x: jax.Array, y: jax.Array, real: jax.Array,
                   rows: jax.Array, batches: jax.Array, base: jax.Array, lower: jax.Array,
                   upper: jax.Array, free: jax.Array, *, steps: int = 50,
                   learning_rate: float = 0.02) -> tuple[jax.Array, jax.Array]:
    """Maximise qLogEI jointly over the ``q`` points of each starting batch.

    Args:
      params: the GP hyperparameters.
      x, y, real: the padded observations [capacity, d], [capacity] and which rows hold real
        values.
      rows: the rows to condition on: the ``real`` ones and the pending configurations, which
        take their posterior mean given the real rows as value.
      batches: the starting batches [starts, q, d], inside the box.
      base: the base samples [N, q].
      lower, upper: [d] the box every point stays in (the trust region).
      free: [d] bool, the coordinates the ascent may move.
      steps, learning_rate: of the ascent (:func:`acquisition.ascend`).

    Returns:
      ``(batches, values)``: the best batch each start reached [starts, q, d], sorted by
      decreasing qLogEI, and its qLogEI [starts].

    Traceable; ``q`` and the number of starts are shapes. Needs float64.
    """
    post, best = gp.condition_with_fantasies(params, x, y, real, rows)

    def score(b):
        return jax.vmap(lambda xq: q_log_expected_improvement(post, xq, best, base))(b)

    return acq.ascend(score, batches, score(batches), lower, upper, free, steps=steps,
                      learning_rate=learning_rate)
