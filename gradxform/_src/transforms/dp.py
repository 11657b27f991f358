r"""Differentially private aggregation of per-example gradients (the DP-SGD mechanism)."""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import dtypes, tree
from gradxform._src.base import GradientTransformation, hyper
from gradxform._src.transforms.parameter_free import _reject_complex
from gradxform._src.transforms.per_example_clip import _clip_and_sum
from gradxform._src.types import Hyper, TreeDef

__all__ = ["differentially_private_aggregate", "DifferentiallyPrivateAggregateState"]


class DifferentiallyPrivateAggregateState(NamedTuple):
    """State of :class:`differentially_private_aggregate`: empty (the PRNG key is an argument
    of ``update``, not part of the state)."""


class differentially_private_aggregate(GradientTransformation):
    r"""Clip each example's gradient, sum, add Gaussian noise, average (Abadi et al. 2016).

    With per-example gradients :math:`g_1, \dots, g_B`, clipping norm :math:`C` and noise
    multiplier :math:`\sigma`:

    .. math::
        \bar g = \frac{1}{B}\Big(\sum_{i=1}^{B} g_i \min\Big(1,
        \frac{C}{\lVert g_i\rVert}\Big) + \mathcal N(0, \sigma^2 C^2 I)\Big)

    with :math:`\lVert g_i\rVert` the norm of example :math:`i`'s whole gradient tree (the
    clipping is :func:`per_example_global_norm_clip`). The result has the params' shapes; chain
    the rest of the optimizer after it (:func:`gradxform.dpsgd` does).

    **The updates are per-example gradients**: every leaf has a leading batch axis of the same
    size, ``jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, batch)``. ``update`` checks
    them against the params with that axis removed, so this must be the first link of a
    chain (a chain checks the updates against its first link). Gradient accumulation around
    it would average noise: don't.

    **The key is an argument of** ``update``: ``tx.update(per_example_grads, state, params,
    key=key)``, a fresh ``jax.random`` key at every step (as for :class:`add_noise`: the value
    holds no seed and the state no key). The noise of leaf :math:`j` (in tree order) is
    ``jax.random.normal(k[j + 1], shape, dtype)`` with ``k = jax.random.split(key, leaves + 1)``
    in the accumulator dtype; with this layout, passing optax's state key reproduces its noise.

    Conventions. optax takes a ``key`` (or ``seed``) when the transformation is built and keeps
    it in the state; here both are absent (pass the key to ``update``). Complex params are
    rejected. Non-finite entries: an example's norm leaves them out, so its finite entries are
    clipped to norm :math:`C` as if they were 0 (each example's contribution to the finite
    entries stays within :math:`C`, the sensitivity the noise is calibrated to) and a non-finite
    entry stays non-finite in its own place; optax's norm is then inf, which zeroes the
    example's finite entries. The privacy accounting (the :math:`(\epsilon, \delta)` reached
    after some steps at a sampling rate) is not part of the optimizer.

    Args:
      l2_norm_clip: :math:`C` > 0, the largest norm of one example's gradient.
      noise_multiplier: :math:`\sigma` >= 0, the noise's standard deviation relative to
        :math:`C`.

    References:
      Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar, Zhang, *Deep Learning with Differential
      Privacy*, CCS 2016 (Algorithm 1).
    """

    l2_norm_clip: Hyper = hyper(interval="(0, inf)")
    noise_multiplier: Hyper = hyper(interval="[0, inf)")
    flat_support = "leaves"  # per-example leaves, a key per leaf

    def init_state(self, params):
        _reject_complex(self, params)
        return DifferentiallyPrivateAggregateState()

    def check_updates(self, spec, updates, where):
        leaves = jax.tree.leaves(updates)
        sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
        if None in sizes or len(sizes) > 1:
            shapes = [tuple(jnp.shape(x)) for x in leaves][:8]
            raise ValueError(
                f"{where}: the updates must be per-example gradients, with a leading batch axis "
                f"of the same size on every leaf (jax.vmap(jax.grad(loss), in_axes=(None, 0))"
                f"(params, batch)); got leaves of shapes {shapes}")
        spec.check(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), updates),
                   where, "per-example updates (without their batch axis)")

    def apply(self, updates, state, params, step):
        treedef: TreeDef
        leaves, treedef = jax.tree.flatten(updates)
        if not leaves:
            return updates, state
        key = step.extra.get("key")
        if key is None:
            raise self.error("needs a PRNG key: call update(per_example_grads, state, params, "
                             "key=key) with a fresh jax.random key at every step", "key")
        if isinstance(key, numbers.Number) or not hasattr(key, "dtype"):
            raise self.error(f"must be a jax.random key (jax.random.key(seed)), got {key!r}",
                             "key", TypeError)
        clip = step.value(self.l2_norm_clip)
        std = step.value(self.noise_multiplier)
        batch = leaves[0].shape[0]
        summed, _ = _clip_and_sum(leaves, clip)  # per_example_global_norm_clip, unchecked
        keys = jax.random.split(key, len(leaves) + 1)
        out = []
        for i, (g, total) in enumerate(zip(leaves, summed)):
            acc = dtypes.accumulator_dtype(g.dtype)
            noise = jax.random.normal(keys[i + 1], total.shape, acc)
            noisy = (total.astype(acc) + tree.scalar(clip * std, acc) * noise) / tree.scalar(
                batch, acc)
            out.append(noisy.astype(g.dtype))
        return treedef.unflatten(out), state
