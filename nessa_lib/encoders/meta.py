"""An exported encoder's ``encoder.json``, read with ``json`` alone: what a caller needs to know of a model (its
objective, its id, its embedding size) without importing torch, SpeechBrain or the encoder code. The evaluation
stage reads each model's objective this way."""

from __future__ import annotations

import json
from pathlib import Path

#: The descriptor every exported encoder folder holds (trained or pretrained).
META_FILE = "encoder.json"


def read_meta(model_dir) -> dict:
    """The ``encoder.json`` of a trained or pretrained encoder directory (raises naming the file if missing).

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "encoder.json").write_text(json.dumps({"model_id": "m@0", "config": {"objective": "aam"}}))
    >>> read_meta(d)["model_id"]
    'm@0'
    >>> read_meta(d / "nowhere")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: no encoder here: .../nowhere/encoder.json does not exist
    """
    path = Path(model_dir) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no encoder here: {path} does not exist")
    return json.loads(path.read_text(encoding="utf-8"))


def objective(model_dir) -> str:
    """Training objective of an encoder (``softmax``, ``aam``, ``supcon`` or ``pretrained-ge2e``).

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "encoder.json").write_text(json.dumps({"config": {"objective": "supcon"}}))
    >>> objective(d)
    'supcon'
    """
    return read_meta(model_dir)["config"]["objective"]
