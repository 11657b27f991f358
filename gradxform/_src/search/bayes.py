r"""Bayesian optimisation: a Gaussian-process surrogate and log expected improvement, in JAX.

:class:`Bayes` proposes configurations from what it has been told: a few scrambled Sobol points
first, then, each round,

1. the values are imputed where trials failed (with the worst value seen), warped by a
   Yeo-Johnson or Box-Cox power transform whose exponent the data choose (heavy-tailed losses
   become nearly Gaussian, :mod:`warping`), standardised and negated (the surrogate
   maximises), and put into a padded buffer (:mod:`gp`);
2. the GP hyperparameters are fitted by maximum a posteriori with :func:`gradxform.rprop`,
   four vmapped starts (the last fit and draws from the prior) when the buffer is new and every
   few rounds, else one short run warm-started from the last fit;
3. the acquisition (log EI, UCB or log PI, :mod:`acquisition`; or a posterior sample,
   :mod:`thompson`; or GP-Hedge's choice among the nominees of log EI, log PI and UCB) is
   maximised inside a trust region around the best point (:mod:`trust_region`; its size
   replayed from the told values) over scrambled Sobol candidates of the region and
   perturbations of the best points, refined by gradient ascent projected onto the region
   (optionally, once the region is small, under a second GP fitted to the observations near
   the incumbent only: ``local_side``);
4. for a batch of ``k`` points, each chosen point is added to the data with the posterior mean
   as its value (the *Kriging believer*) and the acquisition is maximised again, without
   refitting; with ``batch="qlogei"`` that batch then starts a joint ascent of the batch's
   Monte-Carlo log expected improvement (:mod:`qlogei`); configurations already evaluated,
   pending or chosen are never proposed twice.

The compiled functions (the full fit, the warm-started fit and the acquisition) have fixed
shapes per buffer capacity (a power of two, at least :data:`MIN_CAPACITY`): a new observation
and each point of a batch reuse the same programs, so a search of up to 64 trials compiles
three times in all, not once per observation (the fit's step count is data, not shape).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Mapping
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import qmc

from gradxform._src.search import acquisition as acq
from gradxform._src.search import gp, qlogei, thompson, trust_region, warping
from gradxform._src.search.space import Categorical, Int, Space
from gradxform._src.search.tuner import Tuner, check_count

__all__ = ["TRACE_COUNTS", "Bayes"]

#: How many times each compiled function of this module was traced (tests read it).
TRACE_COUNTS = {"fit": 0, "acquire": 0, "qlogei": 0}

_ACQUISITIONS = (*acq.KINDS, "ts", "hedge")
_BATCH_KINDS = ("believer", "qlogei")
_WARPS = ("auto", "power", "box-cox", None)
#: The smallest observation buffer. Below 64 rows the padded GP costs next to nothing, and
#: one capacity for the first 64 trials means that a search of up to 64 trials compiles three
#: programs (full fit, warm-started fit, acquisition) in all; 65 to 128 trials three more.
MIN_CAPACITY = 64
#: The number of vmapped starts of a full hyperparameter fit (a warm-started fit has one).
FIT_STARTS = 4
_MAX_SIDE = trust_region.MAXIMUM  # (the argument trust_region hides the module in __init__)


def _fit(data, starts, steps, learning_rate, min_log_lengthscale):
    """Fit the GP to each warping of the targets: ``data.y`` [w, capacity] and ``starts``
    [w, s, ...] stacked per warping. Returns the fits [w, ...] and their log posteriors [w]."""
    TRACE_COUNTS["fit"] += 1

    def one(y, starts):
        params, values = gp.fit(gp.Data(data.x, y, data.mask), starts, steps=steps,
                                learning_rate=learning_rate,
                                min_log_lengthscale=min_log_lengthscale)
        return params, jnp.max(values)

    return jax.vmap(one)(data.y, starts)


def _acquire(params, x, y, real, rows, candidates, lower, upper, free, beta, key, kind, starts,
             steps, learning_rate):
    """One proposal: fantasise the rows that are not ``real`` (Kriging believer), then
    maximise the acquisition (with ``kind="ts"``, a posterior sample drawn with ``key``), each
    pool of ``candidates`` in its box ``lower``, ``upper``. Returns the ascent's points sorted
    by value."""
    TRACE_COUNTS["acquire"] += 1
    post, best = gp.condition_with_fantasies(params, x, y, real, rows)
    def maximize(kind, score=None):
        return acq.maximize(post, best, candidates, free, kind=kind, beta=beta, starts=starts,
                            steps=steps, learning_rate=learning_rate, lower=lower, upper=upper,
                            score=score)

    if kind == "ts":
        path = thompson.sample(key, post)
        return maximize("logei", lambda q: thompson.evaluate(path, post, q))
    if kind == "hedge":  # every nominee of the portfolio: one program vmapped over the kinds
        def one(i):
            def score(q):
                mean, var = gp.predict(post, q)
                values = [acq.acquisition_of(k, mean, var, best, beta) for k in acq.PORTFOLIO]
                return jnp.stack(values)[i]
            return maximize("logei", score)
        return jax.vmap(one)(jnp.arange(len(acq.PORTFOLIO)))
    return maximize(kind)


def _posterior_mean(params, x, y, real, q):
    """The posterior mean given the ``real`` rows at the points ``q``."""
    TRACE_COUNTS["acquire"] += 1
    return gp.predict_mean(gp.condition(params, gp.Data(x, y, real)), q)


def _joint_batch(params, x, y, real, rows, batches, base, lower, upper, free, steps,
                 learning_rate):
    """A batch maximising qLogEI jointly (:func:`qlogei.maximize_batch`)."""
    TRACE_COUNTS["qlogei"] += 1
    return qlogei.maximize_batch(params, x, y, real, rows, batches, base, lower, upper, free,
                                 steps=steps, learning_rate=learning_rate)


_fit_jit = jax.jit(_fit)


def _run_fit(data, starts, schedule, floor):
    """:func:`_fit` compiled, with ``schedule`` = (steps, initial step) and the log length-scale
    ``floor`` passed as data (no recompiles)."""
    steps, lr = schedule
    return _fit_jit(data, starts, jnp.asarray(steps), jnp.asarray(lr, jnp.float64),
                    jnp.asarray(floor, jnp.float64))


_joint_batch_jit = jax.jit(_joint_batch, static_argnames=("steps",))
_acquire_jit = jax.jit(_acquire, static_argnames=("kind", "starts", "steps"))
_posterior_mean_jit = jax.jit(_posterior_mean)


class _SingleThreadedBlas:
    """Limits the BLAS behind jaxlib's linear algebra to one thread while a proposal runs.

    jaxlib factorises and solves with LAPACK from SciPy's OpenBLAS, which starts a thread per
    core even for the 32 x 32 to 256 x 256 matrices of this module; on a loaded machine those
    threads spin waiting for one another, and a proposal takes 10-100 times the CPU time it
    needs. Uses ``threadpoolctl`` when it is installed (it comes with scikit-learn).
    """

    _controller: Any = None

    def __enter__(self):
        cls = type(self)
        if cls._controller is None:
            try:
                import scipy.linalg  # noqa: F401 - load the BLAS jaxlib uses before listing it
                from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
                cls._controller = ThreadpoolController()
            except ImportError:  # pragma: no cover - threadpoolctl not installed
                cls._controller = False
        self._limit = cls._controller.limit(limits=1, user_api="blas") if cls._controller \
            else contextlib.nullcontext()
        return self._limit.__enter__()

    def __exit__(self, *exc):
        return self._limit.__exit__(*exc)


class Bayes(Tuner):
    r"""Bayesian optimisation with a Gaussian process and log expected improvement.

    The surrogate is a GP on the unit-cube encoding of the space (Matérn 5/2, one length scale
    per coordinate, standardised outputs, learned noise with a floor); with :math:`K = k(X, X)
    + \sigma_n^2 I` its posterior at :math:`x` is

    .. math::

        \mu(x) = k(x, X) K^{-1} y, \qquad \sigma^2(x) = k(x, x) - k(x, X) K^{-1} k(X, x).

    The hyperparameters maximise :math:`\log p(y \mid X, \theta) + \log p(\theta)` (log-normal
    length-scale prior of Hvarfner et al. 2024), fitted with :func:`gradxform.rprop`. The next
    point maximises **log expected improvement** (Ament et al. 2023) over the best value
    :math:`f^*` so far (of the negated, standardised losses):

    .. math::

        \log \mathrm{EI}(x) = \log h\!\left(\frac{\mu(x) - f^*}{\sigma(x)}\right) + \log\sigma(x),
        \qquad h(z) = \varphi(z) + z\,\Phi(z),

    with :math:`\log h` evaluated on three numerically stable branches, so that the acquisition
    keeps a useful gradient far from the incumbent where EI itself underflows to 0; or the
    **upper confidence bound** :math:`\mu(x) + \sqrt{\beta}\,\sigma(x)` (Srinivas et al. 2010);
    or the log **probability of improvement** :math:`\log\Phi((\mu(x) - f^* - \xi)/\sigma(x))`.

    Two alternatives choose differently. **Thompson sampling** (``acquisition="ts"``, TuRBO's
    own rule) maximises one function :math:`\tilde f` drawn from the posterior, sampled as a
    function by random Fourier features and Matheron's update (:mod:`thompson`), so that its
    cost per candidate is linear and the ascent has its gradient; each point of a batch has its
    own sample. **GP-Hedge** (``acquisition="hedge"``, Hoffman et al. 2011) computes the
    nominee of log EI, log PI and UCB each round and proposes one of them, acquisition
    :math:`i` with probability :math:`\propto e^{\eta g_i}`, where the gain :math:`g_i` adds up
    the posterior mean at :math:`i`'s nominees once their round's values are told. On the
    benchmark functions both did worse than log EI after 50 trials (Thompson sampling:
    Rosenbrock4 10.4 and Ackley5 4.7 against 4.7 and 3.2; GP-Hedge comes to give log PI,
    whose nominee sits next to the incumbent where the mean is high, nearly every round, and
    stalls; ``benchmarks/bench_search_regret.py``, ``docs/search.md``), so log EI stays the
    default.

    The acquisition is maximised in a **trust region** (TuRBO, Eriksson et al. 2019,
    :mod:`trust_region`): the box around the best observation :math:`x^*` with sides

    .. math::

        L_j = L\, \ell_j \Big/ \Big(\prod_k \ell_k\Big)^{1/d}

    (:math:`\ell` the fitted length scales), clipped to the cube; :math:`L` starts at 0.8,
    doubles (up to 1.6) after three improving rounds in a row and halves after three trials
    without improvement, and restarts at 0.8 below :math:`2^{-7}`. Global log EI spends many of
    a few tens of trials where the uncertainty is largest, in the corners of the cube; inside
    the region it refines the incumbent, which on the benchmark functions lowered the median
    regret after 50 trials by one to three orders of magnitude (Branin, Hartmann6, Rosenbrock4;
    ``benchmarks/bench_search_regret.py``). The ascent's steps are fractions of the region's
    sides. ``trust_region=False`` maximises over the whole
    cube.
    A batch of ``k`` points (``ask(k)``) is chosen greedily, each chosen point entering the GP
    with its posterior mean as a fantasy value (Kriging believer, Ginsbourger et al. 2010);
    configurations asked for but not yet told are fantasised the same way. With
    ``batch="qlogei"`` the batch is then improved jointly: its value is the expected
    improvement of its best point under the joint posterior of the ``k`` points,

    .. math::

        \mathrm{qEI}(x_{1..k}) = \mathbb E\left[\max\left(\max_j f(x_j) - f^*,
        0\right)\right],

    estimated with 128 fixed quasi-random normal samples per proposal, both maxima smoothed
    and the whole in log space (qLogEI, Ament et al. 2023; :mod:`qlogei`), and gradient
    ascent moves all :math:`k \times d` coordinates at once inside the trust region, from
    the believer's batch and random subsets of the points its rounds found; the batch of
    largest qLogEI is proposed. ``ask(1)`` is the same under both rules (qLogEI of one
    point is log EI, which has a closed form). On the benchmark functions in batches of 4
    it ended lower than the believer on Branin but higher on Hartmann6, Rosenbrock4 and
    Ackley5 (seeds 0-9 and 10-19, ``docs/search.md``), so the believer stays the default; a
    batch costs about twice the believer's time.

    Integer and categorical parameters: candidates are rounded to valid encodings (an integer's
    cell centre, a one-hot block) before they are scored, gradient ascent moves only the float
    and integer coordinates (integers are rounded again afterwards), and a configuration that
    was already evaluated, is pending or was just chosen is never proposed again.

    Failed trials (NaN, inf, exceptions) enter the surrogate with the worst value observed, so
    the search steers away from them without breaking.

    Args:
      space: a :class:`Space` or a dict of parameters.
      seed: the random seed (initial design, candidates, restarts): the same seed and the same
        told values give the same proposals.
      acquisition: ``"logei"`` (default), ``"ucb"``, ``"logpi"``, ``"ts"`` (Thompson sampling)
        or ``"hedge"`` (GP-Hedge over log EI, log PI and UCB, learning rate
        :attr:`hedge_eta`).
      batch: how ``ask(k)`` picks ``k > 1`` points: ``"believer"`` (Kriging believer, the
        default) or ``"qlogei"`` (the believer's batch improved jointly by Monte-Carlo
        qLogEI; needs ``acquisition="logei"``).
      initial: the number of scrambled Sobol points before the GP takes over (default
        ``min(max(dim + 1, 5), 10)``). Proposals stay quasi-random until that many trials have
        succeeded.
      beta: the UCB exploration weight :math:`\beta`.
      candidates: the number of scrambled Sobol candidates scored per proposal (a power of
        two, default 512), besides ``candidates // 4`` perturbations of the best observations.
      restarts: the number of best candidates refined by gradient ascent.
      warp: the output warping (:mod:`warping`): ``"box-cox"`` (default: Yeo-Johnson of the
        standardised losses, or Box-Cox of positive losses when likelier, which can take the
        logarithm of losses spanning orders of magnitude), ``"power"`` (Yeo-Johnson only),
        ``"auto"`` (per fit, the warping among the standardised losses, Yeo-Johnson and two
        shifted logs (:func:`warping.candidates`) whose GP marginal likelihood plus the
        warping's log Jacobian is the largest: one fit per candidate, vmapped) or ``None``
        (standardised only).
      trust_region: maximise the acquisition in the trust region around the best point
        (default) rather than over the whole cube.
      lengthscale_floor: with a trust region, fit length scales of at least this multiple of
        its base side :math:`L` (default 0: no floor beyond :math:`10^{-3}`). Variation at a
        scale below the floor, such as Ackley's ripples while the region is large, is then
        explained as noise and the surrogate follows the trend beneath it; as the region
        shrinks the floor falls and the ripples can be resolved. With 0.4 the median regret
        after 50 trials moved from 4.7 to 3.2 on Rosenbrock4 (seeds 0-9) but not on seeds
        10-19 (3.3 to 3.9), and stayed near 3 on Ackley5; larger floors reach Ackley's funnel
        more often (9 of 10 seeds with 1.0) without ending lower in it.
      floor_decay: with a length-scale floor :math:`c`, how fast it fades as the region's
        side :math:`L` shrinks: length scales of at least :math:`c\,(L / 0.8)^p\,L`
        (:func:`trust_region.floor`; default 0, a fixed fraction of the side). The aim is to
        smooth the ripples away while the region is large and to resolve them once it has
        closed in; with :math:`c = 1, p = 1`, Ackley5 reached its funnel on 8 seeds of 10 but
        the median regret after 50 trials stayed near 3 (2.86, 3.02 and 2.75 on seeds 0-9,
        10-19 and 20-29, against 3.17, 2.94 and 3.16 by default) and Rosenbrock4's rose (3.34,
        12.7 and 5.37 against 4.7, 3.3 and 3.91).
      local_side: with a trust region, once its side is at most this (default 0: never),
        propose from a *local* GP: one fitted, from the prior, to the observations in the box of
        :attr:`local_factor` (2) times the region's sides around the incumbent only, in that
        box's coordinates (so that the length-scale prior is relative to the box), its targets
        standardised again and its length scales at least :attr:`local_floor` (0.2) of the box;
        the acquisition is maximised in the region as before. The fit of all the data still
        shapes the region and is kept for the next warm start; a proposal of the local phase
        costs one full fit more. With ``lengthscale_floor=1, floor_decay=1, local_side=0.1``
        the median regret of Ackley5 after 50 trials was 1.96, 2.89 and 2.90 on seeds 0-9,
        10-19 and 20-29 (3.17, 2.94 and 3.16 by default) and that of Rosenbrock4 3.06, 5.19 and
        5.13 (4.7, 3.3 and 3.91): the gain on seeds 0-9 did not hold on other seeds, so it is not
        the default.

    Example::

        tuner = search.Bayes(space, seed=0)
        for _ in range(12):
            configs = tuner.ask(4)
            tuner.tell(configs, [objective(c) for c in configs])

    References:
      S. Ament, S. Daulton, D. Eriksson, M. Balandat & E. Bakshy, *Unexpected Improvements to
      Expected Improvement for Bayesian Optimization*, NeurIPS 2023 (log EI; qLogEI).
      J. T. Wilson, F. Hutter & M. P. Deisenroth, *Maximizing Acquisition Functions for
      Bayesian Optimization*, NeurIPS 2018 (Monte-Carlo batch acquisitions optimised jointly).
      D. Eriksson, M. Pearce, J. R. Gardner, R. Turner & M. Poloczek, *Scalable Global
      Optimization via Local Bayesian Optimization*, NeurIPS 2019.
      C. Hvarfner, E. O. Hellsten & L. Nardi, *Vanilla Bayesian Optimization Performs Great in
      High Dimensions*, ICML 2024.
      M. Hoffman, E. Brochu & N. de Freitas, *Portfolio Allocation for Bayesian
      Optimization*, UAI 2011.
      J. T. Wilson, V. Borovitskiy, A. Terenin, P. Mostowsky & M. P. Deisenroth, *Efficiently
      Sampling Functions from Gaussian Process Posteriors*, ICML 2020.
      D. Ginsbourger, R. Le Riche & L. Carraro, *Kriging is well-suited to parallelize
      optimization*, in Computational Intelligence in Expensive Optimization Problems, 2010.
      J. Snoek, H. Larochelle & R. P. Adams, *Practical Bayesian Optimization of Machine
      Learning Algorithms*, NeurIPS 2012.
    """

    #: (rprop steps, initial step) of a full hyperparameter fit and of a warm-started one.
    full_fit = (60, 0.1)
    warm_fit = (12, 0.02)
    #: A full fit (from the prior's mode and draws from the prior, besides the last fit)
    #: every this many fits; the others are warm-started from the last fit.
    refit_every = 8
    #: Gradient-ascent steps and initial step of the acquisition maximisation.
    ascent = (50, 0.02)
    #: GP-Hedge's learning rate :math:`\eta` (gains are in standardised, warped units).
    hedge_eta = 1.0
    #: The local phase (``local_side``): the box of its observations, in multiples of the
    #: trust region's sides, and the floor of its length scales, in units of that box.
    local_factor = 2.0
    local_floor = 0.2

    def __init__(self, space: Space | Mapping[str, Any], *, seed: int = 0,
                 acquisition: str = "logei", batch: str = "believer",
                 initial: int | None = None, beta: float = 2.0, candidates: int = 512,
                 restarts: int = 8, warp: str | None = "box-cox", trust_region: bool = True,
                 lengthscale_floor: float = 0.0, floor_decay: float = 0.0,
                 local_side: float = 0.0):
        super().__init__(space, seed=seed)
        if acquisition not in _ACQUISITIONS:
            raise ValueError(f"Bayes: acquisition must be one of {', '.join(_ACQUISITIONS)}, got "
                             f"{acquisition!r}")
        if batch not in _BATCH_KINDS:
            raise ValueError(f"Bayes: batch must be one of {', '.join(_BATCH_KINDS)}, got "
                             f"{batch!r}")
        if batch == "qlogei" and acquisition != "logei":
            raise ValueError(f"Bayes: batch='qlogei' needs acquisition='logei', got "
                             f"{acquisition!r}")
        dim = self.space.dim
        self.initial = (min(max(dim + 1, 5), 10) if initial is None
                        else check_count(initial, "initial", "Bayes"))
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
            raise ValueError(f"Bayes: beta must be a number >= 0, got {beta!r}")
        candidates = check_count(candidates, "candidates", "Bayes", minimum=16)
        if candidates & (candidates - 1):
            raise ValueError(f"Bayes: candidates must be a power of two (Sobol points are "
                             f"balanced at powers of two), got {candidates}")
        self.restarts = check_count(restarts, "restarts", "Bayes")
        self.acquisition, self.batch, self.beta = acquisition, batch, float(beta)
        self.candidates = candidates
        self._local = max(candidates // 4, self.restarts)
        self._design_drawn = 0
        self._design = self._design_engine()
        if warp not in _WARPS:
            raise ValueError(f"Bayes: warp must be one of {', '.join(map(str, _WARPS))}, got "
                             f"{warp!r}")
        self.warp = warp
        if not isinstance(trust_region, bool):
            raise ValueError(f"Bayes: trust_region must be True or False, got {trust_region!r}")
        self.trust_region = trust_region
        if not (isinstance(lengthscale_floor, (int, float)) and 0 <= lengthscale_floor <= 10):
            raise ValueError(f"Bayes: lengthscale_floor must be a number in [0, 10], got "
                             f"{lengthscale_floor!r}")
        self.lengthscale_floor = float(lengthscale_floor)
        if not (isinstance(floor_decay, (int, float)) and 0 <= floor_decay <= 10):
            raise ValueError(f"Bayes: floor_decay must be a number in [0, 10], got "
                             f"{floor_decay!r}")
        self.floor_decay = float(floor_decay)
        if not (isinstance(local_side, (int, float)) and 0 <= local_side <= _MAX_SIDE):
            raise ValueError(f"Bayes: local_side must be a number in [0, "
                             f"{_MAX_SIDE}], got {local_side!r}")
        self.local_side = float(local_side)
        self._encoded: list[np.ndarray] = []
        # GP-Hedge: the gains of the portfolio and the nominees of the last proposal.
        self._hedge_gains = np.zeros(len(acq.PORTFOLIO))
        self._hedge_nominees: list[np.ndarray] = []
        self._params: gp.Params | None = None  # the last fit (float64 NumPy arrays)
        self._fit_capacity = 0
        self._fits = 0
        groups = self.space.groups
        self._free = np.zeros(dim, bool)
        for g in groups:
            if g.kind in ("float", "int"):
                self._free[g.slice] = True
        self._conditional = any(p.when for p in self.space.params.values())
        self._exact = not self._conditional and all(g.kind == "float" for g in groups)

    # -- the initial design ----------------------------------------------------------------

    def _design_engine(self):
        return qmc.Sobol(self.space.dim, scramble=True, rng=np.random.default_rng(self.seed))

    def _design_points(self, k: int) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            points = self._design.random(k)
        self._design_drawn += k
        return points

    def _design_configs(self, k: int, x: np.ndarray, pending: list) -> list[dict[str, Any]]:
        """``k`` design points, skipping configurations already taken (a discrete space has
        few); after a bounded number of draws, repeats are allowed."""
        taken = self._keys(np.concatenate([x, np.reshape(pending, (-1, self.space.dim))]))
        out: list[dict[str, Any]] = []
        for _ in range(8):
            for u in self._canonical(self._design_points(k - len(out))):
                key = tuple(np.round(u, 9))
                if key not in taken:
                    taken.add(key)
                    out.append(self.space.decode(u))
            if len(out) == k:
                return out
        return out + [self.space.decode(u) for u in self._design_points(k - len(out))]

    # -- encodings -------------------------------------------------------------------------

    def _canonical(self, u: np.ndarray) -> np.ndarray:
        """Points of the cube [m, dim] moved to the encodings of the configurations they
        decode to (integers at their cell centre, one-hot blocks, inactive parameters 0.5)."""
        u = np.clip(np.asarray(u, np.float64), 0.0, 1.0)
        if self._exact:
            return u
        if self._conditional:
            return np.stack([self.space.encode(self.space.decode(row)) for row in u])
        out = u.copy()
        for g in self.space.groups:
            p = self.space.params[g.name]
            block = u[:, g.slice]
            if isinstance(p, Categorical):
                out[:, g.slice] = np.eye(p.width)[np.argmax(block, axis=1)]
            elif isinstance(p, Int):
                values = [p.decode_value(row) for row in block]
                out[:, g.slice] = np.stack([p.encode_value(v) for v in values])
        return out

    @staticmethod
    def _keys(x: np.ndarray) -> set:
        return {tuple(np.round(row, 9)) for row in x}

    # -- proposals -------------------------------------------------------------------------

    def _propose(self, k: int) -> list[dict[str, Any]]:
        x, y, ok = self.observations()
        pending = [self.space.encode(c) for c in self.pending]
        if int(ok.sum()) < self.initial:
            return self._design_configs(k, x, pending)
        with jax.enable_x64(True), _SingleThreadedBlas():
            chosen = self._propose_gp(k, x, y, ok, pending)
        return [self.space.decode(u) for u in chosen]

    def observations(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Encoding every configuration again at every proposal costs more than the GP: keep
        # the encodings of the trials told so far (the table only grows).
        n = len(self._trials)
        if len(self._encoded) > n:
            self._encoded = []
        if len(self._encoded) < n:
            self._encoded.extend(self.space.encode(t.config) for t in self._trials[
                len(self._encoded):])
        x = np.array(self._encoded, np.float64).reshape(n, self.space.dim)
        y = np.array([np.nan if t.value is None else t.value for t in self._trials], np.float64)
        ok = np.array([t.ok for t in self._trials], bool)
        return x, y, ok

    def _targets(self, y: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the GP models: the losses, failed trials at the worst successful value,
        warped (:mod:`warping`), standardised and negated (the surrogate maximises).

        Returns ``(targets, log_jacobians)`` [w, n] and [w]: one row per candidate warping
        (three with ``warp="auto"``, else one)."""
        y = np.where(ok, y, np.max(y[ok]))
        if self.warp == "auto":
            z, jac = warping.candidates(y)
            return -z, jac
        if self.warp is not None:
            z, _ = warping.power_warp(y, try_box_cox=self.warp == "box-cox")
        else:
            z = warping.standardize(y)
        return -z[None], np.zeros(1)

    def _propose_gp(self, k, x, y, ok, pending) -> list[np.ndarray]:
        dim = self.space.dim
        fs, log_jacobians = self._targets(y, ok)
        warps, n = fs.shape
        capacity = gp.capacity_for(n + len(pending) + k - 1, MIN_CAPACITY)
        data_x = np.zeros((capacity, dim))
        data_fs = np.zeros((warps, capacity))
        real = np.zeros(capacity, bool)
        data_x[:n], data_fs[:, :n], real[:n] = x, fs, True
        real_dev = jnp.asarray(real)
        rounds = np.array([t.round for t in self._trials])
        side = trust_region.length(np.where(ok, y, np.nan), self.initial, rounds)
        fits, log_posteriors = self._fit(gp.Data(jnp.asarray(data_x), jnp.asarray(data_fs),
                                                 real_dev), capacity, side)
        # The likeliest warping: each fit's log posterior is a density of its warped values,
        # plus the warping's log Jacobian a density of the losses themselves.
        w = int(np.argmax(np.asarray(log_posteriors) + log_jacobians))
        params = jax.tree.map(lambda a: a[w], fits)
        f = fs[w]
        y_dev = jnp.asarray(data_fs[w])
        free = jnp.asarray(self._free)
        beta = jnp.asarray(self.beta, jnp.float64)
        lo, hi = (self._region(x, f, np.asarray(params.log_lengthscale), side)
                  if self.trust_region else (np.zeros(dim), np.ones(dim)))
        pools = self._candidates(x, f, lo, hi)
        if self.acquisition == "hedge":
            self._hedge_gain(params, data_x, y_dev, real_dev)
        # The local phase: the GP of the observations near the incumbent only, in the
        # coordinates of the box they lie in (the proposals are mapped back).
        shift, scale = np.zeros(dim), np.ones(dim)
        local = (self._local_box(x, f, np.asarray(params.log_lengthscale), side)
                 if self.trust_region and side <= self.local_side else None)
        if local is not None:
            real[:n], shift, scale = local
            params, y_dev = self._local_fit(data_x, f, real, shift, scale)
            real_dev = jnp.asarray(real)
        candidates = tuple(jnp.asarray((c - shift) / scale) for c in pools)
        lo, hi = (lo - shift) / scale, (hi - shift) / scale
        # Both pools (Sobol points, perturbations of the best points) ascend in the region.
        lower_dev, upper_dev = jnp.asarray(np.stack([lo, lo])), jnp.asarray(np.stack([hi, hi]))
        taken = self._keys(x)
        rows = n
        chosen: list[np.ndarray] = []
        steps, lr = self.ascent
        for point in pending:
            data_x[rows] = point
            rows += 1
        taken |= self._keys(np.reshape(pending, (-1, dim)))
        before, found = set(taken), []
        for _ in range(k):
            mask = real.copy()  # the observations the GP has, and the pending or chosen rows
            mask[n:rows] = True
            key = (self.rng.integers(2 ** 32, size=2, dtype=np.uint32) if self.acquisition == "ts"
                   else np.zeros(2, np.uint32))
            xs, _, _ = _acquire_jit(
                params, jnp.asarray((data_x - shift) / scale), y_dev, real_dev,
                jnp.asarray(mask), candidates,
                lower_dev, upper_dev, free, beta, jnp.asarray(key), kind=self.acquisition,
                starts=self.restarts, steps=steps, learning_rate=lr)
            xs = np.asarray(xs) * scale + shift
            if self.acquisition == "hedge":
                nominees = np.stack([self._pick(a, taken) for a in xs])
                self._hedge_nominees.append(nominees)
                p = acq.hedge_probabilities(self._hedge_gains, self.hedge_eta)
                point = nominees[min(int(np.searchsorted(np.cumsum(p), self.rng.random())),
                                     len(p) - 1)]
            else:
                point = self._pick(xs, taken)
                found.append(xs)
            chosen.append(point)
            taken |= self._keys(point[None])
            if rows < capacity:
                data_x[rows] = point
                rows += 1
        if self.batch == "qlogei" and k > 1:
            mask = real.copy()  # the observations the GP has, and the pending rows
            mask[n:n + len(pending)] = True
            batches = qlogei.starts(self.rng, np.clip((np.stack(chosen) - shift) / scale, lo, hi),
                                    (np.concatenate(found) - shift) / scale, self.restarts)
            base = qlogei.base_samples(self.rng, k)
            xs, _ = _joint_batch_jit(params, jnp.asarray((data_x - shift) / scale), y_dev,
                                     real_dev, jnp.asarray(mask), jnp.asarray(batches),
                                     jnp.asarray(base), jnp.asarray(lo), jnp.asarray(hi), free,
                                     steps, lr)
            believer, chosen, taken = chosen, [], before
            for point, fallback in zip(np.asarray(xs)[0] * scale + shift, believer, strict=True):
                chosen.append(self._pick(np.stack([point, fallback]), taken))
                taken |= self._keys(chosen[-1][None])
        return chosen

    def _hedge_gain(self, params, data_x, y_dev, real_dev) -> None:
        """GP-Hedge: add to each acquisition's gain the posterior mean (given every value told)
        at its nominees of the proposals since the last credit, and forget them. While some
        proposals are still pending, the credit waits for their values."""
        if self._hedge_nominees and not self.pending:
            nominees = np.concatenate(self._hedge_nominees)  # [k * portfolio, d]
            means = np.asarray(_posterior_mean_jit(params, jnp.asarray(data_x), y_dev, real_dev,
                                                   jnp.asarray(nominees)))
            self._hedge_gains = self._hedge_gains + means.reshape(-1, len(acq.PORTFOLIO)).sum(0)
            self._hedge_nominees = []

    def _pick(self, xs: np.ndarray, taken: set) -> np.ndarray:
        """The first of the ranked points that decodes to a configuration not yet taken."""
        for point in self._canonical(xs):
            if tuple(np.round(point, 9)) not in taken:
                return point
        for _ in range(100):  # every refined point repeats a configuration: explore instead
            point = self._canonical(self.rng.random((1, self.space.dim)))[0]
            if tuple(np.round(point, 9)) not in taken:
                return point
        return point

    def _sobol(self, m: int, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """``m`` scrambled Sobol points of the box ``[lower, upper]``, canonical."""
        # A fresh generator seeded from self.rng: qmc reads more than the state of a generator
        # it is given (its seed sequence), which a restored state does not reproduce.
        engine = qmc.Sobol(self.space.dim, scramble=True,
                           rng=np.random.default_rng(self.rng.integers(2 ** 63)))
        return self._canonical(lower + (upper - lower) * engine.random(m))

    def _region(self, x: np.ndarray, f: np.ndarray, log_lengthscale: np.ndarray,
                side: float) -> tuple[np.ndarray, np.ndarray]:
        """The trust region (:mod:`trust_region`) around the best observation ``x[argmax f]``,
        its base side ``side`` replayed from the told values. Only the float and integer
        coordinates are bounded: a categorical block keeps the whole cube."""
        lo, hi = trust_region.box(x[int(np.argmax(f))], log_lengthscale, side)
        return np.where(self._free, lo, 0.0), np.where(self._free, hi, 1.0)

    def _candidates(self, x: np.ndarray, f: np.ndarray, lower: np.ndarray,
                    upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scrambled Sobol points of the box ``[lower, upper]``, and Gaussian perturbations of
        the best observations clipped to it."""
        dim = self.space.dim
        sobol = self._sobol(self.candidates, lower, upper)
        top = np.argsort(-f)[:max(1, min(10, len(f) // 4))]
        centres = x[top[self.rng.integers(len(top), size=self._local)]]
        scales = np.exp(self.rng.uniform(np.log(1e-4), np.log(0.2), size=(self._local, 1)))
        local = centres + scales * self.rng.standard_normal((self._local, dim)) * self._free
        return sobol, self._canonical(np.clip(local, lower, upper))

    def _fit(self, data: gp.Data, capacity: int, side: float) -> tuple[gp.Params, jax.Array]:
        """The GP fitted to each row of ``data.y`` (one per warping): ``(fits, log
        posteriors)``, stacked on a leading axis; ``side`` is the trust region's base side."""
        warps = data.y.shape[0]
        last = self._params
        if last is not None and np.shape(last.log_signal) != (warps,):
            last = None  # saved by a tuner with another number of warpings
        if last is None or capacity != self._fit_capacity or self._fits % self.refit_every == 0:
            schedule = self.full_fit
            starts = self._full_starts(warps, last)
            self._fit_capacity = capacity
        else:
            # One short run from the last fit: the posterior moves little when one observation
            # is added, and a single start costs a quarter of the full fit's four.
            schedule = self.warm_fit
            starts = jax.tree.map(lambda a: jnp.asarray(a)[:, None], last)
        # Length scales below a fraction of the region's side: features the trials in the
        # region cannot resolve (ripples) are left to the noise.
        floor = gp.LOG_LENGTHSCALE_RANGE[0]
        if self.trust_region and self.lengthscale_floor > 0:
            floor = max(floor, math.log(trust_region.floor(side, self.lengthscale_floor,
                                                           self.floor_decay)))
        params, values = _run_fit(data, starts, schedule, floor)
        self._fits += 1
        self._params = jax.tree.map(np.asarray, params)
        return params, values

    def _local_box(self, x: np.ndarray, f: np.ndarray, log_lengthscale: np.ndarray,
                   side: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The local phase's data: ``(inside, lower, sides)``, the observations [n] in the box
        of :attr:`local_factor` times the region's sides around the incumbent, and that box; or
        ``None`` when it holds fewer than ``dim + 2`` observations."""
        lo, hi = self._region(x, f, log_lengthscale, self.local_factor * side)
        inside = np.all((x >= lo) & (x <= hi), axis=1)
        if int(inside.sum()) < self.space.dim + 2:
            return None
        return inside, lo, np.maximum(hi - lo, 1e-12)

    def _local_fit(self, data_x: np.ndarray, f: np.ndarray, real: np.ndarray,
                   shift: np.ndarray, scale: np.ndarray) -> tuple[gp.Params, jax.Array]:
        """The GP of the ``real`` rows of ``data_x`` (targets ``f``, standardised again among
        them) in the box's coordinates, fitted from the prior (the fit of the whole data is
        kept for the next warm start). Returns ``(params, targets)``."""
        capacity = data_x.shape[0]
        z = f[real[:len(f)]]
        x_local = np.where(real[:, None], (data_x - shift) / scale, 0.0)
        y_local = np.zeros(capacity)
        y_local[real] = (z - z.mean()) / max(float(z.std()), 1e-12)
        params, _ = _run_fit(gp.Data(jnp.asarray(x_local), jnp.asarray(y_local[None]),
                                     jnp.asarray(real)),
                             self._full_starts(1), self.full_fit, math.log(self.local_floor))
        return jax.tree.map(lambda a: a[0], params), jnp.asarray(y_local)

    def _full_starts(self, warps: int, first: gp.Params | None = None) -> gp.Params:
        """The starts of a full fit, stacked [warps, FIT_STARTS, ...]: ``first`` [warps, ...]
        (default: the prior's mode), then draws from the prior."""
        dim = self.space.dim
        stack = lambda a: jnp.broadcast_to(jnp.asarray(a)[None], (warps, *np.shape(a)))  # noqa: E731
        first = jax.tree.map(stack, gp.prior_params(dim)) if first is None else first
        others = jax.tree.map(stack, gp.sample_prior_params(self.rng, dim, FIT_STARTS - 1))
        return jax.tree.map(lambda a, b: jnp.concatenate([jnp.asarray(a)[:, None], b], 1),
                            first, others)

    # -- saving and resuming ---------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        params = None if self._params is None else {
            k: np.asarray(v).tolist() for k, v in self._params._asdict().items()}
        return {**super().state_dict(), "design_drawn": self._design_drawn,
                "gp_params": params, "fit_capacity": self._fit_capacity, "fits": self._fits,
                "hedge_gains": self._hedge_gains.tolist(),
                "hedge_nominees": [a.tolist() for a in self._hedge_nominees]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self._design_drawn = int(state["design_drawn"])
        self._design = self._design_engine()
        self._design.fast_forward(self._design_drawn)
        params = state.get("gp_params")
        self._params = None if params is None else gp.Params(
            **{k: cast(Any, np.asarray(v, np.float64)) for k, v in params.items()})
        self._fit_capacity = int(state.get("fit_capacity", 0))
        self._fits = int(state.get("fits", 0))
        self._hedge_gains = np.asarray(state.get("hedge_gains", np.zeros(len(acq.PORTFOLIO))),
                                       np.float64)
        self._hedge_nominees = [np.asarray(a, np.float64).reshape(len(acq.PORTFOLIO), -1)
                                for a in state.get("hedge_nominees", [])]
