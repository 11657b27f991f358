"""Stateful objectives and the vmapped population they train in: the machinery of successive
halving and population-based training.

A :class:`Stateful` objective is a pair of JAX-traceable functions of *one* member::

    init(config, key) -> state                      # params, optimizer state, ...
    train(state, config, steps) -> (state, loss)    # ``steps`` more steps; the loss to rank by

``steps`` is a Python int (use it as a ``lax.scan`` / ``fori_loop`` length). The population is
``jax.vmap`` of these over the members, jitted: one program trains all members at once. The
configuration is an *argument* of ``train`` (Floats float32, Ints int32, Categoricals int32
indices), so building the optimizer inside ``train`` from it (:func:`build`) makes every
hyperparameter a leaf: PBT changes learning rates between calls without recompiling, and a
member that copies another one's state continues from it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from gradxform._src.search.batching import (
    WHERE,
    Counter,
    _round_up,
    _weak,
    cached_program,
    population_sharding,
    put_population,
)
from gradxform._src.search.sampling import Random, Sobol
from gradxform._src.search.space import Space
from gradxform._src.search.tuner import Trial, Tuner, atomic_write_json

__all__ = ["Stateful", "is_stateful", "PopulationRunner", "PopulationTuner"]


class Stateful(NamedTuple):
    """An objective that trains: ``init(config, key) -> state`` and
    ``train(state, config, steps) -> (state, loss)``, each for one member (see the module
    docstring). Any object with ``init`` and ``train`` methods works as well."""

    init: Callable[[Mapping[str, Any], jax.Array], Any]
    train: Callable[[Any, Mapping[str, Any], int], tuple[Any, Any]]


def is_stateful(objective: Any) -> bool:
    return isinstance(objective, Stateful) or (
        callable(getattr(objective, "init", None)) and callable(getattr(objective, "train", None))
        and not isinstance(objective, Tuner))


class PopulationRunner:
    """The jitted, vmapped ``init``, ``train`` and member copy of a population.

    Every array of the state has the population as its leading axis; with a mesh that axis is
    split over the devices. ``traces`` counts how often ``init``/``train`` were traced: one
    compilation per population size (and number of steps), never per call.

    With ``max_batch``, at most that many members are on the devices at once: a larger
    population keeps its states in host memory and trains in chunks of ``max_batch`` rows (one
    program for all chunks), so it costs time, not a crash.
    """

    def __init__(self, objective: Any, space: Space, *, seed: int, mesh: Any = None,
                 mesh_axis: Any = None, max_batch: int | None = None):
        self.space = space
        self.seed = seed
        self.sharded, self.replicated, self.shards = population_sharding(mesh, mesh_axis)
        self.max_batch = None if max_batch is None else _round_up(max_batch, self.shards)
        init, train = objective.init, objective.train
        key = ("population", init, self.sharded, self.replicated)
        programs = cached_program(train, key, lambda: self._programs(init, train))
        self._init, self._train, self._take, self._fetch, self._counters = programs
        self._gather: Callable[[Any], Any] | None = None
        self._start = {k: c.n for k, c in self._counters.items()}

    @property
    def traces(self) -> dict[str, int]:
        """Traces of ``init`` and ``train`` during this runner's life."""
        return {k: c.n - self._start[k] for k, c in self._counters.items()}

    def _programs(self, init, train):
        counters = {"init": Counter(), "train": Counter()}
        init_ref, train_ref = _weak(init), _weak(train)

        def init_one(config, key):
            counters["init"].n += 1
            return init_ref()(config, key)

        def train_one(state, config, steps):
            counters["train"].n += 1
            state, loss = train_ref()(state, config, steps)
            loss = jax.numpy.asarray(loss)
            if loss.shape != ():
                raise ValueError(f"{WHERE}: train must return (state, loss) with a scalar loss, "
                                 f"got shape {loss.shape}")
            return state, loss.astype(jax.numpy.float32)

        def take(state, index):
            return jax.tree.map(lambda x: x[index], state)

        pop: dict[str, Any] = {} if self.sharded is None else {"out_shardings": self.sharded}
        both: dict[str, Any] = ({} if self.sharded is None
                                else {"out_shardings": (self.sharded, self.replicated)})
        rep: dict[str, Any] = ({} if self.replicated is None
                               else {"out_shardings": self.replicated})
        return (jax.jit(jax.vmap(init_one), **pop),
                jax.jit(jax.vmap(train_one, in_axes=(0, 0, None)), static_argnums=2, **both),
                jax.jit(take, **pop), jax.jit(take, **rep), counters)

    # -- helpers ---------------------------------------------------------------------------

    def size(self, n: int) -> int:
        """Rows used for ``n`` members (a multiple of the number of shards)."""
        return _round_up(n, self.shards)

    def chunked(self, n: int) -> bool:
        """Whether ``n`` members are trained in chunks with their states on the host."""
        return self.max_batch is not None and self.size(n) > self.max_batch

    def _rows(self, n: int) -> int:
        """Rows of a population of ``n`` members: a multiple of ``max_batch`` when chunked,
        else of the number of shards."""
        if self.max_batch is not None and self.size(n) > self.max_batch:
            return _round_up(n, self.max_batch)
        return self.size(n)

    def keys(self, ids: Sequence[int]) -> np.ndarray:
        """One PRNG key (``uint32[2]``) per member id; the same id always gets the same key."""
        base = jax.random.PRNGKey(self.seed)
        index = np.asarray(ids, np.uint32)
        return np.asarray(jax.vmap(lambda i: jax.random.fold_in(base, i))(index))

    def _put(self, tree: Any) -> Any:
        return put_population(tree, self.sharded)

    def _batch(self, configs: Sequence[Mapping[str, Any]], size: int) -> dict[str, np.ndarray]:
        return self.space.batch(configs, size)

    def _slices(self, size: int):
        step = self.max_batch or size
        return [slice(i, min(i + step, size)) for i in range(0, size, step)]

    # -- the population --------------------------------------------------------------------

    def init(self, configs: Sequence[Mapping[str, Any]], ids: Sequence[int]) -> Any:
        """The initial states of members ``ids`` with ``configs`` (padded rows repeat the
        first member)."""
        n = len(configs)
        size = self._rows(n)
        ids = list(ids) + [ids[0]] * (size - n)
        configs = list(configs) + [configs[0]] * (size - n)
        keys = self.keys(ids)
        if not self.chunked(n):
            return self._init(self._put(self._batch(configs, size)), self._put(keys))
        parts = []
        for sl in self._slices(size):
            out = self._init(self._put(self._batch(configs[sl], sl.stop - sl.start)),
                             self._put(keys[sl]))
            parts.append(jax.device_get(out))
        return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)

    def train(self, state: Any, configs: Sequence[Mapping[str, Any]], steps: int
              ) -> tuple[Any, np.ndarray]:
        """Train every member ``steps`` more steps; return the new states and the losses."""
        n = len(configs)
        size = jax.tree.leaves(state)[0].shape[0]
        configs = list(configs) + [configs[0]] * (size - n)
        if isinstance(jax.tree.leaves(state)[0], np.ndarray):   # chunked, on the host
            parts, losses = [], []
            for sl in self._slices(size):
                chunk = self._put(jax.tree.map(lambda x, sl=sl: x[sl], state))
                out, loss = self._train(chunk, self._put(self._batch(configs[sl], sl.stop
                                                                     - sl.start)), int(steps))
                parts.append(jax.device_get(out))
                losses.append(np.asarray(loss, np.float64))
            state = jax.tree.map(lambda *xs: np.concatenate(xs), *parts)
            return state, np.concatenate(losses)[:n]
        state, loss = self._train(state, self._put(self._batch(configs, size)), int(steps))
        return state, np.asarray(loss, np.float64)[:n]

    def take(self, state: Any, rows: Sequence[int]) -> Any:
        """The states of the members at ``rows``, in that order: a copy of params and
        optimizer state (padded by repeating the first row)."""
        rows = list(rows)
        if isinstance(jax.tree.leaves(state)[0], np.ndarray):
            size = self._rows(len(rows))
            rows += [rows[0]] * (size - len(rows))
            picked = jax.tree.map(lambda x: x[np.asarray(rows)], state)
            return picked if self.chunked(len(rows)) else self._put(picked)
        size = self.size(len(rows))
        rows += [rows[0]] * (size - len(rows))
        index = put_population(np.asarray(rows, np.int32), self.replicated)
        return self._take(state, index)

    def to_host(self, state: Any) -> list[np.ndarray]:
        """Every leaf of the population's state as a host array (gathered from all processes)."""
        if not isinstance(jax.tree.leaves(state)[0], np.ndarray) and self.replicated is not None:
            if self._gather is None:
                self._gather = jax.jit(lambda s: s, out_shardings=self.replicated)
            state = self._gather(state)
        return [np.asarray(x) for x in jax.tree.leaves(state)]

    def from_host(self, like: Any, leaves: Sequence[np.ndarray]) -> Any:
        """A state shaped and placed like ``like`` holding the host arrays ``leaves``."""
        mine = jax.tree.leaves(like)
        if len(mine) != len(leaves) or any(
                np.shape(a) != np.shape(b) or np.asarray(a).dtype != np.asarray(b).dtype
                for a, b in zip(mine, leaves)):
            raise ValueError(f"{WHERE}: the saved population state does not match the one "
                             "init builds (another objective or population size?)")
        host = jax.tree.unflatten(jax.tree.structure(like), [np.asarray(x) for x in leaves])
        return host if isinstance(mine[0], np.ndarray) else self._put(host)

    def fetch(self, state: Any, row: int) -> Any:
        """One member's state on the host (NumPy), from any process."""
        if isinstance(jax.tree.leaves(state)[0], np.ndarray):
            return jax.tree.map(lambda x: np.asarray(x[row]), state)
        index = put_population(np.asarray(row, np.int32), self.replicated)
        return jax.tree.map(np.asarray, self._fetch(state, index))


class PopulationTuner(Tuner):
    """Base of the strategies that train a population of stateful members."""

    def __init__(self, space, *, seed: int = 0, sampler: str = "sobol"):
        super().__init__(space, seed=seed)
        if sampler not in ("sobol", "random"):
            raise ValueError(f"{type(self).__name__}: sampler must be 'sobol' or 'random', got "
                             f"{sampler!r}")
        self.sampler = sampler
        cls = Sobol if sampler == "sobol" else Random
        self._sampler = cls(self.space, seed=seed)

    def _propose(self, k):
        return self._sampler._propose(k)

    def _sample_one(self) -> dict[str, Any]:
        """A fresh configuration from the prior (for resampling), from ``self.rng``."""
        return self.space.decode(self.rng.random(self.space.dim))

    def run(self, objective, *, budget, max_batch, mesh, mesh_axis, progress, callback,
            checkpoint=None):
        raise NotImplementedError

    @staticmethod
    def _rank(losses: np.ndarray) -> np.ndarray:
        """Member indices from best to worst; non-finite losses last."""
        key = np.where(np.isfinite(losses), losses, np.inf)
        return np.argsort(key, kind="stable")

    def _tell_generation(self, configs, losses, infos) -> list[Trial]:
        return self.tell(configs, list(losses), info=infos)


# --------------------------------------------------------------------------------------------
# Checkpoints of a population: JSON for the search, NPZ for the trained states.


def save_population(path: str, data: Mapping[str, Any], leaves: Sequence[np.ndarray]) -> None:
    """Write ``data`` to ``path`` (JSON) and the state's leaves beside it, atomically: the NPZ
    file is new for every save and the JSON names it, so the two always belong together."""
    if jax.process_index() != 0:     # every process holds the same search; one writes it
        return
    tag = f"{os.getpid()}-{time.time_ns()}"
    states = f"{path}.state-{tag}.npz"
    with open(states + ".tmp", "wb") as f:
        np.savez(f, *leaves)
    os.replace(states + ".tmp", states)
    old = None
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f).get("state_file")
    atomic_write_json(path, {**data, "state_file": os.path.basename(states)})
    if old and old != os.path.basename(states):
        stale = os.path.join(os.path.dirname(os.path.abspath(path)), old)
        if os.path.exists(stale):
            os.remove(stale)


def load_population(path: str | None, kind: str) -> tuple[dict[str, Any], list[np.ndarray]] | None:
    """``(data, leaves)`` saved by :func:`save_population`, or ``None`` if there is no file."""
    if path is None or not os.path.exists(path):
        return None
    with open(path) as f:
        data = json.load(f)
    if data.get("format") != kind:
        raise ValueError(f"{WHERE}: {path} is not a {kind} checkpoint (format "
                         f"{data.get('format')!r})")
    states = os.path.join(os.path.dirname(os.path.abspath(path)), data["state_file"])
    with np.load(states) as npz:
        leaves = [npz[f"arr_{i}"] for i in range(len(npz.files))]
    return data, leaves
