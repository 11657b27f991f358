"""Test problems for the conformance table.

* ``quadratic``: an ill-conditioned (condition number 20) separable quadratic spread over a
  nested tree; minimum 0 at the origin.
* ``rosenbrock``: Rosenbrock's banana function (Rosenbrock 1960; problem 1 of Moré, Garbow &
  Hillstrom 1981) ``(1 - x)^2 + 100 (y - x^2)^2`` from the standard start ``(-1.2, 1)``;
  minimum 0 at ``(1, 1)``.
* ``gabor``: least squares of the Gabor model ``sin(z) exp(-z^2/32)``, ``z = phi0 + 0.06 phi1
  x``, on the 28 noisy points of the textbook's example (x uniform in [-15, 15], true phi =
  (0, 16.6)), started in the valley of the global minimum at ``(-1, 14)``. A grid search over
  [-10, 10] x [0, 40] puts the global minimum at loss 1.0026 near (-0.16, 17.2); local minima
  have loss >= 3.1.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def quadratic_init(dtype):
    return {"a": jnp.asarray([1.0, -2.0, 0.5], dtype),
            "b": [jnp.asarray([[1.5, -0.5], [0.25, 2.0]], dtype)]}


def quadratic_loss(params):
    a, b = params["a"], params["b"][0]
    ca = jnp.asarray([1.0, 5.0, 20.0], a.dtype)
    cb = jnp.asarray([[2.0, 3.0], [10.0, 1.0]], b.dtype)
    return 0.5 * (jnp.sum(ca * a * a) + jnp.sum(cb * b * b))


def rosenbrock_init(dtype):
    return {"x": jnp.asarray(-1.2, dtype), "y": jnp.asarray(1.0, dtype)}


def rosenbrock_loss(params):
    x, y = params["x"], params["y"]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def gabor_init(dtype):
    return {"phi0": jnp.asarray(-1.0, dtype), "phi1": jnp.asarray(14.0, dtype)}


def gabor_loss(params):
    x, y = _GABOR
    dtype = params["phi0"].dtype
    z = params["phi0"] + jnp.asarray(0.06, dtype) * params["phi1"] * jnp.asarray(x, dtype)
    return jnp.sum((jnp.sin(z) * jnp.exp(-(z * z) / jnp.asarray(32.0, dtype))
                    - jnp.asarray(y, dtype)) ** 2)


TARGETS = {
    "quadratic": (quadratic_init, quadratic_loss),
    "rosenbrock": (rosenbrock_init, rosenbrock_loss),
    "gabor": (gabor_init, gabor_loss),
}


def gabor_data(seed: int = 0, n: int = 28, noise: float = 0.2):
    """The textbook's Gabor-model data: 28 points, x uniform in [-15, 15], phi = (0, 16.6)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-15, 15, size=n)
    y = gabor_model(np.array([0.0, 16.6]), x) + noise * rng.normal(size=n)
    return x, y


def gabor_model(phi, x):
    """The Gabor model of the textbook's section 6.1.2 (NumPy)."""
    z = phi[0] + 0.06 * phi[1] * x
    return np.sin(z) * np.exp(-(z**2) / 32.0)


_GABOR = gabor_data()
