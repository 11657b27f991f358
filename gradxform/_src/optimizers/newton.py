r"""Newton's method with a shifted Hessian and a line search, for small problems."""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api
from gradxform._src.optimizers.quasi_newton import _base_scaling, _linesearch
from gradxform._src.transforms.linesearch import backtracking_linesearch
from gradxform._src.transforms.newton import scale_by_newton
from gradxform._src.types import Hyper

__all__ = ["newton"]

# backtracking from the unit step every time, halving it
NEWTON_LINESEARCH = backtracking_linesearch(decrease_factor=0.5, increase_factor=None,
                                            max_learning_rate=1.0)


@docs.args
@api("newton")
def newton(learning_rate: Hyper | None = None, damping: Hyper = 0.0,
           min_curvature: Hyper = 0.0, radius: Hyper = 1.0,
           linesearch: Any = NEWTON_LINESEARCH) -> chain:
    r"""Damped Newton's method: the exact Hessian, shifted where needed, and a line search.

    ``chain(scale_by_newton(damping, min_curvature, radius), scale(-1), linesearch)``:

    .. math:: x_{k+1} = x_k - \eta_k (\nabla^2 f(x_k) + \tau_k I)^{-1} \nabla f(x_k)

    with :math:`\tau_k = 0` where the Hessian is positive definite and a shift making it so
    otherwise, with a step no longer than ``radius`` (see :class:`scale_by_newton`), and
    :math:`\eta_k` from a backtracking (Armijo) search that starts at the unit step every time
    and halves it. Every step decreases the objective: where
    the Hessian is indefinite the pure Newton step could head for a saddle point or a maximum
    (the textbook's warning), the shifted one cannot; near a minimum with a positive definite
    Hessian the unit step is accepted and convergence is quadratic.

    One Hessian (``jax.hessian``, an :math:`n \times n` matrix and its eigendecomposition) per
    step: for problems of up to a few thousand params. ``update`` takes ``value=``, ``grad=``
    and ``value_fn=``.

    Args:
      learning_rate: ``None`` (default), or a factor applied to the direction before the
        search.
      damping: a Levenberg-Marquardt shift :math:`\lambda` >= 0 always added.
      min_curvature: the smallest curvature, relative to the largest, for which the Hessian
        counts as positive definite, in [0, 1) (0: any positive curvature).
      radius: the initial length of steps where it does not, > 0 (then adapted).
      linesearch: a line search, or ``None`` for the pure (shifted) Newton step.
    """
    return chain(scale_by_newton(damping=damping, min_curvature=min_curvature, radius=radius),
                 _base_scaling(learning_rate), _linesearch(linesearch), name="newton")
