"""Small, safe file helpers: atomic text writes and flat JSON metrics."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same folder and ``os.replace``.

    A crash never leaves a half-written file behind; the parent folder is created if needed.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "sub", "a.txt"); atomic_write_text(p, "hi")
    >>> open(p).read(), os.listdir(os.path.dirname(p))
    ('hi', ['a.txt'])
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(obj: dict, path) -> None:
    """Write a flat metrics dict as JSON (full rewrite, sorted keys, floats as given).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.json"); write_json({"eer": 0.1}, p)
    >>> open(p).read()
    '{\\n  "eer": 0.1\\n}\\n'
    """
    bad = {k: v for k, v in obj.items() if not isinstance(v, (int, float, str, bool))}
    if bad:
        raise ValueError(f"metrics for {path} must be flat scalars; nested values under {sorted(bad)}")
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
