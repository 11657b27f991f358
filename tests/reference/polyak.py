"""SGD with Polyak's step size, capped (SPS_max of Loizou, Vaswani, Laradji, Lacoste-Julien,
*Stochastic Polyak Step-size for SGD*, AISTATS 2021, with c = 1/scaling folded as documented)
and its sps+ variant (Garrigos, Gower, Schaipp 2023):
gamma = min((f - f*) / (||g||^2 + eps), gamma_max), x <- x - s gamma g. NumPy, float64."""

import numpy as np


class PolyakSGD:
    def __init__(self, max_lr, scaling, f_min, eps, plus=False):
        self.max_lr, self.s, self.f_min, self.eps, self.plus = max_lr, scaling, f_min, eps, plus

    def step(self, params, grads, t, value):
        gap = value - self.f_min
        if self.plus:
            gap = max(gap, 0.0)
        sq = sum(float(np.sum(g * g)) for g in grads)
        denom = sq + self.eps
        gamma = 0.0 if denom == 0 else gap / denom
        if self.max_lr is not None and denom != 0:
            gamma = min(gamma, self.max_lr)
        return [x - self.s * gamma * g for x, g in zip(params, grads)]
