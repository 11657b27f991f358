"""DP-SGD: differentially private SGD on per-example gradients; the mechanism lives in
``transforms/dp.py``."""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.base import GradientTransformation
from gradxform._src.combine import chain
from gradxform._src.module import api, field_of
from gradxform._src.transforms.dp import differentially_private_aggregate
from gradxform._src.transforms.momentum import trace
from gradxform._src.transforms.scaling import scale_by_learning_rate
from gradxform._src.types import Hyper

__all__ = ["dpsgd"]


@docs.args
@api("dpsgd", rename={field_of(trace, "decay"): "momentum"})
def dpsgd(learning_rate: Hyper, l2_norm_clip: Hyper, noise_multiplier: Hyper,
          seed: Any = None, momentum: Hyper | None = None, nesterov: bool = False) -> chain:
    r"""DP-SGD (Abadi et al. 2016): SGD on clipped, noised, averaged per-example gradients.

    ``chain(differentially_private_aggregate(l2_norm_clip, noise_multiplier),
    trace(momentum, nesterov), scale_by_learning_rate(lr))``:

    .. math:: \theta_{t+1} = \theta_t - \eta\,\frac{1}{B}\Big(\sum_{i=1}^B
              g_i \min\Big(1, \frac{C}{\lVert g_i\rVert}\Big)
              + \mathcal N(0, \sigma^2 C^2 I)\Big)

    (with momentum, the bracket goes through :class:`trace` first). The updates are
    per-example gradients and the PRNG key is passed at every step::

        grads = jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, batch)
        updates, state = opt.update(grads, state, params, key=step_key)

    Conventions. optax's ``seed`` (the fourth argument) builds a key kept in the state; here
    the value holds no seed and the key is an argument of ``update`` (see
    :class:`differentially_private_aggregate`), so ``seed`` must be left out: it keeps optax's
    place so that ``momentum`` and ``nesterov`` keep theirs.

    Args:
      <<learning_rate>>
      l2_norm_clip: :math:`C` > 0, the largest norm of one example's gradient.
      noise_multiplier: :math:`\sigma` >= 0, the noise's standard deviation over :math:`C`.
      seed: must be ``None`` (pass ``key=`` to ``update``).
      momentum: in [0, 1), or ``None`` for none.
      <<nesterov>>
    """
    if seed is not None:
        raise TypeError(
            f"dpsgd: seed must be None, got {seed!r}: gradxform optimizers hold no random "
            "state; pass a fresh key at every step instead: update(grads, state, params, "
            "key=jax.random.fold_in(jax.random.key(seed), step))")
    links: list[GradientTransformation] = [differentially_private_aggregate(
        l2_norm_clip=l2_norm_clip, noise_multiplier=noise_multiplier)]
    if momentum is not None:
        links.append(trace(decay=momentum, nesterov=nesterov))
    links.append(scale_by_learning_rate(learning_rate=learning_rate))
    return chain(*links, name="dpsgd")
