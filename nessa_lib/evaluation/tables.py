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
from nessa_lib.align.fitting import fit
from nessa_lib.align.hparams import METHODS, check_hparams
from nessa_lib.evaluation import metrics
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
        columns: the metrics of :func:`nessa_lib.evaluation.metrics.verification_metrics`, ``gain_recovered``,
        ``rel_frr_change`` (FRR at FAR 1 % relative to X/X) and ``fit_s`` (0 for the symmetric rows).

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
                             trials["label"].to_numpy(), fit_s=fit_s)


def pair_scores(aligners: Mapping, x_eval, y_eval, utt_ids_eval, enroll: pd.DataFrame,
                trials: pd.DataFrame) -> dict:
    """Trial scores of every system of :func:`evaluate_pair`: ``symmetric X/X``, ``symmetric Y/Y``, then each
    aligner (X profiles mapped by its enrollment side against Y tests mapped by its runtime side).

    Examples
    --------
    >>> e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    >>> enroll = pd.DataFrame({"profile_id": ["A"], "utt_id": ["u0"]})
    >>> trials = pd.DataFrame({"label": [0, 1], "profile_id": ["A", "A"], "test_utt_id": ["u1", "u2"]})
    >>> list(pair_scores({}, e, e, ["u0", "u1", "u2"], enroll, trials))
    ['symmetric X/X', 'symmetric Y/Y']
    """
    scores = {SYMMETRIC_X: score_lists(x_eval, x_eval, utt_ids_eval, enroll, trials),
              SYMMETRIC_Y: score_lists(y_eval, y_eval, utt_ids_eval, enroll, trials)}
    scores.update({m: aligned_scores(a, x_eval, y_eval, utt_ids_eval, enroll, trials) for m, a in aligners.items()})
    return scores


def table_from_scores(scores: Mapping, labels, *, fit_s: Mapping | None = None) -> pd.DataFrame:
    """The table of :func:`evaluate_pair` from each system's trial scores (first ``symmetric X/X``, then
    ``symmetric Y/Y``, then the aligners), so callers that keep the scores (DET curves) score only once.

    Examples
    --------
    >>> lab = np.array([0, 1, 0, 1])
    >>> s = {SYMMETRIC_X: np.array([0.1, 0.6, 0.7, 0.8]), SYMMETRIC_Y: np.array([0.1, 0.9, 0.2, 0.8]),
    ...      "linear": np.array([0.1, 0.9, 0.5, 0.8])}
    >>> table_from_scores(s, lab)["gain_recovered"].round(2).tolist()
    [0.0, 1.0, 1.0]
    """
    systems = list(scores)
    if systems[:2] != [SYMMETRIC_X, SYMMETRIC_Y]:
        raise ValueError(f"scores must start with {SYMMETRIC_X!r} and {SYMMETRIC_Y!r}, got {systems[:2]}")
    fit_s = dict(fit_s or {})
    rows = {system: metrics.verification_metrics(s, labels) for system, s in scores.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "system"
    xx, yy = table.loc[SYMMETRIC_X, "eer"], table.loc[SYMMETRIC_Y, "eer"]
    table["gain_recovered"] = [gain_recovered(xx, yy, e) for e in table["eer"]]
    frr_xx = table.loc[SYMMETRIC_X, "frr_at_far0.01"]
    table["rel_frr_change"] = (table["frr_at_far0.01"] - frr_xx) / frr_xx if frr_xx > 0 else np.nan
    table["fit_s"] = [0.0, 0.0] + [float(fit_s.get(m, np.nan)) for m in systems[2:]]
    return table


def compare_methods(x_align, y_align, speakers_align, x_eval, y_eval, utt_ids_eval, enroll: pd.DataFrame,
                    trials: pd.DataFrame, *, methods=METHODS, seed: int = 0, hparams: dict | None = None,
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
        :func:`nessa_lib.evaluation.metrics.verification_metrics`, ``gain_recovered``, ``rel_frr_change`` (FRR at
        FAR 1 % relative to X/X) and ``fit_s``.
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
