"""Pretrained encoders, and one loader for every encoder of the study.

A pretrained model is "exported" as a small descriptor (``encoder.json``) so the pipeline can treat it like the
encoders trained by :func:`~nessa_lib.encoders.brain.train_encoder`; :func:`load` loads any kind from its
directory. Three kinds of ``train_encoder.encoders`` entries (checked by :func:`check_entry`):

* ``{pretrained: resemblyzer}``: the GE2E model shipped inside the ``resemblyzer`` wheel (:class:`ResemblyzerEncoder`,
  :func:`export_pretrained`);
* ``{pretrained: speechbrain, source: <hub id or folder>, objective: <...>}``: a SpeechBrain speaker model
  (:func:`nessa_lib.zoo.from_speechbrain`);
* ``{pretrained: wespeaker, source: <model.onnx>, objective: <...>}``: a WeSpeaker-convention ONNX model
  (:func:`nessa_lib.zoo.from_wespeaker`).

For the last two, :func:`describe_source` records the source as given, the model id (a hash of the files' bytes)
and each file's SHA-256; :func:`load` loads the source again and refuses (:class:`SourceChangedError`, naming the
source and saying to re-run stage 02) if its files are no longer the ones described. DVC does not watch those
files (a ``foreach`` stage cannot have per-entry dependencies), so this check is the guard.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from nessa_lib.encoders.config import META_FILE
from nessa_lib.encoders.meta import objective, read_meta  # noqa: F401 - part of this module's interface
from nessa_lib.encoders.resemblyzer import ResemblyzerEncoder

logger = logging.getLogger(__name__)

PRETRAINED = {"resemblyzer": {"architecture": "resemblyzer", "objective": "pretrained-ge2e", "emb_dim": 256}}
PRETRAINED_FORMAT = "nessa-pretrained-encoder"
# Pretrained kinds loaded from a user-given `source` (a hub id, a folder or a file), and what the source is.
SOURCE_KINDS = {"speechbrain": "a SpeechBrain hub id (owner/repo) or a folder in the hub layout",
                "wespeaker": "a WeSpeaker-convention .onnx file"}
# The keys of each kind of pretrained entry in train_encoder.encoders (all required).
ENTRY_KEYS = {"resemblyzer": ("pretrained",), **{k: ("pretrained", "source", "objective") for k in SOURCE_KINDS}}


class SourceChangedError(ValueError):
    """The files of a pretrained encoder's ``source`` are not the ones stage 02 described, or changed while being
    read (the message names the source and says what to re-run)."""


def check_entry(entry: dict, where: str) -> dict:
    """Check a pretrained entry of ``train_encoder.encoders``; return it unchanged.

    Parameters
    ----------
    entry : dict
        The entry, e.g. ``{"pretrained": "speechbrain", "source": "speechbrain/spkrec-ecapa-voxceleb",
        "objective": "aam"}``. ``objective`` is the loss the model was trained with (stage 05 groups the paper's
        claims by it): one of :data:`nessa_lib.losses.CLASSIFICATION_OBJECTIVES` or ``CONTRASTIVE_OBJECTIVES``.
    where : str
        The entry's name in messages, e.g. ``"params.yaml: train_encoder.encoders.ecapa"``.

    Raises
    ------
    ValueError
        Unknown kind, unknown or missing key, empty source, unknown objective; the message names the key.

    Examples
    --------
    >>> check_entry({"pretrained": "resemblyzer"}, "params.yaml: train_encoder.encoders.rz")
    {'pretrained': 'resemblyzer'}
    >>> check_entry({"pretrained": "speechbrain", "source": "models/spkrec-ecapa-voxceleb"},
    ...             "params.yaml: train_encoder.encoders.ecapa")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: params.yaml: train_encoder.encoders.ecapa.objective is missing (pretrained: speechbrain needs [...])
    >>> check_entry({"pretrained": "wav2vec"}, "params.yaml: train_encoder.encoders.w")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: params.yaml: train_encoder.encoders.w.pretrained: unknown kind 'wav2vec'; valid: ['resemblyzer', ...]
    """
    from nessa_lib.losses import CLASSIFICATION_OBJECTIVES, CONTRASTIVE_OBJECTIVES

    kind = entry.get("pretrained")
    if not isinstance(kind, str) or kind not in ENTRY_KEYS:
        raise ValueError(f"{where}.pretrained: unknown kind {kind!r}; valid: {sorted(ENTRY_KEYS)}")
    keys = ENTRY_KEYS[kind]
    unknown = sorted(set(entry) - set(keys), key=str)
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {unknown} for pretrained: {kind}; valid: {list(keys)}")
    for key in keys:
        if key not in entry:
            raise ValueError(f"{where}.{key} is missing (pretrained: {kind} needs {list(keys)})")
    if "source" in keys and (not isinstance(entry["source"], str) or not entry["source"].strip()):
        raise ValueError(f"{where}.source must be {SOURCE_KINDS[kind]}, got {entry['source']!r}")
    objectives = sorted(CLASSIFICATION_OBJECTIVES | CONTRASTIVE_OBJECTIVES)
    if "objective" in keys and entry["objective"] not in objectives:
        raise ValueError(f"{where}.objective must be the loss the model was trained with, one of {objectives}; "
                         f"got {entry['objective']!r}")
    return entry


def export_pretrained(name: str, out_dir) -> dict:
    """Write ``out_dir/encoder.json`` describing a pretrained encoder shipped inside an installed package.

    Nothing is downloaded or trained; the descriptor records the model id (fingerprint of the shipped weights).

    Examples
    --------
    >>> export_pretrained("wav2vec", "/tmp/x")
    Traceback (most recent call last):
    ...
    ValueError: unknown pretrained encoder 'wav2vec'; valid: ['resemblyzer']
    """
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained encoder {name!r}; valid: {sorted(PRETRAINED)}")
    from nessa_lib.io import atomic_write_text

    enc = ResemblyzerEncoder()
    meta = {"format": PRETRAINED_FORMAT, "name": name, "model_id": enc.model_id, "emb_dim": enc.emb_dim,
            "sample_rate": enc.sample_rate, "min_samples": enc.min_samples,
            "config": {"name": name, **PRETRAINED[name]}}
    atomic_write_text(Path(out_dir) / META_FILE, json.dumps(meta, indent=1) + "\n")
    return meta


def _stats(files) -> dict:
    return {str(f): (f.stat().st_size, f.stat().st_mtime_ns) for f in files}


def _open_source(kind: str, source: str, *, download: bool):
    """Load a ``source`` entry's encoder; return ``(encoder, {role: {"file", "sha256"}})``.

    ``source`` is repo-relative, absolute or (SpeechBrain) a hub id. The files are stat-ed before loading and
    after hashing: a file written meanwhile raises :class:`SourceChangedError` (the model id and the weights in
    memory might disagree).
    """
    from nessa_lib import paths
    from nessa_lib.encoders.hub import file_sha256

    try:  # relative paths are the repository root's, as every path in params.yaml
        local = paths.resolve(Path(source).expanduser())
    except FileNotFoundError:  # used outside a repository
        local = Path(source).expanduser().resolve()
    if kind == "speechbrain":
        from nessa_lib.encoders.hub import HubUnreachableError
        from nessa_lib.encoders.speechbrain_hub import from_speechbrain, resolve_source

        target = local if local.exists() else source
        try:  # a hub id already cached is used as it is: stage 02 does not follow newer revisions on its own
            folder = resolve_source(target, download=False)
        except HubUnreachableError:
            if not download:
                raise
            folder = resolve_source(target, download=True)
        watched = sorted(f for f in folder.rglob("*") if f.is_file())
        before = _stats(watched)
        enc = from_speechbrain(folder)
        files, base = enc.files, folder
    elif kind == "wespeaker":
        from nessa_lib.encoders.wespeaker import from_wespeaker

        before = _stats([local]) if local.is_file() else {}
        enc = from_wespeaker(local)
        files, base = {"model.onnx": enc.path}, enc.path.parent
    else:
        raise ValueError(f"unknown pretrained source kind {kind!r}; valid: {sorted(SOURCE_KINDS)}")
    digests = {}
    for role, f in sorted(files.items()):
        f = Path(f)
        digests[role] = {"file": str(f.relative_to(base)) if f.is_relative_to(base) else f.name,
                         "sha256": file_sha256(f)}
    after = _stats(Path(f) for f in files.values())
    moved = sorted(f for f, st in after.items() if before.get(f) != st)
    if moved:
        raise SourceChangedError(f"{kind} source {source!r}: {[Path(f).name for f in moved]} changed while being "
                                 "read; run again once nothing writes to it")
    return enc, digests


def describe_source(kind: str, source: str, objective: str, out_dir) -> dict:
    """Stage 02 for a ``speechbrain`` or ``wespeaker`` entry: load ``source`` once and write ``out_dir/encoder.json``.

    The descriptor records the kind, the source as given, the model id (hash of the files' bytes, from
    :mod:`nessa_lib.zoo`), each file's SHA-256, the embedding size and ``config`` (``objective`` as given, the
    architecture read from the model). A SpeechBrain hub id is fetched into the Hugging Face cache
    (``$HF_HOME/hub``, default ``~/.cache/huggingface/hub``) if it is not there yet and the hub is reachable (a
    cached copy is used as it is, without looking for a newer revision); nothing else touches the network.
    Returns the descriptor.

    Raises
    ------
    FileNotFoundError
        The source does not exist, lacks a file, or is a hub id that cannot be fetched (the message gives the
        offline recipe: download the folder elsewhere and point the entry's ``source`` at it).
    ValueError
        Not a speaker model of that kind; :class:`SourceChangedError` if a file changed while it was read.

    Examples
    --------
    >>> describe_source("speechbrain", "models/spkrec-ecapa-voxceleb", "aam",
    ...                 "models/train_encoder/ecapa")["model_id"]  # doctest: +SKIP
    'speechbrain@3f2a...'
    """
    from nessa_lib.encoders.hub import HubUnreachableError
    from nessa_lib.io import atomic_write_text

    name = Path(out_dir).name
    try:
        enc, digests = _open_source(kind, source, download=True)
    except HubUnreachableError as e:
        raise HubUnreachableError(f"{e.args[0]}; in params.yaml, set train_encoder.encoders.{name}.source to that "
                                  "folder") from e
    if kind == "speechbrain":
        arch = type(enc.classifier.mods["embedding_model"]).__name__
    else:
        arch = "onnx"
    meta = {"format": PRETRAINED_FORMAT, "name": kind, "model_id": enc.model_id, "emb_dim": enc.emb_dim,
            "sample_rate": enc.sample_rate, "min_samples": enc.min_samples, "source": source, "files": digests,
            "config": {"name": kind, "architecture": arch, "objective": objective, "emb_dim": enc.emb_dim}}
    atomic_write_text(Path(out_dir) / META_FILE, json.dumps(meta, indent=1) + "\n")
    return meta


def describe(spec: dict, out_dir) -> dict:
    """Stage 02 for a pretrained entry (``{"pretrained": ...}``, checked by :func:`check_entry`): write its
    descriptor into ``out_dir`` and return it (:func:`export_pretrained` or :func:`describe_source`)."""
    if spec["pretrained"] in SOURCE_KINDS:
        return describe_source(spec["pretrained"], spec["source"], spec["objective"], out_dir)
    return export_pretrained(spec["pretrained"], out_dir)


def _load_source(model_dir, meta: dict):
    where = Path(model_dir) / META_FILE
    kind, source = meta["name"], meta["source"]
    rerun = (f"re-run stage 02 for it (`dvc repro -f -s train_encoder@{Path(model_dir).name}`, then `dvc repro`; DVC "
             "does not watch a pretrained source's files, this check does)")
    try:
        enc, digests = _open_source(kind, source, download=False)
    except SourceChangedError:
        raise
    except (OSError, ValueError) as e:
        raise SourceChangedError(f"{where}: {kind} source {source!r} cannot be loaded here ({e}); put the files "
                                 f"stage 02 described back, or {rerun}") from e
    if enc.model_id != meta["model_id"]:
        recorded = meta.get("files", {})
        changed = sorted(r for r in set(digests) | set(recorded)
                         if digests.get(r, {}).get("sha256") != recorded.get(r, {}).get("sha256"))
        names = [digests.get(r, recorded.get(r))["file"] for r in changed]
        raise SourceChangedError(
            f"{where}: the files of {kind} source {source!r} changed since stage 02 described them (model id "
            f"{meta['model_id']} recorded, {enc.model_id} now; changed: {names}); embeddings would not match the "
            f"study's. Put the described files back, or {rerun}")
    return enc


def load(model_dir):
    """Load any encoder of the study from its directory; the result follows the extraction protocol
    (``model_id``, ``sample_rate``, ``min_samples``, ``emb_dim``, ``embed(wavs, lengths)``).

    A pretrained descriptor whose model id no longer matches what is loaded raises: ``ValueError`` for
    resemblyzer (the package was upgraded: its embeddings would not match the ones the study was built on),
    :class:`SourceChangedError` for a ``speechbrain`` / ``wespeaker`` source whose files changed (or cannot be
    loaded here; a hub id is only looked up in the local cache, never downloaded).
    """
    meta = read_meta(model_dir)
    if meta.get("format") == PRETRAINED_FORMAT:
        if meta.get("name") in SOURCE_KINDS:
            return _load_source(model_dir, meta)
        enc = ResemblyzerEncoder()
        if enc.model_id != meta["model_id"]:
            raise ValueError(f"{Path(model_dir) / META_FILE} describes {meta['model_id']!r} but the installed "
                             f"package provides {enc.model_id!r}; re-run the train_encoder stage")
        return enc
    from nessa_lib.encoders.export import load_encoder

    return load_encoder(model_dir)
