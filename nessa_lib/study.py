"""The study's comparison for one (enrollment model X, runtime model Y) pair: every method on one trial list.

For a pair, the rows are: symmetric X/X (profiles and tests both from X: the status quo), symmetric Y/Y (everyone
re-enrolled with the new model), and each alignment method with X-enrolled profiles against Y test
embeddings. ``gain_recovered`` is the share of the symmetric update's EER gain that the asymmetric system keeps,
``(EER_XX - EER) / (EER_XX - EER_YY)``: 1 means as good as re-enrolling everybody, 0 means no better than not
updating. When Y is worse than X the "gain" is a loss and the ratio reads the other way round; it is reported as
measured.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from nessa_lib import align, evaluation

SYMMETRIC_X = "symmetric X/X"
SYMMETRIC_Y = "symmetric Y/Y"


def gain_recovered(eer_xx: float, eer_yy: float, eer: float) -> float:
    """Share of the symmetric update's EER gain kept by an asymmetric system (NaN if X and Y tie).

    Examples
    --------
    >>> gain_recovered(0.5, 0.25, 0.375)  # halfway between X/X and Y/Y
    0.5
    """
    d = eer_xx - eer_yy
    return float((eer_xx - eer) / d) if d != 0 else float("nan")


def compare_methods(x_align, y_align, speakers_align, x_eval, y_eval, utt_ids_eval, enroll: pd.DataFrame,
                    trials: pd.DataFrame, *, methods=align.METHODS, seed: int = 0, hparams: dict | None = None,
                    enroll_model_id: str | None = None, runtime_model_id: str | None = None,
                    progress: bool = False):
    """Fit every method on the alignment pairs and score the evaluation lists with each.

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
    hparams = hparams or {}
    rows, aligners = {}, {}
    rows[SYMMETRIC_X] = evaluation.evaluate_lists(x_eval, x_eval, utt_ids_eval, enroll, trials)
    rows[SYMMETRIC_Y] = evaluation.evaluate_lists(y_eval, y_eval, utt_ids_eval, enroll, trials)
    fit_s = {SYMMETRIC_X: 0.0, SYMMETRIC_Y: 0.0}
    dx, dy = np.shape(x_align)[1], np.shape(y_align)[1]
    for method in methods:
        if method == "identity" and dx != dy:
            continue
        t = time.perf_counter()
        a = align.fit(method, x_align, y_align, speakers_align, seed=seed, enroll_model_id=enroll_model_id,
                      runtime_model_id=runtime_model_id, progress=progress, **hparams.get(method, {}))
        fit_s[method] = time.perf_counter() - t
        aligners[method] = a
        # Profiles are averaged in X's own space, then mapped, as a deployed system migrates stored profiles.
        rows[method] = evaluation.evaluate_lists(x_eval, a.map_runtime(y_eval), utt_ids_eval, enroll, trials,
                                                 enroll_map=a.map_enrollment)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "system"
    xx, yy = table.loc[SYMMETRIC_X, "eer"], table.loc[SYMMETRIC_Y, "eer"]
    table["gain_recovered"] = [gain_recovered(xx, yy, e) for e in table["eer"]]
    frr_xx = table.loc[SYMMETRIC_X, "frr_at_far0.01"]
    table["rel_frr_change"] = (table["frr_at_far0.01"] - frr_xx) / frr_xx if frr_xx > 0 else np.nan
    table["fit_s"] = pd.Series(fit_s)
    return table, aligners
