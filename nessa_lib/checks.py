"""Input validation shared by every module: clear ``ValueError`` messages, never a crash deep in numpy/torch.

Files too: the library's aligner, embedding and profile files store :func:`data_digest` (SHA-256) of their arrays
in their metadata, and their readers call :func:`check_digest` on what they read, so a file whose data changed
since it was written (a flipped byte, an edit) is refused with the file named; a file written before digests were
stored loads with a logged warning. The digest covers each array's name, dtype, shape and bytes: it describes the
arrays, not the container.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np

logger = logging.getLogger(__name__)


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


# Digests of the arrays in the library's files

DIGEST_PREFIX = "sha256:"


def _as_bytes(value) -> tuple:
    """``(bytes as a flat uint8 array, dtype name, shape)`` of a numpy array or a torch tensor (no copy when
    contiguous)."""
    if hasattr(value, "detach"):  # a torch tensor: its bytes, whatever its dtype (bfloat16 has no numpy twin)
        import torch

        t = value.detach().cpu().contiguous()
        return t.reshape(-1).view(torch.uint8).numpy(), str(t.dtype), tuple(t.shape)
    a = np.ascontiguousarray(value)
    return a.reshape(-1).view(np.uint8), a.dtype.str, a.shape


def data_digest(arrays: dict) -> str:
    """``sha256:<hex>`` of the arrays of ``arrays`` (numpy arrays or torch tensors), in name order.

    Examples
    --------
    >>> a = data_digest({"w": np.ones(3, "float32"), "ids": np.array(["u1", "u2"])})
    >>> a.startswith("sha256:"), a == data_digest({"ids": np.array(["u1", "u2"]), "w": np.ones(3, "float32")})
    (True, True)
    >>> a == data_digest({"w": np.ones(3, "float64"), "ids": np.array(["u1", "u2"])})  # the dtype counts
    False
    """
    h = hashlib.sha256()
    for name in sorted(arrays):
        data, dtype, shape = _as_bytes(arrays[name])
        h.update(f"{name}\0{dtype}\0{shape}\0".encode())
        h.update(data)
    return DIGEST_PREFIX + h.hexdigest()


def check_digest(arrays: dict, expected: str | None, path, what: str = "file") -> None:
    """Refuse ``arrays`` read from ``path`` unless their digest is ``expected``; warn when there is none.

    Raises ``ValueError`` naming ``path`` on a mismatch; logs a warning naming it when ``expected`` is ``None``
    (a file written before digests were stored).

    Examples
    --------
    >>> x = {"w": np.arange(3)}
    >>> check_digest(x, data_digest(x), "a.npz")
    >>> check_digest({"w": np.arange(1, 4)}, data_digest(x), "a.npz")
    Traceback (most recent call last):
    ...
    ValueError: a.npz: its data do not match the SHA-256 digest stored in the file (damaged or edited since it was written); refusing to load it
    """
    if expected is None:
        logger.warning("%s: %s written without a digest of its data (an older file); loaded without checking it",
                       path, what)
        return
    if data_digest(arrays) != str(expected):
        raise ValueError(f"{path}: its data do not match the SHA-256 digest stored in the file (damaged or edited "
                         "since it was written); refusing to load it")
