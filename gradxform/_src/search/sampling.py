"""Random search and scrambled Sobol search: proposals that ignore the values told.

Both decode points of the unit cube (see :mod:`space`), so log-scaled floats are sampled
log-uniformly, every integer and every choice with equal probability, and conditional
parameters only where their parents allow them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.stats import qmc

from gradxform._src.search.space import Space
from gradxform._src.search.tuner import Tuner

__all__ = ["Random", "Sobol"]


class Random(Tuner):
    """Random search: independent uniform points of the unit cube, decoded.

    Bergstra & Bengio (2012) show why it beats a grid of the same size when only a few
    parameters matter: every trial tries a new value of each of them.

    Args:
      space: a :class:`Space` or a dict of parameters.
      seed: the random seed.

    References:
      J. Bergstra, Y. Bengio, *Random Search for Hyper-Parameter Optimization*, JMLR 13, 2012.
    """

    def _propose(self, k):
        return [self.space.decode(u) for u in self.rng.random((k, self.space.dim))]


class Sobol(Tuner):
    """Scrambled Sobol' points: a low-discrepancy sequence that fills the cube more evenly than
    random points (Owen's scrambling, as implemented by ``scipy.stats.qmc.Sobol``).

    The sequence is balanced at powers of two: budgets of 16, 32, 64 ... trials use it best.

    Args:
      space: a :class:`Space` or a dict of parameters.
      seed: the seed of the scrambling.

    References:
      I. M. Sobol', *On the distribution of points in a cube and the approximate evaluation of
      integrals*, USSR Comput. Math. Math. Phys. 7, 1967. A. B. Owen, *Scrambling Sobol' and
      Niederreiter-Xing points*, J. Complexity 14, 1998.
    """

    def __init__(self, space: Space | Mapping[str, Any], *, seed: int = 0):
        super().__init__(space, seed=seed)
        self._drawn = 0
        self._engine = self._new_engine()

    def _new_engine(self):
        return qmc.Sobol(self.space.dim, scramble=True, rng=np.random.default_rng(self.seed))

    def _propose(self, k):
        with warnings.catch_warnings():  # the balance warning for k not a power of two
            warnings.simplefilter("ignore", UserWarning)
            points = self._engine.random(k)
        self._drawn += k
        return [self.space.decode(u) for u in points]

    def state_dict(self):
        return {**super().state_dict(), "drawn": self._drawn}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self._drawn = int(state["drawn"])
        self._engine = self._new_engine()
        self._engine.fast_forward(self._drawn)
