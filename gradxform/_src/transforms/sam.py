r"""Sharpness-Aware Minimization: descend with the gradient taken at a nearby adversarial point.

SAM needs a second gradient per step, at :math:`x + \epsilon` rather than at :math:`x`. A
transformation only sees the gradients it is given, so :class:`sam` offers the two ways
optax does, both usable from an ordinary training loop:

* ``opaque_mode=True`` (recommended): one ``update`` is one SAM step. ``update`` receives a
  gradient function as an extra argument, ``grad_fn=lambda p, i: jax.grad(loss)(p, batch)``,
  and calls it at the adversarial point(s) itself. The params seen by the loop are always the
  real ones.
* ``opaque_mode=False`` (optax's default): one ``update`` is one *phase*. Every
  ``sync_period``-th update is the outer (descent) step; the others move the params to the
  adversarial point, where the loop computes the next gradient as usual. Nothing extra is
  passed, but half of the updates (with the default period 2) are ascent steps: evaluate and
  checkpoint after outer steps only, and count a step as ``sync_period`` updates.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import dtypes, tree
from gradxform._src.base import (
    GradientTransformation,
    Step,
    child,
    hyper,
    static,
    transformation,
)
from gradxform._src.types import AxisName, Hyper

__all__ = ["normalize", "NormalizeState", "sam", "SAMState"]


class NormalizeState(NamedTuple):
    """State of :class:`normalize`: empty."""


class normalize(GradientTransformation):
    r"""Scale the updates to unit global norm.

    .. math:: u = \frac{g}{\lVert g\rVert}, \qquad u = 0 \text{ where } \lVert g\rVert = 0

    with :math:`\lVert g\rVert` the norm of the whole tree (accumulated in float32 at least).
    SAM's ascent direction: ``chain(normalize(), sgd(rho))`` as ``sam``'s adversarial optimizer
    moves the params by :math:`\rho` along the gradient.

    Conventions. optax's ``optax.contrib.normalize`` divides by zero for a zero gradient (NaN);
    here a zero gradient gives a zero update. (For a per-coordinate normalisation see
    :class:`scale_by_normalized`.)
    """

    flat_support = "elementwise"  # one norm of the whole tree

    def init_state(self, params):
        return NormalizeState()

    def apply(self, updates, state, params, step):
        norm = tree.global_norm(updates, ignore_non_finite=True)  # the non-finite rule
        positive = norm > 0
        safe = jnp.where(positive, norm, jnp.ones_like(norm))

        def one(g):
            work = dtypes.wider(g.dtype, norm.dtype)
            u = g.astype(work) / safe.astype(work)
            return jnp.where(positive, u, jnp.zeros_like(u)).astype(g.dtype)

        return jax.tree.map(one, updates), state


class SAMState(NamedTuple):
    """State of :class:`sam`: the outer params saved at the start of a period (transparent
    mode; unused in opaque mode), the outer optimizer's state and the adversarial one's."""

    cache: Any
    opt_state: Any
    adv_state: Any


def _optional_transformation(value: Any) -> GradientTransformation | None:
    return None if value is None else transformation(value)


def _with_count(step: Step, count: jax.Array) -> Step:
    """``step`` seen on another clock (``sam`` uses the count, so the shared one exists)."""
    dtype = jnp.int32 if step.count is None else step.count.dtype
    return Step(count.astype(dtype), step.extra)


class sam(GradientTransformation):
    r"""SAM (Foret et al. 2021): minimise the loss at the worst point of a small ball.

    With the adversarial optimizer's step :math:`a(\cdot)` (default: the paper's
    :math:`a(g) = \rho\, g/\lVert g\rVert`) and :math:`k` = ``sync_period``, one SAM step from
    the params :math:`x` is

    .. math::
        \tilde x_0 = x, \qquad \tilde x_{i+1} = \tilde x_i + a(\nabla f(\tilde x_i))
        \quad (i < k - 1), \qquad x \leftarrow x + \operatorname{opt}(\nabla f(\tilde x_{k-1}))

    so with :math:`k = 2`, :math:`x \leftarrow x + \operatorname{opt}(\nabla f(x + \rho
    \nabla f(x) / \lVert\nabla f(x)\rVert))`. An explicit ``adv_optimizer`` is a *descent*
    optimizer whose updates are negated (optax's convention): ``chain(normalize(), sgd(rho))``
    is the default ascent.

    **Opaque mode** (``opaque_mode=True``): ``update`` performs the whole step and needs
    ``grad_fn=`` (a function ``(params, i) -> gradients`` at the adversarial point, ``i`` the
    adversarial step; use it to pick a batch, or ignore it)::

        grad_fn = lambda p, i: jax.grad(loss)(p, batch)
        updates, state = opt.update(grads, state, params, grad_fn=grad_fn)

    The outer optimizer runs once per ``update`` on the shared step count; inside ``shard_map``
    or ``pmap`` give ``batch_axis_name`` to average the adversarial gradients over devices.

    **Transparent mode** (default, as optax): each ``update`` is one phase; updates
    :math:`t \not\equiv k - 1 \pmod k` are adversarial steps (the params become
    :math:`\tilde x_{i+1}`), update :math:`t \equiv k-1` returns the params to the saved outer
    point plus the outer step. The outer optimizer's step count is the number of outer steps
    taken, the adversarial one's the number of adversarial steps (since its last reset, with
    ``reset_state``).

    Conventions. The numbers are optax's, except for ``sync_period=1`` in transparent mode,
    which is the outer optimizer alone here (optax's update then reverts the previous step).
    The outer params are kept in the state in the accumulator dtype (float32 for bfloat16
    params).

    Args:
      optimizer: the outer (descent) optimizer, gradxform or optax.
      adv_optimizer: the adversarial optimizer, a descent optimizer whose updates are negated;
        ``None`` for the paper's normalised ascent of radius ``rho``.
      sync_period: :math:`k` >= 1 (a whole number): one outer step per :math:`k - 1`
        adversarial ones.
      reset_state: re-initialise the adversarial optimizer's state after every outer step.
      opaque_mode: run the adversarial steps inside ``update`` (needs ``grad_fn=``).
      batch_axis_name: opaque mode only: the mapped axis over which the adversarial gradients
        are averaged (``jax.lax.pmean``).
      rho: :math:`\rho` >= 0, the radius of the default ascent (unused with an
        ``adv_optimizer``).

    Example::

        opt = gx.sam(gx.sgd(0.1, momentum=0.9), opaque_mode=True, rho=0.05)

    References:
      Foret, Kleiner, Mobahi, Neyshabur, *Sharpness-Aware Minimization for Efficiently
      Improving Generalization*, ICLR 2021 (Algorithm 1).
    """

    optimizer: GradientTransformation = child(converter=transformation)
    adv_optimizer: GradientTransformation | None = child(default=None,
                                                         converter=_optional_transformation)
    sync_period: int = static(default=2)
    reset_state: bool = static(default=True)
    opaque_mode: bool = static(default=False)
    batch_axis_name: AxisName = static(default=None)
    rho: Hyper = hyper(default=0.05, interval="[0, inf)", kw_only=True)
    uses_count = True
    flat_support = "elementwise"

    def check(self):
        k = self.sync_period
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise self.error(f"must be a whole number >= 1, got {k!r}", "sync_period")

    # -- the adversarial optimizer (the default ascent has no state) -------------------------

    def _adv_init(self, params):
        return () if self.adv_optimizer is None else self.adv_optimizer.init_state(params)

    def _ascent(self, grads, adv_state, params, step):
        """The move towards the adversarial point, and the new adversarial state."""
        if self.adv_optimizer is None:
            rho = step.value(self.rho)
            unit, _ = normalize().apply(grads, (), params, step)
            return jax.tree.map(lambda u: u * tree.scalar(rho, u.dtype), unit), adv_state
        u, adv_state = self.adv_optimizer.apply(grads, adv_state, params, step)
        return jax.tree.map(jnp.negative, u), adv_state

    # -- the protocol --------------------------------------------------------------------------

    def init_state(self, params):
        cache = () if self.opaque_mode else tree.zeros_like(params)
        return SAMState(cache, self.optimizer.init_state(params), self._adv_init(params))

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        if self.opaque_mode:
            return self._opaque(updates, state, params, step)
        return self._transparent(updates, state, params, step)

    def _clocks(self, count):
        """(outer step count, adversarial step count) at the update with shared ``count``."""
        k = self.sync_period
        if self.opaque_mode:
            return count, (jnp.zeros_like(count) if self.reset_state else count * (k - 1))
        position = count % k
        outer = count // k
        return outer, position if self.reset_state else outer * (k - 1) + position

    def _opaque(self, updates, state, params, step):
        grad_fn = step.extra.get("grad_fn")
        if grad_fn is None:
            raise self.error("needs the gradient function in opaque mode: call update(grads, "
                             "state, params, grad_fn=lambda p, i: jax.grad(loss)(p, batch))",
                             "grad_fn")
        outer_count, adv_count = self._clocks(step.count)
        adv_params, grads, adv_state = params, updates, state.adv_state
        for i in range(self.sync_period - 1):
            move, adv_state = self._ascent(grads, adv_state, adv_params,
                                           _with_count(step, adv_count + i))
            adv_params = jax.tree.map(
                lambda p, m: (p + m.astype(jnp.asarray(p).dtype)).astype(jnp.asarray(p).dtype),
                adv_params, move)
            grads = grad_fn(adv_params, i)
            if self.batch_axis_name is not None:
                grads = jax.lax.pmean(grads, axis_name=self.batch_axis_name)
        if self.reset_state:
            adv_state = self._adv_init(params)
        out, opt_state = self.optimizer.apply(grads, state.opt_state, params,
                                              _with_count(step, outer_count))
        return out, SAMState(state.cache, opt_state, adv_state)

    def _transparent(self, updates, state, params, step):
        k = self.sync_period
        position = step.count % k
        first, last = position == 0, position == k - 1
        outer_count, adv_count = self._clocks(step.count)
        cache = jax.tree.map(
            lambda c, p: jnp.where(first, dtypes.cast(jnp.asarray(p), c.dtype), c),
            state.cache, params)

        def outer():
            outer_params = jax.tree.map(lambda c, p: c.astype(jnp.asarray(p).dtype), cache,
                                        params)
            u, opt_state = self.optimizer.apply(updates, state.opt_state, outer_params,
                                                _with_count(step, outer_count))
            back = jax.tree.map(
                lambda c, p, ui: ((c - dtypes.cast(jnp.asarray(p), c.dtype))
                                  + dtypes.cast(ui, c.dtype)).astype(ui.dtype),
                cache, params, u)
            adv_state = self._adv_init(params) if self.reset_state else state.adv_state
            return back, opt_state, adv_state

        def adversarial():
            move, adv_state = self._ascent(updates, state.adv_state, params,
                                           _with_count(step, adv_count))
            move = jax.tree.map(lambda m, g: m.astype(g.dtype), move, updates)
            return move, state.opt_state, adv_state

        out, opt_state, adv_state = jax.lax.cond(last, outer, adversarial)
        return out, SAMState(cache, opt_state, adv_state)

    def links(self, state, step):
        outer, adv = (None, None) if step.count is None else self._clocks(step.count)
        found = [("optimizer", self.optimizer, state.opt_state,
                  step if outer is None else _with_count(step, outer))]
        if self.adv_optimizer is not None:
            found.append(("adv_optimizer", self.adv_optimizer, state.adv_state,
                          step if adv is None else _with_count(step, adv)))
        return iter(found)
