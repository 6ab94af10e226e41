"""Score an enrollment list and a trial list with per-utterance embeddings, and summarise the result.

Glue between the list files of :mod:`nessa_lib.data.lists`, :mod:`nessa_lib.evaluation.scoring` and
:mod:`nessa_lib.evaluation.metrics`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nessa_lib.evaluation import metrics, scoring


def score_lists(enroll_emb, test_emb, utt_ids, enroll: pd.DataFrame, trials: pd.DataFrame, *,
                enroll_map=None) -> np.ndarray:
    """Cosine score of every trial: profiles from ``enroll_emb``, test utterances from ``test_emb``.

    Parameters
    ----------
    enroll_emb : array_like, shape (n, d_x)
        Enrollment-side embeddings of the utterances ``utt_ids``.
    test_emb : array_like, shape (n, d_y)
        Runtime-side embeddings of the same utterances (may be ``enroll_emb`` for symmetric scoring).
    utt_ids : array_like, shape (n,)
        Utterance id of each row.
    enroll : DataFrame
        ``profile_id, utt_id``: which utterances are averaged into each voice profile.
    trials : DataFrame
        ``label, profile_id, test_utt_id``.
    enroll_map : callable, optional
        Applied to the profiles before scoring (e.g. ``aligner.map_enrollment``: profiles are built
        in the enrollment model's space, then migrated, as a deployed system would do).

    Examples
    --------
    >>> e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    >>> enroll = pd.DataFrame({"profile_id": ["A"], "utt_id": ["u0"]})
    >>> trials = pd.DataFrame({"label": [0, 1], "profile_id": ["A", "A"], "test_utt_id": ["u1", "u2"]})
    >>> score_lists(e, e, ["u0", "u1", "u2"], enroll, trials).round(3)
    array([0.   , 0.995])
    """
    ids, prof_ids, profiles = _profiles(enroll_emb, utt_ids, enroll, enroll_map)
    return scoring.score_trials(profiles, prof_ids, test_emb, ids, trials["profile_id"].to_numpy().astype(str),
                                trials["test_utt_id"].to_numpy().astype(str))


def list_profiles(enroll_emb, utt_ids, enroll: pd.DataFrame, *, enroll_map=None) -> tuple[np.ndarray, np.ndarray]:
    """The voice profiles :func:`score_lists` scores with: ``(profile_ids, profiles)``, the profiles averaged in
    the enrollment space and then mapped by ``enroll_map`` (when given), one row per id (sorted).

    Examples
    --------
    >>> e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    >>> enroll = pd.DataFrame({"profile_id": ["A", "A"], "utt_id": ["u0", "u1"]})
    >>> ids, prof = list_profiles(e, ["u0", "u1", "u2"], enroll)
    >>> ids.tolist(), prof.round(4).tolist()
    (['A'], [[0.7071, 0.7071]])
    """
    _, prof_ids, profiles = _profiles(enroll_emb, utt_ids, enroll, enroll_map)
    return prof_ids, profiles


def _profiles(enroll_emb, utt_ids, enroll, enroll_map):
    """``(utt_ids as str, profile_ids, profiles)`` of an enrollment list, or a ValueError naming a missing utterance."""
    # Ids are compared as strings: manifests and list files are text, pandas hands them over as objects.
    ids = np.asarray(utt_ids).astype(str)
    enroll_utts = enroll["utt_id"].to_numpy().astype(str)
    order = np.argsort(ids)
    pos = np.minimum(np.searchsorted(ids, enroll_utts, sorter=order), len(ids) - 1)
    rows = order[pos]
    missing = ids[rows] != enroll_utts
    if missing.any():
        raise ValueError(f"enrollment list names utterance {enroll_utts[missing][0]!r} "
                         f"that has no embedding ({missing.sum()} missing in all)")
    prof_ids, profiles = scoring.make_profiles(np.asarray(enroll_emb)[rows],
                                               enroll["profile_id"].to_numpy().astype(str))
    if enroll_map is not None:
        profiles = enroll_map(profiles)
    return ids, prof_ids, profiles


def evaluate_lists(enroll_emb, test_emb, utt_ids, enroll, trials, **kwargs) -> dict[str, float]:
    """:func:`score_lists` followed by :func:`metrics.verification_metrics` (EER, minDCF, FRR@FAR).

    Examples
    --------
    >>> e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    >>> enroll = pd.DataFrame({"profile_id": ["A"], "utt_id": ["u0"]})
    >>> trials = pd.DataFrame({"label": [0, 1], "profile_id": ["A", "A"], "test_utt_id": ["u1", "u2"]})
    >>> evaluate_lists(e, e, ["u0", "u1", "u2"], enroll, trials)["eer"]
    0.0
    """
    scores = score_lists(enroll_emb, test_emb, utt_ids, enroll, trials, **kwargs)
    return metrics.verification_metrics(scores, trials["label"].to_numpy())
