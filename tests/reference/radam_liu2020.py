"""Rectified Adam, Liu, Jiang, He, Chen, Liu, Gao & Han, *On the Variance of the Adaptive
Learning Rate and Beyond*, ICLR 2020, Algorithm 2, in NumPy. Shares no code with gradxform.

The box's adaptive learning rate l_t = sqrt((1 - b2^t) / v_t) has no epsilon; here it is
1 / (sqrt(v_t / (1 - b2^t)) + eps), the form of the authors' code.
"""

from __future__ import annotations

import math

import numpy as np


def radam(grad, theta0, alpha, beta1, beta2, eps, steps, threshold=4.0):
    """Algorithm 2; the rectified step is taken when rho_t > threshold (4 in the paper)."""
    theta = theta0.copy()
    m, v, out = np.zeros_like(theta), np.zeros_like(theta), []
    rho_inf = 2 / (1 - beta2) - 1
    for t in range(1, steps + 1):
        g = grad(theta)
        v = beta2 * v + (1 - beta2) * g * g
        m = beta1 * m + (1 - beta1) * g
        m_hat = m / (1 - beta1**t)
        rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
        if rho_t > threshold:
            l_t = 1 / (np.sqrt(v / (1 - beta2**t)) + eps)
            r_t = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                            / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            theta = theta - alpha * r_t * m_hat * l_t
        else:
            theta = theta - alpha * m_hat
        out.append(theta.copy())
    return out
