"""Successive halving and Hyperband on a vmapped population."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from gradxform._src.search.population import PopulationRunner, PopulationTuner
from gradxform._src.search.space import Space
from gradxform._src.search.tuner import Trial, check_count

__all__ = ["Halving"]


class Halving(PopulationTuner):
    r"""Successive halving: train many configurations briefly, continue the best from where
    they stopped.

    Rung :math:`r = 0, 1, \dots` trains the surviving members up to
    :math:`s_r = \min(s_{\min}\,\eta^{r}, s_{\max})` steps in total, ranks them by the loss
    ``train`` returns and keeps the best :math:`\lfloor n_r/\eta \rfloor` (at least one).
    Survivors continue from their state (params and optimizer state), never from scratch, and
    each rung trains its members as one vmapped program (one compilation per rung size).

    With ``hyperband=True``, the brackets of Hyperband run one after another: bracket
    :math:`b = b_{\max}, \dots, 0` starts :math:`\lceil \frac{b_{\max}+1}{b+1}\eta^b \rceil`
    configurations at :math:`s_{\max}\eta^{-b}` steps, hedging between many short runs and a
    few long ones.

    The best trial is the best among those trained for the most steps. Failed members
    (non-finite loss) are ranked last.

    Args:
      space: a :class:`Space` or a dict of parameters.
      max_steps: steps of training of the last rung.
      min_steps: steps of the first rung (default: ``max_steps`` divided by :math:`\eta` as
        often as the population allows, at least 1).
      eta: the reduction factor (> 1); a third survive each rung by default.
      population: configurations started (default: the ``budget`` of :func:`minimize`;
        ignored with ``hyperband``).
      hyperband: run Hyperband's brackets instead of one successive halving.
      sampler: ``"sobol"`` or ``"random"`` initial configurations.
      seed: seeds the sampler and the members' initial states.

    References:
      K. Jamieson, A. Talwalkar, *Non-stochastic Best Arm Identification and Hyperparameter
      Optimization*, AISTATS 2016. L. Li et al., *Hyperband: A Novel Bandit-Based Approach to
      Hyperparameter Optimization*, JMLR 18, 2018.
    """

    def __init__(self, space: Space | Mapping[str, Any], *, max_steps: int,
                 min_steps: int | None = None, eta: float = 3, population: int | None = None,
                 hyperband: bool = False, sampler: str = "sobol", seed: int = 0):
        super().__init__(space, seed=seed, sampler=sampler)
        self.max_steps = check_count(max_steps, "max_steps", "Halving")
        self.min_steps = None if min_steps is None else check_count(min_steps, "min_steps",
                                                                    "Halving")
        if self.min_steps is not None and self.min_steps > self.max_steps:
            raise ValueError(f"Halving: min_steps must be <= max_steps, got "
                             f"min_steps={min_steps}, max_steps={max_steps}")
        if not (isinstance(eta, (int, float)) and eta > 1):
            raise ValueError(f"Halving: eta must be > 1, got {eta!r}")
        self.eta = eta
        self.population = None if population is None else check_count(population,
                                                                       "population", "Halving")
        self.hyperband = bool(hyperband)
        self._final_steps = self.max_steps

    # -- the schedule ----------------------------------------------------------------------

    def rungs(self, n: int, min_steps: int | None = None) -> list[tuple[int, int]]:
        """``[(members, total steps)]`` of one successive halving started with ``n``."""
        if min_steps is None:
            min_steps = self.min_steps
        if min_steps is None:   # as many rungs as the population allows
            k = max(int(math.floor(math.log(n) / math.log(self.eta) + 1e-9)), 0)
            min_steps = max(int(round(self.max_steps / self.eta ** k)), 1)
        out, members, steps = [], n, min_steps
        while True:
            steps = min(steps, self.max_steps)
            out.append((members, steps))
            if steps >= self.max_steps:
                break
            members = max(int(members // self.eta), 1)
            steps = int(round(steps * self.eta))
        return out

    def brackets(self, n: int | None) -> list[tuple[int, int]]:
        """``[(configurations, first-rung steps)]`` of the run."""
        if not self.hyperband:
            return [(n, self.min_steps)]
        b_max = int(math.floor(math.log(self.max_steps) / math.log(self.eta) + 1e-9))
        if self.min_steps is not None:
            b_max = min(b_max, int(math.floor(
                math.log(self.max_steps / self.min_steps) / math.log(self.eta) + 1e-9)))
        out = []
        for b in range(b_max, -1, -1):
            count = int(math.ceil((b_max + 1) / (b + 1) * self.eta ** b))
            out.append((count, max(int(round(self.max_steps / self.eta ** b)), 1)))
        return out

    # -- running ---------------------------------------------------------------------------

    @property
    def best_trial(self) -> Trial | None:
        done = [t for t in self._trials if t.ok and t.info.get("steps") == self._final_steps]
        return min(done, key=lambda t: t.value) if done else super().best_trial

    def run(self, objective, *, budget, max_batch, mesh, mesh_axis, progress, callback):
        from gradxform._src.search.run import Result, _Progress

        n = self.population if self.population is not None else budget
        if n is None and not self.hyperband:
            raise ValueError("search.minimize: successive halving needs the number of "
                             "configurations to start: budget= (or Halving(population=...))")
        start = time.perf_counter()
        runner = PopulationRunner(objective, self.space, seed=self.seed, mesh=mesh,
                                  mesh_axis=mesh_axis, max_batch=max_batch)
        plan = self.brackets(n)
        total = sum(sum(m for m, _ in self.rungs(c, s)) for c, s in plan)
        bar = _Progress(progress, total, 0, unit="member-rung")
        best_state, best_value = None, math.inf
        next_id = 0
        try:
            for bracket, (count, first_steps) in enumerate(plan):
                configs = self.ask(count)
                ids = list(range(next_id, next_id + count))
                next_id += count
                state = runner.init(configs, ids)
                alive = list(range(count))       # rows of `state` -> positions in configs
                done_steps = 0
                losses = np.zeros(count)
                for rung, (members, steps) in enumerate(self.rungs(count, first_steps)):
                    if len(alive) > members:
                        keep = self._rank(losses)[:members]
                        state = runner.take(state, keep.tolist())
                        alive = [alive[i] for i in keep]
                    t0 = time.perf_counter()
                    state, losses = runner.train(state, [configs[i] for i in alive],
                                                 steps - done_steps)
                    per = (time.perf_counter() - t0) / len(alive)
                    done_steps = steps
                    infos = [{"member": ids[i], "bracket": bracket, "rung": rung, "steps": steps}
                             for i in alive]
                    new = self.tell([configs[i] for i in alive], list(losses), info=infos,
                                    seconds=per)
                    bar.update(len(new), self.best_value)
                    if callback is not None:
                        callback(new)
                best_row = int(self._rank(losses)[0])
                if np.isfinite(losses[best_row]) and losses[best_row] < best_value:
                    best_value = float(losses[best_row])
                    best_state = runner.fetch(state, best_row)
        finally:
            bar.close()
        compiles = runner.traces["train"]
        return Result(self, compiles=compiles, state=best_state,
                      seconds=time.perf_counter() - start)
