"""Learning curves of the alignment data: how many paired voices a method needs to keep a share of the gain.

The stage-05 ablation (:mod:`nessa_lib.evaluation.ablation`) shows the share of the symmetric gain a method
recovers at a few sizes of the fit data. A team planning an upgrade needs the next sentence: "to keep 80 % of the
gain, pair N voices". :func:`learning_curve` measures the share on nested subsets of voices (doubling sizes, the
ablation's nested order), with 95 % speaker-bootstrap intervals, and fits a saturating curve to it
(:func:`fit_saturating`) whose bootstrap band and extrapolation (:func:`voices_for_share`) answer that question or
say that the curve does not reach the target.

The share of the gain recovered is the study's (:func:`nessa_lib.evaluation.tables.gain_recovered`):
``(EER_X/X - EER_aligned) / (EER_X/X - EER_Y/Y)``, 0 = no better than keeping the old model X, 1 = as good as
re-enrolling everyone with the new model Y. All figures are fractions.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

#: Fewest sizes a curve is fitted to: three parameters and at least one degree of freedom left.
MIN_SIZES = 4
#: Bound of a fitted curve's ceiling (see :func:`fit_saturating`).
A_MAX = 1.5
#: Fewest held-out voices whose trials give an EER with a usable interval.
MIN_EVAL_VOICES = 20
#: The largest size is dropped from the doubling grid when all voices are less than this many times it (the
#: all-voices point would nearly repeat it).
_FULL_GAP = 1.25


# --------------------------------------------------------------------------------------------
# The curve: share(n) = a - b * n^(-c)
# --------------------------------------------------------------------------------------------


@dataclass
class SaturatingCurve:
    """``share(n) = a - b * n ** (-c)``: rises with ``n`` (``b >= 0``) towards its ceiling ``a``.

    Attributes
    ----------
    a, b, c : float
        Ceiling, scale and rate (``c > 0``; the smaller, the slower the approach to ``a``).
    sse : float
        Sum of squared residuals of the least-squares fit.
    """

    a: float
    b: float
    c: float
    sse: float = float("nan")

    def __call__(self, n):
        """The curve at ``n`` voices (array or scalar)."""
        n = np.asarray(n, dtype=float)
        out = self.a - self.b * n ** (-self.c)
        return float(out) if out.ndim == 0 else out


def _ab_given_c(n: np.ndarray, s: np.ndarray, w: np.ndarray, c: float, a_max: float) -> tuple[float, float, float]:
    """Weighted least-squares ``(a, b, sse)`` for a fixed rate ``c`` (linear in a, b), with ``b >= 0`` (a falling
    curve becomes flat) and ``a <= a_max``."""
    u = n ** (-c)
    sw = np.sqrt(w)
    design = np.column_stack([np.ones_like(u), -u]) * sw[:, None]
    (a, b), *_ = np.linalg.lstsq(design, s * sw, rcond=None)
    if b < 0:  # a falling curve: the best rising one is flat
        a, b = float(np.average(s, weights=w)), 0.0
    if a > a_max:  # the ceiling at its bound: the best scale for it
        a = a_max
        b = max(0.0, float(np.sum(w * u * (a_max - s)) / np.sum(w * u * u)))
    r = s - (a - b * u)
    return float(a), float(b), float(np.sum(w * r * r))


def fit_saturating(n_voices, share, *, weights=None, c_bounds=(0.01, 3.0), a_max: float = A_MAX) -> SaturatingCurve:
    """Least-squares fit of ``share(n) = a - b * n^(-c)`` (``b >= 0``, ``c`` within ``c_bounds``, ``a <= a_max``).

    Why this form and not ``a * (1 - exp(-n / tau))``. Learning curves of fitted models follow an inverse power
    law in the amount of data over wide ranges (Cortes et al., NIPS 1993, "Learning curves: asymptotic values and
    rate of convergence"; Hestness et al. 2017, "Deep learning scaling is predictable, empirically"), and the
    study's ablation grows by a similar number of points at each *doubling* of the voices (M3, xvector -> ecapa:
    -11, 19, 41, 60 % at 100 ... 800 voices), the signature of a slow power law (linear in ``log n`` while
    ``c`` is small). An exponential saturates within a few ``tau``: fitted to doubling sizes it declares the
    curve flat one doubling after the data and extrapolates too optimistically or not at all; it also forces
    ``share(0) = 0``, while a method can do worse than keeping X on few voices (negative shares). The power law's
    extra parameter ``b`` lets the curve start anywhere.

    The ceiling is bounded (``a_max``, default 1.5: a share above 1 means the migrated system beats re-enrolling
    with the new model, which happens by a little at most); without a bound, data still rising linearly in
    ``log n`` fit a ceiling of hundreds with a tiny ``c``, a curve that says nothing about where it levels off.

    The fit is exact in ``a, b`` given ``c`` (weighted linear least squares), so ``c`` is found by a grid over
    ``c_bounds`` (log-spaced) refined by a bounded scalar search: no starting values to guess.

    Parameters
    ----------
    n_voices : array_like of float
        Fit-data sizes (voices), positive; at least three distinct values.
    share : array_like of float
        The share of the gain at each size.
    weights : array_like of float, optional
        Weight of each point, e.g. ``1 / variance`` of its bootstrap rounds (:func:`learning_curve` does so: the
        small fits' shares are far noisier). Default equal weights.

    Returns
    -------
    SaturatingCurve

    Examples
    --------
    >>> n = np.array([25.0, 50, 100, 200, 400])
    >>> f = fit_saturating(n, 0.9 - 3.0 * n ** -0.5)
    >>> round(f.a, 6), round(f.b, 6), round(f.c, 6)
    (0.9, 3.0, 0.5)
    """
    from scipy.optimize import minimize_scalar

    n = np.asarray(n_voices, dtype=float)
    s = np.asarray(share, dtype=float)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=float)
    if n.shape != s.shape or n.ndim != 1 or w.shape != s.shape:
        raise ValueError(f"n_voices, share and weights must be 1-D of one length, got {n.shape}, {s.shape}, {w.shape}")
    if not (np.isfinite(n).all() and np.isfinite(s).all()) or (n <= 0).any():
        raise ValueError("n_voices must be positive and the shares finite")
    if not (np.isfinite(w).all() and (w > 0).all()):
        raise ValueError("weights must be positive and finite")
    if len(np.unique(n)) < 3:
        raise ValueError(f"a saturating curve (3 parameters) needs at least 3 distinct sizes, got {len(np.unique(n))}")
    lo, hi = (float(v) for v in c_bounds)
    a_max = float(a_max)
    grid = np.geomspace(lo, hi, 200)
    sse = np.array([_ab_given_c(n, s, w, c, a_max)[2] for c in grid])
    i = int(np.argmin(sse))
    left, right = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    best = minimize_scalar(lambda c: _ab_given_c(n, s, w, c, a_max)[2], bounds=(left, right), method="bounded",
                           options={"xatol": 1e-10})
    c = float(best.x) if best.fun <= sse[i] else float(grid[i])
    a, b, err = _ab_given_c(n, s, w, c, a_max)
    return SaturatingCurve(a, b, c, err)


def voices_for_share(curve: SaturatingCurve, target: float) -> float:
    """Voices at which ``curve`` reaches ``target``; ``inf`` when it never does (its ceiling ``a`` is at or below).

    Examples
    --------
    >>> f = SaturatingCurve(a=0.9, b=3.0, c=0.5)
    >>> round(voices_for_share(f, 0.6), 6), voices_for_share(f, 0.95)
    (100.0, inf)
    >>> voices_for_share(SaturatingCurve(0.5, 0.0, 1.0), 0.4)  # flat above the target: any size
    0.0
    """
    t = float(target)
    if curve.b <= 0:
        return 0.0 if curve.a >= t else math.inf
    if curve.a <= t:
        return math.inf
    return float((curve.b / (curve.a - t)) ** (1.0 / curve.c))


# --------------------------------------------------------------------------------------------
# Measuring the curve
# --------------------------------------------------------------------------------------------


def doubling_sizes(n_pool: int, start: int = 25) -> list[int]:
    """Nested fit sizes: ``start``, doubled while below ``n_pool``, then ``n_pool`` (all the fit voices).

    A doubling too close to ``n_pool`` (``n_pool`` < 1.25 times it) is dropped: the all-voices point replaces it.

    Examples
    --------
    >>> doubling_sizes(800), doubling_sizes(210), doubling_sizes(20)
    ([25, 50, 100, 200, 400, 800], [25, 50, 100, 210], [20])
    """
    n_pool, start = int(n_pool), int(start)
    if start < 2:
        raise ValueError(f"start must be at least 2 voices, got {start}")
    sizes, n = [], start
    while n < n_pool:
        sizes.append(n)
        n *= 2
    if sizes and n_pool < _FULL_GAP * sizes[-1]:
        sizes.pop()
    return sizes + [n_pool]


def voices_needed(*, start: int = 25, eval_voices: int = MIN_EVAL_VOICES) -> int:
    """Fewest voices a sample needs for a curve: ``MIN_SIZES`` doubling sizes from ``start`` plus the held-out ones.

    Examples
    --------
    >>> voices_needed(), voices_needed(start=5, eval_voices=10)
    (145, 35)
    """
    # Sizes start, 2 start, 4 start and an all-voices point at least 1.25 times the last doubling.
    return int(math.ceil(_FULL_GAP * start * 2 ** (MIN_SIZES - 2))) + int(eval_voices)


def default_eval_voices(n_voices: int) -> int:
    """Held-out voices when not given: 150 (the study's evaluation split) from 600 voices on, else a quarter.

    Examples
    --------
    >>> default_eval_voices(950), default_eval_voices(200)
    (150, 50)
    """
    return 150 if n_voices >= 600 else max(MIN_EVAL_VOICES, n_voices // 4)


@dataclass
class LearningCurve:
    """What :func:`learning_curve` measured and fitted.

    Attributes
    ----------
    table : DataFrame
        One row per (method, size): ``method``, ``n_voices``, ``n_pairs``, ``eer`` (``eer_lo``, ``eer_hi``),
        ``share`` (``share_lo``, ``share_hi``: the 95 % speaker-bootstrap interval), ``curve`` (the fitted
        curve at that size), ``fit_s``.
    baselines : dict
        ``eer_xx``, ``eer_yy`` and their intervals (``eer_xx_lo`` ...) on the held-out trials.
    curves : dict of str to SaturatingCurve
        The fit to each method's point estimates.
    rounds : dict of str to ndarray, shape (n_rounds, n_sizes)
        Each method's share per bootstrap round and size (the same resampled speakers for every size).
    round_curves : dict of str to list of SaturatingCurve
        The curve refitted on each round's shares (the band).
    targets : DataFrame
        One row per (method, target share): ``voices`` (the curve's extrapolation, ``inf`` = never),
        ``voices_lo``, ``voices_hi`` (95 % of the rounds' curves), ``reached`` (bool: the fitted curve reaches
        it), ``statement`` (a sentence).
    n_fit_voices, n_eval_voices : int
        The split.
    """

    table: pd.DataFrame
    baselines: dict
    curves: dict
    rounds: dict
    round_curves: dict
    targets: pd.DataFrame
    n_fit_voices: int
    n_eval_voices: int
    eval_speakers: np.ndarray = field(default_factory=lambda: np.array([]))

    def band(self, method: str, n, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise ``(lo, hi)`` of the rounds' curves of ``method`` at sizes ``n`` (the bootstrap band)."""
        return curve_band(self.round_curves[method], n, alpha)


def curve_band(round_curves, n, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise ``(lo, hi)`` of bootstrap curves at sizes ``n``: the ``100 (1 - alpha)`` % band.

    Examples
    --------
    >>> lo, hi = curve_band([SaturatingCurve(0.5, 1.0, 1.0), SaturatingCurve(0.7, 1.0, 1.0)], [10.0], alpha=0.0)
    >>> round(float(lo[0]), 6), round(float(hi[0]), 6)
    (0.4, 0.6)
    """
    n = np.atleast_1d(np.asarray(n, dtype=float))
    vals = np.array([c(n) for c in round_curves])
    return (np.percentile(vals, 100 * alpha / 2, axis=0), np.percentile(vals, 100 * (1 - alpha / 2), axis=0))


@dataclass
class CurveFit:
    """One measured learning curve, fitted: what :func:`fit_curve` returns.

    Attributes
    ----------
    curve : SaturatingCurve
        The fit to the point estimates.
    round_curves : list of SaturatingCurve
        The fit to each bootstrap round's shares (rounds without a share, where X/X and Y/Y tie, left out).
    targets : DataFrame
        One row per target share, as :attr:`LearningCurve.targets`.
    """

    curve: SaturatingCurve
    round_curves: list
    targets: pd.DataFrame


def fit_curve(n_voices, share, rounds, *, method: str, targets=(0.6, 0.8)) -> CurveFit:
    """Fit the saturating curve to measured shares, refit it on every bootstrap round, extrapolate the targets.

    Each size is weighted by ``1 / variance`` of its rounds (the small fits' shares are far noisier); the band
    and the interval of the voices needed for each target come from the rounds' curves.

    Parameters
    ----------
    n_voices, share : array_like, shape (n_sizes,)
        Fit sizes (voices) and the share of the gain measured at each (at least 3 distinct sizes).
    rounds : array_like, shape (n_rounds, n_sizes)
        The share per speaker-bootstrap round and size (the same resampled speakers for every size).
    method : str
        Name used in the target rows and their sentences.
    targets : sequence of float
        Shares to extrapolate the voices for.

    Returns
    -------
    CurveFit

    Examples
    --------
    >>> n = np.array([25.0, 50, 100, 200])
    >>> rng = np.random.default_rng(0)
    >>> rounds = 0.9 - 3.0 * n ** -0.5 + rng.normal(0, 0.02, (50, 4))
    >>> f = fit_curve(n, 0.9 - 3.0 * n ** -0.5, rounds, method="m", targets=[0.6])
    >>> round(f.curve.a, 3), len(f.round_curves), f.targets["voices"].round().tolist()
    (0.9, 50, [100.0])
    """
    n = np.asarray(n_voices, dtype=float)
    s = np.asarray(share, dtype=float)
    r = np.asarray(rounds, dtype=float)
    if r.ndim != 2 or r.shape[1] != len(n):
        raise ValueError(f"rounds must be (n_rounds, {len(n)} sizes), got {r.shape}")
    ok = np.isfinite(r).all(axis=1)  # a round where X/X and Y/Y tie has no share
    w = 1.0 / np.maximum(np.var(r[ok], axis=0), 1e-12) if ok.sum() > 1 else None
    curve = fit_saturating(n, s, weights=w)
    round_curves = [fit_saturating(n, rr, weights=w) for rr in r[ok]]
    rows = [_target_row(method, float(t), curve, round_curves, n.max()) for t in targets]
    return CurveFit(curve=curve, round_curves=round_curves, targets=pd.DataFrame(rows))


def split_voices(speakers, n_eval: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks ``(fit, held_out)`` of the rows: ``n_eval`` voices drawn with ``seed`` are held out.

    Examples
    --------
    >>> fit, held = split_voices(np.repeat(np.arange(5), 2), 2)
    >>> int(held.sum()), bool((fit ^ held).all())
    (4, True)
    """
    spk = np.asarray(speakers).astype(str)
    uniq = np.unique(spk)
    if not 0 < int(n_eval) < len(uniq):
        raise ValueError(f"n_eval must leave voices on both sides: 0 < {n_eval} < {len(uniq)}")
    rng = np.random.default_rng([int(seed), 25])
    held_voices = uniq[rng.permutation(len(uniq))[: int(n_eval)]]
    held = np.isin(spk, held_voices)
    return ~held, held


def learning_curve(x, y, speakers, *, methods=("nessa-m2", "nessa-m3"), n_eval: int | None = None,
                   start: int = 25, sizes=None, utts_per_speaker: int | None = None, targets=(0.6, 0.8),
                   k_enroll: int = 3, n_nontarget_per_profile: int = 200, n_rounds: int = 500, seed: int = 0,
                   hparams: dict | None = None, workers: int = 1, progress: bool = False) -> LearningCurve:
    """The share of the gain recovered against paired voices, its fitted curve and the voices needed for targets.

    1. Voices are split (seeded) into a fit pool and ``n_eval`` held-out voices; the held-out voices get
       enrollment and trial lists like the study's (:func:`nessa_lib.evaluation.ab.alignment_trials`: profiles of
       ``k_enroll`` utterances, every other utterance a target trial, ``n_nontarget_per_profile`` non-targets)
       and a speaker bootstrap (:class:`~nessa_lib.evaluation.bootstrap.SpeakerBootstrap`) shared by every
       system, so intervals of shares are paired across sizes and methods.
    2. Each method is fitted on nested subsets of the fit voices (the ablation's nested order,
       :func:`nessa_lib.evaluation.ablation._nested_order`: a smaller subset is inside a larger one; sizes
       :func:`doubling_sizes` from ``start`` unless given; optionally the first ``utts_per_speaker`` utterances
       of each voice), with ``seed``, and scored on the held-out trials (profiles migrated, as deployed).
    3. The share of the symmetric gain per size, with its interval; :func:`fit_saturating` on the point
       estimates, refitted on every bootstrap round's shares for the band and the interval of the voices
       needed for each target share (:func:`voices_for_share`).

    Parameters
    ----------
    x, y : array_like, shapes (n, d_x), (n, d_y)
        The same utterances embedded by the old model X (enrollment) and the new model Y (runtime).
    speakers : array_like, shape (n,)
        Speaker label of each utterance.
    methods : sequence of str
        Alignment methods (:func:`nessa_lib.align.fit`), default hyper-parameters unless ``hparams``.
    n_eval : int, optional
        Held-out voices (default :func:`default_eval_voices`).
    start : int
        Smallest fit size (voices).
    sizes : sequence of int, optional
        Fit sizes instead of the doubling grid (capped at the pool).
    utts_per_speaker : int, optional
        Utterances per fit voice (default all): the "few utterances per voice" curve.
    targets : sequence of float
        Shares to extrapolate the voices for.
    k_enroll, n_nontarget_per_profile : int
        The held-out lists.
    n_rounds, seed : int
        Bootstrap rounds; the seed of the split, the lists, the nested order, the fits and the bootstrap.
    hparams : dict, optional
        ``{method: {...}}`` overrides.
    workers : int
        Processes for the fits (:func:`nessa_lib.parallel.run_jobs`); results do not depend on it.
    progress : bool
        tqdm bar over the fits.

    Returns
    -------
    LearningCurve

    Raises
    ------
    ValueError
        Too few voices for ``MIN_SIZES`` sizes and the held-out set (says how many are needed); a new model Y
        that is not better than X on the held-out trials (no gain to share).

    Examples
    --------
    >>> from nessa_lib import toy
    >>> p = toy.make_paired_spaces(60, 4, noise_x=0.8, rng=np.random.default_rng(0))
    >>> lc = learning_curve(p.x, p.y, p.speakers, methods=["linear"], n_eval=20, start=5, n_rounds=20,
    ...                     n_nontarget_per_profile=10)
    >>> lc.table["n_voices"].tolist(), lc.n_eval_voices
    ([5, 10, 20, 40], 20)
    """
    from nessa_lib.evaluation import metrics
    from nessa_lib.evaluation.ab import alignment_trials
    from nessa_lib.evaluation.ablation import _nested_order
    from nessa_lib.evaluation.bootstrap import SpeakerBootstrap, interval
    from nessa_lib.evaluation.lists import score_lists
    from nessa_lib.evaluation.tables import (_fit_one, aligned_scores, check_hparams, gain_recovered,
                                             gain_recovered_rounds)
    from nessa_lib.parallel import run_jobs

    hparams = hparams or {}
    check_hparams(hparams)
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)
    spk = np.asarray(speakers).astype(str)
    if not (len(x) == len(y) == len(spk)):
        raise ValueError(f"x, y and speakers differ in length: {len(x)}, {len(y)}, {len(spk)}")
    n_voices = len(np.unique(spk))
    n_eval = default_eval_voices(n_voices) if n_eval is None else int(n_eval)
    need = voices_needed(start=start, eval_voices=max(n_eval, MIN_EVAL_VOICES))
    if sizes is None and n_voices < need:
        raise ValueError(f"{n_voices} voices are too few for a learning curve: it needs at least {need} "
                         f"({MIN_SIZES} fit sizes from {start} voices doubling, plus {max(n_eval, MIN_EVAL_VOICES)} "
                         "held-out voices)")
    fit_rows, held_rows = split_voices(spk, n_eval, seed)
    # 1. Held-out lists and their bootstrap.
    ids = np.array([f"u{i}" for i in range(len(spk))])
    xe, ye, ide, spe = x[held_rows], y[held_rows], ids[held_rows], spk[held_rows]
    enroll, trials = alignment_trials(spe, ide, k_enroll=k_enroll, n_nontarget_per_profile=n_nontarget_per_profile,
                                      rng=seed)
    if trials.empty or trials["label"].nunique() < 2:
        raise ValueError(f"the {n_eval} held-out voices give no target and non-target trials: each needs more than "
                         f"k_enroll={k_enroll} utterances")
    labels = trials["label"].to_numpy()
    boot = SpeakerBootstrap.from_lists(enroll, trials, dict(zip(ide, spe)), n_rounds=n_rounds, seed=seed)
    s_xx, s_yy = score_lists(xe, xe, ide, enroll, trials), score_lists(ye, ye, ide, enroll, trials)
    eer_xx, eer_yy = metrics.eer(s_xx, labels), metrics.eer(s_yy, labels)
    r_xx, r_yy = boot.metrics(s_xx)["eer"], boot.metrics(s_yy)["eer"]
    baselines = dict(eer_xx=eer_xx, eer_yy=eer_yy)
    baselines["eer_xx_lo"], baselines["eer_xx_hi"] = interval(r_xx)
    baselines["eer_yy_lo"], baselines["eer_yy_hi"] = interval(r_yy)
    if not eer_yy < eer_xx:
        raise ValueError(f"the new model is not better than the old one on the held-out voices (EER Y/Y "
                         f"{100 * eer_yy:.2f} % vs X/X {100 * eer_xx:.2f} %): there is no gain to recover")
    # 2. Nested fits.
    xf, yf, sf = x[fit_rows], y[fit_rows], spk[fit_rows]
    order, rows_of = _nested_order(sf, seed)
    n_pool = len(order)
    grid = doubling_sizes(n_pool, start) if sizes is None else sorted({min(int(s), n_pool) for s in sizes})
    if len(grid) < MIN_SIZES:
        raise ValueError(f"{len(grid)} fit sizes ({grid}) are too few for a learning curve: it needs {MIN_SIZES}")
    jobs, rows = [], []
    for method in methods:
        for n in grid:
            u = None if utts_per_speaker is None else int(utts_per_speaker)
            idx = np.sort(np.concatenate([rows_of[s][:u] for s in order[:n]]))
            rows.append(dict(method=method, n_voices=n, n_pairs=len(idx)))
            jobs.append((method, xf[idx], yf[idx], sf[idx], seed, dict(hparams.get(method, {}))))
    # Largest fits first, so the last job is a short one; results keep the grid's order.
    todo = sorted(range(len(jobs)), key=lambda i: -len(jobs[i][1]))
    done = dict(zip(todo, run_jobs(_fit_one, [jobs[i] for i in todo], workers=workers,
                                   progress="learning curve: fits" if progress else None)))
    rounds: dict = {m: [] for m in methods}
    for i, row in enumerate(rows):
        aligner, sec = done[i]
        s = aligned_scores(aligner, xe, ye, ide, enroll, trials)
        e = metrics.eer(s, labels)
        r = boot.metrics(s)["eer"]
        g = gain_recovered_rounds(r_xx, r_yy, r)
        rounds[row["method"]].append(g)
        row.update(eer=e, share=gain_recovered(eer_xx, eer_yy, e), fit_s=sec)
        row["eer_lo"], row["eer_hi"] = interval(r)
        row["share_lo"], row["share_hi"] = interval(g)
    table = pd.DataFrame(rows)
    # 3. Curves, bands and the voices needed.
    curves, round_curves, trows = {}, {}, []
    for method in methods:
        part = table[table["method"] == method]
        rounds[method] = np.column_stack(rounds[method])
        f = fit_curve(part["n_voices"].to_numpy(float), part["share"].to_numpy(), rounds[method], method=method,
                      targets=targets)
        curves[method], round_curves[method] = f.curve, f.round_curves
        trows.extend(f.targets.to_dict("records"))
    table["curve"] = [curves[m](n) for m, n in zip(table["method"], table["n_voices"])]
    return LearningCurve(table=table, baselines=baselines, curves=curves, rounds=rounds, round_curves=round_curves,
                         targets=pd.DataFrame(trows), n_fit_voices=n_pool, n_eval_voices=int(n_eval),
                         eval_speakers=np.unique(spe))


def _quantile(values, q: float) -> float:
    """A quantile that may be ``inf`` (an observed value, never an interpolation between inf and a number)."""
    v = np.sort(np.asarray(values, dtype=float))
    return float(np.quantile(v, q, method="inverted_cdf")) if v.size else float("nan")


#: Beyond this many times the largest fit set measured, a target's crossing is read as out of reach.
OUT_OF_REACH = 100


def _target_row(method: str, target: float, curve: SaturatingCurve, rounds, largest: float) -> dict:
    """The voices needed for one target share, its interval over the rounds' curves and a sentence."""
    n = voices_for_share(curve, target)
    per = [voices_for_share(c, target) for c in rounds]
    lo, hi = _quantile(per, 0.025), _quantile(per, 0.975)
    pct = f"{100 * target:.0f} %"
    never = float(np.mean(np.isinf(per))) if per else float("nan")
    if math.isinf(n):
        text = (f"{method} does not reach {pct} of the gain: its fitted curve levels off at {100 * curve.a:.1f} % "
                f"({100 * never:.0f} % of the bootstrap curves never reach it either).")
    elif n > OUT_OF_REACH * largest:
        # A curve that levels off just above the target crosses it at absurd sizes (1e11 voices): say so instead
        # of printing the number as if it were a plan.
        text = (f"{method} does not reach {pct} of the gain within reach: its fitted curve levels off at "
                f"{100 * curve.a:.1f} % and crosses {pct} only at about {n:.1e} voices, more than {OUT_OF_REACH} times "
                f"the {largest:,.0f} measured ({100 * never:.0f} % of the bootstrap curves never reach it).")
    else:
        span = "at least " + f"{lo:,.0f}" if math.isinf(hi) else f"{lo:,.0f}-{hi:,.0f}"
        text = f"{method} reaches {pct} of the gain at about {n:,.0f} voices (95 % interval {span}"
        text += ", the upper end unbounded: some bootstrap curves never reach it)." if math.isinf(hi) else ")."
        if curve.a >= A_MAX - 1e-9:
            text += (" Its ceiling sits at the fit's bound: the measured shares still rise without levelling off, so "
                     "the curve's shape beyond them is the power law's assumption.")
        if n > 4 * largest:
            text += f" That is far beyond the {largest:,.0f} voices measured: a rough guide, not a promise."
        elif n <= largest:
            text += f" Within the {largest:,.0f} voices measured."
    return dict(method=method, target=target, voices=n, voices_lo=lo, voices_hi=hi, reached=not math.isinf(n),
                never_share=never, statement=text)
