r"""Signs of the updates: ``scale_by_sign`` (signSGD, Signum, and the last step of Lion)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradxform._src.base import GradientTransformation

__all__ = ["scale_by_sign", "reject_complex"]


def reject_complex(transform: GradientTransformation, tree_: Any, what: str) -> None:
    """Raise a TypeError naming the public call if a leaf of ``tree_`` is complex.

    The sign of a complex number has no single meaning for these methods (``z / |z|`` keeps the
    phase; treating ``C`` as ``R^2`` gives ``sign(Re z) + i sign(Im z)``), so they refuse rather
    than pick one silently.
    """
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree_)[0]:
        dtype = getattr(leaf, "dtype", None)
        if dtype is not None and jnp.issubdtype(dtype, jnp.complexfloating):
            raise transform.error(
                f"does not support complex {what} (got {jnp.dtype(dtype).name} at "
                f"{jax.tree_util.keystr(path) or 'the root'}): the sign of a complex number is "
                f"ambiguous ({type(transform).__name__}). Optimise the real and imaginary parts "
                "as separate real leaves instead.", exc=TypeError)


class scale_by_sign(GradientTransformation):
    r"""Replace every coordinate of the updates by its sign.

    .. math:: u \leftarrow \operatorname{sign}(u), \qquad \operatorname{sign}(0) = 0

    With a learning rate this is signSGD (Bernstein et al. 2018); after a moving average of the
    gradients it is Signum. Every coordinate moves by exactly the learning rate (or not at all
    where the update is exactly zero), whatever the gradient's magnitude.

    Conventions. ``sign(0) = 0`` as in optax and torch (the paper leaves the tie open). Complex
    updates are rejected with an error (see :func:`reject_complex`).

    References:
      Bernstein, Wang, Azizzadenesheli, Anandkumar, *signSGD: Compressed Optimisation for
      Non-Convex Problems*, ICML 2018 (Algorithm 1).
    """
    flat_support = "elementwise"

    def init_state(self, params):
        reject_complex(self, params, "params")
        return ()

    def apply(self, updates, state, params, step):
        reject_complex(self, updates, "updates")
        return jax.tree.map(jnp.sign, updates), state
