"""The stages and the folders they read and write: one name for the stage, its notebook, its ``params.yaml``
section and its output folders (``data/<stage>/``, ``models/<stage>/``, ``reports/<stage>/``).

``dvc.yaml`` spells the same paths out (DVC needs them literally); ``tests/test_pipeline.py`` checks that the
two agree, so a notebook never writes where DVC does not look.

Where a notebook reads and where it writes. A notebook reads earlier stages' results from :func:`out_dir` and
asks for its own folders with ``write=True``. Run by the pipeline (the runner sets :data:`PIPELINE_ENV`) those are
the tracked folders; run any other way (JupyterLab, a plain papermill call) they are the same paths under
:func:`scratch_root` (``scratch/``, ignored by git and DVC), so exploring never overwrites what ``dvc.lock``
records, unless :data:`WRITE_ENV` is ``1``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nessa_lib import paths


@dataclass(frozen=True)
class Stage:
    """One pipeline stage.

    Attributes
    ----------
    name : str
        Stage name = ``params.yaml`` section = output folder name.
    number : int
        Position in the pipeline; the notebook is ``notebooks/<number:02d>_<name>.py``.
    foreach : str or None
        Key of the stage's section whose entries (dict keys or list items) each get a run of the stage.
    item_param : str or None
        Name of the notebook parameter that selects that entry.
    out_root : str or None
        ``data`` or ``models``: where the stage writes its results (besides ``reports/``).
    """

    name: str
    number: int
    foreach: str | None
    item_param: str | None
    out_root: str | None

    @property
    def notebook(self) -> str:
        """Repo-relative path of the stage's notebook source (jupytext percent format)."""
        return f"notebooks/{self.number:02d}_{self.name}.py"

    @property
    def executed_name(self) -> str:
        """File name of the executed copy (``.ipynb``; the HTML rendering sits beside it)."""
        return f"{self.number:02d}_{self.name}.ipynb"


STAGES = {
    s.name: s
    for s in (
        Stage("prepare_data", 1, None, None, "data"),
        Stage("train_encoder", 2, "encoders", "name", "models"),
        Stage("extract_embeddings", 3, "models", "name", "data"),
        Stage("fit_aligners", 4, "methods", "method", "models"),  # one run per method, all pairs
        Stage("evaluate", 5, None, None, "models"),
    )
}


def stage(name: str) -> Stage:
    """The :class:`Stage` called ``name``; unknown names raise ``ValueError`` listing the valid ones.

    Examples
    --------
    >>> stage("fit_aligners").notebook
    'notebooks/04_fit_aligners.py'
    >>> stage("fit")
    Traceback (most recent call last):
    ...
    ValueError: unknown stage 'fit'; valid: ['prepare_data', 'train_encoder', 'extract_embeddings', 'fit_aligners', 'evaluate']
    """
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; valid: {list(STAGES)}")
    return STAGES[name]


def _sub(base: str, name: str, item: str | None) -> str:
    return f"{base}/{name}" if item is None else f"{base}/{name}/{item}"


def out_dir(name: str, item: str | None = None, root=None, *, write: bool = False) -> Path:
    """Absolute folder of the stage's results (``data/<stage>[/<item>]`` or ``models/<stage>[/<item>]``).

    Without ``item``, the folder holding every item's results of a ``foreach`` stage. With ``write=True``, the
    folder to write them to (:func:`writable`: under ``scratch/`` outside the pipeline).

    Examples
    --------
    >>> out_dir("train_encoder", "ecapa", root="/r").as_posix()
    '/r/models/train_encoder/ecapa'
    >>> out_dir("extract_embeddings", root="/r").as_posix()
    '/r/data/extract_embeddings'
    """
    s = stage(name)
    if s.out_root is None:
        raise ValueError(f"stage {name!r} writes reports only")
    path = paths.resolve(_sub(s.out_root, name, item), root)
    return writable(path, root) if write else path


def report_dir(name: str, item: str | None = None, root=None, *, write: bool = False) -> Path:
    """Absolute folder of the stage's executed notebook, metrics, tables and figures (with ``write=True``, the
    folder to write them to: :func:`writable`).

    Examples
    --------
    >>> report_dir("evaluate", root="/r").as_posix()
    '/r/reports/evaluate'
    """
    stage(name)
    path = paths.resolve(_sub("reports", name, item), root)
    return writable(path, root) if write else path


#: Set (to ``1``) by the pipeline's runner in the kernel's environment: the notebook writes the tracked outputs.
PIPELINE_ENV = "NESSA_PIPELINE"
#: ``1``: a notebook run outside the pipeline writes the tracked outputs too (instead of ``scratch/``).
WRITE_ENV = "NESSA_WRITE_OUTPUTS"
SCRATCH = "scratch"
_announced: set = set()


def writes_outputs(environ=None) -> bool:
    """Whether notebooks write the tracked outputs: run by the pipeline (:data:`PIPELINE_ENV`) or asked to
    (:data:`WRITE_ENV`), both ``1``.

    Examples
    --------
    >>> writes_outputs({}), writes_outputs({"NESSA_PIPELINE": "1"}), writes_outputs({"NESSA_WRITE_OUTPUTS": "1"})
    (False, True, True)
    """
    environ = os.environ if environ is None else environ
    return "1" in (environ.get(PIPELINE_ENV), environ.get(WRITE_ENV))


def scratch_root(root=None) -> Path:
    """The folder that stands in for the repository's output folders outside the pipeline (``<root>/scratch``).

    Examples
    --------
    >>> scratch_root("/r").as_posix()
    '/r/scratch'
    """
    return paths.resolve(SCRATCH, root)


def writable(path, root=None, environ=None) -> Path:
    """Where to write the tracked output folder ``path``: ``path`` itself when :func:`writes_outputs`, else the
    same path under :func:`scratch_root` (said once per folder, on stdout).

    Examples
    --------
    >>> writable("/r/models/fit_aligners/x-y", "/r", environ={"NESSA_PIPELINE": "1"}).as_posix()
    '/r/models/fit_aligners/x-y'
    >>> writable("/r/models/fit_aligners/x-y", "/r", environ={}).as_posix()  # doctest: +ELLIPSIS
    Not run by the pipeline: writing to scratch/models/fit_aligners/x-y, ... (set NESSA_WRITE_OUTPUTS=1...
    '/r/scratch/models/fit_aligners/x-y'
    """
    path = Path(path)
    if writes_outputs(environ):
        return path
    base = paths.resolve(".", root).resolve() if root is not None else paths.repo_root()
    rel = path.resolve().relative_to(base) if path.is_absolute() else path
    out = scratch_root(base) / rel
    if out not in _announced:
        _announced.add(out)
        print(f"Not run by the pipeline: writing to {SCRATCH}/{rel.as_posix()}, not to the tracked "
              f"{rel.as_posix()} (set {WRITE_ENV}=1, in the environment or os.environ, to write there)")
    return out

