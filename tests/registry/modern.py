"""Conformance entries of the modern optimizers: Muon, Schedule-Free SGD and AdamW, Prodigy,
D-Adaptation AdamW, SWATS, and lookahead around Adam and around SGD with momentum."""

import gradxform as gx
from registry import Entry


def lookahead_adam(learning_rate, **kwargs):
    """Lookahead (k=5, alpha=0.5, the paper's defaults) around Adam."""
    return gx.lookahead(gx.adam(learning_rate, **kwargs), sync_period=5, slow_step_size=0.5)


def lookahead_sgd(learning_rate, **kwargs):
    """Lookahead (k=5, alpha=0.8) around SGD with momentum 0.9, fast state reset at syncs."""
    return gx.lookahead(gx.sgd(learning_rate, momentum=0.9, **kwargs), sync_period=5,
                        slow_step_size=0.8, reset_state=True)


ENTRIES = [
    # The quadratic's 2x2 matrix leaf goes to Muon, its vector and the scalar targets to AdamW.
    # An orthogonalised step has a fixed spectral size (the Frobenius normalisation drops the
    # gradient's magnitude), so with a constant rate the matrix hovers at a distance ~lr from
    # the minimum: lr 0.02 puts that below the tolerance.
    Entry("muon", gx.muon, lr={"quadratic": 0.02, "rosenbrock": 0.02, "gabor": 0.05}),
    # Plain SGD's stability limit on Rosenbrock (curvature ~1000 at the start) sets lr 2e-3.
    Entry("schedule_free_sgd", gx.schedule_free_sgd,
          lr={"quadratic": 0.1, "rosenbrock": 2e-3, "gabor": 0.01}),
    # Schedule-Free AdamW has no momentum in its base optimizer: the training point y creeps
    # along Rosenbrock's valley at about lr per step, so it needs twice the default steps.
    Entry("schedule_free_adamw", gx.schedule_free_adamw,
          lr={"quadratic": 0.1, "rosenbrock": 0.05, "gabor": 0.05},
          # 6000 steps end between 5e-4 and 2e-2 depending on the rounding (the tolerance is
          # 1e-2); 10000 end near 5e-3 in float32 and float64
          steps={"rosenbrock": 10000}),
    # Parameter-free: the learning rate is a multiplier of the estimated step, 1 by default.
    # On Rosenbrock a constant multiplier lets the estimate d (a running maximum) grow too
    # large for the curved valley (Prodigy hovers at 1e-2 to 2e-1, D-Adaptation at 0.1 after
    # 3000 steps); with the authors' recommendation, a multiplier decaying from 1 to 0, both
    # converge to rounding level.
    # Prodigy's first steps have size ~d0; bfloat16 params near 1 cannot represent steps below
    # ~4e-3, so with the default d0 = 1e-6 they never move and the estimate (driven by the
    # distance travelled) never grows (documented in scale_by_prodigy): d0 = 1e-3 here, still
    # an under-estimate of the distances (~1) to the targets' minima.
    Entry("prodigy", gx.prodigy, {"estim_lr0": 1e-3},
          lr={"quadratic": 1.0, "rosenbrock": gx.cosine_decay_schedule(1.0, 3000),
              "gabor": 1.0}, supports_complex=False),
    Entry("dadapt_adamw", gx.dadapt_adamw,
          lr={"quadratic": 1.0, "rosenbrock": gx.cosine_decay_schedule(1.0, 3000),
              "gabor": 1.0}, supports_complex=False),
    # With the paper's eps_switch = 1e-9 the switch does not happen on these targets (SWATS is
    # Adam here); the switch itself is checked against the NumPy reference in test_modern.py.
    Entry("swats", gx.swats, lr={"quadratic": 0.05, "rosenbrock": 0.05, "gabor": 0.05}),
    Entry("lookahead_adam", lookahead_adam,
          lr={"quadratic": 0.05, "rosenbrock": 0.05, "gabor": 0.05}),
    Entry("lookahead_sgd", lookahead_sgd,
          lr={"quadratic": 0.01, "rosenbrock": 1e-3, "gabor": 0.005}),
]
