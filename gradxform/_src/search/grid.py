"""Grid search: every combination of a few values per parameter.

The simplest strategy (and the one the design documents start from): fix a list of values for
each parameter, train once per combination, keep the best. Its cost is the product of the list
lengths, so it explodes with the number of parameters; :class:`Grid` therefore takes a budget
and either coarsens the grid to fit it or, when even the coarsest grid is too large (many
categories, explicit value lists), evaluates a random subset of the combinations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gradxform._src.search.space import Categorical, Int, Space
from gradxform._src.search.tuner import Tuner, check_count

__all__ = ["Grid"]

_DEFAULT_POINTS = 5


class Grid(Tuner):
    """The full product of per-parameter values, or a budgeted part of it.

    Values per parameter: every choice of a :class:`Categorical`; for a :class:`Float` (and an
    :class:`Int` with more values than that) ``points`` values evenly spaced on its scale,
    endpoints included (log-spaced for ``log=True``). A conditional parameter multiplies only
    the combinations in which it is active.

    Args:
      space: a :class:`Space` or a dict of parameters.
      points: values per numeric parameter: a number for all of them, or a dict
        ``{name: number or explicit list of values}``. Default: the finest common number that
        keeps the grid within ``budget``, then one more value for the first parameters while it
        still fits (5 each without a budget).
      budget: the number of trials available. If the grid has more combinations, a random
        subset of ``budget`` of them (drawn with ``seed``) is evaluated, in random order.
      seed: seeds the subset.

    Attributes:
      size: the number of combinations of the full grid.
    """

    def __init__(self, space: Space | Mapping[str, Any], points: int | Mapping[str, Any] | None
                 = None, *, budget: int | None = None, seed: int = 0):
        super().__init__(space, seed=seed)
        if budget is not None:
            budget = check_count(budget, "budget", "Grid")
        self.budget = budget
        self.points = points
        values = self._values(points, budget)
        combos = self._product(values)
        self.size = len(combos)
        if budget is not None and self.size > budget:
            pick = self.rng.choice(self.size, size=budget, replace=False)
            combos = [combos[i] for i in pick]
        self._combos = combos
        self._next = 0

    # -- building the grid -----------------------------------------------------------------

    def _values(self, points, budget) -> dict[str, list[Any]]:
        explicit: dict[str, Any] = {}
        common = None
        if isinstance(points, Mapping):
            unknown = [k for k in points if k not in self.space.params]
            if unknown:
                raise ValueError(f"Grid: points names {unknown[0]!r}, which is not a parameter "
                                 f"of the space ({', '.join(self.space.params)})")
            explicit = dict(points)
        elif points is not None:
            common = check_count(points, "points", "Grid")
        values = {}
        for name, spec in explicit.items():
            p = self.space.params[name]
            if isinstance(spec, Sequence) and not isinstance(spec, str):
                if not spec:
                    raise ValueError(f"Grid: points[{name!r}] is an empty list")
                values[name] = [p.check_value(name, v, "Grid") for v in spec]
            else:
                values[name] = p.grid(check_count(spec, f"points[{name!r}]", "Grid"))
        free = [n for n in self.space.params if n not in values]
        if common is not None or budget is None:
            for name in free:
                values[name] = self.space.params[name].grid(common or _DEFAULT_POINTS)
            return values
        counts = dict.fromkeys(free, self._fit(free, values, budget))
        for name in free:
            values[name] = self.space.params[name].grid(counts[name])
        # Then one more value for one parameter after another while the grid fits the budget.
        grown = True
        while grown:
            grown = False
            for name in free:
                p = self.space.params[name]
                more = p.grid(counts[name] + 1)
                if len(more) <= len(values[name]):
                    continue        # a categorical, or an int with all its values
                if len(self._product({**values, name: more})) <= budget:
                    counts[name] += 1
                    values[name] = more
                    grown = True
        return values

    def _fit(self, free, fixed, budget) -> int:
        """The largest common number of points whose grid has at most ``budget`` combinations
        (at least 1)."""
        best = 1
        for n in range(1, max(budget, 1) + 1):
            trial = {**fixed, **{name: self.space.params[name].grid(n) for name in free}}
            if len(self._product(trial)) > budget:
                break
            best = n
            if all(isinstance(p, Categorical) or (isinstance(p, Int) and n >= p.size)
                   for p in (self.space.params[k] for k in free)):
                break   # nothing left to refine
        return best

    def _product(self, values) -> list[dict[str, Any]]:
        partial: list[dict[str, Any]] = [{}]
        for name in self.space._order:
            grown = []
            for config in partial:
                if self.space.is_active(name, config):
                    grown += [{**config, name: v} for v in values[name]]
                else:
                    grown.append(config)
            partial = grown
        order = list(self.space.params)
        return [{k: c[k] for k in order if k in c} for c in partial]

    # -- the tuner -------------------------------------------------------------------------

    @property
    def finished(self):
        return self._next >= len(self._combos)

    def _propose(self, k):
        out = self._combos[self._next:self._next + k]
        self._next += len(out)
        return [dict(c) for c in out]

    def state_dict(self):
        return {**super().state_dict(), "next": self._next, "size": self.size}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        if int(state["size"]) != self.size:
            raise ValueError(f"Grid.load_state_dict: the saved grid had {state['size']} "
                             f"combinations, this one {self.size} (other points or budget)")
        self._next = int(state["next"])


def grid_shape(grid: Grid) -> dict[str, int]:
    """How many values each parameter takes in ``grid`` (for messages and docs)."""
    seen: dict[str, set] = {}
    for c in grid._combos:
        for k, v in c.items():
            p = grid.space.params[k]
            seen.setdefault(k, set()).add(p.index(v) if isinstance(p, Categorical) else v)
    return {k: len(v) for k, v in seen.items()}

