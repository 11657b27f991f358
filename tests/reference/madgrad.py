"""MADGRAD, from Defazio & Jelassi, *Adaptivity without Compromise: A Momentumized, Adaptive,
Dual Averaged Gradient Method for Stochastic Optimization*, arXiv 2101.11075 (Algorithm 1), in
NumPy float64, with the authors' code's eps added to the learning rate in lambda_k:

    lambda_k = (gamma + eps) sqrt(k + 1);  s += lambda_k g;  v += lambda_k g^2;
    z = x0 - s / (cbrt(v) + eps);  x <- (1 - c) z + c x      (c: the momentum, k from 0)
"""

from __future__ import annotations

import numpy as np


def madgrad(grads, x0, lr, momentum, eps):
    x = np.array(x0, np.float64)
    s, v = np.zeros_like(x), np.zeros_like(x)
    out = []
    for k, g in enumerate(grads):
        lam = (lr + eps) * np.sqrt(k + 1)
        s = s + lam * g
        v = v + lam * g * g
        z = x0 - s / (np.cbrt(v) + eps)
        x = (1 - momentum) * z + momentum * x
        out.append(x.copy())
    return out
