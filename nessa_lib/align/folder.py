"""Stage 04's aligners, method-major: one folder per method holding its aligner of every pair, one file per seed,
and ``method.json``.

Stage 04 runs once per method (``fit_aligners@<method>``) and writes ``models/fit_aligners/<method>/``, so an
edit of one method's hyper-parameters re-fits that method alone. Stage 05 reads a pair's aligners of every method
back with :func:`load_pair`; the migration CLI takes any of the files. The first seed's file of a pair is
``<pair>.safetensors``, the others ``<pair>.seed<k>.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path

from nessa_lib.align.aligner import load
from nessa_lib.io import atomic_write_text

METHOD_FILE = "method.json"


def aligner_file(pair: str, k: int = 0) -> str:
    """File name of a pair's ``k``-th seed in a method folder: ``<pair>.safetensors`` for the first (the one the
    migration CLI and the A/B study use), ``<pair>.seed<k>.safetensors`` for the others.

    Examples
    --------
    >>> aligner_file("xvector-ecapa"), aligner_file("xvector-ecapa", 2)
    ('xvector-ecapa.safetensors', 'xvector-ecapa.seed2.safetensors')
    """
    return f"{pair}.safetensors" if k == 0 else f"{pair}.seed{k}.safetensors"


def save_method(fitted: dict, out_dir, *, method: str, pairs: dict) -> None:
    """Write one method's aligners of every pair (:func:`aligner_file`; a pair may hold a list, one aligner per
    seed) and ``method.json`` to ``out_dir``.

    ``pairs`` (``{pair: {"enroll_model": X, "runtime_model": Y}}``) are all the pairs the method was run for;
    ``method.json`` records each one's models and seeds, and lists the pairs of ``pairs`` missing from
    ``fitted`` as ``skipped`` (``identity`` between models of different dimensions).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from nessa_lib.align import fit
    >>> d = tempfile.mkdtemp(); e = np.eye(3)
    >>> save_method({"a-b": fit("linear", e, e, [0, 1, 2])}, d, method="linear",
    ...             pairs={"a-b": {"enroll_model": "a", "runtime_model": "b"}})
    >>> sorted(p.name for p in Path(d).iterdir())
    ['a-b.safetensors', 'method.json']
    >>> {p: len(a) for p, a in load_method(d).items()}  # read back: one aligner (seed) per pair
    {'a-b': 1}
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(fitted) - set(pairs))
    if unknown:
        raise ValueError(f"aligners of {method} for pairs {unknown} that are not in pairs {list(pairs)}")
    info = {}
    for pair, fits in fitted.items():
        fits = list(fits) if isinstance(fits, (list, tuple)) else [fits]
        for k, aligner in enumerate(fits):
            aligner.save(out / aligner_file(pair, k))
        info[pair] = {"enroll_model": pairs[pair]["enroll_model"], "runtime_model": pairs[pair]["runtime_model"],
                      "seeds": [a.seed for a in fits]}
    atomic_write_text(out / METHOD_FILE, json.dumps({"method": method, "pairs": info,
                                                     "skipped": [p for p in pairs if p not in fitted]},
                                                    indent=1) + "\n")


def read_method_info(folder) -> dict:
    """The ``method.json`` of a method folder :func:`save_method` wrote.

    A folder without it raises ``FileNotFoundError`` naming the file and the stage that writes it.
    """
    info = Path(folder) / METHOD_FILE
    if not info.is_file():
        raise FileNotFoundError(f"{info} is missing: no aligners of method {Path(folder).name!r} "
                                f"(run stage fit_aligners@{Path(folder).name})")
    return json.loads(info.read_text())


def load_method(folder) -> dict:
    """``{pair: [Aligner, ...]}`` (one per seed, first seed first) of a method folder :func:`save_method` wrote
    (its example writes a folder and reads it back with this)."""
    meta = read_method_info(folder)
    return {pair: [load(Path(folder) / aligner_file(pair, k)) for k in range(len(spec["seeds"]))]
            for pair, spec in meta["pairs"].items()}


def load_pair(root, pair: str, methods, *, enroll_model: str | None = None,
              runtime_model: str | None = None) -> dict:
    """``{method: [Aligner, ...]}`` (one per seed, first seed first) of one pair, read from the method folders
    ``<root>/<method>/`` of stage 04, in the order of ``methods``.

    A method that skipped the pair (``identity`` between models of different dimensions) is left out. A missing
    method folder, a pair the method was not run for, or (when given) other models than ``enroll_model`` /
    ``runtime_model`` raise, naming the stage to run.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from nessa_lib.align import fit
    >>> root = Path(tempfile.mkdtemp()); e = np.eye(3); pairs = {"a-b": {"enroll_model": "a", "runtime_model": "b"}}
    >>> save_method({"a-b": fit("linear", e, e, [0, 1, 2])}, root / "linear", method="linear", pairs=pairs)
    >>> save_method({}, root / "identity", method="identity", pairs=pairs)
    >>> {m: len(a) for m, a in load_pair(root, "a-b", ["identity", "linear"]).items()}
    {'linear': 1}
    >>> load_pair(root, "b-a", ["linear"])
    Traceback (most recent call last):
    ...
    FileNotFoundError: stage fit_aligners@linear fitted no aligner for pair 'b-a' (its pairs: ['a-b']); run it again
    """
    out = {}
    for method in methods:
        folder = Path(root) / method
        meta = read_method_info(folder)
        if pair in meta.get("skipped", []):
            continue
        if pair not in meta["pairs"]:
            raise FileNotFoundError(f"stage fit_aligners@{method} fitted no aligner for pair {pair!r} "
                                    f"(its pairs: {list(meta['pairs'])}); run it again")
        spec = meta["pairs"][pair]
        wanted = {"enroll_model": enroll_model, "runtime_model": runtime_model}
        stale = {k: spec[k] for k, v in wanted.items() if v is not None and spec[k] != v}
        if stale:
            raise ValueError(f"{folder / METHOD_FILE}: pair {pair!r} was fitted with {stale}, not "
                             f"{ {k: wanted[k] for k in stale} } (run stage fit_aligners@{method} again)")
        out[method] = [load(folder / aligner_file(pair, k)) for k in range(len(spec["seeds"]))]
    return out
