"""Fromage, from Bernstein, Vahdat, Yue, Liu, *On the distance between two neural networks and
the stability of learning*, NeurIPS 2020 (Algorithm 1):
W <- (W - eta ||W|| / ||g|| g) / sqrt(1 + eta^2) per layer. NumPy, float64."""

import numpy as np


class Fromage:
    def __init__(self, lr):
        self.lr = lr

    def step(self, params, grads, t):
        out = []
        for w, g in zip(params, grads):
            w_norm, g_norm = np.linalg.norm(w.ravel()), np.linalg.norm(g.ravel())
            ratio = w_norm / g_norm if w_norm > 0 and g_norm > 0 else 1.0
            out.append((w - self.lr * ratio * g) / np.sqrt(1 + self.lr ** 2))
        return out
