r"""Methods with a line search: gradient descent, L-BFGS and BFGS.

Each is ``chain(direction, scale, line search)``; ``update`` takes the line search's arguments
``value=``, ``grad=`` and ``value_fn=`` (:class:`gradxform.Solver` and
:func:`gradxform.minimize` pass them for you).
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.base import GradientTransformation, identity
from gradxform._src.combine import chain
from gradxform._src.module import api
from gradxform._src.transforms.bfgs import scale_by_bfgs
from gradxform._src.transforms.lbfgs import scale_by_lbfgs
from gradxform._src.transforms.linesearch import backtracking_linesearch, zoom_linesearch
from gradxform._src.transforms.scaling import scale, scale_by_learning_rate
from gradxform._src.types import Hyper

__all__ = ["lbfgs", "bfgs", "gradient_descent_linesearch"]

# the default line searches (values: immutable, shared safely as defaults)
ZOOM = zoom_linesearch()
BACKTRACKING = backtracking_linesearch()


def _base_scaling(learning_rate: Hyper | None) -> GradientTransformation:
    if learning_rate is None:
        return scale(step_size=-1.0)
    return scale_by_learning_rate(learning_rate=learning_rate)


def _linesearch(linesearch: Any) -> Any:
    return identity() if linesearch is None else linesearch


@docs.args
@api("lbfgs")
def lbfgs(learning_rate: Hyper | None = None, memory_size: int = 10,
          scale_init_precond: bool = True,
          linesearch: Any = ZOOM) -> chain:
    r"""L-BFGS with a strong-Wolfe line search (Liu & Nocedal 1989).

    ``chain(scale_by_lbfgs(memory_size, scale_init_precond), scale(-1), linesearch)``:

    .. math:: x_{k+1} = x_k - \eta_k H_k \nabla f(x_k)

    with :math:`H_k` the limited-memory inverse-Hessian estimate of :class:`scale_by_lbfgs`
    and :math:`\eta_k` chosen by the line search (by default :class:`zoom_linesearch`,
    starting from the unit step). ``update`` takes ``value=``, ``grad=`` and ``value_fn=``::

        solver = gx.Solver(gx.lbfgs(), f)          # or gx.minimize(f, x0)
        state = solver.init(x)
        x, state = solver.step(x, state)

    Args:
      learning_rate: ``None`` (default): the line search alone sets the step; a number,
        array or schedule: the direction is scaled by it before the search (as optax).
      memory_size: number of (s, y) pairs kept, >= 1.
      scale_init_precond: scale the initial inverse Hessian by
        :math:`s^\top y / y^\top y` (see :class:`scale_by_lbfgs`).
      linesearch: a line search (:class:`zoom_linesearch`, :class:`backtracking_linesearch`,
        :class:`golden_section_linesearch`, an optax one) or ``None`` for none.

    Conventions. optax's ``lbfgs`` has the same arguments and chain; its default line search
    is optax's zoom search with the approximate Wolfe condition on (see
    :class:`zoom_linesearch` for the differences).
    """
    return chain(scale_by_lbfgs(memory_size=memory_size, scale_init_precond=scale_init_precond),
                 _base_scaling(learning_rate), _linesearch(linesearch), name="lbfgs")


@docs.args
@api("bfgs")
def bfgs(learning_rate: Hyper | None = None, scale_init_precond: bool = True,
         linesearch: Any = ZOOM) -> chain:
    r"""BFGS with a dense inverse-Hessian estimate and a strong-Wolfe line search.

    ``chain(scale_by_bfgs(scale_init_precond), scale(-1), linesearch)``:

    .. math:: x_{k+1} = x_k - \eta_k H_k \nabla f(x_k)

    with :math:`H_k` updated by the BFGS formula at every step (:class:`scale_by_bfgs`): an
    :math:`n \times n` matrix for :math:`n` params, for small problems (:func:`lbfgs`
    otherwise). Arguments as :func:`lbfgs`.

    Args:
      learning_rate: ``None`` (default) or a factor applied to the direction before the search.
      scale_init_precond: scale the initial estimate by :math:`s^\top y / y^\top y`.
      linesearch: a line search, or ``None``.
    """
    return chain(scale_by_bfgs(scale_init_precond=scale_init_precond),
                 _base_scaling(learning_rate), _linesearch(linesearch), name="bfgs")


@docs.args
@api("gradient_descent_linesearch")
def gradient_descent_linesearch(learning_rate: Hyper | None = None,
                                linesearch: Any = BACKTRACKING) -> chain:
    r"""Gradient descent whose step size is chosen by a line search at every step.

    ``chain(scale(-1) or scale_by_learning_rate(lr), linesearch)``:

    .. math:: x_{k+1} = x_k - \eta_k \nabla f(x_k)

    with :math:`\eta_k` from the line search: by default :class:`backtracking_linesearch`
    (Armijo's condition, starting from 1.5 times the previous step); the textbook's exact
    search is ``linesearch=gx.golden_section_linesearch()``. ``update`` takes ``value=``,
    ``grad=`` and ``value_fn=``.

    Args:
      learning_rate: ``None`` (default): the line search alone sets the step; a number, array
        or schedule: the gradient is scaled by it first (the search then looks for a multiple
        of it).
      linesearch: a line search.

    Example::

        result = gx.minimize(f, x0, method="gd")
        opt = gx.gradient_descent_linesearch(linesearch=gx.golden_section_linesearch())
    """
    return chain(_base_scaling(learning_rate), _linesearch(linesearch),
                 name="gradient_descent_linesearch")
