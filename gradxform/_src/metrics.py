"""Per-step training metrics: step, loss, current hyperparameters, gradient and update norms.

:func:`step_metrics` computes a flat ``dict`` of scalar arrays inside the jitted train step (it
reads the current learning rate from the optimizer state, schedules included, with
:func:`~gradxform.hyperparams`). :class:`CSVLogger` writes such dicts as rows of a CSV file;
for TensorBoard, pass each entry to ``writer.add_scalar(name, value, step)`` (see the logging
section of the documentation).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import jax.numpy as jnp
import numpy as np

from gradxform._src import tree
from gradxform._src.base import GradientTransformation, OptState, walk
from gradxform._src.base import hyperparams as _hyperparams
from gradxform._src.types import PyTree

__all__ = ["step_metrics", "CSVLogger"]


def _selected_hyperparams(tx, state, which) -> dict[str, Any]:
    found = _hyperparams(tx, state)
    if which is True:
        return found
    if which is None:  # the learning rate(s) and the loss scale, if the optimizer has them
        return {k: v for k, v in found.items()
                if k.rsplit(".", 1)[-1] in ("learning_rate", "loss_scale")}
    which = [which] if isinstance(which, str) else list(which)
    missing = [k for k in which if k not in found]
    if missing:
        raise KeyError(
            f"step_metrics: {', '.join(map(repr, missing))} not among the hyperparameters of "
            f"this optimizer; it has {sorted(found)}"
        )
    return {k: found[k] for k in which}


def _counters(tx, state) -> dict[str, Any]:
    found = [(path, name, value) for path, t, st, _ in walk(tx, state)
             for name, value in t.state_counters(st).items()]
    names = [name for _, name, _ in found]
    return {(name if names.count(name) == 1 or not path else ".".join(path + (name,))):
            jnp.asarray(value) for path, name, value in found}


def step_metrics(tx: GradientTransformation, state: OptState, grads: PyTree,
                 updates: PyTree | None = None, loss: Any = None, *, step: Any = None,
                 hyperparams: Sequence[str] | str | bool | None = None,
                 counters: bool = True) -> dict[str, Any]:
    r"""The metrics of one training step as a flat dict of scalar arrays (jit-friendly).

    Call it inside the train step with the optimizer state *given to* ``update`` (not the one it
    returned), so that the learning rate reported is the one this step used:

    .. math:: \text{grad\_norm} = \lVert g_t \rVert_2, \qquad
              \text{update\_norm} = \lVert u_t \rVert_2, \qquad
              \text{learning\_rate} = \eta(t - 1)

    Keys: ``step`` (the step count as the state keeps it: ``state.count``, the number of
    updates before this one, 0 at the first; the count schedules are evaluated at; or the
    ``step`` argument), ``loss`` (if given), the selected hyperparameters (``learning_rate``
    by default; ``loss_scale`` of a :class:`~gradxform.dynamic_loss_scale`), the counters the
    wrappers keep (``skipped`` updates of :class:`~gradxform.skip_non_finite` and
    :class:`~gradxform.dynamic_loss_scale`, ``dropped`` micro-batches and ``skipped_windows``
    of :class:`~gradxform.accumulate`; prefixed by their path if several wrappers have them),
    ``grad_norm`` and ``update_norm`` (if ``updates`` is given). Norms are global l2
    norms over all leaves, accumulated in float32 (:func:`~gradxform.global_norm`). The keys
    depend only on the arguments' structure, so one jitted step always returns the same keys
    (a dict returned from ``jax.jit`` has its keys sorted).

    Args:
      tx: the optimizer.
      state: the optimizer state passed to ``tx.update`` in this step.
      grads: the gradients of this step.
      updates: the updates ``tx.update`` returned, or ``None``.
      loss: the loss of this step, or ``None``.
      step: the step number to report, if ``state`` has no count (an optimizer without
        schedules or bias corrections keeps none) or you count steps yourself.
      hyperparams: which hyperparameters to report: ``None`` for every learning rate the
        optimizer has (keys ending in ``learning_rate``), ``True`` for all of them, or names
        as returned by :func:`~gradxform.hyperparams`. ``None`` also reports a loss scale.
      counters: report the wrappers' counters (as of the state given: before this update).

    Returns:
      A dict of scalar arrays; keys as above.

    Example::

        @jax.jit
        def train_step(params, opt_state, batch):
            loss, grads = jax.value_and_grad(loss_fn)(params, batch)
            updates, new_state = opt.update(grads, opt_state, params)
            metrics = gx.step_metrics(opt, opt_state, grads, updates, loss)
            return gx.apply_updates(params, updates), new_state, metrics

        with gx.CSVLogger("train.csv") as log:
            for batch in batches:
                params, opt_state, metrics = train_step(params, opt_state, batch)
                log.write(metrics)
    """
    if not isinstance(state, OptState):
        raise TypeError(
            f"step_metrics: state must be the OptState given to update, got "
            f"{type(state).__name__}"
        )
    out: dict[str, Any] = {}
    if step is not None:
        out["step"] = jnp.asarray(step)
    elif state.count is not None:
        out["step"] = jnp.asarray(state.count)
    if loss is not None:
        out["loss"] = jnp.asarray(loss)
    out.update(_selected_hyperparams(tx, state, hyperparams))
    if counters:
        out.update(_counters(tx, state))
    out["grad_norm"] = tree.global_norm(grads)
    if updates is not None:
        out["update_norm"] = tree.global_norm(updates)
    return out


class CSVLogger:
    """Write metric dicts (such as :func:`step_metrics` returns) as rows of a CSV file.

    The header is taken from the first row's keys (``step`` first, then the others in the
    order given); later rows must have the same keys. Values
    are converted to Python numbers (this waits for the arrays to be computed, so log every
    few steps when speed matters). A batch of metrics with a leading axis, as returned by a
    ``lax.scan`` over steps, can be written at once with :meth:`write_many`.

    Args:
      file: a path (the file is created, or appended to with ``append=True``) or an open text
        file.
      append: append to an existing file instead of replacing it; the header is written only
        if the file is empty.

    Example::

        with gx.CSVLogger("metrics.csv") as log:
            log.write({"step": 1, "loss": 0.5})
    """

    def __init__(self, file: str | os.PathLike[str] | TextIO, append: bool = False):
        self._file: TextIO
        if isinstance(file, (str, os.PathLike)):
            self._file = open(file, "a" if append else "w", newline="")  # noqa: SIM115
            self._owned = True
        else:
            self._file, self._owned = file, False
        self._fields: list[str] | None = None
        self._writer: Any = None
        try:
            self._has_header = append and self._file.tell() > 0
        except (OSError, ValueError):
            self._has_header = False

    def write(self, metrics: Mapping[str, Any]) -> None:
        """Write one row."""
        if self._fields is None:
            self._fields = sorted(metrics, key=lambda k: k != "step")  # stable: step first
            self._writer = csv.writer(self._file)
            if not self._has_header:
                self._writer.writerow(self._fields)
        elif set(metrics) != set(self._fields):
            raise ValueError(
                f"CSVLogger.write: the keys {sorted(metrics)} differ from the header "
                f"{self._fields} of this file; log the same metrics at every step"
            )
        row = []
        for key in self._fields:
            value = np.asarray(metrics[key])
            if value.ndim != 0:
                raise ValueError(
                    f"CSVLogger.write: {key!r} must be a scalar, got shape {value.shape}; use "
                    "write_many for metrics stacked over steps"
                )
            row.append(value.item())
        self._writer.writerow(row)
        self._file.flush()

    def write_many(self, metrics: Mapping[str, Any]) -> None:
        """Write one row per entry of the leading axis (metrics stacked over steps)."""
        arrays = {k: np.asarray(v) for k, v in metrics.items()}
        shapes = [np.shape(v) for v in arrays.values()]
        lengths = {shape[0] for shape in shapes if shape}
        if len(lengths) != 1 or not all(shapes):
            raise ValueError(
                "CSVLogger.write_many: every metric needs the same leading (step) axis, got "
                f"shapes {({k: v.shape for k, v in arrays.items()})}"
            )
        for i in range(lengths.pop()):
            self.write({k: v[i] for k, v in arrays.items()})

    def close(self) -> None:
        """Close the file if this logger opened it."""
        if self._owned and not self._file.closed:
            self._file.close()

    def __enter__(self) -> CSVLogger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
