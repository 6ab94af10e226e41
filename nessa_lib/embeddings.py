"""Embedding files: per-utterance embeddings with their ids and the fingerprint of the model that made them.

Format: one ``.npz`` written without pickle (``embeddings`` float32 (n, d), ``utt_ids`` and ``speaker_ids`` as
unicode arrays, ``model_id`` as a 0-d unicode array, ``data_sha256`` the SHA-256 digest of those four, checked on
load: :func:`nessa_lib.checks.check_digest`), read back with ``allow_pickle=False`` so a file can never execute code. The model fingerprint travels with the embeddings, so an aligner can refuse embeddings from a
model it was not fitted for.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nessa_lib.checks import as_embeddings, check_digest, data_digest


#: The arrays of an embedding file that its digest covers (a file may carry more, e.g. a migration's provenance).
ARRAYS = ("embeddings", "utt_ids", "speaker_ids", "model_id")


@dataclass
class EmbeddingSet:
    """Embeddings of utterances by one model."""

    embeddings: np.ndarray  # (n, d) float32
    utt_ids: np.ndarray  # (n,) str
    speaker_ids: np.ndarray  # (n,) str
    model_id: str

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])


def fingerprint(tensors: dict, config: dict, name: str = "model") -> str:
    """Short, stable id of a model: ``name@`` + a hash of its weights and its JSON-serialisable config.

    Parameters
    ----------
    tensors : dict of str to array-like
        The model's weights (e.g. a torch ``state_dict``; tensors are converted with ``numpy()``).
    config : dict
        Everything else that changes the embeddings (architecture, feature settings, crop mode).
    name : str
        Human-readable prefix.

    Examples
    --------
    >>> import numpy as np
    >>> a = fingerprint({"w": np.ones(3)}, {"dim": 3}, "toy")
    >>> a == fingerprint({"w": np.ones(3)}, {"dim": 3}, "toy"), a.startswith("toy@"), len(a)
    (True, True, 16)
    >>> a == fingerprint({"w": np.ones(3) * 2}, {"dim": 3}, "toy")
    False
    """
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for key in sorted(tensors):
        v = tensors[key]
        arr = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
        h.update(key.encode())
        h.update(str(arr.dtype).encode() + str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return f"{name}@{h.hexdigest()[:12]}"


def save_embeddings(path, emb: EmbeddingSet) -> None:
    """Write an :class:`EmbeddingSet` atomically (no pickle).

    Raises ``ValueError`` for NaN/inf rows or mismatched lengths: a NaN embedding is never written silently.

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> p = os.path.join(tempfile.mkdtemp(), "e.npz")
    >>> save_embeddings(p, EmbeddingSet(np.eye(2, dtype="float32"), np.array(["u1", "u2"]),
    ...                                 np.array(["s1", "s1"]), "toy@1"))
    >>> load_embeddings(p).model_id
    'toy@1'
    """
    path = Path(path)
    # copy=False: a float32 array is written as it is (a million 128-d profiles are 512 MB; no second copy).
    e = as_embeddings(emb.embeddings, name="embeddings", source=str(path)).astype(np.float32, copy=False)
    utt = np.asarray(emb.utt_ids).astype(str, copy=False)
    spk = np.asarray(emb.speaker_ids).astype(str, copy=False)
    if not (len(e) == len(utt) == len(spk)):
        raise ValueError(f"{path}: {len(e)} embeddings, {len(utt)} utterance ids, {len(spk)} speaker ids")
    _check_unique(utt, f"{path}: refusing to write")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; name the embedding file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    try:
        arrays = dict(embeddings=e, utt_ids=utt, speaker_ids=spk, model_id=np.array(str(emb.model_id)))
        np.savez(tmp, **arrays, data_sha256=np.array(data_digest(arrays)))
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave a half-written temporary behind
        raise


def _check_unique(utt: np.ndarray, where: str) -> None:
    """Raise ``ValueError`` (``where`` first, a few of the repeated ids after) if ``utt`` repeats an id."""
    uniq, counts = np.unique(utt, return_counts=True)
    if len(uniq) != len(utt):
        dup = uniq[counts > 1]
        raise ValueError(f"{where}: duplicated utterance ids ({len(dup)} occur more than once, e.g. "
                         f"{dup[:5].tolist()})")


def load_embeddings(path, *, dim: int | None = None, model_id: str | None = None) -> EmbeddingSet:
    """Read an embedding file, checking it is well formed (and, if given, its dimension and model id).

    Errors name the file: missing keys, data that differ from the digest stored with them (a file without one,
    written before digests, loads with a logged warning), NaN/inf rows, wrong dimension, embeddings from another
    model, repeated utterance ids, ids and rows that differ in number.

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> p = os.path.join(tempfile.mkdtemp(), "e.npz")
    >>> save_embeddings(p, EmbeddingSet(np.ones((1, 3), "float32"), np.array(["u"]), np.array(["s"]), "m@1"))
    >>> load_embeddings(p, dim=3).embeddings.shape
    (1, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embedding file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except ValueError as exc:  # raised for object arrays, which would need pickle
        raise ValueError(f"{path} holds pickled objects; refusing to load it ({exc})") from exc
    except Exception as exc:
        raise ValueError(f"{path} is not a readable .npz embedding file: {exc}") from exc
    missing = set(ARRAYS) - set(data)
    if missing:
        raise ValueError(f"{path} is missing {sorted(missing)}; not an embedding file written by nessa_lib")
    digest = data.get("data_sha256")
    check_digest({k: data[k] for k in ARRAYS}, None if digest is None else str(digest), path, "embedding file")
    found = str(data["model_id"])
    if model_id is not None and found != model_id:
        raise ValueError(f"{path} holds embeddings of model {found!r}, expected {model_id!r}")
    e = as_embeddings(data["embeddings"], name="embeddings", dim=dim, source=str(path))
    utt = data["utt_ids"].astype(str, copy=False)
    if not (len(e) == len(utt) == len(data["speaker_ids"])):
        raise ValueError(f"{path}: {len(e)} embeddings, {len(utt)} utterance ids, {len(data['speaker_ids'])} "
                         "speaker ids")
    _check_unique(utt, str(path))  # rows are matched by id: a repeated id would pair the wrong rows
    return EmbeddingSet(e, utt, data["speaker_ids"].astype(str, copy=False), found)


def paired(a: EmbeddingSet, b: EmbeddingSet, *, names=("X", "Y")):
    """Rows of two models' embedding sets matched by utterance id: ``(emb_a, emb_b, utt_ids, speaker_ids)``.

    NESSA needs *paired* data: the same utterances through both models. Raises ``ValueError`` if the two sets
    do not hold the same utterances (naming how many differ and an example) or disagree on a speaker label.

    Examples
    --------
    >>> import numpy as np
    >>> a = EmbeddingSet(np.eye(2, dtype="float32"), np.array(["u1", "u2"]), np.array(["s", "t"]), "a@1")
    >>> b = EmbeddingSet(np.ones((2, 3), "float32"), np.array(["u2", "u1"]), np.array(["t", "s"]), "b@1")
    >>> xa, yb, ids, spk = paired(a, b)
    >>> ids.tolist(), spk.tolist(), yb.shape
    (['u1', 'u2'], ['s', 't'], (2, 3))
    """
    only_a = np.setdiff1d(a.utt_ids, b.utt_ids)
    only_b = np.setdiff1d(b.utt_ids, a.utt_ids)
    if only_a.size or only_b.size:
        example = str((only_a if only_a.size else only_b)[0])
        raise ValueError(
            f"embedding sets are not paired: {only_a.size} utterance(s) only in {names[0]} ({a.model_id}), "
            f"{only_b.size} only in {names[1]} ({b.model_id}), e.g. {example!r}"
        )
    ia, ib = np.argsort(a.utt_ids), np.argsort(b.utt_ids)
    if not np.array_equal(a.speaker_ids[ia], b.speaker_ids[ib]):
        bad = np.flatnonzero(a.speaker_ids[ia] != b.speaker_ids[ib])[0]
        raise ValueError(f"utterance {str(a.utt_ids[ia][bad])!r} has speaker {str(a.speaker_ids[ia][bad])!r} in "
                         f"{names[0]} but {str(b.speaker_ids[ib][bad])!r} in {names[1]}")
    return a.embeddings[ia], b.embeddings[ib], a.utt_ids[ia], a.speaker_ids[ia]


@dataclass
class PairedSplits:
    """Paired embeddings of one (enrollment X, runtime Y) model pair, pooled over several splits."""

    x: np.ndarray  # (n, d_x) by the enrollment model X
    y: np.ndarray  # (n, d_y) the same utterances by the runtime model Y
    utt_ids: np.ndarray  # (n,) str
    speaker_ids: np.ndarray  # (n,) str
    splits: np.ndarray  # (n,) str: the split each row came from
    enroll_model_id: str
    runtime_model_id: str


def load_paired_splits(root, enroll_model: str, runtime_model: str, splits) -> PairedSplits:
    """Load ``root/<model>/<split>.npz`` of two models for each split, pair them by utterance, and pool the splits.

    The aligners are fitted on such a pool (by default the encoder-training speakers' utterances plus the
    alignment split), and the case study needs to know which rows came from which split.

    Parameters
    ----------
    root : path-like
        Folder holding one sub-folder of embedding files per model (the extraction stage's output).
    enroll_model, runtime_model : str
        Model names (sub-folders).
    splits : sequence of str
        Splits to pool, in order; each must exist for both models.

    Returns
    -------
    PairedSplits

    Examples
    --------
    >>> import tempfile, os
    >>> root = tempfile.mkdtemp()
    >>> for m, d in (("a", 2), ("b", 3)):
    ...     os.makedirs(os.path.join(root, m))
    ...     for split, ids in (("train", ["t1", "t2"]), ("align", ["u1"])):
    ...         e = EmbeddingSet(np.ones((len(ids), d), "float32"), np.array(ids), np.array(["s"] * len(ids)), f"{m}@1")
    ...         save_embeddings(os.path.join(root, m, f"{split}.npz"), e)
    >>> p = load_paired_splits(root, "a", "b", ["train", "align"])
    >>> p.utt_ids.tolist(), p.splits.tolist(), p.y.shape
    (['t1', 't2', 'u1'], ['train', 'train', 'align'], (3, 3))
    """
    splits = [str(s) for s in splits]
    if not splits or len(set(splits)) != len(splits):
        raise ValueError(f"splits must be a non-empty list without repeats, got {splits}")
    root = Path(root)
    xs, ys, ids, spk, tag, mids = [], [], [], [], [], None
    for split in splits:
        a = load_embeddings(root / enroll_model / f"{split}.npz")
        b = load_embeddings(root / runtime_model / f"{split}.npz")
        if mids is not None and (a.model_id, b.model_id) != mids:
            raise ValueError(f"the {split!r} embeddings of {enroll_model}/{runtime_model} come from other models "
                             f"({a.model_id}, {b.model_id}) than the {splits[0]!r} ones {mids}: re-run the extraction")
        mids = (a.model_id, b.model_id)
        x, y, u, s = paired(a, b, names=(enroll_model, runtime_model))
        xs.append(x), ys.append(y), ids.append(u), spk.append(s), tag.append(np.full(len(u), split))
    utt_ids = np.concatenate(ids)
    if len(np.unique(utt_ids)) != len(utt_ids):
        raise ValueError(f"splits {splits} share utterance ids: a split was listed twice or the manifest is broken")
    return PairedSplits(np.vstack(xs), np.vstack(ys), utt_ids, np.concatenate(spk), np.concatenate(tag), *mids)
