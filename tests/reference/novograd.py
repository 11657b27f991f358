"""NovoGrad, from Ginsburg et al., *Stochastic Gradient Methods with Layer-wise Adaptive Moments
for Training of Deep Networks*, 2019 (Algorithm 1). NumPy, float64, on a list of leaves (each
leaf a layer)."""

import numpy as np


class NovoGrad:
    def __init__(self, lr, beta1, beta2, eps, weight_decay):
        self.lr, self.b1, self.b2, self.eps, self.d = lr, beta1, beta2, eps, weight_decay
        self.m = self.v = None

    def step(self, params, grads, t):
        out = []
        if t == 1:
            self.v = [np.sum(g * g) for g in grads]                                # v_1
            self.m = [g / (np.sqrt(v) + self.eps) + self.d * w                       # m_1
                      for g, v, w in zip(grads, self.v, params)]
        else:
            self.v = [self.b2 * v + (1 - self.b2) * np.sum(g * g)
                      for v, g in zip(self.v, grads)]
            self.m = [self.b1 * m + (g / (np.sqrt(v) + self.eps) + self.d * w)
                      for m, g, v, w in zip(self.m, grads, self.v, params)]
        for w, m in zip(params, self.m):
            out.append(w - self.lr * m)
        return out
