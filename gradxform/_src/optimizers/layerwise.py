"""Layer-wise methods: LARS, LAMB, Fromage and NovoGrad (one statistic per leaf).

Each is a short chain; the math lives in the transforms it links. LARS, LAMB and Fromage take
``axis_name`` for use inside ``jax.shard_map`` with leaves split along their leading dimension.
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.base import GradientTransformation
from gradxform._src.combine import chain, masked
from gradxform._src.module import api, field_of
from gradxform._src.transforms.adam import scale_by_adam
from gradxform._src.transforms.fromage import scale_by_fromage
from gradxform._src.transforms.momentum import trace
from gradxform._src.transforms.novograd import scale_by_novograd
from gradxform._src.transforms.regularisation import add_decayed_weights
from gradxform._src.transforms.scaling import scale_by_learning_rate
from gradxform._src.transforms.trust_ratio import scale_by_lars, scale_by_trust_ratio

__all__ = ["lars", "lamb", "fromage", "novograd"]


def _all_leaves(mask: Any) -> bool:
    return mask is None or mask is True


@docs.args
@api("lars", rename={field_of(trace, "decay"): "momentum"})
def lars(learning_rate: Any, weight_decay: Any = 0.0, weight_decay_mask: Any = True,
         trust_coefficient: Any = 0.001, eps: Any = 0.0, trust_ratio_mask: Any = True,
         momentum: Any = 0.9, nesterov: bool = False, *, paper_trust_ratio: bool = False,
         ratio_at_zero_norm: Any = 1.0, axis_name: Any = None) -> chain:
    r"""LARS (You et al. 2017): SGD with momentum and a layer-wise trust ratio.

    ``chain(add_decayed_weights(weight_decay, weight_decay_mask),
    masked(scale_by_trust_ratio(trust_coefficient, eps), trust_ratio_mask),
    scale_by_learning_rate(lr), trace(momentum, nesterov))``:

    .. math::
        d_t = g_t + \lambda\theta_t, \qquad
        v_t = \mu v_{t-1} + \gamma_t\, \frac{c\,\lVert\theta_t\rVert}{\lVert d_t\rVert + \epsilon}
        d_t, \qquad \theta_{t+1} = \theta_t - v_t

    per leaf (:math:`\gamma` the learning rate, :math:`c` the trust coefficient, the paper's
    :math:`\eta`).

    Conventions. Defaults and the denominator :math:`\lVert g + \lambda\theta\rVert` follow
    optax. ``paper_trust_ratio=True`` uses the paper's :math:`\lVert g\rVert +
    \lambda\lVert\theta\rVert` instead (:class:`scale_by_lars`; it then applies the decay and the
    ratio to every leaf, so both masks must be left at ``True``). The ratio is 1 where a norm is
    zero (``ratio_at_zero_norm=0`` for the formula taken literally); that fallback is not
    multiplied by the trust coefficient, so with LARS's large rates a leaf of zeros (a bias)
    takes a full step :math:`\gamma g`: exclude such leaves with ``trust_ratio_mask`` or pass
    ``ratio_at_zero_norm=trust_coefficient``. The weight decay enters before the ratio (it is
    part of the direction), not decoupled after it.

    Args:
      <<learning_rate>>
      weight_decay: :math:`\lambda` >= 0.
      weight_decay_mask: which leaves are decayed (``True``: all), as ``mask`` elsewhere.
      trust_coefficient: :math:`c` >= 0.
      eps: >= 0 added to the denominator of the ratio.
      trust_ratio_mask: which leaves get the trust ratio (``True``: all); biases and
        normalisation scales are often excluded.
      momentum: :math:`\mu` in [0, 1).
      <<nesterov>>
      paper_trust_ratio: use the paper's denominator (see Conventions).
      <<ratio_at_zero_norm>>
      <<axis_name>>

    References:
      You, Gitman, Ginsburg, *Large Batch Training of Convolutional Networks*, 2017
      (Algorithm 1).
    """
    if paper_trust_ratio:
        if not (_all_leaves(weight_decay_mask) and _all_leaves(trust_ratio_mask)):
            raise ValueError(
                "lars: paper_trust_ratio=True applies the weight decay and the trust ratio to "
                "every leaf; leave weight_decay_mask and trust_ratio_mask at True, or use the "
                "default (optax) form to mask them")
        paper = scale_by_lars(trust_coefficient=trust_coefficient, weight_decay=weight_decay,
                              eps=eps, ratio_at_zero_norm=ratio_at_zero_norm, axis_name=axis_name)
        return chain(paper, scale_by_learning_rate(learning_rate=learning_rate),
                     trace(decay=momentum, nesterov=nesterov),
                     name="lars")
    ratio: GradientTransformation = scale_by_trust_ratio(
        trust_coefficient=trust_coefficient, eps=eps, ratio_at_zero_norm=ratio_at_zero_norm,
        axis_name=axis_name)
    if not _all_leaves(trust_ratio_mask):
        ratio = masked(ratio, mask=trust_ratio_mask)
    decay_mask = None if _all_leaves(weight_decay_mask) else weight_decay_mask
    return chain(add_decayed_weights(weight_decay=weight_decay, mask=decay_mask), ratio,
                 scale_by_learning_rate(learning_rate=learning_rate),
                 trace(decay=momentum, nesterov=nesterov), name="lars")


@docs.args
@api("lamb")
def lamb(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-6,
         eps_root: Any = 0.0, weight_decay: Any = 0.0, mask: Any = None, *,
         ratio_at_zero_norm: Any = 1.0, axis_name: Any = None) -> chain:
    r"""LAMB (You et al. 2020): Adam's direction with decoupled decay, scaled by a trust ratio.

    ``chain(scale_by_adam(b1, b2, eps, eps_root), add_decayed_weights(weight_decay, mask),
    scale_by_trust_ratio(), scale_by_learning_rate(lr))``:

    .. math::
        r_t = \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} + \lambda\theta_t, \qquad
        \theta_{t+1} = \theta_t - \eta\,\frac{\lVert\theta_t\rVert}{\lVert r_t\rVert}\, r_t

    per leaf, with Adam's bias-corrected moments (:class:`scale_by_adam`).

    Conventions. As optax (``eps=1e-6``). The ratio is 1 where a norm is zero, as in optax and
    the authors' code, so zero-initialised biases move; the paper's formula
    :math:`\varphi(\lVert\theta\rVert)/\lVert r\rVert` with :math:`\varphi(0) = 0` is
    ``ratio_at_zero_norm=0``. The paper's clipping :math:`\varphi` of the param norm is not
    applied (identity, as in its experiments and in optax).

    Args:
      <<learning_rate>>
      <<b1>>
      <<b2>>
      <<eps>>
      <<eps_root>>
      <<weight_decay>>
      <<mask>>
      <<ratio_at_zero_norm>>
      <<axis_name>>

    References:
      You, Li, Reddi, Hseu, Kumar, Bhojanapalli, Song, Demmel, Keutzer, Hsieh, *Large Batch
      Optimization for Deep Learning: Training BERT in 76 minutes*, ICLR 2020 (Algorithm 2).
    """
    return chain(scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root),
                 add_decayed_weights(weight_decay=weight_decay, mask=mask),
                 scale_by_trust_ratio(ratio_at_zero_norm=ratio_at_zero_norm,
                                      axis_name=axis_name),
                 scale_by_learning_rate(learning_rate=learning_rate), name="lamb")


@docs.args
@api("fromage")
def fromage(learning_rate: Any, min_norm: Any = 1e-6, *, axis_name: Any = None) -> chain:
    r"""Fromage (Bernstein et al. 2020): relative steps that keep the weights' norms bounded.

    ``chain(scale_by_trust_ratio(min_norm), scale_by_fromage(learning_rate))``:

    .. math:: \theta_{t+1} = \frac{1}{\sqrt{1+\eta^2}}\left(\theta_t - \eta\,
              \frac{\lVert\theta_t\rVert}{\lVert g_t\rVert}\, g_t\right)

    per leaf, norms clipped below at ``min_norm``. The learning rate is a relative step
    (0.01 is typical) and needs little tuning across layers.

    Args:
      <<learning_rate>>
      min_norm: lower bound >= 0 of the param and gradient norms (avoids dividing by zero).
      <<axis_name>>

    References:
      Bernstein, Vahdat, Yue, Liu, *On the distance between two neural networks and the
      stability of learning*, NeurIPS 2020 (Algorithm 1).
    """
    return chain(scale_by_trust_ratio(min_norm=min_norm, axis_name=axis_name),
                 scale_by_fromage(learning_rate=learning_rate), name="fromage")


@docs.args
@api("novograd")
def novograd(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.25, eps: Any = 1e-6,
             eps_root: Any = 0.0, weight_decay: Any = 0.0, *, mu_dtype: Any = None) -> chain:
    r"""NovoGrad (Ginsburg et al. 2019): ``chain(scale_by_novograd(...),
    scale_by_learning_rate(lr))``.

    .. math:: v_t = \beta_2 v_{t-1} + (1-\beta_2)\lVert g_t\rVert^2, \qquad
              m_t = \beta_1 m_{t-1} + \frac{g_t}{\sqrt{v_t} + \epsilon} + \lambda\theta_t,
              \qquad \theta_{t+1} = \theta_t - \eta\, m_t

    per leaf; see :class:`scale_by_novograd` for the first step and the conventions. Defaults
    as optax (``b2=0.25``, ``eps=1e-6``).

    Args:
      <<learning_rate>>
      b1: momentum :math:`\beta_1` in [0, 1).
      b2: second-moment decay :math:`\beta_2` in [0, 1).
      <<eps>>
      <<eps_root>>
      weight_decay: :math:`\lambda` >= 0, added to the normalised gradient.
      <<mu_dtype>>
    """
    return chain(scale_by_novograd(b1=b1, b2=b2, eps=eps, eps_root=eps_root,
                                   weight_decay=weight_decay, mu_dtype=mu_dtype),
                 scale_by_learning_rate(learning_rate=learning_rate), name="novograd")
