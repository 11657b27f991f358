"""Sophia: clipped, Hessian-preconditioned steps; the math lives in ``transforms/sophia.py``.

The Hessian's diagonal is estimated by a transformation that receives the extra arguments of
``update``: by default ``obj_fn=`` (or ``hvp=``) and ``key=``, see
:class:`gradxform.hutchinson_estimator_diag_hessian`.
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api, field_of
from gradxform._src.transforms.regularisation import add_decayed_weights
from gradxform._src.transforms.scaling import scale_by_learning_rate
from gradxform._src.transforms.sophia import hutchinson_estimator_diag_hessian, scale_by_sophia
from gradxform._src.types import DType, Hyper

__all__ = ["sophia"]


@docs.args
@api("sophia", rename={field_of(add_decayed_weights, "mask"): "weight_decay_mask"})
def sophia(learning_rate: Hyper, b1: Hyper = 0.965, b2: Hyper = 0.99, eps: Hyper = 1e-8,
           weight_decay: Hyper = 1e-4, weight_decay_mask: Any = None, gamma: Hyper = 0.01,
           clip_threshold: Hyper | None = 1.0, update_interval: Hyper = 10,
           hessian_diagonal_fn: Any = None, mu_dtype: DType = None, verbose: bool = False,
           print_win_rate_every_n_steps: int = 0) -> chain:
    r"""Sophia (Liu et al. 2024): ``chain(scale_by_sophia(...), add_decayed_weights(wd,
    weight_decay_mask), scale_by_learning_rate(lr))``.

    .. math:: \theta_t = \theta_{t-1} - \eta\left(\operatorname{clip}\Big(\frac{\hat m_t}
              {\max(\gamma h_{t-1}, \epsilon)}, \pm\rho\Big) + \lambda\theta_{t-1}\right)

    with the momentum :math:`\hat m_t` and the Hessian-diagonal average :math:`h` of
    :class:`scale_by_sophia`. Sophia-H (the default estimator) needs the objective and a key at
    every step::

        updates, state = opt.update(grads, state, params,
                                    obj_fn=lambda p: loss(p, batch), key=step_key)

    Args:
      <<learning_rate>>
      <<b1>>
      b2: the Hessian average's decay in [0, 1), per refresh.
      eps: the floor > 0 of the denominator.
      <<weight_decay>>
      weight_decay_mask: which leaves are decayed (as ``mask`` of
        :class:`add_decayed_weights`).
      gamma: > 0, scales the curvature.
      clip_threshold: :math:`\rho` > 0, or ``None``.
      update_interval: steps between refreshes of the estimate, >= 1.
      hessian_diagonal_fn: the estimator (default: Hutchinson's,
        :class:`hutchinson_estimator_diag_hessian`).
      <<mu_dtype>>
      verbose: print the fraction of coordinates not clipped.
      print_win_rate_every_n_steps: how often to print it.
    """
    if hessian_diagonal_fn is None:
        hessian_diagonal_fn = hutchinson_estimator_diag_hessian()
    return chain(
        scale_by_sophia(b1=b1, b2=b2, eps=eps, gamma=gamma, clip_threshold=clip_threshold,
                        update_interval=update_interval,
                        hessian_diagonal_fn=hessian_diagonal_fn, mu_dtype=mu_dtype,
                        verbose=verbose,
                        print_win_rate_every_n_steps=print_win_rate_every_n_steps),
        add_decayed_weights(weight_decay=weight_decay, mask=weight_decay_mask),
        scale_by_learning_rate(learning_rate=learning_rate), name="sophia")
