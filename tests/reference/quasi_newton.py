"""NumPy references for L-BFGS, BFGS and SVRG, written from the papers' algorithm boxes.

They share no code with gradxform. Vectors are flat float64 arrays.

* L-BFGS: Nocedal & Wright, *Numerical Optimization* (2006), algorithm 7.4 (the two-loop
  recursion) with H_0 = gamma_k I, gamma_k = s^T y / y^T y (eq. 7.20); the first step uses
  H_0 = min(1, 1/|g_0|) I (the convention gradxform and optax document).
* BFGS: eq. 6.17, with H_0 rescaled by y^T s / y^T y before the first update (eq. 6.20).
* SVRG: Johnson & Zhang (2013), figure 1, options I and II.
"""

from __future__ import annotations

import numpy as np


def lbfgs_two_loop(g, pairs, gamma):
    """Algorithm 7.4: H_k g for the pairs [(s_i, y_i)], oldest first."""
    q = g.copy()
    alphas = []
    for s, y in reversed(pairs):
        rho = 1.0 / (y @ s)
        alpha = rho * (s @ q)
        q = q - alpha * y
        alphas.append(alpha)
    r = gamma * q
    for (s, y), alpha in zip(pairs, reversed(alphas)):
        rho = 1.0 / (y @ s)
        beta = rho * (y @ r)
        r = r + s * (alpha - beta)
    return r


def lbfgs_fixed_step(grad, x0, memory, step, steps):
    """x_{k+1} = x_k - step * H_k g_k with the L-BFGS H_k of the last ``memory`` pairs."""
    x, pairs, out = x0.copy(), [], []
    x_prev = g_prev = None
    for k in range(steps):
        g = grad(x)
        if k == 0:
            gamma = min(1.0, 1.0 / np.linalg.norm(g))
        else:
            s, y = x - x_prev, g - g_prev
            pairs = (pairs + [(s, y)])[-memory:]
            gamma = (s @ y) / (y @ y)
        direction = lbfgs_two_loop(g, pairs, gamma)
        x_prev, g_prev = x, g
        x = x - step * direction
        out.append(x.copy())
    return out


def bfgs_fixed_step(grad, x0, step, steps):
    """x_{k+1} = x_k - step * H_k g_k with the dense BFGS H_k (eqs. 6.17 and 6.20)."""
    n = x0.size
    x, h, out = x0.copy(), np.eye(n), []
    x_prev = g_prev = None
    for k in range(steps):
        g = grad(x)
        if k == 0:
            direction = min(1.0, 1.0 / np.linalg.norm(g)) * g
        else:
            s, y = x - x_prev, g - g_prev
            if k == 1:
                h = (y @ s) / (y @ y) * np.eye(n)
            rho = 1.0 / (y @ s)
            left = np.eye(n) - rho * np.outer(s, y)
            h = left @ h @ left.T + rho * np.outer(s, s)
            direction = h @ g
        x_prev, g_prev = x, g
        x = x - step * direction
        out.append(x.copy())
    return out


def svrg_johnson_zhang(grad_i, n, w0, eta, m, indices, option="I", chosen=None):
    """Figure 1 of Johnson & Zhang (2013).

    ``grad_i(w, i)`` is the gradient of psi_i; ``indices[s][t]`` the example picked at inner
    step t of epoch s; with option II, ``chosen[s]`` the t in {0, ..., m-1} whose w_t becomes
    the next snapshot. Returns the iterates w_t of every inner step (option II: the last one
    of each epoch replaced by the new snapshot, which is where the next epoch starts).
    """
    w_tilde, out = w0.copy(), []
    for s, epoch in enumerate(indices):
        mu = sum(grad_i(w_tilde, i) for i in range(n)) / n
        w = w_tilde.copy()
        iterates = [w.copy()]
        for i in epoch[:m]:
            w = w - eta * (grad_i(w, i) - grad_i(w_tilde, i) + mu)
            iterates.append(w.copy())
            out.append(w.copy())
        if option == "I":
            w_tilde = iterates[m]
        else:
            w_tilde = iterates[chosen[s]]
            out[-1] = w_tilde.copy()
    return out
