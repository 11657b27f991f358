"""Yogi, Zaheer, Reddi, Sachan, Kale & Kumar, *Adaptive Methods for Nonconvex Optimization*,
NeurIPS 2018, Algorithm 2, in NumPy. Shares no code with gradxform."""

from __future__ import annotations

import numpy as np


def yogi(grad, theta0, eta, beta1, beta2, eps, steps, v0=0.0):
    """m_t = b1 m + (1 - b1) g;  v_t = v - (1 - b2) sign(v - g^2) g^2;
    x_{t+1} = x_t - eta m_t / (sqrt(v_t) + eps), from m_0 = 0 and v_0 = ``v0`` (0 in the box).
    """
    x = theta0.copy()
    m, v, out = np.zeros_like(x), np.full_like(x, v0), []
    for _ in range(steps):
        g = grad(x)
        m = beta1 * m + (1 - beta1) * g
        v = v - (1 - beta2) * np.sign(v - g * g) * g * g
        x = x - eta * m / (np.sqrt(v) + eps)
        out.append(x.copy())
    return out
