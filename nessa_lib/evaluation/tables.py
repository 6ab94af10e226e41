"""The per-pair comparison tables: symmetric X/X and Y/Y against each alignment method.

For a pair of an enrollment model X and a runtime model Y, the comparison rows are: symmetric X/X (profiles and
tests both from X: the status quo), symmetric Y/Y (everyone re-enrolled with the new model), and each alignment
method with X-enrolled profiles against Y test embeddings. ``gain_recovered`` is the share of the symmetric
update's EER gain that the asymmetric system keeps, ``(EER_XX - EER) / (EER_XX - EER_YY)``: 1 means as good as
re-enrolling everybody, 0 means no better than not updating. When Y is worse than X the "gain" is a loss and the
ratio reads the other way round; it is reported as measured.

The pipeline fits aligners in one stage (:func:`fit_aligners`, then ``Aligner.save``) and evaluates them in
another (:func:`evaluate_pair`); :func:`compare_methods` does both at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from nessa_lib.align.aligner import Aligner
from nessa_lib.align.fitting import fit, fit_ensemble
from nessa_lib.align.hparams import METHODS, check_hparams
from nessa_lib.evaluation import metrics, operating_points
from nessa_lib.evaluation.lists import score_lists

SYMMETRIC_X = "symmetric X/X"
SYMMETRIC_Y = "symmetric Y/Y"
NESSA_METHODS = ("nessa-m1", "nessa-m2", "nessa-m3")


def gain_recovered(eer_xx: float, eer_yy: float, eer: float) -> float:
    """Share of the symmetric update's EER gain kept by an asymmetric system (NaN if X and Y tie).

    Examples
    --------
    >>> gain_recovered(0.5, 0.25, 0.375)  # halfway between X/X and Y/Y
    0.5
    """
    d = eer_xx - eer_yy
    return float((eer_xx - eer) / d) if d != 0 else float("nan")


def gain_recovered_rounds(eer_xx, eer_yy, eer) -> np.ndarray:
    """:func:`gain_recovered` per bootstrap round, from the same round's X/X, Y/Y and system EERs (NaN in a round
    where X and Y tie).

    Examples
    --------
    >>> gain_recovered_rounds(np.array([0.5, 0.3]), np.array([0.25, 0.3]), np.array([0.375, 0.2])).tolist()
    [0.5, nan]
    """
    xx, yy, e = (np.asarray(v, dtype=float) for v in (eer_xx, eer_yy, eer))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(xx != yy, (xx - e) / (xx - yy), np.nan)


# --------------------------------------------------------------------------------------------
# Fitting and evaluating one pair
# --------------------------------------------------------------------------------------------


def fit_aligners(x_align, y_align, speakers_align, *, methods=METHODS, seed: int = 0,
                 hparams: dict | None = None, enroll_model_id: str | None = None,
                 runtime_model_id: str | None = None, progress: bool = False,
                 timings: dict | None = None) -> dict[str, Aligner]:
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
        ``{method: {name: value}}`` overrides of the methods' defaults (e.g. ``params.yaml``'s
        ``fit_aligners.hparams``; methods not fitted here may be listed too). The whole mapping is checked with
        :func:`nessa_lib.align.check_hparams` before anything is fitted: unknown methods or names and values of
        the wrong type raise ``ValueError``.
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
    check_hparams(hparams)  # fail before the first fit, not after an hour of them
    dx, dy = np.shape(x_align)[1], np.shape(y_align)[1]
    aligners = {}
    for method in methods:
        if method == "identity" and dx != dy:
            continue  # no map: an identity "alignment" is only defined between equal dimensions
        t = time.perf_counter()
        aligners[method] = fit(method, x_align, y_align, speakers_align, seed=seed,
                               enroll_model_id=enroll_model_id, runtime_model_id=runtime_model_id,
                               progress=progress, **hparams.get(method, {}))
        if timings is not None:
            timings[method] = time.perf_counter() - t
    return aligners


def _fit_one(method, x, y, speakers, seed, kwargs):
    """One timed fit (a worker job of :func:`fit_seeds`)."""
    t = time.perf_counter()
    a = fit(method, x, y, speakers, seed=seed, **kwargs)
    return a, time.perf_counter() - t


def _fit_ensemble(method, x, y, speakers, seeds, kwargs):
    """One timed ensemble fit of several seeds (a worker job of :func:`fit_seeds`); seconds per aligner."""
    t = time.perf_counter()
    out = fit_ensemble(method, x, y, speakers, seeds=seeds, **kwargs)
    return out, (time.perf_counter() - t) / len(seeds)


def fit_seeds(x_align, y_align, speakers_align, *, methods=METHODS, seeds=(0,), hparams: dict | None = None,
              enroll_model_id: str | None = None, runtime_model_id: str | None = None, workers: int = 1,
              progress: bool = False, timings: dict | None = None, device: str = "cpu",
              ensemble: bool = True) -> dict[str, list[Aligner]]:
    """Fit every method, the trained ones (:data:`NESSA_METHODS`) once per seed, side by side in ``workers``
    processes (:func:`nessa_lib.parallel.run_jobs`).

    With ``ensemble`` (the default) the seeds of a trained method are one job, trained together as one stacked
    ensemble (:func:`nessa_lib.align.fit_ensemble`); without, each seed is its own job. Each seed's aligner is
    the same either way (a member of an ensemble is the fit of its seed alone): the choice is about speed.

    The closed-form methods are deterministic and fitted once (with ``seeds[0]``); a NESSA method's spread over
    seeds is the part of its result that is luck of the initialisation, the batches and the early-stopping split.

    Parameters
    ----------
    x_align, y_align, speakers_align
        As in :func:`fit_aligners`.
    methods : sequence of str
    seeds : sequence of int
        Seeds of the trained methods, first one first.
    hparams : dict, optional
        Checked before anything is fitted (:func:`nessa_lib.align.check_hparams`).
    workers : int
        Processes for the trained fits (1: in this process).
    timings : dict, optional
        Filled with ``{method: mean fit seconds per seed}``.
    device : str
        Where the NESSA methods train (see :func:`nessa_lib.align.fit`); default the CPU.

    Returns
    -------
    dict of str to list of Aligner
        One aligner per seed for the trained methods, one for the others, in the order of ``methods``.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(20, 3))
    >>> out = fit_seeds(x, x, np.repeat(np.arange(5), 4), methods=["linear"], seeds=[3, 4])
    >>> len(out["linear"]), out["linear"][0].seed
    (1, 3)
    """
    from nessa_lib.parallel import run_jobs

    hparams = hparams or {}
    check_hparams(hparams)
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, at least one, got {seeds}")
    x, y, speakers = np.asarray(x_align), np.asarray(y_align), np.asarray(speakers_align)
    methods = [m for m in methods if not (m == "identity" and x.shape[1] != y.shape[1])]
    jobs = [(m, x, y, speakers, s if m in NESSA_METHODS else seeds[0],
             dict(enroll_model_id=enroll_model_id, runtime_model_id=runtime_model_id, device=device,
                  **hparams.get(m, {})))
            for m in methods for s in (seeds if m in NESSA_METHODS else seeds[:1])]
    # Longest fits first (M3, M1, then M2, the quickest here), so the odd last job of a round is a short one.
    order = ("nessa-m3", "nessa-m1", "nessa-m2")
    if ensemble:
        trained = [(m, x, y, speakers, seeds, kw) for m in sorted((m for m in methods if m in NESSA_METHODS),
                                                                  key=order.index)
                   for kw in [next(j[5] for j in jobs if j[0] == m)]]
        fitted = run_jobs(_fit_ensemble, trained, workers=workers, progress="fit aligners" if progress else None)
        done = {(j[0], s): (a, sec) for j, (al, sec) in zip(trained, fitted) for s, a in zip(seeds, al)}
    else:
        trained = sorted((j for j in jobs if j[0] in NESSA_METHODS), key=lambda j: order.index(j[0]))
        fitted = run_jobs(_fit_one, trained, workers=workers, progress="fit aligners" if progress else None)
        done = {(j[0], j[4]): r for j, r in zip(trained, fitted)}
    out: dict[str, list] = {m: [] for m in methods}
    spent: dict[str, list] = {m: [] for m in methods}
    for j in jobs:
        a, sec = done[(j[0], j[4])] if j[0] in NESSA_METHODS else _fit_one(*j)
        out[j[0]].append(a)
        spent[j[0]].append(sec)
    if timings is not None:
        timings.update({m: float(np.mean(t)) for m, t in spent.items()})
    return out


def aligned_scores(aligner, x_eval, y_eval, utt_ids_eval, enroll: pd.DataFrame, trials: pd.DataFrame) -> np.ndarray:
    """Trial scores of an asymmetric system: X-enrolled profiles migrated by ``aligner``, Y tests mapped.

    Profiles are averaged in X's own space and then mapped, as a deployed system migrates stored profiles.

    Examples
    --------
    >>> from nessa_lib import align
    >>> e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    >>> a = align.fit("identity", e, e, [0, 1, 0])
    >>> enroll = pd.DataFrame({"profile_id": ["A"], "utt_id": ["u0"]})
    >>> trials = pd.DataFrame({"label": [0, 1], "profile_id": ["A", "A"], "test_utt_id": ["u1", "u2"]})
    >>> aligned_scores(a, e, e, ["u0", "u1", "u2"], enroll, trials).round(3)
    array([0.   , 0.995], dtype=float32)
    """
    return score_lists(x_eval, aligner.map_runtime(y_eval), utt_ids_eval, enroll, trials,
                       enroll_map=aligner.map_enrollment)


def evaluate_pair(aligners: Mapping, x_eval, y_eval, utt_ids_eval, enroll: pd.DataFrame, trials: pd.DataFrame,
                  *, fit_s: Mapping | None = None, fars=operating_points.DEFAULT_FARS) -> pd.DataFrame:
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
    fars : sequence of float
        FAR limits (fractions) of the ``frr_at_far<far>`` columns, in column order.

    Returns
    -------
    table : DataFrame
        One row per system (index ``system``: ``symmetric X/X``, ``symmetric Y/Y``, then the aligners in order),
        columns: the metrics of :func:`nessa_lib.evaluation.metrics.verification_metrics`, ``gain_recovered``,
        ``rel_frr_change`` (FRR at the first of ``fars`` relative to X/X) and ``fit_s`` (0 for the symmetric rows).

    Examples
    --------
    >>> from nessa_lib import align
    >>> e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    >>> enroll = pd.DataFrame({"profile_id": ["A"], "utt_id": ["u0"]})
    >>> trials = pd.DataFrame({"label": [0, 1], "profile_id": ["A", "A"], "test_utt_id": ["u1", "u2"]})
    >>> t = evaluate_pair({"linear": align.fit("linear", e, e, [0, 1, 0])}, e, e, ["u0", "u1", "u2"], enroll, trials)
    >>> t.index.tolist(), float(t.loc["linear", "eer"])
    (['symmetric X/X', 'symmetric Y/Y', 'linear'], 0.0)
    """
    return table_from_scores(pair_scores(aligners, x_eval, y_eval, utt_ids_eval, enroll, trials),
                             trials["label"].to_numpy(), fit_s=fit_s, fars=fars)


def pair_scores(aligners: Mapping, x_eval, y_eval, utt_ids_eval, enroll: pd.DataFrame,
                trials: pd.DataFrame) -> dict:
    """Trial scores of every system of :func:`evaluate_pair`: ``symmetric X/X``, ``symmetric Y/Y``, then each
    aligner (X profiles mapped by its enrollment side against Y tests mapped by its runtime side). An aligner
    given as a list (one per seed, :func:`fit_seeds`) gives a list of score arrays.

    Examples
    --------
    >>> e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    >>> enroll = pd.DataFrame({"profile_id": ["A"], "utt_id": ["u0"]})
    >>> trials = pd.DataFrame({"label": [0, 1], "profile_id": ["A", "A"], "test_utt_id": ["u1", "u2"]})
    >>> list(pair_scores({}, e, e, ["u0", "u1", "u2"], enroll, trials))
    ['symmetric X/X', 'symmetric Y/Y']
    """
    def score(a):
        if isinstance(a, (list, tuple)):
            return [aligned_scores(s, x_eval, y_eval, utt_ids_eval, enroll, trials) for s in a]
        return aligned_scores(a, x_eval, y_eval, utt_ids_eval, enroll, trials)

    scores = {SYMMETRIC_X: score_lists(x_eval, x_eval, utt_ids_eval, enroll, trials),
              SYMMETRIC_Y: score_lists(y_eval, y_eval, utt_ids_eval, enroll, trials)}
    scores.update({m: score(a) for m, a in aligners.items()})
    return scores


def interval_metrics(fars=operating_points.DEFAULT_FARS) -> tuple[str, ...]:
    """The columns of :func:`table_from_scores` that get a bootstrap interval: EER, both minDCFs, FRR at every
    FAR limit of ``fars`` and the gain recovered.

    Examples
    --------
    >>> interval_metrics((0.125,))
    ('eer', 'min_dcf_p0.01', 'min_dcf_p0.05', 'frr_at_far0.125', 'gain_recovered')
    """
    return ("eer", "min_dcf_p0.01", "min_dcf_p0.05", *(operating_points.frr_key(f) for f in fars), "gain_recovered")



def table_from_scores(scores: Mapping, labels, *, fit_s: Mapping | None = None, boot=None,
                      rounds: dict | None = None, fars=operating_points.DEFAULT_FARS) -> pd.DataFrame:
    """The table of :func:`evaluate_pair` from each system's trial scores (first ``symmetric X/X``, then
    ``symmetric Y/Y``, then the aligners), so callers that keep the scores (DET curves) score only once.

    A system given as a list of score arrays (one per seed) is reported as the mean of its seeds' metrics, with
    ``n_seeds`` and ``<metric>_seed_sd`` (the standard deviation over seeds; NaN for single-seed systems). With
    ``boot`` (a :class:`nessa_lib.evaluation.bootstrap.SpeakerBootstrap` of these trials) every metric of
    :func:`interval_metrics` gets a 95 % speaker-bootstrap interval ``<metric>_lo`` / ``<metric>_hi``; a seeded
    system's rounds average its seeds on the same resampled speakers, and ``gain_recovered`` is computed per round
    from the same round's X/X, Y/Y and system EERs (paired). ``rounds``, if given, is filled with
    ``{system: {metric: per-round values}}`` for paired comparisons (:mod:`nessa_lib.evaluation.findings`).
    ``fars`` are the FAR limits (fractions) of the ``frr_at_far<far>`` columns; ``rel_frr_change`` is
    ``(FRR - FRR_XX) / FRR_XX`` at the first of them (NaN when X/X rejects no target there).

    Examples
    --------
    >>> lab = np.array([0, 1, 0, 1])
    >>> s = {SYMMETRIC_X: np.array([0.1, 0.6, 0.7, 0.8]), SYMMETRIC_Y: np.array([0.1, 0.9, 0.2, 0.8]),
    ...      "linear": np.array([0.1, 0.9, 0.5, 0.8])}
    >>> table_from_scores(s, lab)["gain_recovered"].round(2).tolist()
    [0.0, 1.0, 1.0]
    >>> s["m3"] = [np.array([0.1, 0.9, 0.5, 0.8]), np.array([0.1, 0.6, 0.7, 0.8])]  # two seeds
    >>> t = table_from_scores(s, lab)
    >>> float(t.loc["m3", "eer"]), int(t.loc["m3", "n_seeds"])
    (0.25, 2)
    >>> t = table_from_scores(s, lab, fars=(0.125, 0.5))  # of 2 non-targets, none may pass at 12.5 %, one at 50 %
    >>> t.loc[SYMMETRIC_X, ["frr_at_far0.125", "frr_at_far0.5", "rel_frr_change"]].tolist()
    [0.5, 0.0, 0.0]
    """
    from nessa_lib.evaluation.bootstrap import interval

    fars = tuple(fars)
    if not fars:
        raise ValueError("fars must name at least one FAR limit")
    systems = list(scores)
    if systems[:2] != [SYMMETRIC_X, SYMMETRIC_Y]:
        raise ValueError(f"scores must start with {SYMMETRIC_X!r} and {SYMMETRIC_Y!r}, got {systems[:2]}")
    fit_s = dict(fit_s or {})
    per_seed = {k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in scores.items()}
    if any(len(v) == 0 for v in per_seed.values()):
        raise ValueError("every system needs at least one score array")
    rows, spread = {}, {}
    for system, runs in per_seed.items():
        ms = pd.DataFrame([metrics.verification_metrics(s, labels, fars=fars) for s in runs])
        rows[system] = ms.mean().to_dict()
        spread[system] = ms.std(ddof=1).to_dict() if len(runs) > 1 else dict.fromkeys(ms.columns, np.nan)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "system"
    xx, yy = table.loc[SYMMETRIC_X, "eer"], table.loc[SYMMETRIC_Y, "eer"]
    table["gain_recovered"] = [gain_recovered(xx, yy, e) for e in table["eer"]]
    first = operating_points.frr_key(fars[0])
    frr_xx = table.loc[SYMMETRIC_X, first]
    table["rel_frr_change"] = (table[first] - frr_xx) / frr_xx if frr_xx > 0 else np.nan
    table["fit_s"] = [0.0, 0.0] + [float(fit_s.get(m, np.nan)) for m in systems[2:]]
    if any(len(v) > 1 for v in per_seed.values()):
        table["n_seeds"] = [len(per_seed[m]) for m in systems]
        sp = pd.DataFrame.from_dict(spread, orient="index")
        table["eer_seed_sd"] = sp["eer"]
        seeded = table["n_seeds"] > 1
        table["gain_recovered_seed_sd"] = np.where(seeded, sp["eer"] / abs(xx - yy) if xx != yy else np.nan, np.nan)
    if boot is not None:
        per_round = {}
        for system, runs in per_seed.items():
            r = [boot.metrics(s, fars=fars) for s in runs]
            per_round[system] = {k: np.mean([x[k] for x in r], axis=0) for k in r[0]}
        rxx, ryy = per_round[SYMMETRIC_X]["eer"], per_round[SYMMETRIC_Y]["eer"]
        for r in per_round.values():
            r["gain_recovered"] = gain_recovered_rounds(rxx, ryy, r["eer"])
        for m in interval_metrics(fars):
            lo_hi = [interval(per_round[system][m]) for system in systems]
            table[f"{m}_lo"] = [v[0] for v in lo_hi]
            table[f"{m}_hi"] = [v[1] for v in lo_hi]
        if rounds is not None:
            rounds.update(per_round)
    return table


def compare_methods(x_align, y_align, speakers_align, x_eval, y_eval, utt_ids_eval, enroll: pd.DataFrame,
                    trials: pd.DataFrame, *, methods=METHODS, seed: int = 0, hparams: dict | None = None,
                    enroll_model_id: str | None = None, runtime_model_id: str | None = None,
                    progress: bool = False, fars=operating_points.DEFAULT_FARS):
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
    fars : sequence of float
        FAR limits (fractions) of the ``frr_at_far<far>`` columns.

    Returns
    -------
    table : DataFrame
        One row per system (index ``system``), columns: the metrics of
        :func:`nessa_lib.evaluation.metrics.verification_metrics`, ``gain_recovered``, ``rel_frr_change`` (FRR at
        the first of ``fars`` relative to X/X) and ``fit_s``.
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
    table = evaluate_pair(aligners, x_eval, y_eval, utt_ids_eval, enroll, trials, fit_s=timings, fars=fars)
    return table, aligners


def flat_metrics(tables: dict, ab: pd.DataFrame | None = None, *, fars=operating_points.DEFAULT_FARS) -> dict[str, float]:
    """Stage 05's flat ``metrics.json``: ``<pair>:<system>:<metric>`` (``XX``/``YY`` for the symmetric rows) and
    the A/B case study's ``ab:<system>:<metric>`` (``ab@far<far>:<system>:<metric>`` when its table has a block
    per FAR target, see :func:`nessa_lib.evaluation.ab.ab_case_study`), each with its interval (``<metric>_lo``,
    ``<metric>_hi``) and seed spread (``<metric>_seed_sd``) where the tables have them (those are left out where
    NaN). The pairs' metrics are ``eer``, ``min_dcf_p0.01``, ``frr_at_far<far>`` for every FAR limit of ``fars``
    and ``gain_recovered``; the A/B's the EER, the FRR at the target (oracle and deployed), the deployed FAR, the
    FRR when A/A's threshold is kept and the relative FRR impacts against A/A. All fractions.

    Examples
    --------
    >>> t = pd.DataFrame({"eer": [0.1, 0.05], "eer_lo": [0.08, 0.04]}, index=["symmetric X/X", "nessa-m2"])
    >>> flat_metrics({"x-y": t})
    {'x-y:XX:eer': 0.1, 'x-y:XX:eer_lo': 0.08, 'x-y:nessa-m2:eer': 0.05, 'x-y:nessa-m2:eer_lo': 0.04}
    >>> ab = pd.DataFrame({"rel_frr_impact": [0.0, 0.25]},
    ...                   index=pd.MultiIndex.from_product([[0.125], ["A/A", "B/B"]], names=["far_target", "system"]))
    >>> flat_metrics({}, ab)
    {'ab@far0.125:A/A:rel_frr_impact': 0.0, 'ab@far0.125:B/B:rel_frr_impact': 0.25}
    """
    def keep(col, names, v):  # a metric always (NaN included, as before); its interval and spread where known
        return col in names or (pd.notna(v) and any(col in (f"{n}_lo", f"{n}_hi", f"{n}_seed_sd") for n in names))

    key = {"symmetric X/X": "XX", "symmetric Y/Y": "YY"}
    main = ("eer", "min_dcf_p0.01", *(operating_points.frr_key(f) for f in fars), "gain_recovered")
    flat = {f"{name}:{key.get(system, system)}:{col}": float(v)
            for name, t in tables.items() for system, row in t.iterrows()
            for col, v in row.items() if keep(col, main, v)}
    if ab is not None:
        ab_main = ("eer", "frr_at_far_oracle", "rel_frr_impact_oracle", "far_deployed", "frr_deployed",
                   "rel_frr_impact", "frr_at_aa_threshold")
        for r, row in ab.iterrows():
            # A block per FAR target (index far_target, system) names its target, as frr_at_far<far> does.
            section, system = (f"ab@far{float(r[0])!r}", r[1]) if isinstance(r, tuple) else ("ab", r)
            flat.update({f"{section}:{system}:{c}": float(v) for c, v in row.items() if keep(c, ab_main, v)})
    return flat
