"""The DP-SGD mechanism, from Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar, Zhang, *Deep
Learning with Differential Privacy*, CCS 2016 (Algorithm 1, one step), in NumPy float64 with
the Gaussian draws given:

    g_i <- g_i / max(1, ||g_i|| / C);   g~ = (sum_i g_i + N(0, sigma^2 C^2 I)) / B;
    theta <- theta - lr * g~

``per_example`` is a (B, d) array: example i's whole gradient flattened to a row.
"""

from __future__ import annotations

import numpy as np


def dpsgd_step(theta, per_example, lr, clip, sigma, noise):
    norms = np.sqrt(np.sum(per_example**2, axis=1))
    clipped = per_example / np.maximum(1.0, norms / clip)[:, None]
    batch = per_example.shape[0]
    noisy = (clipped.sum(axis=0) + sigma * clip * noise) / batch
    return theta - lr * noisy
