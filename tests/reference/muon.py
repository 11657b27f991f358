"""Muon's quintic Newton-Schulz orthogonalisation, as in Jordan et al. (2024), "Muon: An
optimizer for hidden layers in neural networks" (the ``zeropower_via_newtonschulz5`` iteration),
in NumPy. Shares no code with gradxform."""

from __future__ import annotations

import numpy as np


def newton_schulz5(g, steps=5, eps=1e-7, coeffs=(3.4445, -4.7750, 2.0315)):
    a, b, c = coeffs
    x = g / (np.linalg.norm(g) + eps)
    tall = g.shape[0] > g.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.conj().T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x
