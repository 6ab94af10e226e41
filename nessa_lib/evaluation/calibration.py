"""Score calibration and deployed thresholds: scores to log-likelihood ratios, Cllr, actual DCF, threshold files.

Calibration. A cosine score means nothing on its own: the same 0.6 is a confident accept for one system and a
coin flip for another. :func:`fit_calibration` fits the BOSARIS / VoxSRC linear calibration ``llr = scale *
score + offset`` on held-out (calibration) trials by prior-weighted logistic regression, so that its output is a
log-likelihood ratio (natural log) and the Bayes decision at any prior is a fixed threshold on it
(:func:`bayes_threshold`). How good the LLRs are is measured by

- :func:`cllr`: the cost of the log-likelihood ratio, in bits (0 = perfect, 1 = no information: ``llr = 0``);
- :func:`min_cllr`: the Cllr of the best monotone recalibration of the same scores (pool-adjacent-violators,
  :func:`pav`), so ``cllr - min_cllr`` is the calibration loss alone;
- :func:`actual_dcf`: the detection cost of deciding at the Bayes threshold, normalised like
  :func:`nessa_lib.evaluation.metrics.min_dcf`, so ``actual_dcf >= min_dcf`` and the gap is what calibration
  costs at that operating point.

Thresholds. :func:`threshold_report` picks, for each FAR target, the threshold on the calibration trials
(:func:`nessa_lib.evaluation.ab.threshold_at_far`) and reads the FAR and FRR it gives on the evaluation trials,
with ``holds`` telling whether the evaluation FAR stays within the target.

Files. :func:`save_calibration` writes the calibration and the chosen thresholds as JSON, recording the aligner
they were made for (:func:`aligner_identity`: its method, model ids and a hash of its weights); shipped next to
the aligner (:func:`calibration_path`), a ``nessa_lib.migrate`` user gets the threshold with the migrated
profiles. :func:`load_calibration` refuses a file made for another aligner, naming the file.

Conventions: labels 1 = target, 0 = non-target; accept when ``score >= threshold`` (as in
:mod:`~nessa_lib.evaluation.metrics`); rates are fractions; LLRs use the natural log, Cllr is in bits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nessa_lib.evaluation import metrics

__all__ = [
    "Calibration",
    "SavedCalibration",
    "fit_calibration",
    "bayes_threshold",
    "cllr",
    "pav",
    "min_cllr",
    "actual_dcf",
    "threshold_report",
    "system_calibration",
    "cllr_rounds",
    "min_cllr_rounds",
    "actual_dcf_rounds",
    "aligner_identity",
    "calibration_path",
    "save_calibration",
    "load_calibration",
]

FORMAT = "nessa-calibration"
FORMAT_VERSION = 1


def _split(scores, labels, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(target, non-target) scores, or a ValueError naming ``what`` and the problem."""
    try:
        ts = metrics.TrialScores.from_scores(scores, labels)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from exc
    return ts.target, ts.nontarget


def _split_llr(llr, labels, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`_split` but LLRs may be +-inf (a perfectly sure decision); NaN is refused."""
    v = np.asarray(llr, dtype=np.float64)
    if np.isnan(v).any():
        raise ValueError(f"{what}: LLRs contain NaN, first at index {int(np.flatnonzero(np.isnan(v))[0])}")
    # Validate labels and lengths on a finite stand-in, then split the real values.
    _split(np.zeros(v.shape), labels, what)
    y = np.asarray(labels) == 1
    return v[y], v[~y]


def _prior_check(p, name: str = "prior") -> float:
    p = float(p)
    if not 0.0 < p < 1.0:
        raise ValueError(f"{name} must be a probability in (0, 1), got {p}")
    return p


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


# --------------------------------------------------------------------------------------------
# Linear calibration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """Linear score-to-LLR calibration ``llr = scale * score + offset`` (natural log).

    Attributes
    ----------
    scale, offset : float
        The fitted map.
    prior : float
        The effective target prior the fit weighted the two classes with.
    n_target, n_nontarget : int
        Trials it was fitted on.
    """

    scale: float
    offset: float
    prior: float
    n_target: int
    n_nontarget: int

    def apply(self, scores) -> np.ndarray:
        """Log-likelihood ratios of ``scores``.

        Examples
        --------
        >>> Calibration(2.0, -1.0, 0.5, 10, 10).apply([0.0, 0.5, 1.0]).tolist()
        [-1.0, 0.0, 1.0]
        """
        return self.scale * np.asarray(scores, dtype=np.float64) + self.offset

    def score_at_llr(self, llr: float) -> float:
        """The score whose LLR is ``llr`` (inverse of :meth:`apply`), e.g. to turn a Bayes threshold into a score.

        Examples
        --------
        >>> Calibration(2.0, -1.0, 0.5, 10, 10).score_at_llr(0.0)
        0.5
        """
        return float((llr - self.offset) / self.scale)


def fit_calibration(scores, labels, *, prior: float = 0.5, l2: float = 1e-6, max_iter: int = 100,
                    what: str = "calibration trials") -> Calibration:
    """Fit ``llr = scale * score + offset`` by prior-weighted logistic regression (BOSARIS linear calibration).

    Minimises ``prior * mean_T log(1 + exp(-(llr + logit prior))) + (1 - prior) * mean_N log(1 + exp(llr +
    logit prior))``: each class weighs as its effective prior whatever its trial count, and the prior's log-odds
    is added before the sigmoid, so ``scale * score + offset`` estimates the log-likelihood ratio itself (the
    posterior at any other prior follows by adding that prior's log-odds). Newton's method on the two
    parameters, with step halving so the objective never rises.

    Parameters
    ----------
    scores : array_like of float, shape (n,)
        Scores of the calibration trials (never the evaluation trials).
    labels : array_like of {0, 1} or bool, shape (n,)
    prior : float
        Effective target prior of the fit, in (0, 1); 0.5 weighs both classes equally (the BOSARIS default).
    l2 : float
        Ridge penalty on ``scale``: negligible otherwise, it keeps the fit finite when the calibration trials are
        perfectly separated (the unpenalised optimum is then an infinite scale).
    max_iter : int
        Newton iterations at most (about ten are usual).
    what : str
        How error messages name the trials (e.g. the split or file they came from).

    Returns
    -------
    Calibration

    Raises
    ------
    ValueError
        When the trials hold no target or no non-target trial (naming ``what``), on NaN/inf scores, or a prior
        outside (0, 1).

    Examples
    --------
    >>> c = fit_calibration([-2.0, -1.0, 0.0, 1.0, 0.0, 1.0, 2.0, 3.0], [0, 0, 0, 0, 1, 1, 1, 1])
    >>> round(c.scale, 3), round(c.offset, 3), c.n_target
    (1.55, -0.775, 4)
    """
    prior = _prior_check(prior)
    tar, non = _split(scores, labels, f"cannot fit a calibration on {what}")
    s = np.concatenate((tar, non))
    t = np.concatenate((np.ones(tar.size), np.zeros(non.size)))
    w = np.concatenate((np.full(tar.size, prior / tar.size), np.full(non.size, (1.0 - prior) / non.size)))
    # Centre and scale the scores so Newton's steps are well conditioned; the map is translated back at the end.
    mu, sd = float(s.mean()), float(s.std()) or 1.0
    x = (s - mu) / sd
    lo = _logit(prior)
    ridge = l2 * sd * sd  # the penalty is on the scale of the raw scores

    def loss(p):
        z = p[0] * x + p[1] + lo
        return float(w @ (t * np.logaddexp(0.0, -z) + (1.0 - t) * np.logaddexp(0.0, z)) + 0.5 * ridge * p[0] ** 2)

    p = np.zeros(2)
    f = loss(p)
    for _ in range(max_iter):
        z = p[0] * x + p[1] + lo
        q = 0.5 * (1.0 + np.tanh(0.5 * z))  # the sigmoid, without overflow
        r = w * (q - t)
        g = np.array([r @ x + ridge * p[0], r.sum()])
        h = w * q * (1.0 - q)
        hess = np.array([[h @ (x * x) + ridge, h @ x], [h @ x, h.sum()]])
        step = np.linalg.solve(hess + 1e-12 * np.eye(2), g)
        eta = 1.0
        while eta > 1e-10:
            new = p - eta * step
            f_new = loss(new)
            if f_new <= f:
                break
            eta *= 0.5
        else:
            break
        p, f_old, f = new, f, f_new
        if abs(f_old - f) <= 1e-14 * max(1.0, abs(f)) and np.abs(eta * step).max() < 1e-10:
            break
    scale = p[0] / sd
    return Calibration(scale=float(scale), offset=float(p[1] - scale * mu), prior=prior,
                       n_target=int(tar.size), n_nontarget=int(non.size))


def bayes_threshold(p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """The LLR above which accepting costs less than rejecting: ``log(c_fa (1 - p) / (c_miss p))``.

    Examples
    --------
    >>> bayes_threshold(0.5), round(bayes_threshold(0.01), 4)
    (0.0, 4.5951)
    """
    p = _prior_check(p_target, "p_target")
    if not (c_miss > 0 and c_fa > 0 and math.isfinite(c_miss) and math.isfinite(c_fa)):
        raise ValueError(f"c_miss and c_fa must be positive and finite, got {c_miss}, {c_fa}")
    return math.log(c_fa * (1.0 - p) / (c_miss * p))


# --------------------------------------------------------------------------------------------
# How good are the LLRs
# --------------------------------------------------------------------------------------------


def cllr(llr, labels) -> float:
    """Cost of the log-likelihood ratio, in bits (Brümmer): 0 is perfect, 1 is an LLR of 0 everywhere.

    ``(mean_T log2(1 + exp(-llr)) + mean_N log2(1 + exp(llr))) / 2``; LLRs may be +-inf.

    Examples
    --------
    >>> cllr([0.0, 0.0], [0, 1])
    1.0
    >>> cllr([-np.inf, np.inf], [0, 1])
    0.0
    """
    tar, non = _split_llr(llr, labels, "cllr")
    c = np.logaddexp(0.0, -tar).mean() + np.logaddexp(0.0, non).mean()
    return float(c / (2.0 * math.log(2.0)))


def pav(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: the non-decreasing fit of the labels in score order (isotonic regression).

    Tied scores are pooled first (one value for all of them), so the fit depends only on the scores' order.

    Parameters
    ----------
    scores : array_like of float, shape (n,)
    labels : array_like of {0, 1} or bool, shape (n,)

    Returns
    -------
    order : ndarray of int, shape (n,)
        Stable ascending order of ``scores``.
    posterior : ndarray of float, shape (n,)
        The fitted target fraction of each trial, in the order of the input (not of ``order``).

    Examples
    --------
    >>> pav([1.0, 2.0, 3.0, 4.0], [0, 1, 0, 1])[1].tolist()
    [0.0, 0.5, 0.5, 1.0]
    """
    _split(scores, labels, "pav")
    s = np.asarray(scores, dtype=np.float64)
    y = (np.asarray(labels) == 1).astype(np.float64)
    order = np.argsort(s, kind="stable")
    ss, ys = s[order], y[order]
    # One initial block per distinct score.
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    sums = np.add.reduceat(ys, starts)
    counts = np.diff(np.r_[starts, ss.size]).astype(np.float64)
    # The stack of blocks; a new block merges with the ones before it while their mean is not below its own.
    b_sum, b_cnt, b_len = [], [], []
    for v, c, n in zip(sums, counts, np.diff(np.r_[starts, ss.size])):
        b_sum.append(v), b_cnt.append(c), b_len.append(n)
        while len(b_sum) > 1 and b_sum[-2] * b_cnt[-1] >= b_sum[-1] * b_cnt[-2]:
            v2, c2, n2 = b_sum.pop(), b_cnt.pop(), b_len.pop()
            b_sum[-1] += v2
            b_cnt[-1] += c2
            b_len[-1] += n2
    fitted = np.repeat(np.array(b_sum) / np.array(b_cnt), b_len)
    post = np.empty_like(fitted)
    post[order] = fitted
    return order, post


def min_cllr(scores, labels) -> float:
    """Cllr after the best monotone recalibration of ``scores`` (in bits): the discrimination loss alone.

    The PAV posteriors (:func:`pav`) are turned into LLRs by removing the trials' own target proportion, as
    BOSARIS does; ``cllr(llr) - min_cllr(scores)`` of a calibration is then its calibration loss, never negative
    when ``llr`` is an increasing map of ``scores``.

    Examples
    --------
    >>> min_cllr([1.0, 2.0, 3.0, 4.0], [0, 1, 0, 1])  # LLRs -inf, 0, 0, +inf: one trial of each class at 0
    0.5
    >>> min_cllr([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    0.0
    """
    tar, non = _split(scores, labels, "min_cllr")
    _, post = pav(scores, labels)
    prior_odds = math.log(tar.size / non.size)
    with np.errstate(divide="ignore"):
        llr = np.log(post) - np.log1p(-post) - prior_odds
    return cllr(llr, labels)


def actual_dcf(llr, labels, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Normalised detection cost of deciding at the Bayes threshold (:func:`bayes_threshold`) on the LLRs.

    ``(c_miss p FRR + c_fa (1 - p) FAR) / min(c_miss p, c_fa (1 - p))``, accepting when ``llr >= threshold``:
    the normalisation of :func:`nessa_lib.evaluation.metrics.min_dcf`, whose minimum over all thresholds it
    can only equal or exceed.

    Examples
    --------
    >>> actual_dcf([-1.0, 1.0], [0, 1], p_target=0.5)
    0.0
    >>> actual_dcf([-1.0, 1.0], [0, 1], p_target=0.01)  # threshold 4.6: every target rejected
    1.0
    """
    tar, non = _split_llr(llr, labels, "actual_dcf")
    thr = bayes_threshold(p_target, c_miss, c_fa)
    p = float(p_target)
    frr, far = float(np.mean(tar < thr)), float(np.mean(non >= thr))
    w_miss, w_fa = c_miss * p, c_fa * (1.0 - p)
    return (w_miss * frr + w_fa * far) / min(w_miss, w_fa)


# --------------------------------------------------------------------------------------------
# Thresholds chosen on calibration trials, read on evaluation trials
# --------------------------------------------------------------------------------------------


def _far_targets(fars) -> tuple[float, ...]:
    targets = (fars,) if np.ndim(fars) == 0 else tuple(fars)
    if not targets:
        raise ValueError("fars must be a FAR target or a non-empty sequence of them")
    out = []
    for f in targets:
        f = float(f)
        if not 0.0 < f < 1.0:
            raise ValueError(f"a FAR target must be a fraction in (0, 1) (0.01 means 1 %), got {f}")
        out.append(f)
    if len(set(out)) != len(out):
        raise ValueError(f"fars must not repeat a target, got {out}")
    return tuple(out)


def threshold_report(cal_scores, cal_labels, eval_scores, eval_labels, fars, *, boot=None) -> pd.DataFrame:
    """Per FAR target: the threshold chosen on the calibration trials and the rates it gives on evaluation.

    Parameters
    ----------
    cal_scores, cal_labels : array_like, shape (n,)
        Calibration trials (e.g. built on the alignment split by :func:`nessa_lib.evaluation.ab.alignment_trials`).
    eval_scores, eval_labels : array_like, shape (m,)
        Evaluation trials, only read to measure.
    fars : float or sequence of float
        FAR targets, fractions in (0, 1).
    boot : nessa_lib.evaluation.bootstrap.SpeakerBootstrap, optional
        Speaker-bootstrap rounds of the evaluation trials: adds 95 % intervals ``far_eval_lo`` / ``_hi`` and
        ``frr_eval_lo`` / ``_hi`` (the threshold stays fixed, so they are the evaluation speakers' uncertainty).

    Returns
    -------
    DataFrame
        Index ``far_target``; columns ``threshold`` (:func:`nessa_lib.evaluation.ab.threshold_at_far` on the
        calibration trials), ``far_calibration``, ``frr_calibration``, ``far_eval``, ``frr_eval`` and ``holds``
        (``far_eval <= far_target``).

    Raises
    ------
    ValueError
        A FAR target outside (0, 1), or calibration trials without targets or non-targets.

    Examples
    --------
    >>> cal_s, cal_y = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 0, 0, 0, 1, 1]
    >>> t = threshold_report(cal_s, cal_y, [0.1, 0.35, 0.2, 0.9], [0, 0, 1, 1], [0.25, 0.5])
    >>> t[["far_eval", "frr_eval", "holds"]].to_dict("list")
    {'far_eval': [0.5, 0.5], 'frr_eval': [0.5, 0.5], 'holds': [False, True]}
    """
    from nessa_lib.evaluation.ab import rates_at_threshold, threshold_at_far

    targets = _far_targets(fars)
    _split(cal_scores, cal_labels, "threshold calibration trials")
    _split(eval_scores, eval_labels, "evaluation trials")
    rows = []
    for f in targets:
        thr = threshold_at_far(cal_scores, cal_labels, f)
        far_c, frr_c = rates_at_threshold(cal_scores, cal_labels, thr)
        far_e, frr_e = rates_at_threshold(eval_scores, eval_labels, thr)
        row = dict(far_target=f, threshold=thr, far_calibration=far_c, frr_calibration=frr_c,
                   far_eval=far_e, frr_eval=frr_e, holds=bool(far_e <= f))
        if boot is not None:
            from nessa_lib.evaluation.bootstrap import interval

            far_r, frr_r = boot.rates_at(eval_scores, thr)
            row["far_eval_lo"], row["far_eval_hi"] = interval(far_r)
            row["frr_eval_lo"], row["frr_eval_hi"] = interval(frr_r)
        rows.append(row)
    return pd.DataFrame(rows).set_index("far_target")


def cllr_rounds(llr, boot) -> np.ndarray:
    """:func:`cllr` in every speaker-bootstrap round of ``boot`` (a
    :class:`nessa_lib.evaluation.bootstrap.SpeakerBootstrap` of the trials the LLRs score).

    Examples
    --------
    >>> from nessa_lib.evaluation.bootstrap import SpeakerBootstrap
    >>> b = SpeakerBootstrap(np.array(["a", "a", "b", "b"]), np.array([1, 0, 1, 0]), n_rounds=2)
    >>> b.counts = np.array([[1.0, 1.0], [2.0, 0.0]])  # round 0 = the trials as they are; round 1 = speaker a twice
    >>> llr = np.array([0.0, 0.0, np.inf, -np.inf])
    >>> cllr_rounds(llr, b).tolist(), cllr(llr, [1, 0, 1, 0])
    ([0.5, 1.0], 0.5)
    """
    v = np.asarray(llr, dtype=np.float64)
    # Each trial's term of Cllr: log(1 + e^-llr) for a target, log(1 + e^llr) for a non-target (nats).
    terms = np.where(boot.labels, np.logaddexp(0.0, -v), np.logaddexp(0.0, v))
    tar, non = boot.class_means(terms)
    return (tar + non) / (2.0 * math.log(2.0))


def min_cllr_rounds(scores, labels, boot) -> np.ndarray:
    """:func:`min_cllr` in every speaker-bootstrap round of ``boot`` (a
    :class:`nessa_lib.evaluation.bootstrap.SpeakerBootstrap` of the trials the scores come from).

    Each round is the min-Cllr of its resampled trial list (every trial repeated by its speaker's draw count):
    weighted pool-adjacent-violators on the scores sorted once, with the draws as weights, tied scores pooled
    first and the LLRs taken against the round's own target proportion, as :func:`min_cllr` does. A round with
    weight 1 for every speaker gives :func:`min_cllr` of the plain trials (to rounding, ~1e-15); a round that
    drew no target or no non-target trial gives NaN.

    Cost: the sort, the pooling of ties and of runs of one label (their PAV values are always equal) are shared
    by all rounds; a round is one sparse product for its class weights per pooled unit and one O(n)
    :func:`scipy.optimize.isotonic_regression`. Measured on one core of the 2-core dev VM
    (``benchmarks/bench_min_cllr.py``, 1,000 rounds of 31,350 trials, 4.3 % targets): 0.11 s per system with
    distinct scores, 0.06 s with scores rounded to 0.01, about 180x faster than resampling and calling
    :func:`min_cllr` per round; half targets (fewer runs to pool): 0.56 s.

    Parameters
    ----------
    scores : array_like of float, shape (n,)
        The system's scores (any monotone map of them gives the same result).
    labels : array_like of {0, 1} or bool, shape (n,)
        1 = target; must be the labels ``boot`` was built with.
    boot : SpeakerBootstrap

    Returns
    -------
    ndarray, shape (boot.n_rounds,)
        min-Cllr (bits) of each round.

    Examples
    --------
    >>> from nessa_lib.evaluation.bootstrap import SpeakerBootstrap
    >>> s, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 1, 0, 1])
    >>> b = SpeakerBootstrap(np.array(["a", "a", "b", "b"]), y, n_rounds=2)
    >>> b.counts = np.array([[1.0, 1.0], [2.0, 0.0]])  # round 0 = the trials as they are; round 1 = speaker a twice
    >>> min_cllr_rounds(s, y, b).tolist(), min_cllr(s, y)
    ([0.5, 0.0], 0.5)
    """
    from scipy import sparse
    from scipy.optimize import isotonic_regression

    from nessa_lib.evaluation.bootstrap import _chunk_rounds

    _split(scores, labels, "min_cllr_rounds")
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels) == 1
    if s.shape != boot.labels.shape or not np.array_equal(y, boot.labels):
        raise ValueError("min_cllr_rounds: the labels are not those of the bootstrap's trials")
    order = np.argsort(s, kind="stable")
    ss, ys, cl = s[order], y[order], boot.cluster[order]
    # Units PAV never splits: tied scores (pooled by definition), then runs of tie groups of one label (within a
    # run the fitted values are equal whatever the positive weights: a block's last element is at most its value,
    # the next block's first at least its own, so a boundary between two equal labels cannot raise the fit).
    new_value = np.r_[True, ss[1:] != ss[:-1]]
    group = np.cumsum(new_value) - 1
    n_groups = int(group[-1]) + 1
    g_tar = np.bincount(group, weights=ys, minlength=n_groups)
    g_all = np.bincount(group, minlength=n_groups).astype(np.float64)
    kind = np.where(g_tar == g_all, 1, np.where(g_tar == 0, 0, -1))  # 1 all targets, 0 none, -1 mixed
    same_run = (kind[1:] == kind[:-1]) & (kind[1:] >= 0)
    unit_of_group = np.cumsum(np.r_[True, ~same_run]) - 1
    unit = unit_of_group[group]
    n_units, n_spk = int(unit[-1]) + 1, len(boot.names)

    # Per class, how many trials of each speaker fall in each unit: the round's unit weights are counts @ M.
    def per_unit(mask):
        return sparse.csr_matrix((np.ones(int(mask.sum())), (unit[mask], cl[mask])), shape=(n_units, n_spk))
    m_tar, m_non = per_unit(ys), per_unit(~ys)
    out = np.full(boot.n_rounds, np.nan)
    chunk = _chunk_rounds(n_units)
    zero = np.zeros(1)
    for r0 in range(0, boot.n_rounds, chunk):
        c = boot.counts[r0:r0 + chunk].T
        tar_w, non_w = np.asarray((m_tar @ c).T), np.asarray((m_non @ c).T)  # (rounds, units), exact integers
        for r, (tw, nw) in enumerate(zip(tar_w, non_w), start=r0):
            w = tw + nw
            keep = w > 0
            tw, nw, w = tw[keep], nw[keep], w[keep]
            cum_t, cum_n = np.concatenate([zero, np.cumsum(tw)]), np.concatenate([zero, np.cumsum(nw)])
            n_t, n_n = cum_t[-1], cum_n[-1]
            if n_t == 0 or n_n == 0:
                continue
            blocks = isotonic_regression(tw / w, weights=w).blocks
            bt, bn = np.diff(cum_t[blocks]), np.diff(cum_n[blocks])  # class weights of each PAV block, exact
            mixed = (bt > 0) & (bn > 0)  # pure blocks get LLR +-inf and cost nothing
            bt, bn = bt[mixed], bn[mixed]
            post = bt / (bt + bn)
            llr = np.log(post) - np.log1p(-post) - math.log(n_t / n_n)
            c_llr = (bt @ np.logaddexp(0.0, -llr)) / n_t + (bn @ np.logaddexp(0.0, llr)) / n_n
            out[r] = c_llr / (2.0 * math.log(2.0))
    return out


def actual_dcf_rounds(llr, boot, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> np.ndarray:
    """:func:`actual_dcf` in every speaker-bootstrap round of ``boot`` (the Bayes threshold stays fixed).

    Examples
    --------
    >>> from nessa_lib.evaluation.bootstrap import SpeakerBootstrap
    >>> b = SpeakerBootstrap(np.array(["a", "a", "b", "b"]), np.array([1, 0, 1, 0]), n_rounds=2)
    >>> b.counts = np.array([[1.0, 1.0], [0.0, 2.0]])
    >>> llr = np.array([1.0, -1.0, -1.0, 1.0])  # speaker a right, speaker b wrong, at p_target 0.5
    >>> actual_dcf_rounds(llr, b, p_target=0.5).tolist(), actual_dcf(llr, [1, 0, 1, 0], p_target=0.5)
    ([1.0, 2.0], 1.0)
    """
    thr = bayes_threshold(p_target, c_miss, c_fa)
    far, frr = boot.rates_at(llr, thr)
    w_miss, w_fa = c_miss * float(p_target), c_fa * (1.0 - float(p_target))
    return (w_miss * frr + w_fa * far) / min(w_miss, w_fa)


def system_calibration(cal_scores: Mapping, cal_labels, eval_scores: Mapping, eval_labels, fars, *,
                       p_target: float = 0.01, prior: float = 0.5, boot=None,
                       calibrations: dict | None = None) -> pd.DataFrame:
    """Every system calibrated on the calibration trials and judged on the evaluation trials.

    For each system (a key of both score mappings): a logistic calibration (:func:`fit_calibration`) fitted on
    its calibration scores turns its evaluation scores into LLRs, judged by ``cllr`` (bits), ``min_cllr`` (the
    same scores calibrated optimally on the evaluation trials themselves: what is left is discrimination) and
    ``act_dcf`` at ``p_target`` beside ``min_dcf`` (:func:`nessa_lib.evaluation.metrics.min_dcf`); and for each
    FAR target the threshold chosen on the calibration trials with the FAR and FRR it gives on evaluation and
    whether the target holds (:func:`threshold_report`).

    With ``boot`` (a :class:`nessa_lib.evaluation.bootstrap.SpeakerBootstrap` of the evaluation trials), ``cllr``,
    ``min_cllr`` and ``act_dcf_p<p>`` get 95 % speaker intervals (``_lo``, ``_hi``; the calibration stays fixed, as
    the thresholds do, while ``min_cllr`` is re-optimised in each round: :func:`min_cllr_rounds`), beside those of
    :func:`threshold_report`. ``calibrations``, if given, is filled with each
    system's fitted :class:`Calibration` (for :func:`save_calibration`).

    Returns
    -------
    DataFrame
        Index ``(system, far_target)``; the calibration columns repeat within a system.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lab = np.r_[np.ones(200), np.zeros(2000)].astype(int)
    >>> cal = {"s": np.r_[rng.normal(2, 1, 200), rng.normal(0, 1, 2000)]}
    >>> ev = {"s": np.r_[rng.normal(2, 1, 200), rng.normal(0, 1, 2000)]}
    >>> t = system_calibration(cal, lab, ev, lab, [0.05])
    >>> bool(t.loc[("s", 0.05), "min_cllr"] <= t.loc[("s", 0.05), "cllr"] < 1.0)
    True
    """
    from nessa_lib.evaluation.metrics import min_dcf

    cal_labels, eval_labels = np.asarray(cal_labels), np.asarray(eval_labels)
    blocks = {}
    for system, ev in eval_scores.items():
        cs, ev = np.asarray(cal_scores[system], float), np.asarray(ev, float)
        cal = fit_calibration(cs, cal_labels, prior=prior, what=f"calibration trials of {system!r}")
        llr = cal.apply(ev)
        t = threshold_report(cs, cal_labels, ev, eval_labels, fars, boot=boot)
        act = f"act_dcf_p{float(p_target)!r}"
        head = {"cllr": cllr(llr, eval_labels), "min_cllr": min_cllr(ev, eval_labels),
                act: actual_dcf(llr, eval_labels, p_target), f"min_dcf_p{float(p_target)!r}": min_dcf(ev, eval_labels,
                                                                                                      p_target)}
        if boot is not None:
            from nessa_lib.evaluation.bootstrap import interval

            head["cllr_lo"], head["cllr_hi"] = interval(cllr_rounds(llr, boot))
            head["min_cllr_lo"], head["min_cllr_hi"] = interval(min_cllr_rounds(ev, eval_labels, boot))
            head[f"{act}_lo"], head[f"{act}_hi"] = interval(actual_dcf_rounds(llr, boot, p_target))
        order = ["cllr", "cllr_lo", "cllr_hi", "min_cllr", "min_cllr_lo", "min_cllr_hi", act, f"{act}_lo", f"{act}_hi",
                 f"min_dcf_p{float(p_target)!r}"]
        for i, c in enumerate(c for c in order if c in head):
            t.insert(i, c, head[c])
        if calibrations is not None:
            calibrations[system] = cal
        blocks[system] = t
    return pd.concat(blocks, names=["system"])


# --------------------------------------------------------------------------------------------
# The calibration file shipped with an aligner
# --------------------------------------------------------------------------------------------


def aligner_identity(aligner) -> dict:
    """What a calibration file records about its aligner: method, model ids and a hash of the maps.

    The hash (``fingerprint``) covers the weights and the architecture of both sides, not the training record,
    so it survives :meth:`nessa_lib.align.Aligner.save` and :func:`nessa_lib.align.load`.

    Parameters
    ----------
    aligner : nessa_lib.align.Aligner or path
        A fitted aligner, or its ``.safetensors`` file.

    Examples
    --------
    >>> from nessa_lib import align
    >>> a = align.fit("linear", np.eye(3), np.eye(3), [0, 1, 2], enroll_model_id="X@1", runtime_model_id="Y@1")
    >>> ident = aligner_identity(a)
    >>> ident["method"], ident["enroll_model_id"], ident["fingerprint"].startswith("linear@")
    ('linear', 'X@1', True)
    """
    from nessa_lib import align, embeddings

    if not isinstance(aligner, align.Aligner):
        aligner = align.load(aligner)
    arch = dict(method=aligner.method, enroll_dim=aligner.enroll_dim, runtime_dim=aligner.runtime_dim,
                shared_dim=aligner.shared_dim, enroll_spec=aligner.enroll_spec, runtime_spec=aligner.runtime_spec,
                enroll_model_id=aligner.enroll_model_id, runtime_model_id=aligner.runtime_model_id)
    tensors = {f"enroll.{k}": v for k, v in aligner.enroll_map.state_dict().items()}
    tensors.update({f"runtime.{k}": v for k, v in aligner.runtime_map.state_dict().items()})
    return dict(method=aligner.method, enroll_model_id=aligner.enroll_model_id,
                runtime_model_id=aligner.runtime_model_id,
                fingerprint=embeddings.fingerprint(tensors, arch, aligner.method))


def calibration_path(aligner_path) -> Path:
    """Where the calibration of an aligner file lives: beside it, ``<stem>.calibration.json``.

    Examples
    --------
    >>> calibration_path("models/fit_aligners/nessa-m2/x-y.safetensors").as_posix()
    'models/fit_aligners/nessa-m2/x-y.calibration.json'
    """
    p = Path(aligner_path)
    return p.with_name(p.stem + ".calibration.json")


@dataclass(frozen=True)
class SavedCalibration:
    """The content of a calibration file (:func:`load_calibration`).

    Attributes
    ----------
    calibration : Calibration or None
        Score-to-LLR map, if one was saved.
    thresholds : dict of float to float
        ``{far_target: score threshold}`` chosen on the calibration trials (accept when ``score >= threshold``).
    aligner : dict or None
        :func:`aligner_identity` of the aligner the file was made for; ``None`` for a system without one (X/X).
    system : str or None
        Free-text name of the system (e.g. ``"xvector-ecapa/nessa-m2"``).
    """

    calibration: Calibration | None
    thresholds: dict
    aligner: dict | None
    system: str | None


def save_calibration(path, calibration: Calibration | None = None, thresholds: Mapping | pd.DataFrame | None = None,
                     *, aligner=None, system: str | None = None) -> None:
    """Write a calibration and the chosen thresholds as JSON (atomic, full rewrite), recording the aligner.

    Parameters
    ----------
    path : path
        Output file, e.g. :func:`calibration_path` of the aligner file.
    calibration : Calibration, optional
    thresholds : mapping of float to float, or DataFrame, optional
        ``{far_target: threshold}``, or a :func:`threshold_report` table (its ``threshold`` column is kept).
    aligner : nessa_lib.align.Aligner or path, optional
        The aligner the scores came through; :func:`load_calibration` checks it. ``None`` for unaligned systems.
    system : str, optional
        Name of the system, for people reading the file.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.calibration.json")
    >>> save_calibration(p, Calibration(2.0, -1.0, 0.5, 3, 9), {0.01: 0.625}, system="X/X")
    >>> load_calibration(p).thresholds
    {0.01: 0.625}
    """
    if isinstance(thresholds, pd.DataFrame):
        thresholds = thresholds["threshold"].to_dict()
    thr = {}
    for f, t in (thresholds or {}).items():
        f, t = _far_targets(f)[0], float(t)
        if not math.isfinite(t):
            raise ValueError(f"threshold for FAR target {f} is not finite ({t}); nothing written to {path}")
        thr[f] = t
    doc = dict(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        system=system,
        aligner=None if aligner is None else aligner_identity(aligner),
        calibration=None if calibration is None else asdict(calibration),
        # JSON keys are strings: a list of pairs keeps the targets as numbers.
        thresholds=[{"far_target": f, "threshold": t} for f, t in sorted(thr.items())],
        accept_rule="score >= threshold",
    )
    from nessa_lib.io import atomic_write_text

    atomic_write_text(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")


def load_calibration(path, aligner=None) -> SavedCalibration:
    """Read a file written by :func:`save_calibration`; with ``aligner``, refuse one made for another aligner.

    Parameters
    ----------
    path : path
    aligner : nessa_lib.align.Aligner or path, optional
        The aligner about to be used with these thresholds (or its file).

    Returns
    -------
    SavedCalibration

    Raises
    ------
    ValueError
        Naming the file: not a calibration file, damaged, or made for another aligner (or for none).
    FileNotFoundError

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.calibration.json")
    >>> save_calibration(p, Calibration(2.0, -1.0, 0.5, 3, 9))
    >>> load_calibration(p).calibration.scale
    2.0
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file not found: {path}")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable JSON calibration file: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path} is not a NESSA calibration file (format {FORMAT!r} expected)")
    if doc.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: calibration format v{doc.get('format_version')} is newer than this library's "
                         f"v{FORMAT_VERSION}")
    try:
        cal = None if doc.get("calibration") is None else Calibration(**doc["calibration"])
        thresholds = {float(r["far_target"]): float(r["threshold"]) for r in doc.get("thresholds", [])}
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: damaged calibration file: {exc}") from exc
    made_for = doc.get("aligner")
    if aligner is not None:
        given = aligner_identity(aligner)
        if made_for is None:
            raise ValueError(f"{path} was made for a system without an aligner ({doc.get('system')!r}), not for "
                             f"the {given['method']} aligner {given['fingerprint']}: its thresholds do not apply")
        if made_for.get("fingerprint") != given["fingerprint"]:
            raise ValueError(
                f"{path} was made for another aligner: the file's is {made_for.get('method')} "
                f"{made_for.get('fingerprint')} (enrollment model {made_for.get('enroll_model_id')!r}, runtime model "
                f"{made_for.get('runtime_model_id')!r}), the one given is {given['method']} {given['fingerprint']} "
                f"(enrollment model {given['enroll_model_id']!r}, runtime model {given['runtime_model_id']!r}); "
                f"calibrate the thresholds again for this aligner")
    return SavedCalibration(calibration=cal, thresholds=thresholds, aligner=made_for, system=doc.get("system"))
