"""Hyperparameter search: spaces, tuners and :func:`minimize`.

Usage::

    from gradxform import search

    space = {"learning_rate": search.Float(1e-5, 1.0, log=True), "b1": search.Float(0.5, 0.99)}
    result = search.minimize(objective, space, strategy="random", budget=50, seed=0)
    result.best_config, result.best_value, result.trials

See the "Hyperparameter search" guide of the documentation.
"""

import importlib.util

from gradxform._src.search.build import build
from gradxform._src.search.grid import Grid
from gradxform._src.search.halving import Halving
from gradxform._src.search.pbt import PBT
from gradxform._src.search.population import Stateful
from gradxform._src.search.run import Result, minimize
from gradxform._src.search.sampling import Random, Sobol
from gradxform._src.search.space import Categorical, Float, Group, Int, Param, Space
from gradxform._src.search.tuner import Trial, Tuner

# The Bayesian-optimisation tuner, where it is part of the build (errors inside it propagate).
if importlib.util.find_spec("gradxform._src.search.bayes") is not None:
    from gradxform._src.search.bayes import Bayes  # noqa: F401 - exported below

__all__ = [
    "Float", "Int", "Categorical", "Param", "Space", "Group",
    "Tuner", "Trial", "Grid", "Random", "Sobol", "Halving", "PBT",
    "Stateful", "minimize", "Result", "build",
]
if "Bayes" in globals():
    __all__.append("Bayes")
