"""Lion, from Chen et al., *Symbolic Discovery of Optimization Algorithms*, NeurIPS 2023
(Algorithm 2, with decoupled weight decay). NumPy, float64, on a list of leaves."""

import numpy as np


class Lion:
    def __init__(self, lr, beta1, beta2, weight_decay):
        self.lr, self.beta1, self.beta2, self.wd = lr, beta1, beta2, weight_decay
        self.m = None

    def step(self, params, grads, t):
        if self.m is None:
            self.m = [np.zeros_like(x) for x in params]
        out, new_m = [], []
        for theta, g, m in zip(params, grads, self.m):
            c = self.beta1 * m + (1 - self.beta1) * g                     # interpolation
            theta = theta - self.lr * (np.sign(c) + self.wd * theta)      # update
            new_m.append(self.beta2 * m + (1 - self.beta2) * g)           # momentum
            out.append(theta)
        self.m = new_m
        return out
