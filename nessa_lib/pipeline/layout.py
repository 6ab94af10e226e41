"""The stages and the folders they read and write: one name for the stage, its notebook, its ``params.yaml``
section and its output folders (``data/<stage>/``, ``models/<stage>/``, ``reports/<stage>/``).

``dvc.yaml`` spells the same paths out (DVC needs them literally); ``tests/test_pipeline.py`` checks that the
two agree, so a notebook never writes where DVC does not look.
"""

from __future__ import annotations

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


def out_dir(name: str, item: str | None = None, root=None) -> Path:
    """Absolute folder of the stage's results (``data/<stage>[/<item>]`` or ``models/<stage>[/<item>]``).

    Without ``item``, the folder holding every item's results of a ``foreach`` stage.

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
    return paths.resolve(_sub(s.out_root, name, item), root)


def report_dir(name: str, item: str | None = None, root=None) -> Path:
    """Absolute folder of the stage's executed notebook, metrics, tables and figures.

    Examples
    --------
    >>> report_dir("evaluate", root="/r").as_posix()
    '/r/reports/evaluate'
    """
    stage(name)
    return paths.resolve(_sub("reports", name, item), root)

