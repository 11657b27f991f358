"""Hyperparameter search: spaces, tuners and :func:`minimize`.

Usage::

    from gradxform import search

    space = {"learning_rate": search.Float(1e-5, 1.0, log=True), "b1": search.Float(0.5, 0.99)}
    result = search.minimize(objective, space, strategy="random", budget=50, seed=0)
    result.best_config, result.best_value, result.trials

See the "Hyperparameter search" guide of the documentation.
"""


from gradxform._src.search.bayes import Bayes
from gradxform._src.search.build import build
from gradxform._src.search.grid import Grid
from gradxform._src.search.halving import Halving
from gradxform._src.search.pbt import PBT
from gradxform._src.search.population import Stateful
from gradxform._src.search.result import Result
from gradxform._src.search.run import minimize
from gradxform._src.search.sampling import Random, Sobol
from gradxform._src.search.space import Categorical, Float, Group, Int, Param, Space
from gradxform._src.search.tuner import Trial, Tuner

__all__ = [
    "Float", "Int", "Categorical", "Param", "Space", "Group",
    "Tuner", "Trial", "Grid", "Random", "Sobol", "Halving", "PBT",
    "Bayes", "Stateful", "minimize", "Result", "build",
]
