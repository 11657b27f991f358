"""Sharpness-Aware Minimization, from Foret, Kleiner, Mobahi, Neyshabur, *Sharpness-Aware
Minimization for Efficiently Improving Generalization*, ICLR 2021 (Algorithm 1, p = 2), in
NumPy on a flat float64 vector, with plain gradient descent as the base step:

    eps_hat = rho * g / ||g||,  g = grad L(w);   w <- w - lr * grad L(w + eps_hat)

Shares no code with gradxform.
"""

from __future__ import annotations

import numpy as np


def sam_sgd(grad, w0, lr, rho, steps):
    w = np.array(w0, np.float64)
    out = []
    for _ in range(steps):
        g = grad(w)
        eps_hat = rho * g / np.sqrt(np.sum(g * g))
        w = w - lr * grad(w + eps_hat)
        out.append(w.copy())
    return out
