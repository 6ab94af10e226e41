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
per-trial rows, :func:`as_norm_lists` for an enrollment list and a trial list (as
:func:`nessa_lib.evaluation.lists.score_lists` scores them).

Which cohort each side meets. AS-norm is the average of a Z-norm of the enrollment side (the profile scored
against cohort members playing *test utterances*) and a T-norm of the test side (the test utterance scored
against cohort members playing *profiles*). In an asymmetric system the two roles live in different spaces, so
each side is compared with the cohort as the *other* side would have produced it: the profiles with the cohort
embedded by the runtime model (through ``map_runtime``), the test utterances with the cohort embedded by the
enrollment model (through ``map_enrollment``). The statistics then describe the scores of the impostor trials
the system really makes; a profile compared with enrollment-side cohort members would measure how close two
X-side embeddings are, which the trials never score. :func:`speaker_cohort` builds a cohort (one averaged
embedding per speaker), :func:`compare_norm` tabulates a pair's systems with and without the normalisation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nessa_lib.evaluation.scoring import l2_normalize

__all__ = ["cohort_stats", "normalize_scores", "as_norm", "speaker_cohort", "as_norm_lists", "compared_metrics",
           "compare_norm", "flat_metrics"]

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
        Cohort the enrollment side is scored against (and the test side unless ``test_cohort`` is given): in an
        asymmetric system, the cohort as the runtime side embeds it (it plays the impostor test utterances).
    top_k : int
        Cohort members kept per side, ``2 <= top_k <= c``.
    test_cohort : array_like, shape (c', d), optional
        A separate cohort for the test side: in an asymmetric system, the cohort as the enrollment side embeds it
        (it plays the impostor profiles; see the module docstring).

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


def speaker_cohort(emb, speakers, *, n_speakers: int = 0, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A cohort of one embedding per speaker: the renormalised mean of each cohort speaker's L2-normalised
    embeddings (as voice profiles are built, :func:`nessa_lib.evaluation.scoring.make_profiles`).

    Parameters
    ----------
    emb : array_like, shape (n, d)
        Embeddings of the cohort pool (e.g. an aligner's fit pool, never evaluation speakers).
    speakers : array_like, shape (n,)
        Speaker of each row.
    n_speakers : int
        Cohort speakers drawn (without replacement, from the sorted distinct speakers) with ``seed``; 0 keeps every
        speaker. The draw depends only on the speakers and the seed, so two models' embeddings of one pool give
        the same cohort speakers, row for row.
    seed : int or numpy.random.Generator

    Returns
    -------
    speaker_ids : ndarray, shape (c,)
        Sorted.
    cohort : ndarray, shape (c, d)
        Unit-norm rows, row ``i`` for ``speaker_ids[i]``.

    Raises
    ------
    ValueError
        When ``n_speakers`` exceeds the pool's distinct speakers (or is negative).

    Examples
    --------
    >>> ids, c = speaker_cohort([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]], ["a", "b", "b"])
    >>> ids.tolist(), c.tolist()
    (['a', 'b'], [[1.0, 0.0], [0.0, 1.0]])
    """
    from nessa_lib.evaluation.scoring import make_profiles

    spk = np.asarray(speakers).astype(str)
    distinct = np.unique(spk)
    n = int(n_speakers)
    if not 0 <= n <= distinct.size:
        raise ValueError(f"cannot draw {n} cohort speakers from a pool of {distinct.size} speakers")
    if 0 < n < distinct.size:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        keep = np.isin(spk, rng.choice(distinct, size=n, replace=False))
        return make_profiles(np.asarray(emb)[keep], spk[keep])
    return make_profiles(emb, spk)


def as_norm_lists(scores, enroll_emb, test_emb, utt_ids, enroll, trials, *, cohort_for_profiles, cohort_for_tests,
                  top_k: int, enroll_map=None) -> np.ndarray:
    """AS-norm of the trial scores of an enrollment list and a trial list.

    The profiles and test embeddings are those :func:`nessa_lib.evaluation.lists.score_lists` scores with the
    same arguments (profiles averaged in the enrollment space, then ``enroll_map``); each profile and each test
    utterance is scored against its cohort once.

    Parameters
    ----------
    scores : array_like, shape (t,)
        The trials' scores (:func:`~nessa_lib.evaluation.lists.score_lists` of the same system).
    enroll_emb, test_emb, utt_ids, enroll, trials
        As in :func:`~nessa_lib.evaluation.lists.score_lists` (``test_emb`` already in the scoring space).
    cohort_for_profiles : array_like, shape (c, d)
        The cohort the profiles are scored against, in the scoring space as the *test* side produces it.
    cohort_for_tests : array_like, shape (c', d)
        The cohort the test utterances are scored against, as the *enrollment* side produces it.
    top_k : int
        Cohort members kept per side (:func:`cohort_stats`).
    enroll_map : callable, optional

    Returns
    -------
    ndarray, shape (t,)

    Examples
    --------
    >>> import pandas as pd
    >>> e = np.array([[1.0, 0.0], [0.6, 0.8]])
    >>> enroll = pd.DataFrame({"profile_id": ["A"], "utt_id": ["u0"]})
    >>> trials = pd.DataFrame({"label": [1], "profile_id": ["A"], "test_utt_id": ["u1"]})
    >>> cohort = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    >>> as_norm_lists([0.6], e, e, ["u0", "u1"], enroll, trials, cohort_for_profiles=cohort,
    ...               cohort_for_tests=cohort, top_k=2).round(6).tolist()  # as in as_norm
    [-0.4]
    """
    from nessa_lib.evaluation.lists import list_profiles

    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (len(trials),):
        raise ValueError(f"{s.size} scores for {len(trials)} trials: one score per trial")
    prof_ids, profiles = list_profiles(enroll_emb, utt_ids, enroll, enroll_map=enroll_map)
    ids = np.asarray(utt_ids).astype(str)
    t_prof = trials["profile_id"].to_numpy().astype(str)
    t_test = trials["test_utt_id"].to_numpy().astype(str)
    # Statistics of the profiles and test utterances the trials use, gathered per trial by position.
    p_pos = _positions(prof_ids, t_prof, "profile")
    tests, t_inv = np.unique(t_test, return_inverse=True)
    rows = _positions(ids, tests, "test utterance")
    pm, ps = cohort_stats(profiles, cohort_for_profiles, top_k)
    tm, ts = cohort_stats(np.asarray(test_emb)[rows], cohort_for_tests, top_k)
    t_inv = t_inv.reshape(-1)
    return normalize_scores(s, (pm[p_pos], ps[p_pos]), (tm[t_inv], ts[t_inv]))


def _positions(known, wanted, what: str) -> np.ndarray:
    """Row of each ``wanted`` id in ``known`` (ids as strings), or a ValueError naming the first unknown one."""
    known = np.asarray(known).astype(str)
    order = np.argsort(known)
    pos = order[np.minimum(np.searchsorted(known, wanted, sorter=order), len(known) - 1)]
    bad = known[pos] != wanted
    if bad.any():
        raise ValueError(f"trial list names {what} {str(wanted[bad][0])!r}, which has no embedding")
    return pos


def compared_metrics(fars) -> tuple[str, ...]:
    """The metrics :func:`compare_norm` reports for FAR targets ``fars``: EER, both minDCFs, FRR at each target.

    Examples
    --------
    >>> compared_metrics((0.125,))
    ('eer', 'min_dcf_p0.01', 'min_dcf_p0.05', 'frr_at_far0.125')
    """
    from nessa_lib.evaluation.operating_points import frr_key

    return ("eer", "min_dcf_p0.01", "min_dcf_p0.05", *(frr_key(f) for f in fars))


def compare_norm(off, on, labels, *, fars, boot=None) -> pd.DataFrame:
    """Every system's metrics without and with AS-norm, and the change AS-norm makes.

    Parameters
    ----------
    off, on : mapping of str to array_like, shape (t,)
        Each system's raw trial scores and its AS-normed ones (the same systems).
    labels : array_like of {0, 1}, shape (t,)
    fars : sequence of float
        FAR targets (fractions) of the ``frr_at_far<far>`` columns.
    boot : nessa_lib.evaluation.bootstrap.SpeakerBootstrap, optional
        Rounds of these trials: every metric gets its 95 % speaker interval (``<metric>_lo``, ``_hi``), and the
        change its paired interval (the two scorings of a system on the same resampled speakers).

    Returns
    -------
    DataFrame
        Index ``(system, asnorm)`` with ``asnorm`` ``"off"`` then ``"on"``; the metrics of
        :func:`compared_metrics`; on the ``"on"`` rows, ``<metric>_change`` = on - off (negative: AS-norm lowers
        the error), NaN on the ``"off"`` rows.

    Examples
    --------
    >>> lab = [0, 1, 0, 1]
    >>> t = compare_norm({"s": [0.5, 0.4, 0.1, 0.9]}, {"s": [-1.0, 0.4, 0.1, 0.9]}, lab, fars=(0.5,))
    >>> t["eer"].tolist(), t["eer_change"].tolist()  # one non-target above a target, then none
    ([0.5, 0.0], [nan, -0.5])
    """
    from nessa_lib.evaluation import metrics
    from nessa_lib.evaluation.bootstrap import interval

    fars = tuple(fars)
    if set(off) != set(on):
        raise ValueError(f"the same systems are needed with and without AS-norm, got {list(off)} and {list(on)}")
    names = compared_metrics(fars)
    rows = {}
    for system in off:
        point = {k: metrics.verification_metrics(v, labels, fars=fars) for k, v in (("off", off[system]),
                                                                                    ("on", on[system]))}
        r = {"off": dict(point["off"]), "on": dict(point["on"])}
        for m in names:
            r["on"][f"{m}_change"] = point["on"][m] - point["off"][m]
        if boot is not None:
            rounds = {k: boot.metrics(v, fars=fars) for k, v in (("off", off[system]), ("on", on[system]))}
            for m in names:
                for k in ("off", "on"):
                    r[k][f"{m}_lo"], r[k][f"{m}_hi"] = interval(rounds[k][m])
                r["on"][f"{m}_change_lo"], r["on"][f"{m}_change_hi"] = interval(rounds["on"][m] - rounds["off"][m])
        rows[(system, "off")], rows[(system, "on")] = r["off"], r["on"]
    cols = [*names]
    if boot is not None:
        cols = [c for m in names for c in (m, f"{m}_lo", f"{m}_hi")]
    cols += [c for m in names for c in ((f"{m}_change", f"{m}_change_lo", f"{m}_change_hi") if boot is not None
                                        else (f"{m}_change",))]
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=cols)
    table.index.names = ["system", "asnorm"]
    return table


def flat_metrics(table: pd.DataFrame, *, fars) -> dict[str, float]:
    """Flat ``metrics.json`` entries of an AS-norm table indexed ``(pair, system, asnorm)``:
    ``asnorm@<pair>:<system>:<metric>`` with AS-norm on and ``<metric>_change`` (on - off), each with its interval
    where known, for the EER, minDCF at 1 % and the FRR at every FAR target (``XX``/``YY`` for the symmetric
    systems, as in the main metrics). All fractions.

    Examples
    --------
    >>> t = pd.DataFrame({"eer": [0.1, 0.08], "eer_change": [np.nan, -0.02]},
    ...                  index=pd.MultiIndex.from_tuples([("x-y", "X/X", "off"), ("x-y", "X/X", "on")]))
    >>> {k: round(v, 3) for k, v in flat_metrics(t, fars=()).items()}
    {'asnorm@x-y:XX:eer': 0.08, 'asnorm@x-y:XX:eer_change': -0.02}
    """
    from nessa_lib.evaluation.operating_points import frr_key

    short = {"X/X": "XX", "Y/Y": "YY"}
    wanted = [c for m in ("eer", "min_dcf_p0.01", *(frr_key(f) for f in fars))
              for c in (m, f"{m}_lo", f"{m}_hi", f"{m}_change", f"{m}_change_lo", f"{m}_change_hi")]
    out = {}
    for (pair, system, norm), row in table.iterrows():
        if norm != "on":
            continue
        out.update({f"asnorm@{pair}:{short.get(system, system)}:{c}": float(row[c])
                    for c in wanted if c in row.index and pd.notna(row[c])})
    return out
