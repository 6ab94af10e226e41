"""Input validation shared by every module: clear ``ValueError`` messages, never a crash deep in numpy/torch."""

from __future__ import annotations

import numpy as np


def _where(name: str, source: str | None) -> str:
    return f"{name} (from {source})" if source else name


_FINITE_BLOCK = 1 << 22  # values checked at a time by as_embeddings


def as_embeddings(x, name: str = "embeddings", dim: int | None = None, source: str | None = None) -> np.ndarray:
    """Return ``x`` as a finite 2-D float array, or raise ``ValueError`` naming the problem.

    Parameters
    ----------
    x : array_like, shape (n, d)
        Embeddings, one row per utterance.
    name : str
        What the array is, used in error messages.
    dim : int, optional
        Expected embedding dimension ``d``.
    source : str, optional
        File or model the array came from, used in error messages.

    Examples
    --------
    >>> as_embeddings([[1.0, 0.0]], dim=2).shape
    (1, 2)
    """
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{_where(name, source)} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{_where(name, source)} must be 2-D (n, d), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{_where(name, source)} is empty")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(
            f"{_where(name, source)} has dimension {arr.shape[1]}, expected {dim} "
            "(embeddings from a different model?)"
        )
    arr = arr.astype(np.float32 if arr.dtype == np.float32 else np.float64, copy=False)
    # In blocks of rows: a (n, d) boolean temporary would cost a quarter of a million-profile file's memory.
    step = max(1, _FINITE_BLOCK // max(arr.shape[1], 1))
    bad = np.concatenate([~np.isfinite(arr[i:i + step]).all(axis=1) for i in range(0, arr.shape[0], step)])
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"{_where(name, source)} contains NaN/inf in {bad.sum()} row(s), first at row(s) {rows[:5].tolist()}"
        )
    return arr
