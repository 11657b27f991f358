r"""Deterministic minimisation: ``minimize`` in one ``lax.while_loop``, and the ``Solver`` that
passes a line search its arguments.

A line search (:mod:`gradxform._src.transforms.linesearch`) needs the objective and its value
and gradient at every ``update``, and leaves the value and gradient at the point it accepted in
its state. :class:`Solver` does that bookkeeping: it evaluates the objective once at the start
and afterwards reads the value and gradient of each new point from the line search's state, so
every point is evaluated exactly once. :func:`minimize` runs a solver to a gradient tolerance
inside one compiled loop; :func:`value_and_grad_from_state` is the same reuse for a loop
written by hand (optax's name).
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradxform._src import dtypes, tree
from gradxform._src.base import (
    GradientTransformation,
    OptState,
    apply_updates,
    as_transformation,
    transformation,
)
from gradxform._src.module import Invalid, Module, child, static
from gradxform._src.optimizers.newton import newton
from gradxform._src.optimizers.quasi_newton import bfgs, gradient_descent_linesearch, lbfgs
from gradxform._src.transforms.linesearch import LinesearchState
from gradxform._src.transforms.newton import scale_by_newton
from gradxform._src.types import PyTree

__all__ = ["Solver", "SolverState", "minimize", "MinimizeResult", "value_and_grad_from_state"]


# --------------------------------------------------------------------------------------------
# Finding the line search's state.


def _linesearch_states(state: Any) -> list[LinesearchState]:
    """Every :class:`LinesearchState` inside an optimizer state, in tree order."""
    found: list[LinesearchState] = []

    def visit(x):
        if isinstance(x, LinesearchState):
            found.append(x)
        elif isinstance(x, OptState):
            visit(x.inner)
        elif isinstance(x, (tuple, list)):
            for item in x:
                visit(item)
        elif isinstance(x, Mapping):
            for item in x.values():
                visit(item)

    visit(state)
    return found


def _the_linesearch_state(state: Any, where: str) -> LinesearchState | None:
    found = _linesearch_states(state)
    if len(found) > 1:
        raise ValueError(f"{where}: the optimizer has {len(found)} line searches; the value and "
                         "gradient at the new params are those of the last one only if it is "
                         "the last link, so this cannot tell which to reuse")
    return found[0] if found else None


def value_and_grad_from_state(value_fn: Callable[..., jax.Array]) -> Callable[..., Any]:
    r"""``jax.value_and_grad(value_fn)``, except that it reuses what the line search computed.

    .. math:: (f(x_{k+1}), \nabla f(x_{k+1})) \text{ from the state, when it holds them}

    The returned function is called as ``value_and_grad(params, *args, state=opt_state,
    **kwargs)``. If the optimizer's line search stored a finite value at the point it accepted
    (the params the last update led to), that value and gradient are returned (in the params'
    dtypes) and ``value_fn`` is not called; otherwise (the first step) it is evaluated. This is
    optax's function of the same name, for gradxform states. Valid only for a deterministic
    objective (for a new batch at every step, call ``jax.value_and_grad``) and when the line
    search is the last link of the chain.

    Example::

        value_and_grad = gx.value_and_grad_from_state(f)
        value, grad = value_and_grad(params, state=opt_state)
        updates, opt_state = opt.update(grad, opt_state, params, value=value, grad=grad,
                                        value_fn=f)
    """

    def value_and_grad(params: PyTree, *args: Any, state: Any, **kwargs: Any):
        found = _the_linesearch_state(state, "value_and_grad_from_state")
        if found is None or found.grad is None:
            raise ValueError(
                "value_and_grad_from_state: the optimizer state holds no value and gradient; "
                "it needs a line search that stores them (store_grad=True) as its last link")

        def fresh():
            return jax.value_and_grad(value_fn)(params, *args, **kwargs)

        def stored():
            value = jnp.asarray(found.value)
            grad = jax.tree.map(lambda g, p: g.astype(dtypes.leaf_dtype(p)), found.grad, params)
            return value, grad

        shapes = jax.eval_shape(fresh)
        reuse = jnp.isfinite(found.value)

        def stored_like():
            value, grad = stored()
            return value.astype(shapes[0].dtype), grad

        return jax.lax.cond(reuse, stored_like, fresh)

    return value_and_grad


# --------------------------------------------------------------------------------------------
# The solver.


class SolverState(NamedTuple):
    """State of :class:`Solver`: the optimizer's state, the objective's value and gradient at
    the current params, and the number of objective evaluations so far."""

    opt_state: OptState
    value: jax.Array
    grad: Any
    num_fun_evals: jax.Array


# keyword arguments of update that mean something else to some transformation
_TAKEN_NAMES = frozenset({"value", "grad", "value_fn", "key", "updates", "state", "params",
                          "obj_fn", "grad_fn", "loss_fn", "batch", "data"})


def _objective_function(fun: Any) -> Callable[..., jax.Array]:
    """Field converter: the objective must be callable."""
    if not callable(fun):
        raise Invalid(f"must be the objective, a function of the params, got {fun!r}", TypeError)
    return fun


class Solver(Module):
    r"""A training loop's step for optimizers with a line search: it passes ``value=``,
    ``grad=`` and ``value_fn=`` for you and evaluates every point once.

    .. math:: x_{k+1} = x_k + \mathrm{tx.update}\big(\nabla f(x_k), \ldots,
              \mathrm{value}=f(x_k), \mathrm{grad}=\nabla f(x_k), \mathrm{value\_fn}=f\big)

    ``init(x0, *args)`` evaluates :math:`f` and :math:`\nabla f` at the start;
    ``step(x, state, *args)`` updates and reads the value and gradient at the new point from
    the line search's state (no new evaluation). ``*args`` are passed to the objective
    (``fun(x, *args)``, e.g. data); both methods work inside ``jit``, ``lax.scan``,
    ``lax.while_loop`` and ``vmap``. ``state.value`` and ``state.grad`` are those at the current
    params, ``state.num_fun_evals`` counts value-and-gradient evaluations (line searches
    included).

    For an optimizer without a line search (``gx.adam(1e-2)``), ``step`` evaluates the
    objective at the new point itself (one evaluation per step). For a stochastic objective
    (``args`` change from step to step), pass ``reuse=False``: every step then starts with a
    fresh evaluation on its own ``args``.

    Args:
      tx: the optimizer, usually one ending in a line search (:func:`lbfgs`, :func:`bfgs`,
        :func:`newton`, :func:`gradient_descent_linesearch`).
      fun: the objective, ``fun(x, *args) -> scalar``.
      reuse: reuse the value and gradient the line search computed at the accepted point.

    Example::

        solver = gx.Solver(gx.lbfgs(), loss)
        state = solver.init(params, batch)

        @jax.jit
        def train_step(params, state):
            return solver.step(params, state, batch)

        for _ in range(100):
            params, state = train_step(params, state)
        print(state.value, state.num_fun_evals)
    """

    tx: GradientTransformation = child(converter=transformation)
    fun: Callable[..., jax.Array] = static(converter=_objective_function)
    reuse: bool = static(default=True)

    def _objective(self, args: tuple) -> Callable[[PyTree], jax.Array]:
        fun = self.fun

        def value_fn(x):
            return fun(x, *args)

        return value_fn

    def _linesearch_args(self, args: tuple) -> dict:
        """``value_fn=`` and the objective's extra arguments, for ``update``.

        When the objective names its extra arguments (``fun(x, a, b)``) they are passed by name
        next to ``value_fn=fun``, whose identity then stays the same from step to step: a line
        search run eagerly reuses its compiled loop. Otherwise (``*args``, or a name ``update``
        gives another meaning) the objective is closed over the arguments.
        """
        if not args:
            return {"value_fn": self.fun}
        try:
            parameters = list(inspect.signature(self.fun).parameters.values())[1:]
        except (TypeError, ValueError):
            parameters = []
        named = [p.name for p in parameters[:len(args)]
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if len(named) == len(args) and not set(named) & _TAKEN_NAMES:
            return {"value_fn": self.fun, **dict(zip(named, args))}
        return {"value_fn": self._objective(args)}

    def init(self, x0: PyTree, *args: Any) -> SolverState:
        """The state at ``x0``: the optimizer's state and one evaluation of the objective."""
        value, grad = jax.value_and_grad(self._objective(args))(x0)
        return SolverState(self.tx.init(x0), value, grad, jnp.ones([], jnp.int32))

    def step(self, x: PyTree, state: SolverState, *args: Any) -> tuple[PyTree, SolverState]:
        """One update of ``x``: returns the new params and state."""
        f = self._objective(args)
        evals = state.num_fun_evals
        value, grad = state.value, state.grad
        if not self.reuse:
            value, grad = jax.value_and_grad(f)(x)
            evals = evals + 1
        updates, opt_state = self.tx.update(grad, state.opt_state, x, value=value, grad=grad,
                                            **self._linesearch_args(args))
        new_x = apply_updates(x, updates)
        found = _the_linesearch_state(opt_state, "Solver.step")
        if found is not None and found.grad is not None:
            new_value = jnp.asarray(found.value).astype(jnp.asarray(value).dtype)
            new_grad = jax.tree.map(lambda g, p: g.astype(jnp.asarray(p).dtype), found.grad,
                                    grad)
            evals = evals + found.info.num_fun_evals
        elif self.reuse:
            new_value, new_grad = jax.value_and_grad(f)(new_x)
            evals = evals + 1 + (0 if found is None else found.info.num_fun_evals)
        else:
            new_value, new_grad = value, grad
            if found is not None:
                evals = evals + found.info.num_fun_evals
        return new_x, SolverState(opt_state, new_value, new_grad, evals)


# --------------------------------------------------------------------------------------------
# minimize.

# The reasons minimize stops, by status code (MinimizeResult.STATUS).
_STATUS = {
    0: "converged: the gradient norm is at most tol",
    1: "stopped: maxiter steps were taken",
    2: "failed: the loss or its gradient became NaN or infinite (the result is the last "
       "finite point)",
    3: "failed: the line search found no point lower than the current one (the direction is "
       "not a descent direction, or the loss cannot be decreased at this precision: a tol "
       "below what the dtype can resolve)",
}
_CONVERGED, _MAXITER, _NONFINITE, _NO_PROGRESS, _RUNNING = (np.int32(k) for k in range(5))

_METHODS = {"lbfgs": lbfgs, "bfgs": bfgs, "newton": newton, "gd": gradient_descent_linesearch}


class _MinimizeFields(NamedTuple):
    """The fields of :class:`MinimizeResult` (a NamedTuple body holds fields only)."""

    x: Any
    value: jax.Array
    grad: Any
    grad_norm: jax.Array
    num_steps: jax.Array
    num_fun_evals: jax.Array
    num_hess_evals: jax.Array
    success: jax.Array
    status: jax.Array



class MinimizeResult(_MinimizeFields):
    """What :func:`minimize` returns (batched like its inputs under ``vmap``).

    Attributes:
      x: the params found (the structure and dtypes of ``x0``).
      value: the loss at ``x``.
      grad: its gradient at ``x``.
      grad_norm: the Euclidean norm of ``grad`` over all leaves.
      num_steps: the number of steps taken (int32).
      num_fun_evals: value-and-gradient evaluations, the first and those of the line searches
        included (int32).
      num_hess_evals: Hessian evaluations (``"newton"``: one per step; 0 otherwise).
      success: whether the gradient norm reached ``tol``.
      status: why it stopped, an int32 code: 0 converged, 1 maxiter, 2 NaN or infinite
        loss, 3 no further decrease possible. ``message`` gives the text, and the class
        attribute ``MinimizeResult.STATUS`` maps every code to its text (on the host, for
        codes read after ``jit`` or ``vmap``).
    """

    __slots__ = ()

    STATUS: ClassVar[dict[int, str]] = _STATUS

    @property
    def message(self) -> str | np.ndarray:
        """Why it stopped, in words (an array of strings for a batch of results)."""
        codes = np.asarray(self.status)
        if codes.ndim == 0:
            return _STATUS[int(codes)]
        return np.vectorize(lambda c: _STATUS[int(c)], otypes=[object])(codes)


def _check_tol(tol: Any) -> None:
    if isinstance(tol, jax.core.Tracer):
        return  # traced: cannot be checked here
    if isinstance(tol, bool) or not (isinstance(tol, numbers.Real) or hasattr(tol, "dtype")):
        raise TypeError(f"minimize: tol must be a positive number, got {tol!r}")
    values = np.asarray(tol, np.float64)
    if not np.all(np.isfinite(values)) or not np.all(values > 0):
        raise ValueError(f"minimize: tol must be > 0 and finite, got {tol!r}")


def _check_maxiter(maxiter: Any) -> None:
    if isinstance(maxiter, jax.core.Tracer):
        if not jnp.issubdtype(maxiter.dtype, jnp.integer):
            raise TypeError(f"minimize: maxiter must be a whole number >= 1, got a traced "
                            f"{maxiter.dtype} array")
        return  # traced: its value cannot be checked here
    integral = isinstance(maxiter, (numbers.Integral, np.integer)) or (
        hasattr(maxiter, "dtype") and jnp.issubdtype(maxiter.dtype, jnp.integer))
    if isinstance(maxiter, bool) or not integral:
        raise TypeError(f"minimize: maxiter must be a whole number >= 1, got {maxiter!r}")
    if np.any(np.asarray(maxiter) < 1):
        raise ValueError(f"minimize: maxiter must be a whole number >= 1, got {maxiter!r}")


def _method(method: Any, options: dict) -> GradientTransformation:
    if isinstance(method, str):
        if method not in _METHODS:
            raise ValueError(f"minimize: method must be one of {sorted(_METHODS)} or a "
                             f"transformation, got {method!r}")
        factory = _METHODS[method]
        allowed = list(inspect.signature(factory).parameters)
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise TypeError(f"minimize: unknown option(s) {unknown} for method {method!r}; its "
                            f"options are {allowed}")
        return factory(**options)
    if options:
        raise TypeError(f"minimize: options {sorted(options)} are given to the method's factory "
                        "and cannot be used with a method given as a transformation")
    if not (hasattr(method, "init") and hasattr(method, "update")):
        raise TypeError(f"minimize: method must be a name {sorted(_METHODS)} or a "
                        f"transformation, got {method!r}")
    return as_transformation(method)


def _check_objective(fun: Any, x0: PyTree, args: tuple) -> None:
    if not callable(fun):
        raise TypeError(f"minimize: fun must be the objective, a function of the params, got "
                        f"{fun!r}")
    leaves = jax.tree.leaves(x0)
    if not leaves:
        raise ValueError("minimize: x0 has no leaves to optimise")
    for leaf in leaves:
        dtype = dtypes.leaf_dtype(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"minimize: x0 must hold real floating-point arrays, got a leaf of "
                            f"dtype {dtype}")
    out = jax.eval_shape(lambda x: fun(x, *args), x0)
    if not (hasattr(out, "shape") and out.shape == () and jnp.issubdtype(out.dtype, jnp.floating)):
        described = (f"an array of shape {tuple(out.shape)} and dtype {out.dtype}"
                     if hasattr(out, "shape") else repr(out))
        raise ValueError(f"minimize: fun must return a scalar real loss (shape ()), got "
                         f"{described}; reduce it, e.g. with jnp.sum or jnp.mean")


def minimize(fun: Callable[..., jax.Array], x0: PyTree, method: Any = "lbfgs", *,
             args: tuple = (), tol: Any = 1e-6, maxiter: int = 1000,
             **options: Any) -> MinimizeResult:
    r"""Minimise ``fun`` from ``x0`` until the gradient norm is at most ``tol``, in one compiled
    loop.

    .. math:: \min_x f(x, \mathrm{args}) \quad\text{until}\quad
              \lVert \nabla f(x)\rVert_2 \le \mathrm{tol}

    The whole run is one ``lax.while_loop`` (a :class:`Solver` step per iteration), so
    ``minimize`` works under ``jit`` and ``vmap`` (many small problems at once: batch ``x0``
    and/or ``args``) for float32 and float64 params of any pytree structure. Every point is
    evaluated once: ``result.num_fun_evals`` counts value-and-gradient evaluations, line
    searches included.

    Methods (``options`` are passed to the factory):

    * ``"lbfgs"`` (default): :func:`lbfgs` with the strong-Wolfe :class:`zoom_linesearch`
      (options ``memory_size``, ``linesearch``, ...);
    * ``"bfgs"``: dense BFGS (:func:`bfgs`) with the same line search;
    * ``"newton"``: damped Newton (:func:`newton`): exact Hessians, shifted where not positive
      definite, and a backtracking search from the unit step;
    * ``"gd"``: gradient descent with a backtracking (Armijo) line search
      (:func:`gradient_descent_linesearch`; ``linesearch=gx.golden_section_linesearch()`` for
      the textbook's exact search);
    * or any transformation (``method=gx.lbfgs(memory_size=5)``, even ``gx.adam(1e-2)``: without
      a line search the objective is evaluated once per step).

    It stops with a status code (``result.status``, readable after ``jit``/``vmap``;
    ``result.message`` or ``MinimizeResult.STATUS`` give the text): 0 the gradient norm reached
    ``tol`` (``result.success``), 1 ``maxiter`` steps, 2 the loss or gradient became NaN or
    infinite (the result is the last finite point), 3 the line search found no lower point
    (``tol`` below what the dtype resolves, or a direction that is not a descent direction).
    It never loops beyond ``maxiter``.

    Args:
      fun: the objective ``fun(x, *args)``, returning a scalar real loss, differentiable with
        ``jax.grad``.
      x0: the starting point, a pytree of real floating-point arrays.
      method: ``"lbfgs"``, ``"bfgs"``, ``"newton"``, ``"gd"`` or a transformation.
      args: extra positional arguments of ``fun`` (data); may be traced or batched.
      tol: the gradient-norm tolerance, > 0 (checked when it is a number or a concrete array).
      maxiter: the maximum number of steps, a whole number >= 1 (a Python or array integer;
        it may be traced, so one compiled program serves several budgets).
      **options: arguments of the method's factory.

    Returns:
      A :class:`MinimizeResult`.

    Example::

        result = gx.minimize(rosenbrock, jnp.array([-1.2, 1.0]), tol=1e-8)
        result.x, result.success, result.message

        # 64 problems at once
        results = jax.vmap(lambda x0: gx.minimize(f, x0))(starts)
    """
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    _check_objective(fun, x0, args)
    _check_tol(tol)
    _check_maxiter(maxiter)
    tx = _method(method, options)
    hessians_per_step = sum(isinstance(m, scale_by_newton) for m in tx.submodules())
    solver = Solver(tx, fun)
    maxiter_ = jnp.asarray(maxiter).astype(jnp.int32)

    def grad_norm(g):
        return tree.global_norm(g)

    def finite(state):
        return jnp.isfinite(state.value) & tree.all_finite(state.grad)

    def status_of(state, steps, moved):
        norm = grad_norm(state.grad)
        tol_ = jnp.asarray(tol).astype(norm.dtype)
        return jnp.where(~finite(state), _NONFINITE,
                         jnp.where(norm <= tol_, _CONVERGED,
                                   jnp.where(~moved, _NO_PROGRESS,
                                             jnp.where(steps >= maxiter_, _MAXITER, _RUNNING))))

    def cond(carry):
        return carry[3] == _RUNNING

    def body(carry):
        x, state, steps, _ = carry
        new_x, new_state = solver.step(x, state, *args)
        steps = steps + 1
        moved = jnp.logical_not(jax.tree.reduce(
            jnp.logical_and, jax.tree.map(lambda a, b: jnp.all(a == b), new_x, x),
            jnp.ones([], bool)))
        status = status_of(new_state, steps, moved)
        # a step into NaN or infinity is not kept: the result is the last finite point
        bad = status == _NONFINITE
        keep_x = jax.tree.map(lambda a, b: jnp.where(bad, b, a), new_x, x)
        counts_kept = new_state.num_fun_evals
        keep_state = jax.tree.map(lambda a, b: jnp.where(bad, b, a), new_state, state)
        keep_state = keep_state._replace(num_fun_evals=counts_kept)
        return keep_x, keep_state, steps, status

    state0 = solver.init(x0, *args)
    steps0 = jnp.zeros([], jnp.int32)
    status0 = status_of(state0, steps0, jnp.ones([], bool))
    x, state, steps, status = jax.lax.while_loop(cond, body, (x0, state0, steps0, status0))
    # a NaN start is reported, not hidden
    return MinimizeResult(
        x=x, value=state.value, grad=state.grad, grad_norm=grad_norm(state.grad),
        num_steps=steps, num_fun_evals=state.num_fun_evals,
        num_hess_evals=steps * jnp.int32(hessians_per_step), success=status == _CONVERGED,
        status=status)
