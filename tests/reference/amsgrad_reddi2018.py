"""AMSGrad, Reddi, Kale & Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018,
Algorithm 2, in NumPy. Shares no code with gradxform.

The algorithm box has no bias correction and no epsilon; ``eps`` is added to the denominator
outside the root (the usual practical safeguard; pass a tiny value to approach the box).
"""

from __future__ import annotations

import numpy as np


def amsgrad(grad, theta0, alpha, beta1, beta2, eps, steps):
    """m_t = b1 m + (1 - b1) g;  v_t = b2 v + (1 - b2) g^2;  vhat_t = max(vhat_{t-1}, v_t);
    x_{t+1} = x_t - alpha m_t / (sqrt(vhat_t) + eps).  Returns the iterates x_2, ..., x_{T+1}."""
    x = theta0.copy()
    m, v, v_hat, out = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x), []
    for _ in range(steps):
        g = grad(x)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_hat = np.maximum(v_hat, v)
        x = x - alpha * m / (np.sqrt(v_hat) + eps)
        out.append(x.copy())
    return out
