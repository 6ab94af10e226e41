"""Small, safe file helpers: flat JSON metrics written atomically."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(obj: dict, path) -> None:
    """Write a flat metrics dict as JSON (full rewrite, sorted keys, floats as given).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.json"); write_json({"eer": 0.1}, p)
    >>> open(p).read()
    '{\\n  "eer": 0.1\\n}\\n'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bad = {k: v for k, v in obj.items() if not isinstance(v, (int, float, str, bool))}
    if bad:
        raise ValueError(f"metrics for {path} must be flat scalars; nested values under {sorted(bad)}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
