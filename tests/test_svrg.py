"""SVRG (Johnson & Zhang 2013).

* step by step against a NumPy implementation of the paper's figure 1, options I and II;
* on a strongly convex finite sum, SVRG reaches a lower loss than SGD (the best of a grid of
  constant and decaying learning rates) for the same number of example gradients;
* ``svrg_run`` runs the whole algorithm from a loss of (params, example) and the data;
* missing arguments are named.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradxform as gx
from reference import quasi_newton as ref

N, D, LAM = 8, 3, 0.1
_RNG = np.random.default_rng(5)
A = _RNG.normal(size=(N, D))
B = A @ np.asarray([1.0, -1.0, 0.5]) + 0.1 * _RNG.normal(size=N)


def _np_grad_i(w, i):
    return A[i] * (A[i] @ w - B[i]) + LAM * w


def _loss_i(w, example):
    a, b = example
    return 0.5 * (a @ w - b) ** 2 + 0.5 * LAM * (w @ w)


@pytest.mark.parametrize("option", ["I", "II"])
def test_matches_figure_1(option):
    m, epochs, eta = 5, 4, 0.05
    indices = _RNG.integers(0, N, size=(epochs, m))
    keys = jax.random.split(jax.random.key(3), epochs * m)
    # option II: the documented draw, at the first update of each epoch
    chosen = [int(jax.random.randint(keys[s * m], (), 0, m, jnp.int32)) for s in range(epochs)]
    expected = ref.svrg_johnson_zhang(_np_grad_i, N, np.zeros(D), eta, m, indices, option,
                                      chosen)
    with jax.enable_x64(True):
        data = (jnp.asarray(A), jnp.asarray(B))
        tx = gx.svrg(gx.sgd(eta), snapshot_every=m, option=option)

        @jax.jit
        def step(w, s, idx, key):
            batch = jax.tree.map(lambda x: x[idx[None]], data)
            g = jax.grad(lambda w: jnp.mean(jax.vmap(_loss_i, (None, 0))(w, batch)))(w)
            u, s = tx.update(g, s, w, loss_fn=_loss_i, batch=batch, data=data, key=key)
            return gx.apply_updates(w, u), s

        w = jnp.zeros(D)
        s = tx.init(w)
        for k, (idx, want) in enumerate(zip(indices.ravel(), expected)):
            w, s = step(w, s, jnp.asarray(idx), keys[k])
            np.testing.assert_allclose(w, want, rtol=1e-12, atol=1e-14, err_msg=f"step {k}")


def test_beats_sgd_at_equal_gradient_evaluations():
    """Ridge regression on 64 examples, 40 passes' worth of example gradients each. SVRG
    (m = 2n, one epoch costs n + 2m = 5n gradients) against SGD with the best of five constant
    and five decaying learning rates."""
    rng = np.random.default_rng(0)
    n, d, lam = 64, 8, 0.1
    a = rng.normal(size=(n, d))
    b = a @ rng.normal(size=d) + 0.5 * rng.normal(size=n)
    w_star = np.linalg.solve(a.T @ a / n + lam * np.eye(d), a.T @ b / n)
    budget = 40 * n
    with jax.enable_x64(True):
        data = (jnp.asarray(a), jnp.asarray(b))

        def loss_i(w, example):
            x, y = example
            return 0.5 * (x @ w - y) ** 2 + 0.5 * lam * (w @ w)

        def full(w):
            return jnp.mean(jax.vmap(loss_i, (None, 0))(w, data))

        f_star = float(full(jnp.asarray(w_star)))
        l_max = float(np.max(np.sum(a * a, axis=1)) + lam)
        m = 2 * n
        epochs = budget // (n + 2 * m)
        tx = gx.svrg(gx.sgd(0.25 / l_max), snapshot_every=m)
        run = jax.jit(lambda w, key: gx.svrg_run(tx, loss_i, w, data, key=key,
                                                  num_epochs=epochs))(jnp.zeros(d),
                                                                      jax.random.key(0))
        svrg_gap = float(full(run.params)) - f_star

        @jax.jit
        def sgd(lr, decay, key):
            def body(w, inputs):
                k, t = inputs
                i = jax.random.randint(k, [], 0, n)
                g = jax.grad(loss_i)(w, (data[0][i], data[1][i]))
                return w - lr / (1 + decay * t / n) * g, None

            steps = (jax.random.split(key, budget), jnp.arange(budget, dtype=jnp.float64))
            return full(jax.lax.scan(body, jnp.zeros(d), steps)[0])

        grid = [(c / l_max, decay) for c in (0.03, 0.1, 0.3, 1.0, 3.0) for decay in (0.0, 1.0)]
        sgd_gaps = [float(sgd(lr, decay, jax.random.key(1))) - f_star for lr, decay in grid]
        best_sgd = min(g for g in sgd_gaps if np.isfinite(g))
        start = float(full(jnp.zeros(d)))
    assert svrg_gap < 1e-6, svrg_gap
    assert svrg_gap < 1e-2 * best_sgd, (svrg_gap, best_sgd)
    losses = np.asarray(run.snapshot_losses)
    assert losses.shape == (epochs,) and np.all(np.diff(losses) < 0)
    np.testing.assert_allclose(losses[0], start, rtol=1e-12)


def test_svrg_run_with_a_pytree_model_and_option_ii():
    with jax.enable_x64(True):
        data = {"x": jnp.asarray(A), "y": jnp.asarray(B)}

        def loss_i(params, example):
            pred = example["x"] @ params["w"] + params["b"]
            return 0.5 * (pred - example["y"]) ** 2

        params = {"w": jnp.zeros(D), "b": jnp.zeros([])}
        tx = gx.svrg(gx.sgd(0.15), snapshot_every=2 * N, option="II")
        run = gx.svrg_run(tx, loss_i, params, data, key=jax.random.key(0), num_epochs=8,
                          batch_size=2)
        losses = np.asarray(run.snapshot_losses)
    design = np.concatenate([A, np.ones((N, 1))], axis=1)
    residual = design @ np.linalg.lstsq(design, B, rcond=None)[0] - B
    f_star = 0.5 * np.mean(residual**2)
    assert jax.tree.structure(run.params) == jax.tree.structure(params)
    assert losses[-1] - f_star < 1e-3 * (losses[0] - f_star), (losses, f_star)


def test_missing_arguments_are_named():
    tx = gx.svrg(gx.sgd(0.1), snapshot_every=4, option="II")
    w = jnp.zeros(D)
    state = tx.init(w)
    data = (jnp.asarray(A, jnp.float32), jnp.asarray(B, jnp.float32))
    with pytest.raises(ValueError, match="^svrg: loss_fn is required"):
        tx.update(w, state, w, batch=data, data=data)
    with pytest.raises(ValueError, match="^svrg: data is required"):
        tx.update(w, state, w, loss_fn=_loss_i, batch=data)
    with pytest.raises(ValueError, match="^svrg: key is required with option='II'"):
        tx.update(w, state, w, loss_fn=_loss_i, batch=data, data=data)
    with pytest.raises(ValueError, match="^svrg: snapshot_every must be a whole number >= 1"):
        gx.svrg(gx.sgd(0.1), snapshot_every=0)
    with pytest.raises(ValueError, match="^svrg: option must be 'I' or 'II'"):
        gx.svrg(gx.sgd(0.1), option="III")
    with pytest.raises(ValueError, match="^svrg_run: num_epochs must be a whole number >= 1"):
        gx.svrg_run(gx.svrg(gx.sgd(0.1)), _loss_i, w, data, key=jax.random.key(0),
                    num_epochs=0)
