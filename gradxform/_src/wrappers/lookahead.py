r"""Lookahead: k steps forward with any optimizer, then one step back towards slow weights."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import (
    GradientTransformation,
    OptState,
    child,
    find_link,
    hyper,
    static,
    transformation,
)
from gradxform._src.types import DType, Hyper
from gradxform._src.wrappers._common import applied_update
from gradxform._src.wrappers.composition import check_nesting

__all__ = ["lookahead", "LookaheadState", "lookahead_slow_params"]


class LookaheadState(NamedTuple):
    """State of :class:`lookahead`: the slow weights (and whether they are known yet) and the
    fast optimizer's state."""

    slow: Any
    slow_known: jax.Array
    fast_state: Any


@docs.args
class lookahead(GradientTransformation):
    r"""Lookahead (Zhang et al. 2019): the fast optimizer explores, slow weights follow.

    With fast weights :math:`\theta` (the params), slow weights :math:`\phi` (in the state),
    sync period :math:`k` and slow step size :math:`\alpha`, every update applies the fast
    optimizer's step :math:`u_t`; on every :math:`k`-th update (step count
    :math:`t \equiv k-1 \bmod k`) the slow weights move and the fast ones are reset to them:

    .. math::
        \phi \leftarrow \phi + \alpha\,(\theta + u_t - \phi), \qquad
        \theta \leftarrow \phi

    so the update returned on a sync step is :math:`u_t - (1-\alpha)(\theta + u_t - \phi)`.
    The fast optimizer sees every step and the same step count (its schedules run on the
    total number of updates); ``reset_state`` re-initialises its state after each sync. The
    sync period counts the updates that reach the params: windows of an inner
    :class:`accumulate`, steps not skipped by :class:`skip_non_finite`.

    Conventions. optax's ``lookahead`` makes the params a ``LookaheadParams(fast, slow)`` pair
    and returns updates for both. Here the params are the fast weights alone and the slow
    weights live in the state, so the optimizer drops into any training loop; read them with
    :func:`lookahead_slow_params` to evaluate (the paper evaluates the slow weights). The
    numbers are the same as optax's. The slow weights are :math:`\phi_0` = the params given to
    ``init`` (or, for ``jax.ShapeDtypeStruct`` leaves, those of the first update), kept in
    float32 for bfloat16/float16 params.

    Args:
      fast_optimizer: the inner optimizer (gradxform or optax).
      sync_period: :math:`k` >= 1, a whole number (a pytree leaf: it can change without
        recompiling).
      slow_step_size: :math:`\alpha` in [0, 1].
      reset_state: re-initialise the fast optimizer's state after each sync.
      <<accumulator_dtype>>

    Example::

        opt = gx.lookahead(gx.adam(1e-3), sync_period=5, slow_step_size=0.5)
        ...
        eval_params = gx.lookahead_slow_params(opt, opt_state)

    References:
      Zhang, Lucas, Hinton, Ba, *Lookahead Optimizer: k steps forward, 1 step back*, NeurIPS
      2019 (Algorithm 1).
    """

    composition_kind = "lookahead"  # its row and column in wrappers/composition.py

    fast_optimizer: GradientTransformation = child(converter=transformation)
    sync_period: Hyper = hyper(interval="[1, inf)", integer=True)
    slow_step_size: Hyper = hyper(interval="[0, 1]")
    reset_state: bool = static(default=False)
    accumulator_dtype: DType = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "elementwise"


    def check(self):
        check_nesting(self, self.fast_optimizer)

    def init_state(self, params):
        slow, known = tree.params_copy(params, self.accumulator_dtype)
        return LookaheadState(slow, known, self.fast_optimizer.init_state(params))

    def apply(self, updates, state, params, step):
        fast = self.require_params(params)
        slow = tree.fill_params_copy(state.slow, state.slow_known, fast)
        u, fast_state = self.fast_optimizer.apply(updates, state.fast_state, fast, step)
        before, applied = applied_update(self.fast_optimizer, state.fast_state, fast_state, step)
        if before is None:  # uses_count: update always passes the step count
            raise RuntimeError(f"{self.name}: the update was called without a step count")
        period = jnp.asarray(step.value(self.sync_period)).astype(before.dtype)
        sync = applied & (before % period == period - 1)
        alpha, rest = tree.complement(step.value(self.slow_step_size))

        def one(ui, f, s):
            c = lambda v: tree.scalar(v, s.dtype)  # noqa: E731
            diff = dtypes.cast(jnp.asarray(f), s.dtype) + dtypes.cast(ui, s.dtype) - s
            new_slow = jnp.where(sync, s + c(alpha) * diff, s)
            new_u = jnp.where(sync, dtypes.cast(ui, s.dtype) - c(rest) * diff,
                              dtypes.cast(ui, s.dtype))
            return new_u.astype(ui.dtype), new_slow

        out, new_slow = tree.unzip2(u, jax.tree.map(one, u, fast, slow))
        if self.reset_state:
            fresh = self.fast_optimizer.init_state(fast)
            fast_state = jax.tree.map(lambda a, b: jnp.where(sync, b, a), fast_state, fresh)
        return out, LookaheadState(new_slow, jnp.ones([], jnp.bool_), fast_state)

    def links(self, state, step):
        return iter([("fast_optimizer", self.fast_optimizer, state.fast_state, step)])


def lookahead_slow_params(tx: GradientTransformation, state: OptState,
                          params: Any = None) -> Any:
    r"""The slow weights :math:`\phi` of a :class:`lookahead` optimizer, to evaluate with.

    Args:
      tx: the optimizer (a :class:`lookahead`, or a chain or wrapper containing one).
      state: its state.
      params: the current params. Needed only before the first update of a state built from
        ``jax.ShapeDtypeStruct`` params (the slow weights are then these params); they also
        set the dtypes of the result.

    Returns:
      A tree like the params, in the params' dtypes if ``params`` is given, else in the state's
      (float32 for bfloat16 params).
    """
    la, la_state = find_link(tx, state, lookahead, "lookahead_slow_params")
    if params is None:
        return la_state.slow
    slow = tree.fill_params_copy(la_state.slow, la_state.slow_known, params)
    return jax.tree.map(lambda s, p: s.astype(jnp.asarray(p).dtype), slow, params)
