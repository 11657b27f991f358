"""Conformance entries of optax.contrib's optimizers: SAM (both modes), COCOB, DoG, DoWG,
Mechanic, MoMo, MoMo-Adam, MADGRAD, Sophia, GaLore, DP-SGD, ACProp, Simplified AdEMAMix and the
complex split.

Per-target overrides and why:

* COCOB, DoG, DoWG and Mechanic set their own step sizes; ``learning_rate`` is a multiplier
  (DoG, DoWG), a factor on the gradients COCOB is invariant to, or the base optimizer's rate
  whose scale Mechanic learns. On Rosenbrock's curved valley they get more steps; DoG's and
  DoWG's step sizes, running maxima of a distance, stay too large for the valley with a
  constant multiplier (DoG hovers between 5e-3 and 4e-2 from 6000 to 12000 steps): with a
  multiplier decaying from 1 to 0 (the recommendation of the parameter-free methods' authors,
  as for Prodigy) both converge.
* Mechanic learns one scale for the whole tree by betting, and grows it slowly: on Rosenbrock
  (Adam 0.1 inside) the loss falls from 24.2 and then hovers between 0.1 and 0.5 from 6000 to
  12000 steps (measured in float32 and float64: 0.29, 0.11, 0.13, 0.45 and 0.10, 0.24, 0.20,
  0.52; which value a run ends on changes with the rounding of its sums), so its tolerance
  there is 0.6, a fall by a factor 40; the quadratic needs 1000 steps.
* DoG's first step is about ``init_step``'s 1e-6 times the params' norm and Mechanic's about
  ``s_init`` = 1e-6 times the base step; bfloat16 params near 1 (spacing 2^-7) cannot move by
  that much, so the distance travelled, from which both grow their steps, stays 0 (documented
  with the transforms). Here DoG starts at 1e-3 and Mechanic at 0.05 (its first step is
  ``s_init`` times Adam's 0.1, which must reach bfloat16's spacing).
* MoMo's step is capped by the learning rate: large on the quadratic, where its lower bound 0
  is the minimum, small on the other two.
* Sophia starts from a zero curvature average, so its first steps are sign steps of size lr
  (clipped); the quadratic needs 1500 steps for the average to build up.
* Simplified AdEMAMix accumulates about 100 gradients (b1 = 0.99): small rates, and on the
  quadratic 3000 steps for the slow momentum's oscillation to die out.
* DP-SGD sees each gradient as a batch of one example (``one_example``): clipping at norm 10
  leaves the targets' gradients mostly unclipped, and a small noise multiplier keeps the
  convergence checks meaningful while exercising the noise.
* SAM's fixed point is where the gradient vanishes ``rho`` away along the gradient, so it
  settles about ``rho`` from a sharp minimum (Rosenbrock's valley: loss ~ 1000 rho^2 / 2):
  ``rho`` = 1e-3 here. The transparent mode takes one outer step per two updates, so it gets
  twice the steps.
"""

import jax

import gradxform as gx
from gradxform._src.base import GradientTransformation
from registry import Entry


class one_example(GradientTransformation):
    """Give every leaf a leading batch axis of size 1 (per-example gradients of one example)."""

    def apply(self, updates, state, params, step):
        return jax.tree.map(lambda g: g[None], updates), state


def dpsgd(learning_rate, **kwargs):
    """DP-SGD on a batch of one example (the gradient), clipping norm 10, noise 1e-3."""
    return gx.chain(one_example(), gx.dpsgd(learning_rate, 10.0, 1e-3, **kwargs), name="dpsgd")


def sam(learning_rate, **kwargs):
    """SAM (transparent mode) around SGD with momentum; the ascent written out as optax users
    write it, normalised SGD of radius 1e-3."""
    return gx.sam(gx.sgd(learning_rate, momentum=0.9), gx.chain(gx.normalize(), gx.sgd(1e-3)),
                  **kwargs)


def sam_opaque(learning_rate, **kwargs):
    """SAM (opaque mode, the gradient function passed to update) around Adam, rho = 1e-3."""
    return gx.sam(gx.adam(learning_rate), opaque_mode=True, rho=1e-3, **kwargs)


def mechanize(learning_rate, **kwargs):
    """Mechanic around Adam."""
    return gx.mechanize(gx.adam(learning_rate), **kwargs)


def split_real_and_imaginary(learning_rate, **kwargs):
    """Adam on real and imaginary parts as separate leaves."""
    return gx.split_real_and_imaginary(gx.adam(learning_rate, **kwargs))


# Rosenbrock's tolerance for Mechanic (see the module docstring).
MECHANIC_ROSENBROCK = 0.6
# Mechanic's bet reads global norms and an inner product over the whole tree, which a vmapped
# batch rounds differently (see Entry.vmap_atol): measured 5e-7 apart after 20 steps.
MECHANIC_VMAP_ATOL = 5e-6

ENTRIES = [
    # The outer optimizer's schedule runs on outer steps (half the updates): the value read
    # after 4 updates is the schedule at 2, checked in test_contrib.py, not here.
    Entry("sam", sam, lr={"quadratic": 0.01, "rosenbrock": 1e-3, "gabor": 0.005},
          steps={"quadratic": 600, "rosenbrock": 6000, "gabor": 4000}, lr_key=None),
    Entry("sam_opaque", sam_opaque, lr={"quadratic": 0.05, "rosenbrock": 0.01, "gabor": 0.05},
          extra=("grad_fn",)),
    Entry("cocob", gx.cocob, lr={"quadratic": 1.0, "rosenbrock": 1.0, "gabor": 1.0},
          steps={"rosenbrock": 6000}, supports_complex=False),
    Entry("dog", gx.dog, {"init_step": ("heuristic", 1e-3)},
          lr={"quadratic": 1.0, "rosenbrock": gx.cosine_decay_schedule(1.0, 6000),
              "gabor": 1.0}, steps={"rosenbrock": 6000}),
    Entry("dowg", gx.dowg,
          lr={"quadratic": 1.0, "rosenbrock": gx.cosine_decay_schedule(1.0, 6000),
              "gabor": 1.0}, steps={"rosenbrock": 6000}),
    Entry("mechanize", mechanize, {"s_init": 0.05},
          lr={"quadratic": 0.1, "rosenbrock": 0.1, "gabor": 0.1},
          steps={"quadratic": 1000, "rosenbrock": 6000}, tol={"rosenbrock": MECHANIC_ROSENBROCK},
          supports_complex=False, vmap_atol=MECHANIC_VMAP_ATOL),
    Entry("momo", gx.momo, lr={"quadratic": 1.0, "rosenbrock": 0.01, "gabor": 0.01},
          extra=("value",), supports_complex=False),
    Entry("momo_adam", gx.momo_adam, lr={"quadratic": 0.1, "rosenbrock": 0.01, "gabor": 0.01},
          extra=("value",), supports_complex=False),
    Entry("madgrad", gx.madgrad, lr={"quadratic": 0.01, "rosenbrock": 1e-3, "gabor": 1e-3},
          supports_complex=False),
    Entry("sophia", gx.sophia, lr={"quadratic": 0.01, "rosenbrock": 0.01, "gabor": 0.01},
          steps={"quadratic": 1500}, extra=("obj_fn",), needs_key=True,
          supports_complex=False),
    Entry("galore", gx.galore, {"rank": 1, "update_proj_gap": 20},
          lr={"quadratic": 0.05, "rosenbrock": 0.05, "gabor": 0.05}),
    Entry("dpsgd", dpsgd, lr={"quadratic": 0.05, "rosenbrock": 1e-3, "gabor": 0.01},
          steps={"rosenbrock": 6000}, needs_key=True, supports_complex=False),
    Entry("acprop", gx.acprop, lr={"quadratic": 0.05, "rosenbrock": 0.01, "gabor": 0.01}),
    Entry("simplified_ademamix", gx.simplified_ademamix,
          lr={"quadratic": 1e-3, "rosenbrock": 5e-4, "gabor": 5e-4}, steps={"quadratic": 3000}),
    Entry("split_real_and_imaginary", split_real_and_imaginary,
          lr={"quadratic": 0.05, "rosenbrock": 0.05, "gabor": 0.05}),
]
