"""What the pretrained-model adapters share (:mod:`~nessa_lib.encoders.speechbrain_hub`,
:mod:`~nessa_lib.encoders.wespeaker`): their error types, a fingerprint of model files, checking a padded batch
against the extraction protocol, and finding the shortest input a model accepts.

The adapters follow the encoder protocol of :mod:`nessa_lib.encoders.extract` (``model_id``, ``sample_rate``,
``min_samples``, ``emb_dim``, ``embed(wavs, lengths)`` with relative lengths).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np


class ModelFileNotFoundError(FileNotFoundError):
    """A file a pretrained model needs is not in its folder (the message names the folder and the file)."""


class NotASpeakerModelError(ValueError):
    """A folder or file exists but is not a speaker-embedding model this adapter can run (the message says why)."""


class HubUnreachableError(FileNotFoundError):
    """A model id is not a local folder and could not be fetched from its hub (the message says how to place the
    folder locally)."""


def file_fingerprint(name: str, files: dict, config: dict | None = None) -> str:
    """``name@`` + a 12-hex hash of the bytes of ``files`` (keyed by their role, e.g. the file name) and ``config``.

    The same length and form as :func:`nessa_lib.embeddings.fingerprint`; hashing file bytes (not tensors) makes the
    id independent of how a loader parses the files, and any changed byte gives another id.

    Parameters
    ----------
    name : str
        Prefix, e.g. ``"speechbrain"``.
    files : dict of str to path
        The model's files, keyed by a stable role name (not their absolute path: the id must not depend on where
        the folder lives).
    config : dict, optional
        JSON-serialisable settings that change the embeddings besides the files.

    Examples
    --------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "w.bin")
    >>> _ = open(p, "wb").write(b"abc")
    >>> a = file_fingerprint("toy", {"w.bin": p})
    >>> a == file_fingerprint("toy", {"w.bin": p}), a.startswith("toy@"), len(a)
    (True, True, 16)
    """
    h = hashlib.sha256(json.dumps(config or {}, sort_keys=True, default=str).encode())
    for role in sorted(files):
        h.update(role.encode() + b"\0" + bytes.fromhex(file_sha256(files[role])))
    return f"{name}@{h.hexdigest()[:12]}"


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, hex, read in 1 MiB blocks (model files can be large).

    Examples
    --------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "w.bin")
    >>> _ = open(p, "wb").write(b"abc")
    >>> file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_batch(where: str, wavs, lengths, min_samples: int, sample_rate: int):
    """Validate a padded batch as :meth:`nessa_lib.encoders.export.Encoder.embed` does.

    Returns ``(wavs, lengths, n)``: float32 ``(B, T)`` tensor, float32 relative lengths clamped to 1, and the valid
    sample count of each row (``round(lengths * T)``, SpeechBrain's convention).

    Raises
    ------
    ValueError
        Wrong shape, NaN/inf samples, lengths outside (0, 1], or a row shorter than ``min_samples``.
    """
    import torch

    if not isinstance(wavs, torch.Tensor):
        wavs = torch.as_tensor(np.asarray(wavs))
    if wavs.ndim != 2 or wavs.shape[0] == 0:
        raise ValueError(f"{where}: wavs must have shape (batch, samples), got {tuple(wavs.shape)}")
    wavs = wavs.detach().to(torch.float32).cpu()
    if lengths is None:
        lengths = torch.ones(wavs.shape[0])
    lengths = torch.as_tensor(lengths, dtype=torch.float32).detach().cpu().reshape(-1)
    if len(lengths) != wavs.shape[0]:
        raise ValueError(f"{where}: {len(lengths)} lengths for {wavs.shape[0]} waveforms")
    if not torch.isfinite(lengths).all() or (lengths <= 0).any() or (lengths > 1 + 1e-6).any():
        raise ValueError(f"{where}: lengths must be relative lengths in (0, 1], got {lengths.tolist()[:8]}")
    n = torch.round(lengths * wavs.shape[1]).long()
    bad = torch.nonzero(~torch.isfinite(wavs).all(1)).flatten()
    if len(bad):
        raise ValueError(f"{where}: waveform row(s) {bad.tolist()[:8]} contain NaN/inf samples")
    short = torch.nonzero(n < min_samples).flatten()
    if len(short):
        i = int(short[0])
        raise ValueError(f"{where}: row {i} has {int(n[i])} samples, fewer than min_samples={min_samples} "
                         f"({min_samples / sample_rate:.3f} s); pad or drop it")
    return wavs, lengths.clamp(max=1.0), n


def shortest_input(ok, floor: int, limit: int, where: str) -> int:
    """Smallest sample count ``n`` in ``[floor, limit]`` with ``ok(n)`` true, by bisection (``ok`` monotone).

    ``floor`` is one analysis window: a network may run on less, but the embedding of a partial frame is
    meaningless. Raises ``NotASpeakerModelError`` if the model cannot even process ``limit`` samples.

    Examples
    --------
    >>> shortest_input(lambda n: n >= 1234, floor=400, limit=16000, where="toy")
    1234
    >>> shortest_input(lambda n: True, floor=400, limit=16000, where="toy")
    400
    """
    if not ok(limit):
        raise NotASpeakerModelError(f"{where}: the model fails on a {limit}-sample input ({limit / 16000:.1f} s at "
                                    "16 kHz); it is not a speaker-embedding model of the expected form")
    lo, hi = max(1, int(floor)), int(limit)
    if ok(lo):
        return lo
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return int(hi)


def as_dir(path, what: str) -> Path:
    """``path`` as an existing folder, or ``ModelFileNotFoundError`` naming it."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ModelFileNotFoundError(f"{what}: folder {p} does not exist" if not p.exists()
                                     else f"{what}: {p} is a file, expected a model folder")
    return p.resolve()
