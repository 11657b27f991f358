"""Conformance entries of the foundation: SGD (plain, momentum, Nesterov, dampened), AdaGrad,
RMSprop (plain, centered with momentum), Adam, NAdam-style Adam, AdamW."""

import gradxform as gx
from registry import Entry

ENTRIES = [
    Entry("sgd", gx.sgd, lr={"quadratic": 0.04, "rosenbrock": 1e-3},
          steps={"quadratic": 300, "rosenbrock": 8000}),
    Entry("sgd_momentum", gx.sgd, {"momentum": 0.9},
          lr={"quadratic": 0.01, "rosenbrock": 1e-3, "gabor": 0.005}),
    Entry("sgd_nesterov", gx.sgd, {"momentum": 0.9, "nesterov": True},
          lr={"quadratic": 0.01, "rosenbrock": 1e-3, "gabor": 0.005}),
    Entry("sgd_dampened", gx.sgd, {"momentum": 0.9, "dampening": 0.9},
          lr={"quadratic": 0.1, "rosenbrock": 1e-2, "gabor": 0.05}),
    Entry("adagrad", gx.adagrad, lr={"quadratic": 0.5, "rosenbrock": 0.5, "gabor": 0.5},
          steps={"quadratic": 300, "rosenbrock": 5000}),
    Entry("rmsprop", gx.rmsprop, lr={"quadratic": 0.01, "rosenbrock": 1e-3},
          tol={"quadratic": 2e-3, "rosenbrock": 2e-2}),
    Entry("rmsprop_centered_momentum", gx.rmsprop, {"centered": True, "momentum": 0.5},
          lr={"quadratic": 0.01, "rosenbrock": 1e-3}, tol={"quadratic": 2e-3, "rosenbrock": 2e-2}),
    Entry("adam", gx.adam, lr={"quadratic": 0.05, "rosenbrock": 0.02, "gabor": 0.05}),
    Entry("adam_nesterov", gx.adam, {"nesterov": True},
          lr={"quadratic": 0.05, "rosenbrock": 0.02, "gabor": 0.05}),
    Entry("adamw", gx.adamw, {"weight_decay": 1e-4},
          lr={"quadratic": 0.05, "rosenbrock": 0.02, "gabor": 0.05}),
]
