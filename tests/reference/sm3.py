"""SM3-II, from Anil, Gupta, Koren, Singer, *Memory-Efficient Adaptive Optimization*, NeurIPS
2019, with the cover of a k-d tensor by its slices along every dimension (a scalar or a vector
entry covers itself), and an optional moving average of the scaled steps. NumPy, float64, with
explicit loops over coordinates and cover sets."""

import itertools

import numpy as np


class SM3:
    def __init__(self, lr, momentum=0.0, eps=0.0):
        self.lr, self.beta1, self.eps = lr, momentum, eps
        self.mu = self.m = None

    @staticmethod
    def sets_of(idx, ndim):
        """The cover sets containing entry ``idx``: the slice through it along every axis of a
        tensor of rank >= 2, the entry itself for scalars and vectors."""
        if ndim < 2:
            return [("entry", idx)]
        return [(axis, idx[axis]) for axis in range(ndim)]

    @classmethod
    def covers(cls, shape):
        return {r for idx in itertools.product(*[range(n) for n in shape])
                for r in cls.sets_of(idx, len(shape))}

    def step(self, params, grads, t):
        if self.mu is None:
            self.mu = [dict.fromkeys(self.covers(x.shape), 0.0) for x in params]
            self.m = [np.zeros_like(x) for x in params]
        out = []
        for i, (x, g) in enumerate(zip(params, grads)):
            mu_prev, mu_new = self.mu[i], dict.fromkeys(self.mu[i], 0.0)
            scaled = np.zeros_like(g)
            for idx in itertools.product(*[range(n) for n in g.shape]):
                sets = self.sets_of(idx, g.ndim)
                nu = min(mu_prev[r] for r in sets) + g[idx] ** 2           # nu'_t(i)
                scaled[idx] = 0.0 if nu == 0 else g[idx] / np.sqrt(nu + self.eps)
                for r in sets:                                             # mu'_t(r)
                    mu_new[r] = max(mu_new[r], nu)
            self.mu[i] = mu_new
            self.m[i] = self.beta1 * self.m[i] + (1 - self.beta1) * scaled
            out.append(x - self.lr * self.m[i])
        return out
