"""The manifest format: its columns, validation, segments, and reading/writing ``manifest.csv``.

Manifest: CSV with header ``utt_id,speaker_id,path,duration_s,split`` (extra columns are kept). ``split`` is one
of ``train``, ``align``, ``eval`` or empty before splitting. ``path`` is stored relative to the manifest's own
directory when the audio lies under it (so a data folder can be moved as a whole), else absolute;
:func:`read_manifest` always returns absolute paths.

Optional columns ``start`` and ``stop`` make an utterance a segment of its file, like Kaldi ``segments``: integer
sample frames in the file's own sample rate, ``stop`` exclusive (``soundfile.read(start=, stop=)``). Give both
columns or neither; an empty cell (or no columns at all) means the whole file. The synthetic corpus stores one
recording per speaker and uses them; real-dataset readers keep one file per utterance and leave them out.
Load rows with :func:`nessa_lib.data.audio.manifest_segments` / :func:`nessa_lib.data.audio.load_segment`, which
honour them.

Speaker-disjoint splits are in :mod:`nessa_lib.data.splits`, enrollment and trial lists in
:mod:`nessa_lib.data.lists`.
"""

from __future__ import annotations

import numbers
import os

import numpy as np
import pandas as pd

from nessa_lib.io import atomic_write_text

COLUMNS = ("utt_id", "speaker_id", "path", "duration_s", "split")
#: Optional segment columns: sample frames ``[start, stop)`` of the utterance in its file (empty: whole file).
SEGMENT_COLUMNS = ("start", "stop")
SPLITS = ("train", "align", "eval")


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



def enroll_flags(df: pd.DataFrame, utt_ids):
    """Whether each of ``utt_ids`` was recorded in the enrollment condition (the synthetic corpus's ``enroll``
    column, read back from CSV as text), or ``None`` when the manifest has no such column.

    Examples
    --------
    >>> df = pd.DataFrame({"utt_id": ["a", "b"], "enroll": ["True", "false"]})
    >>> enroll_flags(df, ["b", "a"]).tolist()
    [False, True]
    """
    if "enroll" not in df.columns:
        return None
    flags = df.set_index("utt_id").reindex(list(utt_ids))["enroll"]
    return flags.astype(str).str.lower().eq("true").to_numpy()
