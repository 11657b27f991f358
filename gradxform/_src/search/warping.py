r"""Output warping of Bayesian optimisation: monotone transforms of the losses, chosen by the data.

A Gaussian process with a stationary kernel and Gaussian noise models a loss whose values are
spread evenly around their mean. Many losses are not: a function such as Rosenbrock's takes
values from 0 to a million on its box, with most of its points in the hundreds or thousands
and a few in the valley near 0. Standardised, the valley's values differ in the fifth digit and
the surrogate sees a flat floor with a few huge peaks. A monotone warping :math:`\psi` of the
values keeps the order of the trials (so the best trial stays the best, and improvement in the
warped space is improvement in the loss) and makes them look Gaussian to the surrogate.

:func:`power_warp` standardises the successful values, then applies the Yeo-Johnson power
transformation (Yeo & Johnson 2000)

.. math::

    \psi_\lambda(z) = \begin{cases}
      \left((1 + z)^\lambda - 1\right) / \lambda & z \ge 0,\ \lambda \ne 0 \\
      \log(1 + z) & z \ge 0,\ \lambda = 0 \\
      -\left((1 - z)^{2 - \lambda} - 1\right) / (2 - \lambda) & z < 0,\ \lambda \ne 2 \\
      -\log(1 - z) & z < 0,\ \lambda = 2
    \end{cases}

with the :math:`\lambda` that maximises the Gaussian log likelihood of the warped values (their
mean and variance profiled out) plus the log Jacobian of the warping,

.. math::

    \ell(\lambda) = -\tfrac n2 \log \hat\sigma^2_\lambda
      + (\lambda - 1) \sum_i \operatorname{sign}(z_i) \log(1 + |z_i|),

and standardises the result again. When every loss is positive, the Box-Cox transformation
(Box & Cox 1964) of the losses themselves, :math:`(y^\lambda - 1)/\lambda` (:math:`\log y` at
:math:`\lambda = 0`), competes with it: both give a density of the losses (Yeo-Johnson's with
the standardisation's Jacobian :math:`-n \log s`), and the likelier one is used (the Bayes
tuner's default, ``warp="box-cox"``; with the acquisition over the whole cube it helped on
Rosenbrock's function and hurt on Branin's, inside the trust region it does not hurt Branin's).
Box-Cox can
take a logarithm of losses that span several orders of magnitude (Rosenbrock's), which
Yeo-Johnson of standardised values, :math:`\log(1 + z)`, cannot. This is the output
transformation of HEBO (Cowen-Rivers et al. 2022), which found it the component that helped
most across the Bayesmark benchmarks.
:math:`\lambda < 1` compresses the upper tail (large losses, the uninteresting side of a
minimisation) and stretches the lower one; values already close to Gaussian get
:math:`\lambda \approx 1`, nearly the identity.

References:
  G. E. P. Box & D. R. Cox, *An analysis of transformations*, JRSS B 26(2), 1964.
  I.-K. Yeo & R. A. Johnson, *A new family of power transformations to improve normality or
  symmetry*, Biometrika 87(4), 2000.
  A. I. Cowen-Rivers, W. Lyu, R. Tutunov, Z. Wang, A. Grosnit, R. R. Griffiths, A. M. Maraval,
  H. Jianye, J. Wang, J. Peters & H. Bou-Ammar, *HEBO: Pushing the Limits of Sample-Efficient
  Hyperparameter Optimisation*, JAIR 74, 2022 (section 4.2).
  E. Snelson, C. E. Rasmussen & Z. Ghahramani, *Warped Gaussian Processes*, NeurIPS 2003.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LAMBDAS", "box_cox", "box_cox_lambda", "power_warp", "standardize", "yeo_johnson",
           "yeo_johnson_lambda"]

#: The values of lambda searched (a grid: the likelihood is smooth and one-dimensional).
LAMBDAS = np.linspace(-2.0, 3.0, 101)


def standardize(y: np.ndarray) -> np.ndarray:
    """``(y - mean) / std``; a (nearly) constant ``y`` is only centred."""
    y = np.asarray(y, np.float64)
    std = float(np.std(y))
    return (y - np.mean(y)) / (std if std > 1e-12 * max(1.0, float(np.max(np.abs(y)))) else 1.0)


def yeo_johnson(z: np.ndarray, lam: np.ndarray | float) -> np.ndarray:
    """The Yeo-Johnson transform of ``z``; ``lam`` broadcasts against it."""
    z = np.asarray(z, np.float64)
    lam = np.asarray(lam, np.float64)
    pos = z >= 0
    a = np.log1p(np.abs(z))                    # log(1 + |z|)
    lp = np.where(np.abs(lam) < 1e-9, 1.0, lam)
    ln = np.where(np.abs(2.0 - lam) < 1e-9, 1.0, 2.0 - lam)
    up = np.where(np.abs(lam) < 1e-9, a, np.expm1(lp * a) / lp)
    down = np.where(np.abs(2.0 - lam) < 1e-9, -a, -np.expm1(ln * a) / ln)
    return np.where(pos, up, down)


def yeo_johnson_lambda(z: np.ndarray, lambdas: np.ndarray = LAMBDAS) -> float:
    """The ``lambda`` of :data:`LAMBDAS` that maximises the profile log likelihood."""
    ll = _yeo_johnson_profile(np.asarray(z, np.float64), lambdas)
    return float(lambdas[int(np.argmax(ll))])


def box_cox(y: np.ndarray, lam: np.ndarray | float) -> np.ndarray:
    """The Box-Cox transform of positive ``y``; ``lam`` broadcasts against it."""
    a = np.log(np.asarray(y, np.float64))
    lam = np.asarray(lam, np.float64)
    lp = np.where(np.abs(lam) < 1e-9, 1.0, lam)
    return np.where(np.abs(lam) < 1e-9, a, np.expm1(lp * a) / lp)


def _box_cox_profile(y: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    warped = box_cox(y[None, :], lambdas[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = -0.5 * y.size * np.log(np.var(warped, axis=1)) + (lambdas - 1.0) * np.sum(np.log(y))
    return np.where(np.isfinite(ll), ll, -np.inf)


def _yeo_johnson_profile(z: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    warped = yeo_johnson(z[None, :], lambdas[:, None])
    jacobian = np.sum(np.sign(z) * np.log1p(np.abs(z)))
    with np.errstate(divide="ignore"):
        ll = -0.5 * z.size * np.log(np.var(warped, axis=1)) + (lambdas - 1.0) * jacobian
    return np.where(np.isfinite(ll), ll, -np.inf)


def box_cox_lambda(y: np.ndarray, lambdas: np.ndarray = LAMBDAS) -> float:
    """The ``lambda`` of :data:`LAMBDAS` that maximises the Box-Cox profile log likelihood."""
    ll = _box_cox_profile(np.asarray(y, np.float64), lambdas)
    return float(lambdas[int(np.argmax(ll))])


def power_warp(y: np.ndarray, try_box_cox: bool = False) -> tuple[np.ndarray, float]:
    """Standardise, Yeo-Johnson with the likelihood's ``lambda`` (or, with ``try_box_cox``, Box-Cox
    of positive losses when likelier), standardise again.

    Returns ``(warped, lambda)``. Fewer than 3 distinct values are only standardised.
    """
    z = standardize(y)
    if np.unique(z).size < 3:
        return z, 1.0
    lam = yeo_johnson_lambda(z)
    if try_box_cox and np.min(y) > 0:
        # Positive losses: Box-Cox of the losses themselves competes with Yeo-Johnson of the
        # standardised ones; both are densities of y (Yeo-Johnson's with the standardisation's
        # Jacobian, -n log std), so the likelier one wins.
        y = np.asarray(y, np.float64)
        bc_ll = _box_cox_profile(y, LAMBDAS)
        i = int(np.argmax(bc_ll))
        yj_ll = _yeo_johnson_profile(z, np.array([lam]))[0] - y.size * np.log(np.std(y))
        if bc_ll[i] > yj_ll:
            return standardize(box_cox(y, LAMBDAS[i])), float(LAMBDAS[i])
    return standardize(yeo_johnson(z, lam)), lam


#: The shifts of the log warping, in units of the median loss's distance to the best one.
LOG_SHIFTS = (0.01, 0.1)
#: The candidate warpings of :func:`candidates`, in order.
CANDIDATES = ("identity", "power") + tuple(f"log{c:g}" for c in LOG_SHIFTS)


def _standardized(w: np.ndarray, log_jacobian: float) -> tuple[np.ndarray, float]:
    """``standardize(w)`` and the log Jacobian of the whole map, its scaling included."""
    std = float(np.std(w))
    if not std > 0:
        return w - np.mean(w), log_jacobian
    return (w - np.mean(w)) / std, log_jacobian - w.size * np.log(std)


def shifted_log(y: np.ndarray, shift: float) -> tuple[np.ndarray, float]:
    r"""``log(y - min(y) + c)`` with :math:`c` = ``shift`` times the median of
    :math:`y - \min y`, and its log Jacobian :math:`-\sum_i \log(y_i - \min y + c)`.

    The shift is not estimated from the values alone: the Gaussian likelihood of a shifted log
    grows without bound as :math:`c \to 0` (the best value becomes an arbitrarily far outlier);
    a surrogate's likelihood, which an isolated outlier costs quadratically in its log, is what
    chooses among a few shifts (:func:`candidates`).
    """
    y = np.asarray(y, np.float64)
    base = y - np.min(y)
    c = shift * (float(np.median(base)) or float(np.max(base)) or 1.0)
    logs = np.log(base + c)
    return logs, float(-np.sum(logs))


def candidates(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""The candidate warpings of the losses ``y`` [n] and their log Jacobians.

    Returns ``(warped, log_jacobians)`` of shapes ``[w, n]`` and ``[w]``, one row per name of
    :data:`CANDIDATES`: the standardised losses, Yeo-Johnson of the standardised losses
    (:func:`power_warp`), and shifted logs (:func:`shifted_log`, one per :data:`LOG_SHIFTS`),
    each standardised. The log Jacobian :math:`\sum_i \log \psi'(y_i)` of each map
    (standardisations included) turns a density of the warped values into one of the losses:
    a surrogate's marginal likelihood of ``warped[j]`` plus ``log_jacobians[j]`` is comparable
    across ``j``. Fewer than 3 distinct values are only standardised (equal rows).
    """
    y = np.asarray(y, np.float64)
    ident, ident_jac = _standardized(y, 0.0)
    w = len(CANDIDATES)
    if np.unique(ident).size < 3:
        return np.stack([ident] * w), np.full(w, ident_jac)
    lam = yeo_johnson_lambda(ident)
    yj_jac = ident_jac + (lam - 1.0) * float(np.sum(np.sign(ident) * np.log1p(np.abs(ident))))
    rows = [(ident, ident_jac), _standardized(yeo_johnson(ident, lam), yj_jac)]
    rows += [_standardized(*shifted_log(y, c)) for c in LOG_SHIFTS]
    return np.stack([r for r, _ in rows]), np.array([j for _, j in rows])
