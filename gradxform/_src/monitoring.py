r"""Measurements of the updates kept in the optimizer state: ``snapshot``, ``monitor`` and
``measure_with_ema``; read them with ``measurements(tx, state)``.

A measurement is any function of the updates where the link stands in a chain (the gradient
norm before clipping, the fraction of clipped steps). It is stored in the state, which has the
same structure from ``init`` on (the value is zeros until the first update), so it can be
logged from a jitted step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import dtypes, tree
from gradxform._src.base import (
    GradientTransformation,
    OptState,
    Step,
    child,
    hyper,
    static,
    walk,
)
from gradxform._src.module import Invalid
from gradxform._src.types import DType, Hyper, PyTree

__all__ = ["snapshot", "SnapshotState", "measure_with_ema", "MeasureWithEmaState", "monitor",
           "MonitorState", "measurements"]


def _zeros_of(shapes: PyTree) -> PyTree:
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _check_name(module: GradientTransformation, name: Any, field: str) -> None:
    if not isinstance(name, str) or not name:
        raise module.error(f"must be a non-empty string, got {name!r}", field, TypeError)


def _check_callable(module: GradientTransformation, fn: Any, field: str) -> None:
    if not callable(fn) or isinstance(fn, GradientTransformation):
        raise module.error(f"must be a function of the updates, got {fn!r}", field, TypeError)


class SnapshotState(NamedTuple):
    """State of :class:`snapshot`: ``{measure_name: the last measurement}``."""

    measurement: dict[str, Any]


class snapshot(GradientTransformation):
    r"""Store a measurement of the updates in the state; the updates pass through unchanged.

    .. math:: u \leftarrow u, \qquad s \leftarrow f(u)

    :math:`f` is ``measure``, applied to the updates as they arrive at this link of a chain. Read
    the value with ``gx.measurements(opt, state)[measure_name]``.

    Conventions. As ``optax.snapshot``, except that before the first update the stored value is
    zeros shaped like :math:`f(\theta)` where optax stores :math:`f(\theta)` itself (the params
    given to ``init``, which may be abstract here). optax reads it with ``optax.tree.get``.

    Args:
      measure_name: the key of the measurement.
      measure: a function ``updates -> array or tree of arrays`` (static: two snapshots are
        equal when they hold the same function object).

    Example::

        opt = gx.chain(gx.sgd(0.1, momentum=0.9),
                       gx.snapshot("norm_before_clip", gx.global_norm),
                       gx.clip_by_global_norm(0.05))
        ...
        gx.measurements(opt, state)["norm_before_clip"]
    """

    measure_name: str = static()
    measure: Callable[[PyTree], PyTree] = static()
    flat_support = "leaves"  # fn sees the tree it was written for

    def check(self):
        _check_name(self, self.measure_name, "measure_name")
        _check_callable(self, self.measure, "measure")

    def init_state(self, params):
        return SnapshotState({self.measure_name: _zeros_of(jax.eval_shape(self.measure, params))})

    def apply(self, updates, state, params, step):
        return updates, SnapshotState({self.measure_name: self.measure(updates)})


class MeasureWithEmaState(NamedTuple):
    """State of :class:`measure_with_ema`: the moving average of the measurement."""

    ema: Any


class measure_with_ema(GradientTransformation):
    r"""A measurement of the updates, averaged over steps: for use in :class:`monitor`.

    .. math:: e_t = \beta e_{t-1} + (1 - \beta) f(u_t), \qquad
              m_t = e_t / (1 - \beta^t) \ \text{(debias)} \quad\text{or}\quad m_t = e_t

    Its output is the measurement :math:`m_t`, not updates: give it to :class:`monitor`, which
    stores it and passes the updates on. The average is kept in the accumulator dtype of the
    measurement (float32 for bfloat16, boolean or integer measurements, so that
    ``lambda u: gx.global_norm(u) > 1.0`` averages to the fraction of such steps).

    Conventions. As ``optax.measure_with_ema``.

    Args:
      measure: a function ``updates -> array or tree of arrays``.
      decay: :math:`\beta` in [0, 1).
      debias: divide by :math:`1 - \beta^t`.
      accumulator_dtype: dtype of the average (default as described above).
    """

    measure: Callable[[PyTree], PyTree] = static()
    decay: Hyper = hyper(interval="[0, 1)")
    debias: bool = static(default=True)
    accumulator_dtype: DType = static(default=None)
    flat_support = "leaves"  # fn sees the tree it was written for

    def check(self):
        _check_callable(self, self.measure, "measure")

    @property
    def uses_count(self) -> bool:
        return self.debias

    def _dtype(self, dtype: Any) -> Any:
        if self.accumulator_dtype is not None or jnp.issubdtype(dtype, jnp.inexact):
            return dtypes.accumulator_dtype(dtype, self.accumulator_dtype)
        return dtypes.canonical(jnp.float32)

    def init_state(self, params):
        shapes = jax.eval_shape(self.measure, params)
        return MeasureWithEmaState(
            jax.tree.map(lambda s: jnp.zeros(s.shape, self._dtype(s.dtype)), shapes))

    def apply(self, updates, state, params, step):
        decay = step.value(self.decay)
        value = jax.tree.map(lambda m, e: jnp.asarray(m).astype(e.dtype), self.measure(updates),
                             state.ema)
        new = tree.update_moment(value, state.ema, decay, 1)
        out = tree.bias_correction(new, decay, step.number) if self.debias else new
        return out, MeasureWithEmaState(new)


class _measurement(GradientTransformation):
    """A stateless measurement ``fn(updates)`` as a link of :class:`monitor`."""

    fn: Callable[[PyTree], PyTree] = static()
    flat_support = "leaves"  # fn sees the tree it was written for

    def apply(self, updates, state, params, step):
        return self.fn(updates), state


def _measures(value: Any) -> dict[str, GradientTransformation]:
    """Field converter of :class:`monitor`: functions become :class:`_measurement` links."""
    if not isinstance(value, Mapping) or not value:
        raise Invalid(f"must be a non-empty dict {{name: measure}}, got {value!r}", TypeError)
    out = {}
    for name, measure in value.items():
        if not isinstance(name, str) or not name:
            raise Invalid(f"names must be non-empty strings, got {name!r}", TypeError)
        if not isinstance(measure, GradientTransformation):
            if not callable(measure):
                raise Invalid(f"must hold functions of the updates or transformations, got "
                              f"{measure!r} for {name!r}", TypeError)
            measure = _measurement(measure)
        out[name] = measure
    return out


class MonitorState(NamedTuple):
    """State of :class:`monitor`: ``{name: last measurement}`` and each measure's own state."""

    measurements: dict[str, Any]
    measure_states: dict[str, Any]


class monitor(GradientTransformation):
    r"""Store several measurements of the updates in the state, some of them stateful.

    .. math:: u \leftarrow u, \qquad s_k \leftarrow f_k(u) \quad\text{for each measure } k

    Each measure is a function of the updates (as for :class:`snapshot`) or a transformation
    whose output is the measurement, such as :class:`measure_with_ema` (its state is kept here
    and it sees the optimizer's step count). Read the values with
    ``gx.measurements(opt, state)``; ``gx.hyperparams`` reports the measures' hyperparameters.

    Conventions. As ``optax.monitor``, except that the measurements have their final structure
    from ``init`` on (zeros until the first update; optax starts from an empty dict, so its state
    changes structure after the first update), and the measures' states are a dict keyed like
    the measures (optax: a tuple).

    Args:
      measures: a dict ``{name: function of the updates or transformation}``.

    Example::

        opt = gx.chain(
            gx.sgd(0.1, momentum=0.9),
            gx.monitor({"norm_before_clip": gx.global_norm,
                        "clipped_ema": gx.measure_with_ema(lambda u: gx.global_norm(u) > 1.0,
                                                           decay=0.9)}),
            gx.clip_by_global_norm(1.0))
    """

    measures: Mapping[str, GradientTransformation] = child(converter=_measures)
    flat_support = "elementwise"

    def init_state(self, params):
        states, values = {}, {}
        step = Step(jnp.zeros([], jnp.int32), {})
        for name, measure in self.measures.items():
            states[name] = measure.init_state(params)
            shapes = jax.eval_shape(
                lambda s, m=measure: m.apply(params, s, params, step)[0], states[name])
            values[name] = _zeros_of(shapes)
        return MonitorState(values, states)

    def apply(self, updates, state, params, step):
        values, states = {}, {}
        for name, measure in self.measures.items():
            values[name], states[name] = measure.apply(updates, state.measure_states[name],
                                                       params, step)
        return updates, MonitorState(values, states)

    def links(self, state, step):
        return iter([(name, m, state.measure_states[name], step)
                     for name, m in self.measures.items()])


def measurements(tx: GradientTransformation, state: OptState) -> dict[str, Any]:
    """The measurements stored by every :class:`snapshot` and :class:`monitor` inside ``tx``.

    Returns a dict ``{name: value}`` (values as stored: zeros before the first update). Works
    inside jit. Names must be unique across ``tx``.

    Example::

        metrics = {**gx.step_metrics(opt, state, grads), **gx.measurements(opt, new_state)}
    """
    if not isinstance(state, OptState):
        raise TypeError(f"measurements: state must be the OptState of {tx.name}.init, got "
                        f"{type(state).__name__}")
    found: dict[str, Any] = {}
    for _, t, st, _ in walk(tx, state):
        if isinstance(t, snapshot):
            stored = st.measurement
        elif isinstance(t, monitor):
            stored = st.measurements
        else:
            continue
        for name, value in stored.items():
            if name in found:
                raise ValueError(f"measurements: {tx.name} stores two measurements named "
                                 f"{name!r}; give them different names")
            found[name] = value
    return found
