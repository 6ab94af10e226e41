"""The closed-form aligners: identity, linear (ridge least squares), procrustes and speaker-logit.

Each ``_fit_<method>(x, y, speakers, hp)`` takes unit-norm paired embeddings (rows of ``x`` by the enrollment
model, rows of ``y`` by the runtime model) and returns ``(enroll_map, runtime_map, enroll_spec, runtime_spec,
shared_dim)``; :data:`CLOSED_FORM` maps each method name to its function.
"""

from __future__ import annotations

import numpy as np
import torch

from nessa_lib.align.aligner import _Affine, _Centroids, _Identity


def _affine_spec(d_in, d_out):
    return {"kind": "affine", "d_in": int(d_in), "d_out": int(d_out)}


def _set_affine(module: _Affine, weight: np.ndarray, bias: np.ndarray | None = None) -> _Affine:
    module.weight.data = torch.as_tensor(weight, dtype=torch.float32).contiguous()
    if bias is not None:
        module.bias.data = torch.as_tensor(bias, dtype=torch.float32).contiguous()
    return module


def _unit(x: np.ndarray, name: str = "embeddings") -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        rows = np.flatnonzero(norms[:, 0] == 0)
        raise ValueError(f"{name} has {len(rows)} all-zero row(s) (no direction to score), first at {rows[:5].tolist()}")
    return x / norms


def _pca_projection(x: np.ndarray, k: int) -> np.ndarray:
    """Top-``k`` right singular vectors of ``x`` (uncentred: cosine geometry is about the origin)."""
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return vt[:k]


def _fit_identity(x, y, speakers, hp):
    dx, dy = x.shape[1], y.shape[1]
    spec = {"kind": "identity"}
    if dx != dy:
        raise ValueError(
            f"'identity' needs equal embedding dims, got enrollment {dx} vs runtime {dy}; "
            "use an alignment method instead"
        )
    return _Identity(), _Identity(), spec, spec, dx


def ridge_solve(ata: np.ndarray, atb: np.ndarray, penalty: float) -> np.ndarray:
    """Solve the ridge normal equations ``(A'A + penalty I) W = A'T`` where ``A``'s last column is the bias (ones),
    which is not shrunk; the ``linear`` aligner and NESSA's least-squares start share it.

    Examples
    --------
    >>> a = np.hstack([np.eye(2), np.ones((2, 1))]); a = np.vstack([a, [0.0, 0.0, 1.0]])
    >>> ridge_solve(a.T @ a, a.T @ np.array([[2.0], [3.0], [1.0]]), 0.0).ravel().round(6).tolist()
    [1.0, 2.0, 1.0]
    """
    reg = penalty * np.eye(len(ata))
    reg[-1, -1] = 0.0  # do not shrink the bias
    return np.linalg.solve(ata + reg, atb)


def _fit_linear(x, y, speakers, hp):
    dx, dy = x.shape[1], y.shape[1]
    # Ridge least squares Y -> X with a bias column; the runtime side moves, as in M1.
    ya = np.hstack([y, np.ones((len(y), 1))])
    w = ridge_solve(ya.T @ ya, ya.T @ x, hp["ridge"] * len(y))
    runtime_spec = _affine_spec(dy, dx)
    emap, rmap, shared = _Identity(), _set_affine(_Affine(dy, dx), w[:-1].T, w[-1]), dx
    return emap, rmap, {"kind": "identity"}, runtime_spec, shared


def _complete_basis(rows: np.ndarray, k: int) -> np.ndarray:
    """``k`` orthonormal rows of length ``d``: the orthonormal ``rows`` (r <= k of them, kept as they are) followed
    by ``k - r`` rows orthogonal to them."""
    r, d = rows.shape
    if r >= k:
        return rows[:k]
    q, _ = np.linalg.qr(rows.T, mode="complete")  # (d, d); its first r columns span the rows, the rest complete
    return np.vstack([rows, q[:, r:k].T])


def _procrustes_rank_limited(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Orthogonal ``R`` (k x k) minimising ``||b R - a||`` for ``n < k`` rows, in O(k^2 n + k^3 / 3) time.

    ``M = b.T @ a`` has rank at most ``n``: with thin factors ``b.T = Qb Rb``, ``a.T = Qa Ra`` it is
    ``Qb (Rb Ra.T) Qa.T``, so its singular vectors with non-zero singular values come from the SVD of the n x n
    matrix ``Rb Ra.T``. Where ``M`` is zero the optimum is not unique (any orthogonal map between the orthogonal
    complements of the two row spaces fits the data equally); this takes the one the complete QR factors give,
    ``R = [Qb Cb] diag(u vt, I) [Qa Ca].T``, which is orthogonal, instead of the full k x k SVD (the dense SVD of a
    4096 x 4096 matrix did not finish in 270 s)."""
    k, n = a.shape[1], a.shape[0]
    qb, rb = np.linalg.qr(b.T, mode="complete")  # (k, k), (k, n): rows below n are zero
    qa, ra = np.linalg.qr(a.T, mode="complete")
    u, _, vt = np.linalg.svd(rb[:n] @ ra[:n].T)
    t = qa.T  # rows: the basis of a's row space, then its complement
    t[:n] = (u @ vt) @ t[:n]
    return qb @ t


def _fit_procrustes(x, y, speakers, hp):
    dx, dy = x.shape[1], y.shape[1]
    k = min(dx, dy)
    n = x.shape[0]
    if k > n:
        # More dimensions than rows: the k x k cross-covariance has rank <= n, and its dense SVD costs O(k^3) for
        # nothing (and the PCA projection below has only n components to give). Only these shapes take the
        # rank-limited path; with rows >= dims (the study: 9,600 rows, 128-256 dims) the code below runs
        # unchanged, so its aligners stay byte-identical.
        px = _complete_basis(np.linalg.svd(x, full_matrices=False)[2], k) if dx > k else None
        py = _complete_basis(np.linalg.svd(y, full_matrices=False)[2], k) if dy > k else None
        r = _procrustes_rank_limited(x if px is None else x @ px.T, y if py is None else y @ py.T)
        px = np.eye(k) if px is None else px
        rmap_weight = r.T if py is None else (py.T @ r).T
        emap, rmap = _set_affine(_Affine(dx, k), px), _set_affine(_Affine(dy, k), rmap_weight)
        return emap, rmap, _affine_spec(dx, k), _affine_spec(dy, k), k
    px = _pca_projection(x, k) if dx > k else np.eye(k)
    py = _pca_projection(y, k) if dy > k else np.eye(k)
    u, _, vt = np.linalg.svd((y @ py.T).T @ (x @ px.T))
    r = u @ vt  # orthogonal R minimising ||Y_k R - X_k||
    enroll_spec, runtime_spec = _affine_spec(dx, k), _affine_spec(dy, k)
    emap = _set_affine(_Affine(dx, k), px)
    rmap = _set_affine(_Affine(dy, k), (py.T @ r).T)
    return emap, rmap, enroll_spec, runtime_spec, k


def _fit_speaker_logit(x, y, speakers, hp):
    dx, dy = x.shape[1], y.shape[1]
    uniq, inv = np.unique(speakers, return_inverse=True)
    if len(uniq) < 2:
        raise ValueError("speaker-logit needs at least 2 reference speakers")
    cx = np.zeros((len(uniq), dx))
    cy = np.zeros((len(uniq), dy))
    np.add.at(cx, inv, x)
    np.add.at(cy, inv, y)
    enroll_spec = {"kind": "centroids", "n_speakers": len(uniq), "d_in": dx}
    runtime_spec = {"kind": "centroids", "n_speakers": len(uniq), "d_in": dy}
    emap, rmap = _Centroids(len(uniq), dx), _Centroids(len(uniq), dy)
    emap.centroids.data = torch.as_tensor(_unit(cx), dtype=torch.float32)
    rmap.centroids.data = torch.as_tensor(_unit(cy), dtype=torch.float32)
    return emap, rmap, enroll_spec, runtime_spec, len(uniq)


CLOSED_FORM = {
    "identity": _fit_identity,
    "linear": _fit_linear,
    "procrustes": _fit_procrustes,
    "speaker-logit": _fit_speaker_logit,
}
