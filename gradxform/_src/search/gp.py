r"""The Gaussian-process surrogate of Bayesian optimisation, on the unit cube, in float64.

Everything here is a pure JAX function of fixed-size arrays, so that a search compiles a
handful of times (once per buffer capacity), not once per observation.

**Padded buffers.** Observations live in a :class:`Data` buffer of ``capacity`` rows, a power
of two, with a boolean ``mask``. A padded row contributes an identity block to the covariance
(zero covariance with everything, unit variance) and a zero target, so it changes neither the
marginal likelihood nor the posterior: the padded computation equals the unpadded one exactly,
not approximately.

**The model.** Inputs :math:`x \in [0, 1]^d`, targets standardised to mean 0 and variance 1
(:func:`standardize`), and

.. math::

    f \sim \mathcal{GP}(0, k), \qquad
    k(x, x') = \sigma_f^2 \left(1 + \sqrt5\, r + \tfrac53 r^2\right) e^{-\sqrt5\, r},
    \qquad r^2 = \sum_{j=1}^d \frac{(x_j - x'_j)^2}{\ell_j^2},

    y_i = f(x_i) + \varepsilon_i, \qquad \varepsilon_i \sim \mathcal N(0, \sigma_n^2),
    \qquad \sigma_n^2 = \sigma_{\min}^2 + e^{\log\text{noise}}

(Matérn 5/2 with one length scale per dimension). The noise variance has a floor
:math:`\sigma_{\min}^2 = 10^{-10}` (standardised units) and a jitter of :math:`10^{-12}` is
added to the diagonal; should the factorisation still fail (near-duplicate points), the
posterior is factorised again with a jitter of :math:`10^{-6}`. The floor is low on purpose:
with a floor of :math:`10^{-6}` the model of a deterministic objective whose values span a few
hundred units (Branin) cannot resolve differences below about 0.05, and the search stalls at
a simple regret near :math:`10^{-4}`.

**The posterior** at test points :math:`X_*`, with :math:`K = k(X, X) + \sigma_n^2 I = L L^\top`
(Cholesky) and :math:`\alpha = K^{-1} y`:

.. math::

    \mu(X_*) = k(X_*, X)\,\alpha, \qquad
    \sigma^2(X_*) = \sigma_f^2 - \lVert L^{-1} k(X, X_*) \rVert^2 .

**Hyperparameters** :math:`\theta = (\log \ell_{1..d}, \log\sigma_f^2, \log\text{noise})` are
fitted by maximising the log marginal likelihood plus log priors,

.. math::

    \log p(y \mid \theta) = -\tfrac12 y^\top \alpha - \sum_i \log L_{ii} - \tfrac n2 \log 2\pi,

with the dimension-scaled log-normal length-scale prior of Hvarfner, Hellsten & Nardi (2024),
:math:`\ell_j \sim \operatorname{LogNormal}(\sqrt2 + \tfrac12 \log d,\ 3)` (a density of
:math:`\ell_j`, mode :math:`e^{\sqrt2 - 3} \sqrt d`); a log-normal prior
:math:`\log \sigma_f^2 \sim \mathcal N(0, 1)` around the standardised variance; and a wide
:math:`\log\text{noise} \sim \mathcal N(-10, 3^2)`. (That paper's noise prior,
:math:`\mathcal N(-4, 1)`, is made for noisy observations: it holds the noise of a
deterministic objective near :math:`10^{-5}`, with the stall described above; the wide prior
lets deterministic objectives reach the floor and noisy ones learn their noise.)

The maximisation uses gradxform's own :func:`gradxform.rprop`, vmapped over several starting
points (the previous fit, the prior's centre, draws from the prior) and run in one
``lax.fori_loop``; the start with the best final objective wins. Rprop suits this full-batch,
badly scaled problem (Blum & Riedmiller 2013): its step sizes grow geometrically while a
gradient keeps its sign, so the log noise travels from its prior centre to the floor in a few
tens of steps, where Adam with a decaying step needs thousands. The gradient is computed in
closed form (:func:`log_marginal_likelihood_and_grad`), several times faster than
differentiating through the Cholesky factorisation.

References:
  C. E. Rasmussen & C. K. I. Williams, *Gaussian Processes for Machine Learning*, MIT Press
  2006 (Algorithm 2.1: the Cholesky form of the posterior and the marginal likelihood;
  eq. 4.17: Matérn 5/2).
  C. Hvarfner, E. O. Hellsten & L. Nardi, *Vanilla Bayesian Optimization Performs Great in
  High Dimensions*, ICML 2024 (the dimension-scaled log-normal length-scale prior).
  M. Blum & M. Riedmiller, *Optimization of Gaussian Process Hyperparameters using Rprop*,
  ESANN 2013.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.linalg import solve_triangular

from gradxform._src.base import apply_updates
from gradxform._src.optimizers.rprop import rprop

__all__ = [
    "NOISE_FLOOR",
    "Data",
    "Params",
    "Posterior",
    "capacity_for",
    "condition",
    "condition_with_fantasies",
    "cross_covariance",
    "fit",
    "log_marginal_likelihood",
    "log_marginal_likelihood_and_grad",
    "log_prior",
    "make_data",
    "matern52",
    "predict",
    "predict_mean",
    "prior_params",
    "sample_prior_params",
    "squared_differences",
    "standardize",
]

F64 = jnp.float64
NOISE_FLOOR = 1e-10  # noise variance floor, in standardised units
JITTER = 1e-12
FALLBACK_JITTER = 1e-6  # added when a factorisation fails (near-duplicate points)
MIN_CAPACITY = 8
SQRT5 = math.sqrt(5.0)
LOG_2PI = math.log(2.0 * math.pi)

# Box of the unconstrained hyperparameters (keeps a wild start from leaving the sane range).
LOG_LENGTHSCALE_RANGE = (math.log(1e-3), math.log(1e3))
LOG_SIGNAL_RANGE = (math.log(1e-3), math.log(1e3))
LOG_NOISE_RANGE = (-30.0, math.log(10.0))


class Params(NamedTuple):
    """GP hyperparameters, all unconstrained logs (float64)."""

    log_lengthscale: jax.Array | np.ndarray  # [d]
    log_signal: jax.Array | np.ndarray       # [] log of the signal variance sigma_f^2
    log_noise: jax.Array | np.ndarray        # [] log of the noise variance above the floor


class Data(NamedTuple):
    """A padded observation buffer: ``capacity`` rows, of which ``mask`` marks the real ones."""

    x: jax.Array     # [capacity, d] float64, inputs in [0, 1]^d (padding: 0)
    y: jax.Array     # [capacity] float64, standardised targets (padding: 0)
    mask: jax.Array  # [capacity] bool


class Posterior(NamedTuple):
    """The GP conditioned on a :class:`Data` buffer: what prediction needs."""

    params: Params
    data: Data
    chol: jax.Array   # [capacity, capacity] lower Cholesky factor of the padded covariance
    alpha: jax.Array  # [capacity] K^{-1} y


def capacity_for(n: int, minimum: int = MIN_CAPACITY) -> int:
    """The buffer capacity for ``n`` observations: the smallest power of two >= n (and >= 8)."""
    return max(minimum, 1 << max(0, int(n) - 1).bit_length())


def make_data(x: np.ndarray, y: np.ndarray, capacity: int | None = None) -> Data:
    """A padded buffer holding the rows of ``x`` [n, d] and ``y`` [n] (host arrays).

    ``y`` is stored as given: standardise it first (:func:`standardize`) or let the caller do
    it inside a compiled function.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n, d = x.shape
    capacity = capacity_for(n) if capacity is None else capacity
    if capacity < n:
        raise ValueError(f"capacity {capacity} is smaller than the {n} observations")
    xb = np.zeros((capacity, d), np.float64)
    yb = np.zeros((capacity,), np.float64)
    mb = np.zeros((capacity,), bool)
    xb[:n], yb[:n], mb[:n] = x, y, True
    return Data(jnp.asarray(xb, F64), jnp.asarray(yb, F64), jnp.asarray(mb))


def standardize(y: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``((y - mean) / std, mean, std)`` over the masked entries; padding stays 0.

    The standard deviation falls back to 1 when the real entries are (nearly) constant.
    """
    m = mask.astype(y.dtype)
    n = jnp.maximum(jnp.sum(m), 1.0)
    mean = jnp.sum(y * m) / n
    var = jnp.sum(m * (y - mean) ** 2) / n
    std = jnp.where(var > 1e-24, jnp.sqrt(jnp.maximum(var, 1e-24)), 1.0)
    return jnp.where(mask, (y - mean) / std, 0.0), mean, std


def _noise(params: Params) -> jax.Array:
    return NOISE_FLOOR + jnp.exp(params.log_noise)


def matern52(x1: jax.Array, x2: jax.Array, params: Params) -> jax.Array:
    """The Matérn 5/2 ARD covariance matrix ``k(x1, x2)`` [n1, n2], signal variance included."""
    inv_l = jnp.exp(-params.log_lengthscale)
    a, b = x1 * inv_l[None, :], x2 * inv_l[None, :]
    r2 = jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
    # The clamp keeps the derivative of sqrt finite at r = 0, where k'(r) = 0 anyway.
    r = jnp.sqrt(jnp.maximum(r2, 1e-36))
    sr = SQRT5 * r
    return jnp.exp(params.log_signal) * (1.0 + sr + (5.0 / 3.0) * r2) * jnp.exp(-sr)


def _covariance(params: Params, data: Data) -> jax.Array:
    m = data.mask
    k = matern52(data.x, data.x, params)
    k = jnp.where(m[:, None] & m[None, :], k, 0.0)
    diag = jnp.where(m, _noise(params) + JITTER, 1.0)
    return k + jnp.diag(diag)


def condition(params: Params, data: Data) -> Posterior:
    """The posterior given the data: Cholesky factor and ``alpha = K^{-1} y``."""
    k = _covariance(params, data)
    chol = jnp.linalg.cholesky(k)
    # Near-duplicate points can make K numerically singular at the noise floor: factorise
    # again with a larger jitter rather than predict NaN.
    eye = jnp.eye(k.shape[0], dtype=k.dtype)
    chol = lax.cond(jnp.all(jnp.isfinite(chol)), lambda: chol,
                    lambda: jnp.linalg.cholesky(k + FALLBACK_JITTER * eye))
    z = solve_triangular(chol, data.y, lower=True)
    alpha = solve_triangular(chol.T, z, lower=False)
    return Posterior(params, data, chol, alpha)


def condition_with_fantasies(params: Params, x: jax.Array, y: jax.Array, real: jax.Array,
                             rows: jax.Array) -> tuple[Posterior, jax.Array]:
    """The posterior given the ``real`` rows of ``x``, ``y`` and the other ``rows`` as
    fantasies (the *Kriging believer*), and the best value among all of them.

    A fantasy takes the posterior mean given the real rows as its value, which leaves the mean
    unchanged everywhere and only lowers the variance: all fantasies can take it from one
    posterior.
    """
    post = condition(params, Data(x, y, real))
    y = jnp.where(real, y, jnp.where(rows, predict_mean(post, x), 0.0))
    return condition(params, Data(x, y, rows)), jnp.max(jnp.where(rows, y, -jnp.inf))


def cross_covariance(post: Posterior, xq: jax.Array) -> jax.Array:
    """``k(X, xq)`` [capacity, m] between the buffer's rows and ``xq`` [m, d], the rows
    outside the posterior's mask at 0."""
    return jnp.where(post.data.mask[:, None], matern52(post.data.x, xq, post.params), 0.0)


def predict_mean(post: Posterior, xq: jax.Array) -> jax.Array:
    """Posterior mean of f at ``xq`` [m, d] (cheaper than :func:`predict`: no variance)."""
    return cross_covariance(post, xq).T @ post.alpha


def predict(post: Posterior, xq: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Posterior mean and variance of the latent f at ``xq`` [m, d] (variance >= 1e-30)."""
    ks = cross_covariance(post, xq)
    mean = ks.T @ post.alpha
    v = solve_triangular(post.chol, ks, lower=True)
    var = jnp.exp(post.params.log_signal) - jnp.sum(v * v, axis=0)
    return mean, jnp.maximum(var, 1e-30)


def log_marginal_likelihood(params: Params, data: Data) -> jax.Array:
    """``log p(y | X, theta)`` of the real rows (padding contributes exactly 0)."""
    post = condition(params, data)
    n = jnp.sum(data.mask.astype(F64))
    return (-0.5 * jnp.dot(data.y, post.alpha) - jnp.sum(jnp.log(jnp.diag(post.chol)))
            - 0.5 * n * LOG_2PI)


def squared_differences(x: jax.Array) -> jax.Array:
    """``(x_aj - x_bj)^2`` for every pair of rows of ``x`` [n, d]: [n, n, d].

    It does not depend on the hyperparameters, so a fit computes it once, not once per step.
    """
    return (x[:, None, :] - x[None, :, :]) ** 2


def log_marginal_likelihood_and_grad(params: Params, data: Data,
                                     sqdiff: jax.Array | None = None
                                     ) -> tuple[jax.Array, Params]:
    r"""The log marginal likelihood and its gradient, in closed form.

    .. math::

        \frac{\partial \log p(y \mid \theta)}{\partial \theta_j}
        = \tfrac12 \operatorname{tr}\left((\alpha\alpha^\top - K^{-1})
          \frac{\partial K}{\partial \theta_j}\right),
        \qquad
        \frac{\partial k}{\partial \log \ell_j}
        = \tfrac53 \sigma_f^2 (1 + \sqrt5 r) e^{-\sqrt5 r}
          \frac{(x_j - x'_j)^2}{\ell_j^2}

    (Rasmussen & Williams eq. 5.9). One Cholesky factorisation and one inverse from it: several
    times cheaper than differentiating through the factorisation. ``sqdiff`` is
    :func:`squared_differences` of ``data.x``, if the caller has it already.
    """
    m = data.mask
    pair = m[:, None] & m[None, :]
    if sqdiff is None:
        sqdiff = squared_differences(data.x)
    inv_l2 = jnp.exp(-2.0 * params.log_lengthscale)
    cap, dim = data.x.shape
    flat = sqdiff.reshape(cap * cap, dim)
    r2 = (flat @ inv_l2).reshape(cap, cap)
    r = jnp.sqrt(jnp.maximum(r2, 1e-36))
    e = jnp.exp(-SQRT5 * r)
    signal = jnp.exp(params.log_signal)
    kf = jnp.where(pair, signal * (1.0 + SQRT5 * r + (5.0 / 3.0) * r2) * e, 0.0)
    g = jnp.where(pair, signal * (5.0 / 3.0) * (1.0 + SQRT5 * r) * e, 0.0)
    noise = jnp.exp(params.log_noise)
    k = kf + jnp.diag(jnp.where(m, NOISE_FLOOR + noise + JITTER, 1.0))
    chol = jnp.linalg.cholesky(k)
    eye = jnp.eye(cap, dtype=k.dtype)
    chol_inv = solve_triangular(chol, eye, lower=True)
    k_inv = chol_inv.T @ chol_inv
    alpha = k_inv @ data.y
    n = jnp.sum(m.astype(F64))
    value = (-0.5 * jnp.dot(data.y, alpha) - jnp.sum(jnp.log(jnp.diag(chol)))
             - 0.5 * n * LOG_2PI)
    w = alpha[:, None] * alpha[None, :] - k_inv
    grad = Params(
        log_lengthscale=0.5 * ((w * g).reshape(cap * cap) @ flat) * inv_l2,
        log_signal=0.5 * jnp.sum(w * kf),
        log_noise=0.5 * noise * jnp.sum(jnp.where(m, jnp.diagonal(w), 0.0)),
    )
    return value, grad


def _prior_centre(dim: int) -> tuple[float, float, float]:
    return math.sqrt(2.0) + 0.5 * math.log(dim), 0.0, -10.0


_PRIOR_SCALE = (math.sqrt(3.0), 1.0, 3.0)


def log_prior(params: Params) -> jax.Array:
    r"""Log prior density of the hyperparameters (constants dropped).

    The length scales' log-normal density is taken on the length scales themselves, as in
    Hvarfner et al. and BoTorch, so its mode, :math:`\exp(\mu - \sigma^2)` (0.29 in 2-D, 0.50
    in 6-D), is what the maximum a posteriori is drawn to; the signal and noise priors are
    normal densities of their logs.
    """
    dim = params.log_lengthscale.shape[-1]
    (m_l, m_s, m_n), (s_l, s_s, s_n) = _prior_centre(dim), _PRIOR_SCALE
    log_l = params.log_lengthscale
    return (-jnp.sum(log_l + 0.5 * ((log_l - m_l) / s_l) ** 2)
            - 0.5 * ((params.log_signal - m_s) / s_s) ** 2
            - 0.5 * ((params.log_noise - m_n) / s_n) ** 2)


def _prior_mode(dim: int) -> tuple[float, float, float]:
    (m_l, m_s, m_n), s_l = _prior_centre(dim), _PRIOR_SCALE[0]
    return m_l - s_l ** 2, m_s, m_n


def prior_params(dim: int) -> Params:
    """The mode of the prior: a reasonable first guess before any fit."""
    m_l, m_s, m_n = _prior_mode(dim)
    return Params(jnp.full((dim,), m_l, F64), jnp.asarray(m_s, F64), jnp.asarray(m_n, F64))


def sample_prior_params(rng: np.random.Generator, dim: int, n: int,
                        shrink: float = 0.5) -> Params:
    """``n`` draws around the prior's mode (its scales times ``shrink``), stacked."""
    (m_l, m_s, m_n), (s_l, s_s, s_n) = _prior_mode(dim), _PRIOR_SCALE
    return _clip(Params(jnp.asarray(m_l + shrink * s_l * rng.standard_normal((n, dim)), F64),
                        jnp.asarray(m_s + shrink * s_s * rng.standard_normal(n), F64),
                        jnp.asarray(m_n + shrink * s_n * rng.standard_normal(n), F64)))


def _clip(params: Params) -> Params:
    return Params(jnp.clip(params.log_lengthscale, *LOG_LENGTHSCALE_RANGE),
                  jnp.clip(params.log_signal, *LOG_SIGNAL_RANGE),
                  jnp.clip(params.log_noise, *LOG_NOISE_RANGE))


def _objective(params: Params, data: Data) -> jax.Array:
    """The negative log posterior (the quantity the fit minimises)."""
    return -(log_marginal_likelihood(params, data) + log_prior(params))


def _objective_and_grad(params: Params, data: Data,
                        sqdiff: jax.Array) -> tuple[jax.Array, Params]:
    value, grad = log_marginal_likelihood_and_grad(params, data, sqdiff)
    prior, prior_grad = jax.value_and_grad(log_prior)(params)
    return -(value + prior), jax.tree.map(lambda a, b: -(a + b), grad, prior_grad)


def fit(data: Data, starts: Params, *, steps: int | jax.Array = 60,
        learning_rate: float = 0.1, optimizer: Any = None,
        min_log_lengthscale: float | jax.Array | None = None) -> tuple[Params, jax.Array]:
    """Maximise the log marginal likelihood plus log prior from each start; keep the best.

    Args:
      data: the padded observations, targets standardised.
      starts: hyperparameters stacked on a leading axis (one row per start).
      steps: optimizer steps per start: a Python int, or an integer array (then a short
        warm-started fit and a long fit from scratch run the same compiled program).
      learning_rate: the initial step size of the default optimizer, in log units.
      min_log_lengthscale: a lower bound of the log length scales, besides
        :data:`LOG_LENGTHSCALE_RANGE`'s (may be traced).
      optimizer: a gradxform transformation that minimises (default
        ``gradxform.rprop(learning_rate=learning_rate, max_step_size=1.0)``). Being a value,
        it can be passed through ``jax.jit`` as an argument: a new step size is new data, not
        a new program.

    Returns:
      ``(best, log_posteriors)``: the best start's fitted hyperparameters and the final log
      marginal likelihood plus log prior of every start.

    Traceable. Needs float64 (``jax.enable_x64``).
    """
    opt = optimizer if optimizer is not None else rprop(learning_rate=learning_rate,
                                                        max_step_size=1.0)

    sqdiff = squared_differences(data.x)

    def clip(p: Params) -> Params:
        p = _clip(p)
        if min_log_lengthscale is None:
            return p
        return p._replace(log_lengthscale=jnp.maximum(p.log_lengthscale, min_log_lengthscale))

    def run(p0: Params):
        p0 = clip(p0)
        def body(_, carry):
            p, state = carry
            v, g = _objective_and_grad(p, data, sqdiff)
            # A failed factorisation (non-finite objective) leaves the point where it is.
            ok = jnp.isfinite(v) & jnp.all(jnp.stack(
                [jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(g)]))
            g = jax.tree.map(lambda a: jnp.where(ok, a, 0.0), g)
            u, state = opt.update(g, state, p)
            return clip(apply_updates(p, u)), state

        p, _ = lax.fori_loop(0, steps, body, (p0, opt.init(p0)))
        v, _ = _objective_and_grad(p, data, sqdiff)
        return p, jnp.where(jnp.isfinite(v), -v, -jnp.inf)

    ps, values = jax.vmap(run)(starts)
    best = jnp.argmax(values)
    return jax.tree.map(lambda a: a[best], ps), values
