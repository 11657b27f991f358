"""Lookahead, Zhang, Lucas, Hinton & Ba (2019), "Lookahead Optimizer: k steps forward, 1 step
back", Algorithm 1, in NumPy with SGD with (classical) momentum as the inner optimizer A, whose
state is kept across outer iterations. Shares no code with gradxform."""

from __future__ import annotations

import numpy as np


def lookahead_momentum(grad, phi0, lr, momentum, k, alpha, outer_steps):
    """Returns the fast weights after every inner step (at a sync: the new slow weights) and
    the slow weights after every inner step."""
    phi, buf = phi0.copy(), np.zeros_like(phi0)
    fast_out, slow_out = [], []
    for _ in range(outer_steps):
        theta = phi.copy()                         # theta_{t,0} = phi_{t-1}
        for i in range(1, k + 1):
            buf = momentum * buf + grad(theta)     # A(L, theta, d): one momentum SGD step
            theta = theta - lr * buf
            if i < k:
                fast_out.append(theta.copy())
                slow_out.append(phi.copy())
        phi = phi + alpha * (theta - phi)          # phi_t = phi_{t-1} + alpha (theta_{t,k} - phi)
        fast_out.append(phi.copy())                # the next outer loop starts from phi_t
        slow_out.append(phi.copy())
    return fast_out, slow_out
