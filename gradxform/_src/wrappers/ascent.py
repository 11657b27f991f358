"""Gradient ascent: ``maximize``."""

from __future__ import annotations

from typing import Any

import jax

from gradxform._src import docs
from gradxform._src.base import GradientTransformation, as_transformation
from gradxform._src.module import child

__all__ = ["maximize"]


@docs.args
class maximize(GradientTransformation):
    r"""Maximise instead of minimise: ``inner`` sees the negated gradients.

    .. math:: u \leftarrow \mathrm{inner}(-g)

    Conventions. As torch's ``maximize=True``: only the gradient is negated, so weight decay
    inside ``inner`` still shrinks the weights. Negating the final updates instead
    (``chain(inner, scale(-1))``) would also turn the decay into growth.

    Args:
      <<inner>>

    Example::

        opt = gx.maximize(gx.adam(1e-3))   # ascend the reward
    """

    inner: Any = child()

    def __post_init__(self):
        object.__setattr__(self, "inner", as_transformation(self.inner))
        super().__post_init__()

    def init_state(self, params):
        return self.inner.init_state(params)

    def apply(self, updates, state, params, step):
        return self.inner.apply(jax.tree.map(lambda g: -g, updates), state, params, step)

    def links(self, state, step):
        return iter([(self.inner.name, self.inner, state, step)])
