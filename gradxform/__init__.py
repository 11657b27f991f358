"""gradxform: composable, pure gradient transformations for JAX, as values.

The public API. Everything is re-exported explicitly from ``gradxform._src``; the test suite keeps
``__all__`` and the API reference in sync.
"""

from gradxform._src import dtypes as dtype_policy
from gradxform._src.base import (
    Foreign,
    GradientTransformation,
    OptState,
    ParamSpec,
    Step,
    StructureMismatchError,
    apply_updates,
    hyperparams,
    identity,
    set_to_zero,
    stack,
    stateless,
)
from gradxform._src.combine import chain, masked, named_chain
from gradxform._src.module import Module, child, hyper, static
from gradxform._src.optimizers.adam_family import adam, adamw
from gradxform._src.optimizers.classic import adagrad, rmsprop, sgd
from gradxform._src.schedules import (
    Schedule,
    constant_schedule,
    cosine_decay_schedule,
    exponential_decay,
    join_schedules,
    linear_schedule,
    piecewise_constant_schedule,
    polynomial_schedule,
    schedule_fn,
    warmup_cosine_decay_schedule,
)
from gradxform._src.transforms.adaptive import (
    ScaleByAdamState,
    ScaleByRmsState,
    ScaleByRssState,
    ScaleByStddevState,
    scale_by_adam,
    scale_by_rms,
    scale_by_rss,
)
from gradxform._src.transforms.clipping import clip, clip_by_global_norm
from gradxform._src.transforms.momentum import EmaState, TraceState, ema, trace
from gradxform._src.transforms.regularisation import (
    add_decayed_weights,
    add_l1_penalty,
    add_l2_penalty,
)
from gradxform._src.transforms.scaling import scale, scale_by_learning_rate
from gradxform._src.tree import global_norm

__version__ = "0.1.0"

__all__ = [
    # protocol and values
    "GradientTransformation", "OptState", "ParamSpec", "Step", "StructureMismatchError",
    "Module", "hyper", "static", "child", "Foreign",
    "apply_updates", "hyperparams", "stack", "global_norm", "dtype_policy",
    # combinators
    "chain", "named_chain", "masked", "identity", "set_to_zero", "stateless",
    # transforms
    "scale", "scale_by_learning_rate", "trace", "ema", "scale_by_adam", "scale_by_rms",
    "scale_by_rss", "clip", "clip_by_global_norm", "add_decayed_weights", "add_l2_penalty",
    "add_l1_penalty",
    # states
    "TraceState", "EmaState", "ScaleByAdamState", "ScaleByRmsState", "ScaleByStddevState",
    "ScaleByRssState",
    # optimizers
    "sgd", "adagrad", "rmsprop", "adam", "adamw",
    # schedules
    "Schedule", "schedule_fn", "constant_schedule", "linear_schedule", "polynomial_schedule",
    "exponential_decay", "piecewise_constant_schedule", "cosine_decay_schedule",
    "warmup_cosine_decay_schedule", "join_schedules",
]

# Training loops: per-step metrics and logging.
from gradxform._src.metrics import CSVLogger, step_metrics  # noqa: E402

__all__ += ["step_metrics", "CSVLogger"]
