"""The conformance table: every optimizer registers here exactly once.

Each module of this package defines ``ENTRIES``, a list of :class:`Entry`. The conformance
tests (``tests/test_conformance.py``) cross every entry with the targets, dtypes and jit/eager,
and other suites (config round-trip, values) iterate over the same table. Add a family by adding
a module here.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Entry:
    """One optimizer in the conformance table.

    Attributes:
      name: a unique id (used in test ids).
      factory: the public constructor, called as ``factory(learning_rate, **kwargs)``.
      kwargs: further arguments.
      lr: learning rate per target, ``{"quadratic": ..., "rosenbrock": ...}``.
      steps: steps per target.
      tol: the target's final loss must be below ``tol`` (per target).
      extra: keyword arguments every ``update`` call must receive (``value=`` for
        loss-aware optimizers); the runner fills ``value`` with the current loss if present.
      needs_key: the optimizer takes a PRNG key through ``update(..., key=...)``.
    """

    name: str
    factory: Callable[..., Any]
    kwargs: dict = dataclasses.field(default_factory=dict)
    lr: dict = dataclasses.field(default_factory=lambda: {"quadratic": 0.1, "rosenbrock": 1e-3})
    steps: dict = dataclasses.field(default_factory=lambda: {"quadratic": 300,
                                                             "rosenbrock": 3000})
    tol: dict = dataclasses.field(default_factory=lambda: {"quadratic": 1e-3,
                                                           "rosenbrock": 1e-2})
    extra: tuple = ()
    needs_key: bool = False

    def make(self, learning_rate: Any = None, target: str = "quadratic"):
        lr = self.lr[target] if learning_rate is None else learning_rate
        return self.factory(lr, **self.kwargs)


def all_entries() -> list[Entry]:
    entries: list[Entry] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        entries.extend(module.ENTRIES)
    names = [e.name for e in entries]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"conformance table: duplicate names {sorted(duplicates)}")
    return entries
