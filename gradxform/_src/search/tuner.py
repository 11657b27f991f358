"""The tuner protocol (ask / tell), the trial table, its export, and saving and resuming a search.

Every strategy is a :class:`Tuner`: ``ask(k)`` proposes ``k`` configurations, ``tell(configs,
values)`` records how they did. A subclass implements two hooks, ``_propose(k)`` (the next
configurations, from ``self.rng`` and what it has been told) and optionally ``_observe(trials)``,
and extends ``state_dict`` / ``load_state_dict`` with whatever else it keeps.

A value that is not a finite number (NaN, inf, or an exception raised by the objective) makes a
*failed* trial: it stays in the table with its error text, is never the best, and appears in
:meth:`Tuner.observations` with ``ok = False``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import numbers
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gradxform._src.search.space import Space, as_space

__all__ = [
    "Trial",
    "Tuner",
    "atomic_write_json",
    "check_count",
    "check_seed",
    "trial_rows",
    "write_csv",
    "write_json",
]

OK, FAILED = "ok", "failed"


@dataclasses.dataclass
class Trial:
    """One evaluated configuration.

    Attributes:
      number: position in the trial table (0-based, in the order trials were told).
      config: the configuration (inactive conditional parameters absent).
      value: the objective's value, a finite float; ``None`` for a failed trial.
      status: ``"ok"`` or ``"failed"``.
      error: why a trial failed (the exception, or the non-finite value), else ``None``.
      round: the ``tell`` call (round of the search) that recorded it.
      seconds: wall-clock time of its evaluation if known (in a vectorized batch: the batch's
        time divided by its size).
      info: strategy-specific facts (``{"steps": 90, "rung": 2}`` for successive halving,
        ``{"member": 3, "generation": 5, "parent": 1}`` for PBT).
    """

    number: int
    config: dict[str, Any]
    value: float | None
    status: str = OK
    error: str | None = None
    round: int = 0
    seconds: float | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_plain(self, space: Space) -> dict[str, Any]:
        return {"number": self.number, "config": space.to_plain(self.config),
                "value": self.value, "status": self.status, "error": self.error,
                "round": self.round, "seconds": self.seconds, "info": _plain(self.info)}

    @classmethod
    def from_plain(cls, d: Mapping[str, Any], space: Space) -> Trial:
        return cls(number=int(d["number"]), config=space.from_plain(d["config"]),
                   value=None if d["value"] is None else float(d["value"]),
                   status=d["status"], error=d.get("error"), round=int(d.get("round", 0)),
                   seconds=d.get("seconds"), info=dict(d.get("info") or {}))


def value_key(trial: Trial) -> float:
    """The value of a successful trial: the key that ranks trials (lower is better)."""
    if trial.value is None:
        raise ValueError(f"trial {trial.number} failed ({trial.error}): it has no value to rank")
    return trial.value


def _plain(x: Any) -> Any:
    """NumPy scalars and arrays as Python values (for JSON)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def check_seed(seed: Any, where: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{where}: seed must be a whole number >= 0, got {seed!r}")
    return int(seed)


def check_count(value: Any, name: str, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def _as_value(value: Any) -> tuple[float | None, str | None]:
    """A told value as (finite float or None, error text or None)."""
    try:
        arr = np.asarray(value)
        if arr.size != 1 or not (np.issubdtype(arr.dtype, np.floating)
                                 or np.issubdtype(arr.dtype, np.integer)):
            return None, (f"the objective must return one real number, got "
                          f"{type(value).__name__} {value!r}")
        v = float(arr.reshape(()))
    except (TypeError, ValueError):
        return None, f"the objective must return one real number, got {value!r}"
    if not math.isfinite(v):
        return None, f"the objective returned {v!r}"
    return v, None


class Tuner:
    """Base of every strategy: records trials and proposes configurations.

    Args:
      space: a :class:`Space` or a dict of parameters.
      seed: seeds ``self.rng`` (a NumPy ``Generator``); the same seed gives the same proposals.

    Example::

        tuner = search.Random(space, seed=0)
        for _ in range(10):
            configs = tuner.ask(4)
            tuner.tell(configs, [objective(c) for c in configs])
        tuner.best_config
    """

    def __init__(self, space: Space | Mapping[str, Any], *, seed: int = 0):
        self.space = as_space(space)
        self.seed = check_seed(seed, type(self).__name__)
        self.rng = np.random.default_rng(self.seed)
        self._trials: list[Trial] = []
        self._pending: list[dict[str, Any]] = []
        self._rounds = 0

    # -- to implement ----------------------------------------------------------------------

    def _propose(self, k: int) -> list[dict[str, Any]]:
        """The next ``k`` configurations (fewer, or none, if the strategy is exhausted)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _propose")

    def _observe(self, trials: list[Trial]) -> None:
        """Called by ``tell`` with the trials it just recorded."""

    @property
    def finished(self) -> bool:
        """True when the strategy has nothing left to propose (an exhausted grid)."""
        return False

    # -- ask / tell ------------------------------------------------------------------------

    def ask(self, k: int = 1) -> list[dict[str, Any]]:
        """``k`` configurations to evaluate next (fewer if the strategy is exhausted)."""
        k = check_count(k, "k", f"{type(self).__name__}.ask")
        configs = [self.space.check(c, where=f"{type(self).__name__}.ask")
                   for c in self._propose(k)]
        self._pending.extend(configs)
        return configs

    def tell(self, configs: Sequence[Mapping[str, Any]], values: Sequence[Any], *,
             errors: Sequence[str | None] | None = None,
             seconds: Sequence[float | None] | float | None = None,
             info: Sequence[Mapping[str, Any]] | None = None) -> list[Trial]:
        """Record the values of ``configs`` (one round); return the new trials.

        Args:
          configs: the configurations evaluated (usually from :meth:`ask`; others are accepted,
            for example known good settings to warm-start from).
          values: one number per configuration; NaN, inf, ``None`` or anything that is not a
            real number makes a failed trial.
          errors: optional text per configuration; a non-``None`` entry marks it failed (the
            exception the objective raised).
          seconds: evaluation times (one per configuration, or one for all).
          info: optional strategy facts per configuration.
        """
        where = f"{type(self).__name__}.tell"
        configs, values = list(configs), list(values)
        if len(configs) != len(values):
            raise ValueError(f"{where}: got {len(configs)} configurations but {len(values)} "
                             "values")
        n = len(configs)
        errors = [None] * n if errors is None else list(errors)
        info = [{}] * n if info is None else list(info)
        if not isinstance(seconds, Sequence):
            seconds = [seconds] * n
        if not (len(errors) == len(info) == len(seconds) == n):
            raise ValueError(f"{where}: errors, seconds and info need one entry per "
                             f"configuration ({n})")
        new = []
        for config, value, error, sec, extra in zip(configs, values, errors, seconds, info):
            config = self.space.check(config, where=where)
            if error is None:
                value, error = _as_value(value)
            else:
                value = None
            trial = Trial(number=len(self._trials), config=config, value=value,
                          status=OK if error is None else FAILED, error=error,
                          round=self._rounds, seconds=None if sec is None else float(sec),
                          info=dict(extra))
            self._trials.append(trial)
            self._drop_pending(config)
            new.append(trial)
        self._rounds += 1
        self._observe(new)
        return new

    def _drop_pending(self, config: Mapping[str, Any]) -> None:
        key = self.space.key(config)
        for i, c in enumerate(self._pending):
            if self.space.key(c) == key:
                del self._pending[i]
                return

    # -- reading the table -----------------------------------------------------------------

    @property
    def trials(self) -> list[Trial]:
        """Every trial, in the order told."""
        return list(self._trials)

    @property
    def pending(self) -> list[dict[str, Any]]:
        """Configurations asked for and not yet told."""
        return list(self._pending)

    @property
    def best_trial(self) -> Trial | None:
        """The successful trial with the lowest value (the first of equals), or ``None``."""
        ok = [t for t in self._trials if t.ok]
        return min(ok, key=value_key) if ok else None

    @property
    def best_config(self) -> dict[str, Any] | None:
        best = self.best_trial
        return None if best is None else dict(best.config)

    @property
    def best_value(self) -> float | None:
        best = self.best_trial
        return None if best is None else best.value

    def observations(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, y, ok)``: encoded configurations ``[n, dim]``, values ``[n]`` (NaN where
        failed), and which trials succeeded, all float64 / bool NumPy arrays."""
        n = len(self._trials)
        x = np.empty((n, self.space.dim), np.float64)
        y = np.full(n, np.nan, np.float64)
        ok = np.zeros(n, bool)
        for i, t in enumerate(self._trials):
            x[i] = self.space.encode(t.config)
            if t.ok:
                y[i], ok[i] = t.value, True
        return x, y, ok

    # -- saving and resuming ---------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: trials, pending configurations, the random state.

        JSON-serialisable. Subclasses add their own entries (and read them back in
        :meth:`load_state_dict`).
        """
        return {
            "tuner": type(self).__name__,
            "space": repr(self.space),
            "seed": self.seed,
            "rng": _plain(self.rng.bit_generator.state),
            "rounds": self._rounds,
            "trials": [t.to_plain(self.space) for t in self._trials],
            "pending": [self.space.to_plain(c) for c in self._pending],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state_dict` of a tuner of the same kind on the same space."""
        where = f"{type(self).__name__}.load_state_dict"
        if state.get("tuner") != type(self).__name__:
            raise ValueError(f"{where}: the saved search used a {state.get('tuner')} tuner, "
                             f"not {type(self).__name__}")
        if state.get("space") != repr(self.space):
            raise ValueError(f"{where}: the saved search has another space:\n  saved: "
                             f"{state.get('space')}\n  this:  {self.space!r}")
        self.seed = int(state["seed"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self._rounds = int(state["rounds"])
        self._trials = [Trial.from_plain(t, self.space) for t in state["trials"]]
        self._pending = [self.space.from_plain(c) for c in state["pending"]]

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`state_dict` to ``path`` as JSON, atomically (a crash leaves the old
        file)."""
        atomic_write_json(path, self.state_dict())

    def restore(self, path: str | os.PathLike) -> None:
        """Load a file written by :meth:`save`."""
        with open(path) as f:
            self.load_state_dict(json.load(f))

    def __repr__(self):
        return (f"{type(self).__name__}({self.space!r}, seed={self.seed}, "
                f"trials={len(self._trials)})")


# --------------------------------------------------------------------------------------------
# The trial table.


def trial_rows(trials: Sequence[Trial], space: Space) -> list[dict[str, Any]]:
    """One flat dict per trial: number, status, value, error, round, seconds, one column per
    parameter (empty when inactive) and one per ``info`` key."""
    info_keys: list[str] = []
    for t in trials:
        for k in t.info:
            if k not in info_keys:
                info_keys.append(k)
    rows = []
    for t in trials:
        row = {"number": t.number, "status": t.status, "value": t.value, "error": t.error,
               "round": t.round, "seconds": t.seconds}
        for name in space.params:
            row[name] = space.display(t.config[name]) if name in t.config else None
        for k in info_keys:
            row[k] = _plain(t.info.get(k))
        rows.append(row)
    return rows


def write_csv(path: str | os.PathLike, trials: Sequence[Trial], space: Space) -> None:
    """The trial table as CSV (empty cells for missing values)."""
    rows = trial_rows(trials, space)
    columns = list(rows[0]) if rows else ["number", "status", "value", "error", "round",
                                         "seconds", *space.params]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


def write_json(path: str | os.PathLike, trials: Sequence[Trial], space: Space,
               **extra: Any) -> None:
    """The trial table as JSON: ``{"space": ..., "trials": [...], **extra}``."""
    atomic_write_json(path, {"space": repr(space), **_plain(extra),
                             "trials": [t.to_plain(space) for t in trials]})


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as JSON to a temporary file beside ``path``, then rename it over ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
