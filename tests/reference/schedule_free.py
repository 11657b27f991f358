"""Schedule-Free SGD, Defazio et al. (2024), "The Road Less Scheduled", Algorithm 1, in NumPy on
a flat float64 vector (constant learning rate, no warm-up, no weight decay). Shares no code with
gradxform."""

from __future__ import annotations


def schedule_free_sgd(grad, x1, lr, beta, steps):
    """Returns the gradient points y_{t+1} and the averages x_{t+1} after every step."""
    x, z = x1.copy(), x1.copy()
    weights = 0.0
    ys, xs = [], []
    for _ in range(steps):
        y = (1 - beta) * z + beta * x
        g = grad(y)
        z = z - lr * g
        weights += lr**2
        c = lr**2 / weights
        x = (1 - c) * x + c * z
        ys.append((1 - beta) * z + beta * x)
        xs.append(x.copy())
    return ys, xs
