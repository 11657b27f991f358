"""SGD with annealed Gaussian gradient noise, from Neelakantan et al., *Adding Gradient Noise
Improves Learning for Very Deep Networks*, 2015 (eq. 1): g_t <- g_t + N(0, sigma_t^2),
sigma_t^2 = eta / (1 + t)^gamma (t from 0). The standard normal draws xi are given. NumPy."""

import numpy as np


class NoisySGD:
    def __init__(self, lr, eta, gamma):
        self.lr, self.eta, self.gamma = lr, eta, gamma

    def step(self, params, grads, t, noise):
        sigma = np.sqrt(self.eta / (1 + (t - 1)) ** self.gamma)   # t is 1-based here
        return [x - self.lr * (g + sigma * xi) for x, g, xi in zip(params, grads, noise)]
