"""SWATS, Keskar & Socher (2017), "Improving Generalization Performance by Switching from Adam
to SGD", Algorithm 1, written line by line in NumPy on a flat float64 vector. Shares no code
with gradxform."""

from __future__ import annotations

import numpy as np


def swats(grad, x0, lr, beta1, beta2, eps, eps_switch, steps):
    """Returns (iterates, k_switch, Lambda): the points x_k, the step after which the phase
    became SGD (None if it never did) and the learned SGD rate."""
    x = x0.copy()
    m, a, lam = np.zeros_like(x), np.zeros_like(x), 0.0
    v, sgd_rate, phase, k_switch = None, None, "adam", None
    out = []
    for k in range(1, steps + 1):                                  # line 3: k = k + 1
        g = grad(x)                                                # line 4: stochastic gradient
        if phase == "sgd":                                         # lines 5-8
            v = beta1 * v + g
            x = x - (1 - beta1) * sgd_rate * v
            out.append(x.copy())
            continue
        m = beta1 * m + (1 - beta1) * g                            # line 10
        a = beta2 * a + (1 - beta2) * g * g                        # line 11
        p = -lr * np.sqrt(1 - beta2**k) / (1 - beta1**k) * m / (np.sqrt(a) + eps)  # line 12
        x = x + p                                                  # line 13
        if p @ g != 0:                                             # line 14
            gamma = (p @ p) / (-(p @ g))                           # line 15
            lam = beta2 * lam + (1 - beta2) * gamma                # line 16
            if k > 1 and abs(lam / (1 - beta2**k) - gamma) < eps_switch:  # line 17
                phase = "sgd"                                      # line 18
                v = np.zeros_like(x)                               # line 19
                sgd_rate = lam / (1 - beta2**k)                    # line 20
                k_switch = k
        out.append(x.copy())
    return out, k_switch, sgd_rate
