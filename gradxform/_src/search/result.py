"""The result of a search (:class:`Result`: the trial table and the best trial) and the
progress bar the strategies share."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from gradxform._src.search.space import Space
from gradxform._src.search.tuner import Trial, Tuner, trial_rows, write_csv, write_json

WHERE = "search.minimize"


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


