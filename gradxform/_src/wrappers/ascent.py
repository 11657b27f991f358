"""Gradient ascent: ``maximize``."""

from __future__ import annotations

import jax

from gradxform._src import docs
from gradxform._src.base import GradientTransformation, child, transformation

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

    inner: GradientTransformation = child(converter=transformation)
    flat_support = "elementwise"


    def init_state(self, params):
        return self.inner.init_state(params)

    def apply(self, updates, state, params, step):
        return self.inner.apply(jax.tree.map(lambda g: -g, updates), state, params, step)

    def links(self, state, step):
        return iter([(self.inner.name, self.inner, state, step)])
