r"""Regularisation: decoupled weight decay and the coupled L2 and L1 penalties.

The two kinds differ in *where* they enter a chain. A coupled penalty is part of the objective:
its gradient is added to the gradient *before* adaptive scaling (``chain(add_l2_penalty(l),
scale_by_adam(), ...)``), so Adam rescales it like the loss gradient. Decoupled weight decay
(Loshchilov & Hutter) is added *after* adaptive scaling (``chain(scale_by_adam(),
add_decayed_weights(wd), scale_by_learning_rate(lr))``), so every weight shrinks at the same
rate. For plain SGD the two coincide: with :math:`L' = L + \tfrac{\lambda}{2}\lVert\theta\rVert^2`
one SGD step is :math:`\theta - \eta\nabla L - \eta\lambda\theta`, i.e. weight decay by
:math:`\eta\lambda`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, flat, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.module import freeze
from gradxform._src.types import Hyper, Mask

__all__ = ["add_decayed_weights", "add_l2_penalty", "add_l1_penalty"]


class _AddPenaltyGradient(GradientTransformation):
    """Shared machinery: ``u <- u + c * d(p)`` on the masked leaves, ``d`` set by subclasses.

    Subclasses declare their coefficient field and a ``mask`` static field.
    """

    if TYPE_CHECKING:  # a field of every subclass

        @property
        def mask(self) -> Mask: ...

    flat_support = "layout"  # on flat params a mask selects whole buffers

    def check_flat(self, layout):
        if self.mask is not None:
            flat.buffer_mask(self.mask, layout, self.name)

    def coefficient(self):
        raise NotImplementedError

    def direction(self, p):
        raise NotImplementedError

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        c = step.value(self.coefficient())
        keep = flat.leaf_mask(self.mask, params, self.name)
        coefficients = tree.per_dtype(lambda d: tree.scalar(c, d))

        def one(u, p, k):
            if not k:
                return u
            d = dtypes.cast(self.direction(p if isinstance(p, jax.Array) else jnp.asarray(p)),
                            u.dtype)
            return jax.lax.add(u, jax.lax.mul(coefficients(u.dtype), d))

        return jax.tree.map(one, updates, params, keep), state


@docs.args
class add_decayed_weights(_AddPenaltyGradient):
    r"""Add decoupled weight decay: :math:`u \leftarrow u + \lambda\,\theta`.

    Placed after the adaptive scaling and before the learning rate, the step becomes
    :math:`-\eta(u + \lambda\theta)`: the decay is multiplied by the learning rate (and its
    schedule), as in optax's and torch's AdamW. Loshchilov & Hutter's algorithm multiplies the
    decay by the schedule multiplier only; to get that form with a constant base rate
    :math:`\alpha`, pass ``weight_decay = lambda / alpha``.

    Args:
      <<weight_decay>>
      <<mask>>

    References:
      Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """

    weight_decay: Hyper = hyper(default=0.0, interval="[0, inf)")
    mask: Mask = static(default=None, converter=freeze)

    def coefficient(self):
        return self.weight_decay

    def direction(self, p):
        return p


@docs.args
class add_l2_penalty(_AddPenaltyGradient):
    r"""Add the gradient of the L2 penalty :math:`\tfrac{\lambda}{2}\lVert\theta\rVert_2^2`.

    .. math:: u \leftarrow u + \lambda\,\theta

    Place it *first* in a chain (it is part of the objective, coupled with adaptive scaling).
    For SGD this equals weight decay; for Adam it does not (see the module docs).

    Args:
      l2: :math:`\lambda` >= 0.
      <<mask>>
    """

    l2: Hyper = hyper(interval="[0, inf)")
    mask: Mask = static(default=None, converter=freeze)

    def coefficient(self):
        return self.l2

    def direction(self, p):
        return p


@docs.args
class add_l1_penalty(_AddPenaltyGradient):
    r"""Add a subgradient of the L1 penalty :math:`\lambda\lVert\theta\rVert_1`.

    .. math:: u \leftarrow u + \lambda\,\operatorname{sign}(\theta)

    with :math:`\operatorname{sign}(0) = 0`. Plain subgradient steps make weights oscillate
    around zero rather than reach it exactly; for exact sparsity use a proximal step.

    Args:
      l1: :math:`\lambda` >= 0.
      <<mask>>
    """

    l1: Hyper = hyper(interval="[0, inf)")
    mask: Mask = static(default=None, converter=freeze)

    def coefficient(self):
        return self.l1

    def direction(self, p):
        return jnp.sign(p)
