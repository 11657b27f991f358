"""Conformance entries of the optimistic methods: optimistic gradient descent and optimistic
Adam (optax's two interfaces).

Optimistic gradient descent steps along :math:`2 g_t - g_{t-1}`: on a quadratic of curvature
``c`` it is stable only for ``lr * c`` below about 2/3 (plain gradient descent: 2), so at the
bottom of Rosenbrock's valley (``c`` about 1000) it needs a rate below 7e-4 where SGD's entry
uses 1e-3 (at 8e-4 it cycles around loss 0.1).

``optimistic_adam`` takes the learning rate as the ``alpha`` of its optimistic link (see its
docstring), so ``gx.hyperparams`` reports it under ``"alpha"``.
"""

import gradxform as gx
from registry import Entry

ENTRIES = [
    Entry("optimistic_gradient_descent", gx.optimistic_gradient_descent,
          lr={"quadratic": 0.03, "rosenbrock": 6e-4, "gabor": 0.01},
          steps={"rosenbrock": 8000}),
    Entry("optimistic_adam", gx.optimistic_adam,
          lr={"quadratic": 0.05, "rosenbrock": 0.02, "gabor": 0.05}, lr_key="alpha"),
    Entry("optimistic_adam_v2", gx.optimistic_adam_v2, {"beta": 0.5},
          lr={"quadratic": 0.05, "rosenbrock": 0.02, "gabor": 0.05}),
]
