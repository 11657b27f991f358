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

# -- sign-based, normalised, layer-wise, memory-light and other optimizers --------------------
from gradxform._src.optimizers.layerwise import fromage, lamb, lars, novograd
from gradxform._src.optimizers.memory_light import adafactor, sm3
from gradxform._src.optimizers.others import noisy_sgd, polyak_sgd
from gradxform._src.optimizers.sign import lion, normalized_sgd, sign_sgd, signum
from gradxform._src.transforms.block_rms import clip_by_block_rms, scale_by_param_block_rms
from gradxform._src.transforms.factored import FactoredRmsState, scale_by_factored_rms
from gradxform._src.transforms.fromage import scale_by_fromage
from gradxform._src.transforms.lion import ScaleByLionState, scale_by_lion
from gradxform._src.transforms.noise import add_noise
from gradxform._src.transforms.normalize import scale_by_normalized
from gradxform._src.transforms.novograd import ScaleByNovogradState, scale_by_novograd
from gradxform._src.transforms.polyak import scale_by_polyak
from gradxform._src.transforms.sign import scale_by_sign
from gradxform._src.transforms.sm3 import ScaleBySm3State, scale_by_sm3
from gradxform._src.transforms.trust_ratio import scale_by_lars, scale_by_trust_ratio
# ---------------------------------------------------------------------------------------------

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
    # -- sign-based, normalised, layer-wise, memory-light and other optimizers --
    "sign_sgd", "signum", "normalized_sgd", "lion", "lars", "lamb", "fromage", "novograd",
    "adafactor", "sm3", "noisy_sgd", "polyak_sgd",
    "scale_by_sign", "scale_by_normalized", "scale_by_lion", "scale_by_trust_ratio",
    "scale_by_lars", "scale_by_fromage", "scale_by_novograd", "scale_by_factored_rms",
    "clip_by_block_rms", "scale_by_param_block_rms", "scale_by_sm3", "add_noise",
    "scale_by_polyak",
    "ScaleByLionState", "ScaleByNovogradState", "FactoredRmsState", "ScaleBySm3State",
]
