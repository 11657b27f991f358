r"""A diagonal Gaussian parametrised by its log scale (``multi_normal``), as used by
Monte-Carlo gradient estimators."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["MultiNormalDiagFromLogScale", "multi_normal"]


class MultiNormalDiagFromLogScale(NamedTuple):
    r"""A Gaussian with independent coordinates: mean ``loc``, standard deviation
    ``exp(log_scale)``.

    .. math:: \log p(x) = \sum_i \left(-\frac{(x_i - \mu_i)^2}{2\sigma_i^2} - \log\sigma_i
              - \tfrac12 \log 2\pi\right), \qquad \sigma = e^{s}

    summed over the parameter axes (the broadcast shape of ``loc`` and ``log_scale``). A named
    tuple, so a pytree whose leaves are ``loc`` and ``log_scale``: it can be passed through
    ``jax.jit`` and differentiated.

    Conventions. As optax's (``optax.multi_normal``).
    """

    loc: jax.Array
    log_scale: jax.Array

    @property
    def _param_shape(self) -> tuple[int, ...]:
        return jnp.broadcast_shapes(jnp.shape(self.loc), jnp.shape(self.log_scale))

    @property
    def _dtype(self) -> Any:
        with jax.numpy_dtype_promotion("standard"):
            return jnp.result_type(self.loc, self.log_scale, jnp.float32)

    def sample(self, shape: Sequence[int], key: jax.Array) -> jax.Array:
        """Draws of shape ``shape + param_shape``."""
        dtype = self._dtype
        full = tuple(shape) + self._param_shape
        noise = jax.random.normal(key, full, dtype)
        scale = jnp.broadcast_to(jnp.exp(self.log_scale.astype(dtype)), full)
        return noise * scale + jnp.broadcast_to(self.loc.astype(dtype), full)

    def log_prob(self, x: Any) -> jax.Array:
        """The log density of ``x`` (shape ``batch + param_shape``), summed over the parameter
        axes (result of shape ``batch``)."""
        dtype = self._dtype
        x = jnp.asarray(x).astype(dtype)
        s = jnp.broadcast_to(self.log_scale.astype(dtype), x.shape)
        z = (x - jnp.broadcast_to(self.loc.astype(dtype), x.shape)) * jnp.exp(-s)
        log_p = -0.5 * z * z - s - jnp.asarray(0.5 * math.log(2 * math.pi), dtype)
        axes = tuple(range(-len(self._param_shape), 0))
        return jnp.sum(log_p, axis=axes)

    @property
    def params(self) -> list[jax.Array]:
        """``[loc, log_scale]``."""
        return [self.loc, self.log_scale]


def multi_normal(loc: Any, log_scale: Any) -> MultiNormalDiagFromLogScale:
    """A :class:`MultiNormalDiagFromLogScale` with mean ``loc`` and log scale ``log_scale``."""
    return MultiNormalDiagFromLogScale(loc=jnp.asarray(loc), log_scale=jnp.asarray(log_scale))
