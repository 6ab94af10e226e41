"""Pair agreement: how well the two sides of an aligner meet on paired embeddings of the same utterances.

Every fitted aligner stores the summary of its agreement on its fit data (:attr:`nessa_lib.align.Aligner.fit_agreement`);
:mod:`nessa_lib.deployment` compares a sample of target traffic with it.
"""

from __future__ import annotations

import numpy as np


def pair_agreement(aligner, x, y) -> np.ndarray:
    """Cosine between the enrollment-side and runtime-side maps of each paired utterance.

    Examples
    --------
    >>> from nessa_lib.align import fit
    >>> e = np.eye(3)
    >>> pair_agreement(fit("identity", e, e, [0, 1, 2]), e, e).tolist()
    [1.0, 1.0, 1.0]
    """
    return row_cosines(aligner.map_enrollment(x), aligner.map_runtime(y))


def row_cosines(a, b, chunk_rows: int = 1 << 16) -> np.ndarray:
    """Dot product of each row of ``a`` with the same row of ``b`` (unit rows: their cosine), in float64.

    Examples
    --------
    >>> row_cosines(np.array([[1.0, 0.0], [0.6, 0.8]]), np.array([[1.0, 0.0], [0.0, 1.0]]))
    array([1. , 0.8])
    """
    return np.concatenate([np.einsum("ij,ij->i", a[s:s + chunk_rows].astype(np.float64), b[s:s + chunk_rows])
                           for s in range(0, len(a), chunk_rows)]) if len(a) else np.zeros(0)


def agreement_summary(values) -> dict:
    """``n``, ``mean``, ``p05`` and ``median`` of pair agreements (plain floats, for JSON).

    Examples
    --------
    >>> agreement_summary([0.5, 1.0])["median"]
    0.75
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or not np.isfinite(v).all():
        raise ValueError("pair agreement needs at least one finite value")
    return {"n": int(v.size), "mean": float(v.mean()), "p05": float(np.percentile(v, 5)),
            "median": float(np.median(v))}
