"""The deployment case study: model A in production (profiles stored), candidate B, thresholds as deployed.

Thresholds. A deployed system needs a decision threshold, and it must not be chosen on the evaluation trials.
:func:`alignment_trials` builds enrollment + trial lists on the *alignment* split, :func:`threshold_at_far` picks
the threshold for a target FAR on them, and :func:`rates_at_threshold` reads the FAR/FRR that threshold actually
gives on the evaluation trials (:func:`ab_case_study`). All rates are fractions in [0, 1]; a trial is accepted
when ``score >= threshold`` (the :mod:`nessa_lib.evaluation.metrics` convention).

Relative FRR impact. The paper (NESSA, arXiv 2401.12440) reports its A/B test as the relative change of the FRR
at a FAR target (12.5 %) against the control, the production system that keeps model A (our ``A/A`` row):
``(FRR_control - FRR_system) / FRR_control`` (:func:`relative_frr_impact`), positive when the system rejects
fewer genuine speakers; "up to 43.62 % relative FRR improvement" is this figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nessa_lib.data.lists import make_enrollment_and_trials
from nessa_lib.embeddings import PairedSplits
from nessa_lib.evaluation import metrics, operating_points
from nessa_lib.evaluation.ablation import _nested_order
from nessa_lib.evaluation.lists import score_lists
from nessa_lib.evaluation.tables import aligned_scores, fit_aligners

# Rows of ab_case_study (model A in production, B the candidate).
AB_CONTROL = "A/A"
AB_REENROLL = "B/B"
AB_M2 = "B runtime + A profiles migrated by M2"
AB_M1 = "B runtime mapped by M1 into A's space"
AB_M3 = "A profiles and B runtime mapped by M3 into a new space"
AB_DEPLOYMENTS = {"nessa-m2": AB_M2, "nessa-m1": AB_M1, "nessa-m3": AB_M3}


def alignment_trials(speakers, utt_ids, *, k_enroll: int, n_nontarget_per_profile: int, rng, enroll_flag=None):
    """Enrollment and trial lists on the alignment split, for calibrating thresholds without evaluation data.

    Built exactly like the evaluation lists (:func:`nessa_lib.data.lists.make_enrollment_and_trials`): one profile
    of ``k_enroll`` utterances per speaker, every other utterance of the speaker a target trial, and
    ``n_nontarget_per_profile`` other speakers' test utterances per profile as non-targets.

    Parameters
    ----------
    speakers, utt_ids : array_like, shape (n,)
        Speaker and utterance id of each alignment utterance (the rows of the alignment embeddings).
    k_enroll : int
        Utterances per profile.
    n_nontarget_per_profile : int
        Non-target trials per profile.
    rng : numpy.random.Generator or int
        Randomness source (an int is a seed).
    enroll_flag : array_like of bool, shape (n,), optional
        Utterances recorded in the enrollment condition (the manifest's ``enroll`` column): profiles are then
        built from them and tests from the others, as in the evaluation lists, so the calibration trials see
        the same conditions as deployment.

    Returns
    -------
    enroll : DataFrame
        ``profile_id, utt_id``.
    trials : DataFrame
        ``label, profile_id, test_utt_id``.

    Examples
    --------
    >>> enroll, trials = alignment_trials(["a"] * 3 + ["b"] * 3, [f"u{i}" for i in range(6)], k_enroll=2,
    ...                                   n_nontarget_per_profile=1, rng=0)
    >>> len(enroll), trials["label"].tolist()
    (4, [1, 0, 1, 0])
    """
    df = pd.DataFrame({"utt_id": np.asarray(utt_ids).astype(str), "speaker_id": np.asarray(speakers).astype(str)})
    if enroll_flag is not None:
        df["enroll"] = np.asarray(enroll_flag, dtype=bool)
    return make_enrollment_and_trials(df, k_enroll=k_enroll, n_nontarget_per_profile=n_nontarget_per_profile, rng=rng)


def _far_check(far) -> float:
    far = float(far)
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"far must be a fraction in [0, 1] (0.01 means 1 %), got {far}")
    return far


def threshold_at_far(scores, labels, far: float) -> float:
    """The smallest threshold whose FAR on these (calibration) trials is at most ``far``.

    Accept when ``score >= threshold``. With ``m`` the largest false-alarm count allowed (``m / n_nontarget <=
    far``), every threshold above ``v``, the (m+1)-th largest non-target score, meets the limit and none at or
    below it does; the smallest such float is ``nextafter(v, inf)``. On these trials it gives the same FAR and
    FRR as the operating point :func:`nessa_lib.evaluation.metrics.frr_at_far` reports (no score lies strictly
    between), and on new trials it accepts everything scored above ``v``. Tied non-target scores are rejected
    together, so the FAR reached may be below ``far``. ``far >= 1`` (accept-all allowed) gives ``-inf``.

    Parameters
    ----------
    scores : array_like of float, shape (n,)
    labels : array_like of {0, 1} or bool, shape (n,)
        1 = target trial, 0 = non-target trial.
    far : float
        FAR limit, a fraction in [0, 1].

    Returns
    -------
    float
        Compare float64 scores with it (a float32 cast of the threshold can round down onto ``v``).

    Examples
    --------
    >>> s, y = [0.1, 0.2, 0.2, 0.4, 0.5, 0.2, 0.5, 0.6], [0, 0, 0, 0, 0, 1, 1, 1]
    >>> t = threshold_at_far(s, y, 0.2)
    >>> 0.4 < t < 0.4 + 1e-12
    True
    >>> rates_at_threshold(s, y, t)
    (0.2, 0.3333333333333333)
    """
    far = _far_check(far)
    nontarget = metrics.TrialScores.from_scores(scores, labels).nontarget
    n = nontarget.size
    m = metrics.max_false_alarms(far, n)  # the same count metrics.frr_at_far uses
    if m >= n:
        return float("-inf")
    v = np.partition(nontarget, n - m - 1)[n - m - 1]  # the (m+1)-th largest non-target score
    return float(np.nextafter(v, np.inf))


def rates_at_threshold(scores, labels, threshold: float) -> tuple[float, float]:
    """``(FAR, FRR)`` when accepting trials with ``score >= threshold``.

    Examples
    --------
    >>> rates_at_threshold([0.1, 0.2, 0.2, 0.4, 0.5, 0.2, 0.5, 0.6], [0, 0, 0, 0, 0, 1, 1, 1], 0.2)
    (0.8, 0.0)
    """
    ts = metrics.TrialScores.from_scores(scores, labels)
    t = float(threshold)
    if math.isnan(t):
        raise ValueError("threshold is NaN")
    return float(np.mean(ts.nontarget >= t)), float(np.mean(ts.target < t))



def relative_frr_impact(frr_control, frr_system):
    """``(frr_control - frr_system) / frr_control``: the share of the control's false rejections a system avoids.

    Positive = fewer false rejections than the control (the paper's "relative FRR improvement"), negative = more;
    NaN where the control rejects no target (no share to take). Works elementwise on arrays (bootstrap rounds).

    Parameters
    ----------
    frr_control, frr_system : float or array_like of float
        FRRs (fractions) of the control and of the system at the same operating point (same rounds, for arrays).

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> relative_frr_impact(0.5, 0.25), relative_frr_impact(0.5, 0.75), relative_frr_impact(0.0, 0.125)
    (0.5, -0.5, nan)
    >>> relative_frr_impact(np.array([0.5, 0.0]), np.array([0.375, 0.0])).tolist()
    [0.25, nan]
    """
    c, x = np.asarray(frr_control, dtype=float), np.asarray(frr_system, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(c > 0, (c - x) / c, np.nan)
    return float(out) if out.ndim == 0 else out


def _calibration_rows(pool: PairedSplits, calibrate_on, n: int) -> np.ndarray:
    """Boolean mask of the pool's rows named by ``calibrate_on`` (split name(s) or a mask; ``None``: all rows)."""
    if calibrate_on is None:
        return np.ones(n, dtype=bool)
    given = np.asarray(calibrate_on)
    if isinstance(calibrate_on, str) or given.dtype.kind in "US" or (
            given.dtype.kind == "O" and given.size and all(isinstance(v, str) for v in given.ravel())):
        names = [calibrate_on] if isinstance(calibrate_on, str) else given.astype(str).ravel().tolist()
        splits = np.asarray(pool.splits).astype(str)
        unknown = sorted(set(names) - set(splits.tolist()))
        if unknown:
            raise ValueError(f"calibrate_on names split(s) {unknown} that the pool does not hold; "
                             f"its splits: {sorted(set(splits.tolist()))}")
        return np.isin(splits, names)
    return np.asarray(calibrate_on, dtype=bool)


# --------------------------------------------------------------------------------------------
# Deployment case study: model A in production, candidate B
# --------------------------------------------------------------------------------------------


def ab_case_study(pool: PairedSplits, a_eval, b_eval, utt_ids_eval, enroll: pd.DataFrame, trials: pd.DataFrame,
                  *, far: float | Sequence[float] = 0.01, seed: int = 0,
                  k_enroll: int = 3, n_nontarget_per_profile: int = 200, hparams: dict | None = None,
                  enroll_flag_align=None, calibration_holdout: float = 0.0, calibrate_on=None,
                  aligners: Mapping | None = None, methods=("nessa-m2", "nessa-m1"), boot=None) -> pd.DataFrame:
    """Upgrade model A (in production, profiles stored) to candidate B: error rates as deployed.

    Systems (rows, index ``system``):

    - ``A/A``: the control, nothing changes: the production system that keeps model A and its stored profiles.
      As in the paper's A/B test (the deployment with the aligned upgrade against production on model A),
      every row's ``rel_frr_impact`` is measured against it.
    - ``B/B``: everyone re-enrolled with B (needs the enrollment audio again).
    - ``B runtime + A profiles migrated by M2``: NESSA M2 fitted with enrollment = A, runtime = B maps the stored
      A profiles into B's space once; B embeds incoming audio.
    - ``B runtime mapped by M1 into A's space``: NESSA M1 (same orientation) maps B's runtime embeddings into A's
      space; profiles stay as stored.
    - ``A profiles and B runtime mapped by M3 into a new space`` (with ``"nessa-m3"`` in ``methods``): M3's
      enrollment side migrates the stored A profiles once, its runtime side maps every B embedding.

    The aligners are fitted on the paired rows of ``pool`` (all of them, or fewer with ``calibration_holdout``).
    The threshold of each system is calibrated on trials built from the rows ``calibrate_on`` (default: all;
    the study passes its alignment split, whose speakers the encoders never saw) with :func:`alignment_trials`
    (``k_enroll``, ``n_nontarget_per_profile``, ``seed``) at FAR = ``far`` (:func:`threshold_at_far`); the
    evaluation trials are only read to measure. By default (``calibration_holdout=0``) the mapped systems are
    calibrated on utterances their aligner was fitted on (in-sample); with ``calibration_holdout=f`` a share
    ``f`` of the calibration speakers (drawn from ``seed``) is kept out of the fits and every system is
    calibrated on those speakers only.

    Parameters
    ----------
    pool : nessa_lib.embeddings.PairedSplits
        The paired fit/calibration pool (e.g. :func:`nessa_lib.embeddings.load_paired_splits` of A and B):
        ``pool.x`` by A (enrollment side), ``pool.y`` by B (runtime side), ``pool.speaker_ids``,
        ``pool.utt_ids`` and ``pool.splits`` (the split of each row, which ``calibrate_on`` may name).
    a_eval, b_eval : array_like, shapes (m, d_a), (m, d_b)
        Evaluation embeddings of ``utt_ids_eval`` by A and by B.
    enroll, trials : DataFrame
        Evaluation enrollment and trial lists.
    far : float or sequence of float
        Operating point, a FAR fraction (0.01 = 1 %), or several (e.g. ``evaluate.far_targets``, with the paper's
        0.125): the aligners, calibration lists and scores are then shared, each target gets its own thresholds,
        and the table has one block of rows per target (see Returns).
    seed : int
        Seed of the aligner fits and of the calibration lists.
    k_enroll, n_nontarget_per_profile : int
        Shape of the calibration lists (as the evaluation lists, ideally).
    hparams : dict, optional
        ``{"nessa-m1": {...}, ...}`` overrides for the aligners fitted here.
    enroll_flag_align : array_like of bool, shape (n,), optional
        Enrollment-condition flags of the pool's rows (see :func:`alignment_trials`).
    calibration_holdout : float
        Share of calibration speakers kept out of the fits (0 = fit on every row).
    calibrate_on : str, sequence of str, or array_like of bool, shape (n,), optional
        Rows whose utterances build the calibration trials: the pool's rows of the named split(s)
        (``pool.splits``), or a boolean mask of the pool's rows (default: every row).
    aligners : mapping of str to Aligner, optional
        Already fitted aligners of ``methods`` (enrollment = A, runtime = B) fitted on these paired rows, e.g. the
        pipeline's stage-04 aligners: used instead of refitting (not with a holdout).
    methods : sequence of str
        The aligned deployments to compare, in row order: any of ``"nessa-m2"``, ``"nessa-m1"``, ``"nessa-m3"``.
    boot : nessa_lib.evaluation.bootstrap.SpeakerBootstrap, optional
        Speaker-bootstrap rounds of the evaluation ``trials``: adds 95 % intervals ``<column>_lo`` / ``_hi`` of
        ``eer``, ``frr_at_far_oracle``, ``far_deployed``, ``frr_deployed``, ``rel_frr_impact``,
        ``rel_frr_impact_oracle``, ``far_at_aa_threshold`` and ``frr_at_aa_threshold``. The thresholds stay fixed
        (they were calibrated on other data), so these intervals are the evaluation speakers' share of the
        uncertainty, not the calibration's. The relative impacts are paired: each round divides the control's
        and the system's FRR on the same resampled speakers.

    Returns
    -------
    DataFrame
        One row per system, columns (all rates fractions):

        - ``eer``; ``frr_at_far_oracle`` and ``threshold_oracle``: FRR at FAR <= ``far`` with the threshold
          chosen on the evaluation trials themselves (reference only: not deployable);
        - ``threshold_calibrated``: chosen on the alignment-split trials; ``far_calibration``: its FAR there;
        - ``far_deployed``, ``frr_deployed``: evaluation FAR and FRR at ``threshold_calibrated``;
        - ``rel_frr_impact``: :func:`relative_frr_impact` of ``frr_deployed`` against the ``A/A`` row (each
          system at its own calibrated threshold, as the two arms of an A/B test run); ``rel_frr_impact_oracle``:
          the same of ``frr_at_far_oracle`` (both systems at FAR <= ``far`` on the evaluation trials exactly);
          0 for ``A/A`` itself, NaN where A/A rejects no target;
        - ``threshold_aa``: A/A's calibrated threshold (the same in every row); ``far_at_aa_threshold``,
          ``frr_at_aa_threshold``: evaluation FAR and FRR when that threshold is naively kept after the upgrade.

        With a sequence of ``far``, the blocks of every target one after the other, indexed by
        ``(far_target, system)``. ``attrs``: ``far`` (as given: a float or a tuple), ``n_calibration_trials``,
        ``n_calibration_nontarget``, ``n_fit_pairs``, ``calibration_holdout``.

    Examples
    --------
    >>> from nessa_lib import toy
    >>> p = toy.make_paired_spaces(12, 5, rng=np.random.default_rng(0))
    >>> ids = np.array([f"u{i}" for i in range(len(p.x))])
    >>> enroll, trials = alignment_trials(p.speakers, ids, k_enroll=2, n_nontarget_per_profile=20, rng=1)
    >>> hp = {m: {"max_epochs": 2, "hidden_dim": 8} for m in ("nessa-m1", "nessa-m2")}
    >>> pool = PairedSplits(p.x, p.y, ids, p.speakers, np.full(len(ids), "align"), "A@1", "B@1")
    >>> t = ab_case_study(pool, p.x, p.y, ids, enroll, trials, far=0.1, hparams=hp, k_enroll=2,
    ...                   n_nontarget_per_profile=20, calibrate_on="align")
    >>> t.index.tolist()
    ['A/A', 'B/B', 'B runtime + A profiles migrated by M2', "B runtime mapped by M1 into A's space"]
    >>> t.loc["A/A", ["frr_deployed", "rel_frr_impact"]].tolist()  # A/A rejects no target here: no share to take
    [0.0, nan]
    """
    targets = (far,) if np.ndim(far) == 0 else tuple(far)
    if not targets:
        raise ValueError("far must be a FAR fraction or a non-empty sequence of them")
    targets = tuple(_far_check(f) for f in targets)
    if len(set(targets)) != len(targets):
        raise ValueError(f"far must not repeat a target, got {list(targets)}")
    methods = tuple(methods)
    unknown = [m for m in methods if m not in AB_DEPLOYMENTS]
    if unknown or len(set(methods)) != len(methods):
        raise ValueError(f"methods must be distinct names among {list(AB_DEPLOYMENTS)}, got {list(methods)}")
    if not 0.0 <= calibration_holdout < 1.0:
        raise ValueError(f"calibration_holdout must be a fraction in [0, 1), got {calibration_holdout}")
    if not isinstance(pool, PairedSplits):
        raise TypeError(f"ab_case_study takes the paired fit/calibration pool as a nessa_lib.embeddings.PairedSplits "
                        f"(x = A, y = B), got {type(pool).__name__}")
    a_align, b_align = np.asarray(pool.x), np.asarray(pool.y)
    speakers_align, utt_ids_align = np.asarray(pool.speaker_ids), np.asarray(pool.utt_ids)
    n = len(speakers_align)
    in_cal = _calibration_rows(pool, calibrate_on, n)
    if in_cal.shape != (n,) or not in_cal.any():
        raise ValueError(f"calibrate_on must be a boolean mask of the {n} alignment rows with at least one True")
    fit_rows, cal_rows = np.arange(n), np.flatnonzero(in_cal)
    if calibration_holdout > 0:
        spk_order, _ = _nested_order(speakers_align[cal_rows], seed)
        held = spk_order[: max(2, int(round(calibration_holdout * len(spk_order))))]
        is_cal = np.isin(speakers_align, held) & in_cal
        fit_rows, cal_rows = np.flatnonzero(~np.isin(speakers_align, held)), np.flatnonzero(is_cal)
    if aligners is not None:
        missing = set(methods) - set(aligners)
        if missing or calibration_holdout > 0:
            raise ValueError(f"pre-fitted aligners need every one of methods {list(methods)} and calibration_holdout=0 "
                             f"(missing {sorted(missing)}, calibration_holdout={calibration_holdout})")
        for a in aligners.values():
            a.map_enrollment(a_align[:1]), a.map_runtime(b_align[:1])  # wrong dimensions fail here, clearly
    else:
        aligners = fit_aligners(a_align[fit_rows], b_align[fit_rows], speakers_align[fit_rows],
                                methods=methods, seed=seed, hparams=hparams)
    flags = None if enroll_flag_align is None else np.asarray(enroll_flag_align)[cal_rows]
    cal_enroll, cal_trials = alignment_trials(speakers_align[cal_rows], utt_ids_align[cal_rows], k_enroll=k_enroll,
                                              n_nontarget_per_profile=n_nontarget_per_profile, rng=seed,
                                              enroll_flag=flags)

    def systems(a, b, ids, en, tr):
        return {
            AB_CONTROL: score_lists(a, a, ids, en, tr),
            AB_REENROLL: score_lists(b, b, ids, en, tr),
            **{AB_DEPLOYMENTS[m]: aligned_scores(aligners[m], a, b, ids, en, tr) for m in methods},
        }

    cal = systems(a_align[cal_rows], b_align[cal_rows], utt_ids_align[cal_rows], cal_enroll, cal_trials)
    ev = systems(a_eval, b_eval, utt_ids_eval, enroll, trials)
    cal_labels, ev_labels = cal_trials["label"].to_numpy(), trials["label"].to_numpy()
    # The bootstrap's per-round EER and FRR at every target, one pass per system for all targets.
    rounds = {name: boot.metrics(s, fars=targets) for name, s in ev.items()} if boot is not None else None
    blocks = {f: operating_point_rows(f, cal, cal_labels, ev, ev_labels, boot=boot, rounds=rounds) for f in targets}
    if np.ndim(far) == 0:
        table = blocks[targets[0]]
    else:
        table = pd.concat(blocks, names=["far_target"])
    table.attrs.update(far=targets[0] if np.ndim(far) == 0 else targets, n_calibration_trials=int(len(cal_trials)),
                       n_calibration_nontarget=int((cal_labels == 0).sum()), n_fit_pairs=int(len(fit_rows)),
                       calibration_holdout=float(calibration_holdout))
    return table


def operating_point_rows(far: float, cal: Mapping, cal_labels, ev: Mapping, ev_labels, *, boot=None,
                         rounds: Mapping | None = None) -> pd.DataFrame:
    """The rows of :func:`ab_case_study` at one FAR target, from every system's calibration and evaluation scores.

    Parameters
    ----------
    far : float
        FAR target, a fraction.
    cal, ev : mapping of str to array_like of float
        ``{system: trial scores}`` on the calibration and on the evaluation trials; ``A/A`` (the control) among
        them.
    cal_labels, ev_labels : array_like of {0, 1}
        Labels of the calibration and evaluation trials.
    boot : nessa_lib.evaluation.bootstrap.SpeakerBootstrap, optional
        Rounds of the evaluation trials: adds the ``_lo``/``_hi`` columns (see :func:`ab_case_study`).
    rounds : mapping, optional
        ``{system: boot.metrics(scores, fars=(..., far, ...))}`` when already computed (else computed here).

    Returns
    -------
    DataFrame
        Index ``system``, the columns of :func:`ab_case_study`.

    Examples
    --------
    >>> cal = {"A/A": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "B/B": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}
    >>> ev = {"A/A": [0.1, 0.2, 0.25, 0.9], "B/B": [0.1, 0.2, 0.6, 0.9]}
    >>> t = operating_point_rows(0.25, cal, [0, 0, 0, 0, 1, 1], ev, [0, 0, 1, 1])  # threshold just above 0.3
    >>> t["frr_deployed"].tolist(), t["rel_frr_impact"].tolist()
    ([0.5, 0.0], [0.0, 1.0])
    """
    from nessa_lib.evaluation.bootstrap import interval

    if AB_CONTROL not in ev or AB_CONTROL not in cal:
        raise ValueError(f"the systems must include the control {AB_CONTROL!r}, got {list(ev)}")
    if boot is not None and rounds is None:
        rounds = {name: boot.metrics(s, fars=(far,)) for name, s in ev.items()}
    thr = {name: threshold_at_far(s, cal_labels, far) for name, s in cal.items()}
    rows, samples = {}, {}
    for name, s in ev.items():
        ts = metrics.TrialScores.from_scores(s, ev_labels)
        far_dep, frr_dep = rates_at_threshold(s, ev_labels, thr[name])
        far_aa, frr_aa = rates_at_threshold(s, ev_labels, thr[AB_CONTROL])
        rows[name] = dict(
            eer=ts.eer(),
            frr_at_far_oracle=ts.frr_at_far(far),
            rel_frr_impact_oracle=np.nan,  # filled below, once the control's row is known
            threshold_oracle=threshold_at_far(s, ev_labels, far),
            threshold_calibrated=thr[name],
            far_calibration=rates_at_threshold(cal[name], cal_labels, thr[name])[0],
            far_deployed=far_dep,
            frr_deployed=frr_dep,
            rel_frr_impact=np.nan,
            threshold_aa=thr[AB_CONTROL],
            far_at_aa_threshold=far_aa,
            frr_at_aa_threshold=frr_aa,
        )
        if boot is not None:
            sm = {"eer": rounds[name]["eer"], "frr_at_far_oracle": rounds[name][operating_points.frr_key(far)]}
            sm["far_deployed"], sm["frr_deployed"] = boot.rates_at(s, thr[name])
            sm["far_at_aa_threshold"], sm["frr_at_aa_threshold"] = boot.rates_at(s, thr[AB_CONTROL])
            samples[name] = sm
    control = rows[AB_CONTROL]
    for name, r in rows.items():
        r["rel_frr_impact"] = relative_frr_impact(control["frr_deployed"], r["frr_deployed"])
        r["rel_frr_impact_oracle"] = relative_frr_impact(control["frr_at_far_oracle"], r["frr_at_far_oracle"])
    if boot is not None:
        c = samples[AB_CONTROL]
        for name, sm in samples.items():
            # Paired: the control's and the system's FRR of the same round (the same resampled speakers).
            sm["rel_frr_impact"] = relative_frr_impact(c["frr_deployed"], sm["frr_deployed"])
            sm["rel_frr_impact_oracle"] = relative_frr_impact(c["frr_at_far_oracle"], sm["frr_at_far_oracle"])
            for col, v in sm.items():
                rows[name][f"{col}_lo"], rows[name][f"{col}_hi"] = interval(v)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "system"
    return table
