"""Averaged params kept beside training: ``ema_params`` (EMA) and ``swa_params`` (Polyak / SWA).

Read the average for evaluation with :func:`averaged_params`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import (
    GradientTransformation,
    OptState,
    Step,
    apply_updates,
    child,
    hyper,
    static,
    transformation,
    walk,
)
from gradxform._src.routing import path_key
from gradxform._src.types import DType, Hyper
from gradxform._src.wrappers._common import applied_update, reject_schedule
from gradxform._src.wrappers.composition import check_nesting

__all__ = ["ema_params", "swa_params", "AveragedParamsState", "averaged_params"]


class AveragedParamsState(NamedTuple):
    """State of :class:`ema_params` and :class:`swa_params`.

    Attributes:
      averaged: the averaged params, in the accumulator dtype (read them with
        :func:`averaged_params`, which casts them to the params' dtypes).
      inner: the inner transformation's state.
    """

    averaged: Any
    inner: Any


class _Averaging(GradientTransformation):
    """Shared machinery: run ``inner``, then fold the new params into the average, on the
    updates that reach the params only (not on the micro-batches of an ``accumulate`` or the
    steps a ``skip_non_finite`` skips)."""

    composition_kind = "ema_params"  # its row and column in wrappers/composition.py
    flat_support = "elementwise"

    if TYPE_CHECKING:  # fields of every subclass

        @property
        def inner(self) -> GradientTransformation: ...

        @property
        def accumulator_dtype(self) -> DType: ...

    uses_count = True  # to tell an applied update from a skipped one (applied_update)

    def check(self):
        check_nesting(self, self.inner)

    def init_state(self, params):
        # A copy (jnp.array copies), never the params' own buffers: the state may be donated
        # together with the params.
        averaged = jax.tree.map(
            lambda p: jnp.array(p, dtypes.accumulator_dtype(dtypes.leaf_dtype(p),
                                                            self.accumulator_dtype)),
            params)
        return AveragedParamsState(averaged, self.inner.init_state(params))

    def fold(self, averaged, new_params, step):
        raise NotImplementedError

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        new_updates, inner_state = self.inner.apply(updates, state.inner, params, step)
        before, applied = applied_update(self.inner, state.inner, inner_state, step)
        new_params = apply_updates(params, new_updates)
        folded = self.fold(state.averaged, tree.cast_like(new_params, state.averaged),
                           Step(before, step.extra))
        averaged = jax.tree.map(lambda a, f: jnp.where(applied, f, a), state.averaged, folded)
        return new_updates, AveragedParamsState(averaged, inner_state)

    def links(self, state, step):
        return iter([(self.inner.name, self.inner, state.inner, step)])


@docs.args
class ema_params(_Averaging):
    r"""Keep an exponential moving average of the params beside training.

    .. math:: \bar\theta_0 = \theta_0, \qquad \bar\theta_t = \beta\,\bar\theta_{t-1} +
              (1 - \beta)\,\theta_t

    where :math:`\theta_t` are the params after update :math:`t` (``params + updates`` of this
    wrapper, so it must be the outermost transformation, or followed only by transformations
    that leave its updates unchanged). The updates themselves are those of ``inner``: training
    follows the raw params; evaluate with ``gx.averaged_params(opt, state)``.

    :math:`t` counts the updates that reach the params: around :class:`accumulate` the
    average moves once per window (not at every micro-batch), around :class:`skip_non_finite`
    or :class:`dynamic_loss_scale` a skipped step leaves it unchanged, and a ``decay``
    schedule runs on that count.

    Conventions. The average starts at the initial params (as timm's ``ModelEmaV2`` and flax
    examples), so no debiasing is needed. TensorFlow's ``num_updates`` warmup of the decay is a
    schedule: ``decay=gx.schedule_fn(lambda t: jnp.minimum(0.999, (1 + t) / (10 + t)))``.

    Args:
      <<inner>>
      decay: :math:`\beta` in [0, 1] (a number, an array or a schedule).
      <<accumulator_dtype>>

    Example::

        opt = gx.ema_params(gx.adam(1e-3), decay=0.999)
        ...
        eval_params = gx.averaged_params(opt, state)

    References:
      Polyak & Juditsky, *Acceleration of Stochastic Approximation by Averaging*, SIAM J.
      Control Optim. 1992.
    """

    inner: GradientTransformation = child(converter=transformation)
    decay: Hyper = hyper(default=0.999, interval="[0, 1]")
    accumulator_dtype: DType = static(default=None)

    def fold(self, averaged, new_params, step):
        return tree.update_moment(new_params, averaged, step.value(self.decay), 1)


@docs.args
class swa_params(_Averaging):
    r"""Keep the equal-weight average of the params from ``start`` on (Polyak averaging, SWA).

    With :math:`\theta_n` the params after update :math:`n` (1-based), the average is over
    :math:`\theta_{s}, \theta_{s + e}, \theta_{s + 2e}, \ldots` (:math:`s` = ``start``,
    :math:`e` = ``every``):

    .. math:: \bar\theta \leftarrow \bar\theta + \frac{\theta_n - \bar\theta}{m}
              \quad (n \ge s,\ (n - s) \bmod e = 0,\ m = (n - s)/e + 1)

    Before update :math:`s` the average follows the current params. :math:`n` counts the
    updates that reach the params (windows of an inner :class:`accumulate`, steps not skipped
    by :class:`skip_non_finite`), read from the step count; no counter is kept. Like
    :class:`ema_params` this wrapper must be outermost; read the average with
    ``gx.averaged_params(opt, state)``.

    Conventions. torch's ``swa_utils.AveragedModel`` with ``update_parameters`` called every
    ``every`` steps from step ``start`` on. SWA's cyclical learning rate is a schedule of
    ``inner`` (:class:`cyclic_schedule`); recomputing batch-norm statistics is up to the user.

    Args:
      <<inner>>
      start: the first update (1-based) whose params enter the average, >= 1.
      every: the spacing of averaged updates, >= 1.
      <<accumulator_dtype>>

    References:
      Polyak & Juditsky, *Acceleration of Stochastic Approximation by Averaging*, 1992.
      Izmailov et al., *Averaging Weights Leads to Wider Optima and Better Generalization*,
      UAI 2018.
    """

    inner: GradientTransformation = child(converter=transformation)
    start: Hyper = hyper(default=1, interval="[1, inf)", integer=True)
    every: Hyper = hyper(default=1, interval="[1, inf)", integer=True)
    accumulator_dtype: DType = static(default=None)
    uses_count = True

    def check(self):
        reject_schedule(self, "start", "every")
        super().check()

    def fold(self, averaged, new_params, step):
        n = step.number
        since = n - jnp.asarray(self.start, n.dtype)
        every = jnp.asarray(self.every, n.dtype)
        point = (since >= 0) & (since % every == 0)
        m = since // every + 1

        def one(avg, p):
            running = avg + (p - avg) / m.astype(avg.dtype)
            return jnp.where(since < 0, p, jnp.where(point, running, avg))

        return jax.tree.map(one, averaged, new_params)


def averaged_params(tx: GradientTransformation, state: OptState) -> Any:
    """The averaged params kept by the :class:`ema_params` or :class:`swa_params` inside ``tx``.

    Returned in the params' dtypes (the state keeps them in the accumulator dtype). ``tx`` must
    hold exactly one averaging wrapper, anywhere in its tree (usually outermost); leaves outside
    its reach (under a ``partition``) are ``None``.

    Example::

        opt = gx.ema_params(gx.adam(1e-3), decay=0.999)
        state = opt.init(params)
        ...
        test_loss = loss(gx.averaged_params(opt, state), test_batch)
    """
    if not isinstance(state, OptState):
        raise TypeError(f"averaged_params: state must be the OptState of {tx.name}.init, got "
                        f"{type(state).__name__}")
    found = [st.averaged for _, t, st, _ in walk(tx, state) if isinstance(t, _Averaging)]
    if len(found) != 1:
        raise ValueError(
            f"averaged_params: {tx.name} must hold exactly one ema_params or swa_params, found "
            f"{len(found)}. Wrap the optimizer: gx.ema_params(opt, decay=0.999).")
    table = dict(zip(state.spec.paths, state.spec.dtypes))

    def cast(path, x):
        dtype = table.get(path_key(path))
        return x if dtype is None else x.astype(dtype)

    return jax.tree_util.tree_map_with_path(cast, found[0])
