"""Hyperparameter search: spaces, tuners and :func:`minimize`.

Usage::

    from gradxform import search

    space = {"learning_rate": search.Float(1e-5, 1.0, log=True), "b1": search.Float(0.5, 0.99)}
    result = search.minimize(objective, space, strategy="random", budget=50, seed=0)
    result.best_config, result.best_value, result.trials
"""

from gradxform._src.search.sampling import Random, Sobol
from gradxform._src.search.space import Categorical, Float, Group, Int, Param, Space
from gradxform._src.search.tuner import Trial, Tuner

__all__ = [
    "Categorical",
    "Float",
    "Group",
    "Int",
    "Param",
    "Random",
    "Sobol",
    "Space",
    "Trial",
    "Tuner",
]
