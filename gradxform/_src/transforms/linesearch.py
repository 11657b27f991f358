r"""Line searches: choose how far to move along the direction the previous links computed.

A line search is the last link of a chain that produced a descent direction :math:`d` (minus a
gradient, an L-BFGS or Newton direction) and returns :math:`\eta d`, with the step size
:math:`\eta` chosen by evaluating the objective along the ray
:math:`\varphi(\eta) = f(x + \eta d)`. It needs the objective, so ``update`` takes three more
keyword arguments::

    updates, state = tx.update(grad, state, params, value=f(params), grad=grad, value_fn=f)

Other keyword arguments whose names are parameters of ``value_fn`` are passed on to it
(``value_fn(params, batch=batch)``); the rest are ignored, so a line search can sit in a chain
whose other links take their own arguments.

**Nothing is evaluated twice.** The value and gradient at the point a search accepts are kept in
its :class:`LinesearchState` (``value``, ``grad``); the next step starts from them instead of
evaluating the objective again: :class:`gradxform.Solver` and :func:`gradxform.minimize` do
this for you, :func:`gradxform.value_and_grad_from_state` does it in a hand-written loop.
``info.num_fun_evals`` counts the evaluations of the last search: every point tried costs one
(a value-and-gradient evaluation for :class:`zoom_linesearch`; a value and a linearisation for
the other two, whose gradient is formed, by transposing that linearisation, only at points that
may be accepted).

**No step uphill.** A search that finds no point satisfying its condition within its budget
returns a zero update (``info.decrease_error`` is then ``inf``) rather than an arbitrary one.

**Non-finite entries** (the non-finite rule, ``docs/validation.md``). The search moves along
the finite part of the direction (inf and NaN entries read as 0) and reads the finite parts of
the gradients in its slopes :math:`\langle \nabla f, d\rangle`; the update it returns is the
accepted step times the whole direction, so a non-finite entry of the direction (L-BFGS, BFGS
and Newton give one where the gradient has one) stays non-finite, in its place only. An
objective that is itself NaN or infinite along that direction gets no step.

**Compilation.** The search is compiled once per objective and shapes. An objective that is a
pytree of JAX arrays (a ``jax.tree_util.Partial`` holding its data, a class registered as a
pytree) keys the cache by its structure, its arrays being traced data: a new objective of the same
structure, with new data, reuses the compiled search. Any other function keys it by itself
(define it once, outside the loop).

**Differentiation.** The search itself runs in ``lax.while_loop`` on stopped gradients: the
step size is a constant for ``jax.grad`` (derivatives with respect to hyperparameters flow
through the direction ``d``, not through the choice of :math:`\eta`).

Real params only: complex leaves are rejected when the state is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradxform._src import dtypes, tree
from gradxform._src.base import GradientTransformation, Step, hyper, static
from gradxform._src.module import api
from gradxform._src.types import Hyper, PyTree

__all__ = [
    "LinesearchState", "BacktrackingInfo", "GoldenSectionInfo", "ZoomInfo",
    "backtracking_linesearch", "golden_section_linesearch", "zoom_linesearch",
    "scale_by_backtracking_linesearch", "scale_by_zoom_linesearch",
]

_GOLDEN = (1.0 + 5.0**0.5) / 2.0  # the golden ratio, 1.618...
# phases of the golden-section search
_BRACKET, _SECTION, _DONE = (np.int32(k) for k in range(3))
_RESERVED = ("value", "grad", "value_fn")


# --------------------------------------------------------------------------------------------
# States.


class LinesearchState(NamedTuple):
    """State of a line search: the step size it accepted last, and the objective's value and
    gradient at the point it accepted (the next step reuses them)."""

    learning_rate: jax.Array
    value: jax.Array
    grad: Any
    info: Any


class BacktrackingInfo(NamedTuple):
    """What the last backtracking search did: evaluations, and by how much the accepted point
    misses the sufficient-decrease condition (0 when it holds, ``inf`` when no step was taken)."""

    num_fun_evals: jax.Array
    decrease_error: jax.Array


class GoldenSectionInfo(NamedTuple):
    """What the last golden-section search did: evaluations, the decrease error (0: the
    accepted point is below the start; ``inf``: no step) and the final bracket
    ``[lower, upper]`` of step sizes."""

    num_fun_evals: jax.Array
    decrease_error: jax.Array
    lower: jax.Array
    upper: jax.Array


class ZoomInfo(NamedTuple):
    """What the last zoom search did: evaluations, and by how much the accepted point misses
    the sufficient-decrease and curvature conditions (0 when they hold; a decrease error of
    ``inf`` means no step was taken)."""

    num_fun_evals: jax.Array
    decrease_error: jax.Array
    curvature_error: jax.Array


# --------------------------------------------------------------------------------------------
# What every search shares: the objective along the ray, and tree arithmetic in one dtype.


def _fn_kwargs(value_fn: Callable, extra: dict) -> dict:
    """The extra arguments of ``update`` that ``value_fn`` takes by name."""
    try:
        parameters = list(inspect.signature(value_fn).parameters.values())
    except (TypeError, ValueError):
        return {}
    names = {p.name for p in parameters[1:]
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {k: v for k, v in extra.items() if k in names and k not in _RESERVED}


def _vdot(a: PyTree, b: PyTree, work: Any) -> jax.Array:
    """``<a, b>`` over all leaves, accumulated in ``work``."""
    total = jnp.zeros([], work)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        total = total + jnp.sum(x.astype(work) * y.astype(work))
    return total


def _finite_vdot(grad: PyTree, direction: PyTree, work: Any) -> jax.Array:
    """``<grad, direction>`` over the gradient's finite part (the non-finite rule: an inf or NaN
    entry of the gradient does not make the slope non-finite); ``direction`` is the search's,
    finite already (``_run_search``)."""
    return _vdot(jax.tree.map(tree.finite_part, grad), direction, work)


def _along(params: PyTree, step_size: jax.Array, direction: PyTree) -> PyTree:
    """``params + step_size * direction``, formed in the wider dtype, in the params' dtypes."""

    def one(p, d):
        p = jnp.asarray(p)
        wide = dtypes.wider(p.dtype, d.dtype, step_size.dtype)
        return (p.astype(wide) + step_size.astype(wide) * d.astype(wide)).astype(p.dtype)

    return jax.tree.map(one, params, direction)


def _scaled(direction: PyTree, step_size: jax.Array) -> PyTree:
    return jax.tree.map(lambda d: tree.scale_by(d, step_size), direction)


def _finite(x: jax.Array) -> jax.Array:
    return jnp.isfinite(x)


def _where(pred: jax.Array, a: PyTree, b: PyTree) -> PyTree:
    return jax.tree.map(lambda x, y: jnp.where(pred, x, y), a, b)


def _accumulators(like: PyTree, params: PyTree) -> PyTree:
    """``like`` (a gradient) cast to the accumulator dtypes of ``params``."""
    return jax.tree.map(
        lambda g, p: dtypes.cast(jnp.asarray(g), dtypes.accumulator_dtype(dtypes.leaf_dtype(p))),
        like, params)


class _Ray(NamedTuple):
    """The objective restricted to the ray ``x + eta d`` (everything on stopped gradients)."""

    fn: Callable[[PyTree], jax.Array]
    params: PyTree
    direction: PyTree
    value: jax.Array
    grad: PyTree
    slope: jax.Array
    work: Any

    def point(self, step_size):
        return _along(self.params, step_size, self.direction)

    def value_and_grad(self, step_size):
        """``(phi(eta), grad f(x + eta d), phi'(eta))``: one evaluation (the slope from the
        gradient's finite part)."""
        value, grad = jax.value_and_grad(self.fn)(self.point(step_size))
        grad = _accumulators(grad, self.params)
        return self._real(value), grad, _finite_vdot(grad, self.direction, self.work)

    def value_and_linearization(self, step_size):
        """``phi(eta)`` and a function forming the gradient there (a transpose, no new
        evaluation)."""
        point = self.point(step_size)
        value, jvp = jax.linearize(self.fn, point)

        def grad():
            (g,) = jax.linear_transpose(jvp, point)(jnp.ones_like(value))
            return _accumulators(g, self.params)

        return self._real(value), grad

    def _real(self, value):
        return jnp.asarray(value).astype(self.work)


def _report(condition: jax.Array, message: str, **values: Any) -> None:
    """``jax.debug.print`` of ``message`` where ``condition`` holds (``verbose=True``)."""
    jax.lax.cond(condition, lambda: jax.debug.print(message, **values), lambda: None)


def _no_complex(tx: GradientTransformation, params: PyTree) -> None:
    for leaf in jax.tree.leaves(params):
        if jnp.issubdtype(dtypes.leaf_dtype(leaf), jnp.complexfloating):
            raise tx.error(
                "optimises real params only (its line search compares values along a real "
                "ray); split complex params into real and imaginary parts", exc=TypeError)


class _Linesearch(GradientTransformation):
    """What the three searches share: their state, and reading the objective from ``update``."""

    # inner products and norms of the whole update; on flat params value_fn takes the
    # FlatParams (value_fn(fp) = loss(fp.unflatten())), as the gradient does
    flat_support = "elementwise"

    @property
    def _stores_grad(self) -> bool:
        """Whether the search keeps the gradient at the accepted point (``None`` in the state
        if not)."""
        return True

    def init_state(self, params):
        _no_complex(self, params)
        work = tree.real_accumulator_dtype(params)
        grad = tree.zeros_like(params) if self._stores_grad else None
        return LinesearchState(jnp.ones([], work), jnp.full([], jnp.inf, work), grad,
                               self._initial_info(work))

    def state_hyperparams(self, state):
        """The step size the last search accepted, as ``step_size``."""
        return {"step_size": state.learning_rate}

    def _initial_info(self, work):
        raise NotImplementedError

    def _inputs(self, step, params):
        """``value_fn``, its extra keyword arguments, ``value`` and ``grad``, checked."""
        extra = dict(step.extra)
        value_fn = extra.get("value_fn")
        example = ("update(updates, state, params, value=f(params), grad=grad_f(params), "
                   "value_fn=f)")
        if value_fn is None:
            raise self.error(f"is required: a line search evaluates the objective, call "
                             f"{example}", "value_fn")
        if not callable(value_fn):
            raise self.error(f"must be the objective, a function of the params, got "
                             f"{value_fn!r}", "value_fn", TypeError)
        for name in ("value", "grad"):
            if extra.get(name) is None:
                raise self.error(f"is required: the objective's {name} at the current params "
                                 f"(jax.value_and_grad gives both), call {example}", name)
        value = jnp.asarray(extra["value"])
        if value.ndim != 0:
            raise self.error(f"must be the scalar value of the objective, got an array of "
                             f"shape {value.shape}", "value")
        self.require_params(params)
        return value_fn, _fn_kwargs(value_fn, extra), value, extra["grad"]

    def _finish(self, updates, state, ray, step_size, value, grad, info, next_guess):
        """The scaled updates and the new state (gradient dropped if not stored)."""
        new_state = LinesearchState(next_guess.astype(ray.work), value.astype(ray.work),
                                    grad if self._stores_grad else None, info)
        return _scaled(updates, jax.lax.stop_gradient(step_size)), new_state

    def apply(self, updates, state, params, step):
        if not jax.tree.leaves(updates):
            return updates, state
        value_fn, kwargs, value, grad = self._inputs(step, params)
        return _run_search_jit(self, updates, state, params, value, grad, kwargs, step.count,
                               value_fn=value_fn)

    def _search(self, updates, state, ray, step):
        raise NotImplementedError


def _run_search(search, updates, state, params, value, grad, kwargs, count, *, value_fn):
    """One search, compiled once per (search structure, objective, shapes): eager loops reuse
    it instead of tracing the while loop again at every step."""
    work = tree.real_accumulator_dtype(params)
    sg = jax.lax.stop_gradient
    # the non-finite rule: the search moves along the finite part of the direction, and its
    # slopes read finite parts; the update returned is the step times the whole direction, so
    # a non-finite entry of the direction stays in its place
    params_, direction = sg(params), jax.tree.map(tree.finite_part, sg(updates))
    grad = _accumulators(sg(grad), params_)

    def fn(p):
        return value_fn(p, **kwargs)

    ray = _Ray(fn, params_, direction, sg(value).astype(work), grad,
               _finite_vdot(grad, direction, work), work)
    return search._search(updates, state, ray, Step(count, {}))


def _is_array(x: Any) -> bool:
    # JAX arrays only: a Python number or a NumPy array may be used as a constant (a shape, a
    # flag, NumPy code), which a traced value cannot be
    return isinstance(x, jax.Array)


def jit_with_objective(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn(*args, value_fn=f)`` compiled once per objective and shapes.

    A ``value_fn`` that is a pytree of JAX arrays (a ``jax.tree_util.Partial`` holding data,
    an object registered as a pytree) keys the cache by its structure and passes its arrays as
    data, so a new objective of the same structure (new data) reuses the compiled search; any
    other hashable function keys the cache itself (the same function object reuses it); an
    unhashable one is traced at every call.
    """
    by_function = jax.jit(fn, static_argnames=("value_fn",))

    def unflattened(leaves, *args, structure):
        return fn(*args, value_fn=jax.tree.unflatten(structure, leaves))

    by_structure = jax.jit(unflattened, static_argnames=("structure",))

    def call(*args: Any, value_fn: Callable[..., Any]) -> Any:
        leaves, structure = jax.tree.flatten(value_fn)
        if not jax.tree_util.treedef_is_leaf(structure) and all(map(_is_array, leaves)):
            try:
                hash(structure)
            except TypeError:
                pass
            else:
                return by_structure(leaves, *args, structure=structure)
        try:
            hash(value_fn)
        except TypeError:  # an unhashable objective cannot key the cache: trace every call
            return fn(*args, value_fn=value_fn)
        return by_function(*args, value_fn=value_fn)

    return call


_run_search_jit = jit_with_objective(_run_search)


# --------------------------------------------------------------------------------------------
# Backtracking.


class backtracking_linesearch(_Linesearch):
    r"""Backtracking line search: shrink the step until the objective decreases enough (Armijo).

    Starting from a guess :math:`\eta_0 = \min(\gamma\,\eta_{prev}, \eta_{max})` (the previous
    accepted step grown by the increase factor :math:`\gamma`; :math:`\eta_{max}` itself when
    ``increase_factor=None``), the trial steps :math:`\eta_k = \rho^k \eta_0` are tried in turn
    and the first that satisfies

    .. math:: f(x + \eta d) \le (1 + \delta) f(x) + c_1\, \eta\, \langle \nabla f(x), d\rangle
              + \epsilon

    is accepted, with :math:`c_1` = ``slope_rtol``, :math:`\rho` = ``decrease_factor``,
    :math:`\delta` = ``rtol``, :math:`\epsilon` = ``atol``; the update is :math:`\eta d`.
    ``update`` needs ``value=``, ``grad=`` and ``value_fn=`` (see the module's text).

    Conventions. The same search as optax's ``scale_by_backtracking_linesearch`` (same
    arguments in the same order, same trial steps), except where no trial step satisfies the
    condition within ``max_backtracking_steps + 1`` evaluations: optax then takes the last step
    tried, this returns a zero update (no step uphill) and keeps the last step tried as the
    guess for the next search. ``store_grad`` defaults to ``True`` here, to reuse the gradient
    at the accepted point (optax: ``False``); set it to ``False`` when the objective changes
    between steps (a new batch), where that gradient is of no use.

    Args:
      max_backtracking_steps: number of times the step may be shrunk (so at most this plus one
        evaluations), >= 0.
      slope_rtol: :math:`c_1` in (0, 1).
      decrease_factor: :math:`\rho` in (0, 1).
      increase_factor: :math:`\gamma` >= 1, or ``None`` to start every search at
        :math:`\eta_{max}` (Newton's methods, whose natural step is 1).
      max_learning_rate: :math:`\eta_{max}` > 0.
      atol: :math:`\epsilon` >= 0.
      rtol: :math:`\delta` >= 0.
      store_grad: keep the gradient at the accepted point in the state (for reuse).
      verbose: print a line (``jax.debug.print``) whenever a search takes no step.

    Example::

        opt = gx.chain(gx.scale(-1.0), gx.backtracking_linesearch())
        solver = gx.Solver(opt, f)   # threads value=, grad=, value_fn= for you

    References:
      Armijo, *Minimization of functions having Lipschitz continuous first partial
      derivatives*, Pacific J. Math. 1966. Nocedal & Wright, *Numerical Optimization*, 2nd ed.
      2006 (algorithm 3.1).
    """

    max_backtracking_steps: int = static(default=30)
    slope_rtol: Hyper = hyper(default=1e-4, interval="(0, 1)")
    decrease_factor: Hyper = hyper(default=0.8, interval="(0, 1)")
    increase_factor: Hyper | None = hyper(default=1.5, interval="[1, inf)", optional=True)
    max_learning_rate: Hyper = hyper(default=1.0, interval="(0, inf)")
    atol: Hyper = hyper(default=0.0, interval="[0, inf)")
    rtol: Hyper = hyper(default=0.0, interval="[0, inf)")
    store_grad: bool = static(default=True)
    verbose: bool = static(default=False)

    def check(self):
        steps = self.max_backtracking_steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise self.error(f"must be a whole number >= 0, got {steps!r}",
                             "max_backtracking_steps")

    @property
    def _stores_grad(self) -> bool:
        return self.store_grad

    def _initial_info(self, work):
        return BacktrackingInfo(jnp.zeros([], jnp.int32), jnp.full([], jnp.inf, work))

    def _search(self, updates, state, ray, step):
        work = ray.work
        c1, rho, max_lr, atol, rtol = (tree.scalar(step.value(h), work) for h in (
            self.slope_rtol, self.decrease_factor, self.max_learning_rate, self.atol, self.rtol))
        if self.increase_factor is None:
            guess = max_lr
        else:
            grown = tree.scalar(step.value(self.increase_factor), work) * state.learning_rate
            guess = jnp.minimum(grown, max_lr)
        threshold = (1 + rtol) * ray.value + atol

        def error(step_size, value):
            err = value - threshold - step_size * c1 * ray.slope
            return jnp.where(jnp.isnan(err), jnp.inf, jnp.maximum(err, jnp.zeros_like(err)))

        def cond(carry):
            i, _, _, err, _ = carry
            return (err > 0) & (i <= self.max_backtracking_steps)

        def body(carry):
            i, step_size, value, err, grad = carry
            step_size = jnp.where(i > 0, rho * step_size, step_size)
            value, grad_fn = ray.value_and_linearization(step_size)
            err = error(step_size, value)
            if self.store_grad:
                grad = jax.lax.cond(err <= 0, grad_fn, lambda: grad)
            return i + 1, step_size, value, err, grad

        init = (jnp.zeros([], jnp.int32), guess, ray.value, jnp.full([], jnp.inf, work),
                ray.grad)
        evals, tried, value, err, grad = jax.lax.while_loop(cond, body, init)
        ok = err <= 0
        step_size = jnp.where(ok, tried, jnp.zeros_like(tried))
        value = jnp.where(ok, value, ray.value)
        grad = _where(ok, grad, ray.grad)
        info = BacktrackingInfo(evals, jnp.where(ok, err, jnp.full([], jnp.inf, work)))
        if self.verbose:
            _report(~ok, "backtracking_linesearch: no step in {n} evaluations satisfies "
                    "sufficient decrease (slope along the direction {slope}); no step taken",
                    n=evals, slope=ray.slope)
        return self._finish(updates, state, ray, step_size, value, grad, info, tried)


@api("scale_by_backtracking_linesearch")
def scale_by_backtracking_linesearch(
        max_backtracking_steps: int, slope_rtol: Hyper = 1e-4, decrease_factor: Hyper = 0.8,
        increase_factor: Hyper | None = 1.5, max_learning_rate: Hyper = 1.0, atol: Hyper = 0.0,
        rtol: Hyper = 0.0, store_grad: bool = False,
        verbose: bool = False) -> backtracking_linesearch:
    r"""optax's name and signature for :class:`backtracking_linesearch`.

    .. math:: f(x + \eta d) \le (1 + \delta) f(x) + c_1\, \eta\, \langle \nabla f(x), d\rangle
              + \epsilon

    The same arguments in optax's order (``max_backtracking_steps`` required, ``store_grad``
    off by default); ``increase_factor=math.inf`` (optax's way to start every search at
    ``max_learning_rate``) is accepted and means ``increase_factor=None``. See
    :class:`backtracking_linesearch` for the search and where it differs from optax.
    """
    if isinstance(increase_factor, (int, float)) and increase_factor == float("inf"):
        increase_factor = None
    return backtracking_linesearch(
        max_backtracking_steps=max_backtracking_steps, slope_rtol=slope_rtol,
        decrease_factor=decrease_factor, increase_factor=increase_factor,
        max_learning_rate=max_learning_rate, atol=atol, rtol=rtol, store_grad=store_grad,
        verbose=verbose)


# --------------------------------------------------------------------------------------------
# Golden section.


class golden_section_linesearch(_Linesearch):
    r"""Bracketing, then golden-section search: an (almost) exact minimisation along the ray.

    The textbook's line search (Prince, *Understanding Deep Learning*, figure 6.10). With
    :math:`\varphi(\eta) = f(x + \eta d)`:

    1. **Bracket.** Try the guess :math:`\eta_1` (the previous accepted step, 1 at first, or
       ``max_learning_rate`` if smaller). If :math:`\varphi(\eta_1) \ge \varphi(0)` the
       minimum lies in :math:`[0, \eta_1]`. Otherwise step on,
       :math:`\eta_{k+1} = \eta_k + \phi\,(\eta_k - \eta_{k-1})` with
       :math:`\phi = (1+\sqrt 5)/2`, until :math:`\varphi` rises:
       :math:`[\eta_{k-1}, \eta_{k+1}]` then holds a minimum, and :math:`\eta_k` sits at its
       golden point. Steps are capped at ``max_learning_rate``; if :math:`\varphi` still falls
       there, the bracket is :math:`[\eta_k, \eta_{max}]`.
    2. **Section.** With the bracket :math:`[a, b]` and two inner points :math:`c < e` at
       :math:`a + (b-a)/\phi^2` and :math:`a + (b-a)/\phi`, drop :math:`[a, c]` if
       :math:`\varphi(c) > \varphi(e)`, else :math:`[e, b]`; one inner point survives at the
       golden position of the new bracket, so each step costs one evaluation and shrinks the
       bracket by :math:`1/\phi \approx 0.618`.

    .. math:: b_{k+1} - a_{k+1} = (b_k - a_k)/\phi

    It stops when :math:`b - a \le` ``tol`` :math:`\cdot \eta_{best}`, when the two inner
    values are equal (the rounding of :math:`\varphi` hides the minimum), or after
    ``max_linesearch_steps`` evaluations, and accepts the lowest point it evaluated if that is
    below :math:`\varphi(0)` (no condition on the slope; ``info.lower``, ``info.upper`` give
    the final bracket). For a function that is unimodal along the ray the bracket holds its
    minimiser. ``update`` needs ``value=``, ``grad=`` and ``value_fn=``.

    Args:
      max_linesearch_steps: the budget of evaluations, >= 1.
      tol: relative width of the final bracket, in (0, 1).
      max_learning_rate: the largest step tried, > 0, or ``None`` for no limit.

    References:
      Kiefer, *Sequential minimax search for a maximum*, Proc. AMS 1953. Press, Teukolsky,
      Vetterling, Flannery, *Numerical Recipes*, 3rd ed. 2007 (section 10.2, bracketing and
      golden-section search). Prince, *Understanding Deep Learning*, 2023 (figure 6.10).
    """

    max_linesearch_steps: int = static(default=40)
    tol: Hyper = hyper(default=1e-4, interval="(0, 1)")
    max_learning_rate: Hyper | None = hyper(default=None, interval="(0, inf)")

    def check(self):
        steps = self.max_linesearch_steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise self.error(f"must be a whole number >= 1, got {steps!r}",
                             "max_linesearch_steps")

    def _initial_info(self, work):
        zero = jnp.zeros([], work)
        return GoldenSectionInfo(jnp.zeros([], jnp.int32), jnp.full([], jnp.inf, work), zero,
                                 jnp.zeros([], work))

    def _search(self, updates, state, ray, step):
        work = ray.work
        tol = tree.scalar(step.value(self.tol), work)
        cap = (jnp.full([], jnp.inf, work) if self.max_learning_rate is None
               else tree.scalar(step.value(self.max_learning_rate), work))
        inv_phi2 = tree.scalar(1.0 / _GOLDEN**2, work)   # 0.382
        phi = tree.scalar(_GOLDEN, work)
        zero, inf = jnp.zeros([], work), jnp.full([], jnp.inf, work)
        guess = jnp.minimum(state.learning_rate, cap)
        guess = jnp.where(guess > 0, guess, jnp.minimum(jnp.ones([], work), cap))

        # carry: evaluations, phase (0 bracketing, 1 sectioning, 2 done), the next point,
        # bracketing: previous and current points; sectioning: bracket [a, b] and the inner
        # point kept (its value); the best point so far.
        class C(NamedTuple):
            i: jax.Array
            phase: jax.Array
            nxt: jax.Array
            prev: jax.Array
            cur: jax.Array
            f_cur: jax.Array
            a: jax.Array
            b: jax.Array
            inner: jax.Array
            f_inner: jax.Array
            inner_known: jax.Array
            best: jax.Array
            f_best: jax.Array
            g_best: Any

        def cond(c):
            return (c.phase != _DONE) & (c.i < self.max_linesearch_steps)

        def body(c):
            t = c.nxt
            f_t, grad_fn = ray.value_and_linearization(t)
            f_t = jnp.where(jnp.isnan(f_t), jnp.full([], jnp.inf, work), f_t)
            better = f_t < c.f_best
            g_best = jax.lax.cond(better, grad_fn, lambda: c.g_best)
            best = jnp.where(better, t, c.best)
            f_best = jnp.where(better, f_t, c.f_best)

            # Bracketing: did phi keep falling?
            falling = f_t < c.f_cur
            at_cap = falling & (t >= cap)    # still falling at the cap: the minimum over
            rose = ~falling                  # [0, cap] is in [cur, cap]; if phi rose, in [prev, t]
            first = c.cur == 0               # only phi(0) is below t so far
            brk_next = jnp.minimum(t + phi * (t - c.cur), cap)
            # [prev, t] has cur at its golden point (cur - prev = (t - prev)/phi^2), unless
            # nothing fell yet or the cap cut the growth: then the first inner point is new
            known = rose & ~first
            lo = jnp.where(rose, c.prev, c.cur)
            first_inner = jnp.where(known, c.cur, lo + inv_phi2 * (t - lo))
            mirror = lo + t - first_inner
            found = rose | at_cap
            brk_state = dict(
                phase=jnp.where(found, _SECTION, _BRACKET),
                nxt=jnp.where(found, jnp.where(known, mirror, first_inner), brk_next),
                prev=jnp.where(falling, c.cur, c.prev), cur=jnp.where(falling, t, c.cur),
                f_cur=jnp.where(falling, f_t, c.f_cur),
                a=jnp.where(found, lo, c.a), b=jnp.where(found, t, c.b),
                inner=jnp.where(found, first_inner, c.inner),
                f_inner=jnp.where(found, c.f_cur, c.f_inner),
                inner_known=known)

            # Sectioning: t is the new inner point (or the first one, if none was known).
            lo_pt, hi_pt = jnp.minimum(t, c.inner), jnp.maximum(t, c.inner)
            f_lo_pt = jnp.where(t < c.inner, f_t, c.f_inner)
            f_hi_pt = jnp.where(t < c.inner, c.f_inner, f_t)
            drop_left = f_lo_pt > f_hi_pt                    # the textbook's L[b] > L[c]
            new_a = jnp.where(drop_left, lo_pt, c.a)
            new_b = jnp.where(drop_left, c.b, hi_pt)
            keep = jnp.where(drop_left, hi_pt, lo_pt)
            f_keep = jnp.where(drop_left, f_hi_pt, f_lo_pt)
            sec_a = jnp.where(c.inner_known, new_a, c.a)
            sec_b = jnp.where(c.inner_known, new_b, c.b)
            sec_inner = jnp.where(c.inner_known, keep, t)
            sec_f_inner = jnp.where(c.inner_known, f_keep, f_t)
            narrow = (sec_b - sec_a) <= tol * jnp.maximum(best, sec_inner)
            flat = c.inner_known & (f_lo_pt == f_hi_pt)    # below the resolution of phi
            sec_state = dict(
                phase=jnp.where(narrow | flat, _DONE, _SECTION), nxt=sec_a + sec_b - sec_inner,
                prev=c.prev, cur=c.cur, f_cur=c.f_cur, a=sec_a, b=sec_b, inner=sec_inner,
                f_inner=sec_f_inner, inner_known=jnp.ones([], bool))

            in_brk = c.phase == _BRACKET
            merged = {k: jnp.where(in_brk, brk_state[k], sec_state[k]) for k in brk_state}
            return C(i=c.i + 1, best=best, f_best=f_best, g_best=g_best, **merged)

        descent = ray.slope < 0
        init = C(i=jnp.zeros([], jnp.int32), phase=jnp.where(descent, _BRACKET, _DONE), nxt=guess,
                 prev=zero, cur=zero, f_cur=ray.value, a=zero, b=guess, inner=zero,
                 f_inner=ray.value, inner_known=jnp.zeros([], bool), best=zero,
                 f_best=ray.value, g_best=ray.grad)
        c = jax.lax.while_loop(cond, body, init)
        moved = c.best > 0
        # the final bracket; still unknown above if the budget ran out while bracketing
        lower = jnp.where(c.phase == _BRACKET, c.prev, c.a)
        upper = jnp.where(c.phase == _BRACKET, inf, c.b)
        info = GoldenSectionInfo(c.i, jnp.where(moved, zero, jnp.full([], jnp.inf, work)),
                                 lower, upper)
        next_guess = jnp.where(moved, c.best, state.learning_rate)
        return self._finish(updates, state, ray, c.best, c.f_best, c.g_best, info, next_guess)


# --------------------------------------------------------------------------------------------
# Zoom (strong Wolfe).


def _cubic_minimizer(a, fa, da, b, fb, db):
    """The minimiser of the cubic matching values and slopes at ``a`` and ``b`` (Nocedal &
    Wright eq. 3.59); NaN where that cubic has none."""
    d1 = da + db - 3 * (fa - fb) / (a - b)
    radicand = d1 * d1 - da * db
    d2 = jnp.sign(b - a) * jnp.sqrt(radicand)
    return b - (b - a) * (db + d2 - d1) / (db - da + 2 * d2)


def _quadratic_minimizer(a, fa, da, b, fb):
    """The minimiser of the parabola matching value and slope at ``a`` and the value at
    ``b``; NaN or out of range where it has none."""
    delta = b - a
    curvature = fb - fa - da * delta
    return a - da * delta * delta / (2 * curvature)


class zoom_linesearch(_Linesearch):
    r"""Line search for the strong Wolfe conditions (Nocedal & Wright, algorithms 3.5 and 3.6).

    Finds a step :math:`\eta` with

    .. math::
        f(x + \eta d) \le f(x) + c_1 \eta \langle \nabla f(x), d\rangle, \qquad
        |\langle \nabla f(x + \eta d), d\rangle| \le c_2\, |\langle \nabla f(x), d\rangle|

    (sufficient decrease and curvature, :math:`0 < c_1 < c_2 < 1`), which quasi-Newton methods
    need to keep their curvature pairs positive (:math:`s^\top y > 0`). Every trial point costs
    one value-and-gradient evaluation.

    *Bracketing* (algorithm 3.5): from the initial guess, the step is multiplied by
    ``increase_factor`` while it satisfies sufficient decrease, decreases the value and the
    slope is still negative; the first trial that breaks one of these bounds an interval
    holding a Wolfe point. *Zoom* (algorithm 3.6): the next trial is the minimiser of the cubic
    matching values and slopes at both ends of the interval (eq. 3.59); if it has none in the
    interval, the minimiser of the parabola through the lower end's value and slope and the
    upper end's value; else the midpoint. Safeguards: the trial is kept at least 1% of the
    interval's length away from either end, and is the midpoint whenever the previous trial
    shrank the interval by less than a third (so the interval shrinks geometrically). The lower
    end is always the best point found that satisfies sufficient decrease.

    The search stops when a trial satisfies both conditions; when the interval has shrunk
    below ``stepsize_precision`` (relative to its ends) or ``max_linesearch_steps`` points have
    been tried, it accepts the lower end (sufficient decrease only; ``info.curvature_error``
    says by how much the curvature condition is missed), or takes no step if the lower end is
    still 0. A direction that is not a descent direction (slope :math:`\ge 0`) gets no step and
    no evaluation. ``update`` needs ``value=``, ``grad=`` and ``value_fn=``.

    ``approx_dec_rtol`` :math:`= \epsilon_k` switches on Hager and Zhang's approximate Wolfe
    condition as an alternative to sufficient decrease,
    :math:`\langle\nabla f(x+\eta d), d\rangle \le (2 c_1 - 1)\langle\nabla f(x), d\rangle` for
    points with :math:`f(x + \eta d) \le f(x) + \epsilon_k |f(x)|`: it still works where the
    decrease is below the rounding error of :math:`f` (float32 near a minimum), at the price of
    accepting points that do not satisfy sufficient decrease exactly.

    Conventions. optax's ``scale_by_zoom_linesearch`` implements the same algorithms but
    interpolates differently (a cubic through three values and one slope), grows the step by 2
    while bracketing (4 here: badly scaled problems reach a far step in fewer evaluations) and
    enables the approximate condition by default; :func:`scale_by_zoom_linesearch` gives
    optax's signature and defaults. ``initial_guess_strategy="one"`` (default here; Newton
    and quasi-Newton directions have the natural step 1) or ``"keep"`` (the previous accepted
    step; better after gradient directions).

    Args:
      max_linesearch_steps: budget of evaluations per search, >= 1.
      max_learning_rate: the largest step tried, > 0, or ``None`` for no limit.
      tol: tolerance :math:`\epsilon` >= 0 on both conditions.
      increase_factor: growth of the step while bracketing, > 1.
      slope_rtol: :math:`c_1` in (0, 1).
      curv_rtol: :math:`c_2` in (0, 1), larger than ``slope_rtol``; ``None`` drops the
        curvature condition (a backtracking search with interpolation).
      approx_dec_rtol: :math:`\epsilon_k` >= 0, or ``None`` (default) for the exact
        conditions only.
      stepsize_precision: relative width of the interval below which zooming stops, >= 0.
      initial_guess_strategy: ``"one"`` or ``"keep"``.
      verbose: print a line (``jax.debug.print``) whenever a search takes no step or misses
        the curvature condition.

    References:
      Nocedal & Wright, *Numerical Optimization*, 2nd ed. 2006 (algorithms 3.5, 3.6; eq. 3.59).
      Hager & Zhang, *A new conjugate gradient method with guaranteed descent and an efficient
      line search*, SIAM J. Optim. 2005 (the approximate Wolfe conditions).
    """

    max_linesearch_steps: int = static(default=30)
    max_learning_rate: Hyper | None = hyper(default=None, interval="(0, inf)")
    tol: Hyper = hyper(default=0.0, interval="[0, inf)")
    increase_factor: Hyper = hyper(default=4.0, interval="(1, inf)")
    slope_rtol: Hyper = hyper(default=1e-4, interval="(0, 1)")
    curv_rtol: Hyper | None = hyper(default=0.9, interval="(0, 1)", optional=True)
    approx_dec_rtol: Hyper | None = hyper(default=None, interval="[0, inf)")
    stepsize_precision: Hyper = hyper(default=1e-5, interval="[0, inf)")
    initial_guess_strategy: str = static(default="one")
    verbose: bool = static(default=False)

    def check(self):
        steps = self.max_linesearch_steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise self.error(f"must be a whole number >= 1, got {steps!r}",
                             "max_linesearch_steps")
        if self.initial_guess_strategy not in ("one", "keep"):
            raise self.error(f"must be 'one' or 'keep', got {self.initial_guess_strategy!r}",
                             "initial_guess_strategy")
        c1, c2 = self.slope_rtol, self.curv_rtol
        if isinstance(c1, (int, float)) and isinstance(c2, (int, float)) and c2 <= c1:
            raise self.error(f"must be larger than slope_rtol (0 < c1 < c2 < 1), got "
                             f"curv_rtol={c2} and slope_rtol={c1}", "curv_rtol")

    def _initial_info(self, work):
        inf = jnp.full([], jnp.inf, work)
        return ZoomInfo(jnp.zeros([], jnp.int32), inf, jnp.full([], jnp.inf, work))

    def _search(self, updates, state, ray, step):
        work = ray.work
        s = lambda h: tree.scalar(step.value(h), work)  # noqa: E731
        c1, tol, grow, precision = (s(h) for h in (self.slope_rtol, self.tol,
                                                   self.increase_factor,
                                                   self.stepsize_precision))
        c2 = None if self.curv_rtol is None else s(self.curv_rtol)
        cap = (jnp.full([], jnp.inf, work) if self.max_learning_rate is None
               else s(self.max_learning_rate))
        zero, inf = jnp.zeros([], work), jnp.full([], jnp.inf, work)
        f0, d0 = ray.value, ray.slope
        if self.initial_guess_strategy == "one":
            guess = jnp.ones([], work)
        else:
            guess = jnp.where(state.learning_rate > 0, state.learning_rate, jnp.ones([], work))
        guess = jnp.minimum(guess, cap)

        def decrease_error(t, f_t, d_t):
            err = f_t - f0 - c1 * t * d0
            if self.approx_dec_rtol is not None:
                near = f_t - f0 - s(self.approx_dec_rtol) * jnp.abs(f0)
                approx = jnp.maximum(d_t - (2 * c1 - 1) * d0, near)
                err = jnp.minimum(err, approx)
            err = jnp.maximum(err - tol, zero)
            return jnp.where(jnp.isnan(err), inf, err)

        def curvature_error(d_t):
            if c2 is None:
                return zero
            err = jnp.maximum(jnp.abs(d_t) - c2 * jnp.abs(d0) - tol, zero)
            return jnp.where(jnp.isnan(err), inf, err)

        class C(NamedTuple):
            i: jax.Array
            done: jax.Array
            bracketed: jax.Array
            t: jax.Array
            lo: jax.Array
            f_lo: jax.Array
            d_lo: jax.Array
            g_lo: Any
            hi: jax.Array
            f_hi: jax.Array
            d_hi: jax.Array
            width: jax.Array

        def cond(c):
            return ~c.done & (c.i < self.max_linesearch_steps)

        def body(c):
            t = c.t
            f_t, g_t, d_t = ray.value_and_grad(t)
            finite = jnp.isfinite(f_t) & jnp.isfinite(d_t)
            sufficient = (decrease_error(t, f_t, d_t) <= 0) & finite
            curvature = curvature_error(d_t) <= 0
            # the trial bounds the interval from above (algorithm 3.5 line 5 / 3.6 line 5)
            to_hi = ~sufficient | (f_t >= c.f_lo)
            wolfe = ~to_hi & curvature
            # otherwise it becomes the lower end; the old lower end becomes the upper end when
            # the slope says the minimum lies between them (3.5 line 9 / 3.6 line 10)
            flip = ~to_hi & ~wolfe & jnp.where(c.bracketed, d_t * (c.hi - c.lo) >= 0, d_t >= 0)
            bracketed = c.bracketed | to_hi | flip
            new_lo = ~to_hi
            lo = jnp.where(new_lo, t, c.lo)
            f_lo = jnp.where(new_lo, f_t, c.f_lo)
            d_lo = jnp.where(new_lo, d_t, c.d_lo)
            g_lo = _where(new_lo, g_t, c.g_lo)
            hi = jnp.where(to_hi, t, jnp.where(flip, c.lo, c.hi))
            f_hi = jnp.where(to_hi, f_t, jnp.where(flip, c.f_lo, c.f_hi))
            d_hi = jnp.where(to_hi, d_t, jnp.where(flip, c.d_lo, c.d_hi))
            f_hi = jnp.where(jnp.isnan(f_hi), inf, f_hi)

            # next trial: extrapolate while unbracketed, else interpolate inside [lo, hi]
            at_cap = ~bracketed & (t >= cap)
            extrapolated = jnp.minimum(grow * t, cap)
            width = jnp.abs(hi - lo)
            left, right = jnp.minimum(lo, hi), jnp.maximum(lo, hi)
            cubic = _cubic_minimizer(lo, f_lo, d_lo, hi, f_hi, d_hi)
            quad = _quadratic_minimizer(lo, f_lo, d_lo, hi, f_hi)
            inside = lambda x, m: (x > left + m * width) & (x < right - m * width)  # noqa: E731
            use_cubic = inside(cubic, 0.0) & jnp.isfinite(f_hi)
            use_quad = ~use_cubic & inside(quad, 0.0) & jnp.isfinite(f_hi)
            interpolated = jnp.where(use_cubic, cubic, jnp.where(use_quad, quad, (lo + hi) / 2))
            # safeguards: at least 1% of the interval away from either end, and the midpoint
            # when the last trial shrank the interval by less than a third
            interpolated = jnp.clip(interpolated, left + 0.01 * width, right - 0.01 * width)
            slow = c.bracketed & (width > 0.66 * c.width)
            interpolated = jnp.where(slow, (lo + hi) / 2, interpolated)
            nxt = jnp.where(bracketed, interpolated, extrapolated)
            tiny = bracketed & (width <= precision * right) & (lo > 0)
            done = wolfe | at_cap | tiny
            return C(c.i + 1, done, bracketed, nxt, lo, f_lo, d_lo, g_lo, hi, f_hi, d_hi,
                     jnp.where(bracketed, width, inf))

        descent = d0 < 0
        init = C(jnp.zeros([], jnp.int32), ~descent, jnp.zeros([], bool), guess, zero, f0, d0,
                 ray.grad, inf, inf, inf, inf)
        c = jax.lax.while_loop(cond, body, init)
        moved = c.lo > 0
        dec = jnp.where(moved, decrease_error(c.lo, c.f_lo, c.d_lo), inf)
        info = ZoomInfo(c.i, dec, jnp.where(moved, curvature_error(c.d_lo), inf))
        if self.verbose:
            _report(~moved, "zoom_linesearch: no step in {n} evaluations satisfies sufficient "
                    "decrease (slope along the direction {slope}); no step taken",
                    n=c.i, slope=d0)
            _report(moved & (info.curvature_error > 0), "zoom_linesearch: step {eta} "
                    "satisfies sufficient decrease but misses the curvature condition by {err}",
                    eta=c.lo, err=info.curvature_error)
        next_guess = jnp.where(moved, c.lo, state.learning_rate)
        return self._finish(updates, state, ray, c.lo, c.f_lo, c.g_lo, info, next_guess)


@api("scale_by_zoom_linesearch")
def scale_by_zoom_linesearch(
        max_linesearch_steps: int, max_learning_rate: Hyper | None = None, tol: Hyper = 0.0,
        increase_factor: Hyper = 2.0, slope_rtol: Hyper = 1e-4, curv_rtol: Hyper | None = 0.9,
        approx_dec_rtol: Hyper | None = 1e-6, stepsize_precision: Hyper = 1e-5,
        initial_guess_strategy: str = "keep", verbose: bool = False) -> zoom_linesearch:
    r"""optax's name and signature for :class:`zoom_linesearch` (strong Wolfe conditions).

    .. math::
        f(x + \eta d) \le f(x) + c_1 \eta \langle \nabla f(x), d\rangle, \qquad
        |\langle \nabla f(x + \eta d), d\rangle| \le c_2\, |\langle \nabla f(x), d\rangle|

    optax's arguments, order and defaults: ``max_linesearch_steps`` required, Hager-Zhang's
    approximate condition on (``approx_dec_rtol=1e-6``) and ``initial_guess_strategy="keep"``.
    ``curv_rtol=math.inf`` (optax's way to drop the curvature condition) means
    ``curv_rtol=None``. The interpolation differs from optax's (see :class:`zoom_linesearch`),
    so the two accept different points when the first trial is rejected.
    """
    if isinstance(curv_rtol, (int, float)) and curv_rtol == float("inf"):
        curv_rtol = None
    return zoom_linesearch(
        max_linesearch_steps=max_linesearch_steps, max_learning_rate=max_learning_rate, tol=tol,
        increase_factor=increase_factor, slope_rtol=slope_rtol, curv_rtol=curv_rtol,
        approx_dec_rtol=approx_dec_rtol, stepsize_precision=stepsize_precision,
        initial_guess_strategy=initial_guess_strategy, verbose=verbose)
