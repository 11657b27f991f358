r"""Thompson sampling from the GP posterior: pathwise samples that can be evaluated anywhere.

Thompson sampling proposes the maximiser of one function drawn from the posterior. Drawing
that function jointly on :math:`m` candidate points needs the Cholesky factor of their
:math:`m \times m` posterior covariance, :math:`O(m^3)`; this module draws it instead as a
*function* (the decoupled, pathwise sampling of Wilson et al. 2020): a prior sample built from
random Fourier features, corrected towards the data by Matheron's rule,

.. math::

    f^{\mathrm{prior}}(x) = \sigma_f \sqrt{2/F}\, \sum_{i=1}^{F} w_i \cos(\omega_i^\top x + b_i),
    \qquad
    f^{\mathrm{post}}(x) = f^{\mathrm{prior}}(x)
      + k(x, X)\, K^{-1} \left(y - f^{\mathrm{prior}}(X) - \varepsilon\right),

with :math:`w_i \sim \mathcal N(0, 1)`, :math:`b_i \sim U[0, 2\pi)`,
:math:`\varepsilon \sim \mathcal N(0, \sigma_n^2 I)`, :math:`K = k(X, X) + \sigma_n^2 I` and
the frequencies :math:`\omega_i` drawn from the spectral density of the Matérn 5/2 kernel, a
multivariate Student-:math:`t` with :math:`2\nu = 5` degrees of freedom scaled by the inverse
length scales (Rahimi & Recht 2007):

.. math::

    \omega_{ij} = \frac{z_{ij}}{\ell_j} \sqrt{\frac{5}{u_i}}, \qquad
    z_{ij} \sim \mathcal N(0, 1), \quad u_i \sim \chi^2_5

(:math:`u_i` the sum of five squared standard normals).

Each sample draws its own features, so over samples the prior part has exactly the kernel's
covariance (it is Gaussian only as :math:`F \to \infty`), and the update turns a prior
sample into a posterior one for any :math:`F`: the samples have the posterior's mean and
covariance. A sample costs :math:`O(F d)` per point, its gradient comes with it, and it reuses
the Cholesky factor the posterior already has. The cosines are computed in float32, twice as
fast as in float64.

References:
  D. Eriksson, M. Pearce, J. R. Gardner, R. Turner & M. Poloczek, *Scalable Global Optimization
  via Local Bayesian Optimization*, NeurIPS 2019 (Thompson sampling in a trust region).
  J. T. Wilson, V. Borovitskiy, A. Terenin, P. Mostowsky & M. P. Deisenroth, *Efficiently
  Sampling Functions from Gaussian Process Posteriors*, ICML 2020 (pathwise updates).
  A. Rahimi & B. Recht, *Random Features for Large-Scale Kernel Machines*, NeurIPS 2007.
  W. R. Thompson, *On the Likelihood that One Unknown Probability Exceeds Another in View of
  the Evidence of Two Samples*, Biometrika 1933.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve

from gradxform._src.search import gp

__all__ = ["FEATURES", "Path", "evaluate", "sample"]

#: Random Fourier features per sample.
FEATURES = 512
_DOF = 5  # 2 nu of the Matern 5/2 kernel


class Path(NamedTuple):
    """One posterior sample as a function: its features and its update weights."""

    omega: jax.Array    # [F, d] frequencies
    phase: jax.Array    # [F] phases b
    weights: jax.Array  # [F] feature weights w, scaled by sigma_f sqrt(2 / F)
    update: jax.Array   # [capacity] K^{-1} (y - f_prior(X) - eps), 0 on padded rows


def _prior(path: Path, x: jax.Array) -> jax.Array:
    # In float32: the cosines are most of a sample's cost; a rounding of 1e-7 relative is far
    # below the sample's own spread.
    f32 = jnp.float32
    phase = x.astype(f32) @ path.omega.astype(f32).T + path.phase.astype(f32)[None, :]
    return (jnp.cos(phase) @ path.weights.astype(f32)).astype(x.dtype)


def sample(key: jax.Array, post: gp.Posterior, features: int = FEATURES) -> Path:
    """A posterior sample of the latent function (:func:`evaluate` evaluates it)."""
    params, data = post.params, post.data
    dtype = data.x.dtype
    dim = data.x.shape[-1]
    k_z, k_u, k_b, k_w, k_e = jax.random.split(key, 5)
    z = jax.random.normal(k_z, (features, dim), dtype)
    # chi^2 with 2 nu = 5 degrees of freedom: a sum of five squared normals.
    u = jnp.sum(jax.random.normal(k_u, (features, _DOF), dtype) ** 2, axis=1, keepdims=True)
    omega = z * jnp.sqrt(_DOF / u) * jnp.exp(-params.log_lengthscale)[None, :]
    phase = jax.random.uniform(k_b, (features,), dtype, 0.0, 2.0 * math.pi)
    scale = jnp.sqrt(2.0 * jnp.exp(params.log_signal) / features)
    weights = scale * jax.random.normal(k_w, (features,), dtype)
    path = Path(omega, phase, weights, jnp.zeros(data.x.shape[0], dtype))
    noise = jnp.sqrt(gp.NOISE_FLOOR + jnp.exp(params.log_noise))
    eps = noise * jax.random.normal(k_e, (data.x.shape[0],), dtype)
    residual = jnp.where(data.mask, data.y - _prior(path, data.x) - eps, 0.0)
    return path._replace(update=cho_solve((post.chol, True), residual))


def evaluate(path: Path, post: gp.Posterior, x: jax.Array) -> jax.Array:
    """The sample's values at the rows of ``x`` [m, d]: [m]."""
    return _prior(path, x) + gp.cross_covariance(post, x).T @ path.update
