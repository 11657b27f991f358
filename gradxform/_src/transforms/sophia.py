r"""Sophia: clipped steps preconditioned by a cheap estimate of the Hessian's diagonal.

Sophia needs second-order information the gradients do not carry. It is computed by a
transformation of its own, ``hessian_diagonal_fn``, which receives the extra arguments of
``update``. The default, :class:`hutchinson_estimator_diag_hessian`, needs two of them: the
objective (``obj_fn=``, a function of the params alone; or ``hvp=``, a Hessian-vector product)
and a fresh PRNG key (``key=``)::

    value, grads = jax.value_and_grad(loss)(params, batch)
    updates, state = opt.update(grads, state, params,
                                obj_fn=lambda p: loss(p, batch), key=step_key)

Pass both at every step: the estimate is refreshed every ``update_interval`` steps inside
``lax.cond``, and both branches are traced.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, child, hyper, static, transformation
from gradxform._src.transforms.parameter_free import _reject_complex
from gradxform._src.types import DType, Hyper, TreeDef

__all__ = ["hutchinson_estimator_diag_hessian", "HutchinsonState", "scale_by_sophia",
           "SophiaState"]


class HutchinsonState(NamedTuple):
    """State of :class:`hutchinson_estimator_diag_hessian`: empty (the PRNG key is an argument
    of ``update``, not part of the state)."""


class hutchinson_estimator_diag_hessian(GradientTransformation):
    r"""Estimate the diagonal of the Hessian with Hutchinson's estimator (ignores the updates).

    .. math:: \hat h = z \odot (\nabla^2 f(x)\, z), \qquad z_i \in \{-1, +1\}
              \ \text{uniformly}, \qquad \mathbb E[\hat h] = \operatorname{diag} \nabla^2 f(x)

    The product :math:`\nabla^2 f(x) z` is one forward-over-reverse pass
    (``jax.jvp`` of ``jax.grad``), about the cost of two gradients. Unbiased, with high
    variance: Sophia averages it over time.

    **Arguments of** ``update``: ``key=`` (a fresh ``jax.random`` key; :math:`z` for a leaf is
    drawn with ``jax.random.rademacher`` from its entry of ``jax.random.split(key, number of
    leaves)``, in float32, then cast to the leaf's dtype), and either ``obj_fn=`` (the loss as a
    function of the params alone, ``lambda p: loss(p, batch)``) or ``hvp=`` (a function
    ``(params, z) -> H z``, for a Hessian-vector product of your own, such as a Gauss-Newton
    product or one that keeps auxiliary outputs). The params are required too.

    Conventions. optax keeps a key in the state, seeded when the transformation is built
    (``random_seed``), and splits it at every call into (next key, sample key); passing its
    sample keys as ``key=`` reproduces its estimates (the tests do). Sophia's paper draws
    :math:`z` from a Gaussian; Rademacher vectors (optax's choice) have lower variance.

    References:
      Hutchinson, *A stochastic estimator of the trace of the influence matrix for Laplacian
      smoothing splines*, 1990. Liu et al., *Sophia*, ICLR 2024 (Algorithm 2, Sophia-H).
    """

    flat_support = "leaves"  # a key per leaf, obj_fn of the tree

    def init_state(self, params):
        return HutchinsonState()

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        obj_fn, hvp = step.extra.get("obj_fn"), step.extra.get("hvp")
        if obj_fn is None and hvp is None:
            raise self.error("needs the objective: call update(updates, state, params, "
                             "obj_fn=lambda p: loss(p, batch), key=key) (or hvp=(params, v) -> "
                             "H v instead of obj_fn)", "obj_fn")
        key = step.extra.get("key")
        if key is None:
            raise self.error("needs a PRNG key: call update(updates, state, params, "
                             "obj_fn=..., key=key) with a fresh jax.random key at every step",
                             "key")
        if isinstance(key, numbers.Number) or not hasattr(key, "dtype"):
            raise self.error(f"must be a jax.random key (jax.random.key(seed)), got {key!r}",
                             "key", TypeError)
        treedef: TreeDef
        leaves, treedef = jax.tree.flatten(params)
        if not leaves:
            return params, state
        keys = jax.random.split(key, len(leaves))
        signs = treedef.unflatten([
            jax.random.rademacher(k, jnp.shape(p), jnp.float32).astype(dtypes.leaf_dtype(p))
            for k, p in zip(keys, leaves)])
        if hvp is not None:
            product = hvp(params, signs)
        else:
            product = jax.jvp(jax.grad(obj_fn), (params,), (signs,))[1]
        return jax.tree.map(lambda h, z: h * z.astype(h.dtype), product, signs), state


class SophiaState(NamedTuple):
    """State of :class:`scale_by_sophia`: the momentum, the moving average of the Hessian's
    diagonal estimates and the estimator's own state."""

    mu: Any
    nu: Any
    hessian_fn_state: Any


@docs.args
class scale_by_sophia(GradientTransformation):
    r"""Sophia's step: momentum over a moving average of the Hessian's diagonal, clipped.

    With :math:`t` the 1-based step number, :math:`\hat h` the estimator's output and
    :math:`k` = ``update_interval``:

    .. math::
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        u_t = \operatorname{clip}\Big(\frac{m_t / (1 - \beta_1^t)}
        {\max(\gamma h_{t-1},\ \epsilon)},\ \pm\rho\Big), \\
        h_t &= \beta_2 h_{t-1} + (1-\beta_2)\, \hat h_t \quad \text{if } t - 1 \equiv 0
        \pmod k, \quad h_t = h_{t-1} \text{ otherwise}

    elementwise, with :math:`\rho` = ``clip_threshold`` (``None``: no clipping). Where the
    curvature estimate is small or negative the ratio is large and clipped: the step is then
    :math:`\pm\rho` times the learning rate, a sign step. The estimate is refreshed every
    :math:`k` steps, so the effective :math:`\beta_2` per step is about
    :math:`1 - (1-\beta_2)/k`. Returns the step without the learning rate.

    **Extra arguments of** ``update`` are passed on to ``hessian_diagonal_fn``: the default
    estimator needs ``obj_fn=`` (or ``hvp=``) and ``key=`` at every step (see
    :class:`hutchinson_estimator_diag_hessian`).

    Conventions. As optax: the momentum is bias-corrected, the step at :math:`t` divides by
    the estimate *before* this step's refresh (so the first step, with :math:`h_0 = 0`, is
    :math:`\pm\rho`), and Hutchinson's vectors are Rademacher. The paper's Algorithm 3 has no
    bias correction and divides by the refreshed estimate. ``verbose`` prints the fraction of
    coordinates not clipped (the authors aim for 0.1 to 0.5; raise :math:`\gamma` if it is
    lower) every ``print_win_rate_every_n_steps`` steps. Complex params are rejected.

    Args:
      <<b1>>
      b2: :math:`\beta_2` in [0, 1), the Hessian average's decay per refresh.
      eps: :math:`\epsilon` > 0, the floor of the denominator.
      gamma: :math:`\gamma` > 0, scales the curvature.
      clip_threshold: :math:`\rho` > 0, or ``None``.
      update_interval: :math:`k` >= 1, a whole number.
      hessian_diagonal_fn: the estimator of the Hessian's diagonal, a transformation that
        returns the estimate from (updates, params, extra arguments); gradxform or optax.
        Across devices it must average its estimate itself.
      <<mu_dtype>>
      verbose: print the win rate.
      print_win_rate_every_n_steps: the printing period (>= 1 when ``verbose``).

    References:
      Liu, Li, Hall, Liang, Ma, *Sophia: A Scalable Stochastic Second-order Optimizer for
      Language Model Pre-training*, ICLR 2024 (Algorithm 3).
    """

    b1: Hyper = hyper(default=0.965, interval="[0, 1)", decays_in="mu_dtype")
    b2: Hyper = hyper(default=0.99, interval="[0, 1)")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    gamma: Hyper = hyper(default=0.01, interval="(0, inf)")
    clip_threshold: Hyper | None = hyper(default=1.0, interval="(0, inf)", optional=True)
    update_interval: Hyper = hyper(default=10, interval="[1, inf)", integer=True)
    hessian_diagonal_fn: GradientTransformation = child(
        default=hutchinson_estimator_diag_hessian(), converter=transformation)
    mu_dtype: DType = static(default=None)
    verbose: bool = static(default=False)
    print_win_rate_every_n_steps: int = static(default=0)
    uses_count = True
    flat_support = "elementwise"

    def check(self):
        n = self.print_win_rate_every_n_steps
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise self.error(f"must be a whole number >= 0, got {n!r}",
                             "print_win_rate_every_n_steps")
        if self.verbose and n == 0:
            raise self.error("must be >= 1 when verbose=True, got 0",
                             "print_win_rate_every_n_steps")

    def init_state(self, params):
        _reject_complex(self, params)
        return SophiaState(tree.zeros_like(params, self.mu_dtype), tree.zeros_like(params),
                           self.hessian_diagonal_fn.init_state(params))

    def apply(self, updates, state, params, step):
        params = self.require_params(params)
        b1, b2 = step.value(self.b1), step.value(self.b2)
        eps, gamma = step.value(self.eps), step.value(self.gamma)
        clip = step.value(self.clip_threshold)
        mu = tree.update_moment(updates, state.mu, b1, 1)
        mu_hat = tree.bias_correction(mu, b1, step.number)

        def ratio(m, h):
            work = dtypes.wider(m.dtype, h.dtype)
            floor = jnp.maximum(tree.scalar(gamma, work) * h.astype(work),
                                tree.scalar(eps, work))
            return m.astype(work) / floor

        out = jax.tree.map(ratio, mu_hat, state.nu)
        if clip is not None:
            if self.verbose:
                self._print_win_rate(out, clip, step)
            out = jax.tree.map(lambda u: jnp.clip(u, -tree.scalar(clip, u.dtype),
                                                  tree.scalar(clip, u.dtype)), out)
        out = jax.tree.map(lambda u, g: u.astype(g.dtype), out, updates)

        def refresh():
            diag, hess_state = self.hessian_diagonal_fn.apply(updates, state.hessian_fn_state,
                                                              params, step)
            return hess_state, tree.update_moment(diag, state.nu, b2, 1)

        period = jnp.asarray(step.value(self.update_interval)).astype(step.count.dtype)
        hess_state, nu = jax.lax.cond(step.count % period == 0, refresh,
                                      lambda: (state.hessian_fn_state, state.nu))
        return out, SophiaState(mu, nu, hess_state)

    def _print_win_rate(self, ratios, clip, step):
        leaves = jax.tree.leaves(ratios)
        if not leaves:
            return
        inside = sum(jnp.sum(jnp.abs(u) < tree.scalar(clip, u.dtype)) for u in leaves)
        rate = inside / sum(u.size for u in leaves)
        every = jnp.asarray(self.print_win_rate_every_n_steps, step.count.dtype)
        jax.lax.cond(step.number % every == 0,
                     lambda: jax.debug.print("Sophia optimizer win rate: {}", rate),
                     lambda: None)

    def links(self, state, step):
        return iter([("hessian_diagonal_fn", self.hessian_diagonal_fn, state.hessian_fn_state,
                      step)])
