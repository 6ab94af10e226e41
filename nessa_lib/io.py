"""Small, safe file helpers: atomic writes (text, or any writer through :func:`atomic_path`) and flat JSON metrics."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """A temporary name beside ``path`` to write to; it replaces ``path`` (``os.replace``) once the block ends.

    An interrupted or failing write never leaves a half-written ``path`` that a later run would trust: the
    temporary file is removed and ``path`` keeps its old content (or stays absent). The parent folder is created
    if needed. Writers that pick a format from the file name must be told the format (the name ends in ``.part``).

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "a.bin")
    >>> with atomic_path(p) as tmp:
    ...     _ = open(tmp, "wb").write(b"x")
    >>> open(p, "rb").read(), os.listdir(d)
    (b'x', ['a.bin'])
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # A name no other process or thread picks, created by the writer itself (so with the usual permissions, not
    # mkstemp's owner-only ones).
    tmp = os.path.join(folder, f".tmp-{os.path.basename(path)}-{os.getpid()}-{secrets.token_hex(4)}.part")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        f.write(text)


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
