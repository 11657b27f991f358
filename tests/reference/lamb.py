"""LAMB, from You et al., *Large Batch Optimization for Deep Learning: Training BERT in 76
minutes*, ICLR 2020 (Algorithm 2, phi the identity). NumPy, float64, on a list of leaves.

A layer whose norm (or update norm) is zero gets the ratio ``at_zero`` (the formula gives 0 for
a zero param norm; the authors' code and optax use 1)."""

import numpy as np


class LAMB:
    def __init__(self, lr, beta1, beta2, eps, weight_decay, at_zero=1.0):
        self.lr, self.b1, self.b2, self.eps, self.wd = lr, beta1, beta2, eps, weight_decay
        self.at_zero = at_zero
        self.m = self.v = None

    def step(self, params, grads, t):
        if self.m is None:
            self.m = [np.zeros_like(x) for x in params]
            self.v = [np.zeros_like(x) for x in params]
        out = []
        for i, (x, g) in enumerate(zip(params, grads)):
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g * g
            m_hat = self.m[i] / (1 - self.b1 ** t)
            v_hat = self.v[i] / (1 - self.b2 ** t)
            r = m_hat / (np.sqrt(v_hat) + self.eps)
            u = r + self.wd * x
            x_norm, u_norm = np.linalg.norm(x.ravel()), np.linalg.norm(u.ravel())
            ratio = self.at_zero if x_norm == 0 or u_norm == 0 else x_norm / u_norm
            out.append(x - self.lr * ratio * u)
        return out
