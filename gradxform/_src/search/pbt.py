"""Population-based training on a vmapped population."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gradxform._src.search.population import (
    PopulationRunner,
    PopulationTuner,
    load_population,
    save_population,
)
from gradxform._src.search.result import Result, _Progress
from gradxform._src.search.space import Categorical, Space
from gradxform._src.search.tuner import Trial, check_count, value_key

__all__ = ["PBT"]

FORMAT = "gradxform.search.pbt/1"


class PBT(PopulationTuner):
    r"""Population-based training: train a population, and every ``steps`` steps let the worst
    members restart from copies of the best with perturbed hyperparameters.

    After each generation the members are ranked by the loss ``train`` returned (non-finite
    losses last). Each member of the bottom ``fraction`` *exploits*: it copies the state
    (params and optimizer state) and the configuration of a member drawn uniformly from the top
    ``fraction``; then it *explores*: each Float and Int parameter is, with probability
    ``resample_probability``, drawn afresh from the space, otherwise multiplied by one of
    ``factors`` chosen at random (on a log scale that is the same as adding its log), clipped
    to the bounds. Categorical parameters are copied, not perturbed (changing one would change
    the state's structure).

    Hyperparameters reach ``train`` as arguments (leaves of the optimizer :func:`build` makes),
    so the whole run compiles ``train`` once: new learning rates are new data.

    Args:
      space: a :class:`Space` or a dict of parameters.
      steps: training steps per generation (between two exploit/explore decisions).
      generations: number of generations (the run trains ``steps * generations`` steps).
      population: members (default: the ``budget`` of :func:`minimize`).
      fraction: the share of members replaced, and of members copied from, each generation.
      factors: perturbation factors.
      resample_probability: probability that explore resamples a parameter instead.
      sampler: ``"sobol"`` or ``"random"`` initial configurations.
      seed: seeds the sampler, the exploit/explore draws and the initial states.

    References:
      M. Jaderberg et al., *Population Based Training of Neural Networks*, arXiv:1711.09846,
      2017 (truncation selection, perturb by 0.8 / 1.2, resample).
    """

    def __init__(self, space: Space | Mapping[str, Any], *, steps: int, generations: int,
                 population: int | None = None, fraction: float = 0.25,
                 factors: Sequence[float] = (0.8, 1.2), resample_probability: float = 0.25,
                 sampler: str = "sobol", seed: int = 0):
        super().__init__(space, seed=seed, sampler=sampler)
        self.steps = check_count(steps, "steps", "PBT")
        self.generations = check_count(generations, "generations", "PBT")
        self.population = None if population is None else check_count(population,
                                                                       "population", "PBT")
        if not (isinstance(fraction, (int, float)) and 0 < fraction <= 0.5):
            raise ValueError(f"PBT: fraction must be in (0, 0.5], got {fraction!r}")
        factors = tuple(float(f) for f in factors)
        if not factors or any(not (math.isfinite(f) and f > 0) for f in factors):
            raise ValueError(f"PBT: factors must be positive numbers, got {factors!r}")
        if not (isinstance(resample_probability, (int, float))
                and 0 <= resample_probability <= 1):
            raise ValueError(f"PBT: resample_probability must be in [0, 1], got "
                             f"{resample_probability!r}")
        self.fraction = float(fraction)
        self.factors = factors
        self.resample_probability = float(resample_probability)

    @property
    def best_trial(self) -> Trial | None:
        last = max((t.info.get("generation", -1) for t in self._trials), default=-1)
        final = [t for t in self._trials if t.ok and t.info.get("generation") == last]
        return min(final, key=value_key) if final else None

    # -- exploit and explore ---------------------------------------------------------------

    def explore(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A perturbed copy of ``config`` (see the class docstring)."""
        out = dict(config)
        fresh = self._sample_one()
        for name, p in self.space.params.items():
            if name not in out or isinstance(p, Categorical):
                continue
            if self.rng.random() < self.resample_probability:
                if name in fresh:
                    out[name] = fresh[name]
            else:
                out[name] = p.perturb(out[name], self.factors[self.rng.integers(
                    len(self.factors))])
        return self.space.check(out)

    def exploit(self, losses: np.ndarray) -> np.ndarray:
        """For each member, the member whose state it continues from (itself if kept)."""
        n = len(losses)
        order = self._rank(losses)
        cut = max(int(math.floor(n * self.fraction)), 1) if n > 1 else 0
        parent = np.arange(n)
        top, bottom = order[:cut], order[n - cut:] if cut else order[:0]
        for member in bottom:
            parent[member] = top[self.rng.integers(len(top))]
        return parent

    # -- running ---------------------------------------------------------------------------

    def run(self, objective, *, budget, max_batch, mesh, mesh_axis, progress, callback,
            checkpoint=None):

        n = self.population if self.population is not None else budget
        if n is None:
            raise ValueError("search.minimize: PBT needs a population size: budget= (or "
                             "PBT(population=...))")
        start = time.perf_counter()
        runner = PopulationRunner(objective, self.space, seed=self.seed, mesh=mesh,
                                  mesh_axis=mesh_axis, max_batch=max_batch)
        settings = {"population": n, "steps": self.steps, "generations": self.generations}
        saved = load_population(checkpoint, FORMAT)
        if saved is None:
            configs = self.ask(n)
            state = runner.init(configs, list(range(n)))
            parent, first = np.arange(n), 0
        else:
            data, leaves = saved
            if data["settings"] != settings:
                raise ValueError(f"search.minimize: the checkpoint {checkpoint} is of a PBT run "
                                 f"with {data['settings']}, not {settings}")
            self.load_state_dict(data["tuner"])
            configs = [self.space.from_plain(c) for c in data["configs"]]
            parent, first = np.asarray(data["parent"]), int(data["generation"])
            state = runner.from_host(runner.init(configs, list(range(n))), leaves)
        losses = np.zeros(n)
        bar = _Progress(progress, self.generations, first, unit="generation")
        try:
            for generation in range(first, self.generations):
                t0 = time.perf_counter()
                state, losses = runner.train(state, configs, self.steps)
                per = (time.perf_counter() - t0) / n
                infos = [{"member": i, "generation": generation, "parent": int(parent[i]),
                          "steps": (generation + 1) * self.steps} for i in range(n)]
                new = self.tell(configs, list(losses), info=infos, seconds=per)
                bar.update(1, self.best_value)
                if callback is not None:
                    callback(new)
                if generation + 1 == self.generations:
                    break
                parent = self.exploit(losses)
                if (parent != np.arange(n)).any():
                    state = runner.take(state, parent.tolist())
                    configs = [self.explore(configs[p]) if p != i else configs[i]
                               for i, p in enumerate(parent)]
                if checkpoint is not None:
                    save_population(checkpoint, {
                        "format": FORMAT, "settings": settings, "generation": generation + 1,
                        "configs": [self.space.to_plain(c) for c in configs],
                        "parent": parent.tolist(), "tuner": self.state_dict()},
                        runner.to_host(state))
        finally:
            bar.close()
        if first >= self.generations:   # a finished run, loaded again
            return Result(self, compiles=runner.traces["train"], state=None,
                          seconds=time.perf_counter() - start)
        best_row = int(self._rank(losses)[0])
        best_state = runner.fetch(state, best_row) if np.isfinite(losses[best_row]) else None
        return Result(self, compiles=runner.traces["train"], state=best_state,
                      seconds=time.perf_counter() - start)
