"""Adan, Xie, Zhou, Li, Lin & Yan, *Adan: Adaptive Nesterov Momentum Algorithm for Faster
Optimizing Deep Models*, arXiv:2208.06677 (IEEE TPAMI 2024), Algorithm 1, in NumPy, in the
paper's parameterisation (beta_i weigh the *new* value; the paper's defaults are 0.02, 0.08,
0.01). Shares no code with gradxform.

Algorithm 1 starts from m_0 = g_0, n_0 = g_0^2 (a gradient taken before the first step); the
authors' code instead starts the three averages at 0 and divides them by 1 - (1 - beta_i)^k,
with g_0 - g_{-1} = 0. This reference follows the code's initialisation and the box's
recurrences, including the proximal weight decay of line 7.
"""

from __future__ import annotations

import numpy as np


def adan(grad, theta0, eta, beta1, beta2, beta3, eps, lam, steps):
    """Lines 3-7 of Algorithm 1:
    m_k = (1 - b1) m + b1 g_k;  v_k = (1 - b2) v + b2 (g_k - g_{k-1});
    n_k = (1 - b3) n + b3 [g_k + (1 - b2)(g_k - g_{k-1})]^2;  eta_k = eta / (sqrt(n_k) + eps);
    theta_{k+1} = (theta_k - eta_k (m_k + (1 - b2) v_k)) / (1 + lam eta),
    with the averages bias-corrected as in the authors' code."""
    theta = theta0.copy()
    m, v, n = np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta)
    g_prev, out = None, []
    for k in range(1, steps + 1):
        g = grad(theta)
        diff = np.zeros_like(g) if g_prev is None else g - g_prev
        m = (1 - beta1) * m + beta1 * g
        v = (1 - beta2) * v + beta2 * diff
        n = (1 - beta3) * n + beta3 * (g + (1 - beta2) * diff) ** 2
        m_hat = m / (1 - (1 - beta1) ** k)
        v_hat = v / (1 - (1 - beta2) ** k)
        n_hat = n / (1 - (1 - beta3) ** k)
        eta_k = eta / (np.sqrt(n_hat) + eps)
        theta = (theta - eta_k * (m_hat + (1 - beta2) * v_hat)) / (1 + lam * eta)
        g_prev = g
        out.append(theta.copy())
    return out
