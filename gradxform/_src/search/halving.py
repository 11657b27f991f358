"""Successive halving and Hyperband on a vmapped population."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from gradxform._src.search.population import (
    PopulationRunner,
    PopulationTuner,
    load_population,
    save_population,
)
from gradxform._src.search.result import Result, _Progress
from gradxform._src.search.space import Space
from gradxform._src.search.tuner import Trial, check_count, value_key

__all__ = ["Halving"]

FORMAT = "gradxform.search.halving/1"


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

    def brackets(self, n: int | None) -> list[tuple[int, int | None]]:
        """``[(configurations, first-rung steps)]`` of the run (steps ``None``: see ``rungs``)."""
        if not self.hyperband:
            if n is None:
                raise ValueError("Halving: successive halving needs the number of "
                                 "configurations to start (population=)")
            return [(n, self.min_steps)]
        b_max = int(math.floor(math.log(self.max_steps) / math.log(self.eta) + 1e-9))
        if self.min_steps is not None:
            b_max = min(b_max, int(math.floor(
                math.log(self.max_steps / self.min_steps) / math.log(self.eta) + 1e-9)))
        out: list[tuple[int, int | None]] = []
        for b in range(b_max, -1, -1):
            count = int(math.ceil((b_max + 1) / (b + 1) * self.eta ** b))
            out.append((count, max(int(round(self.max_steps / self.eta ** b)), 1)))
        return out

    # -- running ---------------------------------------------------------------------------

    @property
    def best_trial(self) -> Trial | None:
        done = [t for t in self._trials if t.ok and t.info.get("steps") == self._final_steps]
        return min(done, key=value_key) if done else super().best_trial

    def run(self, objective, *, budget, max_batch, mesh, mesh_axis, progress, callback,
            checkpoint=None):

        n = self.population if self.population is not None else budget
        if n is None and not self.hyperband:
            raise ValueError("search.minimize: successive halving needs the number of "
                             "configurations to start: budget= (or Halving(population=...))")
        start = time.perf_counter()
        runner = PopulationRunner(objective, self.space, seed=self.seed, mesh=mesh,
                                  mesh_axis=mesh_axis, max_batch=max_batch)
        plan = self.brackets(n)
        settings = {"plan": [list(p) for p in plan], "max_steps": self.max_steps,
                    "eta": self.eta}
        total = sum(sum(m for m, _ in self.rungs(c, s)) for c, s in plan)
        best_state, best_value, next_id = None, math.inf, 0
        first_bracket, first_rung, resumed, best_leaves = 0, 0, None, None
        saved = load_population(checkpoint, FORMAT)
        if saved is not None:
            data, leaves = saved
            if data["settings"] != settings:
                raise ValueError(f"search.minimize: the checkpoint {checkpoint} is of a halving "
                                 f"run with {data['settings']}, not {settings}")
            self.load_state_dict(data["tuner"])
            first_bracket, first_rung = int(data["bracket"]), int(data["rung"])
            next_id = int(data["next_id"])
            best_value = math.inf if data["best_value"] is None else float(data["best_value"])
            count = int(data["state_leaves"])
            resumed, best_leaves = (data, leaves[:count]), leaves[count:] or None
        bar = _Progress(progress, total, len(self.trials), unit="member-rung")

        def save(bracket, rung, bookkeeping, state):
            if checkpoint is None:
                return
            current = [] if state is None else runner.to_host(state)
            best: list[Any] = [] if best_state is None else jax.tree.leaves(best_state)
            save_population(checkpoint, {
                "format": FORMAT, "settings": settings, "bracket": bracket, "rung": rung,
                "next_id": next_id, "best_value": None if math.isinf(best_value) else best_value,
                "state_leaves": len(current), "tuner": self.state_dict(), **bookkeeping},
                current + [np.asarray(x) for x in best])

        try:
            for bracket in range(first_bracket, len(plan)):
                count, first_steps = plan[bracket]
                rung0 = 0
                if resumed is not None and bracket == first_bracket and resumed[1]:
                    data, leaves = resumed
                    configs = [self.space.from_plain(c) for c in data["configs"]]
                    ids, alive = list(data["ids"]), list(data["alive"])
                    done_steps, losses = int(data["done_steps"]), np.asarray(data["losses"])
                    like = runner.init([configs[i] for i in alive], [ids[i] for i in alive])
                    state, rung0 = runner.from_host(like, leaves), first_rung
                else:
                    configs = self.ask(count)
                    ids = list(range(next_id, next_id + count))
                    next_id += count
                    state = runner.init(configs, ids)
                    alive = list(range(count))       # rows of `state` -> positions in configs
                    done_steps, losses = 0, np.zeros(count)
                if best_leaves is not None:          # the best member of earlier brackets
                    best_state = jax.tree.unflatten(
                        jax.tree.structure(runner.fetch(state, 0)), best_leaves)
                    best_leaves = None
                rungs = self.rungs(count, first_steps)
                for rung in range(rung0, len(rungs)):
                    members, steps = rungs[rung]
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
                    if rung + 1 < len(rungs):
                        save(bracket, rung + 1, {
                            "configs": [self.space.to_plain(c) for c in configs], "ids": ids,
                            "alive": alive, "done_steps": done_steps,
                            "losses": [float(v) for v in np.nan_to_num(losses, nan=np.inf,
                                                                       posinf=1e300)]}, state)
                best_row = int(self._rank(losses)[0])
                if np.isfinite(losses[best_row]) and losses[best_row] < best_value:
                    best_value = float(losses[best_row])
                    best_state = runner.fetch(state, best_row)
                save(bracket + 1, 0, {}, None)
        finally:
            bar.close()
        if best_leaves is not None:     # a finished run loaded again: rebuild the best state
            like = runner.init([self.trials[-1].config], [0])
            best_state = jax.tree.unflatten(jax.tree.structure(runner.fetch(like, 0)),
                                            best_leaves)
        compiles = runner.traces["train"]
        return Result(self, compiles=compiles, state=best_state,
                      seconds=time.perf_counter() - start)
