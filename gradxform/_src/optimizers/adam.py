"""Adam and its variants: AdamW, NAdam(W), AMSGrad, RAdam, AdaMax(W), AdaBelief, Yogi, Adan,
ADOPT(W), AdEMAMix, and SWATS (Adam switching to SGD).

Each is a short chain; the math lives in the ``transforms/`` file of the same name.
"""

from __future__ import annotations

from typing import Any

from gradxform._src import docs
from gradxform._src.combine import chain
from gradxform._src.module import api
from gradxform._src.transforms.adabelief import scale_by_belief
from gradxform._src.transforms.adam import scale_by_adam
from gradxform._src.transforms.adamax import scale_by_adamax
from gradxform._src.transforms.adan import scale_by_adan
from gradxform._src.transforms.ademamix import scale_by_ademamix
from gradxform._src.transforms.adopt import scale_by_adopt
from gradxform._src.transforms.amsgrad import scale_by_amsgrad
from gradxform._src.transforms.proximal import proximal_weight_decay
from gradxform._src.transforms.radam import scale_by_radam
from gradxform._src.transforms.regularisation import add_decayed_weights
from gradxform._src.transforms.scaling import scale_by_learning_rate
from gradxform._src.transforms.swats import scale_by_swats
from gradxform._src.transforms.yogi import scale_by_yogi

__all__ = ["adam", "adamw", "nadam", "nadamw", "amsgrad", "radam", "adamax", "adamaxw", "adabelief",
           "yogi", "adan", "adopt", "adoptw", "ademamix", "swats"]


@docs.args
@api("adam")
def adam(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, eps_root: Any = 0.0,
         mu_dtype: Any = None, *, nu_dtype: Any = None, nesterov: bool = False) -> chain:
    r"""Adam (Kingma & Ba, 2015): ``chain(scale_by_adam(...), scale_by_learning_rate(lr))``.

    .. math:: \theta_t = \theta_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    with the bias-corrected moments of :class:`scale_by_adam` (which documents the update rule
    and the conventions). ``nesterov=True`` gives NAdam.

    Args:
      <<learning_rate>>
      <<b1>>
      <<b2>>
      <<eps>>
      <<eps_root>>
      <<mu_dtype>>
      <<nu_dtype>>
      <<nesterov>>

    Example::

        opt = gx.adam(gx.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 10_000))
    """
    return chain(scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype,
                               nu_dtype=nu_dtype, nesterov=nesterov),
                 scale_by_learning_rate(learning_rate=learning_rate), name="adam")


@docs.args
@api("adamw")
def adamw(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, eps_root: Any = 0.0,
          mu_dtype: Any = None, weight_decay: Any = 1e-4, mask: Any = None, *, nu_dtype: Any = None,
          nesterov: bool = False) -> chain:
    r"""AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

    ``chain(scale_by_adam(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(lr))``:

    .. math:: \theta_t = \theta_{t-1} - \eta\left(\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}
              + \lambda\theta_{t-1}\right)

    The decay is multiplied by the learning rate, as in optax and torch; see
    :class:`add_decayed_weights` for the paper's form.

    Args:
      <<learning_rate>>
      <<b1>>
      <<b2>>
      <<eps>>
      <<eps_root>>
      <<mu_dtype>>
      <<nu_dtype>>
      <<weight_decay>>
      <<mask>>
      <<nesterov>>
    """
    return chain(scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype,
                               nu_dtype=nu_dtype, nesterov=nesterov),
                 add_decayed_weights(weight_decay=weight_decay, mask=mask),
                 scale_by_learning_rate(learning_rate=learning_rate), name="adamw")


@docs.args
@api("nadam")
def nadam(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, eps_root: Any = 0.0,
          mu_dtype: Any = None, *, nesterov: bool = True, nu_dtype: Any = None) -> chain:
    r"""NAdam (Dozat, 2016): Adam with Nesterov momentum.

    ``chain(scale_by_adam(..., nesterov=True), scale_by_learning_rate(lr))``:

    .. math:: \theta_t = \theta_{t-1} - \eta\,\frac{\beta_1 m_t / (1 - \beta_1^{t+1})
              + (1 - \beta_1) g_t / (1 - \beta_1^t)}{\sqrt{\hat v_t} + \epsilon}

    Conventions. As optax (``optax.nadam``): a constant :math:`\beta_1`. Dozat's Algorithm 2
    allows a schedule :math:`\mu_t` of the momentum (torch and Keras warm it up with
    :math:`\mu_t = \beta_1(1 - \tfrac12 0.96^{t/250})`), and multiplies :math:`\hat v_t` by
    :math:`\beta_2`; neither is applied here, as in optax.

    Args:
      <<learning_rate>>
      <<b1>>
      <<b2>>
      <<eps>>
      <<eps_root>>
      <<mu_dtype>>
      nesterov: keyword-only; the Nesterov form (the default, NAdam), or plain Adam with
        ``False`` (optax's switch).
      <<nu_dtype>>

    References:
      Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR workshop 2016 (Algorithm 2).
    """
    return chain(scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype,
                               nu_dtype=nu_dtype, nesterov=nesterov),
                 scale_by_learning_rate(learning_rate=learning_rate), name="nadam")


@docs.args
@api("nadamw")
def nadamw(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, eps_root: Any = 0.0,
           mu_dtype: Any = None, weight_decay: Any = 1e-4, mask: Any = None, *,
           nesterov: bool = True, nu_dtype: Any = None) -> chain:
    r"""NAdamW: NAdam with decoupled weight decay (as ``optax.nadamw``).

    ``chain(scale_by_adam(..., nesterov=True), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(lr))``; see :func:`nadam` and :func:`adamw`:

    .. math:: \theta_t = \theta_{t-1} - \eta\left(\frac{\beta_1 \hat m_{t+1}
              + (1-\beta_1)\hat g_t}{\sqrt{\hat v_t} + \epsilon} + \lambda\theta_{t-1}\right),
              \qquad \hat m_{t+1} = \frac{m_t}{1-\beta_1^{t+1}},\
              \hat g_t = \frac{g_t}{1-\beta_1^t}

    Args:
      <<learning_rate>>
      <<b1>>
      <<b2>>
      <<eps>>
      <<eps_root>>
      <<mu_dtype>>
      nesterov: keyword-only; the Nesterov form (the default, NAdamW), or AdamW with ``False``
        (optax's switch).
      <<nu_dtype>>
      <<weight_decay>>
      <<mask>>

    References:
      Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR workshop 2016. Loshchilov &
      Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """
    return chain(scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype,
                               nu_dtype=nu_dtype, nesterov=nesterov),
                 add_decayed_weights(weight_decay=weight_decay, mask=mask),
                 scale_by_learning_rate(learning_rate=learning_rate), name="nadamw")


@docs.args
@api("amsgrad")
def amsgrad(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8,
            eps_root: Any = 0.0, mu_dtype: Any = None, bias_correction_mu: bool = True,
            bias_correction_nu: bool = True, *, nu_dtype: Any = None) -> chain:
    r"""AMSGrad (Reddi et al., 2018): ``chain(scale_by_amsgrad(...), scale_by_learning_rate(lr))``.

    .. math:: \theta_t = \theta_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\max_{s \le t} \hat v_s}
              + \epsilon}

    Adam whose second moment never decreases, so the effective step never grows. See
    :class:`scale_by_amsgrad` for the rule and for the paper's form (no bias corrections).

    Args:
      <<learning_rate>>
      <<b1>>
      <<b2>>
      <<eps>>
      <<eps_root>>
      <<mu_dtype>>
      bias_correction_mu: divide the first moment by :math:`1 - \beta_1^t`.
      bias_correction_nu: divide the second moment by :math:`1 - \beta_2^t` before the maximum.
      <<nu_dtype>>
    """
    return chain(scale_by_amsgrad(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype,
                                  nu_dtype=nu_dtype, bias_correction_mu=bias_correction_mu,
                                  bias_correction_nu=bias_correction_nu),
                 scale_by_learning_rate(learning_rate=learning_rate), name="amsgrad")


@docs.args
@api("radam")
def radam(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8,
          eps_root: Any = 0.0, threshold: Any = 5.0, *, nesterov: bool = False,
          mu_dtype: Any = None, nu_dtype: Any = None) -> chain:
    r"""Rectified Adam (Liu et al., 2020): ``chain(scale_by_radam(...),
    scale_by_learning_rate(lr))``.

    .. math:: \theta_t = \theta_{t-1} - \eta\, r_t\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}
              \quad (\rho_t \ge \tau), \qquad
              \theta_t = \theta_{t-1} - \eta\,\hat m_t \quad\text{otherwise}

    See :class:`scale_by_radam` for :math:`\rho_t`, :math:`r_t` and the threshold convention
    (``threshold=4`` is the paper's).

    Args:
      <<learning_rate>>
      <<b1>>
      <<b2>>
      <<eps>>
      <<eps_root>>
      threshold: the least :math:`\rho_t` at which the adaptive step is used, >= 4.
      <<nesterov>>
      <<mu_dtype>>
      <<nu_dtype>>
    """
    return chain(scale_by_radam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, threshold=threshold,
                                nesterov=nesterov, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
                 scale_by_learning_rate(learning_rate=learning_rate), name="radam")


@docs.args
@api("adamax")
def adamax(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, *,
           mu_dtype: Any = None, nu_dtype: Any = None) -> chain:
    r"""AdaMax (Kingma & Ba, 2015, section 7.1): ``chain(scale_by_adamax(...),
    scale_by_learning_rate(lr))``.

    .. math:: u^\infty_t = \max(\beta_2 u^\infty_{t-1}, |g_t| + \epsilon), \qquad
              \theta_t = \theta_{t-1} - \frac{\eta}{1 - \beta_1^t}\,\frac{m_t}{u^\infty_t}

    See :class:`scale_by_adamax`.

    Args:
      <<learning_rate>>
      <<b1>>
      b2: decay of the infinity norm in [0, 1).
      eps: added to :math:`|g_t|` inside the maximum, > 0.
      <<mu_dtype>>
      <<nu_dtype>>
    """
    return chain(scale_by_adamax(b1=b1, b2=b2, eps=eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
                 scale_by_learning_rate(learning_rate=learning_rate), name="adamax")


@docs.args
@api("adamaxw")
def adamaxw(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8,
            weight_decay: Any = 1e-4, mask: Any = None, *, mu_dtype: Any = None,
            nu_dtype: Any = None) -> chain:
    r"""AdaMaxW: AdaMax with decoupled weight decay (as ``optax.adamaxw``).

    ``chain(scale_by_adamax(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(lr))``:

    .. math:: \theta_t = \theta_{t-1} - \eta\left(\frac{m_t}{(1 - \beta_1^t) u^\infty_t}
              + \lambda\theta_{t-1}\right)

    Args:
      <<learning_rate>>
      <<b1>>
      b2: decay of the infinity norm in [0, 1).
      eps: added to :math:`|g_t|` inside the maximum, > 0.
      <<weight_decay>>
      <<mask>>
      <<mu_dtype>>
      <<nu_dtype>>

    References:
      Kingma & Ba, *Adam*, ICLR 2015 (section 7.1). Loshchilov & Hutter, *Decoupled Weight
      Decay Regularization*, ICLR 2019.
    """
    return chain(scale_by_adamax(b1=b1, b2=b2, eps=eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
                 add_decayed_weights(weight_decay=weight_decay, mask=mask),
                 scale_by_learning_rate(learning_rate=learning_rate), name="adamaxw")


@docs.args
@api("adabelief")
def adabelief(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-16,
              eps_root: Any = 1e-16, *, nesterov: bool = False, mu_dtype: Any = None,
              nu_dtype: Any = None) -> chain:
    r"""AdaBelief (Zhuang et al., 2020): ``chain(scale_by_belief(...),
    scale_by_learning_rate(lr))``.

    .. math:: s_t = \beta_2 s_{t-1} + (1 - \beta_2)(g_t - m_t)^2 + \epsilon_{root}, \qquad
              \theta_t = \theta_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat s_t} + \epsilon}

    See :class:`scale_by_belief` for the rule and the placement of the two epsilons.

    Args:
      <<learning_rate>>
      <<b1>>
      b2: decay of the prediction-error variance in [0, 1).
      eps: added outside the square root, > 0.
      eps_root: added to :math:`s_t` at every step, >= 0.
      <<nesterov>>
      <<mu_dtype>>
      <<nu_dtype>>
    """
    return chain(scale_by_belief(b1=b1, b2=b2, eps=eps, eps_root=eps_root, nesterov=nesterov,
                                 mu_dtype=mu_dtype, nu_dtype=nu_dtype),
                 scale_by_learning_rate(learning_rate=learning_rate), name="adabelief")


@docs.args
@api("yogi")
def yogi(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-3, *,
         eps_root: Any = 0.0, initial_accumulator_value: Any = 1e-6,
         bias_correction: bool = True, mu_dtype: Any = None, nu_dtype: Any = None) -> chain:
    r"""Yogi (Zaheer et al., 2018): ``chain(scale_by_yogi(...), scale_by_learning_rate(lr))``.

    .. math:: v_t = v_{t-1} - (1 - \beta_2)\operatorname{sign}(v_{t-1} - g_t^2)\, g_t^2,
              \qquad \theta_t = \theta_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    See :class:`scale_by_yogi` for the rule and for the paper's form
    (``initial_accumulator_value=0, bias_correction=False``).

    Args:
      <<learning_rate>>
      <<b1>>
      b2: second-moment rate in [0, 1).
      eps: added outside the square root, > 0.
      <<eps_root>>
      initial_accumulator_value: :math:`m_0 = v_0`, >= 0.
      bias_correction: divide the moments by :math:`1 - \beta_i^t`.
      <<mu_dtype>>
      <<nu_dtype>>
    """
    return chain(scale_by_yogi(b1=b1, b2=b2, eps=eps, eps_root=eps_root,
                               initial_accumulator_value=initial_accumulator_value,
                               bias_correction=bias_correction, mu_dtype=mu_dtype,
                               nu_dtype=nu_dtype),
                 scale_by_learning_rate(learning_rate=learning_rate), name="yogi")


@docs.args
@api("adan")
def adan(learning_rate: Any, b1: Any = 0.98, b2: Any = 0.92, b3: Any = 0.99, eps: Any = 1e-8,
         eps_root: Any = 1e-8, weight_decay: Any = 0.0, mask: Any = None, *,
         paper_difference_weight: bool = False, proximal_decay: bool = False,
         accumulator_dtype: Any = None) -> chain:
    r"""Adan (Xie et al., 2022): adaptive Nesterov momentum with decoupled weight decay.

    By default ``chain(scale_by_adan(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(lr))``, as optax:

    .. math:: \theta_t = \theta_{t-1} - \eta\,(u_t + \lambda\theta_{t-1})

    with :math:`u_t` from :class:`scale_by_adan`. With ``proximal_decay=True`` the decay is the
    paper's proximal step, ``chain(scale_by_adan(...), proximal_weight_decay(lr, weight_decay,
    mask))``:

    .. math:: \theta_t = \frac{\theta_{t-1} - \eta\,u_t}{1 + \eta\lambda}

    Conventions. ``paper_difference_weight=True, proximal_decay=True`` is Xie et al.'s
    Algorithm 1 (and the default of the authors' code); the defaults are optax's (see
    :class:`scale_by_adan` for the weight of the gradient difference, where optax departs from
    the paper).

    Args:
      <<learning_rate>>
      b1: decay of the gradient average in [0, 1) (the paper's :math:`1 - \beta_1`).
      b2: decay of the gradient-difference average in [0, 1).
      b3: decay of the second moment in [0, 1).
      <<eps>>
      <<eps_root>>
      <<weight_decay>>
      <<mask>>
      paper_difference_weight: weight the gradient difference by ``b2`` (the paper) instead of
        ``1 - b2`` (optax).
      proximal_decay: apply the weight decay as the paper's proximal step.
      <<accumulator_dtype>>
    """
    core = scale_by_adan(b1=b1, b2=b2, b3=b3, eps=eps, eps_root=eps_root,
                         paper_difference_weight=paper_difference_weight,
                         accumulator_dtype=accumulator_dtype)
    if proximal_decay:
        return chain(core, proximal_weight_decay(learning_rate=learning_rate,
                                                 weight_decay=weight_decay, mask=mask), name="adan")
    return chain(core, add_decayed_weights(weight_decay=weight_decay, mask=mask),
                 scale_by_learning_rate(learning_rate=learning_rate), name="adan")


@docs.args
@api("adopt")
def adopt(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.9999, eps: Any = 1e-6,
          mu_dtype: Any = None, *, nesterov: bool = False, use_clipping: bool = True,
          clip_exponent: Any = 0.25, nu_dtype: Any = None) -> chain:
    r"""ADOPT (Taniguchi et al., 2024): ``chain(scale_by_adopt(...),
    scale_by_learning_rate(lr))``.

    .. math:: m_t = \beta_1 m_{t-1} + (1 - \beta_1)\operatorname{clip}\Big(
              \frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)}, t^{1/4}\Big), \qquad
              \theta_t = \theta_{t-1} - \eta\, m_t

    and :math:`v_t` is Adam's second moment, updated *after* it is used. The first update only
    sets :math:`v_0 = g_0^2`. See :class:`scale_by_adopt`.

    Args:
      <<learning_rate>>
      <<b1>>
      <<b2>>
      eps: lower bound of :math:`\sqrt{v}`, > 0.
      <<mu_dtype>>
      <<nesterov>>
      use_clipping: clip the normalised gradient to :math:`[-t^p, t^p]`.
      clip_exponent: :math:`p` >= 0.
      <<nu_dtype>>
    """
    return chain(scale_by_adopt(b1=b1, b2=b2, eps=eps, clip_exponent=clip_exponent,
                                use_clipping=use_clipping, nesterov=nesterov, mu_dtype=mu_dtype,
                                nu_dtype=nu_dtype),
                 scale_by_learning_rate(learning_rate=learning_rate), name="adopt")


@docs.args
@api("adoptw")
def adoptw(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.9999, eps: Any = 1e-6,
           mu_dtype: Any = None, weight_decay: Any = 1e-4, mask: Any = None, *,
           nesterov: bool = False, use_clipping: bool = True, clip_exponent: Any = 0.25,
           nu_dtype: Any = None) -> chain:
    r"""ADOPT with decoupled weight decay (the authors' ``decouple=True``).

    ``chain(scale_by_adopt(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(lr))``:
    :math:`\theta_t = \theta_{t-1} - \eta\,(m_t + \lambda\theta_{t-1})`. See :func:`adopt`.

    Args:
      <<learning_rate>>
      <<b1>>
      <<b2>>
      eps: lower bound of :math:`\sqrt{v}`, > 0.
      <<mu_dtype>>
      <<weight_decay>>
      <<mask>>
      <<nesterov>>
      use_clipping: clip the normalised gradient to :math:`[-t^p, t^p]`.
      clip_exponent: :math:`p` >= 0.
      <<nu_dtype>>

    References:
      Taniguchi et al., *ADOPT: Modified Adam Can Converge with Any beta2 with the Optimal
      Rate*, NeurIPS 2024. Loshchilov & Hutter, *Decoupled Weight Decay Regularization*,
      ICLR 2019.
    """
    return chain(scale_by_adopt(b1=b1, b2=b2, eps=eps, clip_exponent=clip_exponent,
                                use_clipping=use_clipping, nesterov=nesterov, mu_dtype=mu_dtype,
                                nu_dtype=nu_dtype),
                 add_decayed_weights(weight_decay=weight_decay, mask=mask),
                 scale_by_learning_rate(learning_rate=learning_rate), name="adoptw")


@docs.args
@api("ademamix")
def ademamix(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, b3: Any = 0.9999,
             alpha: Any = 5.0, eps: Any = 1e-8, eps_root: Any = 0.0, mu_dtype: Any = None,
             weight_decay: Any = 0.0, mask: Any = None, *, nu_dtype: Any = None) -> chain:
    r"""AdEMAMix (Pagliardini et al., 2024): AdamW with a second, slow momentum.

    ``chain(scale_by_ademamix(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(lr))``:

    .. math:: \theta_t = \theta_{t-1} - \eta\left(\frac{\hat m^{(1)}_t + \alpha m^{(2)}_t}
              {\sqrt{\hat v_t} + \epsilon} + \lambda\theta_{t-1}\right)

    See :class:`scale_by_ademamix`. For long runs the paper warms up ``alpha`` and ``b3``::

        T = 100_000
        opt = gx.ademamix(1e-3, b3=gx.ademamix_b3_schedule(0.9999, T),
                          alpha=gx.ademamix_alpha_schedule(5.0, T))

    Args:
      <<learning_rate>>
      b1: decay of the fast moment in [0, 1).
      <<b2>>
      b3: decay of the slow moment in [0, 1) (a number or a schedule).
      alpha: weight of the slow moment, >= 0 (a number or a schedule).
      <<eps>>
      <<eps_root>>
      <<mu_dtype>>
      <<weight_decay>>
      <<mask>>
      <<nu_dtype>>
    """
    return chain(scale_by_ademamix(b1=b1, b2=b2, b3=b3, alpha=alpha, eps=eps, eps_root=eps_root,
                                   mu_dtype=mu_dtype, nu_dtype=nu_dtype),
                 add_decayed_weights(weight_decay=weight_decay, mask=mask),
                 scale_by_learning_rate(learning_rate=learning_rate), name="ademamix")


@docs.args
@api("swats")
def swats(learning_rate: Any, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-9,
          eps_switch: Any = 1e-9, mu_dtype: Any = None, nu_dtype: Any = None) -> chain:
    r"""SWATS (Keskar & Socher 2017): Adam until its step size is learned, then SGD.

    ``chain(scale_by_swats(...))``; see :class:`scale_by_swats` for Algorithm 1 of the paper:

    .. math:: \theta_t = \theta_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t}+\epsilon}
              \ \text{(Adam phase)}, \qquad
              \theta_t = \theta_{t-1} - (1-\beta_1)\Lambda\, v_t,\
              v_t = \beta_1 v_{t-1} + g_t \ \text{(SGD phase)}

    with :math:`\Lambda` the bias-corrected average of the projected rates at the switch.
    The optimizer switches once, when the bias-corrected average of the projected SGD rates
    agrees with the latest one to within ``eps_switch``, and continues as SGD with momentum
    ``b1`` at that rate.

    Args:
      <<learning_rate>>
      b1: Adam's first-moment decay and SGD's momentum, in [0, 1).
      b2: Adam's second-moment decay and the rate average's, in [0, 1).
      eps: Adam's epsilon > 0 (paper: 1e-9).
      eps_switch: the switching tolerance > 0 (paper: 1e-9).
      <<mu_dtype>>
      <<nu_dtype>>

    References:
      Keskar & Socher, *Improving Generalization Performance by Switching from Adam to SGD*,
      arXiv 1712.07628, 2017.
    """
    return chain(scale_by_swats(learning_rate=learning_rate, b1=b1, b2=b2, eps=eps,
                                eps_switch=eps_switch, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
                 name="swats")
