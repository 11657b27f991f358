r"""Distance over Gradients with one step size for the whole tree: DoG and DoWG.

Both scale the whole update by one number, the largest distance from the initial point seen so
far over a running sum of gradient norms. They need no learning rate (``learning_rate``
multiplies their step, 1 by default). The initial point :math:`x_0` is the params of the first
update, so ``init`` accepts ``jax.ShapeDtypeStruct`` leaves (optax takes the params given to
``init``; the two agree unless the params are replaced in between). The layer-wise DoG (one step
size per leaf, optax's ``scale_by_distance_over_gradients``) is in ``dog.py``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, child, hyper, static
from gradxform._src.module import Invalid, Module
from gradxform._src.types import DType, Hyper, Numeric

__all__ = ["scale_by_dog", "DoGState", "DoGInitStep", "scale_by_dowg", "DoWGState"]

INIT_STEP_KINDS = ("distance", "learning_rate", "heuristic")


def _sq_norm(leaves: list, dtype: Any) -> jax.Array:
    """``sum |x|^2`` over the leaves, accumulated in the real ``dtype``."""
    def term(x):
        return tree.abs_sq(x.astype(dtypes.wider(
            x.dtype, jnp.complex64 if jnp.iscomplexobj(x) else dtype)))

    if not leaves:
        return jnp.zeros([], dtype)
    return tree.finite_total(leaves, term).astype(dtype)  # the non-finite rule: inf, NaN out


def _start(step, state_x0: Any, params: Any) -> tuple[Any, Any]:
    """``(x0, x)``: the initial point (the params, at the first update) and the params, both in
    the dtypes of the stored copy."""
    first = step.count == 0
    x = tree.cast_like(jax.tree.map(jnp.asarray, params), state_x0)
    x0 = jax.tree.map(lambda c, p: jnp.where(first, p, c), state_x0, x)
    return x0, x


def _sq_dist(x0: Any, x: Any, dtype: Any) -> jax.Array:
    """``||x - x0||^2`` over the whole tree, accumulated in the real ``dtype``."""
    return _sq_norm(jax.tree.leaves(jax.tree.map(jnp.subtract, x0, x)), dtype)


def _scaled(updates: Any, factor: jax.Array) -> Any:
    return jax.tree.map(lambda g: tree.scale_by(g, factor), updates)


class DoGInitStep(Module):
    """How :class:`scale_by_dog` sets its first step: ``kind`` and ``value`` of the pair
    ``init_step=(kind, value)`` (a pair given to ``scale_by_dog`` is turned into this)."""

    kind: str = static(default="heuristic")
    value: Numeric = hyper(default=1e-6, interval="(0, inf)", schedule=False)

    def check(self):
        if self.kind not in INIT_STEP_KINDS:
            raise self.error(f"must be one of {INIT_STEP_KINDS}, got {self.kind!r}", "kind")


def _init_step(value: Any) -> DoGInitStep:
    """Field converter: ``(kind, value)`` as a :class:`DoGInitStep`, checked."""
    if isinstance(value, DoGInitStep):
        return value
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise Invalid(f"must be a pair (kind, value), got {value!r}", TypeError)
    kind, size = value
    if kind not in INIT_STEP_KINDS:
        raise Invalid(f"kind must be one of {INIT_STEP_KINDS}, got {kind!r}")
    if isinstance(size, Module) or callable(size):
        raise Invalid(f"value must be a real number or an array (it is used once), got {size!r}",
                      TypeError)
    if isinstance(size, numbers.Real) and not (math.isfinite(size) and float(size) > 0):
        raise Invalid(f"value must be > 0, got {size!r}")
    return DoGInitStep(kind=kind, value=size)


class DoGState(NamedTuple):
    """State of :class:`scale_by_dog`: the initial point, the largest distance from it
    :math:`\\bar r_t` and the sum of squared gradient norms :math:`G_t`."""

    init_params: Any
    max_dist: jax.Array
    sum_sq_norm_grads: jax.Array


@docs.args
class scale_by_dog(GradientTransformation):
    r"""Scale by DoG's step size: the distance travelled over the root of the summed squared
    gradient norms.

    .. math::
        \bar r_t = \max\big(\bar r_{t-1},\ \lVert x_t - x_0\rVert\big), \quad
        G_t = G_{t-1} + \lVert g_t\rVert^2, \quad
        \eta_t = \frac{\bar r_t}{\sqrt{G_t + \epsilon}}, \quad u_t = \eta_t\, g_t

    with norms over the whole tree and :math:`\bar r_0 = r_\epsilon` from ``init_step``:
    ``("distance", r)`` sets :math:`r_\epsilon = r`; ``("heuristic", a)`` sets
    :math:`r_\epsilon = a (1 + \lVert x_0\rVert)` (the authors suggest :math:`a` = 1e-6, 1e-4
    with batch normalisation); ``("learning_rate", \eta)`` sets :math:`r_\epsilon = 0` and
    takes :math:`\eta_1 = \eta` for the first step. :math:`r_\epsilon` must be small enough
    that the first step does not diverge. Returns :math:`\eta_t g_t`: follow it with
    ``scale_by_learning_rate``.

    Conventions. As optax: :math:`\epsilon` inside the root (the paper has none).

    Low-precision params. The step grows with the distance travelled, which starts at 0: with
    the default ``("heuristic", 1e-6)`` the first steps are about 1e-6 times the params' norm,
    which bfloat16 params near 1 (spacing :math:`2^{-7}`) cannot take, so they never move. Keep
    float32 params (bfloat16 compute copies) or start larger (``("heuristic", 1e-3)``).

    Args:
      init_step: a pair ``(kind, value)`` with ``kind`` in ``"distance"``, ``"learning_rate"``,
        ``"heuristic"`` and ``value`` > 0 (a number or an array: it is used once), or a
        :class:`DoGInitStep`.
      eps: :math:`\epsilon` >= 0 added to :math:`G_t`.
      <<accumulator_dtype>>

    References:
      Ivgi, Hinder, Carmon, *DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size
      Schedule*, ICML 2023 (Algorithm 1).
    """

    init_step: DoGInitStep = child(default=("heuristic", 1e-6), converter=_init_step)
    eps: Hyper = hyper(default=1e-8, interval="[0, inf)")
    accumulator_dtype: DType = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "elementwise"  # norms of the whole tree

    def init_state(self, params):
        acc = self.accumulator_dtype
        sd = tree.real_accumulator_dtype(params, acc)
        return DoGState(tree.zeros_like(params, acc), jnp.zeros([], sd), jnp.zeros([], sd))

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        sd = state.max_dist.dtype
        first = step.count == 0
        x0, x = _start(step, state.init_params, params)
        dist = tree.safe_sqrt(_sq_dist(x0, x, sd))
        kind, value = self.init_step.kind, tree.scalar(step.value(self.init_step.value), sd)
        if kind == "distance":
            r_eps = value
        elif kind == "heuristic":
            r_eps = value * (1 + tree.safe_sqrt(_sq_norm(jax.tree.leaves(x), sd)))
        else:
            r_eps = jnp.zeros([], sd)
        max_dist = jnp.maximum(jnp.where(first, r_eps, state.max_dist), dist)
        sum_sq = state.sum_sq_norm_grads + _sq_norm(jax.tree.leaves(updates), sd)
        lr = max_dist / jnp.sqrt(sum_sq + tree.scalar(step.value(self.eps), sd))
        if kind == "learning_rate":
            lr = jnp.where(first, value, lr)
        return _scaled(updates, lr), DoGState(x0, max_dist, sum_sq)


class DoWGState(NamedTuple):
    """State of :class:`scale_by_dowg`: the initial point, the weighted sum of squared gradient
    norms :math:`v_t` and the squared distance estimate :math:`\\bar r_t^2`."""

    init_params: Any
    weighted_sq_norm_grads: jax.Array
    estim_sq_dist: jax.Array


@docs.args
class scale_by_dowg(GradientTransformation):
    r"""Scale by DoWG's step size: distance over gradient norms weighted by the distance.

    .. math::
        \bar r_t^2 = \max\big(\bar r_{t-1}^2,\ \lVert x_t - x_0\rVert^2\big), \quad
        v_t = v_{t-1} + \bar r_t^2 \lVert g_t\rVert^2, \quad
        \eta_t = \frac{\bar r_t^2}{\sqrt{v_t} + \epsilon}, \quad u_t = \eta_t\, g_t

    with norms over the whole tree and :math:`\bar r_0^2` = ``init_estim_sq_dist`` (default
    :math:`\epsilon`). Unlike DoG the later gradients weigh more, which adapts to smoothness
    (DoWG is universal). Returns :math:`\eta_t g_t`: follow it with ``scale_by_learning_rate``.

    Conventions. As optax: :math:`\epsilon` is added to :math:`\sqrt{v_t}` (the paper has
    none) and is the default initial squared distance.

    Args:
      init_estim_sq_dist: :math:`\bar r_0^2` > 0, a guess of the squared distance to the
        solution (a number or an array: it is used once), or ``None`` for ``eps``.
      eps: :math:`\epsilon` > 0.
      <<accumulator_dtype>>

    References:
      Khaled, Mishchenko, Jin, *DoWG Unleashed: An Efficient Universal Parameter-Free
      Gradient Descent Method*, NeurIPS 2023 (Algorithm 1).
    """

    init_estim_sq_dist: Numeric | None = hyper(default=None, interval="(0, inf)",
                                               schedule=False)
    eps: Hyper = hyper(default=1e-4, interval="(0, inf)")
    accumulator_dtype: DType = static(default=None, kw_only=True)
    uses_count = True
    flat_support = "elementwise"  # norms of the whole tree

    def init_state(self, params):
        acc = self.accumulator_dtype
        sd = tree.real_accumulator_dtype(params, acc)
        return DoWGState(tree.zeros_like(params, acc), jnp.zeros([], sd), jnp.zeros([], sd))

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        sd = state.estim_sq_dist.dtype
        x0, x = _start(step, state.init_params, params)
        eps = tree.scalar(step.value(self.eps), sd)
        guess = step.value(self.init_estim_sq_dist)
        r0 = eps if guess is None else tree.scalar(guess, sd)
        sq_dist = _sq_dist(x0, x, sd)
        estim = jnp.maximum(jnp.where(step.count == 0, r0, state.estim_sq_dist), sq_dist)
        weighted = estim * _sq_norm(jax.tree.leaves(updates), sd) + state.weighted_sq_norm_grads
        lr = estim / (tree.safe_sqrt(weighted) + eps)
        return _scaled(updates, lr), DoWGState(x0, weighted, estim)
