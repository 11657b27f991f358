"""Adafactor, from Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory
Cost*, ICML 2018: Algorithm 4 (matrices: row and column *sums* R, C and V = R C / (1^T R)) and
Algorithm 5 (vectors), with the decay 1 - t^-0.8 (section 7), update clipping (eq. 12) and the
relative step size alpha_t = max(eps2, RMS(X_{t-1})) rho_t (section 8). NumPy, float64.

A matrix is factored if its smaller dimension is at least ``min_dim``; rows are its first
dimension (the paper's n x m), whatever their sizes.
"""

import numpy as np


def rms(x):
    return np.sqrt(np.mean(np.abs(x) ** 2))


class Adafactor:
    def __init__(self, rho, min_dim, decay_exponent=0.8, eps1=1e-30, eps2=1e-3, d=1.0,
                 relative_step=True):
        self.rho, self.min_dim, self.c = rho, min_dim, decay_exponent
        self.eps1, self.eps2, self.d, self.relative = eps1, eps2, d, relative_step
        self.state = None

    def factored(self, x):
        return x.ndim == 2 and min(x.shape) >= self.min_dim

    def step(self, params, grads, t):
        if self.state is None:
            self.state = [(np.zeros(x.shape[0]), np.zeros(x.shape[1])) if self.factored(x)
                          else np.zeros(x.shape) for x in params]
        beta = 1 - t ** (-self.c)
        rho = self.rho(t) if callable(self.rho) else self.rho
        out, new_state = [], []
        for x, g, s in zip(params, grads, self.state):
            g2 = g * g + self.eps1
            if self.factored(x):
                r, c = s
                r = beta * r + (1 - beta) * g2 @ np.ones(x.shape[1])      # R_t (row sums)
                c = beta * c + (1 - beta) * np.ones(x.shape[0]) @ g2      # C_t (column sums)
                v = np.outer(r, c) / np.sum(r)                            # V_t = R C / 1^T R
                new_state.append((r, c))
            else:
                v = beta * s + (1 - beta) * g2
                new_state.append(v)
            u = g / np.sqrt(v)
            u = u / max(1.0, rms(u) / self.d)                              # update clipping
            alpha = max(self.eps2, rms(x)) * rho if self.relative else rho
            out.append(x - alpha * u)
        self.state = new_state
        return out
