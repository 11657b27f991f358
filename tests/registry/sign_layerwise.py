"""Conformance entries of the sign-based, normalised, layer-wise, memory-light and other
optimizers: signSGD, Signum, the normalised step, Lion, LARS, LAMB,
Fromage, NovoGrad, Adafactor (relative and absolute steps), SM3, noisy SGD, Polyak SGD.

Per-target overrides and why:

* Sign and normalised steps move every coordinate by the learning rate whatever the gradient,
  so with a constant rate they end within about one step of the minimum: the quadratic needs a
  rate small enough that this ball is below its tolerance (and steps enough to get there).
  In Rosenbrock's curved valley a step of fixed length along every axis (signSGD, the
  normalised step) falls into a cycle around loss 0.09 that more steps do not break; they need
  a decaying learning rate to converge, which ``tests/test_sign_layerwise.py`` checks
  (cosine decay reaches the usual 1e-2). Here the constant-rate run must reach 0.1.
* LARS, LAMB, Fromage and Adafactor's relative step make each leaf's step proportional to the
  leaf's norm. Rosenbrock's ``x`` is a scalar leaf that must travel from -1.2 to 1 through 0,
  where its steps vanish: they stop on the valley floor near ``x = 0`` (loss 1) by design, or
  cross it by luck of the momentum (LARS, depending on the rate and the dtype). Here the loss
  must fall from 24.2 to that floor (tolerance 1.01); with ``x`` and ``y`` in one leaf they
  converge to 1e-2, checked in ``tests/test_sign_layerwise.py``. LARS needs large rates, as its
  trust coefficient 1e-3 scales every step down.
"""

import gradxform as gx
from registry import Entry

# Rosenbrock's tolerance for methods whose steps scale with a scalar leaf's size (see above).
SCALAR_LEAF_FLOOR = 1.01
# Rosenbrock's tolerance for fixed-length steps with a constant rate (see above).
FIXED_STEP_CYCLE = 0.1

ENTRIES = [
    Entry("sign_sgd", gx.sign_sgd, lr={"quadratic": 0.0047, "rosenbrock": 1e-3, "gabor": 0.01},
          steps={"quadratic": 800}, tol={"rosenbrock": FIXED_STEP_CYCLE},
          supports_complex=False),
    Entry("signum", gx.signum, lr={"quadratic": 0.003, "rosenbrock": 1e-3, "gabor": 0.003},
          steps={"quadratic": 800, "rosenbrock": 5000}, supports_complex=False),
    Entry("normalized_sgd", gx.normalized_sgd,
          lr={"quadratic": 0.0047, "rosenbrock": 1e-3, "gabor": 0.01},
          steps={"quadratic": 800}, tol={"rosenbrock": FIXED_STEP_CYCLE}),
    Entry("lion", gx.lion, lr={"quadratic": 0.002, "rosenbrock": 1e-3, "gabor": 0.003},
          steps={"quadratic": 1500, "rosenbrock": 5000}, supports_complex=False),
    # A leaf whose norm is zero gets the ratio ``ratio_at_zero_norm`` (optax: 1, which ignores
    # the trust coefficient): with LARS's large rates a leaf starting at zero (the complex-params
    # check starts there) would take a full step lr * g and diverge. Matching it to the trust
    # coefficient keeps the zero-norm step on the scale of the others.
    Entry("lars", gx.lars, {"weight_decay": 1e-4, "ratio_at_zero_norm": 1e-3},
          lr={"quadratic": 3.0, "rosenbrock": 1.0, "gabor": 1.0},
          tol={"rosenbrock": SCALAR_LEAF_FLOOR}),
    Entry("lamb", gx.lamb, {"weight_decay": 1e-4},
          lr={"quadratic": 0.1, "rosenbrock": 1e-2, "gabor": 1e-3},
          tol={"rosenbrock": SCALAR_LEAF_FLOOR}),
    Entry("fromage", gx.fromage, lr={"quadratic": 0.1, "rosenbrock": 1e-2, "gabor": 1e-3},
          tol={"rosenbrock": SCALAR_LEAF_FLOOR}),
    Entry("novograd", gx.novograd, lr={"quadratic": 0.01, "rosenbrock": 1e-3, "gabor": 1e-3}),
    Entry("adafactor", gx.adafactor, {"min_dim_size_to_factor": 2},
          lr={"quadratic": 0.3, "rosenbrock": 1e-2, "gabor": 1e-2},
          tol={"rosenbrock": SCALAR_LEAF_FLOOR}),
    Entry("adafactor_absolute_momentum", gx.adafactor,
          {"min_dim_size_to_factor": 2, "multiply_by_parameter_scale": False, "momentum": 0.9},
          lr={"quadratic": 0.03, "rosenbrock": 3e-3, "gabor": 1e-2},
          steps={"rosenbrock": 5000}),
    Entry("sm3", gx.sm3, lr={"quadratic": 0.3, "rosenbrock": 0.5, "gabor": 0.3},
          steps={"rosenbrock": 6000}),
    Entry("noisy_sgd", gx.noisy_sgd, lr={"quadratic": 0.04, "rosenbrock": 1e-3, "gabor": 0.01},
          steps={"rosenbrock": 8000}, needs_key=True),
    Entry("polyak_sgd", gx.polyak_sgd, lr={"quadratic": 0.1, "rosenbrock": 1e-2, "gabor": 1e-2},
          extra=("value",), lr_key="max_learning_rate"),
]
