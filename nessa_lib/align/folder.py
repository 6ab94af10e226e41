"""A folder of one (enrollment, runtime) pair's aligners: every method, one file per seed, and ``pair.json``.

Stage 04 writes one such folder per pair (``models/fit_aligners/<pair>/``) and stage 05 reads it back; the
migration CLI takes any of its files. The first seed's file of a method is ``<method>.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path

from nessa_lib.align.aligner import load
from nessa_lib.io import atomic_write_text

PAIR_FILE = "pair.json"


def aligner_file(method: str, k: int = 0) -> str:
    """File name of a method's ``k``-th seed in a pair folder: ``<method>.safetensors`` for the first (the one the
    migration CLI and the A/B study use), ``<method>.seed<k>.safetensors`` for the others.

    Examples
    --------
    >>> aligner_file("nessa-m3"), aligner_file("nessa-m3", 2)
    ('nessa-m3.safetensors', 'nessa-m3.seed2.safetensors')
    """
    return f"{method}.safetensors" if k == 0 else f"{method}.seed{k}.safetensors"


def save_aligners(aligners: dict, out_dir, *, pair: str, enroll_model: str, runtime_model: str) -> None:
    """Write each aligner (:func:`aligner_file`; a method may hold a list, one aligner per seed) and ``pair.json``
    (which models, which methods, each method's seeds) to ``out_dir``."""
    out = Path(out_dir)
    seeds = {}
    for method, fitted in aligners.items():
        fitted = list(fitted) if isinstance(fitted, (list, tuple)) else [fitted]
        for k, aligner in enumerate(fitted):
            aligner.save(out / aligner_file(method, k))
        seeds[method] = [a.seed for a in fitted]
    atomic_write_text(out / PAIR_FILE, json.dumps({"pair": pair, "enroll_model": enroll_model,
                                                   "runtime_model": runtime_model,
                                                   "methods": list(aligners), "seeds": seeds}, indent=1) + "\n")


def load_aligners(folder) -> dict:
    """``{method: [Aligner, ...]}`` (one per seed, first seed first) of a folder :func:`save_aligners` wrote.

    A folder without ``pair.json`` raises ``FileNotFoundError`` naming it.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from nessa_lib.align import fit
    >>> d = tempfile.mkdtemp(); e = np.eye(3)
    >>> save_aligners({"linear": fit("linear", e, e, [0, 1, 2])}, d, pair="a-b", enroll_model="a",
    ...               runtime_model="b")
    >>> {m: len(a) for m, a in load_aligners(d).items()}
    {'linear': 1}
    """
    info = Path(folder) / PAIR_FILE
    if not info.is_file():
        raise FileNotFoundError(f"{info} is missing: not a folder of fitted aligners")
    meta = json.loads(info.read_text())
    n_seeds = {m: len(meta.get("seeds", {}).get(m, [0])) for m in meta["methods"]}
    return {m: [load(info.parent / aligner_file(m, k)) for k in range(n_seeds[m])] for m in meta["methods"]}
