"""Muon: orthogonalised momentum for matrices, AdamW for the other leaves.
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.base import GradientTransformation
from gradxform._src.combine import chain, masked
from gradxform._src.module import api, field_of, renaming
from gradxform._src.transforms.adam import scale_by_adam
from gradxform._src.transforms.muon import (
    NS_COEFFS,
    MuonLeaves,
    freeze_dims,
    scale_by_muon,
    scale_by_shape,
)
from gradxform._src.transforms.regularisation import add_decayed_weights
from gradxform._src.transforms.scaling import scale_by_learning_rate

__all__ = ["muon"]


@docs.args
@api("muon", rename={field_of(scale_by_adam, "b1"): "adam_b1",
                     field_of(scale_by_adam, "b2"): "adam_b2",
                     field_of(scale_by_adam, "eps_root"): "adam_eps_root",
                     field_of(scale_by_muon, "weight_dimension_numbers"):
                         "muon_weight_dimension_numbers"})
def muon(learning_rate: Any, ns_coeffs: Any = NS_COEFFS, ns_steps: int = 5, beta: Any = 0.95,
         eps: Any = 1e-8, weight_decay: Any = 0.0, weight_decay_mask: Any = None,
         mu_dtype: Any = None, *, nesterov: bool = True, adaptive: bool = False,
         preconditioning: str = "frobenius", adam_b1: Any = 0.9, adam_b2: Any = 0.999,
         adam_eps_root: Any = 0.0, adam_weight_decay: Any = 0.0,
         adam_learning_rate: Any = None, muon_weight_dimension_numbers: Any = None,
         consistent_rms: Any = None) -> chain:
    r"""Muon (Jordan et al. 2024): orthogonalised momentum for matrices, AdamW for the rest.

    A named chain of two :func:`~gradxform.masked` branches and the learning rate::

        muon:  scale_by_muon -> scale_by_shape -> add_decayed_weights(weight_decay)
        adam:  scale_by_adam(adam_b1, adam_b2, eps, nesterov) -> add_decayed_weights(adam_wd)
        learning_rate: scale_by_learning_rate

    so a matrix :math:`W` moves by
    :math:`-\eta\,(\sqrt{\max(1, d_{out}/d_{in})}\,\operatorname{NS}_5(\hat M) + \lambda W)`
    (see :class:`scale_by_muon` and :class:`scale_by_shape`). By default the 2-D leaves go to
    Muon and every other leaf to AdamW; ``muon_weight_dimension_numbers`` chooses otherwise.
    With ``adam_learning_rate`` each branch gets its own ``scale_by_learning_rate``.

    Conventions. Those of optax's ``contrib.muon``: Nesterov momentum by default, also for the
    Adam branch (which is then NAdam), ``eps`` shared by both branches, Adam's weight decay 0.
    Jordan's reference applies Muon to the hidden matrices only (not embeddings or the output
    layer): exclude those with ``muon_weight_dimension_numbers`` (``None`` sends a leaf to
    Adam).

    Args:
      <<learning_rate>>
      ns_coeffs: Newton-Schulz coefficients ``(a, b, c)``, a table of shape ``(n, 3)``, or a
        preset name (``"standard"``, ``"dion"``).
      ns_steps: Newton-Schulz steps (>= 1).
      beta: momentum decay in [0, 1).
      <<eps>>
      weight_decay: decoupled weight decay >= 0 of the Muon leaves (multiplied by the learning
        rate).
      weight_decay_mask: which Muon leaves are decayed (a tree of bools or a callable).
      <<mu_dtype>>
      <<nesterov>>
      adaptive: scale the orthogonalised update by the dual norm of the momentum.
      preconditioning: ``"frobenius"``, ``"spectral"``, ``"aol"`` or ``"schatten"``.
      adam_b1: Adam's first-moment decay in [0, 1).
      adam_b2: Adam's second-moment decay in [0, 1).
      adam_eps_root: Adam's ``eps_root`` >= 0.
      adam_weight_decay: decoupled weight decay >= 0 of the Adam leaves.
      adam_learning_rate: the Adam branch's learning rate (default: ``learning_rate``).
      muon_weight_dimension_numbers: a tree (or prefix, or callable) of
        :class:`MuonDimensionNumbers` and ``None`` (``None``: the leaf goes to Adam);
        default: the 2-D leaves, as matrices.
      consistent_rms: if given, scale Muon's updates to this RMS (see :class:`scale_by_shape`).

    Example::

        opt = gx.muon(0.02, weight_decay=0.01)

    References:
      Jordan, Jin, Boza, You, Cesista, Newhouse, Bernstein, *Muon: An optimizer for hidden
      layers in neural networks*, 2024 (https://kellerjordan.github.io/posts/muon/).
    """
    dims = freeze_dims(muon_weight_dimension_numbers)
    muon_links = [
        scale_by_muon(ns_coeffs=ns_coeffs, ns_steps=ns_steps, beta=beta, eps=eps, mu_dtype=mu_dtype,
                      nesterov=nesterov, adaptive=adaptive, preconditioning=preconditioning,
                      weight_dimension_numbers=dims),
        scale_by_shape(weight_dimension_numbers=dims, consistent_rms=consistent_rms),
        add_decayed_weights(weight_decay=weight_decay, mask=weight_decay_mask),
    ]
    with renaming({field_of(add_decayed_weights, "weight_decay"): "adam_weight_decay",
                   field_of(scale_by_learning_rate, "learning_rate"): "adam_learning_rate"}):
        adam_links = [
            scale_by_adam(b1=adam_b1, b2=adam_b2, eps=eps, eps_root=adam_eps_root,
                          mu_dtype=mu_dtype, nu_dtype=None, nesterov=nesterov),
            add_decayed_weights(weight_decay=adam_weight_decay),
        ]
        if adam_learning_rate is not None:
            adam_links.append(scale_by_learning_rate(learning_rate=adam_learning_rate))
    names: tuple[str, ...] = ("muon", "adam")
    tail: list[GradientTransformation] = []
    if adam_learning_rate is None:
        names = names + ("learning_rate",)
        tail = [scale_by_learning_rate(learning_rate=learning_rate)]
    else:
        muon_links.append(scale_by_learning_rate(learning_rate=learning_rate))
    # A model may have no leaf for one of the branches (only matrices, say): that is fine.
    return chain(masked(chain(*muon_links), mask=MuonLeaves(dims=dims, muon=True),
                        on_empty="allow"),
                 masked(chain(*adam_links), mask=MuonLeaves(dims=dims, muon=False),
                        on_empty="allow"),
                 *tail, name="muon", names=names)
