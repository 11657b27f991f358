"""ADADELTA, Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, arXiv:1212.5701, 2012,
Algorithm 1, in NumPy. Shares no code with gradxform."""

from __future__ import annotations

import numpy as np


def adadelta(grad, theta0, rho, eps, steps):
    """E[g^2]_t = rho E[g^2] + (1 - rho) g^2;  dx_t = -RMS[dx]_{t-1} / RMS[g]_t g_t;
    E[dx^2]_t = rho E[dx^2] + (1 - rho) dx^2;  x_{t+1} = x_t + dx_t,  RMS[y] = sqrt(E[y^2] + eps).
    """
    x = theta0.copy()
    eg2, edx2, out = np.zeros_like(x), np.zeros_like(x), []
    for _ in range(steps):
        g = grad(x)
        eg2 = rho * eg2 + (1 - rho) * g * g
        dx = -np.sqrt(edx2 + eps) / np.sqrt(eg2 + eps) * g
        edx2 = rho * edx2 + (1 - rho) * dx * dx
        x = x + dx
        out.append(x.copy())
    return out
