"""AdaMax, Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015, section 7.1,
Algorithm 2, in NumPy. Shares no code with gradxform."""

from __future__ import annotations

import numpy as np


def adamax(grad, theta0, alpha, beta1, beta2, steps):
    """m_t = b1 m + (1 - b1) g;  u_t = max(b2 u, |g|);  theta -= (alpha / (1 - b1^t)) m_t / u_t.
    (No epsilon: the gradients used here are never exactly 0.)"""
    theta = theta0.copy()
    m, u, out = np.zeros_like(theta), np.zeros_like(theta), []
    for t in range(1, steps + 1):
        g = grad(theta)
        m = beta1 * m + (1 - beta1) * g
        u = np.maximum(beta2 * u, np.abs(g))
        theta = theta - (alpha / (1 - beta1**t)) * m / u
        out.append(theta.copy())
    return out
