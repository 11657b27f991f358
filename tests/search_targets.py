"""Small problems shared by the search tests (and the two-process search worker).

* :func:`branin`: the Branin function (Dixon & Szego 1978), minimum 0.397887 at three points;
  written once for NumPy and once for JAX.
* :func:`gp_problem`: 11 noisy observations of a smooth function of 3 inputs, standardised,
  and fixed GP hyperparameters (the GP, qLogEI and acquisition tests).
* :func:`regression`: a stateful objective, a 6-parameter least-squares problem trained with
  Adam built from the configuration by ``search.build``. The state is
  ``(params, optimizer state, steps trained)`` so tests can see how far each member trained.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import gradxform as gx
from gradxform import search
from gradxform._src.search import gp

BRANIN_MIN = 0.397887357729739


def gp_problem(n=11, d=3, seed=0):
    """``(x [n, d], y [n], params)``: points in the unit cube, standardised noisy values of
    ``sin(5 x0) + x1^2 - x2 / 2``, and GP hyperparameters (length scales 0.3, 0.7, 1.4, signal
    1.3, noise 2e-3) for them."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, d))
    y = np.sin(5 * x[:, 0]) + x[:, 1] ** 2 - 0.5 * x[:, 2] + 0.05 * rng.standard_normal(n)
    y = (y - y.mean()) / y.std()
    params = gp.Params(jnp.asarray(np.log([0.3, 0.7, 1.4])), jnp.asarray(np.log(1.3)),
                       jnp.asarray(np.log(2e-3)))
    return x, y, params


def branin(config):
    x, y = float(config["x"]), float(config["y"])
    return ((y - 5.1 / (4 * np.pi ** 2) * x ** 2 + 5 / np.pi * x - 6) ** 2
            + 10 * (1 - 1 / (8 * np.pi)) * np.cos(x) + 10)


def branin_jax(config):
    x, y = config["x"], config["y"]
    return ((y - 5.1 / (4 * jnp.pi ** 2) * x ** 2 + 5 / jnp.pi * x - 6) ** 2
            + 10 * (1 - 1 / (8 * jnp.pi)) * jnp.cos(x) + 10)


BRANIN_SPACE = {"x": search.Float(-5.0, 10.0), "y": search.Float(0.0, 15.0)}

ADAM_SPACE = {"learning_rate": search.Float(1e-3, 0.5, log=True), "b1": search.Float(0.5, 0.95)}

_rng = np.random.default_rng(0)
X = _rng.normal(size=(32, 6)).astype(np.float32)
W = _rng.normal(size=(6,)).astype(np.float32)
Y = (X @ W + 0.1 * _rng.normal(size=(32,))).astype(np.float32)


def mse(params):
    return jnp.mean((jnp.asarray(X) @ params - jnp.asarray(Y)) ** 2)


def regression_init(config, key):
    # A start that depends on the member's key without a random generator, whose compilation
    # under vmap costs seconds.
    phase = (key[-1] % 1000).astype(jnp.float32)
    params = jnp.sin(jnp.arange(6, dtype=jnp.float32) + phase)
    opt = search.build(gx.adam, config)
    return params, opt.init(params), jnp.zeros([], jnp.int32)


def regression_train(state, config, steps):
    params, opt_state, trained = state
    opt = search.build(gx.adam, config)

    def body(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(mse)(p), s, p)
        return (gx.apply_updates(p, u), s), None

    (params, opt_state), _ = jax.lax.scan(body, (params, opt_state), None, length=steps)
    return (params, opt_state, trained + steps), mse(params)


def regression():
    return search.Stateful(regression_init, regression_train)
