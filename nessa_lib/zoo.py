"""One loader for every encoder of the study: the ones trained by :mod:`nessa_lib.encoders` and the pretrained
resemblyzer GE2E model, which is "exported" as a small descriptor so the pipeline can treat it like the others.
"""

from __future__ import annotations

import json
from pathlib import Path

PRETRAINED = {"resemblyzer": {"architecture": "resemblyzer", "objective": "pretrained-ge2e", "emb_dim": 256}}
PRETRAINED_FORMAT = "nessa-pretrained-encoder"
META_FILE = "encoder.json"


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
    from nessa_lib.extract import ResemblyzerEncoder
    from nessa_lib.io import atomic_write_text

    enc = ResemblyzerEncoder()
    meta = {"format": PRETRAINED_FORMAT, "name": name, "model_id": enc.model_id, "emb_dim": enc.emb_dim,
            "sample_rate": enc.sample_rate, "min_samples": enc.min_samples,
            "config": {"name": name, **PRETRAINED[name]}}
    atomic_write_text(Path(out_dir) / META_FILE, json.dumps(meta, indent=1) + "\n")
    return meta


def read_meta(model_dir) -> dict:
    """The ``encoder.json`` of a trained or pretrained encoder directory (raises naming the file if missing)."""
    path = Path(model_dir) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no encoder here: {path} does not exist")
    return json.loads(path.read_text(encoding="utf-8"))


def objective(model_dir) -> str:
    """Training objective of an encoder (``softmax``, ``aam``, ``supcon`` or ``pretrained-ge2e``)."""
    return read_meta(model_dir)["config"]["objective"]


def load(model_dir):
    """Load any encoder of the study from its directory; the result follows the extraction protocol
    (``model_id``, ``sample_rate``, ``min_samples``, ``emb_dim``, ``embed(wavs, lengths)``).

    A pretrained descriptor whose model id no longer matches the installed package raises ``ValueError``
    (the package was upgraded: its embeddings would not match the ones the study was built on).
    """
    meta = read_meta(model_dir)
    if meta.get("format") == PRETRAINED_FORMAT:
        from nessa_lib.extract import ResemblyzerEncoder

        enc = ResemblyzerEncoder()
        if enc.model_id != meta["model_id"]:
            raise ValueError(f"{Path(model_dir) / META_FILE} describes {meta['model_id']!r} but the installed "
                             f"package provides {enc.model_id!r}; re-run the train_encoder stage")
        return enc
    from nessa_lib.encoders import load_encoder

    return load_encoder(model_dir)
