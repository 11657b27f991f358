"""From a configuration to an optimizer: :func:`build`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from gradxform._src.schedules import warmup_cosine_decay_schedule

__all__ = ["build", "SCHEDULE_KEYS"]

#: Configuration keys :func:`build` turns into a learning-rate schedule (unless the factory
#: itself takes an argument of that name).
SCHEDULE_KEYS = ("warmup", "warmup_steps", "decay_steps", "end_factor")


def _parameters(factory: Callable) -> tuple[set[str], bool]:
    """The keyword names ``factory`` accepts, and whether it takes ``**kwargs``."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in sig.parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def _is_batch(value: Any) -> bool:
    return np.ndim(value) >= 1


def build(factory: Callable[..., Any], config: Mapping[str, Any], *,
          ignore: Sequence[str] = (), **fixed: Any) -> Any:
    """Build an optimizer from a configuration: ``factory(**config)``, checked, with schedules.

    Every key of ``config`` (and of ``fixed``, arguments that are not searched) must be an
    argument of ``factory`` or a schedule key; keys listed in ``ignore`` are left out (for
    example the parameter that chose the factory). Schedule keys, unless ``factory`` takes an
    argument of that name itself, turn ``learning_rate`` into
    ``warmup_cosine_decay_schedule(0, learning_rate, warmup, decay_steps,
    end_factor * learning_rate)``:

    * ``warmup`` (or ``warmup_steps``): steps of linear warmup from 0 to ``learning_rate``
      (default 0);
    * ``decay_steps``: the schedule's total length, warmup included (needed if ``warmup`` is
      given; usually the number of training steps, passed in ``fixed``);
    * ``end_factor``: the final learning rate as a fraction of the peak (default 0).

    A *batch* of configurations (a dict of arrays with a leading axis, as a vectorized
    objective's batch) gives one optimizer whose every leaf has that leading axis, ready for
    ``jax.vmap(train)(opt)``; this is ``jax.vmap`` of :func:`build` over the batch. Inside a
    vectorized objective (a dict of traced scalars) the values are the optimizer's leaves, so a
    new configuration is new data, not a new program.

    Args:
      factory: an optimizer factory (``gx.adamw``) or any callable taking keyword arguments.
      config: a configuration ``{name: value}``, or a batch ``{name: array[k]}``.
      ignore: keys of ``config`` not to pass on.
      **fixed: further keyword arguments for ``factory`` (or schedule keys).

    Returns:
      ``factory(**arguments)``; stacked along a leading axis for a batch.

    Example::

        space = {"learning_rate": search.Float(1e-4, 1e-1, log=True), "b1": search.Float(0.8, 0.99),
                 "warmup": search.Int(0, 100)}
        opt = search.build(gx.adamw, config, decay_steps=1_000, weight_decay=1e-4)
    """
    name = getattr(factory, "__name__", type(factory).__name__)
    where = f"search.build({name})"
    if not callable(factory):
        raise TypeError(f"search.build: factory must be callable, got {factory!r}")
    if not isinstance(config, Mapping):
        raise TypeError(f"{where}: config must be a dict, got {type(config).__name__}")
    left_out = set(ignore)
    clash = [k for k in fixed if k in config and k not in left_out]
    if clash:
        raise ValueError(f"{where}: {clash[0]!r} is both in the configuration and passed as a "
                         "fixed argument")
    values = {k: v for k, v in config.items() if k not in left_out}
    batched = {k: v for k, v in values.items() if _is_batch(v)}
    if batched:
        scalars = {k: v for k, v in values.items() if k not in batched}
        one = functools.partial(_build_one, factory, name, scalars=scalars, fixed=fixed)
        return jax.vmap(one)(batched)
    return _build_one(factory, name, values, scalars={}, fixed=fixed)


def _build_one(factory, name, values, *, scalars, fixed):
    where = f"search.build({name})"
    args = {**scalars, **values, **fixed}
    accepted, var_kw = _parameters(factory)
    schedule = {k: args.pop(k) for k in SCHEDULE_KEYS if k in args and k not in accepted}
    if not var_kw:
        unknown = sorted(k for k in args if k not in accepted)
        if unknown:
            takes = ", ".join(sorted(accepted)) or "no keyword arguments"
            raise ValueError(
                f"{where}: {unknown[0]!r} is not an argument of {name} (it takes "
                f"{takes}); pass ignore=({unknown[0]!r},) to leave it out"
            )
    if schedule:
        if "warmup" in schedule and "warmup_steps" in schedule:
            raise ValueError(f"{where}: give warmup or warmup_steps, not both")
        warmup = schedule.get("warmup", schedule.get("warmup_steps", 0))
        if "decay_steps" not in schedule:
            raise ValueError(
                f"{where}: a learning-rate schedule needs decay_steps (its total length, warmup "
                "included): put it in the space or pass build(..., decay_steps=N)"
            )
        if "learning_rate" not in args:
            raise ValueError(f"{where}: the schedule keys {sorted(schedule)} need a "
                             "learning_rate (the peak of the schedule)")
        peak = args["learning_rate"]
        end = schedule.get("end_factor", 0.0) * peak
        args["learning_rate"] = warmup_cosine_decay_schedule(
            init_value=0.0, peak_value=peak, warmup_steps=warmup,
            decay_steps=schedule["decay_steps"], end_value=end)
    return factory(**args)
