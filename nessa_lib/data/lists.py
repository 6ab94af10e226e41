"""Enrollment and trial lists: building them from evaluation utterances, and reading/writing the list files.

Trial list: one trial per line, ``label profile_id test_utt_id`` separated by single spaces, label 1 (target) or
0 (non-target); this is the VoxCeleb ``veri_test.txt`` layout, so official lists read as they are.
Enrollment list: ``profile_id utt_id`` per line; a profile is the average of its utterances' embeddings.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from nessa_lib.io import atomic_write_text

logger = logging.getLogger(__name__)

TRIAL_COLUMNS = ("label", "profile_id", "test_utt_id")
ENROLL_COLUMNS = ("profile_id", "utt_id")


def make_enrollment_and_trials(df_eval: pd.DataFrame, *, k_enroll: int, n_nontarget_per_profile: int, rng):
    """Build one profile per speaker and a target/non-target trial list from evaluation utterances.

    Per speaker (utterances sorted by ``utt_id``, then shuffled by ``rng``), ``k_enroll`` utterances form the
    profile (``profile_id`` = speaker id) and the rest are test utterances. Targets: every (profile, own test
    utterance). Non-targets: ``n_nontarget_per_profile`` test utterances of other speakers per profile, drawn
    without replacement. Speakers with fewer than ``k_enroll + 1`` utterances are dropped with a logged
    warning.

    If ``df_eval`` has a boolean ``enroll`` column (the synthetic corpus marks the utterances it recorded in
    the enrollment condition, e.g. clean enrollment vs augmented test), the profile takes ``k_enroll`` of the
    flagged utterances and only unflagged utterances become test utterances.

    Parameters
    ----------
    df_eval : pandas.DataFrame
        Manifest rows of the evaluation speakers (``utt_id``, ``speaker_id``, optional ``enroll``). If it has a
        ``split`` column, no row may be 'train' or 'align' (guards against passing the whole manifest).
    k_enroll : int
        Utterances per profile, >= 1.
    n_nontarget_per_profile : int
        Non-target trials per profile, >= 0. Capped (with a warning) at the number of other speakers' test
        utterances.
    rng : numpy.random.Generator or int
        Randomness source (an int is used as a seed).

    Returns
    -------
    enroll : pandas.DataFrame
        Columns ``profile_id, utt_id``.
    trials : pandas.DataFrame
        Columns ``label`` (int 1/0), ``profile_id``, ``test_utt_id``; per profile, targets first.

    Examples
    --------
    >>> df = pd.DataFrame({"utt_id": [f"{s}/{i}" for s in "ab" for i in range(3)],
    ...                    "speaker_id": [s for s in "ab" for _ in range(3)]})
    >>> enroll, trials = make_enrollment_and_trials(df, k_enroll=2, n_nontarget_per_profile=1, rng=0)
    >>> len(enroll), trials["label"].tolist()
    (4, [1, 0, 1, 0])
    """
    if int(k_enroll) < 1:
        raise ValueError(f"k_enroll must be >= 1, got {k_enroll}")
    if int(n_nontarget_per_profile) < 0:
        raise ValueError(f"n_nontarget_per_profile must be >= 0, got {n_nontarget_per_profile}")
    for c in ("utt_id", "speaker_id"):
        if c not in df_eval.columns:
            raise ValueError(f"make_enrollment_and_trials: df_eval has no column {c!r}")
    if "split" in df_eval.columns:
        wrong = sorted(set(df_eval["split"]) & {"train", "align"})
        if wrong:
            raise ValueError(f"make_enrollment_and_trials: df_eval contains rows with split {wrong}; "
                             "pass df[df.split == 'eval']")
    if df_eval["utt_id"].duplicated().any():
        raise ValueError("make_enrollment_and_trials: df_eval has duplicated utt_id "
                         f"{df_eval['utt_id'][df_eval['utt_id'].duplicated()].iloc[0]!r}")
    rng = np.random.default_rng(rng)
    k = int(k_enroll)
    groups = {spk: sorted(g.tolist()) for spk, g in df_eval.groupby("speaker_id", sort=False)["utt_id"]}
    flagged = None
    if "enroll" in df_eval.columns:
        flagged = set(df_eval.loc[df_eval["enroll"].astype(str).str.lower().isin(["true", "1"]), "utt_id"])
    speakers = sorted(groups, key=str)
    if flagged is not None:
        short = [s for s in speakers if sum(u in flagged for u in groups[s]) < k]
        if short:
            logger.warning("dropping %d speaker(s) with fewer than k_enroll=%d enrollment-flagged utterances "
                           "(first: %r)", len(short), k, short[0])
        speakers = [s for s in speakers if s not in set(short)]
    dropped = [s for s in speakers if len(groups[s]) < k + 1]
    if dropped:
        logger.warning("dropping %d speaker(s) with fewer than k_enroll+1=%d utterances (first: %r)",
                       len(dropped), k + 1, dropped[0])
    speakers = [s for s in speakers if len(groups[s]) >= k + 1]
    if len(speakers) < 2:
        raise ValueError(f"make_enrollment_and_trials: {len(speakers)} speaker(s) have >= k_enroll+1={k + 1} "
                         "utterances; need at least 2 for non-target trials")
    enroll_rows, tests = [], {}
    for s in speakers:
        utts = groups[s]
        if flagged is not None:
            enr = [u for u in utts if u in flagged]
            pick = sorted(rng.permutation(len(enr))[:k])
            enroll_rows += [(s, enr[i]) for i in pick]
            tests[s] = [u for u in utts if u not in flagged]
            continue
        perm = rng.permutation(len(utts))
        enroll_rows += [(s, utts[i]) for i in sorted(perm[:k])]
        tests[s] = [utts[i] for i in sorted(perm[k:])]
    # Flat pool of all test utterances with their speaker, to sample non-targets from other speakers.
    pool_utt = [u for s in speakers for u in tests[s]]
    pool_spk = np.asarray([i for i, s in enumerate(speakers) for _ in tests[s]])
    n_nt = int(n_nontarget_per_profile)
    capped = 0
    trial_rows = []
    for si, s in enumerate(speakers):
        trial_rows += [(1, s, u) for u in tests[s]]
        cand = np.flatnonzero(pool_spk != si)
        m = min(n_nt, cand.size)
        capped += m < n_nt
        pick = np.sort(rng.choice(cand, size=m, replace=False))
        trial_rows += [(0, s, pool_utt[i]) for i in pick]
    if capped:
        logger.warning("%d profile(s) got fewer than n_nontarget_per_profile=%d non-targets "
                       "(not enough test utterances of other speakers)", capped, n_nt)
    enroll = pd.DataFrame(enroll_rows, columns=list(ENROLL_COLUMNS))
    trials = pd.DataFrame(trial_rows, columns=list(TRIAL_COLUMNS))
    trials["label"] = trials["label"].astype(np.int64)
    return enroll, trials


def single_utterance_enrollment(trials: pd.DataFrame) -> pd.DataFrame:
    """Enrollment table for trial lists whose ``profile_id`` is an utterance id (VoxCeleb official lists).

    Examples
    --------
    >>> t = pd.DataFrame({"label": [1, 0], "profile_id": ["a.wav", "a.wav"], "test_utt_id": ["b.wav", "c.wav"]})
    >>> single_utterance_enrollment(t).values.tolist()
    [['a.wav', 'a.wav']]
    """
    ids = pd.unique(trials["profile_id"])
    return pd.DataFrame({"profile_id": ids, "utt_id": ids})


def _check_token(value, what: str, path) -> str:
    v = str(value)
    if not v or any(ch.isspace() for ch in v):
        raise ValueError(f"cannot write {path}: {what} {v!r} is empty or contains whitespace "
                         "(space-separated list format)")
    return v


def write_trials(trials: pd.DataFrame, path) -> None:
    """Write a trial list, one ``label profile_id test_utt_id`` line per trial (atomic replace).

    Examples
    --------
    >>> import tempfile, os
    >>> t = pd.DataFrame({"label": [1, 0], "profile_id": ["s1", "s1"], "test_utt_id": ["s1/b", "s2/a"]})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_trials(t, os.path.join(d, "trials.txt"))
    ...     print(open(os.path.join(d, "trials.txt")).read(), end="")
    1 s1 s1/b
    0 s1 s2/a
    """
    for c in TRIAL_COLUMNS:
        if c not in trials.columns:
            raise ValueError(f"cannot write {path}: trials has no column {c!r}")
    lines = []
    for lab, p, t in zip(trials["label"], trials["profile_id"], trials["test_utt_id"]):
        if lab not in (0, 1):
            raise ValueError(f"cannot write {path}: label {lab!r} is not 0 or 1 (profile {p!r}, test {t!r})")
        lines.append(f"{int(lab)} {_check_token(p, 'profile_id', path)} {_check_token(t, 'test_utt_id', path)}\n")
    atomic_write_text(path, "".join(lines))


def write_enrollment(enroll: pd.DataFrame, path) -> None:
    """Write an enrollment list, one ``profile_id utt_id`` line per utterance (atomic replace).

    Examples
    --------
    >>> import tempfile, os
    >>> e = pd.DataFrame({"profile_id": ["s1", "s1"], "utt_id": ["s1/a", "s1/c"]})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_enrollment(e, os.path.join(d, "enroll.txt"))
    ...     print(open(os.path.join(d, "enroll.txt")).read(), end="")
    s1 s1/a
    s1 s1/c
    """
    for c in ENROLL_COLUMNS:
        if c not in enroll.columns:
            raise ValueError(f"cannot write {path}: enrollment has no column {c!r}")
    lines = [f"{_check_token(p, 'profile_id', path)} {_check_token(u, 'utt_id', path)}\n"
             for p, u in zip(enroll["profile_id"], enroll["utt_id"])]
    atomic_write_text(path, "".join(lines))


def _read_columns(path, n_fields: int, what: str):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} does not exist")
    rows, lines = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue  # tolerate blank lines (trailing newline, hand edits)
            if len(parts) != n_fields:
                raise ValueError(f"{what} {path}: line {lineno}: expected {n_fields} space-separated fields, "
                                 f"got {len(parts)}: {line.strip()!r}")
            rows.append(parts)
            lines.append(lineno)
    if not rows:
        raise ValueError(f"{what} {path}: has no entries")
    return rows, lines


def _check_known(path, what, ids, lines, known, kind, where):
    known = set(known)
    bad = [i for i, u in enumerate(ids) if u not in known]
    if bad:
        i = bad[0]
        n_unique = len({ids[j] for j in bad})
        raise ValueError(f"{what} {path}: line {lines[i]}: {kind} {ids[i]!r} is not in the {where} "
                         f"({len(bad)} line(s), {n_unique} distinct id(s) missing)")


def read_trials(path, *, manifest: pd.DataFrame | None = None, enrollment: pd.DataFrame | None = None):
    """Read a ``label profile_id test_utt_id`` trial list (VoxCeleb layout).

    Parameters
    ----------
    path : str or os.PathLike
        Trial list.
    manifest : pandas.DataFrame, optional
        If given, every ``test_utt_id`` must be one of its ``utt_id``.
    enrollment : pandas.DataFrame, optional
        If given, every ``profile_id`` must be one of its ``profile_id``.

    Returns
    -------
    pandas.DataFrame
        Columns ``label`` (int 1/0), ``profile_id``, ``test_utt_id``.

    Raises
    ------
    ValueError
        Bad line, label not 0/1, or an id missing from ``manifest``/``enrollment``; names the file and line.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "t.txt")
    ...     _ = open(p, "w").write("1 s1 s1/b\\n0 s1 s2/a\\n")
    ...     read_trials(p)["label"].tolist()
    [1, 0]
    """
    what = "trial list"
    rows, lines = _read_columns(path, 3, what)
    labels = [r[0] for r in rows]
    for i, lab in enumerate(labels):
        if lab not in ("0", "1"):
            raise ValueError(f"{what} {os.fspath(path)}: line {lines[i]}: label {lab!r} is not 1 (target) or "
                             "0 (non-target)")
    df = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))
    df["label"] = np.asarray(labels, dtype=np.int64)
    if manifest is not None:
        _check_known(os.fspath(path), what, df["test_utt_id"].tolist(), lines, manifest["utt_id"], "test_utt_id",
                     "manifest")
    if enrollment is not None:
        _check_known(os.fspath(path), what, df["profile_id"].tolist(), lines, enrollment["profile_id"],
                     "profile_id", "enrollment")
    return df


def read_enrollment(path, *, manifest: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read a ``profile_id utt_id`` enrollment list.

    Parameters
    ----------
    path : str or os.PathLike
        Enrollment list.
    manifest : pandas.DataFrame, optional
        If given, every ``utt_id`` must be one of its ``utt_id``.

    Returns
    -------
    pandas.DataFrame
        Columns ``profile_id, utt_id``.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "e.txt")
    ...     _ = open(p, "w").write("s1 s1/a\\ns1 s1/c\\n")
    ...     read_enrollment(p)["utt_id"].tolist()
    ['s1/a', 's1/c']
    """
    what = "enrollment list"
    rows, lines = _read_columns(path, 2, what)
    df = pd.DataFrame(rows, columns=list(ENROLL_COLUMNS))
    if manifest is not None:
        _check_known(os.fspath(path), what, df["utt_id"].tolist(), lines, manifest["utt_id"], "utt_id", "manifest")
    return df


def read_lists(data_dir, *, manifest: pd.DataFrame | None = None):
    """``(enroll, trials)`` from ``enroll.txt`` and ``trials.txt`` in ``data_dir``, checked against each other and,
    when given, the manifest."""
    from pathlib import Path

    enroll = read_enrollment(Path(data_dir) / "enroll.txt", manifest=manifest)
    trials = read_trials(Path(data_dir) / "trials.txt", manifest=manifest, enrollment=enroll)
    return enroll, trials


def min_profile_size(enroll: pd.DataFrame) -> int:
    """The fewest enrollment utterances of any profile (calibration profiles are built like the evaluation's).

    Examples
    --------
    >>> min_profile_size(pd.DataFrame({"profile_id": ["a", "a", "b"], "utt_id": ["1", "2", "3"]}))
    1
    """
    return int(enroll.groupby("profile_id").size().min())


def describe(enroll: pd.DataFrame, trials: pd.DataFrame) -> str:
    """One line on the lists: profiles, utterances per profile, trials by label.

    Examples
    --------
    >>> e = pd.DataFrame({"profile_id": ["a", "a"], "utt_id": ["1", "2"]})
    >>> describe(e, pd.DataFrame({"label": [1, 0, 0], "profile_id": ["a"] * 3, "test_utt_id": ["3", "4", "5"]}))
    '1 profiles of 2 utterance(s); 3 trials (1 target, 2 non-target)'
    """
    sizes = enroll.groupby("profile_id").size()
    per = f"{sizes.min()}" if sizes.min() == sizes.max() else f"{sizes.min()}-{sizes.max()}"
    return (f"{enroll.profile_id.nunique()} profiles of {per} utterance(s); {len(trials)} trials "
            f"({int(trials.label.sum())} target, {int((trials.label == 0).sum())} non-target)")
