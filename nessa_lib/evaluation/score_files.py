"""Per-trial score files, Kaldi / WeSpeaker style, so a study's results can be re-scored with other tools.

One trial per line, four fields separated by one space, in the order of the trial list (``trials.txt``)::

    <enroll id> <test utterance id> <score> <target|nontarget>
    spk0601 spk0601_0003 0.81234574 target
    spk0601 spk0744_0007 0.10517561 nontarget

This is the layout WeSpeaker's ``wespeaker/bin/score.py`` writes (``<enroll> <test> <score> <label>``, one space
apart) and its ``wespeaker/bin/compute_metrics.py`` reads (four tokens per line, ``target`` marks a target trial):
a file here gives its EER and minDCF directly. Kaldi's ``compute-eer`` takes the last two fields
(``awk '{print $3, $4}' FILE | compute-eer -``); SpeechBrain users read it with any whitespace CSV reader. The
enroll id is the study's *profile* id (a speaker's enrollment utterances, ``enroll.txt``, averaged), the test id
a manifest ``utt_id``; higher scores mean "same speaker" (cosine similarities here).

Scores are written as the shortest decimal text that reads back as the same value in their own precision
(``float32`` scores as float32, e.g. ``0.81234574``; WeSpeaker rounds to 5 decimals): the order and the ties of
the scores are those of the study, so EER, minDCF and DET curves computed from a file are the study's exactly.
A file whose name ends in ``.gz`` is gzip-compressed (with a fixed timestamp, so the same scores give the same
bytes); WeSpeaker's tools open plain text only (``zcat FILE.gz > FILE`` first).

Stage 05 writes one file per system of every pair with :func:`write_study_scores`:
``reports/evaluate/scores/<pair>/<system>.txt`` (``XX.txt`` and ``YY.txt`` for the symmetric systems X/X and
Y/Y, ``<method>.txt`` for the aligned ones; a NESSA method's file holds its first seed's scores, the ones its DET
curve, calibration and AS-norm use).
"""

from __future__ import annotations

import gzip
import io as _io
from pathlib import Path

import numpy as np
import pandas as pd

from nessa_lib.io import atomic_path

TARGET, NONTARGET = "target", "nontarget"
# System names of stage 05's tables as file stems, like its calibration files (XX.calibration.json, ...).
SYSTEM_STEMS = {"X/X": "XX", "Y/Y": "YY"}


def _ids(values, what: str, n: int | None = None) -> np.ndarray:
    """``values`` as a 1-d array of non-empty strings without whitespace (a field of a score line)."""
    arr = np.asarray(values).astype(str)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ValueError(f"{what} has {len(arr)} entries, the scores {n}")
    bad = [v for v in arr if not v or v != "".join(v.split())]
    if bad:
        raise ValueError(f"{what} must be non-empty and hold no whitespace (a score line has four fields): "
                         f"{bad[0]!r}")
    return arr


def _labels(labels, n: int) -> np.ndarray:
    """``labels`` (1/0, True/False or 'target'/'nontarget') as the words of the file."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"labels must be one-dimensional with one entry per score ({n}), got shape {arr.shape}")
    if arr.dtype.kind in "US" or arr.dtype == object:
        words = arr.astype(str)
        bad = sorted(set(words) - {TARGET, NONTARGET})
        if bad:
            raise ValueError(f"labels must be {TARGET!r} or {NONTARGET!r} (or 1/0), got {bad[:3]}")
        return words
    if arr.dtype.kind not in "biuf" or not np.isin(arr, (0, 1)).all():
        raise ValueError("labels must be 1 (target) or 0 (non-target)")
    return np.where(arr.astype(bool), TARGET, NONTARGET)


def format_scores(scores) -> np.ndarray:
    """The scores as text: the shortest decimal that reads back as the same value in the scores' precision.

    Examples
    --------
    >>> format_scores(np.array([0.1, -0.25, 1 / 3], dtype=np.float32)).tolist()
    ['0.1', '-0.25', '0.33333334']
    >>> format_scores([1 / 3]).tolist()
    ['0.3333333333333333']
    """
    arr = np.asarray(scores)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"scores must be numbers, got dtype {arr.dtype}")
    if arr.dtype.kind != "f" or arr.dtype.itemsize > 8:
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"scores must be finite; {int((~np.isfinite(arr)).sum())} are not")
    return arr.astype(str)


def write_score_file(path, profile_ids, test_ids, scores, labels) -> Path:
    """Write one system's trial scores to ``path``, one trial per line (the module's format); return ``path``.

    Parameters
    ----------
    path : str or Path
        File to write (whole, atomically; its folder is created). A name ending in ``.gz`` is gzip-compressed.
    profile_ids, test_ids : sequence of str
        Per trial: the enrollment profile and the test utterance (no whitespace).
    scores : array of float, shape (n_trials,)
        Per trial: the score, higher = same speaker; finite.
    labels : array of int, bool or str, shape (n_trials,)
        Per trial: 1 / True / ``'target'`` for a target trial, 0 / False / ``'nontarget'`` otherwise.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "XX.txt")
    >>> _ = write_score_file(p, ["spk1", "spk1"], ["spk1_02", "spk2_00"], np.float32([0.75, -0.125]), [1, 0])
    >>> print(open(p).read(), end="")
    spk1 spk1_02 0.75 target
    spk1 spk2_00 -0.125 nontarget
    """
    text = format_scores(scores)
    n = len(text) if text.ndim == 1 else -1
    if n < 0:
        raise ValueError(f"scores must be one-dimensional, got shape {np.shape(scores)}")
    fields = (_ids(profile_ids, "profile_ids", n), _ids(test_ids, "test_ids", n), text, _labels(labels, n))
    body = "".join(f"{a} {b} {s} {lab}\n" for a, b, s, lab in zip(*fields)).encode()
    path = Path(path)
    if path.name.endswith(".gz"):
        buf = _io.BytesIO()
        # No file name and a fixed timestamp in the header: the same scores give the same bytes (DVC hashes them).
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
            gz.write(body)
        body = buf.getvalue()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(body)
    return path


def read_score_file(path) -> pd.DataFrame:
    """Read a score file (plain or ``.gz``) as a table like the trial lists: one row per trial, in file order.

    Columns: ``profile_id``, ``test_utt_id`` (str), ``score`` (float64) and ``label`` (1 = target, 0 =
    non-target), the names of :func:`nessa_lib.data.lists.read_trials`. Any whitespace separates fields; a line
    without four fields or with another label is refused with its file and line number.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "s.txt")
    >>> _ = open(p, "w").write("a a_1 0.5 target\\na b_1 -0.25 nontarget\\n")
    >>> read_score_file(p)
      profile_id test_utt_id  score  label
    0          a         a_1   0.50      1
    1          a         b_1  -0.25      0
    """
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    rows = []
    with opener(path, "rt") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 4 or fields[3] not in (TARGET, NONTARGET):
                raise ValueError(f"{path}, line {number}: expected '<enroll id> <test id> <score> "
                                 f"target|nontarget', got {line.strip()!r}")
            rows.append(fields)
    table = pd.DataFrame(rows, columns=["profile_id", "test_utt_id", "score", "label"])
    try:
        table["score"] = table["score"].astype(np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: a score is not a number ({err})") from None
    table["label"] = (table["label"] == TARGET).astype(int)
    return table


def score_file_name(system: str, *, compress: bool = False) -> str:
    """The file name of a system of stage 05's tables (``X/X`` -> ``XX.txt``; a method keeps its name).

    Examples
    --------
    >>> score_file_name("X/X"), score_file_name("nessa-m3", compress=True)
    ('XX.txt', 'nessa-m3.txt.gz')
    """
    stem = SYSTEM_STEMS.get(system, system)
    if not stem or "/" in stem or stem.startswith("."):
        raise ValueError(f"system name {system!r} cannot name a score file")
    return f"{stem}.txt" + (".gz" if compress else "")


def write_study_scores(scores: dict, trials: pd.DataFrame, out_dir, *, compress: bool = False) -> list[Path]:
    """Write every system's trial scores of every pair: ``<out_dir>/<pair>/<system>.txt``; return the files.

    Parameters
    ----------
    scores : dict
        ``{pair: {system: scores}}``, each array in the order of ``trials``' rows: stage 05's
        ``evaluated.scores`` (:class:`nessa_lib.stages.evaluate.Evaluated`; systems ``X/X``, ``Y/Y`` and each
        method, a NESSA method's first seed).
    trials : DataFrame
        The evaluation trials (``profile_id``, ``test_utt_id``, ``label``), as read by
        :func:`nessa_lib.data.lists.read_lists`.
    out_dir : str or Path
        The folder of score files (a stage output). It is rewritten whole: score files of pairs or systems no
        longer in ``scores`` are removed, other files are left alone.
    compress : bool
        Write ``.txt.gz`` files instead of plain text.

    Examples
    --------
    >>> import tempfile
    >>> t = pd.DataFrame({"label": [1, 0], "profile_id": ["a", "a"], "test_utt_id": ["a_1", "b_1"]})
    >>> d = Path(tempfile.mkdtemp())
    >>> [p.relative_to(d).as_posix() for p in write_study_scores({"x-y": {"X/X": [0.9, 0.1], "linear": [0.8, 0.3]}},
    ...                                                           t, d)]
    ['x-y/XX.txt', 'x-y/linear.txt']
    >>> print((d / "x-y" / "linear.txt").read_text(), end="")
    a a_1 0.8 target
    a b_1 0.3 nontarget
    """
    out_dir = Path(out_dir)
    missing = {"profile_id", "test_utt_id", "label"} - set(trials.columns)
    if missing:
        raise ValueError(f"trials lack the columns {sorted(missing)}")
    profile_ids, test_ids = _ids(trials["profile_id"], "profile_id"), _ids(trials["test_utt_id"], "test_utt_id")
    labels = _labels(trials["label"].to_numpy(), len(trials))
    written = []
    for pair, systems in scores.items():
        if not pair or "/" in pair or pair.startswith("."):
            raise ValueError(f"pair name {pair!r} cannot name a folder")
        for system, values in systems.items():
            if np.shape(values) != (len(trials),):
                raise ValueError(f"{pair} {system}: {np.shape(values)} scores for {len(trials)} trials")
            path = out_dir / pair / score_file_name(system, compress=compress)
            written.append(write_score_file(path, profile_ids, test_ids, values, labels))
    # The folder is an output rewritten whole: score files of a pair or a system no longer in the study go.
    keep = set(written)
    for old in sorted(out_dir.glob("*/*.txt")) + sorted(out_dir.glob("*/*.txt.gz")):
        if old not in keep:
            old.unlink()
    for folder in sorted(p for p in out_dir.glob("*") if p.is_dir()):
        if not any(folder.iterdir()):
            folder.rmdir()
    return written
