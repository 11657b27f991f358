"""Gaussian-process regression in NumPy/SciPy: Rasmussen & Williams, *Gaussian Processes for
Machine Learning*, 2006, eq. 4.17 (Matérn 5/2) and Algorithm 2.1 (posterior and log marginal
likelihood), the expected improvement of Jones, Schonlau & Welch (1998), and the parallel
expected improvement of a batch by plain Monte Carlo.
Shares no code with gradxform."""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.spatial.distance import cdist
from scipy.stats import norm


def matern52(x1, x2, lengthscales, signal):
    """sigma_f^2 (1 + sqrt5 r + 5 r^2 / 3) exp(-sqrt5 r), r the length-scaled distance."""
    r = cdist(x1 / lengthscales, x2 / lengthscales)
    return signal * (1 + np.sqrt(5) * r + 5 * r ** 2 / 3) * np.exp(-np.sqrt(5) * r)


def posterior(x, y, xq, lengthscales, signal, noise):
    """Predictive mean and latent variance at ``xq`` (Algorithm 2.1)."""
    k = matern52(x, x, lengthscales, signal) + noise * np.eye(len(x))
    factor = cho_factor(k, lower=True)
    ks = matern52(x, xq, lengthscales, signal)
    mean = ks.T @ cho_solve(factor, y)
    var = signal - np.sum(ks * cho_solve(factor, ks), axis=0)
    return mean, var


def expected_improvement(mean, var, best):
    """E[max(f - best, 0)] for f ~ N(mean, var): sigma (phi(z) + z Phi(z))."""
    sigma = np.sqrt(var)
    z = (mean - best) / sigma
    return sigma * (norm.pdf(z) + z * norm.cdf(z))


def joint_posterior(x, y, xq, lengthscales, signal, noise):
    """Predictive mean [q] and latent covariance [q, q] of the points ``xq`` jointly."""
    k = matern52(x, x, lengthscales, signal) + noise * np.eye(len(x))
    factor = cho_factor(k, lower=True)
    ks = matern52(x, xq, lengthscales, signal)
    mean = ks.T @ cho_solve(factor, y)
    cov = matern52(xq, xq, lengthscales, signal) - ks.T @ cho_solve(factor, ks)
    return mean, cov


def parallel_expected_improvement(mean, cov, best, samples, rng):
    """E[max(max_j f_j - best, 0)] for f ~ N(mean, cov), by plain Monte Carlo with ``samples``
    draws: ``(estimate, standard error)``."""
    f = rng.multivariate_normal(mean, cov, size=samples, method="eigh")
    improvement = np.maximum(f.max(axis=1) - best, 0.0)
    return improvement.mean(), improvement.std(ddof=1) / np.sqrt(samples)
