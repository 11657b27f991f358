"""AdEMAMix, Pagliardini, Ablin & Grangier, *The AdEMAMix Optimizer: Better, Faster, Older*,
arXiv:2409.03137 (ICLR 2025), Algorithm 1 with the schedulers of section 3, in NumPy. Shares no
code with gradxform."""

from __future__ import annotations

import math

import numpy as np


def f_alpha(t, alpha, t_alpha):
    """The linear warm-up of alpha: min(t alpha / T_alpha, alpha)."""
    return min(t * alpha / t_alpha, alpha)


def f_beta3(t, beta3, beta_start, t_beta3):
    """The warm-up of beta3, linear in the half-life:
    min(exp(ln(b_start) ln(b3) / ((1 - t/T) ln(b3) + (t/T) ln(b_start))), b3)."""
    a = t / t_beta3
    log_s, log_e = math.log(beta_start), math.log(beta3)
    return min(math.exp(log_s * log_e / ((1 - a) * log_e + a * log_s)), beta3)


def ademamix(grad, theta0, eta, beta1, beta2, beta3, alpha, eps, lam, steps, t_warmup=None):
    """m1 = b1 m1 + (1 - b1) g;  m2 = b3(t) m2 + (1 - b3(t)) g;  nu = b2 nu + (1 - b2) g^2;
    theta -= eta ((m1 / (1 - b1^t) + alpha(t) m2) / (sqrt(nu / (1 - b2^t)) + eps) + lam theta).
    Without ``t_warmup`` alpha and b3 are constant; with it they follow f_alpha and f_beta3
    (b_start = b1) with T_alpha = T_b3 = t_warmup."""
    theta = theta0.copy()
    m1, m2, nu, out = np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta), []
    for t in range(1, steps + 1):
        a_t, b3_t = alpha, beta3
        if t_warmup is not None:
            a_t = f_alpha(t, alpha, t_warmup)
            b3_t = f_beta3(t, beta3, beta1, t_warmup)
        g = grad(theta)
        m1 = beta1 * m1 + (1 - beta1) * g
        m2 = b3_t * m2 + (1 - b3_t) * g
        nu = beta2 * nu + (1 - beta2) * g * g
        m1_hat = m1 / (1 - beta1**t)
        nu_hat = nu / (1 - beta2**t)
        theta = theta - eta * ((m1_hat + a_t * m2) / (np.sqrt(nu_hat) + eps) + lam * theta)
        out.append(theta.copy())
    return out
