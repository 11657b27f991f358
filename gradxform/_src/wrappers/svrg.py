r"""SVRG (Johnson & Zhang 2013): stochastic gradients corrected by a snapshot's full gradient.

The wrapper :class:`svrg` turns any inner optimizer into its variance-reduced version; the
snapshot loop of the paper's figure 1 is part of the wrapper (a new snapshot and full gradient
every ``snapshot_every`` updates), and :func:`svrg_run` runs the whole algorithm, sampling the
examples, from a loss of ``(params, example)`` and the data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradxform._src import dtypes, tree
from gradxform._src.base import (
    GradientTransformation,
    apply_updates,
    child,
    find_link,
    static,
    transformation,
)
from gradxform._src.types import PyTree

__all__ = ["svrg", "SvrgState", "svrg_run", "SvrgRun"]


class SvrgState(NamedTuple):
    """State of :class:`svrg`: the snapshot :math:`\\tilde w`, the full gradient
    :math:`\\tilde\\mu` and loss there, the iterate option II will take as the next snapshot
    and the epoch's randomly chosen step (option II), and the inner optimizer's state."""

    snapshot: Any
    full_grad: Any
    snapshot_loss: jax.Array
    chosen_params: Any
    chosen_step: jax.Array
    inner_state: Any


def mean_loss(loss_fn: Callable, params: PyTree, examples: PyTree) -> jax.Array:
    """The mean of ``loss_fn(params, example)`` over the leading axis of ``examples``."""
    return jnp.mean(jax.vmap(loss_fn, in_axes=(None, 0))(params, examples))


class svrg(GradientTransformation):
    r"""Stochastic variance-reduced gradient (SVRG) around any optimizer.

    Every ``snapshot_every`` :math:`= m` updates a snapshot :math:`\tilde w` of the params is
    taken and the full gradient :math:`\tilde\mu = \frac1n\sum_{i=1}^n \nabla\psi_i(\tilde w)`
    computed; in between, the stochastic gradient :math:`\nabla\psi_{i_t}(w_{t-1})` of each
    update (the ``updates`` passed in, from a batch of examples :math:`i_t`) is corrected
    before the inner optimizer sees it:

    .. math:: v_t = \nabla\psi_{i_t}(w_{t-1}) - \nabla\psi_{i_t}(\tilde w) + \tilde\mu

    an unbiased estimate of the full gradient whose variance vanishes as :math:`w` and
    :math:`\tilde w` approach the minimum. With ``inner=gx.sgd(eta)`` this is the paper's
    figure 1: :math:`w_t = w_{t-1} - \eta v_t`. At the end of an epoch of :math:`m` updates the
    next snapshot is, with ``option="I"``, the last iterate :math:`w_m`; with ``option="II"``,
    the iterate :math:`w_t` of a step :math:`t \in \{0, \ldots, m-1\}` drawn uniformly at the
    start of the epoch (with the ``key`` of that update), and the params are set back to it
    (the paper's :math:`w_0 = \tilde w`).

    ``update`` takes, besides the stochastic gradient of the batch at the current params:

    * ``loss_fn``: the loss of one example, ``loss_fn(params, example) -> scalar``;
    * ``batch``: the examples of this update, stacked on a leading axis (the gradient passed in
      must be that of their mean loss);
    * ``data``: all :math:`n` examples, stacked on a leading axis (for :math:`\tilde\mu`, one
      pass over the data at each snapshot);
    * ``key``: with ``option="II"``, a ``jax.random`` key (used at the first update of each
      epoch).

    :func:`svrg_run` samples the batches and passes all of this for you. Cost per epoch:
    :math:`n` example gradients for the snapshot plus :math:`2|B|` per update (the batch at
    :math:`w` and at :math:`\tilde w`).

    Args:
      inner: the optimizer applied to the corrected gradients (gradxform or optax), usually
        ``gx.sgd(learning_rate)``.
      snapshot_every: :math:`m` >= 1, updates per epoch (the paper suggests :math:`m = 2n`
        for convex problems).
      option: ``"I"`` (the last iterate becomes the snapshot) or ``"II"`` (a random iterate).

    References:
      Johnson & Zhang, *Accelerating Stochastic Gradient Descent using Predictive Variance
      Reduction*, NeurIPS 2013 (figure 1).
    """

    inner: GradientTransformation = child(converter=transformation)
    snapshot_every: int = static(default=100)
    option: str = static(default="I")
    uses_count = True
    flat_support = "elementwise"  # on flat params loss_fn takes the FlatParams

    def check(self):
        m = self.snapshot_every
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise self.error(f"must be a whole number >= 1, got {m!r}", "snapshot_every")
        if self.option not in ("I", "II"):
            raise self.error(f"must be 'I' or 'II', got {self.option!r}", "option")

    def init_state(self, params):
        snapshot, _ = tree.params_copy(params)
        chosen = tree.zeros_like(params) if self.option == "II" else None
        return SvrgState(snapshot, tree.zeros_like(params),
                         jnp.zeros([], tree.real_accumulator_dtype(params)), chosen,
                         jnp.zeros([], jnp.int32), self.inner.init_state(params))

    def _extra(self, step):
        extra = step.extra
        for name, what in (("loss_fn", "the loss of one example, loss_fn(params, example)"),
                           ("batch", "the examples of this update, stacked on a leading axis"),
                           ("data", "all examples, stacked on a leading axis")):
            if extra.get(name) is None:
                raise self.error(f"is required: {what}; call update(grads, state, params, "
                                 f"loss_fn=..., batch=..., data=...) or use gx.svrg_run", name)
        if self.option == "II" and extra.get("key") is None:
            raise self.error("is required with option='II': a jax.random key at every update "
                             "(the epoch's iterate is drawn with it)", "key")
        return extra["loss_fn"], extra["batch"], extra["data"]

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        loss_fn, batch, data = self._extra(step)
        m = self.snapshot_every
        t = step.count % m
        start, end = t == 0, t == m - 1
        acc = lambda x: jax.tree.map(  # noqa: E731
            lambda v, s: dtypes.cast(jnp.asarray(v), s.dtype), x, state.snapshot)

        # a new epoch: the current params are the snapshot; one pass for its full gradient
        def new_snapshot():
            loss, grad = jax.value_and_grad(lambda p: mean_loss(loss_fn, p, data))(params)
            return acc(params), acc(grad), jnp.asarray(loss).astype(state.snapshot_loss.dtype)

        snapshot, full_grad, loss = jax.lax.cond(
            start, new_snapshot, lambda: (state.snapshot, state.full_grad, state.snapshot_loss))
        snap_params = jax.tree.map(lambda s, p: s.astype(jnp.asarray(p).dtype), snapshot, params)
        snap_grad = jax.grad(lambda p: mean_loss(loss_fn, p, batch))(snap_params)
        corrected = jax.tree.map(
            lambda g, gs, mu: (dtypes.cast(g, mu.dtype) - dtypes.cast(gs, mu.dtype) + mu
                               ).astype(g.dtype),
            updates, snap_grad, full_grad)
        u, inner_state = self.inner.apply(corrected, state.inner_state, params, step)

        chosen_params, chosen_step = state.chosen_params, state.chosen_step
        if self.option == "II":
            drawn = jax.random.randint(step.extra["key"], [], 0, m, jnp.int32)
            chosen_step = jnp.where(start, drawn, chosen_step)
            chosen_params = jax.tree.map(lambda c, p: jnp.where(t == chosen_step, p, c),
                                         chosen_params, acc(params))
            # the epoch's last update moves the params to the chosen iterate instead
            u = jax.tree.map(
                lambda ui, c, p: jnp.where(end, (c - dtypes.cast(jnp.asarray(p), c.dtype)
                                                 ).astype(ui.dtype), ui),
                u, chosen_params, params)
        return u, SvrgState(snapshot, full_grad, loss, chosen_params, chosen_step, inner_state)

    def links(self, state, step):
        return iter([("inner", self.inner, state.inner_state, step)])


class SvrgRun(NamedTuple):
    """What :func:`svrg_run` returns: the final params and optimizer state, and the full loss
    at each snapshot (one per epoch, the first at the start)."""

    params: Any
    state: Any
    snapshot_losses: jax.Array


def svrg_run(tx: GradientTransformation, loss_fn: Callable[[PyTree, PyTree], jax.Array],
             params: PyTree, data: PyTree, *, key: jax.Array, num_epochs: int,
             batch_size: int = 1, state: Any = None) -> SvrgRun:
    r"""Run SVRG for ``num_epochs`` epochs in one ``lax.scan``: the paper's figure 1, whole.

    .. math:: w_t = w_{t-1} - \eta\,\big(\nabla\psi_{i_t}(w_{t-1}) - \nabla\psi_{i_t}(\tilde w)
              + \tilde\mu\big), \qquad i_t \sim \mathcal U\{1, \ldots, n\}

    Each update draws ``batch_size`` examples uniformly (with replacement, as the paper's
    "randomly pick :math:`i_t`") from ``data``, takes the gradient of their mean loss at the
    current params and applies ``tx`` (an :class:`svrg`, or a chain or wrapper containing one)
    with the arguments it needs. Works under ``jit`` (``num_epochs`` and ``batch_size`` are
    static).

    Args:
      tx: the optimizer, e.g. ``gx.svrg(gx.sgd(0.05), snapshot_every=2 * n)``.
      loss_fn: the loss of one example, ``loss_fn(params, example) -> scalar``.
      params: the starting point :math:`\tilde w_0`.
      data: the :math:`n` examples, a pytree of arrays stacked on a leading axis.
      key: a ``jax.random`` key for the sampling (and option II's draws).
      num_epochs: the number of epochs (snapshots) >= 1.
      batch_size: examples per update, >= 1.
      state: an optimizer state to continue from (default: ``tx.init(params)``).

    Returns:
      An :class:`SvrgRun`: params, state, and the full loss at each of the ``num_epochs``
      snapshots.

    Example::

        def loss_fn(w, example):
            x, y = example
            return 0.5 * (x @ w - y) ** 2 + 0.5 * lam * w @ w

        run = gx.svrg_run(gx.svrg(gx.sgd(0.02), snapshot_every=2 * n), loss_fn, w0, (X, Y),
                          key=jax.random.key(0), num_epochs=10)
    """
    found, _ = find_link(tx, tx.init(params) if state is None else state, svrg, "svrg_run")
    for name, value in (("num_epochs", num_epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"svrg_run: {name} must be a whole number >= 1, got {value!r}")
    n = jax.tree.leaves(data)[0].shape[0]
    state = tx.init(params) if state is None else state

    def body(carry, key):
        p, s = carry
        pick, sub = jax.random.split(key)
        idx = jax.random.randint(pick, [batch_size], 0, n)
        batch = jax.tree.map(lambda x: x[idx], data)
        grads = jax.grad(lambda w: mean_loss(loss_fn, w, batch))(p)
        u, s = tx.update(grads, s, p, loss_fn=loss_fn, batch=batch, data=data, key=sub)
        return (apply_updates(p, u), s), None

    def epoch(carry, keys):
        carry, _ = jax.lax.scan(body, carry, keys)
        _, s = carry
        _, svrg_state = find_link(tx, s, svrg, "svrg_run")
        return carry, svrg_state.snapshot_loss

    keys = jax.random.split(key, (num_epochs, found.snapshot_every))
    (params, state), losses = jax.lax.scan(epoch, (params, state), keys)
    return SvrgRun(params, state, losses)
