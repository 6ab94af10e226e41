"""Adaptive symmetric score normalisation (AS-norm; Cumani et al. 2011, Matějka et al. 2017).

Some voices score high against everyone and some low, so one threshold fits neither. AS-norm rescales each trial
score by how its two sides score against a cohort of other speakers' embeddings, keeping only the ``top_k`` most
similar cohort members of each side (the impostors that matter near the threshold)::

    z = ((s - mu_e) / sigma_e + (s - mu_t) / sigma_t) / 2

where ``mu_e, sigma_e`` are the mean and standard deviation (``ddof=0``) of the enrollment side's ``top_k``
cosine scores against the cohort, and ``mu_t, sigma_t`` the same for the test side. Scores are cosines: every
embedding is L2-normalised first. All embeddings must already live in one space (for an aligned system: the
profiles after ``map_enrollment``, the tests after ``map_runtime``, and the cohort mapped into the same space,
e.g. from the aligner's fit pool, whose speakers are not evaluation speakers).

The statistics depend on one embedding at a time, so compute them once per profile and per test utterance
(:func:`cohort_stats`) and gather them per trial (:func:`normalize_scores`); :func:`as_norm` does both for
per-trial rows.
"""

from __future__ import annotations

import numpy as np

from nessa_lib.evaluation.scoring import l2_normalize

__all__ = ["cohort_stats", "normalize_scores", "as_norm"]

# Cohort scores held at once (float64): 8 M values = 64 MB, whatever the cohort size.
_CHUNK_VALUES = 1 << 23


def cohort_stats(emb, cohort, top_k: int, *, chunk_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each embedding's ``top_k`` highest cosine scores against the cohort.

    Parameters
    ----------
    emb : array_like, shape (n, d)
        Embeddings (profiles or test utterances); L2-normalised here.
    cohort : array_like, shape (c, d)
        Cohort embeddings in the same space; L2-normalised here.
    top_k : int
        Cohort members kept per embedding, ``2 <= top_k <= c`` (a standard deviation needs two).
    chunk_rows : int, optional
        Rows of ``emb`` scored at once; default keeps the score block near 64 MB. Only memory depends on it.

    Returns
    -------
    mean, std : ndarray, shape (n,)

    Raises
    ------
    ValueError
        On a ``top_k`` outside ``[2, c]``, mismatched dimensions, bad embeddings, or a zero standard deviation
        (the top-k cohort scores of some embedding all equal: the cohort has duplicates).

    Examples
    --------
    >>> cohort = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    >>> mean, std = cohort_stats([[1.0, 0.0], [0.6, 0.8]], cohort, top_k=2)  # top-2: {1, 0} and {0.8, 0.6}
    >>> mean.round(3).tolist(), std.round(3).tolist()
    ([0.5, 0.7], [0.5, 0.1])
    """
    e = l2_normalize(np.atleast_2d(np.asarray(emb, dtype=np.float64)), "embeddings")
    c = l2_normalize(np.atleast_2d(np.asarray(cohort, dtype=np.float64)), "cohort")
    if e.shape[1] != c.shape[1]:
        raise ValueError(f"embeddings have dimension {e.shape[1]} but the cohort {c.shape[1]}: not the same space")
    top_k = int(top_k)
    if not 2 <= top_k <= c.shape[0]:
        raise ValueError(f"top_k must be between 2 and the cohort size {c.shape[0]}, got {top_k}")
    rows = chunk_rows or max(1, _CHUNK_VALUES // c.shape[0])
    mean, std = np.empty(e.shape[0]), np.empty(e.shape[0])
    for start in range(0, e.shape[0], rows):
        block = e[start:start + rows] @ c.T
        # Only the k largest are needed, in any order: a partition, not a sort.
        top = np.partition(block, c.shape[0] - top_k, axis=1)[:, c.shape[0] - top_k:]
        mean[start:start + rows] = top.mean(axis=1)
        std[start:start + rows] = top.std(axis=1)
    if not (std > 0).all():
        bad = int(np.flatnonzero(~(std > 0))[0])
        raise ValueError(f"the top-{top_k} cohort scores of embedding row {bad} are all equal (std 0): "
                         f"is the cohort made of duplicates?")
    return mean, std


def normalize_scores(scores, enroll_stats, test_stats) -> np.ndarray:
    """AS-norm of trial scores from the cohort statistics of their two sides.

    Parameters
    ----------
    scores : array_like, shape (t,)
        Cosine scores of the trials.
    enroll_stats, test_stats : tuple of array_like, each (mean, std) of shape (t,)
        :func:`cohort_stats` of each trial's profile and test utterance (gathered per trial).

    Returns
    -------
    ndarray, shape (t,)

    Examples
    --------
    >>> normalize_scores([0.6], ([0.5], [0.5]), ([0.7], [0.1])).round(6).tolist()  # (0.2 + -1) / 2
    [-0.4]
    """
    s = np.asarray(scores, dtype=np.float64)
    me, se = (np.asarray(v, dtype=np.float64) for v in enroll_stats)
    mt, st = (np.asarray(v, dtype=np.float64) for v in test_stats)
    for name, v in (("enrollment mean", me), ("enrollment std", se), ("test mean", mt), ("test std", st)):
        if v.shape != s.shape:
            raise ValueError(f"{name} has shape {v.shape}, the scores {s.shape}")
    return 0.5 * ((s - me) / se + (s - mt) / st)


def as_norm(scores, enroll_emb, test_emb, cohort, *, top_k: int, test_cohort=None) -> np.ndarray:
    """AS-norm of trial scores, given each trial's enrollment-side and test-side embedding.

    Parameters
    ----------
    scores : array_like, shape (t,)
        Cosine scores of the trials (e.g. from :func:`nessa_lib.evaluation.lists.score_lists`).
    enroll_emb, test_emb : array_like, shape (t, d)
        The profile and the test embedding of every trial, in the scoring space. Repeated rows are scored
        against the cohort once.
    cohort : array_like, shape (c, d)
        Cohort for the enrollment side (and for the test side unless ``test_cohort`` is given).
    top_k : int
        Cohort members kept per side, ``2 <= top_k <= c``.
    test_cohort : array_like, shape (c', d), optional
        A separate cohort for the test side (e.g. the runtime model's embeddings of the cohort utterances).

    Returns
    -------
    ndarray, shape (t,)

    Examples
    --------
    >>> cohort = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    >>> as_norm([0.6], [[1.0, 0.0]], [[0.6, 0.8]], cohort, top_k=2).round(6).tolist()
    [-0.4]
    """
    s = np.asarray(scores, dtype=np.float64)
    e, t = np.atleast_2d(np.asarray(enroll_emb)), np.atleast_2d(np.asarray(test_emb))
    if e.shape[0] != s.size or t.shape[0] != s.size:
        raise ValueError(f"{s.size} scores but {e.shape[0]} enrollment and {t.shape[0]} test rows: one each per trial")

    def side(x, c):
        # Trials repeat profiles (and test utterances): score each distinct row once.
        uniq, inv = np.unique(x, axis=0, return_inverse=True)
        mean, std = cohort_stats(uniq, c, top_k)
        inv = inv.reshape(-1)
        return mean[inv], std[inv]

    return normalize_scores(s, side(e, cohort), side(t, cohort if test_cohort is None else test_cohort))
