r"""GaLore: run an optimizer on low-rank projections of the gradients of weight matrices.

The optimizer's state for a :math:`m \times n` matrix then has the size of an
:math:`r \times n` (or :math:`m \times r`) one, while every weight still learns: the projector
is refreshed from the gradient's singular vectors every few hundred steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradxform._src import dtypes, tree
from gradxform._src.base import GradientTransformation, child, hyper, static, transformation
from gradxform._src.module import freeze, thaw
from gradxform._src.transforms.adam import scale_by_adam
from gradxform._src.types import Hyper, TreeDef

__all__ = ["GaLoreDimensionNumbers", "scale_by_galore", "GaLoreState"]


class GaLoreDimensionNumbers(NamedTuple):
    """Which axes of a weight form the matrix GaLore projects.

    The reduction axes are flattened into the rows, the output axes into the columns; together
    they must be all the axes of the weight (``(embed, heads, head_dim)`` with
    ``reduction_axis=0, output_axis=(1, 2)`` is a ``embed x heads*head_dim`` matrix).

    Attributes:
      reduction_axis: an axis or a tuple of axes (negative counts from the end).
      output_axis: an axis or a tuple of axes, disjoint from ``reduction_axis``.
    """

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


def _is_dims(x: Any) -> bool:
    return isinstance(x, GaLoreDimensionNumbers)


def _leaf_dims(spec: Any, tree_: Any, where: str) -> list:
    """One ``GaLoreDimensionNumbers`` (or None: not projected) per leaf of ``tree_``."""
    spec = thaw(spec)
    treedef: TreeDef
    leaves, treedef = jax.tree.flatten(tree_)
    if spec is None:
        return [GaLoreDimensionNumbers() if jnp.ndim(x) == 2 else None for x in leaves]
    if _is_dims(spec):
        return [spec if jnp.ndim(x) >= 2 else None for x in leaves]
    if callable(spec):
        spec = spec(tree_)
    try:
        full = jax.tree.map(lambda d, sub: jax.tree.map(lambda _: d, sub), spec, tree_,
                            is_leaf=lambda x: x is None or _is_dims(x))
        return treedef.flatten_up_to(full)
    except ValueError as e:
        raise ValueError(
            f"{where}: weight_dimension_numbers must be a GaLoreDimensionNumbers, a tree of them "
            "(None for leaves not projected) with the structure of the params or a prefix of "
            "it, or a callable returning one."
            f"\n  dimension numbers: {jax.tree.structure(spec, is_leaf=_is_dims)}"
            f"\n  params:            {treedef}") from e


def _matrix(shape: tuple, dims: GaLoreDimensionNumbers, where: str):
    """``(to_matrix, from_matrix, (m, n))`` for a leaf of ``shape``."""
    ndim = len(shape)

    def norm(a):
        return tuple(i % ndim for i in ((a,) if isinstance(a, int) else a))

    if ndim < 2:
        raise ValueError(f"{where}: GaLore projects leaves of rank >= 2, got a leaf of shape "
                         f"{shape}; give it None in weight_dimension_numbers")
    red, out = norm(dims.reduction_axis), norm(dims.output_axis)
    if set(red) & set(out) or len(set(red) | set(out)) != ndim:
        raise ValueError(f"{where}: the reduction axes {red} and output axes {out} must be "
                         f"disjoint and cover every axis of a leaf of shape {shape}")
    order = red + out
    inverse = tuple(sorted(range(ndim), key=lambda i: order[i]))
    m, n = math.prod(shape[i] for i in red), math.prod(shape[i] for i in out)
    moved = tuple(shape[i] for i in order)
    return (lambda x: x.transpose(order).reshape(m, n),
            lambda y: y.reshape(moved).transpose(inverse), (m, n))


def _base_optimizer(value: Any) -> GradientTransformation:
    """Field converter: ``None`` is ``scale_by_adam()``; optax transformations are wrapped."""
    return scale_by_adam() if value is None else transformation(value)


def _frozen_dims(dims: Any) -> Any:
    """Field converter: dimension numbers in a hashable form (a callable passes through)."""
    if dims is None or (callable(dims) and not _is_dims(dims)):
        return dims
    return freeze(dims)


def _h(x: jax.Array) -> jax.Array:
    return x.T.conj() if jnp.iscomplexobj(x) else x.T


class GaLoreState(NamedTuple):
    """State of :class:`scale_by_galore`: the base optimizer's state (on the projected
    gradients) and the projector of each projected leaf (``None`` for the others)."""

    base_optimizer_state: Any
    projector: Any


class scale_by_galore(GradientTransformation):
    r"""GaLore: the base optimizer runs on :math:`P^\top G`, its output is projected back.

    For a projected leaf with gradient :math:`G \in \mathbb R^{m \times n}` (after reshaping by
    its dimension numbers), :math:`r' = \min(r, m, n)` and :math:`k` = ``update_proj_gap``:

    .. math::
        P_t &= U_{[:, :r']} \text{ of } G_t = U \Sigma V^\top \quad
        \text{if } t \equiv 0 \pmod k, \quad P_t = P_{t-1} \text{ otherwise}, \\
        R_t &= P_t^\top G_t, \qquad N_t = \operatorname{base}(R_t), \qquad
        u_t = \alpha\, P_t N_t \qquad (m \ge n)

    and for :math:`m < n` the right singular vectors, :math:`R_t = G_t P_t`,
    :math:`u_t = \alpha N_t P_t^\top` (project along the smaller side). Leaves that are not
    projected pass through the base optimizer unchanged. The base optimizer keeps its state
    across refreshes of :math:`P` (as the paper does). Returns the step without the learning
    rate.

    The base optimizer must not need the params (it receives ``None``: they do not have the
    projected shapes): ``scale_by_adam`` (default), ``scale_by_lion``, ``scale_by_rms``, ...;
    put weight decay after GaLore, in the full space (:func:`gradxform.galore` does).

    Conventions. As optax, except for dtypes: the SVD and the projector are in the
    accumulator dtype (float32 for bfloat16/float16 params, float64 for float64 ones; optax
    always computes the SVD in float32 and keeps the projector in the params' dtype). Complex
    matrices use the conjugate transpose. Non-finite gradient entries of a projected matrix are
    read as 0 by the SVD and the projection (a projection mixes every entry of a column or row:
    one inf would make the projector and the whole update NaN), and their own updates are NaN,
    so that the overflow shows in its place (the non-finite rule of ``docs/validation.md``).

    Args:
      rank: :math:`r` >= 1, a whole number.
      update_proj_gap: :math:`k` >= 1, steps between refreshes of the projectors.
      scale: :math:`\alpha`, multiplies the projected-back updates (the paper's 0.25 with its
        learning rates; 1 by default).
      base_optimizer: the transformation applied in the projected space (default
        ``scale_by_adam()``).
      weight_dimension_numbers: ``None`` (project the leaves of rank 2), a
        :class:`GaLoreDimensionNumbers` (every leaf of rank >= 2), a tree of them with ``None``
        for leaves not projected (or a prefix of one), or a callable ``params -> tree``.

    References:
      Zhao, Zhang, Chen, Wang, Anandkumar, Tian, *GaLore: Memory-Efficient LLM Training by
      Gradient Low-Rank Projection*, ICML 2024 (Algorithm 2).
    """

    rank: int = static(default=128)
    update_proj_gap: Hyper = hyper(default=200, interval="[1, inf)", integer=True)
    scale: Hyper = hyper(default=1.0)
    base_optimizer: GradientTransformation = child(default=None, converter=_base_optimizer)
    weight_dimension_numbers: Any = static(default=None, converter=_frozen_dims)
    uses_count = True
    flat_support = "leaves"  # projects each matrix, dimension numbers by path

    def check(self):
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise self.error(f"must be a whole number >= 1, got {self.rank!r}", "rank")

    def _layout(self, tree_: Any):
        """Per leaf: None, or ``(to_matrix, from_matrix, rank, left, (m, n))``."""
        out: list[tuple | None] = []
        for x, dims in zip(jax.tree.leaves(tree_),
                           _leaf_dims(self.weight_dimension_numbers, tree_, self.name)):
            if dims is None:
                out.append(None)
                continue
            to_m, from_m, (m, n) = _matrix(tuple(jnp.shape(x)), dims, self.name)
            out.append((to_m, from_m, min(self.rank, m, n), m >= n, (m, n)))
        return out

    def init_state(self, params):
        treedef: TreeDef
        leaves, treedef = jax.tree.flatten(params)
        projectors: list[jax.Array | None] = []
        proxies: list[Any] = []
        for p, lay in zip(leaves, self._layout(params)):
            if lay is None:
                projectors.append(None)
                proxies.append(p)
                continue
            _, _, r, left, (m, n) = lay
            acc = dtypes.accumulator_dtype(dtypes.leaf_dtype(p))
            projectors.append(jnp.zeros((m, r) if left else (n, r), acc))
            proxies.append(jax.ShapeDtypeStruct((r, n) if left else (m, r),
                                                dtypes.leaf_dtype(p)))
        return GaLoreState(self.base_optimizer.init_state(treedef.unflatten(proxies)),
                           treedef.unflatten(projectors))

    def apply(self, updates, state, params, step):
        treedef: TreeDef
        leaves, treedef = jax.tree.flatten(updates)
        layout = self._layout(updates)
        old = treedef.flatten_up_to(state.projector)
        period = jnp.asarray(step.value(self.update_proj_gap)).astype(step.count.dtype)
        refresh = step.count % period == 0
        low: list[Any] = []
        projectors: list[jax.Array | None] = []
        for g, lay, proj in zip(leaves, layout, old):
            if lay is None:
                low.append(g)
                projectors.append(None)
                continue
            to_m, _, r, left, _ = lay
            mat = to_m(tree.finite_part(g)).astype(proj.dtype)

            def svd(mat=mat, r=r, left=left):
                u, _, vh = jnp.linalg.svd(mat, full_matrices=False)
                return u[:, :r] if left else _h(vh[:r, :])

            proj = jax.lax.cond(refresh, svd, lambda proj=proj: proj)
            projectors.append(proj)
            low.append(_h(proj) @ mat if left else mat @ proj)
        low_updates, base_state = self.base_optimizer.apply(
            treedef.unflatten(low), state.base_optimizer_state, None, step)
        alpha = step.value(self.scale)
        out = []
        for g, lay, proj, n_low in zip(leaves, layout, projectors,
                                       treedef.flatten_up_to(low_updates)):
            if lay is None or proj is None:  # a leaf not projected (both are None)
                out.append(n_low)
                continue
            _, from_m, _, left, _ = lay
            n_low = n_low.astype(proj.dtype)
            full = from_m(proj @ n_low if left else n_low @ _h(proj))
            full = (tree.scalar(alpha, full.dtype) * full).astype(g.dtype)
            out.append(jnp.where(jnp.isfinite(g), full, jnp.full_like(full, jnp.nan)))
        return treedef.unflatten(out), GaLoreState(base_state, treedef.unflatten(projectors))

    def links(self, state, step):
        return iter([("base_optimizer", self.base_optimizer, state.base_optimizer_state, step)])
