"""One manifest format for every data source, speaker-disjoint splits, and enrollment/trial lists.

Manifest: CSV with header ``utt_id,speaker_id,path,duration_s,split`` (extra columns are kept). ``split`` is one
of ``train``, ``align``, ``eval`` or empty before splitting. ``path`` is stored relative to the manifest's own
directory when the audio lies under it (so a data folder can be moved as a whole), else absolute;
:func:`read_manifest` always returns absolute paths.

Optional columns ``start`` and ``stop`` make an utterance a segment of its file, like Kaldi ``segments``: integer
sample frames in the file's own sample rate, ``stop`` exclusive (``soundfile.read(start=, stop=)``). Give both
columns or neither; an empty cell (or no columns at all) means the whole file. The synthetic corpus stores one
recording per speaker and uses them; real-dataset readers keep one file per utterance and leave them out.
Load rows with :func:`nessa_lib.audio.manifest_segments` / :func:`nessa_lib.audio.load_segment`, which honour them.

Trial list: one trial per line, ``label profile_id test_utt_id`` separated by single spaces, label 1 (target) or
0 (non-target); this is the VoxCeleb ``veri_test.txt`` layout, so official lists read as they are.
Enrollment list: ``profile_id utt_id`` per line; a profile is the average of its utterances' embeddings.
"""

from __future__ import annotations

import logging
import numbers
import os

import numpy as np
import pandas as pd

from nessa_lib.io import atomic_write_text

logger = logging.getLogger(__name__)

COLUMNS = ("utt_id", "speaker_id", "path", "duration_s", "split")
#: Optional segment columns: sample frames ``[start, stop)`` of the utterance in its file (empty: whole file).
SEGMENT_COLUMNS = ("start", "stop")
SPLITS = ("train", "align", "eval")
TRIAL_COLUMNS = ("label", "profile_id", "test_utt_id")
ENROLL_COLUMNS = ("profile_id", "utt_id")


def validate_manifest(df: pd.DataFrame, source=None) -> None:
    """Raise ``ValueError`` unless ``df`` is a well-formed manifest.

    Checks: required columns, at least one row, non-empty ids and paths, unique ``utt_id``,
    finite ``duration_s`` > 0, ``split`` in ``{'train', 'align', 'eval', ''}``; if the optional segment columns
    ``start``/``stop`` are present: both of them, each cell empty or an integer >= 0, both or neither set on a
    row, and ``stop > start``.

    Parameters
    ----------
    df : pandas.DataFrame
        Manifest table.
    source : str, optional
        File the table came from (or goes to), named in error messages together with the CSV line number
        (header = line 1).

    Examples
    --------
    >>> df = pd.DataFrame({"utt_id": ["a"], "speaker_id": ["s"], "path": ["/x/a.wav"],
    ...                    "duration_s": [1.0], "split": [""]})
    >>> validate_manifest(df)
    >>> validate_manifest(df.assign(duration_s=0.0), source="m.csv")
    Traceback (most recent call last):
    ...
    ValueError: manifest m.csv: line 2 (utt_id 'a'): duration_s 0.0 is not a finite number > 0
    >>> validate_manifest(df.assign(start=[16000], stop=[8000]), source="m.csv")
    Traceback (most recent call last):
    ...
    ValueError: manifest m.csv: line 2 (utt_id 'a'): stop 8000 is not after start 16000
    """
    where = f"manifest {source}" if source else "manifest"
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; expected header {','.join(COLUMNS)}")
    if len(df) == 0:
        raise ValueError(f"{where}: has no rows")
    ids = df["utt_id"].tolist()

    def row(i):
        return f"line {i + 2} (utt_id {ids[i]!r})"

    for col in ("utt_id", "speaker_id", "path"):
        vals = df[col].tolist()
        bad = [i for i, v in enumerate(vals) if not isinstance(v, str) or not v.strip()]
        if bad:
            raise ValueError(f"{where}: {row(bad[0])}: empty {col} ({len(bad)} row(s) affected)")
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        lines = [int(i) + 2 for i in np.flatnonzero(np.asarray(ids, dtype=object) == ids[first])]
        raise ValueError(f"{where}: utt_id {ids[first]!r} appears on lines {lines}; "
                         f"{int(dup.sum())} rows have a duplicated utt_id")
    dur = pd.to_numeric(df["duration_s"], errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(dur) & (dur > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        v = df["duration_s"].iloc[i]
        v = v.item() if isinstance(v, np.generic) else v  # show 0.0, not np.float64(0.0)
        raise ValueError(f"{where}: {row(i)}: duration_s {v!r} is not a finite number > 0")
    splits = df["split"].tolist()
    bad = [i for i, s in enumerate(splits) if not (s == "" or s in SPLITS)]
    if bad:
        i = bad[0]
        raise ValueError(f"{where}: {row(i)}: split {splits[i]!r} is not one of {list(SPLITS)} or empty")
    _segments(df, where, row)


def segment_bound(value, what: str = "segment bound"):
    """One ``start``/``stop`` cell as an ``int``, or ``None`` for an empty cell (NaN, ``<NA>``, ``None``, ``''``).

    Accepts ints, digit strings (a CSV cell) and integral floats (pandas turns an int column with gaps into
    floats); raises ``ValueError`` (prefixed with ``what``) for anything else, negative values included.

    Examples
    --------
    >>> segment_bound("16000"), segment_bound(16000.0), segment_bound(""), segment_bound(float("nan"))
    (16000, 16000, None, None)
    >>> segment_bound(-1, "line 2: start")
    Traceback (most recent call last):
    ...
    ValueError: line 2: start -1 is not a sample frame (an integer >= 0)
    """
    if value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, str):
        v = value.strip()
        if not v:
            return None
        if v.isascii() and v.isdigit():
            return int(v)
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if value >= 0:
            return int(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        if float(value).is_integer() and value >= 0:
            return int(value)
    value = value.item() if isinstance(value, np.generic) else value
    raise ValueError(f"{what} {value!r} is not a sample frame (an integer >= 0)")


def _segments(df: pd.DataFrame, where: str, row):
    """Validated ``start``/``stop`` columns as two lists of int-or-None, or ``None`` if the manifest has neither."""
    present = [c for c in SEGMENT_COLUMNS if c in df.columns]
    if not present:
        return None
    if len(present) == 1:
        other = "stop" if present[0] == "start" else "start"
        raise ValueError(f"{where}: has column {present[0]!r} but not {other!r}; give both segment columns or neither")
    bounds = {}
    for col in SEGMENT_COLUMNS:
        bounds[col] = [segment_bound(v, f"{where}: {row(i)}: {col}") for i, v in enumerate(df[col].tolist())]
    for i, (a, b) in enumerate(zip(bounds["start"], bounds["stop"])):
        if (a is None) != (b is None):
            have, miss = ("start", "stop") if b is None else ("stop", "start")
            raise ValueError(f"{where}: {row(i)}: {have} {a if b is None else b} is given without {miss}; "
                             "a segment needs both (or neither, for the whole file)")
        if a is not None and b <= a:
            raise ValueError(f"{where}: {row(i)}: stop {b} is not after start {a}")
    return bounds["start"], bounds["stop"]


def _with_int_segments(df: pd.DataFrame, source) -> pd.DataFrame:
    """``df`` with ``start``/``stop`` as nullable ``Int64`` (written as ``16000`` or empty, never ``16000.0``)."""
    seg = _segments(df, f"manifest {source}" if source else "manifest", lambda i: f"line {i + 2}")
    if seg is not None:
        for col, vals in zip(SEGMENT_COLUMNS, seg):
            df[col] = pd.array(vals, dtype="Int64")
    return df


def _column_order(df: pd.DataFrame) -> list:
    first = list(COLUMNS) + [c for c in SEGMENT_COLUMNS if c in df.columns]
    return first + [c for c in df.columns if c not in first]


def write_manifest(df: pd.DataFrame, path) -> None:
    """Validate and write a manifest CSV atomically (temp file, then ``os.replace``).

    Parameters
    ----------
    df : pandas.DataFrame
        Manifest with at least the columns :data:`COLUMNS`; ``split`` may be missing (written empty).
        Relative ``path`` values are taken relative to the current directory. Optional ``start``/``stop``
        (:data:`SEGMENT_COLUMNS`) are written as integers right after ``split``, empty where missing (a float
        column with NaN gaps is fine: ``16000.0`` is written ``16000``).
    path : str or os.PathLike
        Output CSV. Audio paths under its directory are stored relative to it, others absolute.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     df = pd.DataFrame({"utt_id": ["s1/a"], "speaker_id": ["s1"],
    ...                        "path": [os.path.join(d, "s1", "a.wav")], "duration_s": [1.5]})
    ...     write_manifest(df, os.path.join(d, "manifest.csv"))
    ...     print(open(os.path.join(d, "manifest.csv")).read().strip())
    utt_id,speaker_id,path,duration_s,split
    s1/a,s1,s1/a.wav,1.5,
    >>> with tempfile.TemporaryDirectory() as d:
    ...     df = pd.DataFrame({"utt_id": ["s1/a", "s1/b"], "speaker_id": ["s1", "s1"],
    ...                        "path": [os.path.join(d, "s1.flac")] * 2, "duration_s": [1.0, 0.5],
    ...                        "start": [0, 16000], "stop": [16000, 24000]})
    ...     write_manifest(df, os.path.join(d, "manifest.csv"))
    ...     print(open(os.path.join(d, "manifest.csv")).read().strip())
    utt_id,speaker_id,path,duration_s,split,start,stop
    s1/a,s1,s1.flac,1.0,,0,16000
    s1/b,s1,s1.flac,0.5,,16000,24000
    """
    path = os.fspath(path)
    df = df.copy()
    if "split" not in df.columns:
        df["split"] = ""
    df["split"] = df["split"].fillna("").astype(str)
    validate_manifest(df, source=path)
    df = _with_int_segments(df, path)
    base = os.path.dirname(os.path.abspath(path))

    def rel(p):
        a = os.path.abspath(os.path.expanduser(p))
        # commonpath, not startswith: /data/ab must not count as being under /data/a.
        try:
            under = os.path.commonpath([a, base]) == base
        except ValueError:  # different drives on Windows
            under = False
        return os.path.relpath(a, base).replace(os.sep, "/") if under else a

    df["path"] = [rel(p) for p in df["path"]]
    atomic_write_text(path, df[_column_order(df)].to_csv(index=False, lineterminator="\n"))


def read_manifest(path, *, check_files: bool = False) -> pd.DataFrame:
    """Read and validate a manifest CSV; ``path`` comes back absolute.

    Parameters
    ----------
    path : str or os.PathLike
        Manifest CSV written by :func:`write_manifest` (or by hand with the same header).
    check_files : bool
        Also check that every audio file exists (one ``stat`` per row).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS` first (ids and split as str, ``duration_s`` float), then ``start``/``stop`` if
        present (nullable ``Int64``, ``<NA>`` for the whole file), then any extra columns (as str).

    Raises
    ------
    FileNotFoundError
        The manifest (or, with ``check_files``, an audio file) does not exist.
    ValueError
        Malformed manifest; the message names the file and the offending line.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     m = os.path.join(d, "m.csv")
    ...     with open(m, "w") as f:
    ...         _ = f.write("utt_id,speaker_id,path,duration_s,split\\nNA/a,NA,NA/a.wav,2.0,eval\\n")
    ...     df = read_manifest(m)
    ...     df.loc[0, "path"] == os.path.join(d, "NA", "a.wav"), df.loc[0, "speaker_id"]
    (True, 'NA')
    >>> with tempfile.TemporaryDirectory() as d:
    ...     m = os.path.join(d, "m.csv")
    ...     with open(m, "w") as f:
    ...         _ = f.write("utt_id,speaker_id,path,duration_s,split,start,stop\\n"
    ...                     "a,s,s.flac,1.0,,0,16000\\nb,s,b.wav,2.0,,,\\n")
    ...     df = read_manifest(m)
    >>> df["start"].tolist(), str(df["stop"].dtype)
    ([0, <NA>], 'Int64')
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"manifest {path} does not exist")
    try:
        # All text, no NA guessing: a speaker called "NA" or "nan" must stay a string.
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError as e:
        raise ValueError(f"manifest {path}: file is empty (no header)") from e
    except pd.errors.ParserError as e:
        raise ValueError(f"manifest {path}: not a valid CSV ({e})") from e
    validate_manifest(df, source=path)
    df["duration_s"] = df["duration_s"].astype(float)
    df = _with_int_segments(df, path)
    base = os.path.dirname(os.path.abspath(path))
    df["path"] = [os.path.normpath(p if os.path.isabs(p) else os.path.join(base, p)) for p in df["path"]]
    if check_files:
        gone = [i for i, p in enumerate(df["path"]) if not os.path.exists(p)]
        if gone:
            i = gone[0]
            raise FileNotFoundError(f"manifest {path}: line {i + 2} (utt_id {df['utt_id'].iloc[i]!r}): audio file "
                                    f"{df['path'].iloc[i]} does not exist ({len(gone)} missing in total)")
    return df[_column_order(df)].reset_index(drop=True)


def first_utterances(df: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first ``n`` utterances of every speaker, in ``utt_id`` order (``n = 0``: every utterance).

    Used to embed only part of a large split (the encoder-training speakers, as extra alignment pairs): the
    choice is deterministic, so it needs no seed, and it keeps every speaker, which matters more to an aligner
    than more utterances of the same voices (README, alignment-data ablation).

    Parameters
    ----------
    df : DataFrame
        Manifest rows (at least ``utt_id`` and ``speaker_id``).
    n : int
        Utterances kept per speaker (>= 0).

    Returns
    -------
    DataFrame
        The kept rows, in their original order.

    Examples
    --------
    >>> df = pd.DataFrame({"utt_id": ["b2", "a1", "b1", "a2", "a3"], "speaker_id": ["b", "a", "b", "a", "a"]})
    >>> first_utterances(df, 1)["utt_id"].tolist()
    ['a1', 'b1']
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"utterances per speaker must be >= 0 (0 = all), got {n}")
    if n == 0:
        return df
    rank = df.groupby("speaker_id")["utt_id"].rank(method="first")
    return df[rank <= n]


def _split_counts(sizes: dict, n: int) -> dict:
    unknown = set(sizes) - set(SPLITS)
    if unknown:
        raise ValueError(f"split sizes: unknown split(s) {sorted(unknown)}; use {list(SPLITS)}")
    vals = [sizes.get(s, 0) for s in SPLITS]
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v) or v < 0 for v in vals):
        raise ValueError(f"split sizes must be finite numbers >= 0, got {sizes}")
    if all(isinstance(v, numbers.Integral) for v in vals):
        counts = [int(v) for v in vals]
        if sum(counts) > n:
            raise ValueError(f"split counts {sizes} sum to {sum(counts)} but there are only {n} speakers")
        return dict(zip(SPLITS, counts))
    total = float(sum(vals))
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"split fractions {sizes} sum to {total}, expected 1 (or give integer speaker counts)")
    # Largest-remainder rounding so the counts add up to exactly n.
    raw = np.asarray(vals, dtype=float) * n
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return dict(zip(SPLITS, counts.tolist()))


def speaker_disjoint_split(speaker_ids, sizes: dict, rng, *, min_eval_speakers: int = 100) -> dict:
    """Assign each speaker to exactly one of train / align / eval.

    Parameters
    ----------
    speaker_ids : iterable
        Speaker ids; duplicates are fine (e.g. a manifest's ``speaker_id`` column). The result does not depend
        on their order.
    sizes : dict
        Either fractions summing to 1 (``{'train': .6, 'align': .2, 'eval': .2}``) or integer speaker counts
        (``{'align': 50, 'eval': 100}``). Missing keys mean 0. With counts, speakers left over are mapped to
        ``''`` (unused).
    rng : numpy.random.Generator or int
        Randomness source (an int is used as a seed).
    min_eval_speakers : int
        Raise if eval would get fewer speakers; EER on a handful of speakers is noise. Lower it only for tiny
        fixtures.

    Returns
    -------
    dict
        ``speaker_id -> split``.

    Examples
    --------
    >>> spk = [f"s{i}" for i in range(10)]
    >>> split = speaker_disjoint_split(spk, {"train": 0.6, "align": 0.2, "eval": 0.2}, 0, min_eval_speakers=2)
    >>> sorted(pd.Series(split).value_counts().items())
    [('align', 2), ('eval', 2), ('train', 6)]
    """
    rng = np.random.default_rng(rng)
    speakers = sorted(set(speaker_ids), key=str)
    if not speakers:
        raise ValueError("speaker_disjoint_split: no speakers given")
    counts = _split_counts(sizes, len(speakers))
    if counts["eval"] < min_eval_speakers:
        raise ValueError(f"speaker_disjoint_split: eval would get {counts['eval']} of {len(speakers)} speakers, "
                         f"fewer than min_eval_speakers={min_eval_speakers}")
    perm = rng.permutation(len(speakers))
    out, start = {}, 0
    for s in SPLITS:
        for i in perm[start:start + counts[s]]:
            out[speakers[i]] = s
        start += counts[s]
    for i in perm[start:]:
        out[speakers[i]] = ""
    return out


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
