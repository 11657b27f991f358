"""Running a population of trials as one compiled program: sharding the population axis over
devices, the program cache kept per objective, and :class:`BatchRunner`, which evaluates
configurations with a vectorized objective, padded to a fixed batch size."""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gradxform._src.search.space import Space

WHERE = "search.minimize"


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

            kw: dict[str, Any] = ({} if self.replicated is None
                                  else {"out_shardings": self.replicated})
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


