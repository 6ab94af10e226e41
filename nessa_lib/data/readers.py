"""Build manifests (see :mod:`nessa_lib.data.manifest`) from real datasets on disk, and read official trial lists.

Every reader returns ``(manifest_df, skipped)``: unreadable / empty / too-short files go to ``skipped``
(``(path, reason, message)`` tuples from :func:`nessa_lib.data.audio.scan_audio`) instead of stopping the scan, and
so do files the audio library cannot open at all: names that are not valid UTF-8 ('unreadable_name', the path
shown with ``\\xNN`` escapes) and audio containers libsndfile cannot decode ('unsupported_format', m4a/aac/...),
so the data-prep stage can write them with :func:`nessa_lib.data.audio.write_skip_report`. Durations come from
file headers (``soundfile.info``); with ``decode=True`` (what stage 01 does) every file is also decoded, in
``workers`` processes, so silent, NaN/inf and truncated files are skipped here rather than failing a later stage.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter

import pandas as pd

from nessa_lib.data.audio import (AudioError, name_is_readable, printable_path, readable_extensions, scan_audio,
                                  unsupported_extensions)
from nessa_lib.data.lists import read_trials
from nessa_lib.data.manifest import COLUMNS

logger = logging.getLogger(__name__)

_FFMPEG_HINT = "ffmpeg -i x.m4a -ar 16000 -ac 1 x.wav"
_VOX_SPEAKER = re.compile(r"^id\d+$")


def _walk(root: str):
    """Yield relative posix paths of all regular files under ``root``, sorted, skipping dot-files."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            # macOS '._x.wav' resource forks and other dot-files are never audio.
            if not name.startswith("."):
                yield os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")


def _ext(rel: str) -> str:
    return os.path.splitext(rel)[1].lower().lstrip(".")


def _check_root(root) -> str:
    root = os.path.abspath(os.path.expanduser(os.fspath(root)))
    if not os.path.exists(root):
        raise FileNotFoundError(f"dataset root {root} does not exist")
    if not os.path.isdir(root):
        raise NotADirectoryError(f"dataset root {root} is not a directory")
    return root


def _other_formats_hint(counts: Counter) -> str:
    conv = {e: n for e, n in counts.items() if e in unsupported_extensions()}
    if not conv:
        return ""
    found = ", ".join(f"{n} .{e}" for e, n in sorted(conv.items()))
    return (f"; found {found} file(s), which soundfile cannot read: convert them to 16 kHz mono wav first, "
            f"e.g. `{_FFMPEG_HINT}`")


def _refused(path: str, reason: str, detail: str) -> tuple:
    """A ``skipped`` entry for a file that is never handed to the audio library."""
    err = AudioError(printable_path(path), reason, detail)
    return (err.path, reason, str(err))


def _unopenable(path: str, ext: str):
    """The ``skipped`` entry of a file soundfile cannot open (odd name, unsupported container), else ``None``."""
    if not name_is_readable(path):
        return _refused(path, "unreadable_name", "file name is not valid UTF-8, which soundfile cannot open: "
                                                 "rename the file")
    if ext in unsupported_extensions():
        return _refused(path, "unsupported_format", f".{ext} audio cannot be decoded by soundfile; convert it to "
                                                    f"wav first, e.g. `{_FFMPEG_HINT}`")
    return None


def _build(root: str, items, *, min_dur_s: float, progress: bool, source: str, decode: bool = False,
           workers: int = 0, refused=()):
    """items: list of (utt_id, speaker_id, rel_path). Probe durations (and decode), return (manifest_df, skipped);
    ``refused``: skipped entries found while walking the folder, listed after the scan's own."""
    seen = {}
    for utt, _, rel in items:
        if utt in seen:
            raise ValueError(f"{source} {root}: files {seen[utt]} and {rel} map to the same utt_id {utt!r}")
        seen[utt] = rel
    paths = [os.path.join(root, rel) for _, _, rel in items]
    ok, skipped = scan_audio(paths, min_dur_s=min_dur_s, progress=progress, decode=decode, workers=workers,
                             desc=f"{'decode' if decode else 'probe'} {os.path.basename(root)}")
    dur = {info.path: info.duration_s for info in ok}
    rows = [(utt, spk, p, dur[p], "") for (utt, spk, _), p in zip(items, paths) if p in dur]
    skipped = [*skipped, *refused]
    if not rows:
        reasons = Counter(r for _, r, _ in skipped)
        raise ValueError(f"{source} {root}: none of the {len(items)} audio file(s) is usable "
                         f"(skipped by reason: {dict(reasons)}; first: {skipped[0][2]})")
    return pd.DataFrame(rows, columns=list(COLUMNS)), skipped


def read_folder_dataset(root, exts=None, *, min_dur_s: float = 0.5, progress: bool = False,
                        decode: bool = False, workers: int = 0):
    """Manifest for any ``root/<speaker>/**/<file>.<ext>`` folder layout.

    Parameters
    ----------
    root : str or os.PathLike
        Dataset folder; each first-level sub-folder is one speaker, audio may be nested below it.
        Files directly in ``root`` have no speaker and are ignored (logged). Dot-files are ignored.
    exts : tuple of str, optional
        Audio extensions to collect, case-insensitive, without the dot. Default: every container this soundfile
        build decodes (:func:`nessa_lib.data.audio.readable_extensions`: wav, flac, ogg, mp3, aiff, ...). Files
        in containers it cannot decode (m4a, aac, ...) are listed in ``skipped`` as 'unsupported_format'.
    min_dur_s : float
        Shorter files go to ``skipped``.
    progress : bool
        Show a progress bar while probing.
    decode, workers : bool, int
        Also decode every file (see :func:`nessa_lib.data.audio.scan_audio`), in this many processes.

    Returns
    -------
    manifest : pandas.DataFrame
        Columns :data:`nessa_lib.data.manifest.COLUMNS`; ``utt_id`` is the path relative to ``root`` without its
        extension ('/' kept, e.g. ``alice/session1/003``), ``speaker_id`` its first component, ``path``
        absolute, ``split`` empty.
    skipped : list of (str, str, str)
        ``(path, reason, message)`` for unusable files, including those soundfile cannot open: 'unreadable_name'
        (not valid UTF-8; ``path`` shows the stray bytes as ``\\xNN``) and 'unsupported_format'.

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist.
    ValueError
        No readable audio file with one of ``exts`` (the message names formats that need converting, e.g. m4a), two
        files with the same utt_id (``a.wav`` and ``a.flac``), or no usable file at all.

    Examples
    --------
    >>> import tempfile, os, numpy as np, soundfile as sf
    >>> with tempfile.TemporaryDirectory() as d:
    ...     os.makedirs(os.path.join(d, "alice", "s1"))
    ...     sf.write(os.path.join(d, "alice", "s1", "001.wav"), 0.1 * np.ones(16000, np.float32), 16000)
    ...     df, skipped = read_folder_dataset(d)
    >>> df[["utt_id", "speaker_id", "duration_s"]].values.tolist(), skipped
    ([['alice/s1/001', 'alice', 1.0]], [])
    """
    root = _check_root(root)
    wanted = {e.lower().lstrip(".") for e in (readable_extensions() if exts is None else exts)}
    audio_like = wanted | set(unsupported_extensions())
    items, refused, counts, at_root = [], [], Counter(), 0
    for rel in _walk(root):
        e = _ext(rel)
        counts[e] += 1
        if e not in audio_like:
            continue
        if "/" not in rel:
            at_root += 1
            continue
        bad = _unopenable(os.path.join(root, rel), e)
        if bad is not None:
            refused.append(bad)  # listed, never handed to soundfile (which would raise, or not decode it)
        elif e in wanted:
            items.append((os.path.splitext(rel)[0], rel.split("/", 1)[0], rel))
    if at_root:
        logger.warning("%s: ignoring %d audio file(s) directly in the root (no speaker folder)", root, at_root)
    if not items:
        names = [m for _, r, m in refused if r == "unreadable_name"]  # (unsupported formats: the hint says it)
        first = f"; {len(names)} file(s) with names soundfile cannot open, first: {names[0]}" if names else ""
        raise ValueError(f"folder dataset {printable_path(root)}: no audio files with extension(s) "
                         f"{sorted(wanted)} under <root>/<speaker>/{_other_formats_hint(counts)}{first}")
    if refused:
        logger.warning("%s: skipping %d file(s) soundfile cannot open (first: %s)", printable_path(root),
                       len(refused), refused[0][2])
    return _build(root, items, min_dur_s=min_dur_s, progress=progress, source="folder dataset", decode=decode,
                  workers=workers, refused=refused)


def read_voxceleb(root, *, min_dur_s: float = 0.5, progress: bool = False,
                  decode: bool = False, workers: int = 0):
    """Manifest for VoxCeleb1 / VoxCeleb2 in the standard layout ``root/id*/<video>/<nnnnn>.wav``.

    ``root`` is the folder holding the ``id*`` speaker folders (``.../vox1_test_wav/wav``, ``.../vox1_dev_wav/wav``;
    both VoxCeleb1 parts may be merged into one ``wav`` folder, as the E/H lists need).

    ``utt_id`` is the path relative to ``root`` **with** its extension, e.g. ``id10270/5r0dWxy17C8/00001.wav``,
    because the official trial lists (``veri_test.txt``, ``veri_test2.txt``, ``list_test_all2.txt``,
    ``list_test_hard2.txt``) name utterances exactly that way; they can then be read as given with
    :func:`read_voxceleb_trials`.

    VoxCeleb2 ships AAC audio in ``.m4a`` files, which soundfile cannot read. Convert once, keeping the layout::

        find vox2/dev/aac -name '*.m4a' | while read f; do
            ffmpeg -nostdin -loglevel error -i "$f" -ar 16000 -ac 1 "${f%.m4a}.wav"; done

    (one file: ``ffmpeg -i x.m4a -ar 16000 -ac 1 x.wav``). Utterance ids then end in ``.wav``.

    Parameters
    ----------
    root : str or os.PathLike
        Folder with the ``id*`` speaker folders.
    min_dur_s : float
        Shorter files go to ``skipped``.
    progress : bool
        Show a progress bar while probing.
    decode, workers : bool, int
        Also decode every file (see :func:`nessa_lib.data.audio.scan_audio`), in this many processes.

    Returns
    -------
    manifest : pandas.DataFrame
        Columns :data:`nessa_lib.data.manifest.COLUMNS` (``speaker_id`` = ``idNNNNN``, ``split`` empty).
    skipped : list of (str, str, str)
        ``(path, reason, message)`` for unusable files.

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist.
    ValueError
        No ``id*`` folders (with a hint if they sit one level down, e.g. in ``root/wav``), only ``.m4a`` audio
        (with the ffmpeg command), no ``.wav`` at all, or no usable file.

    Examples
    --------
    >>> import tempfile, os, numpy as np, soundfile as sf
    >>> with tempfile.TemporaryDirectory() as d:
    ...     os.makedirs(os.path.join(d, "id10001", "1zcIwhmdeo4"))
    ...     sf.write(os.path.join(d, "id10001", "1zcIwhmdeo4", "00001.wav"), 0.1 * np.ones(16000, np.float32), 16000)
    ...     df, _ = read_voxceleb(d)
    >>> df["utt_id"].tolist(), df["speaker_id"].tolist()
    (['id10001/1zcIwhmdeo4/00001.wav'], ['id10001'])
    """
    root = _check_root(root)
    spk_dirs = sorted(d for d in os.listdir(root) if _VOX_SPEAKER.match(d) and os.path.isdir(os.path.join(root, d)))
    if not spk_dirs:
        hint = ""
        for sub in sorted(os.listdir(root)):
            p = os.path.join(root, sub)
            if os.path.isdir(p) and any(_VOX_SPEAKER.match(d) for d in os.listdir(p)):
                hint = f"; the speaker folders seem to be in {p}: pass that as root"
                break
        raise ValueError(f"VoxCeleb root {root}: no speaker folders named id<digits> (expected "
                         f"root/id10001/<video>/00001.wav){hint}")
    items, refused, counts, off_layout = [], [], Counter(), 0
    for spk in spk_dirs:
        for rel in _walk(os.path.join(root, spk)):
            rel = f"{spk}/{rel}"
            e = _ext(rel)
            counts[e] += 1
            if e != "wav":
                continue
            if rel.count("/") != 2:
                off_layout += 1  # not id/video/file: not part of the standard layout, ignore
                continue
            bad = _unopenable(os.path.join(root, rel), e)
            if bad is not None:
                refused.append(bad)
                continue
            items.append((rel, spk, rel))
    if off_layout:
        logger.warning("%s: ignoring %d .wav file(s) not at id*/<video>/<file>.wav depth", root, off_layout)
    if not items:
        if counts.get("m4a"):
            raise ValueError(f"VoxCeleb root {root}: found {counts['m4a']} .m4a file(s) and no .wav; soundfile "
                             f"cannot read m4a (VoxCeleb2 ships AAC). Convert to 16 kHz mono wav next to each file, "
                             f"e.g. `{_FFMPEG_HINT}` (see read_voxceleb's docstring for a loop over the dataset)")
        raise ValueError(f"VoxCeleb root {root}: no .wav files under id*/<video>/ (extensions found: "
                         f"{dict(counts) or 'none'})")
    if counts.get("m4a"):
        logger.warning("%s: ignoring %d .m4a file(s) (only .wav is read; convert them with `%s`)",
                       root, counts["m4a"], _FFMPEG_HINT)
    return _build(root, items, min_dur_s=min_dur_s, progress=progress, source="VoxCeleb root", decode=decode,
                  workers=workers, refused=refused)


def read_voxceleb_trials(path, manifest_df: pd.DataFrame) -> pd.DataFrame:
    """Read an official VoxCeleb1 trial list (O / E / H, original or cleaned) against a manifest.

    Lines are ``label enroll_path test_path`` (e.g. ``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``).
    Enrollment is a single utterance, so ``profile_id`` is the enroll utterance id; build the matching
    enrollment table with :func:`nessa_lib.data.lists.single_utterance_enrollment`.

    Every referenced utterance is checked against ``manifest_df['utt_id']`` before anything else is done.

    Parameters
    ----------
    path : str or os.PathLike
        Trial list (``veri_test2.txt``, ``list_test_all2.txt``, ...).
    manifest_df : pandas.DataFrame
        Manifest from :func:`read_voxceleb` (utt ids with ``.wav``, relative to the ``wav`` root).

    Returns
    -------
    pandas.DataFrame
        Columns ``label`` (int 1/0), ``profile_id``, ``test_utt_id``.

    Raises
    ------
    ValueError
        Malformed line, or utterances missing from the manifest (count, first few ids, the trial file; a hint
        when the manifest's ids lack the ``.wav`` extension or files were skipped as unreadable).

    Examples
    --------
    >>> import tempfile, os
    >>> m = pd.DataFrame({"utt_id": ["id1/v/00001.wav", "id1/w/00002.wav"]})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "veri_test2.txt")
    ...     _ = open(p, "w").write("1 id1/v/00001.wav id1/w/00002.wav\\n")
    ...     read_voxceleb_trials(p, m).values.tolist()
    [[1, 'id1/v/00001.wav', 'id1/w/00002.wav']]
    """
    trials = read_trials(path)
    known = set(manifest_df["utt_id"])
    bad_enroll = ~trials["profile_id"].isin(known)
    bad_test = ~trials["test_utt_id"].isin(known)
    if (bad_enroll | bad_test).any():
        missing = pd.unique(pd.concat([trials["profile_id"][bad_enroll], trials["test_utt_id"][bad_test]])).tolist()
        n_lines = int((bad_enroll | bad_test).sum())
        hint = ""
        stripped = {os.path.splitext(u)[0] for u in missing[:50]}
        if stripped & known:
            hint = ("; the manifest's utt ids lack the file extension: build it with read_voxceleb, whose utt ids "
                    "keep '.wav' as the official lists do")
        raise ValueError(f"trial list {os.fspath(path)}: {len(missing)} utterance(s) named in {n_lines} of "
                         f"{len(trials)} trial(s) are not in the manifest, e.g. {missing[:5]}{hint} "
                         "(wrong VoxCeleb part, files skipped as unreadable, or a different root?)")
    return trials
