"""Audio loading and probing: mono float32 at the model's sample rate, or an ``AudioError`` naming the file.

Conventions (see field notes F): stereo is averaged to mono (SpeechBrain ``avg-to-mono``, pyannote
``mono='downmix'``), other sample rates are resampled with a logged warning (WeSpeaker, 3D-Speaker, NeMo), and
anything a speaker model would crash on or silently turn into a NaN embedding (unreadable, empty, too short,
NaN/inf, digital silence) is refused up front with a short machine-readable ``reason``.

Segments. An utterance may be a segment of a longer file (the synthetic corpus stores one recording per speaker):
``start``/``stop`` are sample frames in the file's native rate, ``stop`` exclusive, as in ``soundfile.read`` and
Kaldi ``segments``; only that segment is decoded, and every check applies to it. :func:`manifest_segments` turns
manifest rows (optional ``start``/``stop`` columns, empty = whole file) into ``(path, start, stop)`` triples.
"""

from __future__ import annotations

import csv
import io
import logging
import numbers
import os
from math import gcd
from typing import Iterable, NamedTuple

import numpy as np

from nessa_lib.io import atomic_write_text

logger = logging.getLogger(__name__)

#: Every ``AudioError.reason`` this module produces ('unreadable_name': a file name that is not valid UTF-8, which
#: soundfile cannot open and a manifest cannot hold; 'unsupported_format': an audio container libsndfile cannot
#: decode, such as m4a/AAC).
REASONS = ("missing", "unreadable", "empty", "too_short", "non_finite", "silent", "multichannel", "bad_segment",
           "unreadable_name", "unsupported_format")

# libsndfile container formats (``soundfile.available_formats()`` keys) and the file extensions they come in.
_FORMAT_EXTS = {"WAV": ("wav",), "FLAC": ("flac",), "OGG": ("ogg", "oga"), "MP3": ("mp3",), "AIFF": ("aif", "aiff"),
                "AU": ("au", "snd"), "CAF": ("caf",), "W64": ("w64",), "RF64": ("rf64",)}
# Audio extensions no libsndfile build reads (``opus`` joins them when libsndfile lacks Ogg Opus).
_OTHER_AUDIO_EXTS = ("m4a", "aac", "mp4", "m4b", "wma", "webm", "amr", "3gp", "ape", "wv", "mka")


def readable_extensions() -> tuple:
    """File extensions (lower case, no dot) of the audio containers this soundfile/libsndfile build decodes.

    Examples
    --------
    >>> {"wav", "flac"} <= set(readable_extensions()), "m4a" in readable_extensions()
    (True, False)
    """
    import soundfile as sf

    formats = sf.available_formats()
    exts = [e for fmt, es in _FORMAT_EXTS.items() if fmt in formats for e in es]
    if "OGG" in formats and "OPUS" in sf.available_subtypes("OGG"):
        exts.append("opus")
    return tuple(exts)


def unsupported_extensions() -> tuple:
    """Extensions of audio containers this soundfile build cannot decode (m4a, aac, ...): files to convert first.

    Examples
    --------
    >>> "m4a" in unsupported_extensions(), "wav" in unsupported_extensions()
    (True, False)
    """
    readable = set(readable_extensions())
    return tuple(e for e in (*_OTHER_AUDIO_EXTS, "opus") if e not in readable)


def printable_path(path) -> str:
    """``path`` as text that any UTF-8 file or terminal can hold: bytes that are not UTF-8 are shown as ``\\xff``.

    ``os.walk`` hands such bytes over as lone surrogates, which no UTF-8 writer (a CSV skip report, a log)
    accepts.

    Examples
    --------
    >>> print(printable_path(os.fsdecode(b"spk/\\xff.wav")), printable_path("spk/a b.wav"), sep=" | ")
    spk/\\xff.wav | spk/a b.wav
    """
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def name_is_readable(path) -> bool:
    """Whether soundfile can be handed ``path`` as a name: it must encode to UTF-8 (no stray bytes).

    Examples
    --------
    >>> name_is_readable("spk/a b.wav"), name_is_readable(os.fsdecode(b"spk/\\xff.wav"))
    (True, False)
    """
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class AudioError(ValueError):
    """An audio file cannot be used; ``str(err)`` names the file and the problem.

    Attributes
    ----------
    path : str
        The offending file.
    reason : str
        Short machine-readable tag, one of :data:`REASONS`.
    segment : tuple of (int or None, int or None), or None
        ``(start, stop)`` sample frames when a segment of the file was asked for; the message then names the
        file as ``path[start:stop]``.
    """

    def __init__(self, path, reason: str, detail: str, segment=None):
        self.path = str(path)
        self.reason = reason
        self.detail = detail  # kept so the same error can be rebuilt after crossing a process boundary
        self.segment = segment
        where = segment_label(self.path, *(segment or ()))
        super().__init__(f"{where}: {detail} [{reason}]")

    def __reduce__(self):
        # Rebuilt from its fields when it crosses a process boundary (a worker of nessa_lib.parallel.run_jobs):
        # the default pickling would call __init__ with the message alone and fail.
        return (type(self), (self.path, self.reason, self.detail, self.segment))


def segment_label(path, start=None, stop=None) -> str:
    """``path`` alone for a whole file, ``path[start:stop]`` for a segment (log and error messages).

    Examples
    --------
    >>> segment_label("a.flac"), segment_label("a.flac", 16000, 48000), segment_label("a.flac", 8000)
    ('a.flac', 'a.flac[16000:48000]', 'a.flac[8000:]')
    """
    if start is None and stop is None:
        return str(path)
    return f"{path}[{'' if start is None else start}:{'' if stop is None else stop}]"


class AudioInfo(NamedTuple):
    """Header facts about one audio file (no samples decoded)."""

    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    path: str = ""


def _check_is_file(path) -> None:
    if not os.path.exists(path):
        raise AudioError(path, "missing", "file does not exist")
    if not os.path.isfile(path):
        raise AudioError(path, "unreadable", "is not a regular file (a directory?)")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "empty", "file is 0 bytes")


def probe_audio(path) -> AudioInfo:
    """Read the header of an audio file with ``soundfile.info``.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file (any format libsndfile reads: wav, flac, ogg, ...; not m4a/aac).

    Returns
    -------
    AudioInfo
        ``(sample_rate, channels, frames, duration_s, path)``. A valid file with 0 frames is returned as is;
        :func:`scan_audio` and :func:`load_audio` reject it.

    Raises
    ------
    AudioError
        ``reason`` 'missing', 'empty' (0-byte file), 'unreadable' (not an audio file libsndfile understands),
        'unsupported_format' (an m4a/aac/... file, see :func:`unsupported_extensions`) or 'unreadable_name' (a
        name that is not valid UTF-8; the error's ``path`` is then :func:`printable_path` of it).

    Examples
    --------
    >>> import tempfile, os, numpy as np, soundfile as sf
    >>> with tempfile.TemporaryDirectory() as d:
    ...     f = os.path.join(d, "a.wav")
    ...     sf.write(f, np.zeros(8000, dtype=np.float32), 16000)
    ...     probe_audio(f)[:4]
    (16000, 1, 8000, 0.5)
    """
    import soundfile as sf

    if not name_is_readable(path):
        raise AudioError(printable_path(path), "unreadable_name",
                         "file name is not valid UTF-8, which soundfile cannot open: rename the file")
    _check_is_file(path)
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError) as e:
        if ext in unsupported_extensions():
            raise AudioError(path, "unsupported_format", f".{ext} audio cannot be decoded by soundfile; convert it "
                             f"to wav first, e.g. `ffmpeg -i x.{ext} -ar 16000 -ac 1 x.wav`") from e
        raise AudioError(path, "unreadable", f"not a readable audio file ({e})") from e
    sr = int(info.samplerate)
    if sr <= 0:
        raise AudioError(path, "unreadable", f"header has sample rate {sr}")
    frames = int(info.frames)
    return AudioInfo(sr, int(info.channels), frames, frames / sr, str(path))


def load_audio(path, *, target_sr: int = 16000, min_dur_s: float = 0.5, mono: str = "downmix",
               start: int | None = None, stop: int | None = None) -> np.ndarray:
    """Load an audio file, or one segment of it, as a 1-D float32 array at ``target_sr``; never modifies the file.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file.
    target_sr : int
        Sample rate of the result. Other rates are resampled with ``scipy.signal.resample_poly``
        (up/down ratio reduced by their gcd) and a warning is logged on ``nessa_lib.data.audio``.
    min_dur_s : float
        Shortest accepted duration in seconds (speaker models crash or return garbage on ~25 ms clips).
    mono : {'downmix', 'first', 'error'}
        Multi-channel handling: average the channels (logged warning), keep channel 0 (logged warning), or raise.
    start, stop : int, optional
        Decode only sample frames ``[start, stop)`` (``None``: the file's first / last frame), counted in the
        file's own sample rate, like ``soundfile.read``. Only the segment is decoded, and every check below
        applies to the segment.

    Returns
    -------
    numpy.ndarray, shape (n,), float32
        Samples in [-1, 1] for PCM input.

    Raises
    ------
    AudioError
        With ``reason`` 'missing', 'unreadable', 'empty', 'too_short', 'non_finite' (any NaN/inf sample),
        'silent' (all samples exactly 0), 'multichannel' (``mono='error'``) or 'bad_segment' (negative or
        non-integer ``start``/``stop``, ``start >= stop``, or a segment that runs past the end of the file).
        For a segment the message names it as ``path[start:stop]``.

    Examples
    --------
    >>> import tempfile, os, numpy as np, soundfile as sf
    >>> with tempfile.TemporaryDirectory() as d:
    ...     f = os.path.join(d, "a.wav")
    ...     sf.write(f, 0.1 * np.ones(8000, dtype=np.float32), 8000)
    ...     x = load_audio(f, target_sr=16000)
    ...     y = load_audio(f, target_sr=8000, start=2000, stop=6000, min_dur_s=0.1)
    >>> x.shape, x.dtype, y.shape
    ((16000,), dtype('float32'), (4000,))
    """
    import soundfile as sf

    if mono not in ("downmix", "first", "error"):
        raise ValueError(f"mono must be 'downmix', 'first' or 'error', got {mono!r} (loading {path})")
    segment = None if start is None and stop is None else (start, stop)

    def fail(reason, detail):
        return AudioError(path, reason, detail, segment=segment)

    for name, v in (("start", start), ("stop", stop)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0):
            raise fail("bad_segment", f"segment {name} must be a sample frame >= 0, got {v!r}")
    if start is not None and stop is not None and start >= stop:
        raise fail("bad_segment", f"segment is empty or reversed (start {start} >= stop {stop})")
    info = probe_audio(path)
    a = 0 if start is None else int(start)
    b = info.frames if stop is None else int(stop)
    if segment is not None:
        if b > info.frames or a >= info.frames:
            raise fail("bad_segment", f"segment runs past the end of the file ({info.frames} frames)")
    n_frames = b - a
    # Cheap header checks first so a 10-minute file with a bad header is not decoded for nothing.
    if n_frames <= 0:
        raise fail("empty", "contains 0 samples")
    if n_frames / info.sample_rate < min_dur_s:
        raise fail("too_short", f"duration {n_frames / info.sample_rate:.3f} s < min_dur_s={min_dur_s} s")
    try:
        x, sr = sf.read(str(path), start=a, stop=b, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as e:
        raise fail("unreadable", f"header is readable but decoding failed ({e})") from e
    # A truncated file can decode to fewer frames than its header claims: re-check on the real data.
    if x.shape[0] == 0:
        raise fail("empty", "decoded to 0 samples (truncated file?)")
    if segment is not None and x.shape[0] != n_frames:
        raise fail("bad_segment", f"decoded {x.shape[0]} of the segment's {n_frames} frames (truncated file?)")
    if x.shape[0] / sr < min_dur_s:
        raise fail("too_short", f"decoded duration {x.shape[0] / sr:.3f} s < min_dur_s={min_dur_s} s")
    finite = np.isfinite(x)
    if not finite.all():
        n_bad = int(x.size - finite.sum())
        raise fail("non_finite", f"{n_bad} of {x.size} samples are NaN/inf")
    if not np.any(x):
        raise fail("silent", "all samples are exactly 0 (digital silence gives NaN/garbage embeddings)")
    label = segment_label(path, *(segment or ()))
    if x.shape[1] > 1:
        if mono == "error":
            raise fail("multichannel", f"has {x.shape[1]} channels and mono='error'")
        if mono == "downmix":
            logger.warning("%s: %d channels, averaging to mono", label, x.shape[1])
            x = x.mean(axis=1, dtype=np.float32)
        else:
            logger.warning("%s: %d channels, keeping channel 0", label, x.shape[1])
            x = x[:, 0]
    else:
        x = x[:, 0]
    if sr != target_sr:
        from scipy.signal import resample_poly

        g = gcd(int(sr), int(target_sr))
        logger.warning("%s: sample rate %d Hz, resampling to %d Hz", label, sr, target_sr)
        x = resample_poly(x, target_sr // g, sr // g)
    return np.ascontiguousarray(x, dtype=np.float32)


def manifest_segments(df) -> list:
    """``(path, start, stop)`` of every row of a manifest table, in row order; ``None`` means the whole file.

    The ``start``/``stop`` columns are optional (absent: every row is a whole file) and an empty cell (NaN, NA,
    ``''``) means no bound, so callers never re-implement the null handling. Pass each triple on to
    :func:`load_audio` as ``load_audio(path, start=start, stop=stop)``; :func:`load_segment` does that for one row.

    Parameters
    ----------
    df : pandas.DataFrame
        Manifest rows (see :mod:`nessa_lib.data.manifest`): a ``path`` column, optional ``start`` and ``stop``.

    Returns
    -------
    list of (str, int or None, int or None)

    Raises
    ------
    ValueError
        A ``start``/``stop`` cell is not an integer >= 0 (names the row's ``utt_id`` when there is one).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"utt_id": ["a", "b", "c"], "path": ["s1.flac", "s1.flac", "c.wav"],
    ...                    "start": [0, 48000, None], "stop": [48000, 80000, None]})
    >>> manifest_segments(df)
    [('s1.flac', 0, 48000), ('s1.flac', 48000, 80000), ('c.wav', None, None)]
    >>> manifest_segments(df.drop(columns=["start", "stop"]))[0]
    ('s1.flac', None, None)
    """
    from nessa_lib.data.manifest import segment_bound

    paths = [str(p) for p in df["path"]]
    ids = df["utt_id"].tolist() if "utt_id" in df.columns else list(range(len(paths)))
    out_cols = []
    for col in ("start", "stop"):
        vals = df[col].tolist() if col in df.columns else [None] * len(paths)
        out_cols.append([segment_bound(v, f"utt_id {u!r} ({p}): {col}") for v, u, p in zip(vals, ids, paths)])
    return list(zip(paths, *out_cols))


def load_segment(row, **kwargs) -> np.ndarray:
    """:func:`load_audio` of one manifest row, honouring its optional ``start``/``stop`` (empty = whole file).

    Parameters
    ----------
    row : mapping or namedtuple
        A manifest row: ``df.loc[i]``, ``df.iloc[i]``, a row of ``df.itertuples()`` or a plain dict.
    **kwargs
        Passed to :func:`load_audio` (``target_sr``, ``min_dur_s``, ``mono``).

    Examples
    --------
    >>> import tempfile, os, numpy as np, soundfile as sf
    >>> with tempfile.TemporaryDirectory() as d:
    ...     f = os.path.join(d, "spk.flac")
    ...     sf.write(f, np.linspace(-0.5, 0.5, 32000), 16000, subtype="PCM_16")
    ...     x = load_segment({"path": f, "start": 8000, "stop": 24000})
    ...     y = load_segment({"path": f, "start": float("nan"), "stop": float("nan")})
    >>> x.size, y.size
    (16000, 32000)
    """
    from nessa_lib.data.manifest import segment_bound

    get = row.get if hasattr(row, "get") else (lambda k, default=None: getattr(row, k, default))
    path = get("path")
    where = f"utt_id {get('utt_id', '')!r} ({path})"
    start = segment_bound(get("start", None), f"{where}: start")
    stop = segment_bound(get("stop", None), f"{where}: stop")
    return load_audio(path, start=start, stop=stop, **kwargs)


def _scan_one(p, min_dur_s: float, decode: bool, target_sr: int):
    """``(info, None)`` for a usable file, ``(None, (path, reason, message))`` for a rejected one."""
    try:
        info = probe_audio(p)
        if info.frames == 0:
            raise AudioError(p, "empty", "contains 0 samples")
        if info.duration_s < min_dur_s:
            raise AudioError(p, "too_short", f"duration {info.duration_s:.3f} s < min_dur_s={min_dur_s} s")
        if decode:
            load_audio(p, target_sr=target_sr, min_dur_s=min_dur_s)
    except AudioError as e:
        return None, (printable_path(p), e.reason, printable_path(str(e)))
    return info, None


def _scan_chunk(paths: list, min_dur_s: float, decode: bool, target_sr: int) -> list:
    """:func:`_scan_one` of each path (one job of a worker process)."""
    return [_scan_one(p, min_dur_s, decode, target_sr) for p in paths]


#: Files per job of :func:`scan_audio`'s worker processes: large enough that process hand-over costs little next
#: to decoding, small enough that the progress bar moves on a 1,000-file folder.
SCAN_CHUNK = 64


def scan_audio(paths: Iterable, *, min_dur_s: float = 0.5, decode: bool = False, target_sr: int = 16000,
               progress: bool = True, desc: str = "scan audio", workers: int = 0):
    """Probe many files, separating usable ones from a skip list instead of failing on the first bad file.

    Parameters
    ----------
    paths : iterable of str or os.PathLike
        Audio files.
    min_dur_s : float
        Files shorter than this are skipped with reason 'too_short'.
    decode : bool
        Also decode every file with :func:`load_audio` to catch what a header cannot show: NaN/inf samples
        ('non_finite'), digital silence ('silent'), data that stops decoding after a valid header ('unreadable',
        e.g. a truncated FLAC) or decodes shorter than ``min_dur_s`` ('too_short'). Slow: reads every sample.
        By default only headers are read.
    target_sr : int
        Passed to :func:`load_audio` when ``decode`` is true.
    progress : bool
        Show a tqdm progress bar.
    desc : str
        Progress bar label.
    workers : int
        Processes that probe/decode side by side, in chunks of :data:`SCAN_CHUNK` files (``<= 1``: this process).
        The result does not depend on it: same files, same order, same reasons.

    Returns
    -------
    ok : list of AudioInfo
        Usable files, in input order.
    skipped : list of (str, str, str)
        ``(path, reason, message)`` for every rejected file, in input order; ``reason`` is an ``AudioError.reason``.

    Examples
    --------
    >>> import tempfile, os, numpy as np, soundfile as sf
    >>> with tempfile.TemporaryDirectory() as d:
    ...     good, short = os.path.join(d, "good.wav"), os.path.join(d, "short.wav")
    ...     silent = os.path.join(d, "silent.wav")
    ...     sf.write(good, np.ones(16000, dtype=np.float32) * 0.1, 16000)
    ...     sf.write(short, np.ones(160, dtype=np.float32) * 0.1, 16000)
    ...     sf.write(silent, np.zeros(16000, dtype=np.float32), 16000)
    ...     ok, skipped = scan_audio([good, short, silent], progress=False)
    ...     ok2, skipped2 = scan_audio([good, short, silent], decode=True, progress=False)
    >>> len(ok), [s[1] for s in skipped], len(ok2), [s[1] for s in skipped2]
    (2, ['too_short'], 1, ['too_short', 'silent'])
    """
    from tqdm import tqdm

    paths = list(paths)
    if int(workers) > 1 and len(paths) > SCAN_CHUNK:
        from nessa_lib.parallel import run_jobs

        chunks = [(paths[i:i + SCAN_CHUNK], min_dur_s, decode, target_sr) for i in range(0, len(paths), SCAN_CHUNK)]
        results = [r for part in run_jobs(_scan_chunk, chunks, workers=int(workers),
                                          progress=desc if progress else None) for r in part]
    else:
        results = [_scan_one(p, min_dur_s, decode, target_sr)
                   for p in tqdm(paths, desc=desc, disable=not progress, unit="file")]
    ok = [info for info, _ in results if info is not None]
    skipped = [bad for _, bad in results if bad is not None]
    if skipped:
        logger.warning("skipped %d of %d audio files (first: %s)", len(skipped), len(ok) + len(skipped),
                       skipped[0][2])
    return ok, skipped


def write_skip_report(skipped, path) -> None:
    """Write a skip list from :func:`scan_audio` as CSV ``path,reason,message`` (atomic replace).

    Parameters
    ----------
    skipped : list of (str, str, str)
        ``(path, reason, message)`` tuples.
    path : str or os.PathLike
        Output CSV file; written even when ``skipped`` is empty so a pipeline stage always has its output.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = os.path.join(d, "skipped.csv")
    ...     write_skip_report([("x.wav", "empty", "x.wav: file is 0 bytes [empty]")], out)
    ...     open(out).read().splitlines()[0]
    'path,reason,message'
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")  # csv's default line ending, as before
    w.writerow(["path", "reason", "message"])
    w.writerows(skipped)
    atomic_write_text(path, buf.getvalue())
