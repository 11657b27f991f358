"""LARS, from You, Gitman, Ginsburg, *Large Batch Training of Convolutional Networks*, 2017
(Algorithm 1 and eq. 6). NumPy, float64, on a list of leaves (each leaf a layer).

``denominator="paper"``: local lr = eta ||w|| / (||g|| + beta ||w||) (eq. 6);
``denominator="sum"``: eta ||w|| / ||g + beta w|| (the form optax uses).
A layer whose norm (or denominator) is zero gets the ratio ``at_zero``.
"""

import numpy as np


class LARS:
    def __init__(self, lr, momentum, eta, beta, denominator="paper", at_zero=1.0):
        self.lr, self.m, self.eta, self.beta = lr, momentum, eta, beta
        self.denominator, self.at_zero = denominator, at_zero
        self.v = None

    def step(self, params, grads, t):
        if self.v is None:
            self.v = [np.zeros_like(w) for w in params]
        out, new_v = [], []
        for w, g, v in zip(params, grads, self.v):
            w_norm = np.linalg.norm(w.ravel())
            if self.denominator == "paper":
                denom = np.linalg.norm(g.ravel()) + self.beta * w_norm
            else:
                denom = np.linalg.norm((g + self.beta * w).ravel())
            local = self.at_zero if w_norm == 0 or denom == 0 else self.eta * w_norm / denom
            v = self.m * v + self.lr * local * (g + self.beta * w)
            new_v.append(v)
            out.append(w - v)
        self.v = new_v
        return out
