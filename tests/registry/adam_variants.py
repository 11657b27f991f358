"""Conformance entries of the Adam variants (AMSGrad, NAdam(W), RAdam, AdaMax(W), AdaBelief,
Yogi, Adan, ADOPT(W), AdEMAMix) and the adaptive classics (Adadelta, Rprop).

Learning rates and step counts were chosen per target by a scan over learning rates; the
defaults of ``registry.DEFAULT_TOL`` hold for every entry. Where an optimizer needs more steps
than the defaults, the reason is given next to it.
"""

import gradxform as gx
from registry import Entry

ADAM_LIKE = {"quadratic": 0.05, "rosenbrock": 0.02, "gabor": 0.05}

ENTRIES = [
    # The running maximum of the second moment keeps the effective step from growing back,
    # so Rosenbrock's long valley needs a larger learning rate than Adam's.
    Entry("amsgrad", gx.amsgrad, lr={"quadratic": 0.1, "rosenbrock": 0.3, "gabor": 0.05}),
    Entry("amsgrad_paper_form", gx.amsgrad,
          {"bias_correction_mu": False, "bias_correction_nu": False},
          lr={"quadratic": 0.1, "rosenbrock": 0.3, "gabor": 0.05}),
    Entry("nadam", gx.nadam, lr=ADAM_LIKE),
    Entry("nadamw", gx.nadamw, {"weight_decay": 1e-4}, lr=ADAM_LIKE),
    # RAdam's first steps (rho_t < 5) are SGD with momentum on the raw gradient, which is 200
    # at Rosenbrock's start: learning rates above ~0.006 throw the iterate out of the valley,
    # and at 0.005 the rectified phase needs more than the default 3000 steps.
    Entry("radam", gx.radam, lr={"quadratic": 0.1, "rosenbrock": 0.005, "gabor": 0.05},
          steps={"rosenbrock": 8000}),
    Entry("adamax", gx.adamax, lr={"quadratic": 0.1, "rosenbrock": 0.1, "gabor": 0.05}),
    Entry("adamaxw", gx.adamaxw, {"weight_decay": 1e-4},
          lr={"quadratic": 0.1, "rosenbrock": 0.1, "gabor": 0.05}),
    Entry("adabelief", gx.adabelief, lr={"quadratic": 0.03, "rosenbrock": 0.03, "gabor": 0.03}),
    Entry("yogi", gx.yogi, lr={"quadratic": 0.1, "rosenbrock": 0.1, "gabor": 0.05}),
    Entry("yogi_paper_form", gx.yogi, {"initial_accumulator_value": 0.0,
                                       "bias_correction": False},
          lr={"quadratic": 0.1, "rosenbrock": 0.1, "gabor": 0.05}),
    # b1 = 0.98 averages the gradient over ~50 steps: the quadratic needs more than 300.
    Entry("adan", gx.adan, lr={"quadratic": 0.1, "rosenbrock": 0.01, "gabor": 0.03},
          steps={"quadratic": 1000}),
    Entry("adan_paper_form", gx.adan,
          {"paper_difference_weight": True, "proximal_decay": True, "weight_decay": 1e-4},
          lr={"quadratic": 0.3, "rosenbrock": 0.01, "gabor": 0.03}),
    Entry("adopt", gx.adopt, lr={"quadratic": 0.1, "rosenbrock": 0.3, "gabor": 0.05}),
    Entry("adoptw", gx.adoptw, {"weight_decay": 1e-4},
          lr={"quadratic": 0.1, "rosenbrock": 0.3, "gabor": 0.05}),
    Entry("ademamix", gx.ademamix, lr={"quadratic": 0.3, "rosenbrock": 0.1, "gabor": 0.05}),
    Entry("ademamix_warmup", gx.ademamix,
          {"b3": gx.ademamix_b3_schedule(0.999, 1000),
           "alpha": gx.ademamix_alpha_schedule(5.0, 1000), "weight_decay": 1e-4},
          lr={"quadratic": 0.3, "rosenbrock": 0.1, "gabor": 0.05}),
    # Adadelta's step ratio sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) starts near sqrt(eps) and
    # tends to 1 as gradients vanish: it starts slowly, then behaves like gradient descent with
    # the learning rate as step size, which converges only below 2 / (largest curvature): 0.1
    # on the quadratic (curvature 20), and on Rosenbrock (curvature 1000 at the minimum) the
    # iterate settles near the minimum at a loss that depends on lr (1.4e-3 with 0.004). With
    # the default eps = 1e-6 the first steps are ~1e-4 of the params, below bfloat16's
    # resolution for the 60 steps of the bfloat16 property test; eps = 1e-4 starts faster.
    Entry("adadelta", gx.adadelta, {"eps": 1e-4},
          lr={"quadratic": 0.1, "rosenbrock": 0.004, "gabor": 0.1},
          steps={"quadratic": 1000, "rosenbrock": 10000}),
    # The learning rate is Rprop's initial step size (used by init; not a schedule).
    Entry("rprop", gx.rprop, lr={"quadratic": 0.01, "rosenbrock": 0.01, "gabor": 0.01},
          supports_complex=False, lr_key=None),
]
