r"""A trust region around the incumbent (TuRBO, Eriksson et al. 2019), replayed from the trials.

The Bayes tuner maximises its acquisition inside a box centred on the best configuration so
far, with side lengths

.. math::

    L_j = L\, \frac{\ell_j}{\left(\prod_{k=1}^d \ell_k\right)^{1/d}}

(:math:`\ell` the GP's length scales: the box is longer where the surrogate varies slowly and
has the volume of a cube of side :math:`L`), clipped to the unit cube. The base side :math:`L`
starts at :data:`INITIAL`; after :data:`SUCCESSES` improvements in a row it doubles (up to
:data:`MAXIMUM`), after :data:`FAILURES` trials in a row without improvement it halves, and
when it falls below :data:`MINIMUM` it starts again from :data:`INITIAL` (a restart; the data
are kept). A trial *improves* when its loss is below the best loss before it by more than
:data:`RELATIVE` times that loss's magnitude; a failed trial (NaN) does not improve.

The constants are TuRBO's but for the failure tolerance: TuRBO halves after
:math:`\max(4, d)` failures, made for budgets of thousands of evaluations; with the tens of
trials a tuner gets, that halves the region once or twice in a whole search, and the
acquisition never concentrates where the incumbent is (on Rosenbrock's and Ackley's functions,
``benchmarks/bench_search_regret.py``). Three in a row either way keeps the rule symmetric.

:func:`length` computes :math:`L` from the sequence of losses told so far, so that the tuner
keeps no state for it: the same trials give the same region, after a restore too.

References:
  D. Eriksson, M. Pearce, J. R. Gardner, R. Turner & M. Poloczek, *Scalable Global Optimization
  via Local Bayesian Optimization*, NeurIPS 2019 (section 2: the trust region of TuRBO-1).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FAILURES", "INITIAL", "MAXIMUM", "MINIMUM", "RELATIVE", "SUCCESSES", "box",
           "floor", "length"]

#: The base side of a new region (in unit-cube units), its largest and its smallest.
INITIAL = 0.8
MAXIMUM = 1.6
MINIMUM = 0.5 ** 7
#: Improvements in a row that double the side, and trials without one that halve it.
SUCCESSES = 3
FAILURES = 3
#: An improvement must beat the best loss by this fraction of its magnitude.
RELATIVE = 1e-3


def length(values: np.ndarray, start: int, rounds: np.ndarray | None = None) -> float:
    """The base side :math:`L` after the losses ``values`` [n], in the order told (NaN for a
    failed trial). The first ``start`` values (the initial design) only set the incumbent.

    ``rounds`` [n] (the ``tell`` call of each value; default one per value) groups a batch, as
    TuRBO does: a round improves when its best value does, improving rounds count one each
    towards :data:`SUCCESSES`, and a round without improvement counts its size towards
    :data:`FAILURES` (a batch of 4 that fails halves the region at once).
    """
    values = np.asarray(values, np.float64)
    rounds = np.arange(values.size) if rounds is None else np.asarray(rounds)
    head = values[:start][np.isfinite(values[:start])]
    best = float(np.min(head)) if head.size else math.inf
    side, wins, losses = INITIAL, 0, 0
    tail, tail_rounds = values[start:], rounds[start:]
    if tail.size == 0:
        return side
    # One (lowest value, size) per round, in the order told; a failed trial has value inf.
    starts = np.flatnonzero(np.r_[True, tail_rounds[1:] != tail_rounds[:-1]])
    lows = np.minimum.reduceat(np.where(np.isfinite(tail), tail, math.inf), starts)
    sizes = np.diff(np.r_[starts, tail.size])
    for low, size in zip(lows.tolist(), sizes.tolist(), strict=True):
        if low < math.inf and (best == math.inf or low < best - RELATIVE * abs(best)):
            wins, losses = wins + 1, 0
        else:
            wins, losses = 0, losses + size
        best = min(best, low)
        if wins >= SUCCESSES:
            side, wins = min(2.0 * side, MAXIMUM), 0
        elif losses >= FAILURES:
            side, losses = side / 2.0, 0
            if side < MINIMUM:
                side = INITIAL
    return side


def box(centre: np.ndarray, log_lengthscale: np.ndarray, side: float) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """``(lower, upper)``: the region of base side ``side`` around ``centre`` [d], its sides in
    proportion to the length scales (geometric mean 1), clipped to the unit cube."""
    log_ell = np.asarray(log_lengthscale, np.float64)
    half = 0.5 * side * np.exp(log_ell - np.mean(log_ell))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def floor(side: float, multiple: float, decay: float = 0.0) -> float:
    r"""The smallest length scale the surrogate may fit in a region of base side ``side``:

    .. math::

        \ell_{\min} = c \left(\frac{L}{L_0}\right)^{p} L

    (:math:`c` the ``multiple``, :math:`p` the ``decay``, :math:`L_0` = :data:`INITIAL`).
    With :math:`p = 0` the floor is a fixed fraction of the side; with :math:`p > 0` that
    fraction fades as the region shrinks, so that a floor that smooths ripples away while the
    region is large lets the surrogate resolve them once the region has closed in. A function
    of :func:`length`'s result only: of the trials told, like the region itself.
    """
    return multiple * (side / INITIAL) ** decay * side
