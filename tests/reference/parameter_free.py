"""Learning-rate-free Adam: Prodigy (Mishchenko & Defazio 2023, Adam version of the algorithm)
and D-Adaptation (Defazio & Mishchenko 2023, D-Adapted Adam), in NumPy on a flat float64
vector. Written from the papers' update rules; shares no code with gradxform.

The papers write the sums r and s as averages with a factor (1 - beta3) (Prodigy) or keep it
(D-Adaptation); Prodigy's factor cancels in r / ||s||_1 and is kept here as in the paper.
``bias_correction`` multiplies the step size by sqrt(1 - beta2^k) / (1 - beta1^k), which the
papers' boxes do not have (optax does).
"""

from __future__ import annotations

import numpy as np


def prodigy(grad, x0, lr, beta1, beta2, eps, d0, steps, bias_correction=False):
    """Prodigy, Adam version: the step uses d_k, the eps term d_k eps (the paper's box)."""
    x, d = x0.copy(), d0
    m, v, s = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    r, beta3 = 0.0, np.sqrt(beta2)
    out = []
    for k in range(1, steps + 1):
        g = grad(x)
        gamma = lr * (np.sqrt(1 - beta2**k) / (1 - beta1**k) if bias_correction else 1.0)
        m = beta1 * m + (1 - beta1) * d * g
        v = beta2 * v + (1 - beta2) * d**2 * g**2
        r = beta3 * r + (1 - beta3) * gamma * d**2 * (g @ (x0 - x))
        s = beta3 * s + (1 - beta3) * gamma * d**2 * g
        d_hat = r / np.sum(np.abs(s))
        x = x - gamma * d * m / (np.sqrt(v) + d * eps)
        d = max(d, d_hat)
        out.append(x.copy())
    return out


def dadapt_adam(grad, x0, lr, beta1, beta2, eps, d0, steps, bias_correction=False):
    """D-Adapted Adam. The weighted inner product <g_k, s_k> uses the second moment before this
    step's update (A_k), and the step uses m_{k+1} (which carries d_k gamma_k)."""
    x, d = x0.copy(), d0
    m, v, s = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    r, beta3 = 0.0, np.sqrt(beta2)
    out = []
    for k in range(1, steps + 1):
        g = grad(x)
        gamma = lr * (np.sqrt(1 - beta2**k) / (1 - beta1**k) if bias_correction else 1.0)
        r = beta3 * r + (1 - beta3) * d * gamma * (g @ (s / (np.sqrt(v) + eps)))
        m = beta1 * m + (1 - beta1) * d * gamma * g
        v = beta2 * v + (1 - beta2) * g**2
        s = beta3 * s + (1 - beta3) * d * gamma * g
        x = x - m / (np.sqrt(v) + eps)
        d_hat = r / ((1 - beta3) * np.sum(np.abs(s)))
        d = max(d, d_hat)
        out.append(x.copy())
    return out
