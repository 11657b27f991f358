r"""Orthogonalised updates: Muon's Newton-Schulz iteration and its shape scaling.

Muon (Jordan et al., 2024) replaces the momentum :math:`M` of a weight matrix by an approximate
orthogonal polar factor :math:`UV^\top` (:math:`M = U\Sigma V^\top`), computed with a few
steps of a quintic Newton-Schulz iteration: steepest descent under the spectral norm.
Leaves that are not matrices (or that a ``MuonDimensionNumbers`` tree does not select) are left
to another optimizer, see :func:`gradxform.muon`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradxform._src import docs, dtypes, tree
from gradxform._src.base import GradientTransformation, hyper, static
from gradxform._src.module import Invalid, Module, freeze, thaw
from gradxform._src.types import DType, Hyper, TreeDef

__all__ = [
    "MuonDimensionNumbers", "orthogonalize_via_newton_schulz", "scale_by_muon", "MuonState",
    "scale_by_shape", "NS_COEFFS", "NS_COEFFS_PRESETS",
]

#: Jordan's quintic coefficients (a, b, c): the slope at zero is maximised, so singular values
#: land in roughly [0.7, 1.2] after 5 steps rather than converging to exactly 1.
NS_COEFFS = (3.4445, -4.7750, 2.0315)

#: Named coefficient tables: ``"standard"`` (Jordan) and ``"dion"`` (one row per step, Ahn et
#: al. 2025).
NS_COEFFS_PRESETS = {
    "standard": NS_COEFFS,
    "dion": ((4.0848, -6.8946, 2.9270), (3.9505, -6.3029, 2.6377), (3.7418, -5.5913, 2.3037),
             (2.8769, -3.1427, 1.2046), (2.8366, -3.0525, 1.2012)),
}

PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")


class MuonDimensionNumbers(NamedTuple):
    """Which axes of a weight form the matrix Muon orthogonalises.

    The weight is read as a batch of matrices ``(reduction, output)`` (``x @ W = y``): the
    reduction axes are flattened into the rows, the output axes into the columns, and every
    other axis is a batch axis orthogonalised independently. The default is a plain matrix.

    Attributes:
      reduction_axis: an axis or a tuple of axes (negative counts from the end).
      output_axis: an axis or a tuple of axes, disjoint from ``reduction_axis``.
    """

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


def _is_dims(x: Any) -> bool:
    return isinstance(x, MuonDimensionNumbers)


def _axes(x: jax.Array, dims: MuonDimensionNumbers) -> tuple[tuple[int, ...], tuple[int, ...]]:
    def norm(a):
        return tuple(i % x.ndim for i in ((a,) if isinstance(a, int) else a))

    return norm(dims.reduction_axis), norm(dims.output_axis)


def _fans(x: jax.Array, dims: MuonDimensionNumbers) -> tuple[int, int]:
    red, out = _axes(x, dims)
    return math.prod(x.shape[i] for i in red), math.prod(x.shape[i] for i in out)


def _to_matrices(x: jax.Array, dims: MuonDimensionNumbers, where: str):
    """``x`` as a ``(batch, rows, cols)`` stack, and the function putting it back."""
    if x.ndim < 2:
        raise ValueError(f"{where}: Muon orthogonalises leaves of rank >= 2, got a leaf of shape "
                         f"{x.shape}; leave it to the other optimizer (muon does by default) or "
                         "give it None in the weight dimension numbers")
    red, out = _axes(x, dims)
    if set(red) & set(out):
        raise ValueError(f"{where}: reduction and output axes must be disjoint, got {red} and "
                         f"{out} for a leaf of shape {x.shape}")
    batch = tuple(i for i in range(x.ndim) if i not in red and i not in out)
    order = batch + red + out
    inverse = tuple(sorted(range(x.ndim), key=lambda i: order[i]))
    sizes = [math.prod(x.shape[i] for i in axes) for axes in (batch, red, out)]
    unflat = tuple(x.shape[i] for i in order)
    return (x.transpose(order).reshape(sizes),
            lambda y: y.reshape(unflat).transpose(inverse))


def _h(x: jax.Array) -> jax.Array:
    """Conjugate transpose of a matrix (the transpose for real ones)."""
    return x.T.conj() if jnp.iscomplexobj(x) else x.T


def _quintic(x, c):
    # f(X) = c0 X + (c1 A + c2 A^2) X with A = X X^H: each singular value s goes to
    # c0 s + c1 s^3 + c2 s^5 while the singular vectors stay.
    a = x @ _h(x)
    b = c[1] * a + c[2] * a @ a
    return c[0] * x + b @ x


def _first_step(x, c, preconditioning, eps):
    """The first iteration, with the rescaling of the AOL and Schatten-4 variants."""
    if preconditioning == "aol":
        # Almost-orthogonal-layer rescaling (Boissin et al. 2025): row i of X and row/column i
        # of A divided by sqrt(sum_j |A_ij|).
        a = x @ _h(x)
        s = jnp.expand_dims(jax.lax.rsqrt(jnp.clip(jnp.sum(jnp.abs(a), axis=-1), min=eps)), -1)
        x, a = x * s.astype(x.dtype), a * s.astype(a.dtype) * s.T.astype(a.dtype)
    elif preconditioning == "schatten":
        # Divide by the Schatten-4 norm ||X X^H||_F^{1/2} >= ||X||_2 (Grishina et al. 2025).
        a = x @ _h(x)
        s = jax.lax.rsqrt(jnp.clip(jnp.linalg.norm(a, ord="fro"), min=eps))
        x, a = x * s.astype(x.dtype), a * (s**2).astype(a.dtype)
    else:
        return _quintic(x, c)
    b = c[1] * a + c[2] * a @ a
    return c[0] * x + b @ x


def _orthogonalize_matrix(x, coeffs, ns_steps, preconditioning, eps):
    transposed = x.shape[0] > x.shape[1]
    if transposed:  # iterate on the smaller Gram matrix: f(X^T) = f(X)^T
        x = x.T
    real = dtypes.real_dtype(x.dtype)
    if preconditioning == "frobenius":
        x = x / (jnp.linalg.norm(x, ord="fro") + tree.scalar(eps, real)).astype(x.dtype)
    elif preconditioning == "spectral":
        x = x / (jnp.linalg.norm(x, ord=2) + tree.scalar(eps, real)).astype(x.dtype)
    c = coeffs.astype(x.dtype)
    rows = [c] * ns_steps if c.ndim == 1 else [c[i] for i in range(c.shape[0])]
    eps_real = tree.scalar(eps, real)
    for i, row in enumerate(rows):
        x = _first_step(x, row, preconditioning, eps_real) if i == 0 else _quintic(x, row)
    return x.T if transposed else x


def _check_coeffs(coeffs: Any, ns_steps: int, where: str) -> None:
    shape = np.shape(coeffs)
    if len(shape) not in (1, 2) or shape[-1] != 3:
        raise ValueError(f"{where}: ns_coeffs must have shape (3,) or (n, 3), got {shape}")
    if len(shape) == 2 and shape[0] > ns_steps:
        raise ValueError(f"{where}: ns_coeffs has {shape[0]} rows (one per step) but ns_steps is "
                         f"{ns_steps}; raise ns_steps to at least {shape[0]}")


def orthogonalize_via_newton_schulz(
    x: jax.Array, ns_coeffs: Any = NS_COEFFS, ns_steps: int = 5,
    preconditioning: str = "frobenius", eps: Any = 1e-8,
    dimension_numbers: MuonDimensionNumbers | None = None,
) -> jax.Array:
    r"""Approximately orthogonalise a matrix (or a batch of them) by quintic Newton-Schulz.

    .. math:: X_0 = \frac{G}{\lVert G\rVert_F + \epsilon}, \qquad
              X_{k+1} = a X_k + \left(b A_k + c A_k^2\right) X_k, \quad A_k = X_k X_k^{H}

    Each singular value :math:`s` of :math:`X_k` becomes :math:`as + bs^3 + cs^5`; with Jordan's
    coefficients :math:`(3.4445, -4.7750, 2.0315)` five steps bring every singular value into
    about [0.7, 1.2], keeping the singular vectors: :math:`X_5 \approx U V^H` for
    :math:`G = U \Sigma V^H`. Wide or tall, the iteration runs on the smaller Gram matrix.
    Complex matrices use the conjugate transpose.

    Args:
      x: a matrix, or an array of rank >= 2 with ``dimension_numbers``.
      ns_coeffs: ``(a, b, c)``, or a table of shape ``(n, 3)`` with one row per step.
      ns_steps: the number of steps (with a table: at least its number of rows; the table
        decides).
      preconditioning: the initial rescaling: ``"frobenius"`` (divide by the Frobenius norm),
        ``"spectral"`` (by the spectral norm, an SVD), ``"aol"`` (Boissin et al. 2025) or
        ``"schatten"`` (Schatten-4 norm, Grishina et al. 2025).
      eps: added to the norm, > 0.
      dimension_numbers: which axes form the matrix (see :class:`MuonDimensionNumbers`);
        default: ``x`` is a matrix.

    Returns:
      An array of ``x``'s shape and dtype.

    References:
      Jordan et al., *Muon: An optimizer for hidden layers in neural networks*, 2024
      (https://kellerjordan.github.io/posts/muon/).
    """
    where = "orthogonalize_via_newton_schulz"
    if preconditioning not in PRECONDITIONINGS:
        raise ValueError(f"{where}: preconditioning must be one of {PRECONDITIONINGS}, got "
                         f"{preconditioning!r}")
    if dimension_numbers is None:
        if x.ndim != 2:
            raise ValueError(f"{where}: x must be a matrix, or dimension_numbers must say which "
                             f"axes form one; got shape {x.shape}")
        dimension_numbers = MuonDimensionNumbers()
    if not isinstance(ns_coeffs, jax.Array):
        ns_coeffs = np.asarray(ns_coeffs, np.float64)
    _check_coeffs(ns_coeffs, ns_steps, where)
    ns_coeffs = jnp.asarray(ns_coeffs)
    matrices, back = _to_matrices(x, dimension_numbers, where)
    out = jax.vmap(lambda m: _orthogonalize_matrix(m, ns_coeffs, ns_steps, preconditioning,
                                                   eps))(matrices)
    return back(out)


# --------------------------------------------------------------------------------------------
# Which leaves Muon takes, and with which axes.


def _leaf_dims(dims: Any, updates: Any) -> list:
    """One ``MuonDimensionNumbers`` (or None) per leaf of ``updates``.

    ``dims`` is None (every leaf a plain matrix), a tree of ``MuonDimensionNumbers`` / None with
    the updates' structure or a prefix of it, or a callable returning one.
    """
    dims = thaw(dims)
    if callable(dims) and not _is_dims(dims):
        dims = dims(updates)
    treedef: TreeDef = jax.tree.structure(updates)
    if dims is None or _is_dims(dims):
        return [dims or MuonDimensionNumbers()] * treedef.num_leaves
    try:
        full = jax.tree.map(lambda d, sub: jax.tree.map(lambda _: d, sub), dims, updates,
                            is_leaf=lambda x: x is None or _is_dims(x))
        return treedef.flatten_up_to(full)
    except ValueError as e:
        raise ValueError(
            "muon: the weight dimension numbers must be a tree of MuonDimensionNumbers or None "
            "with the structure of the params (or a prefix of it), or a callable returning one."
            f"\n  dimension numbers: {jax.tree.structure(dims, is_leaf=_is_dims)}"
            f"\n  params:            {treedef}") from e


def _map_with_dims(fn, dims, updates, *rest):
    treedef: TreeDef
    leaves, treedef = jax.tree.flatten(updates)
    others = [treedef.flatten_up_to(r) for r in rest]
    out = [u if d is None else fn(u, d, *o)
           for u, d, *o in zip(leaves, _leaf_dims(dims, updates), *others)]
    return treedef.unflatten(out)


class MuonLeaves(Module):
    """The mask of the leaves Muon takes (``muon=True``) or leaves to Adam (``muon=False``).

    A value (compared by content, written by ``to_config``), so two ``muon(...)`` built alike
    are equal.
    """

    dims: Any = static()
    muon: bool = static()

    def __call__(self, params):
        dims = thaw(self.dims)
        if dims is None:
            return jax.tree.map(lambda p: (len(np.shape(p)) == 2) == self.muon, params)
        if callable(dims) and not _is_dims(dims):
            dims = dims(params)
        if _is_dims(dims):
            return jax.tree.map(lambda _: self.muon, params)
        return jax.tree.map(
            lambda d, sub: jax.tree.map(lambda _: (d is not None) == self.muon, sub),
            dims, params, is_leaf=lambda x: x is None or _is_dims(x))


def freeze_dims(dims: Any) -> Any:
    """Dimension numbers in a hashable form for a static field (callables pass through)."""
    if dims is None or callable(dims) and not _is_dims(dims):
        return dims
    return freeze(dims)


# --------------------------------------------------------------------------------------------
# The transforms.


class MuonState(NamedTuple):
    """State of :class:`scale_by_muon`: the momentum."""

    mu: Any


def _ns_coeffs_table(value: Any) -> Any:
    """Field converter: a preset name or a list of coefficients as a float64 table."""
    if isinstance(value, str):
        if value not in NS_COEFFS_PRESETS:
            raise Invalid(f"must be a coefficient table or one of {sorted(NS_COEFFS_PRESETS)}, "
                          f"got {value!r}")
        value = NS_COEFFS_PRESETS[value]
    if isinstance(value, (tuple, list)):
        value = np.asarray(value, np.float64)
    return value


@docs.args
class scale_by_muon(GradientTransformation):
    r"""Orthogonalise the (Nesterov) momentum of matrix leaves: Muon's direction.

    .. math::
        m_t = \beta m_{t-1} + (1 - \beta) g_t, \qquad
        \hat m_t = \beta \frac{m_t}{1 - \beta^{t+1}} + (1 - \beta)\frac{g_t}{1 - \beta^t}
        \ \text{(Nesterov)} \quad\text{or}\quad \hat m_t = \frac{m_t}{1 - \beta^t}, \\
        u_t = \operatorname{NS}_5(\hat m_t) \approx U V^\top \quad (\hat m_t = U\Sigma V^\top)

    with :math:`\operatorname{NS}` the iteration of :func:`orthogonalize_via_newton_schulz`.
    ``adaptive=True`` multiplies by the dual norm :math:`\langle \hat m_t, u_t\rangle`
    (Bernstein & Newhouse 2024). Every leaf it sees must be a matrix or be described by
    ``weight_dimension_numbers``; :func:`gradxform.muon` routes the other leaves to Adam.

    Conventions. As optax's ``scale_by_muon``: momentum as an exponential average with bias
    correction (the Nesterov form of NAdam). Jordan's reference uses ``m = beta m + g`` without
    correction; the Frobenius normalisation before the iteration makes the two differ only by
    the correction of the first steps and the weight of the current gradient. Complex matrices
    are orthogonalised with the conjugate transpose.

    Args:
      ns_coeffs: ``(a, b, c)``, a table of shape ``(n, 3)`` (one row per step), or a preset
        name of :data:`NS_COEFFS_PRESETS` (``"standard"``, ``"dion"``).
      ns_steps: Newton-Schulz steps (>= 1).
      beta: momentum :math:`\beta` in [0, 1).
      <<eps>>
      <<mu_dtype>>
      <<nesterov>>
      adaptive: scale by the dual norm of the momentum.
      preconditioning: ``"frobenius"``, ``"spectral"``, ``"aol"`` or ``"schatten"``.
      weight_dimension_numbers: a tree of :class:`MuonDimensionNumbers` or ``None`` (leaf
        passed through unchanged), or a prefix of one, or a callable ``updates -> tree``;
        default: every leaf is a matrix.

    References:
      Jordan et al., *Muon: An optimizer for hidden layers in neural networks*, 2024.
      Bernstein & Newhouse, *Old Optimizer, New Norm: An Anthology*, 2024.
    """

    ns_coeffs: Hyper = hyper(default=NS_COEFFS, converter=_ns_coeffs_table)
    ns_steps: int = static(default=5)
    beta: Hyper = hyper(default=0.95, interval="[0, 1)", decays_in="mu_dtype")
    eps: Hyper = hyper(default=1e-8, interval="(0, inf)")
    mu_dtype: DType = static(default=None)
    nesterov: bool = static(default=True, kw_only=True)
    adaptive: bool = static(default=False, kw_only=True)
    preconditioning: str = static(default="frobenius", kw_only=True)
    weight_dimension_numbers: Any = static(default=None, converter=freeze_dims, kw_only=True)
    uses_count = True
    flat_support = "leaves"  # orthogonalises each matrix

    def check(self):
        if isinstance(self.ns_steps, bool) or not isinstance(self.ns_steps, int) or (
                self.ns_steps < 1):
            raise self.error(f"must be a whole number >= 1, got {self.ns_steps!r}", "ns_steps")
        if self.preconditioning not in PRECONDITIONINGS:
            raise self.error(f"must be one of {PRECONDITIONINGS}, got {self.preconditioning!r}",
                             "preconditioning")
        try:
            _check_coeffs(self.ns_coeffs, self.ns_steps, "")
        except ValueError as e:
            raise self.error(str(e).removeprefix(": ns_coeffs "), "ns_coeffs") from None

    def init_state(self, params):
        return MuonState(tree.zeros_like(params, self.mu_dtype))

    def apply(self, updates, state, params, step):
        beta, eps = step.value(self.beta), step.value(self.eps)
        coeffs = jnp.asarray(step.value(self.ns_coeffs))
        mu = tree.update_moment(updates, state.mu, beta, 1)
        t = step.number
        if self.nesterov:
            mu_hat = tree.nesterov_moment(updates, mu, beta, t)
        else:
            mu_hat = tree.bias_correction(mu, beta, t)
        where = self.name

        def one(g, dims, m):
            # Orthogonalisation mixes every entry of a matrix: it sees the non-finite entries
            # of the momentum as zeros, and they come back in their own places.
            finite = jnp.isfinite(m)
            matrices, back = _to_matrices(tree.finite_part(m), dims, where)
            o = back(jax.vmap(lambda x: _orthogonalize_matrix(
                x, coeffs, self.ns_steps, self.preconditioning, eps))(matrices))
            if self.adaptive:
                o = jnp.sum(tree.finite_part(m.conj() * o)) * o
            return jnp.where(finite, o, m.astype(o.dtype)).astype(g.dtype)

        out = _map_with_dims(one, self.weight_dimension_numbers, updates, mu_hat)
        return out, MuonState(mu)


@docs.args
class scale_by_shape(GradientTransformation):
    r"""Scale each matrix update by a factor of its shape (Muon's width scaling).

    .. math:: u \leftarrow \sqrt{\max(1, d_{out}/d_{in})}\; u
              \qquad\text{or, with } \rho = \text{consistent\_rms},\qquad
              u \leftarrow \rho\sqrt{\max(d_{in}, d_{out})}\; u

    with :math:`d_{in}` (:math:`d_{out}`) the product of the reduction (output) axes. The
    first keeps the spectral norm per unit of RMS input to output transfer across widths
    (Jordan); the second gives orthogonalised updates the RMS :math:`\rho` of AdamW's
    (Liu et al. 2025 recommend :math:`\rho = 0.2`).

    Args:
      weight_dimension_numbers: as for :class:`scale_by_muon`; default: matrices.
      consistent_rms: :math:`\rho` >= 0, or ``None`` for the width scaling.

    References:
      Jordan et al., *Muon*, 2024. Liu et al., *Muon is Scalable for LLM Training*, 2025.
    """

    weight_dimension_numbers: Any = static(default=None, converter=freeze_dims)
    consistent_rms: Hyper = hyper(default=None, interval="[0, inf)")
    flat_support = "leaves"  # scales by each leaf's shape

    def apply(self, updates, state, params, step):
        rms = step.value(self.consistent_rms)

        def one(u, dims):
            fan_in, fan_out = _fans(u, dims)
            if rms is None:
                factor = tree.scalar(math.sqrt(max(1.0, fan_out / fan_in)), u.dtype)
            else:
                real = dtypes.real_dtype(u.dtype)
                factor = (tree.scalar(math.sqrt(max(fan_in, fan_out)), real)
                          * tree.scalar(rms, real)).astype(u.dtype)
            return u * factor

        return _map_with_dims(one, self.weight_dimension_numbers, updates), state
