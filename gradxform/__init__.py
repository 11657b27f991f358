"""gradxform: composable, pure gradient transformations for JAX, as values.

The public API. Everything is re-exported explicitly from ``gradxform._src``; the test suite keeps
``__all__`` and the API reference in sync.
"""

from importlib import metadata as _metadata

from gradxform._src import dtypes as dtype_policy
from gradxform._src.base import (
    Foreign,
    ForeignStateError,
    GradientTransformation,
    OptState,
    ParamSpec,
    Step,
    StructureMismatchError,
    apply_updates,
    child,
    fingerprint,
    hyper,
    hyperparams,
    identity,
    set_to_zero,
    stack,
    stateless,
    static,
)
from gradxform._src.combine import (
    by_path,
    by_regex,
    chain,
    freeze,
    masked,
    named_chain,
    partition,
    path_string,
)
from gradxform._src.config import from_config, to_config
from gradxform._src.distributed import (
    data_parallel_grad,
    data_parallel_value_and_grad,
    init_sharded,
    state_shardings,
    update_shards,
)
from gradxform._src.metrics import CSVLogger, step_metrics
from gradxform._src.module import Module
from gradxform._src.optimizers.adafactor import adafactor
from gradxform._src.optimizers.adagrad import adadelta, adagrad
from gradxform._src.optimizers.adam import (
    adabelief,
    adam,
    adamax,
    adamaxw,
    adamw,
    adan,
    ademamix,
    adopt,
    adoptw,
    amsgrad,
    nadam,
    nadamw,
    radam,
    swats,
    yogi,
)
from gradxform._src.optimizers.layerwise import fromage, lamb, lars, novograd
from gradxform._src.optimizers.muon import muon
from gradxform._src.optimizers.parameter_free import dadapt_adamw, prodigy
from gradxform._src.optimizers.rmsprop import rmsprop
from gradxform._src.optimizers.rprop import rprop
from gradxform._src.optimizers.schedule_free import schedule_free_adamw, schedule_free_sgd
from gradxform._src.optimizers.sgd import noisy_sgd, polyak_sgd, sgd
from gradxform._src.optimizers.sign import lion, normalized_sgd, sign_sgd, signum
from gradxform._src.optimizers.sm3 import sm3
from gradxform._src.schedules import (
    Schedule,
    constant_schedule,
    cosine_decay_schedule,
    cosine_onecycle_schedule,
    cyclic_schedule,
    exponential_decay,
    inverse_sqrt_schedule,
    inverse_time_decay,
    join_schedules,
    linear_onecycle_schedule,
    linear_schedule,
    multiply_schedules,
    piecewise_constant_schedule,
    piecewise_interpolate_schedule,
    polynomial_schedule,
    schedule_fn,
    sgdr_schedule,
    warmup_constant_schedule,
    warmup_cosine_decay_schedule,
    warmup_exponential_decay_schedule,
)
from gradxform._src.transforms.adabelief import ScaleByBeliefState, scale_by_belief
from gradxform._src.transforms.adadelta import ScaleByAdaDeltaState, scale_by_adadelta
from gradxform._src.transforms.adafactor import FactoredRmsState, scale_by_factored_rms
from gradxform._src.transforms.adagrad import ScaleByRssState, scale_by_rss
from gradxform._src.transforms.adam import ScaleByAdamState, scale_by_adam
from gradxform._src.transforms.adamax import scale_by_adamax
from gradxform._src.transforms.adan import ScaleByAdanState, scale_by_adan
from gradxform._src.transforms.ademamix import (
    ScaleByAdemamixState,
    ademamix_alpha_schedule,
    ademamix_b3_schedule,
    scale_by_ademamix,
)
from gradxform._src.transforms.adopt import scale_by_adopt
from gradxform._src.transforms.amsgrad import ScaleByAmsgradState, scale_by_amsgrad
from gradxform._src.transforms.block_rms import clip_by_block_rms, scale_by_param_block_rms
from gradxform._src.transforms.clipping import clip, clip_by_global_norm
from gradxform._src.transforms.fromage import scale_by_fromage
from gradxform._src.transforms.lion import ScaleByLionState, scale_by_lion
from gradxform._src.transforms.momentum import EmaState, TraceState, ema, trace
from gradxform._src.transforms.muon import (
    MuonDimensionNumbers,
    MuonState,
    orthogonalize_via_newton_schulz,
    scale_by_muon,
    scale_by_shape,
)
from gradxform._src.transforms.noise import add_noise
from gradxform._src.transforms.normalize import scale_by_normalized
from gradxform._src.transforms.novograd import ScaleByNovogradState, scale_by_novograd
from gradxform._src.transforms.parameter_free import (
    DAdaptAdamWState,
    ProdigyState,
    scale_by_dadapt_adamw,
    scale_by_prodigy,
)
from gradxform._src.transforms.polyak import scale_by_polyak
from gradxform._src.transforms.proximal import proximal_weight_decay
from gradxform._src.transforms.radam import scale_by_radam
from gradxform._src.transforms.regularisation import (
    add_decayed_weights,
    add_l1_penalty,
    add_l2_penalty,
)
from gradxform._src.transforms.rmsprop import ScaleByRmsState, ScaleByStddevState, scale_by_rms
from gradxform._src.transforms.rprop import ScaleByRpropState, scale_by_rprop
from gradxform._src.transforms.scaling import scale, scale_by_learning_rate
from gradxform._src.transforms.schedule_free import (
    ScheduleFreeState,
    schedule_free,
    schedule_free_eval_params,
)
from gradxform._src.transforms.sign import scale_by_sign
from gradxform._src.transforms.sm3 import ScaleBySm3State, scale_by_sm3
from gradxform._src.transforms.swats import SwatsState, scale_by_swats
from gradxform._src.transforms.trust_ratio import scale_by_lars, scale_by_trust_ratio
from gradxform._src.transforms.yogi import scale_by_yogi
from gradxform._src.tree import global_norm
from gradxform._src.wrappers.accumulation import AccumulateState, accumulate
from gradxform._src.wrappers.ascent import maximize
from gradxform._src.wrappers.averaging import (
    AveragedParamsState,
    averaged_params,
    ema_params,
    swa_params,
)
from gradxform._src.wrappers.finite import SkipNonFiniteState, apply_if_finite, skip_non_finite
from gradxform._src.wrappers.lookahead import LookaheadState, lookahead, lookahead_slow_params
from gradxform._src.wrappers.loss_scaling import DynamicLossScaleState, dynamic_loss_scale
from gradxform._src.wrappers.master import MasterWeightsState, master_weights
from gradxform._src.wrappers.plateau import ReduceOnPlateauState, reduce_on_plateau

try:
    __version__ = _metadata.version("gradxform")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    # the protocol and values
    "GradientTransformation", "OptState", "ParamSpec", "Step", "StructureMismatchError", "Module",
    "ForeignStateError", "fingerprint", "hyper", "static", "child", "Foreign", "apply_updates",
    "hyperparams", "stack", "global_norm", "dtype_policy", "identity", "set_to_zero", "stateless",
    "to_config", "from_config",
    # combining transformations and routing leaves
    "chain", "named_chain", "masked", "freeze", "partition", "by_regex", "by_path", "path_string",
    # transformations (the math of each optimizer, one concept per file)
    "scale", "scale_by_learning_rate", "trace", "ema", "scale_by_adam", "scale_by_rms",
    "scale_by_rss", "clip", "clip_by_global_norm", "add_decayed_weights", "add_l2_penalty",
    "add_l1_penalty", "TraceState", "EmaState", "ScaleByAdamState", "ScaleByRmsState",
    "ScaleByStddevState", "ScaleByRssState", "scale_by_sign", "scale_by_normalized",
    "scale_by_lion", "scale_by_trust_ratio", "scale_by_lars", "scale_by_fromage",
    "scale_by_novograd", "scale_by_factored_rms", "clip_by_block_rms", "scale_by_param_block_rms",
    "scale_by_sm3", "add_noise", "scale_by_polyak", "ScaleByLionState", "ScaleByNovogradState",
    "FactoredRmsState", "ScaleBySm3State", "scale_by_muon", "scale_by_shape",
    "orthogonalize_via_newton_schulz", "MuonDimensionNumbers", "MuonState", "schedule_free",
    "schedule_free_eval_params", "ScheduleFreeState", "scale_by_prodigy", "ProdigyState",
    "scale_by_dadapt_adamw", "DAdaptAdamWState", "scale_by_swats", "SwatsState", "scale_by_amsgrad",
    "scale_by_radam", "scale_by_adamax", "scale_by_belief", "scale_by_yogi", "scale_by_adan",
    "scale_by_adopt", "scale_by_ademamix", "scale_by_adadelta", "scale_by_rprop",
    "proximal_weight_decay", "ScaleByAmsgradState", "ScaleByBeliefState", "ScaleByAdanState",
    "ScaleByAdemamixState", "ScaleByAdaDeltaState", "ScaleByRpropState", "ademamix_alpha_schedule",
    "ademamix_b3_schedule",
    # optimizers (short chains of transformations)
    "sgd", "adagrad", "rmsprop", "adam", "adamw", "sign_sgd", "signum", "normalized_sgd", "lion",
    "lars", "lamb", "fromage", "novograd", "adafactor", "sm3", "noisy_sgd", "polyak_sgd", "muon",
    "schedule_free_sgd", "schedule_free_adamw", "prodigy", "dadapt_adamw", "swats", "amsgrad",
    "nadam", "nadamw", "radam", "adamax", "adamaxw", "adabelief", "yogi", "adan", "adopt", "adoptw",
    "ademamix", "adadelta", "rprop",
    # wrappers (around another transformation, on its own clock)
    "accumulate", "skip_non_finite", "apply_if_finite", "dynamic_loss_scale", "ema_params",
    "swa_params", "averaged_params", "reduce_on_plateau", "maximize", "AccumulateState",
    "SkipNonFiniteState", "DynamicLossScaleState", "AveragedParamsState", "ReduceOnPlateauState",
    "lookahead", "lookahead_slow_params", "LookaheadState", "master_weights", "MasterWeightsState",
    # schedules
    "Schedule", "schedule_fn", "constant_schedule", "linear_schedule", "polynomial_schedule",
    "exponential_decay", "piecewise_constant_schedule", "cosine_decay_schedule",
    "warmup_cosine_decay_schedule", "join_schedules", "warmup_constant_schedule",
    "warmup_exponential_decay_schedule", "piecewise_interpolate_schedule",
    "linear_onecycle_schedule", "cosine_onecycle_schedule", "sgdr_schedule", "cyclic_schedule",
    "inverse_time_decay", "inverse_sqrt_schedule", "multiply_schedules",
    # distributed training
    "state_shardings", "init_sharded", "update_shards", "data_parallel_grad",
    "data_parallel_value_and_grad",
    # training loops
    "step_metrics", "CSVLogger",
]
