r"""Iterative linear algebra used by preconditioners: the dominant eigenpair by power iteration
(``power_iteration``) and the inverse p-th root of a symmetric positive semi-definite matrix by
the coupled Newton iteration (``matrix_inverse_pth_root``)."""

from __future__ import annotations

import functools
import numbers
import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradxform._src import dtypes
from gradxform._src.types import PyTree

__all__ = ["power_iteration", "matrix_inverse_pth_root"]


def _vdot(a: PyTree, b: PyTree) -> jax.Array:
    products = [jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
    return functools.reduce(operator.add, products)


def _normalized(v: PyTree) -> PyTree:
    norm = jnp.sqrt(sum(jnp.sum(jnp.real(jnp.conj(x) * x)) for x in jax.tree.leaves(v)))
    return jax.tree.map(lambda x: x / norm.astype(x.dtype), v)


def power_iteration(matrix: Any, *, v0: PyTree = None, num_iters: Any = 100,
                    error_tolerance: Any = 1e-6, precision: Any = jax.lax.Precision.HIGHEST,
                    key: jax.Array | None = None) -> tuple[jax.Array, PyTree]:
    r"""The dominant eigenvalue and its eigenvector, by power iteration.

    .. math:: v_{k+1} = \frac{A v_k}{\lVert A v_k\rVert}, \qquad
              \lambda_k = \langle v_k, A v_k\rangle

    until :math:`\lVert A v_k - \lambda_k v_k\rVert < \text{tol}\,|\lambda_k|` or ``num_iters``
    products. It converges for a diagonalisable matrix whose eigenvalue of largest magnitude is
    unique, at the rate :math:`|\lambda_2/\lambda_1|`.

    Conventions. As ``optax.power_iteration``: the result is ``(eigenvalue, eigenvector)``;
    without ``v0`` the start is uniform in :math:`[-1, 1]^n` drawn with ``key`` (default
    ``jax.random.key(0)``).

    Args:
      matrix: a square array, or a function computing the product :math:`v \mapsto A v` on a
        tree (then ``v0`` is required and gives the tree's structure).
      v0: the starting vector (a tree for a function ``matrix``).
      num_iters: the largest number of iterations.
      error_tolerance: the relative residual at which to stop.
      precision: the precision of ``jnp.matmul`` for an array ``matrix``.
      key: the PRNG key for a random ``v0``.

    Returns:
      ``(eigenvalue, eigenvector)``, the eigenvector of unit l2 norm.
    """
    if callable(matrix):
        product: Callable[[PyTree], PyTree] = matrix
        if v0 is None:
            raise ValueError("power_iteration: v0 is required when matrix is a function (it "
                             "gives the structure of the vectors)")
    else:
        matrix = jnp.asarray(matrix)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"power_iteration: matrix must be square, got shape {matrix.shape}")
        product = lambda v: jnp.matmul(matrix, v, precision=precision)  # noqa: E731
        if v0 is None:
            key = jax.random.key(0) if key is None else key
            v0 = jax.random.uniform(key, matrix.shape[-1:], matrix.dtype, -1.0, 1.0)
    v0 = _normalized(v0)
    eig_dtype = jax.eval_shape(lambda v: _vdot(v, product(v)), v0).dtype

    def keep_going(carry):
        v, z, eig, i = carry
        residual = jax.tree.map(lambda a, b: a - eig.astype(b.dtype) * b, z, v)
        norm = jnp.sqrt(sum(jnp.sum(jnp.real(jnp.conj(x) * x)) for x in jax.tree.leaves(residual)))
        tol = jnp.asarray(error_tolerance, norm.dtype)
        # eig = 0 before the first estimate: the ratio is inf (or nan), never converged.
        converged = jnp.abs(norm / jnp.abs(eig).astype(norm.dtype)) < tol
        return jnp.logical_not(converged) & (i < num_iters)

    def iterate(carry):
        _, z, _, i = carry
        v = _normalized(z)
        z = product(v)
        return v, z, _vdot(v, z).astype(eig_dtype), i + 1

    start = (v0, product(v0), jnp.zeros([], eig_dtype), jnp.zeros([], jnp.int32))
    _, z, eig, _ = jax.lax.while_loop(keep_going, iterate, start)
    return eig, _normalized(z)


def _power(x: jax.Array, p: int, precision: Any) -> jax.Array:
    """``x ** p`` (matrix power) by repeated squaring, unrolled for a Python int ``p >= 1``."""
    result, base, bits = None, x, p
    while bits:
        if bits & 1:
            result = base if result is None else jnp.matmul(result, base, precision=precision)
        bits >>= 1
        if bits:
            base = jnp.matmul(base, base, precision=precision)
    if result is None:
        raise ValueError(f"_power: p must be a whole number >= 1, got {p}")
    return result


def matrix_inverse_pth_root(matrix: Any, p: int, num_iters: Any = 100,
                            ridge_epsilon: Any = 1e-6, error_tolerance: Any = 1e-6,
                            precision: Any = jax.lax.Precision.HIGHEST
                            ) -> tuple[jax.Array, jax.Array]:
    r"""The inverse p-th root :math:`(A + \epsilon I)^{-1/p}` of a symmetric positive
    semi-definite matrix, by the coupled Newton iteration (Shampoo's preconditioner).

    With :math:`A_\epsilon = A + \epsilon\lambda_{max} I` (the ridge relative to the largest
    eigenvalue, from :func:`power_iteration`) and :math:`z = (1 + p) / (2\lVert
    A_\epsilon\rVert_F)`:

    .. math::
        M_0 = z A_\epsilon, \quad H_0 = z^{1/p} I, \qquad
        T_k = \tfrac{1}{p}\left((p + 1) I - M_k\right), \quad
        M_{k+1} = T_k^{\,p} M_k, \quad H_{k+1} = H_k T_k

    :math:`M_k \to I` and :math:`H_k \to A_\epsilon^{-1/p}`. It stops when
    :math:`\max|M_k - I| \le` ``error_tolerance``, after ``num_iters`` iterations, or when the
    error grows by more than 20% in one iteration (then the previous :math:`H` is returned).
    Computed in float32 at least, returned in the matrix's dtype.

    Conventions. As ``optax.matrix_inverse_pth_root``, except that any whole ``p >= 1`` works:
    optax (0.2.8) forms :math:`T^p` only for ``p`` in 1, 2, 4, 8 and silently uses the nearest
    power of two otherwise (``p = 3`` computes :math:`T^4`).

    Args:
      matrix: a symmetric positive semi-definite ``(n, n)`` array.
      p: the root, a whole number >= 1 (a Python int: the power is unrolled).
      num_iters: the largest number of iterations.
      ridge_epsilon: :math:`\epsilon` >= 0, relative to the largest eigenvalue.
      error_tolerance: the stopping error :math:`\max|M - I|`.
      precision: the precision of the matrix products.

    Returns:
      ``(root, error)``: :math:`A_\epsilon^{-1/p}` and the final :math:`\max|M - I|`.

    References:
      Higham, *Functions of Matrices: Theory and Computation*, SIAM 2008 (section 7.3, the
      coupled Newton iteration for the inverse p-th root).
      Gupta, Koren, Singer, *Shampoo: Preconditioned Stochastic Tensor Optimization*, ICML 2018.
    """
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or p < 1 or int(p) != p:
        raise ValueError(f"matrix_inverse_pth_root: p must be a whole number >= 1 (a Python "
                         f"int), got {p!r}")
    p = int(p)
    matrix = jnp.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix_inverse_pth_root: matrix must be square, got shape "
                         f"{matrix.shape}")
    work = dtypes.wider(matrix.dtype, jnp.float32)
    a = matrix.astype(work)
    n = a.shape[0]
    eye = jnp.eye(n, dtype=work)
    max_ev, _ = power_iteration(a, num_iters=100, error_tolerance=1e-6, precision=precision)
    ridge = jnp.asarray(ridge_epsilon, work) * jnp.maximum(max_ev, jnp.asarray(1e-16, work))
    inv_p = jnp.asarray(1.0 / p, work)
    if n == 1:
        return ((a + ridge) ** -inv_p).astype(matrix.dtype), jnp.zeros([], work)
    damped = a + ridge * eye
    z = jnp.asarray(1 + p, work) / (2 * jnp.linalg.norm(damped))
    m0 = damped * z
    h0 = eye * z ** inv_p
    tol = jnp.asarray(error_tolerance, work)

    def keep_going(carry):
        i, _, _, _, error, improving = carry
        return (i < num_iters) & (error > tol) & improving

    def iterate(carry):
        i, m, h, _, error, _ = carry
        t = (1 + inv_p) * eye - inv_p * m
        new_m = jnp.matmul(_power(t, p, precision), m, precision=precision)
        new_h = jnp.matmul(h, t, precision=precision)
        new_error = jnp.max(jnp.abs(new_m - eye))
        return i + 1, new_m, new_h, h, new_error, new_error < error * jnp.asarray(1.2, work)

    start = (jnp.zeros([], jnp.int32), m0, h0, h0, jnp.max(jnp.abs(m0 - eye)),
             jnp.ones([], jnp.bool_))
    _, m, h, previous, _, improving = jax.lax.while_loop(keep_going, iterate, start)
    root = jnp.where(improving, h, previous)
    return root.astype(matrix.dtype), jnp.max(jnp.abs(m - eye))
