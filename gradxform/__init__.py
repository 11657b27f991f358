"""gradxform: composable, pure gradient transformations for JAX, as values.

The public API. Everything is re-exported explicitly from ``gradxform._src``; the test suite keeps
``__all__`` and the API reference in sync.
"""

from importlib import metadata as _metadata

from gradxform._src import dtypes as dtype_policy
from gradxform._src import microbatching, tree_utils
from gradxform._src import tree_namespace as tree
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
    multi_transform,
    named_chain,
    partition,
    path_string,
    selective_transform,
)
from gradxform._src.config import from_config, to_config
from gradxform._src.distributed import (
    data_parallel_grad,
    data_parallel_value_and_grad,
    init_sharded,
    state_shardings,
    update_shards,
)
from gradxform._src.distributions import MultiNormalDiagFromLogScale, multi_normal
from gradxform._src.flat import FlatParams, FlatUnsupportedError, flat_params
from gradxform._src.hyperparams import (
    InjectHyperparamsState,
    hyperparams_as_arrays,
    inject_hyperparams,
    inject_stateful_hyperparams,
    set_hyperparams,
)
from gradxform._src.linear_algebra import matrix_inverse_pth_root, power_iteration
from gradxform._src.metrics import CSVLogger, step_metrics
from gradxform._src.microbatching import microbatch
from gradxform._src.minimize import (
    MinimizeResult,
    Solver,
    SolverState,
    minimize,
    value_and_grad_from_state,
)
from gradxform._src.module import Module
from gradxform._src.monitoring import (
    MeasureWithEmaState,
    MonitorState,
    SnapshotState,
    measure_with_ema,
    measurements,
    monitor,
    snapshot,
)
from gradxform._src.numerics import (
    safe_int32_increment,
    safe_norm,
    safe_root_mean_squares,
)
from gradxform._src.optimizers.acprop import acprop
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
from gradxform._src.optimizers.distance_based import cocob, dog, dowg
from gradxform._src.optimizers.galore import galore
from gradxform._src.optimizers.layerwise import fromage, lamb, lars, novograd
from gradxform._src.optimizers.madgrad import madgrad
from gradxform._src.optimizers.momo import momo, momo_adam
from gradxform._src.optimizers.muon import muon
from gradxform._src.optimizers.newton import newton
from gradxform._src.optimizers.optimistic import (
    optimistic_adam,
    optimistic_adam_v2,
    optimistic_gradient_descent,
)
from gradxform._src.optimizers.parameter_free import dadapt_adamw, prodigy
from gradxform._src.optimizers.private import dpsgd
from gradxform._src.optimizers.quasi_newton import (
    bfgs,
    gradient_descent_linesearch,
    lbfgs,
)
from gradxform._src.optimizers.rmsprop import rmsprop
from gradxform._src.optimizers.rprop import rprop
from gradxform._src.optimizers.schedule_free import schedule_free_adamw, schedule_free_sgd
from gradxform._src.optimizers.sgd import noisy_sgd, polyak_sgd, sgd
from gradxform._src.optimizers.sign import lion, normalized_sgd, sign_sgd, signum
from gradxform._src.optimizers.simplified_ademamix import simplified_ademamix
from gradxform._src.optimizers.sm3 import sm3
from gradxform._src.optimizers.sophia import sophia
from gradxform._src.schedules import (
    Schedule,
    constant_schedule,
    cosine_decay_restarts,
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
from gradxform._src.stateless import (
    EmptyState,
    init_empty_state,
    stateless_with_tree_map,
    with_extra_args_support,
)
from gradxform._src.target_networks import incremental_update, periodic_update
from gradxform._src.transforms.acprop import scale_by_acprop
from gradxform._src.transforms.adabelief import ScaleByBeliefState, scale_by_belief
from gradxform._src.transforms.adadelta import ScaleByAdaDeltaState, scale_by_adadelta
from gradxform._src.transforms.adafactor import FactoredRmsState, scale_by_factored_rms
from gradxform._src.transforms.adagrad import ScaleByRssState, scale_by_rss
from gradxform._src.transforms.adam import ScaleByAdamState, scale_by_adam
from gradxform._src.transforms.adamax import scale_by_adamax
from gradxform._src.transforms.adan import ScaleByAdanState, scale_by_adan
from gradxform._src.transforms.adaptive_clip import adaptive_grad_clip
from gradxform._src.transforms.ademamix import (
    ScaleByAdemamixState,
    ademamix_alpha_schedule,
    ademamix_b3_schedule,
    scale_by_ademamix,
)
from gradxform._src.transforms.adopt import scale_by_adopt
from gradxform._src.transforms.amsgrad import ScaleByAmsgradState, scale_by_amsgrad
from gradxform._src.transforms.apply_every import ApplyEveryState, apply_every
from gradxform._src.transforms.bfgs import ScaleByBfgsState, scale_by_bfgs
from gradxform._src.transforms.block_rms import clip_by_block_rms, scale_by_param_block_rms
from gradxform._src.transforms.centralize import centralize
from gradxform._src.transforms.clipping import clip, clip_by_global_norm
from gradxform._src.transforms.cocob import COCOBState, scale_by_cocob
from gradxform._src.transforms.complex_valued import (
    SplitRealAndImaginaryArrays,
    SplitRealAndImaginaryState,
    split_real_and_imaginary,
)
from gradxform._src.transforms.constrain import (
    ZeroNansState,
    keep_params_nonnegative,
    zero_nans,
)
from gradxform._src.transforms.dog import (
    ScaleByDistanceOverGradientsState,
    scale_by_distance_over_gradients,
)
from gradxform._src.transforms.dog_global import (
    DoGInitStep,
    DoGState,
    DoWGState,
    scale_by_dog,
    scale_by_dowg,
)
from gradxform._src.transforms.dp import (
    DifferentiallyPrivateAggregateState,
    differentially_private_aggregate,
)
from gradxform._src.transforms.fromage import scale_by_fromage
from gradxform._src.transforms.galore import (
    GaLoreDimensionNumbers,
    GaLoreState,
    scale_by_galore,
)
from gradxform._src.transforms.lbfgs import ScaleByLbfgsState, scale_by_lbfgs
from gradxform._src.transforms.linesearch import (
    BacktrackingInfo,
    GoldenSectionInfo,
    LinesearchState,
    ZoomInfo,
    backtracking_linesearch,
    golden_section_linesearch,
    scale_by_backtracking_linesearch,
    scale_by_zoom_linesearch,
    zoom_linesearch,
)
from gradxform._src.transforms.lion import ScaleByLionState, scale_by_lion
from gradxform._src.transforms.madgrad import MadgradState, scale_by_madgrad
from gradxform._src.transforms.mechanic import MechanicState, mechanize
from gradxform._src.transforms.momentum import EmaState, TraceState, ema, trace
from gradxform._src.transforms.momo import (
    MomoAdamState,
    MomoState,
    scale_by_momo,
    scale_by_momo_adam,
)
from gradxform._src.transforms.muon import (
    MuonDimensionNumbers,
    MuonState,
    orthogonalize_via_newton_schulz,
    scale_by_muon,
    scale_by_shape,
)
from gradxform._src.transforms.newton import ScaleByNewtonState, scale_by_newton
from gradxform._src.transforms.noise import add_noise
from gradxform._src.transforms.norm_scaling import (
    normalize_by_update_norm,
    scale_by_param_block_norm,
)
from gradxform._src.transforms.normalize import scale_by_normalized
from gradxform._src.transforms.novograd import ScaleByNovogradState, scale_by_novograd
from gradxform._src.transforms.optimistic import (
    ScaleByOptimisticGradientState,
    scale_by_optimistic_gradient,
)
from gradxform._src.transforms.parameter_free import (
    DAdaptAdamWState,
    ProdigyState,
    scale_by_dadapt_adamw,
    scale_by_prodigy,
)
from gradxform._src.transforms.per_example_clip import (
    per_example_global_norm_clip,
    per_example_layer_norm_clip,
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
from gradxform._src.transforms.sam import NormalizeState, SAMState, normalize, sam
from gradxform._src.transforms.scaling import scale, scale_by_learning_rate
from gradxform._src.transforms.schedule_free import (
    ScheduleFreeState,
    schedule_free,
    schedule_free_eval_params,
)
from gradxform._src.transforms.schedule_scaling import scale_by_schedule
from gradxform._src.transforms.sign import scale_by_sign
from gradxform._src.transforms.simplified_ademamix import (
    ScaleBySimplifiedAdEMAMixState,
    scale_by_simplified_ademamix,
)
from gradxform._src.transforms.sm3 import ScaleBySm3State, scale_by_sm3
from gradxform._src.transforms.sophia import (
    HutchinsonState,
    SophiaState,
    hutchinson_estimator_diag_hessian,
    scale_by_sophia,
)
from gradxform._src.transforms.stddev import scale_by_stddev
from gradxform._src.transforms.swats import SwatsState, scale_by_swats
from gradxform._src.transforms.trust_ratio import scale_by_lars, scale_by_trust_ratio
from gradxform._src.transforms.yogi import scale_by_yogi
from gradxform._src.tree import (
    bias_correction,
    global_norm,
    safe_increment,
    update_infinity_moment,
    update_moment,
    update_moment_per_elem_norm,
)
from gradxform._src.tree_utils import (
    tree_get,
    tree_get_all_with_path,
    tree_map_params,
    tree_set,
)

# Type aliases under optax's names: importable (gx.Params), but not in __all__, because the API
# reference is built by inspecting objects and a typing construct has nothing of gradxform's in it.
from gradxform._src.types import (  # noqa: F401
    MaskOrFn,
    Params,
    ScalarOrSchedule,
    Updates,
)
from gradxform._src.wrappers.accumulation import AccumulateState, MultiSteps, accumulate
from gradxform._src.wrappers.ascent import maximize
from gradxform._src.wrappers.averaging import (
    AveragedParamsState,
    averaged_params,
    ema_params,
    swa_params,
)
from gradxform._src.wrappers.conditional import (
    ConditionallyMaskState,
    ConditionallyTransformState,
    conditionally_mask,
    conditionally_transform,
)
from gradxform._src.wrappers.finite import SkipNonFiniteState, apply_if_finite, skip_non_finite
from gradxform._src.wrappers.lookahead import LookaheadState, lookahead, lookahead_slow_params
from gradxform._src.wrappers.loss_scaling import DynamicLossScaleState, dynamic_loss_scale
from gradxform._src.wrappers.master import MasterWeightsState, master_weights
from gradxform._src.wrappers.plateau import ReduceOnPlateauState, reduce_on_plateau
from gradxform._src.wrappers.should_skip import (
    ShouldSkipUpdateFunction,  # noqa: F401  (a type alias: see above)
    skip_large_updates,
    skip_not_finite,
)
from gradxform._src.wrappers.svrg import SvrgRun, SvrgState, svrg, svrg_run

# optax's name for the same state (gradxform's schedules keep no state of their own).
InjectStatefulHyperparamsState = InjectHyperparamsState

try:
    __version__ = _metadata.version("gradxform")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

# optax's names for classes gradxform has under its own names (the states keep no step count:
# it is the optimizer's, in OptState.count; every transformation takes extra arguments).
ScaleByRStdDevState = ScaleByStddevState
ScaleBySM3State = ScaleBySm3State
FactoredState = FactoredRmsState
GradientTransformationExtraArgs = GradientTransformation

__all__ = [
    # the protocol and values
    "GradientTransformation", "OptState", "ParamSpec", "Step", "StructureMismatchError", "Module",
    "ForeignStateError", "fingerprint",
    "hyper", "static", "child", "Foreign", "apply_updates", "hyperparams", "stack", "global_norm",
    "dtype_policy", "identity", "set_to_zero", "stateless", "to_config", "from_config",
    # editing hyperparameters and states (optax's tree_utils names)
    "set_hyperparams", "hyperparams_as_arrays", "inject_hyperparams",
    "inject_stateful_hyperparams", "InjectHyperparamsState", "InjectStatefulHyperparamsState",
    "tree_utils", "tree", "tree_get", "tree_set", "tree_get_all_with_path", "tree_map_params",
    # combining transformations and routing leaves
    "chain", "named_chain", "masked", "freeze", "partition", "by_regex", "by_path", "path_string",
    "multi_transform",
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
    "lookahead", "lookahead_slow_params", "LookaheadState", "MultiSteps",
    "master_weights", "MasterWeightsState",
    # schedules
    "Schedule", "schedule_fn", "constant_schedule", "linear_schedule", "polynomial_schedule",
    "exponential_decay", "piecewise_constant_schedule", "cosine_decay_schedule",
    "warmup_cosine_decay_schedule", "join_schedules", "warmup_constant_schedule",
    "warmup_exponential_decay_schedule", "piecewise_interpolate_schedule",
    "linear_onecycle_schedule", "cosine_onecycle_schedule", "sgdr_schedule",
    "cosine_decay_restarts", "cyclic_schedule",
    "inverse_time_decay", "inverse_sqrt_schedule", "multiply_schedules",
    # flat parameter buffers
    "flat_params", "FlatParams", "FlatUnsupportedError",
    # distributed training
    "state_shardings", "init_sharded", "update_shards", "data_parallel_grad",
    "data_parallel_value_and_grad",
    # training loops
    "step_metrics", "CSVLogger", "microbatch", "microbatching",
    # -- optax's core names: constraints, clipping, norms, optimistic methods, monitoring --
    # transforms
    "zero_nans", "keep_params_nonnegative", "centralize", "adaptive_grad_clip",
    "scale_by_param_block_norm", "normalize_by_update_norm", "scale_by_stddev",
    "scale_by_schedule", "scale_by_distance_over_gradients", "apply_every",
    "scale_by_optimistic_gradient", "stateless_with_tree_map",
    # wrappers and monitoring
    "conditionally_mask", "conditionally_transform", "selective_transform", "snapshot",
    "measure_with_ema", "monitor", "measurements",
    # optimizers
    "optimistic_gradient_descent", "optimistic_adam", "optimistic_adam_v2",
    # functions: per-example clipping, skip predicates, target networks, tree math, numerics
    "per_example_global_norm_clip", "per_example_layer_norm_clip", "skip_not_finite",
    "skip_large_updates", "incremental_update", "periodic_update", "bias_correction",
    "update_moment", "update_moment_per_elem_norm", "update_infinity_moment", "safe_increment",
    "safe_int32_increment", "safe_norm", "safe_root_mean_squares", "power_iteration",
    "matrix_inverse_pth_root", "multi_normal", "MultiNormalDiagFromLogScale",
    "init_empty_state", "with_extra_args_support",
    # states and types
    "ZeroNansState", "ApplyEveryState", "ScaleByDistanceOverGradientsState",
    "ScaleByOptimisticGradientState", "ConditionallyMaskState", "ConditionallyTransformState",
    "SnapshotState", "MeasureWithEmaState", "MonitorState", "EmptyState",
    # optax's names for existing classes
    "ScaleByRStdDevState", "ScaleBySM3State", "FactoredState", "GradientTransformationExtraArgs",
    # -- optax.contrib: SAM, COCOB, DoG/DoWG, Mechanic, MoMo, MADGRAD, Sophia, GaLore, DP-SGD --
    # optimizers
    "sam", "cocob", "dog", "dowg", "mechanize", "momo", "momo_adam", "madgrad", "sophia",
    "galore", "dpsgd", "acprop", "simplified_ademamix", "split_real_and_imaginary",
    # transforms
    "normalize", "scale_by_cocob", "scale_by_dog", "scale_by_dowg", "scale_by_momo",
    "scale_by_momo_adam", "scale_by_madgrad", "scale_by_sophia",
    "hutchinson_estimator_diag_hessian", "scale_by_galore", "differentially_private_aggregate",
    "scale_by_acprop", "scale_by_simplified_ademamix",
    # states and specifications
    "SAMState", "NormalizeState", "COCOBState", "DoGState", "DoGInitStep", "DoWGState",
    "MechanicState", "MomoState", "MomoAdamState", "MadgradState", "SophiaState",
    "HutchinsonState", "GaLoreState", "GaLoreDimensionNumbers",
    "DifferentiallyPrivateAggregateState", "ScaleBySimplifiedAdEMAMixState",
    "SplitRealAndImaginaryState", "SplitRealAndImaginaryArrays",
    # -- line searches, L-BFGS, BFGS, Newton, SVRG and minimize --
    # line searches
    "backtracking_linesearch", "golden_section_linesearch", "zoom_linesearch",
    "scale_by_backtracking_linesearch", "scale_by_zoom_linesearch", "LinesearchState",
    "BacktrackingInfo", "GoldenSectionInfo", "ZoomInfo",
    # directions and optimizers
    "scale_by_lbfgs", "ScaleByLbfgsState", "scale_by_bfgs", "ScaleByBfgsState",
    "scale_by_newton", "ScaleByNewtonState", "lbfgs", "bfgs", "newton",
    "gradient_descent_linesearch",
    # SVRG
    "svrg", "svrg_run", "SvrgState", "SvrgRun",
    # minimize and the solver
    "minimize", "MinimizeResult", "Solver", "SolverState",
    "value_and_grad_from_state",
]
