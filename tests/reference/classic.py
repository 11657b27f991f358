"""NumPy references for the classic optimizers, written line by line from the papers.

Each function takes a gradient function on a flat float64 vector, the initial point and the
hyperparameters, and returns the list of iterates. They share no code with gradxform.
"""

from __future__ import annotations

import numpy as np


def momentum_sutskever(grad, theta0, lr, mu, steps):
    """Classical momentum, Sutskever et al. (2013), eqs. (1)-(2):
    v_{t+1} = mu v_t - eps grad f(theta_t);  theta_{t+1} = theta_t + v_{t+1}."""
    theta, v, out = theta0.copy(), np.zeros_like(theta0), []
    for _ in range(steps):
        v = mu * v - lr * grad(theta)
        theta = theta + v
        out.append(theta.copy())
    return out


def nesterov_sutskever(grad, theta0, lr, mu, steps):
    """Nesterov's accelerated gradient as written by Sutskever et al. (2013), eqs. (3)-(4):
    v_{t+1} = mu v_t - eps grad f(theta_t + mu v_t);  theta_{t+1} = theta_t + v_{t+1}.

    Returned are the look-ahead points phi_t = theta_t + mu v_t, at which the gradient is taken:
    the reformulation used by optax, torch and gradxform iterates exactly these.
    """
    theta, v, out = theta0.copy(), np.zeros_like(theta0), []
    for _ in range(steps):
        v = mu * v - lr * grad(theta + mu * v)
        theta = theta + v
        out.append(theta + mu * v)
    return out


def adagrad_duchi(grad, theta0, lr, delta, steps):
    """Diagonal AdaGrad, Duchi, Hazan & Singer (2011), Figure 1 / eq. (1) with
    H_t = delta I + diag(G_t)^{1/2}:  theta_{t+1} = theta_t - eta g_t / (delta + sqrt(G_t))."""
    theta, sum_sq, out = theta0.copy(), np.zeros_like(theta0), []
    for _ in range(steps):
        g = grad(theta)
        sum_sq = sum_sq + g * g
        theta = theta - lr * g / (delta + np.sqrt(sum_sq))
        out.append(theta.copy())
    return out


def rmsprop_tieleman_hinton(grad, theta0, lr, decay, eps, steps):
    """RMSprop, Tieleman & Hinton (2012), lecture 6e:
    MeanSquare = decay MeanSquare + (1 - decay) g^2;  theta -= lr g / sqrt(MeanSquare + eps)."""
    theta, mean_sq, out = theta0.copy(), np.zeros_like(theta0), []
    for _ in range(steps):
        g = grad(theta)
        mean_sq = decay * mean_sq + (1 - decay) * g * g
        theta = theta - lr * g / np.sqrt(mean_sq + eps)
        out.append(theta.copy())
    return out


def adam_kingma_ba(grad, theta0, alpha, beta1, beta2, eps, steps):
    """Adam, Kingma & Ba (2015), Algorithm 1."""
    theta, m, v, out = theta0.copy(), np.zeros_like(theta0), np.zeros_like(theta0), []
    for t in range(1, steps + 1):
        g = grad(theta)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        theta = theta - alpha * m_hat / (np.sqrt(v_hat) + eps)
        out.append(theta.copy())
    return out


def adamw_loshchilov_hutter(grad, theta0, alpha, beta1, beta2, eps, lam, steps, eta=None):
    """AdamW, Loshchilov & Hutter (2019), Algorithm 2 (the green terms):
    theta_t = theta_{t-1} - eta_t (alpha m_hat / (sqrt(v_hat) + eps) + lambda theta_{t-1}),
    with the schedule multiplier eta_t (default 1)."""
    theta, m, v, out = theta0.copy(), np.zeros_like(theta0), np.zeros_like(theta0), []
    for t in range(1, steps + 1):
        g = grad(theta)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        eta_t = 1.0 if eta is None else eta(t - 1)
        theta = theta - eta_t * (alpha * m_hat / (np.sqrt(v_hat) + eps) + lam * theta)
        out.append(theta.copy())
    return out
