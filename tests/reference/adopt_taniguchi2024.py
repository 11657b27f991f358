"""ADOPT, Taniguchi, Harada, Minegishi, Oshima, Jeong, Nagahara, Iiyama, Suzuki, Iwasawa &
Matsuo, *ADOPT: Modified Adam Can Converge with Any beta2 with the Optimal Rate*, NeurIPS 2024,
Algorithm 2 (with clipping; Algorithm 1 without), in NumPy. Shares no code with gradxform."""

from __future__ import annotations

import numpy as np


def adopt(grad, theta0, alpha, beta1, beta2, eps, updates, clip=True):
    """v_0 = g_0^2 (a gradient at theta_0; no step), then for t = 1, 2, ...:
    m_t = b1 m + (1 - b1) Clip(g_t / max(sqrt(v_{t-1}), eps), t^(1/4));
    theta_t = theta_{t-1} - alpha m_t;  v_t = b2 v + (1 - b2) g_t^2.

    Returns one iterate per *update* of an optimizer that spends its first update on v_0:
    theta_0, theta_1, ..., theta_{updates-1}.
    """
    theta = theta0.copy()
    g0 = grad(theta)
    v, m, out = g0 * g0, np.zeros_like(theta), [theta.copy()]
    for t in range(1, updates):
        g = grad(theta)
        scaled = g / np.maximum(np.sqrt(v), eps)
        if clip:
            scaled = np.clip(scaled, -t**0.25, t**0.25)
        m = beta1 * m + (1 - beta1) * scaled
        theta = theta - alpha * m
        v = beta2 * v + (1 - beta2) * g * g
        out.append(theta.copy())
    return out
