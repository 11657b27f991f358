"""The normalised-gradient step of Prince, *Understanding Deep Learning* (2023), section 6.4,
equations 6.13 and 6.14: m = dL/dphi, v = (dL/dphi)^2, phi <- phi - alpha m / sqrt(v + eps).
NumPy, float64, on a list of leaves."""

import numpy as np


class NormalizedStep:
    def __init__(self, alpha, eps):
        self.alpha, self.eps = alpha, eps

    def step(self, params, grads, t):
        out = []
        for phi, g in zip(params, grads):
            m = g                      # eq. 6.13
            v = np.abs(g) ** 2         # eq. 6.13 (|g|^2 for complex leaves)
            out.append(phi - self.alpha * m / np.sqrt(v + self.eps))   # eq. 6.14
        return out
