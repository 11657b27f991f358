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

import jax
import jax.numpy as jnp

from gradxform._src import dtypes

DEFAULT_LR = {"quadratic": 0.1, "rosenbrock": 1e-3, "gabor": 0.01}
DEFAULT_STEPS = {"quadratic": 300, "rosenbrock": 3000, "gabor": 2000}
DEFAULT_TOL = {"quadratic": 1e-3, "rosenbrock": 1e-2, "gabor": 1.01}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One optimizer in the conformance table.

    Attributes:
      name: a unique id (used in test ids).
      factory: the public constructor, called as ``factory(learning_rate, **kwargs)``.
      kwargs: further arguments.
      lr: learning rate per target (overrides of :data:`DEFAULT_LR`).
      steps: steps per target (overrides of :data:`DEFAULT_STEPS`).
      tol: the target's final loss must be below ``tol`` (overrides of :data:`DEFAULT_TOL`).
      extra: keyword arguments every ``update`` call must receive (``value=`` for
        loss-aware optimizers); the runner fills ``value`` with the current loss, ``obj_fn``
        with the loss function and ``grad_fn`` with ``(params, i) -> gradients``, if present;
        line searches ask for ``value``, ``grad`` (the gradient at the current params) and
        ``value_fn`` (the loss function).
      needs_key: the optimizer takes a PRNG key through ``update(..., key=...)``.
      supports_complex: complex params are optimised (as pairs of reals); if False, using
        complex params must raise an error naming the optimizer.
      lr_key: the key of the learning rate in ``gx.hyperparams`` (None: no learning rate,
        e.g. parameter-free methods).
      vmap_atol: ``None`` (default): an optimizer run alone and inside a vmapped stack agree
        to 1e-6, relative to each leaf's scale (elementwise updates agree to the last bit).
        A number: they agree to this absolute tolerance. For methods with reductions over the
        whole tree (line searches, L-BFGS), which a batch rounds differently: they converge
        to the minimum in a few steps, where the two runs differ by rounding noise that no
        relative tolerance can bound.
    """

    name: str
    factory: Callable[..., Any]
    kwargs: dict = dataclasses.field(default_factory=dict)
    lr: dict = dataclasses.field(default_factory=dict)
    steps: dict = dataclasses.field(default_factory=dict)
    tol: dict = dataclasses.field(default_factory=dict)
    extra: tuple = ()
    needs_key: bool = False
    supports_complex: bool = True
    lr_key: str | None = "learning_rate"
    vmap_atol: float | None = None

    def __post_init__(self):
        for name, defaults in (("lr", DEFAULT_LR), ("steps", DEFAULT_STEPS),
                               ("tol", DEFAULT_TOL)):
            object.__setattr__(self, name, {**defaults, **getattr(self, name)})

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


def sum_of_squares(params: Any) -> jax.Array:
    """``sum |x|^2 / 2`` over every leaf, in float32 at least: the objective the extra
    arguments of :func:`update_arguments` refer to."""
    return sum((0.5 * jnp.sum(jnp.abs(x.astype(dtypes.wider(x.dtype, jnp.float32))) ** 2)
                for x in jax.tree.leaves(params)), jnp.zeros([], jnp.float32))


def update_arguments(entry: Entry, *, value: Any = 1.5, key: Any = None,
                     loss: Callable[[Any], Any] = sum_of_squares,
                     grads: Any = None) -> dict[str, Any]:
    """The keyword arguments ``entry``'s ``update`` must receive (``entry.extra`` and
    ``needs_key``): ``value=`` (Polyak, Momo), ``key=``, ``obj_fn=`` (Sophia's objective) and
    ``grad_fn=`` (SAM's opaque mode: the gradient at another point) of ``loss``; for line
    searches ``value_fn=`` (``loss``) and ``grad=`` (``grads``, the gradient given to
    ``update``)."""
    out: dict[str, Any] = {}
    if "value" in entry.extra:
        out["value"] = jnp.float32(value)
    if entry.needs_key:
        out["key"] = jax.random.key(0) if key is None else key
    if "obj_fn" in entry.extra:
        out["obj_fn"] = loss
    if "grad_fn" in entry.extra:
        out["grad_fn"] = lambda p, i: jax.grad(loss)(p)
    if "value_fn" in entry.extra:
        out["value_fn"] = loss
    if "grad" in entry.extra and grads is not None:
        out["grad"] = grads
    unknown = set(entry.extra) - {"value", "obj_fn", "grad_fn", "value_fn"} - set(out)
    if unknown:
        raise ValueError(f"{entry.name}: no sample for the update arguments {sorted(unknown)}")
    return out


def _objective(params: Any, grads: Any, x: Any) -> jax.Array:
    """``sum <g, x - p> + |x - p|^2 / 2`` over the leaves (:func:`objective_at`)."""
    total = jnp.zeros([], jnp.float32)
    for xi, pi, gi in zip(jax.tree.leaves(x), jax.tree.leaves(params), jax.tree.leaves(grads)):
        work = dtypes.wider(xi.dtype, jnp.float32)  # strict promotion: ask the lattice
        d = xi.astype(work) - pi.astype(work)
        total = total + jnp.sum(jnp.real(jnp.conj(gi.astype(work)) * d)
                                + 0.5 * jnp.abs(d) ** 2).astype(jnp.float32)
    return total


def objective_at(params: Any, grads: Any) -> Callable[[Any], Any]:
    """A real objective whose gradient at ``params`` is ``grads`` and whose value there is 0:
    ``f(x) = sum <g, x - p> + |x - p|^2 / 2`` over the leaves, in float32 at least (its
    minimum is ``p - g``). For tests that give a line search arbitrary gradients: its
    ``value_fn=``, ``value=`` and ``grad=`` must describe one function.

    It is a ``jax.tree_util.Partial`` of one module-level function holding ``params`` and
    ``grads`` as data: the library's compiled line searches and Newton directions key their
    cache by its structure, so a new objective of the same shapes does not compile again."""
    return jax.tree_util.Partial(_objective, params, grads)


def step_arguments(entry: Entry, params: Any, grads: Any, *, value: Any = 1.5,
                   key: Any = None, consistent: bool = False) -> dict[str, Any]:
    """:func:`update_arguments` for one step at ``params`` with the gradients ``grads``: a
    line search (``value_fn`` in ``entry.extra``) gets :func:`objective_at` ``(params,
    grads)``, its value 0 and ``grad=grads``; every other entry gets
    ``update_arguments(entry, value=value, key=key)``, and with ``consistent=True`` its
    ``obj_fn=`` and ``grad_fn=`` (Sophia's curvature, SAM's gradient elsewhere) are those of
    :func:`objective_at` too."""
    if consistent and {"obj_fn", "grad_fn"} & set(entry.extra):
        return update_arguments(entry, value=value, key=key,
                                loss=objective_at(params, grads))
    if "value_fn" in entry.extra:
        return update_arguments(entry, value=0.0, key=key, loss=objective_at(params, grads),
                                grads=grads)
    return update_arguments(entry, value=value, key=key)
