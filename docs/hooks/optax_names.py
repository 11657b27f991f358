"""Every public name of optax (top level, ``optax.contrib``, ``optax.tree_utils``) and what it is
in gradxform: the same name, another name, "the gradxform way", or out of scope.

The migration guide's name index is generated from this table (``[[optax-name-index]]``), and
``tests/test_migration_names.py`` fails when optax has a name that is neither exported by
gradxform under the same name nor listed here.

Each entry of :data:`OTHER` is ``(what, target)``: ``what`` is the text shown, ``target`` the
gradxform name it points to (``None`` for prose). :data:`COMING` lists names that keep optax's
name and are being added to gradxform; the test checks their existence only once they exist.
"""

from __future__ import annotations

import inspect

STATELESS = "no state here: the state is `()` (the step count is `OptState.count`)"
LOSS = "out of scope: a loss function (gradxform transforms gradients; compute losses with " \
       "optax, flax or your own code)"

# optax name -> (what it is in gradxform, the gradxform name it points to or None)
OTHER: dict[str, dict[str, tuple[str, str | None]]] = {
    "optax": {
        # states of transformations that keep none here
        "AdaptiveGradClipState": (STATELESS, None),
        "AddDecayedWeightsState": (STATELESS, None),
        "AddNoiseState": (STATELESS + "; the noise's key is `update(..., key=k)`", None),
        "ClipByGlobalNormState": (STATELESS, None),
        "ClipState": (STATELESS, None),
        "NonNegativeParamsState": (STATELESS, None),
        "ScaleByScheduleState": (STATELESS, None),
        "ScaleByTrustRatioState": (STATELESS, None),
        "ScaleState": (STATELESS, None),
        # states under another name or form
        "ApplyEvery": ("the state of `apply_every`", "ApplyEveryState"),
        "ApplyIfFiniteState": ("the state of `skip_non_finite` / `apply_if_finite`",
                               "SkipNonFiniteState"),
        "MultiStepsState": ("the state of `MultiSteps` / `accumulate`", "AccumulateState"),
        "MaskedState": ("the inner transformation's state itself (masked keeps none)", None),
        "MultiTransformState": ("a dict `{label: state}` (`multi_transform` / `partition`)",
                                None),
        "PartitionState": ("a dict `{label: state}` (`partition`)", None),
        "ScaleByLBFGSState": ("the state of `scale_by_lbfgs`", "ScaleByLbfgsState"),
        "ScaleByBacktrackingLinesearchState": ("the state of the line searches",
                                               "LinesearchState"),
        "ScaleByZoomLinesearchState": ("the state of the line searches", "LinesearchState"),
        "ZoomLinesearchInfo": ("what the zoom line search reports", "ZoomInfo"),
        # the protocol
        "TransformInitFn": ("the gradxform way: subclass `gx.GradientTransformation` and write "
                            "`init_state(params)` (see CONTRIBUTING.md)", None),
        "TransformUpdateFn": ("the gradxform way: subclass `gx.GradientTransformation` and "
                              "write `apply(updates, state, params, step)`", None),
        "TransformUpdateExtraArgsFn": ("the gradxform way: every `update` takes extra keyword "
                                       "arguments", None),
        "WrappedSchedule": ("a plain function as a schedule value", "schedule_fn"),
        "MaskedNode": ("`None`: leaves routed away from a transformation appear to it as "
                       "`None`", None),
        "LookaheadParams": ("the gradxform way: the params are the fast weights; read the slow "
                            "ones with `gx.lookahead_slow_params(opt, state)`",
                            "lookahead_slow_params"),
        "scale_gradient": ("out of scope: it scales the gradient flowing through a value in "
                           "the forward pass, not a transformation of updates", None),
        # namespaces
        "contrib": ("its optimizers are top-level names (see the rows of `optax.contrib`)",
                    None),
        "schedules": ("the schedules are top-level names (`gx.cosine_decay_schedule`, ...)",
                      None),
        "transforms": ("the transformations are top-level names", None),
        "losses": (LOSS, None),
        "experimental": ("out of scope: optax's experimental modules", None),
        "assignment": ("out of scope: linear assignment (Hungarian algorithm), not an "
                       "optimizer", None),
        "projections": ("out of scope: projections onto constraint sets; project the params "
                        "after `apply_updates` in the training loop", None),
        "perturbations": ("out of scope: perturbed optimizers (smoothing non-differentiable "
                          "functions), not a transformation of updates", None),
        "second_order": ("out of scope: Hessian and Fisher utilities; `jax.hessian`, "
                         "`jax.jvp` of `jax.grad`", None),
        "nnls": ("out of scope: a non-negative least-squares solver", None),
        "flatten": ("the gradxform way: not needed, every transformation works leaf by leaf on "
                    "any tree (`jax.flatten_util.ravel_pytree` flattens one)", None),
        "tree_map_params": ("optax's call; keeps the state's param spec",
                            "tree_map_params"),
    },
    "optax.contrib": {
        "ReduceLROnPlateauState": ("the state of `reduce_on_plateau`", "ReduceOnPlateauState"),
    },
    "optax.tree_utils": {},
}

for _loss in ("convex_kl_divergence", "cosine_distance", "cosine_similarity", "ctc_loss",
              "ctc_loss_with_forward_probs", "generalized_kl_divergence", "hinge_loss",
              "huber_loss", "kl_divergence", "l2_loss", "log_cosh", "ntxent",
              "safe_softmax_cross_entropy", "sigmoid_binary_cross_entropy",
              "sigmoid_focal_loss", "smooth_labels", "softmax_cross_entropy",
              "softmax_cross_entropy_with_integer_labels", "squared_error"):
    OTHER["optax"][_loss] = (LOSS, None)

# Names gradxform keeps from optax that are being added (the same name in gradxform). Empty
# when every name is in: the test then checks that each listed name exists.
COMING: dict[str, set[str]] = {
    "optax": set(),
    "optax.contrib": set(),
    "optax.tree_utils": set(),
}


def optax_public(namespace: str) -> list[str]:
    """The public names of an optax namespace (modules it merely imports left out)."""
    import importlib

    mod = importlib.import_module(namespace)
    names = []
    for name in dir(mod):
        if name.startswith("_"):
            continue
        value = getattr(mod, name)
        if inspect.ismodule(value) and not value.__name__.startswith("optax"):
            continue  # functools, typing
        names.append(name)
    return names


def gradxform_home(namespace: str):
    import gradxform as gx

    return gx.tree_utils if namespace == "optax.tree_utils" else gx


def classify(namespace: str, name: str) -> tuple[str, str, str | None]:
    """``(kind, text, target)``: kind is ``"same"``, ``"other"``, ``"coming"`` or
    ``"unlisted"``; target the gradxform name (``None`` for prose)."""
    home = gradxform_home(namespace)
    if name in OTHER[namespace]:
        what, target = OTHER[namespace][name]
        return "other", what, target
    if hasattr(home, name):
        return "same", "", name
    if name in COMING[namespace]:
        return "coming", "", name
    return "unlisted", "", None


def index_markdown() -> str:
    """The name index of the migration guide, one table per optax namespace."""
    import gradxform as gx

    out = []
    for namespace in ("optax", "optax.contrib", "optax.tree_utils"):
        prefix = "gx.tree_utils." if namespace == "optax.tree_utils" else "gx."
        anchor = "gradxform.tree_utils" if namespace == "optax.tree_utils" else None
        rows = [f"### `{namespace}`", "", "| optax | gradxform |", "| --- | --- |"]
        for name in sorted(optax_public(namespace), key=str.lower):
            kind, what, target = classify(namespace, name)
            if target is not None and anchor is None and target in gx.__all__:
                shown = f"[`{prefix}{target}`][gradxform.{target}]"
            elif target is not None:
                shown = f"`{prefix}{target}`"
            else:
                shown = ""
            if kind == "unlisted":
                text = "**not listed**"
            elif kind == "other":
                text = f"{shown}: {what}" if shown else what
            else:
                text = shown
            rows.append(f"| `{namespace}.{name}` | {text} |")
        out.append("\n".join(rows))
    return "\n\n".join(out)
