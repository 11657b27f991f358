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
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gradxform._src.search.grid import Grid
from gradxform._src.search.sampling import Random, Sobol
from gradxform._src.search.space import Space, as_space
from gradxform._src.search.tuner import (
    Trial,
    Tuner,
    atomic_write_json,
    check_count,
    check_seed,
    trial_rows,
    write_csv,
    write_json,
)

__all__ = ["minimize", "Result", "BatchRunner", "population_sharding"]

WHERE = "search.minimize"
FORMAT = "gradxform.search/1"
STRATEGIES = ("grid", "random", "sobol", "bayes", "halving", "pbt")


# --------------------------------------------------------------------------------------------
# The result.


class Result:
    """What :func:`minimize` returns: the trial table and the best trial.

    Attributes:
      trials: every trial (:class:`Trial`: config, value, status, error, round, seconds, info),
        in the order evaluated.
      best_trial: the successful trial with the lowest value (for successive halving, among the
        trials at the largest number of steps; for PBT, among the final generation).
      best_config, best_value: its configuration and value (``None`` if every trial failed).
      tuner: the tuner, which can continue the search (``tuner.ask`` / ``tuner.tell``).
      compiles: how many times a vectorized objective was traced during this search (1 for a
        whole search; 0 if an earlier search of the same objective already compiled it).
      state: for successive halving and PBT, the trained state of the best member (NumPy).
    """

    def __init__(self, tuner: Tuner, *, compiles: int = 0, state: Any = None,
                 seconds: float = 0.0):
        self.tuner = tuner
        self.space: Space = tuner.space
        self.trials: list[Trial] = tuner.trials
        self.best_trial: Trial | None = tuner.best_trial
        self.compiles = compiles
        self.state = state
        self.seconds = seconds

    @property
    def best_config(self) -> dict[str, Any] | None:
        return None if self.best_trial is None else dict(self.best_trial.config)

    @property
    def best_value(self) -> float | None:
        return None if self.best_trial is None else self.best_trial.value

    def best_so_far(self) -> np.ndarray:
        """The lowest successful value among the first ``i + 1`` trials, for each ``i`` (NaN
        before the first success): the regret curve's raw material."""
        values = np.array([t.value if t.ok else np.inf for t in self.trials], np.float64)
        out = np.minimum.accumulate(values) if len(values) else values
        return np.where(np.isinf(out), np.nan, out)

    def rows(self) -> list[dict[str, Any]]:
        """The trial table as flat dicts (one column per parameter and per ``info`` key)."""
        return trial_rows(self.trials, self.space)

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the trial table as CSV."""
        write_csv(path, self.trials, self.space)

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the trial table and the best trial as JSON."""
        write_json(path, self.trials, self.space,
                   best=None if self.best_trial is None else self.best_trial.number)

    def to_dataframe(self):
        """The trial table as a pandas ``DataFrame`` (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("Result.to_dataframe needs pandas (pip install pandas); "
                              "to_csv and to_json need nothing") from e
        return pd.DataFrame(self.rows())

    def __repr__(self):
        failed = sum(not t.ok for t in self.trials)
        return (f"Result(best_value={self.best_value!r}, best_config={self.best_config!r}, "
                f"trials={len(self.trials)}, failed={failed})")


# --------------------------------------------------------------------------------------------
# Sharding the population axis.


def population_sharding(mesh: Any, axis: str | Sequence[str] | None = None
                        ) -> tuple[NamedSharding | None, NamedSharding | None, int]:
    """``(sharded, replicated, shards)`` for a population axis over ``mesh``.

    ``mesh`` is ``None`` (one device), ``True`` (every device), a sequence of devices, or a
    ``jax.sharding.Mesh`` (``axis`` names the mesh axes the population is split over; default:
    all of them).
    """
    if mesh is None or mesh is False:
        return None, None, 1
    if mesh is True:
        mesh = jax.devices()
    if not isinstance(mesh, Mesh):
        devices = list(mesh)
        if not devices:
            raise ValueError(f"{WHERE}: mesh is an empty list of devices")
        mesh = Mesh(np.asarray(devices), ("population",))
    if any(t != AxisType.Auto for t in mesh.axis_types):
        # The population's gathers and reductions are left to the compiler: an explicitly
        # sharded mesh (jax.make_mesh's default) is used with automatic axes.
        auto = (AxisType.Auto,) * len(mesh.axis_names)
        mesh = Mesh(mesh.devices, mesh.axis_names, axis_types=auto)
    axes = tuple(mesh.axis_names) if axis is None else (
        (axis,) if isinstance(axis, str) else tuple(axis))
    for a in axes:
        if a not in mesh.axis_names:
            raise ValueError(f"{WHERE}: mesh_axis {a!r} is not an axis of the mesh "
                             f"{tuple(mesh.axis_names)}")
    shards = int(np.prod([mesh.shape[a] for a in axes]))
    return NamedSharding(mesh, P(axes)), NamedSharding(mesh, P()), shards


def put_population(tree: Any, sharding: NamedSharding | None) -> Any:
    """Host arrays (identical in every process) as arrays sharded along their leading axis."""
    if sharding is None:
        return jax.tree.map(jnp.asarray, tree)

    def one(x):
        x = np.asarray(x)
        spec = P(*sharding.spec[:1], *([None] * (x.ndim - 1)))
        sh = NamedSharding(sharding.mesh, spec)
        return jax.make_array_from_callback(x.shape, sh, lambda idx: x[idx])

    return jax.tree.map(one, tree)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


# --------------------------------------------------------------------------------------------
# The vectorized runner.


def _weak(fn: Any) -> Callable[[], Any]:
    """A weak reference to ``fn`` if it allows one, else a strong one."""
    try:
        return weakref.ref(fn)
    except TypeError:
        return lambda: fn


def _out_of_memory(e: BaseException) -> bool:
    text = str(e)
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or "out of memory" in text


class Counter:
    """How many times a program was traced."""

    def __init__(self):
        self.n = 0


_PROGRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cached_program(owner: Any, key: Any, make: Callable[[], Any]) -> Any:
    """``make()``, built once per ``(owner, key)`` while ``owner`` (an objective) lives.

    Searches of the same objective (a notebook comparing strategies, a resumed search) reuse
    its jitted programs and JAX's compilation cache instead of compiling again. The programs
    must hold ``owner`` weakly, or it would never be freed.
    """
    try:
        table = _PROGRAMS.setdefault(owner, {})
    except TypeError:   # not weakly referenceable: build it every time
        return make()
    if key not in table:
        table[key] = make()
    return table[key]


class BatchRunner:
    """Evaluates configurations with a vectorized objective, ``size`` rows per program.

    The objective is traced once under ``jax.vmap`` for a batch of ``size`` rows (padded; the
    padding rows are computed and thrown away) and jitted once; every call feeds new numbers.
    With a mesh, the rows are split over its devices (``size`` is a multiple of their number).
    If XLA runs out of memory, ``size`` is halved (one new compilation) and the batch retried.
    A later search of the same objective reuses the compiled program.
    """

    def __init__(self, objective: Callable, space: Space, size: int, *, mesh: Any = None,
                 mesh_axis: Any = None):
        self.space = space
        self.sharded, self.replicated, self.shards = population_sharding(mesh, mesh_axis)
        self.size = _round_up(size, self.shards)

        def make():
            counter, ref = Counter(), _weak(objective)

            def one(config):
                counter.n += 1
                value = jnp.asarray(ref()(config))
                if value.shape != ():
                    raise ValueError(f"{WHERE}: a vectorized objective must return one number "
                                     f"per configuration (a scalar), got shape {value.shape}")
                return value.astype(jnp.float32)

            kw = {} if self.replicated is None else {"out_shardings": self.replicated}
            return jax.jit(jax.vmap(one), **kw), counter

        self._fn, self._counter = cached_program(objective, ("batch", self.replicated), make)
        self._start = self._counter.n

    @property
    def traces(self) -> int:
        """Traces (compilations) of the objective during this runner's life."""
        return self._counter.n - self._start

    def _run(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        batch = put_population(self.space.batch(configs, self.size), self.sharded)
        return np.asarray(self._fn(batch), np.float64)[:len(configs)]

    def __call__(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The values of ``configs`` (any number), in chunks of ``size`` rows."""
        out = []
        i = 0
        while i < len(configs):
            chunk = configs[i:i + self.size]
            try:
                out.append(self._run(chunk))
            except Exception as e:
                if not _out_of_memory(e) or self.size <= self.shards:
                    raise
                self.size = max(_round_up(self.size // 2, self.shards), self.shards)
                warnings.warn(f"{WHERE}: out of memory with a batch of {len(chunk)}; retrying "
                              f"with batches of {self.size} (set max_batch to avoid this)",
                              RuntimeWarning, stacklevel=3)
                continue
            i += len(chunk)
        return np.concatenate(out) if out else np.zeros(0)


# --------------------------------------------------------------------------------------------
# Strategies.


def make_tuner(strategy: Any, space: Space | None, *, budget: int | None, seed: int,
               options: Mapping[str, Any]) -> Tuner:
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
        from gradxform import search

        if not hasattr(search, "Bayes"):  # pragma: no cover - a build without it
            raise ValueError(f"{WHERE}: strategy='bayes' is not available in this build")
        return search.Bayes(space, seed=seed, **options)
    from gradxform._src.search.halving import Halving
    from gradxform._src.search.pbt import PBT
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
# Progress.


class _Progress:
    def __init__(self, enabled: bool, total: int | None, done: int, unit: str = "trial"):
        self.bar = None
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError as e:
            raise ImportError(f"{WHERE}: progress=True needs tqdm (pip install tqdm)") from e
        self.bar = tqdm(total=total, initial=done, unit=unit, desc="search")

    def update(self, n: int, best: float | None) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(best="-" if best is None else f"{best:.4g}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
    from gradxform._src.search.population import PopulationTuner, is_stateful

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
    from gradxform._src.search.population import is_stateful
    return is_stateful(objective)

