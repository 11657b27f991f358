r"""Annealed Gaussian gradient noise: ``add_noise``, with the PRNG key passed to ``update``."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper
from gradxform._src.types import Hyper

__all__ = ["add_noise"]


@docs.args
class add_noise(GradientTransformation):
    r"""Add Gaussian noise of decaying variance to the updates.

    .. math:: u_t = g_t + \sigma_t \xi_t, \qquad \xi_t \sim \mathcal N(0, I), \qquad
              \sigma_t^2 = \frac{\eta}{t^\gamma}

    with :math:`t` the 1-based step number (the paper's :math:`(1 + t)^\gamma` with a 0-based
    :math:`t`).

    **The key is an argument of** ``update``: ``tx.update(grads, state, params, key=key)``, a
    fresh ``jax.random`` key every step (split it from your own stream, as for dropout). The
    transformation is a value and holds no seed, and its state holds no key, so the same
    (optimizer, state, gradients, key) always gives the same update, training several models in
    one ``vmap`` just means passing a batch of keys, and the randomness of a run is controlled
    in one place by the caller. A missing key is an error. The noise of a leaf is drawn with
    ``jax.random.normal(k, shape, dtype)``, ``k`` the leaf's entry of
    ``jax.random.split(key, number of leaves)`` in tree order, in the accumulator dtype (float32
    for bfloat16/float16 leaves); complex leaves get complex noise of the same total variance.

    Conventions. optax's ``add_noise`` keeps a key in its state, seeded when the transformation
    is built, and splits it every step into (next key, sample key). Passing optax's sample keys
    reproduces its noise exactly (the tests do).

    Args:
      eta: :math:`\eta` >= 0, the initial variance.
      gamma: :math:`\gamma` >= 0, the annealing exponent (the paper's 0.55).

    References:
      Neelakantan, Vilnis, Le, Sutskever, Kaiser, Kurach, Martens, *Adding Gradient Noise
      Improves Learning for Very Deep Networks*, 2015 (section 2, eq. 1).
    """

    eta: Hyper = hyper(default=0.01, interval="[0, inf)")
    gamma: Hyper = hyper(default=0.55, interval="[0, inf)")
    uses_count = True
    flat_support = "leaves"  # one key per leaf, as in the per-leaf run

    def apply(self, updates, state, params, step):
        key = step.extra.get("key")
        if key is None:
            raise self.error("needs a PRNG key: call update(updates, state, params, key=key) "
                             "with a fresh jax.random key at every step", "key", ValueError)
        if isinstance(key, numbers.Number) or not hasattr(key, "dtype"):
            raise self.error(f"must be a jax.random key (jax.random.key(seed)), got {key!r}",
                             "key", TypeError)
        leaves, treedef = jax.tree.flatten(updates)
        if not leaves:
            return updates, state
        keys = jax.random.split(key, len(leaves))
        eta, gamma = step.value(self.eta), step.value(self.gamma)
        out = []
        for i, g in enumerate(leaves):
            acc = dtypes.accumulator_dtype(g.dtype)
            real = dtypes.real_dtype(acc)
            t = step.number.astype(real)
            sigma = jnp.sqrt(tree.scalar(eta, real) / t ** tree.scalar(gamma, real))
            xi = jax.random.normal(keys[i], g.shape, acc)
            out.append((g.astype(acc) + sigma.astype(acc) * xi).astype(g.dtype))
        return jax.tree.unflatten(treedef, out), state
