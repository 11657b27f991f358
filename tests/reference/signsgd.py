"""signSGD and Signum, from Bernstein et al., *signSGD: Compressed Optimisation for Non-Convex
Problems*, ICML 2018 (Algorithm 1, signSGD; Algorithm 3, Signum). NumPy, float64, on a list of
leaves."""

import numpy as np


class SignSGD:
    def __init__(self, lr):
        self.lr = lr

    def step(self, params, grads, t):
        # x_{k+1} = x_k - delta sign(g_k)
        return [x - self.lr * np.sign(g) for x, g in zip(params, grads)]


class Signum:
    def __init__(self, lr, beta):
        self.lr, self.beta, self.m = lr, beta, None

    def step(self, params, grads, t):
        if self.m is None:
            self.m = [np.zeros_like(x) for x in params]
        # m_k = beta m_{k-1} + (1 - beta) g_k; x_{k+1} = x_k - delta sign(m_k)
        self.m = [self.beta * m + (1 - self.beta) * g for m, g in zip(self.m, grads)]
        return [x - self.lr * np.sign(m) for x, m in zip(params, self.m)]
