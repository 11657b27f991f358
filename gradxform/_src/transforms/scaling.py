"""Scaling by constants: ``scale`` and ``scale_by_learning_rate``."""

from __future__ import annotations

import jax

from gradxform._src import docs, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.types import Hyper

__all__ = ["scale", "scale_by_learning_rate"]


class scale(GradientTransformation):
    r"""Multiply the updates by a constant factor.

    .. math:: u \leftarrow s\,u

    Args:
      step_size: the factor :math:`s`, any finite number (negative flips the direction), array
        or schedule.

    Example::

        gx.chain(gx.scale_by_adam(), gx.scale(-1e-3))   # adam(1e-3)
    """

    step_size: Hyper = hyper()
    flat_support = "elementwise"

    def apply(self, updates, state, params, step):
        s = step.value(self.step_size)
        factors = tree.per_dtype(lambda d: tree.scalar(s, d))
        return jax.tree.map(lambda u: u * factors(u.dtype), updates), state


@docs.args
class scale_by_learning_rate(GradientTransformation):
    r"""Scale by the negative learning rate (gradient *descent*).

    .. math:: u \leftarrow -\eta\,u \qquad (u \leftarrow \eta\,u \text{ with } flip\_sign=False)

    Args:
      <<learning_rate>>
      flip_sign: multiply by :math:`-\eta` (default) so that the result is added to the params.
    """

    learning_rate: Hyper = hyper(interval="[0, inf)")
    flip_sign: bool = static(default=True, kw_only=True)
    flat_support = "elementwise"

    def apply(self, updates, state, params, step):
        lr = step.value(self.learning_rate)
        sign = -1 if self.flip_sign else 1
        factors = tree.per_dtype(lambda d: sign * tree.scalar(lr, d))
        return jax.tree.map(lambda u: u * factors(u.dtype), updates), state
