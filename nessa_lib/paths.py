"""Resolve the pipeline's repo-relative paths from wherever a notebook runs.

Papermill runs stage notebooks with some working directory, nbval re-runs executed copies from their own
folder, and people open notebooks from ``notebooks/``. Stage parameters therefore hold paths relative to
the repository root, and notebooks resolve them here instead of relying on the working directory.
"""

from __future__ import annotations

from pathlib import Path


def repo_root(start=None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) holding ``dvc.yaml``.

    Raises ``FileNotFoundError`` if there is none.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "dvc.yaml").write_text("stages: {}\\n") and None
    >>> (d / "a" / "b").mkdir(parents=True)
    >>> repo_root(d / "a" / "b") == d.resolve()
    True
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    raise FileNotFoundError(f"no dvc.yaml found at or above {here}; run inside the NESSA repository")


def resolve(path, root=None) -> Path:
    """``path`` as an absolute path: absolute paths are kept, relative ones join the repository root.

    Examples
    --------
    >>> resolve("/tmp/x")
    PosixPath('/tmp/x')
    """
    p = Path(path)
    if p.is_absolute():
        return p
    return (Path(root) if root is not None else repo_root()) / p
