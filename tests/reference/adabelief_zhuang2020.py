"""AdaBelief, Zhuang, Tang, Ding, Tatikonda, Dvornek, Papademetris & Duncan, *AdaBelief
Optimizer: Adapting Stepsizes by the Belief in Observed Gradients*, NeurIPS 2020, Algorithm 2,
in NumPy. Shares no code with gradxform."""

from __future__ import annotations

import numpy as np


def adabelief(grad, theta0, alpha, beta1, beta2, eps, steps):
    """m_t = b1 m + (1 - b1) g;  s_t = b2 s + (1 - b2)(g - m_t)^2 + eps;
    theta -= alpha (m_t / (1 - b1^t)) / (sqrt(s_t / (1 - b2^t)) + eps)."""
    theta = theta0.copy()
    m, s, out = np.zeros_like(theta), np.zeros_like(theta), []
    for t in range(1, steps + 1):
        g = grad(theta)
        m = beta1 * m + (1 - beta1) * g
        s = beta2 * s + (1 - beta2) * (g - m) ** 2 + eps
        m_hat = m / (1 - beta1**t)
        s_hat = s / (1 - beta2**t)
        theta = theta - alpha * m_hat / (np.sqrt(s_hat) + eps)
        out.append(theta.copy())
    return out
