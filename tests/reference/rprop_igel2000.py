"""Rprop without weight-backtracking (Rprop-) and iRprop-, as written by Igel & Hüsken,
*Improving the Rprop Learning Algorithm*, NC 2000 (after Riedmiller & Braun, ICNN 1993), in
NumPy. Shares no code with gradxform."""

from __future__ import annotations

import numpy as np


def rprop(grad, w0, delta0, eta_minus, eta_plus, delta_min, delta_max, steps, improved=True):
    """For each weight:  if g_{t-1} g_t > 0: delta = min(delta eta+, delta_max);
    elif g_{t-1} g_t < 0: delta = max(delta eta-, delta_min) and, in iRprop- (``improved``),
    g_t = 0;  w -= sign(g_t) delta;  g_{t-1} <- g_t.  Starts from g_0 = 0, delta = delta0."""
    w = w0.copy()
    delta, g_prev, out = np.full_like(w, delta0), np.zeros_like(w), []
    for _ in range(steps):
        g = grad(w)
        for i in range(w.size):
            if g_prev[i] * g[i] > 0:
                delta[i] = min(delta[i] * eta_plus, delta_max)
            elif g_prev[i] * g[i] < 0:
                delta[i] = max(delta[i] * eta_minus, delta_min)
                if improved:
                    g[i] = 0.0
            w[i] = w[i] - np.sign(g[i]) * delta[i]
        g_prev = g
        out.append(w.copy())
    return out
