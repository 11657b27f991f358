"""Conformance entries of the methods with a line search: gradient descent with Armijo
backtracking, L-BFGS and BFGS with the strong-Wolfe zoom search, damped Newton.

Their ``update`` takes the line search's arguments ``value=``, ``grad=`` and ``value_fn=``
(``extra``); the table's runners pass the current loss, its gradient and the target's loss
function. The learning rate scales the direction before the search (as in optax's ``lbfgs``),
so the search looks for a multiple of it; the table's rates are those of first-order methods
and the searches make up for them. Complex params are rejected (the searches compare values
along a real ray).

* Gradient descent with backtracking converges on Rosenbrock's valley at the pace of gradient
  descent (about 1e-3 in loss per thousand steps near the end): it gets 5000 steps there. On
  the Gabor model its first step, the gradient itself (norm 9), would jump out of the valley of
  the global minimum into another one (loss 3.1): the direction is scaled by 0.01 there, as
  for the first-order methods, and the search grows the step from that.

SVRG is not in the table: its ``update`` needs a loss of one example and a dataset
(``loss_fn=``, ``batch=``, ``data=``), which the table's targets do not have;
``tests/test_svrg.py`` checks it.
"""

import gradxform as gx
from registry import Entry

LINESEARCH_EXTRA = ("value", "grad", "value_fn")
# float32 rounding of the reductions differs in a vmapped batch (see Entry.vmap_atol)
VMAP_ATOL = 1e-5

ENTRIES = [
    Entry("gradient_descent_linesearch", gx.gradient_descent_linesearch,
          lr={"quadratic": 1.0, "rosenbrock": 1.0, "gabor": 0.01},
          steps={"rosenbrock": 5000}, extra=LINESEARCH_EXTRA, supports_complex=False,
          vmap_atol=VMAP_ATOL),
    Entry("lbfgs", gx.lbfgs, lr={"quadratic": 1.0, "rosenbrock": 1.0, "gabor": 1.0},
          steps={"quadratic": 50, "rosenbrock": 200, "gabor": 100},
          extra=LINESEARCH_EXTRA, supports_complex=False,
          vmap_atol=VMAP_ATOL),
    Entry("bfgs", gx.bfgs, lr={"quadratic": 1.0, "rosenbrock": 1.0, "gabor": 1.0},
          steps={"quadratic": 50, "rosenbrock": 200, "gabor": 100},
          extra=LINESEARCH_EXTRA, supports_complex=False,
          vmap_atol=VMAP_ATOL),
    Entry("newton", gx.newton, lr={"quadratic": 1.0, "rosenbrock": 1.0, "gabor": 1.0},
          steps={"quadratic": 20, "rosenbrock": 100, "gabor": 50},
          extra=LINESEARCH_EXTRA, supports_complex=False,
          vmap_atol=VMAP_ATOL),
]
