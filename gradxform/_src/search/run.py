"""``search.minimize``: run a strategy against an objective, one trial at a time or a whole batch
of trials as one compiled program; the result table; checkpoints.

Sequential objectives are any Python function ``objective(config) -> float``. With
``vectorized=True`` the objective is a JAX-traceable function of one configuration (a dict of
scalars) that :func:`minimize` maps over a padded batch with ``jax.vmap`` and compiles once for
the whole search: every round feeds the same program new numbers. Floats arrive as float32, Ints
as int32 and Categoricals as the int32 index of the choice.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gradxform._src.search.batching import BatchRunner, population_sharding
from gradxform._src.search.bayes import Bayes
from gradxform._src.search.grid import Grid
from gradxform._src.search.halving import Halving
from gradxform._src.search.pbt import PBT
from gradxform._src.search.population import PopulationTuner, is_stateful
from gradxform._src.search.result import Result, _Progress
from gradxform._src.search.sampling import Random, Sobol
from gradxform._src.search.space import Space, as_space
from gradxform._src.search.tuner import (
    Trial,
    Tuner,
    atomic_write_json,
    check_count,
    check_seed,
)

__all__ = ["minimize", "Result", "BatchRunner", "population_sharding"]

WHERE = "search.minimize"
FORMAT = "gradxform.search/1"
STRATEGIES = ("grid", "random", "sobol", "bayes", "halving", "pbt")


# --------------------------------------------------------------------------------------------
# Strategies.


def make_tuner(strategy: Any, space: Space | Mapping[str, Any] | None, *, budget: int | None,
               seed: int, options: Mapping[str, Any]) -> Tuner:
    """The tuner ``strategy`` names (or ``strategy`` itself, if it is one)."""
    if isinstance(strategy, Tuner):
        if options:
            raise ValueError(f"{WHERE}: tuner_options apply to a strategy given by name, not to "
                             f"a {type(strategy).__name__} object")
        if space is not None and as_space(space) != strategy.space:
            raise ValueError(f"{WHERE}: the tuner's space differs from the space given:\n"
                             f"  tuner: {strategy.space!r}\n  space: {as_space(space)!r}")
        return strategy
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"{WHERE}: strategy must be one of {', '.join(map(repr, STRATEGIES))} "
                         f"or a Tuner, got {strategy!r}")
    if space is None:
        raise ValueError(f"{WHERE}: a space is needed when the strategy is given by name")
    if strategy == "grid":
        return Grid(space, budget=budget, seed=seed, **options)
    if strategy == "random":
        return Random(space, seed=seed, **options)
    if strategy == "sobol":
        return Sobol(space, seed=seed, **options)
    if strategy == "bayes":
        return Bayes(space, seed=seed, **options)
    cls = Halving if strategy == "halving" else PBT
    return cls(space, seed=seed, **options)


# --------------------------------------------------------------------------------------------
# Checkpoints.


def _save(path: str | None, tuner: Tuner, budget: int | None) -> None:
    if path is not None:
        atomic_write_json(path, {"format": FORMAT, "budget": budget,
                                 "tuner": tuner.state_dict()})


def _resume(path: str | None, tuner: Tuner) -> bool:
    if path is None or not os.path.exists(path):
        return False
    with open(path) as f:
        saved = json.load(f)
    if saved.get("format") != FORMAT:
        raise ValueError(f"{WHERE}: {path} is not a search checkpoint (format "
                         f"{saved.get('format')!r})")
    tuner.load_state_dict(saved["tuner"])
    return True


# --------------------------------------------------------------------------------------------
# minimize.


def _evaluate_one(objective, config):
    start = time.perf_counter()
    try:
        value, error = objective(config), None
    except Exception as e:  # noqa: BLE001 - a failing trial is recorded, the search goes on
        value, error = None, f"{type(e).__name__}: {e}"
    return value, error, time.perf_counter() - start


def minimize(objective: Callable[..., Any], space: Space | Mapping[str, Any] | None = None, *,
             strategy: str | Tuner = "random", budget: int | None = None, batch_size: int = 1,
             seed: int = 0, vectorized: bool = False, max_batch: int | None = None,
             mesh: Any = None, mesh_axis: str | Sequence[str] | None = None,
             checkpoint: str | os.PathLike | None = None, progress: bool = False,
             callback: Callable[[list[Trial]], Any] | None = None,
             tuner_options: Mapping[str, Any] | None = None, **population: Any) -> Result:
    """Minimise ``objective`` over ``space``: the best configuration found within ``budget``.

    Args:
      objective: ``objective(config) -> float``, any Python function (``vectorized=False``);
        or, with ``vectorized=True``, a JAX-traceable function of one configuration (a dict of
        scalars: Floats as float32, Ints as int32, Categoricals as the int32 index of the
        choice) returning a scalar, which is vmapped over each batch; or, for
        ``strategy="halving"`` / ``"pbt"``, a :class:`Stateful` ``(init, train)`` pair.
      space: a :class:`Space` or a dict of parameters (may be omitted if ``strategy`` is a
        tuner).
      strategy: ``"grid"``, ``"random"``, ``"sobol"``, ``"bayes"``, ``"halving"``, ``"pbt"``,
        or a :class:`Tuner`.
      budget: the number of trials (for ``"grid"``, default: the whole grid; for
        ``"halving"``, the number of configurations started; for ``"pbt"``, the population).
      batch_size: configurations proposed (and, vectorized, trained together) per round.
      seed: seeds the strategy (and the initial states of a stateful objective).
      vectorized: vmap and jit the objective over each batch (compiled once).
      max_batch: at most this many configurations in one compiled program (a larger round is
        evaluated in several calls of the same program). Memory grows with it: about
        ``max_batch / devices`` times one trial's params, optimizer state and activations per
        device.
      mesh: split the batch (population) axis over devices: ``True`` for every device, a list
        of devices, or a ``jax.sharding.Mesh`` (also one spanning several processes, after
        ``jax.distributed.initialize``).
      mesh_axis: the mesh axes the population is split over (default: all).
      checkpoint: a JSON file written after every round (and when interrupted); if it exists,
        the search resumes from it: finished trials are kept, pending ones evaluated first.
        For PBT (after every generation) and successive halving (after every rung) the
        population's trained states go to an NPZ file beside it, which the JSON names.
      progress: show a tqdm bar (needs tqdm) with the best value so far.
      callback: called with the new trials after each round; if it returns ``True`` the search
        stops there (for example once a target value is reached; halving and PBT ignore the
        return value).
      tuner_options: keyword arguments for the strategy's tuner (``{"points": 7}`` for a grid,
        ``{"eta": 3}`` for halving).
      **population: for ``strategy="halving"`` or ``"pbt"`` given by name, the options of
        :class:`Halving` / :class:`PBT` (``max_steps=``, ``steps=``, ``generations=``, ...).

    Returns:
      A :class:`Result`.

    Example::

        result = search.minimize(objective, space, strategy="sobol", budget=64, batch_size=16,
                                 vectorized=True)
        result.best_config, result.best_value
    """
    seed = check_seed(seed, WHERE)
    batch_size = check_count(batch_size, "batch_size", WHERE)
    if budget is not None:
        budget = check_count(budget, "budget", WHERE)
    if max_batch is not None:
        max_batch = check_count(max_batch, "max_batch", WHERE)
    if not callable(objective) and not _is_stateful(objective):
        raise TypeError(f"{WHERE}: objective must be callable, got {objective!r}")

    options = dict(tuner_options or {})
    if isinstance(strategy, str) and strategy in ("halving", "pbt"):
        options.update(population)
        population = {}
    tuner = make_tuner(strategy, space, budget=budget, seed=seed, options=options)
    checkpoint = None if checkpoint is None else os.fspath(checkpoint)

    if isinstance(tuner, PopulationTuner):
        if not is_stateful(objective):
            raise TypeError(f"{WHERE}: strategy {type(tuner).__name__} trains a population "
                            "and needs a stateful objective: search.Stateful(init, train)")
        if population:
            raise TypeError(f"{WHERE}: {sorted(population)} are options of a tuner given by "
                            f"name; set them on the {type(tuner).__name__} object instead")
        return tuner.run(objective, budget=budget, max_batch=max_batch, mesh=mesh,
                         mesh_axis=mesh_axis, progress=progress, callback=callback,
                         checkpoint=checkpoint)
    if population:
        raise TypeError(f"{WHERE}: unexpected arguments {sorted(population)} (they belong to "
                        "the population strategies 'halving' and 'pbt')")
    if is_stateful(objective):
        raise TypeError(f"{WHERE}: a Stateful objective needs strategy='halving' or 'pbt'; for "
                        "other strategies pass objective(config) -> loss")
    if budget is None:
        if not isinstance(tuner, Grid):
            raise ValueError(f"{WHERE}: budget is required (the number of trials), except for "
                             "a grid")
        budget = len(tuner._combos)
    if mesh is not None and not vectorized:
        raise ValueError(f"{WHERE}: mesh= splits a vectorized batch over devices; it needs "
                         "vectorized=True")

    start = time.perf_counter()
    _resume(checkpoint, tuner)
    runner = None
    if vectorized:
        size = min(batch_size, budget, max_batch or batch_size)
        runner = BatchRunner(objective, tuner.space, size, mesh=mesh, mesh_axis=mesh_axis)
    bar = _Progress(progress, budget, len(tuner.trials))
    try:
        while len(tuner.trials) < budget:
            k = min(batch_size, budget - len(tuner.trials))
            configs = tuner.pending[:k] or tuner.ask(k)
            if not configs:
                break   # the strategy is exhausted
            if runner is not None:
                t0 = time.perf_counter()
                values = runner(configs)
                per = (time.perf_counter() - t0) / len(configs)
                new = tuner.tell(configs, list(values), seconds=per)
            else:
                new = _sequential_round(objective, tuner, configs, checkpoint, budget)
            _save(checkpoint, tuner, budget)
            bar.update(len(new), tuner.best_value)
            if callback is not None and callback(new) is True:
                break   # the caller has seen enough (a target reached)
            if tuner.finished and not tuner.pending:
                break
    finally:
        bar.close()
    return Result(tuner, compiles=0 if runner is None else runner.traces,
                  seconds=time.perf_counter() - start)


def _sequential_round(objective, tuner: Tuner, configs, checkpoint, budget) -> list[Trial]:
    """Evaluate ``configs`` one by one; on an interrupt, record the finished ones first."""
    values, errors, seconds = [], [], []
    try:
        for config in configs:
            v, e, s = _evaluate_one(objective, config)
            values.append(v)
            errors.append(e)
            seconds.append(s)
    except BaseException:
        if values:
            tuner.tell(configs[:len(values)], values, errors=errors, seconds=seconds)
        _save(checkpoint, tuner, budget)
        raise
    return tuner.tell(configs, values, errors=errors, seconds=seconds)


def _is_stateful(objective) -> bool:
    return is_stateful(objective)

