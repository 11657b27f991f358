r"""A learning-rate step followed by the proximal step of weight decay (``proximal_weight_decay``).

Decoupled weight decay can be applied explicitly, :math:`\theta - \eta(u + \lambda\theta)`
(:class:`add_decayed_weights` before :class:`scale_by_learning_rate`), or implicitly, as the
proximal operator of :math:`\tfrac{\lambda}{2}\lVert\theta\rVert^2` after the gradient step:
:math:`(\theta - \eta u) / (1 + \eta\lambda)`. The two agree to first order in
:math:`\eta\lambda`; the implicit form shrinks by :math:`1/(1 + \eta\lambda)`, which never
overshoots zero however large :math:`\eta\lambda` is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradxform._src import docs, flat, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.module import freeze
from gradxform._src.types import Hyper, Mask

__all__ = ["proximal_weight_decay"]


@docs.args
class proximal_weight_decay(GradientTransformation):
    r"""Scale by the negative learning rate, then apply weight decay as a proximal step.

    .. math::
        \theta_{t} = \frac{\theta_{t-1} - \eta\,u}{1 + \eta\lambda}
        \quad\text{that is}\quad
        u \leftarrow \frac{-\eta\,u - \eta\lambda\,\theta_{t-1}}{1 + \eta\lambda}

    on the leaves selected by ``mask`` (:math:`u \leftarrow -\eta u` elsewhere). It takes the
    place of :class:`scale_by_learning_rate` at the end of a chain. This is how Adan
    (Xie et al., Algorithm 1) applies its weight decay.

    Args:
      <<learning_rate>>
      weight_decay: :math:`\lambda` >= 0 (a number, array or schedule).
      <<mask>>

    References:
      Xie, Zhou, Li, Lin, Yan, *Adan: Adaptive Nesterov Momentum Algorithm for Faster
      Optimizing Deep Models*, IEEE TPAMI 2024, arXiv:2208.06677 (Algorithm 1, line 7).
    """

    learning_rate: Hyper = hyper(interval="[0, inf)")
    weight_decay: Hyper = hyper(default=0.0, interval="[0, inf)")
    mask: Mask = static(default=None, converter=freeze)
    flat_support = "layout"  # on flat params a mask selects whole buffers

    def check_flat(self, layout):
        if self.mask is not None:
            flat.buffer_mask(self.mask, layout, self.name)

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        lr, wd = step.value(self.learning_rate), step.value(self.weight_decay)
        keep = flat.leaf_mask(self.mask, params, self.name)

        def one(u, p, k):
            step_ = -tree.scalar(lr, u.dtype) * u
            if not k:
                return step_
            shrink = tree.scalar(lr, u.dtype) * tree.scalar(wd, u.dtype)
            p = jnp.asarray(p).astype(u.dtype)
            return (step_ - shrink * p) / (1 + shrink)

        return jax.tree.map(one, updates, params, keep), state
