"""The study: per-pair comparison tables, a deployment case study, an alignment-data ablation, the paper's claims.

For a pair of an enrollment model X and a runtime model Y, the comparison rows are: symmetric X/X (profiles and
tests both from X: the status quo), symmetric Y/Y (everyone re-enrolled with the new model), and each alignment
method with X-enrolled profiles against Y test embeddings. ``gain_recovered`` is the share of the symmetric
update's EER gain that the asymmetric system keeps, ``(EER_XX - EER) / (EER_XX - EER_YY)``: 1 means as good as
re-enrolling everybody, 0 means no better than not updating. When Y is worse than X the "gain" is a loss and the
ratio reads the other way round; it is reported as measured.

The pipeline fits aligners in one stage (:func:`fit_aligners`, then ``Aligner.save``) and evaluates them in
another (:func:`evaluate_pair`); :func:`compare_methods` does both at once.

Thresholds. A deployed system needs a decision threshold, and it must not be chosen on the evaluation trials.
:func:`alignment_trials` builds enrollment + trial lists on the *alignment* split, :func:`threshold_at_far` picks
the threshold for a target FAR on them, and :func:`rates_at_threshold` reads the FAR/FRR that threshold actually
gives on the evaluation trials (:func:`ab_case_study`). All rates are fractions in [0, 1]; a trial is accepted
when ``score >= threshold`` (the :mod:`nessa_lib.metrics` convention).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from nessa_lib import align, evaluation, manifest, metrics

SYMMETRIC_X = "symmetric X/X"
SYMMETRIC_Y = "symmetric Y/Y"
NESSA_METHODS = ("nessa-m1", "nessa-m2", "nessa-m3")

# Rows of ab_case_study (model A in production, B the candidate).
AB_CONTROL = "A/A"
AB_REENROLL = "B/B"
AB_M2 = "B runtime + A profiles migrated by M2"
AB_M1 = "B runtime mapped by M1 into A's space"
AB_M3 = "A profiles and B runtime mapped by M3 into a new space"
AB_DEPLOYMENTS = {"nessa-m2": AB_M2, "nessa-m1": AB_M1, "nessa-m3": AB_M3}

CLASSIFICATION_OBJECTIVES = frozenset({"softmax", "aam"})
CONTRASTIVE_OBJECTIVES = frozenset({"supcon", "ge2e", "pretrained-ge2e"})


def gain_recovered(eer_xx: float, eer_yy: float, eer: float) -> float:
    """Share of the symmetric update's EER gain kept by an asymmetric system (NaN if X and Y tie).

    Examples
    --------
    >>> gain_recovered(0.5, 0.25, 0.375)  # halfway between X/X and Y/Y
    0.5
    """
    d = eer_xx - eer_yy
    return float((eer_xx - eer) / d) if d != 0 else float("nan")


# --------------------------------------------------------------------------------------------
# Fitting and evaluating one pair
# --------------------------------------------------------------------------------------------


def fit_aligners(x_align, y_align, speakers_align, *, methods=align.METHODS, seed: int = 0,
                 hparams: dict | None = None, enroll_model_id: str | None = None,
                 runtime_model_id: str | None = None, progress: bool = False,
                 timings: dict | None = None) -> dict[str, align.Aligner]:
    """Fit one aligner per method on the paired alignment embeddings.

    Parameters
    ----------
    x_align, y_align : array_like, shapes (n, d_x), (n, d_y)
        Paired embeddings of the alignment utterances by the enrollment model X and the runtime model Y.
    speakers_align : array_like, shape (n,)
        Their speakers.
    methods : sequence of str
        Methods of :data:`nessa_lib.align.METHODS`; ``identity`` is skipped when the dimensions differ.
    seed : int
        Seed of every fit.
    hparams : dict, optional
        ``{method: {name: value}}`` overrides of the methods' defaults.
    enroll_model_id, runtime_model_id : str, optional
        Model fingerprints stored in the aligners.
    progress : bool
        Show tqdm bars while training.
    timings : dict, optional
        If given, filled with ``{method: fit seconds}`` (pass it on to :func:`evaluate_pair` as ``fit_s``).

    Returns
    -------
    dict of str to Aligner
        In the order of ``methods``.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(20, 3))
    >>> sorted(fit_aligners(x, x[:, :2], np.repeat(np.arange(5), 4), methods=["identity", "linear"]))
    ['linear']
    """
    hparams = hparams or {}
    dx, dy = np.shape(x_align)[1], np.shape(y_align)[1]
    aligners = {}
    for method in methods:
        if method == "identity" and dx != dy:
            continue  # no map: an identity "alignment" is only defined between equal dimensions
        t = time.perf_counter()
        aligners[method] = align.fit(method, x_align, y_align, speakers_align, seed=seed,
                                     enroll_model_id=enroll_model_id, runtime_model_id=runtime_model_id,
                                     progress=progress, **hparams.get(method, {}))
        if timings is not None:
            timings[method] = time.perf_counter() - t
    return aligners


def aligned_scores(aligner, x_eval, y_eval, utt_ids_eval, enroll: pd.DataFrame, trials: pd.DataFrame) -> np.ndarray:
    """Trial scores of an asymmetric system: X-enrolled profiles migrated by ``aligner``, Y tests mapped.

    Profiles are averaged in X's own space and then mapped, as a deployed system migrates stored profiles.

    Examples
    --------
    >>> e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    >>> a = align.fit("identity", e, e, [0, 1, 0])
    >>> enroll = pd.DataFrame({"profile_id": ["A"], "utt_id": ["u0"]})
    >>> trials = pd.DataFrame({"label": [0, 1], "profile_id": ["A", "A"], "test_utt_id": ["u1", "u2"]})
    >>> aligned_scores(a, e, e, ["u0", "u1", "u2"], enroll, trials).round(3)
    array([0.   , 0.995], dtype=float32)
    """
    return evaluation.score_lists(x_eval, aligner.map_runtime(y_eval), utt_ids_eval, enroll, trials,
                                  enroll_map=aligner.map_enrollment)


def evaluate_pair(aligners: Mapping, x_eval, y_eval, utt_ids_eval, enroll: pd.DataFrame, trials: pd.DataFrame,
                  *, fit_s: Mapping | None = None) -> pd.DataFrame:
    """Score the evaluation lists symmetrically with X and with Y, then with every aligner.

    Parameters
    ----------
    aligners : mapping of str to Aligner
        Fitted aligners (e.g. from :func:`fit_aligners` or ``align.load``), enrollment side = X, runtime = Y.
    x_eval, y_eval : array_like, shapes (m, d_x), (m, d_y)
        Embeddings of the evaluation utterances ``utt_ids_eval`` by X and by Y.
    enroll, trials : DataFrame
        Enrollment list (``profile_id, utt_id``) and trial list (``label, profile_id, test_utt_id``).
    fit_s : mapping of str to float, optional
        Fit seconds per aligner (``timings`` of :func:`fit_aligners`); NaN where unknown.

    Returns
    -------
    table : DataFrame
        One row per system (index ``system``: ``symmetric X/X``, ``symmetric Y/Y``, then the aligners in order),
        columns: the metrics of :func:`nessa_lib.metrics.verification_metrics`, ``gain_recovered``,
        ``rel_frr_change`` (FRR at FAR 1 % relative to X/X) and ``fit_s`` (0 for the symmetric rows).

    Examples
    --------
    >>> e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    >>> enroll = pd.DataFrame({"profile_id": ["A"], "utt_id": ["u0"]})
    >>> trials = pd.DataFrame({"label": [0, 1], "profile_id": ["A", "A"], "test_utt_id": ["u1", "u2"]})
    >>> t = evaluate_pair({"linear": align.fit("linear", e, e, [0, 1, 0])}, e, e, ["u0", "u1", "u2"], enroll, trials)
    >>> t.index.tolist(), float(t.loc["linear", "eer"])
    (['symmetric X/X', 'symmetric Y/Y', 'linear'], 0.0)
    """
    fit_s = dict(fit_s or {})
    rows = {
        SYMMETRIC_X: evaluation.evaluate_lists(x_eval, x_eval, utt_ids_eval, enroll, trials),
        SYMMETRIC_Y: evaluation.evaluate_lists(y_eval, y_eval, utt_ids_eval, enroll, trials),
    }
    for method, a in aligners.items():
        rows[method] = metrics.verification_metrics(
            aligned_scores(a, x_eval, y_eval, utt_ids_eval, enroll, trials), trials["label"].to_numpy())
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "system"
    xx, yy = table.loc[SYMMETRIC_X, "eer"], table.loc[SYMMETRIC_Y, "eer"]
    table["gain_recovered"] = [gain_recovered(xx, yy, e) for e in table["eer"]]
    frr_xx = table.loc[SYMMETRIC_X, "frr_at_far0.01"]
    table["rel_frr_change"] = (table["frr_at_far0.01"] - frr_xx) / frr_xx if frr_xx > 0 else np.nan
    table["fit_s"] = [0.0, 0.0] + [float(fit_s.get(m, np.nan)) for m in aligners]
    return table


def compare_methods(x_align, y_align, speakers_align, x_eval, y_eval, utt_ids_eval, enroll: pd.DataFrame,
                    trials: pd.DataFrame, *, methods=align.METHODS, seed: int = 0, hparams: dict | None = None,
                    enroll_model_id: str | None = None, runtime_model_id: str | None = None,
                    progress: bool = False):
    """Fit every method on the alignment pairs and score the evaluation lists with each.

    :func:`fit_aligners` followed by :func:`evaluate_pair`.

    Parameters
    ----------
    x_align, y_align : array_like, shapes (n, d_x), (n, d_y)
        Paired embeddings of the alignment utterances by X and by Y.
    speakers_align : array_like, shape (n,)
        Their speakers.
    x_eval, y_eval : array_like, shapes (m, d_x), (m, d_y)
        Embeddings of the evaluation utterances ``utt_ids_eval`` by X and by Y.
    enroll, trials : DataFrame
        Enrollment list (``profile_id, utt_id``) and trial list (``label, profile_id, test_utt_id``).
    methods : sequence of str
        Alignment methods to compare; ``identity`` is skipped when the dimensions differ.
    seed : int
        Seed of every fit.
    hparams : dict, optional
        ``{method: {name: value}}`` overrides of the methods' defaults.

    Returns
    -------
    table : DataFrame
        One row per system (index ``system``), columns: the metrics of
        :func:`nessa_lib.metrics.verification_metrics`, ``gain_recovered``, ``rel_frr_change`` (FRR at FAR 1 %
        relative to X/X) and ``fit_s``.
    aligners : dict of str to Aligner

    Examples
    --------
    >>> from nessa_lib import toy
    >>> p = toy.make_paired_spaces(30, 4, rng=np.random.default_rng(0))
    >>> ids = np.array([f"u{i}" for i in range(len(p.x))])
    >>> enroll = pd.DataFrame({"profile_id": p.speakers[::4].astype(str), "utt_id": ids[::4]})
    >>> test = np.setdiff1d(np.arange(len(ids)), np.arange(0, len(ids), 4))
    >>> trials = pd.DataFrame({"label": 1, "profile_id": p.speakers[test].astype(str), "test_utt_id": ids[test]})
    >>> trials = pd.concat([trials, trials.assign(label=0, profile_id=np.roll(trials.profile_id, 5))])
    >>> table, _ = compare_methods(p.x, p.y, p.speakers, p.x, p.y, ids, enroll, trials, methods=["linear"])
    >>> table.index.tolist()
    ['symmetric X/X', 'symmetric Y/Y', 'linear']
    """
    timings: dict = {}
    aligners = fit_aligners(x_align, y_align, speakers_align, methods=methods, seed=seed, hparams=hparams,
                            enroll_model_id=enroll_model_id, runtime_model_id=runtime_model_id,
                            progress=progress, timings=timings)
    table = evaluate_pair(aligners, x_eval, y_eval, utt_ids_eval, enroll, trials, fit_s=timings)
    return table, aligners


# --------------------------------------------------------------------------------------------
# Thresholds calibrated on the alignment split
# --------------------------------------------------------------------------------------------


def alignment_trials(speakers, utt_ids, *, k_enroll: int, n_nontarget_per_profile: int, rng, enroll_flag=None):
    """Enrollment and trial lists on the alignment split, for calibrating thresholds without evaluation data.

    Built exactly like the evaluation lists (:func:`nessa_lib.manifest.make_enrollment_and_trials`): one profile
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
    return manifest.make_enrollment_and_trials(df, k_enroll=k_enroll, n_nontarget_per_profile=n_nontarget_per_profile,
                                               rng=rng)


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
    FRR as the operating point :func:`nessa_lib.metrics.frr_at_far` reports (no score lies strictly between),
    and on new trials it accepts everything scored above ``v``. Tied non-target scores are rejected together,
    so the FAR reached may be below ``far``. ``far >= 1`` (accept-all allowed) gives ``-inf``.

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


# --------------------------------------------------------------------------------------------
# Deployment case study: model A in production, candidate B
# --------------------------------------------------------------------------------------------


def ab_case_study(a_align, b_align, speakers_align, utt_ids_align, a_eval, b_eval, utt_ids_eval,
                  enroll: pd.DataFrame, trials: pd.DataFrame, *, far: float = 0.01, seed: int = 0,
                  k_enroll: int = 3, n_nontarget_per_profile: int = 200, hparams: dict | None = None,
                  enroll_flag_align=None, calibration_holdout: float = 0.0, calibrate_on=None,
                  aligners: Mapping | None = None, methods=("nessa-m2", "nessa-m1")) -> pd.DataFrame:
    """Upgrade model A (in production, profiles stored) to candidate B: error rates as deployed.

    Systems (rows, index ``system``):

    - ``A/A``: the control, nothing changes.
    - ``B/B``: everyone re-enrolled with B (needs the enrollment audio again).
    - ``B runtime + A profiles migrated by M2``: NESSA M2 fitted with enrollment = A, runtime = B maps the stored
      A profiles into B's space once; B embeds incoming audio.
    - ``B runtime mapped by M1 into A's space``: NESSA M1 (same orientation) maps B's runtime embeddings into A's
      space; profiles stay as stored.
    - ``A profiles and B runtime mapped by M3 into a new space`` (with ``"nessa-m3"`` in ``methods``): M3's
      enrollment side migrates the stored A profiles once, its runtime side maps every B embedding.

    The aligners are fitted on the paired ``*_align`` data (all of it, or less with ``calibration_holdout``).
    The threshold of each system is calibrated on trials built from the rows ``calibrate_on`` (default: all;
    the study passes its alignment split, whose speakers the encoders never saw) with :func:`alignment_trials`
    (``k_enroll``, ``n_nontarget_per_profile``, ``seed``) at FAR = ``far`` (:func:`threshold_at_far`); the
    evaluation trials are only read to measure. By default (``calibration_holdout=0``) the mapped systems are
    calibrated on utterances their aligner was fitted on (in-sample); with ``calibration_holdout=f`` a share
    ``f`` of the calibration speakers (drawn from ``seed``) is kept out of the fits and every system is
    calibrated on those speakers only.

    Parameters
    ----------
    a_align, b_align : array_like, shapes (n, d_a), (n, d_b)
        Paired alignment embeddings by A and by B.
    speakers_align, utt_ids_align : array_like, shape (n,)
        Their speakers and utterance ids.
    a_eval, b_eval : array_like, shapes (m, d_a), (m, d_b)
        Evaluation embeddings of ``utt_ids_eval`` by A and by B.
    enroll, trials : DataFrame
        Evaluation enrollment and trial lists.
    far : float
        Operating point, a FAR fraction (0.01 = 1 %).
    seed : int
        Seed of the aligner fits and of the calibration lists.
    k_enroll, n_nontarget_per_profile : int
        Shape of the calibration lists (as the evaluation lists, ideally).
    hparams : dict, optional
        ``{"nessa-m1": {...}, ...}`` overrides for the aligners fitted here.
    enroll_flag_align : array_like of bool, optional
        Enrollment-condition flags of the alignment utterances (see :func:`alignment_trials`).
    calibration_holdout : float
        Share of calibration speakers kept out of the fits (0 = fit on every row).
    calibrate_on : array_like of bool, shape (n,), optional
        Rows whose utterances build the calibration trials (default: every row).
    aligners : mapping of str to Aligner, optional
        Already fitted aligners of ``methods`` (enrollment = A, runtime = B) fitted on these paired rows, e.g. the
        pipeline's stage-04 aligners: used instead of refitting (not with a holdout).
    methods : sequence of str
        The aligned deployments to compare, in row order: any of ``"nessa-m2"``, ``"nessa-m1"``, ``"nessa-m3"``.

    Returns
    -------
    DataFrame
        One row per system, columns (all rates fractions):

        - ``eer``; ``frr_at_far_oracle`` and ``threshold_oracle``: FRR at FAR <= ``far`` with the threshold
          chosen on the evaluation trials themselves (reference only: not deployable);
        - ``threshold_calibrated``: chosen on the alignment-split trials; ``far_calibration``: its FAR there;
        - ``far_deployed``, ``frr_deployed``: evaluation FAR and FRR at ``threshold_calibrated``;
        - ``threshold_aa``: A/A's calibrated threshold (the same in every row); ``far_at_aa_threshold``,
          ``frr_at_aa_threshold``: evaluation FAR and FRR when that threshold is naively kept after the upgrade.

        ``attrs``: ``far``, ``n_calibration_trials``, ``n_calibration_nontarget``, ``n_fit_pairs``,
        ``calibration_holdout``.

    Examples
    --------
    >>> from nessa_lib import toy
    >>> p = toy.make_paired_spaces(12, 5, rng=np.random.default_rng(0))
    >>> ids = np.array([f"u{i}" for i in range(len(p.x))])
    >>> enroll, trials = alignment_trials(p.speakers, ids, k_enroll=2, n_nontarget_per_profile=20, rng=1)
    >>> hp = {m: {"max_epochs": 2, "hidden_dim": 8} for m in ("nessa-m1", "nessa-m2")}
    >>> t = ab_case_study(p.x, p.y, p.speakers, ids, p.x, p.y, ids, enroll, trials, far=0.1, hparams=hp,
    ...                   k_enroll=2, n_nontarget_per_profile=20)
    >>> t.index.tolist()
    ['A/A', 'B/B', 'B runtime + A profiles migrated by M2', "B runtime mapped by M1 into A's space"]
    """
    far = _far_check(far)
    methods = tuple(methods)
    unknown = [m for m in methods if m not in AB_DEPLOYMENTS]
    if unknown or len(set(methods)) != len(methods):
        raise ValueError(f"methods must be distinct names among {list(AB_DEPLOYMENTS)}, got {list(methods)}")
    if not 0.0 <= calibration_holdout < 1.0:
        raise ValueError(f"calibration_holdout must be a fraction in [0, 1), got {calibration_holdout}")
    a_align, b_align = np.asarray(a_align), np.asarray(b_align)
    speakers_align, utt_ids_align = np.asarray(speakers_align), np.asarray(utt_ids_align)
    n = len(speakers_align)
    in_cal = np.ones(n, dtype=bool) if calibrate_on is None else np.asarray(calibrate_on, dtype=bool)
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
            AB_CONTROL: evaluation.score_lists(a, a, ids, en, tr),
            AB_REENROLL: evaluation.score_lists(b, b, ids, en, tr),
            **{AB_DEPLOYMENTS[m]: aligned_scores(aligners[m], a, b, ids, en, tr) for m in methods},
        }

    cal = systems(a_align[cal_rows], b_align[cal_rows], utt_ids_align[cal_rows], cal_enroll, cal_trials)
    ev = systems(a_eval, b_eval, utt_ids_eval, enroll, trials)
    cal_labels, ev_labels = cal_trials["label"].to_numpy(), trials["label"].to_numpy()
    thr = {name: threshold_at_far(s, cal_labels, far) for name, s in cal.items()}
    rows = {}
    for name, s in ev.items():
        ts = metrics.TrialScores.from_scores(s, ev_labels)
        t_oracle = threshold_at_far(s, ev_labels, far)
        far_dep, frr_dep = rates_at_threshold(s, ev_labels, thr[name])
        far_aa, frr_aa = rates_at_threshold(s, ev_labels, thr[AB_CONTROL])
        rows[name] = dict(
            eer=ts.eer(),
            frr_at_far_oracle=ts.frr_at_far(far),
            threshold_oracle=t_oracle,
            threshold_calibrated=thr[name],
            far_calibration=rates_at_threshold(cal[name], cal_labels, thr[name])[0],
            far_deployed=far_dep,
            frr_deployed=frr_dep,
            threshold_aa=thr[AB_CONTROL],
            far_at_aa_threshold=far_aa,
            frr_at_aa_threshold=frr_aa,
        )
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "system"
    table.attrs.update(far=far, n_calibration_trials=int(len(cal_trials)),
                       n_calibration_nontarget=int((cal_labels == 0).sum()), n_fit_pairs=int(len(fit_rows)),
                       calibration_holdout=float(calibration_holdout))
    return table


# --------------------------------------------------------------------------------------------
# How much alignment data is needed
# --------------------------------------------------------------------------------------------


def _nested_order(speakers: np.ndarray, seed: int):
    """Speakers in a seeded random order, and each speaker's rows in a seeded random order.

    Taking prefixes of both orders gives nested subsets: a smaller subsample is always inside a larger one.
    """
    rng = np.random.default_rng(seed)
    uniq = np.unique(speakers)
    spk_order = uniq[rng.permutation(len(uniq))]
    rows = {s: np.flatnonzero(speakers == s) for s in uniq}
    rows = {s: r[rng.permutation(len(r))] for s, r in rows.items()}  # drawn in sorted speaker order
    return spk_order, rows


def alignment_ablation(x_align, y_align, speakers_align, x_eval, y_eval, utt_ids_eval, enroll: pd.DataFrame,
                       trials: pd.DataFrame, *, method: str = "nessa-m2", n_speakers=(25, 50, 100, None),
                       utts_per_speaker=(2, 4, 8, None), seed: int = 0, hparams: dict | None = None) -> pd.DataFrame:
    """EER of one method fitted on subsamples of the alignment data: how much paired data does it need?

    The alignment speakers are put in an order drawn from ``seed``, and each speaker's utterances too; the
    subsample (n, u) takes the first ``n`` speakers and the first ``u`` utterances of each, so subsamples are
    nested in both directions and the same for every method and grid. ``None`` means all (speakers or
    utterances); requests beyond what exists are capped (``n_speakers_used``, ``n_pairs`` say what was used).
    Every fit uses ``seed``.

    Parameters
    ----------
    x_align, y_align, speakers_align
        Paired alignment embeddings (X = enrollment model, Y = runtime model) and their speakers.
    x_eval, y_eval, utt_ids_eval, enroll, trials
        Evaluation embeddings and lists, as in :func:`evaluate_pair`.
    method : str
        Alignment method.
    n_speakers, utts_per_speaker : sequence of int or None
        The grid.
    seed : int
    hparams : dict, optional
        ``{method: {...}}`` overrides.

    Returns
    -------
    DataFrame
        One row per (n_speakers, utts_per_speaker), columns ``n_speakers``, ``utts_per_speaker`` (requested;
        ``None`` as ``-1`` = all), ``n_speakers_used``, ``n_pairs``, ``eer``, ``gain_recovered``, ``fit_s``.
        ``attrs``: ``method``, ``eer_xx``, ``eer_yy``.

    Examples
    --------
    >>> from nessa_lib import toy
    >>> p = toy.make_paired_spaces(10, 4, rng=np.random.default_rng(0))
    >>> ids = np.array([f"u{i}" for i in range(len(p.x))])
    >>> enroll, trials = alignment_trials(p.speakers, ids, k_enroll=1, n_nontarget_per_profile=5, rng=0)
    >>> df = alignment_ablation(p.x, p.y, p.speakers, p.x, p.y, ids, enroll, trials, method="linear",
    ...                         n_speakers=(5, None), utts_per_speaker=(2,))
    >>> df["n_pairs"].tolist()
    [10, 20]
    """
    speakers = np.asarray(speakers_align)
    x, y = np.asarray(x_align), np.asarray(y_align)
    labels = trials["label"].to_numpy()
    eer_xx = metrics.eer(evaluation.score_lists(x_eval, x_eval, utt_ids_eval, enroll, trials), labels)
    eer_yy = metrics.eer(evaluation.score_lists(y_eval, y_eval, utt_ids_eval, enroll, trials), labels)
    spk_order, spk_rows = _nested_order(speakers, seed)
    rows = []
    for n in n_speakers:
        chosen = spk_order if n is None else spk_order[: int(n)]
        for u in utts_per_speaker:
            idx = np.sort(np.concatenate([spk_rows[s] if u is None else spk_rows[s][: int(u)] for s in chosen]))
            timings: dict = {}
            a = fit_aligners(x[idx], y[idx], speakers[idx], methods=[method], seed=seed, hparams=hparams,
                             timings=timings)[method]
            e = metrics.eer(aligned_scores(a, x_eval, y_eval, utt_ids_eval, enroll, trials), labels)
            rows.append(dict(n_speakers=-1 if n is None else int(n), utts_per_speaker=-1 if u is None else int(u),
                             n_speakers_used=len(chosen), n_pairs=len(idx), eer=e,
                             gain_recovered=gain_recovered(eer_xx, eer_yy, e), fit_s=timings[method]))
    df = pd.DataFrame(rows)
    df.attrs.update(method=method, eer_xx=eer_xx, eer_yy=eer_yy)
    return df


# --------------------------------------------------------------------------------------------
# The paper's claims, checked on the study's tables
# --------------------------------------------------------------------------------------------

FINDING_A = "a: the best NESSA variant has a lower EER than speaker-logit"
FINDING_B = "b: the NESSA variant mapping into the better model's space has the lower EER"
FINDING_C = "c: asymmetric update with the best NESSA variant recovers >= 60 % of the symmetric gain"


def _objective_kind(model: str, objectives: Mapping) -> str:
    if model not in objectives:
        raise ValueError(f"paper_findings: no training objective given for model {model!r}")
    obj = objectives[model]
    if obj in CLASSIFICATION_OBJECTIVES:
        return "classification"
    if obj in CONTRASTIVE_OBJECTIVES:
        return "contrastive"
    raise ValueError(f"paper_findings: model {model!r} has unknown objective {obj!r}; known: "
                     f"{sorted(CLASSIFICATION_OBJECTIVES | CONTRASTIVE_OBJECTIVES)}")


def _best_nessa(table: pd.DataFrame):
    present = [m for m in NESSA_METHODS if m in table.index and np.isfinite(table.loc[m, "eer"])]
    if not present:
        return None, np.nan
    best = min(present, key=lambda m: table.loc[m, "eer"])  # ties: first of m1, m2, m3
    return best, float(table.loc[best, "eer"])


def _summary(finding, group, claim, sub: list[dict]) -> dict:
    known = [r for r in sub if r["holds"] is not pd.NA]
    n_hold = sum(bool(r["holds"]) for r in known)
    return dict(finding=finding, group=group, claim=claim, evidence=f"summary over {len(known)} pair(s)",
                holds=(n_hold == len(known)) if known else pd.NA,
                value=n_hold / len(known) if known else np.nan, reference=1.0,
                detail=f"holds in {n_hold} of {len(known)} pair(s)" + (
                    f"; {len(sub) - len(known)} not testable" if len(sub) > len(known) else ""))


def paper_findings(tables: Mapping[str, pd.DataFrame], pairs: Mapping[str, tuple],
                   objectives: Mapping[str, str]) -> pd.DataFrame:
    """Check the paper's three claims on the study's per-pair tables, reported as measured.

    Definitions (EER = the ``eer`` column of the :func:`evaluate_pair` tables; lower is better; "best NESSA" =
    the lowest-EER row among ``nessa-m1``/``nessa-m2``/``nessa-m3`` present in a table):

    (a) *NESSA beats speaker-logit.* Per pair: best-NESSA EER < ``speaker-logit`` EER (strictly). Two groups:
        ``classification`` = both models trained with a classification objective (``softmax``, ``aam``);
        ``contrastive`` = at least one model trained contrastively (``supcon``, ``ge2e``, ``pretrained-ge2e``).
    (b) *Aligning to the better model works better.* Only for model pairs present in both orientations
        ``(P, Q)`` and ``(Q, P)``. The better model is the one with the lower symmetric EER (its ``symmetric
        X/X`` or ``Y/Y`` row, averaged over the two tables). In each of the two tables, the variant whose target
        space is the better model's (``nessa-m1`` if it is the enrollment model, ``nessa-m2`` if it is the
        runtime model) must have a strictly lower EER than the other of the two. Untestable (NA) on a tie of the
        symmetric EERs.
    (c) *Recovery.* Per pair whose runtime model is better (symmetric Y/Y EER < X/X EER): best-NESSA
        ``gain_recovered`` >= 0.6. Pairs where Y is not better are left out (the ratio then measures a loss).

    Each group ends with a summary row: ``holds`` = it holds in every testable pair, ``value`` = the share of
    testable pairs where it holds. ``holds`` is NA where a pair cannot be tested (a method missing) or a group
    has no pair.

    Parameters
    ----------
    tables : mapping of str to DataFrame
        Pair name to its :func:`evaluate_pair` / :func:`compare_methods` table.
    pairs : mapping of str to (str, str)
        Pair name to ``(enrollment model, runtime model)``.
    objectives : mapping of str to str
        Model name to its training objective: ``softmax``, ``aam``, ``supcon``, ``ge2e`` or ``pretrained-ge2e``.

    Returns
    -------
    DataFrame
        Columns ``finding``, ``group``, ``claim`` (plain statement), ``evidence`` (pair name, or the summary),
        ``holds`` (nullable boolean), ``value`` and ``reference`` (the two numbers compared: e.g. best-NESSA
        EER vs speaker-logit EER) and ``detail`` (the numbers in words).

    Examples
    --------
    >>> t = pd.DataFrame({"eer": [0.10, 0.05, 0.06, 0.08, 0.09]}, index=[SYMMETRIC_X, SYMMETRIC_Y, "nessa-m1",
    ...                  "nessa-m2", "speaker-logit"])
    >>> t["gain_recovered"] = (0.10 - t["eer"]) / 0.05
    >>> f = paper_findings({"p": t}, {"p": ("a", "b")}, {"a": "softmax", "b": "aam"})
    >>> f[["group", "evidence", "holds"]].values.tolist()[:2]
    [['classification', 'p', True], ['classification', 'summary over 1 pair(s)', True]]
    """
    for name in tables:
        if name not in pairs:
            raise ValueError(f"paper_findings: table {name!r} has no (enrollment, runtime) models in `pairs`")
    out: list[dict] = []

    # (a) best NESSA vs speaker-logit, by training-objective group.
    claim_a = "The best NESSA variant (M1/M2/M3) has a lower EER than the speaker-logit baseline."
    groups: dict[str, list[dict]] = {"classification": [], "contrastive": []}
    for name, t in tables.items():
        x, y = pairs[name]
        kinds = {_objective_kind(x, objectives), _objective_kind(y, objectives)}
        group = "classification" if kinds == {"classification"} else "contrastive"
        best, e_best = _best_nessa(t)
        e_sl = float(t.loc["speaker-logit", "eer"]) if "speaker-logit" in t.index else np.nan
        ok = bool(e_best < e_sl) if np.isfinite(e_best) and np.isfinite(e_sl) else pd.NA
        groups[group].append(dict(finding=FINDING_A, group=group, claim=claim_a, evidence=name, holds=ok,
                                  value=e_best, reference=e_sl,
                                  detail=f"best NESSA ({best}) EER {e_best:.4f} vs speaker-logit EER {e_sl:.4f}"))
    for group, sub in groups.items():
        out += sub + [_summary(FINDING_A, group, claim_a, sub)]

    # (b) into the better model's space, for pairs present in both orientations.
    claim_b = ("For two models evaluated in both orientations, the NESSA variant that maps into the space of the "
               "model with the lower symmetric EER has the lower EER (M1 when that is the enrollment model, M2 "
               "when it is the runtime model).")
    by_models = {tuple(pairs[n]): n for n in tables}
    sub_b: list[dict] = []
    done: set = set()
    for (p, q), name in by_models.items():
        if (q, p) not in by_models or frozenset((p, q)) in done or p == q:
            continue
        done.add(frozenset((p, q)))
        t_pq, t_qp = tables[name], tables[by_models[(q, p)]]
        # Each model's symmetric EER, averaged over the two tables (identical on a shared evaluation set).
        e_p = np.mean([t_pq.loc[SYMMETRIC_X, "eer"], t_qp.loc[SYMMETRIC_Y, "eer"]])
        e_q = np.mean([t_pq.loc[SYMMETRIC_Y, "eer"], t_qp.loc[SYMMETRIC_X, "eer"]])
        better = p if e_p < e_q else q if e_q < e_p else None
        for pair_name, (enr, run) in ((name, (p, q)), (by_models[(q, p)], (q, p))):
            t = tables[pair_name]
            if better is None:
                sub_b.append(dict(finding=FINDING_B, group="both orientations", claim=claim_b, evidence=pair_name,
                                  holds=pd.NA, value=np.nan, reference=np.nan,
                                  detail=f"{p} and {q} tie on symmetric EER ({e_p:.4f}): no better model"))
                continue
            into_better, into_other = ("nessa-m1", "nessa-m2") if better == enr else ("nessa-m2", "nessa-m1")
            if into_better in t.index and into_other in t.index:
                e_b, e_o = float(t.loc[into_better, "eer"]), float(t.loc[into_other, "eer"])
                ok = bool(e_b < e_o)
            else:
                e_b = e_o = np.nan
                ok = pd.NA
            sub_b.append(dict(finding=FINDING_B, group="both orientations", claim=claim_b, evidence=pair_name,
                              holds=ok, value=e_b, reference=e_o,
                              detail=(f"better model {better} (symmetric EER {min(e_p, e_q):.4f} vs "
                                      f"{max(e_p, e_q):.4f}); {into_better} (into {better}) EER {e_b:.4f} vs "
                                      f"{into_other} EER {e_o:.4f}")))
    out += sub_b + [_summary(FINDING_B, "both orientations", claim_b, sub_b)]

    # (c) gain recovered by the best NESSA variant where the runtime model is the better one.
    claim_c = ("When the runtime model Y is better than the enrollment model X, the asymmetric system with the best "
               "NESSA variant recovers at least 60 % of the EER gain of re-enrolling everyone with Y.")
    sub_c: list[dict] = []
    for name, t in tables.items():
        xx, yy = float(t.loc[SYMMETRIC_X, "eer"]), float(t.loc[SYMMETRIC_Y, "eer"])
        if not yy < xx:
            continue
        best, e_best = _best_nessa(t)
        g = gain_recovered(xx, yy, e_best) if best is not None else np.nan
        ok = bool(g >= 0.6) if np.isfinite(g) else pd.NA
        sub_c.append(dict(finding=FINDING_C, group="Y better than X", claim=claim_c, evidence=name, holds=ok,
                          value=g, reference=0.6,
                          detail=(f"X/X EER {xx:.4f}, Y/Y EER {yy:.4f}, best NESSA ({best}) EER {e_best:.4f}: "
                                  f"gain recovered {g:.3f}")))
    out += sub_c + [_summary(FINDING_C, "Y better than X", claim_c, sub_c)]

    df = pd.DataFrame(out, columns=["finding", "group", "claim", "evidence", "holds", "value", "reference",
                                    "detail"])
    df["holds"] = df["holds"].astype("boolean")
    return df
