"""Cosine scoring for speaker verification (numpy only): L2 normalisation, voice profiles, trials.

A trial compares an enrolled *voice profile* (the normalised mean of the normalised embeddings of
its enrolment utterances) with one test utterance by cosine similarity. Trial lists are long and
repetitive (Vox1-E: 580 k trials over 4,874 utterances), so :func:`score_trials` computes one
matrix product between the profiles and test utterances that the trials actually use and gathers
the trial scores from it, instead of one dot product per trial in Python (~6-8x faster on the
Vox1-E shape, see benchmarks/bench_scoring.py). Float32 inputs stay float32 (the matrix product is
then twice as fast); scores carry the embeddings' precision.
"""

from __future__ import annotations

import numpy as np

from nessa_lib.checks import as_embeddings

__all__ = ["l2_normalize", "make_profiles", "score_trials"]

# Score-matrix budget per block of profiles: bounds memory on big trial lists.
_BLOCK_BYTES = 256 * 2**20
# Below this many trials per cell of the (used profiles x used tests) matrix, one dot product
# per trial (vectorised gather) beats computing the whole matrix. The matrix product costs a few
# ns per cell; a gathered dot product about a microsecond per trial.
_DENSE_MIN_FILL = 1 / 256
_GATHER_CHUNK = 1 << 15
# Symmetric (one-pool) products are computed in _SYM_CHUNKS^2 blocks, the upper triangle only:
# (k+1)/(2k) of the work, ~0.6 for k=6. Used when the pool is not much larger than each side.
_SYM_CHUNKS = 6
_SYM_COST = 0.6


def _rownorms(x: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row, safe against overflow/underflow of the squared sum."""
    sq = np.einsum("ij,ij->i", x, x)
    norms = np.sqrt(sq)
    # Squares of huge (or tiny) values overflow (or underflow); rescale those rows only.
    odd = ~np.isfinite(sq) | (sq < np.finfo(x.dtype).tiny)
    if odd.any():
        rows = x[odd]
        peak = np.abs(rows).max(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            scaled = rows / peak[:, None]
            norms[odd] = np.where(peak > 0, peak * np.sqrt(np.einsum("ij,ij->i", scaled, scaled)), 0)
    return norms


def l2_normalize(x, name: str = "embeddings") -> np.ndarray:
    """Scale every row to unit Euclidean norm.

    Parameters
    ----------
    x : array_like, shape (n, d)
        One embedding per row. Float32 stays float32; other numeric types become float64.
    name : str
        What ``x`` is, for error messages.

    Returns
    -------
    ndarray, shape (n, d)
        A new array; ``x`` is not modified.

    Raises
    ------
    ValueError
        If ``x`` is not a non-empty 2-D numeric array, has a NaN/inf row, or has an all-zero row
        (a zero vector has no direction, e.g. the embedding of silence from some models).

    Examples
    --------
    >>> l2_normalize([[3.0, 4.0], [0.0, 2.0]])
    array([[0.6, 0.8],
           [0. , 1. ]])
    """
    arr = as_embeddings(x, name=name)
    norms = _rownorms(arr)
    zero = norms == 0
    if zero.any():
        rows = np.flatnonzero(zero)
        raise ValueError(
            f"{name} has {rows.size} all-zero row(s), first at row(s) {rows[:5].tolist()}: "
            "a zero vector has no direction to normalise (silent or failed embedding?)"
        )
    return arr / norms[:, None].astype(arr.dtype, copy=False)


def _show(v) -> str:
    """repr of an id as the user wrote it ('a', not np.str_('a'))."""
    return repr(v.item() if isinstance(v, np.generic) else v)


def _ids_1d(ids, what: str) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {arr.shape}")
    if arr.dtype == object:
        raise ValueError(f"{what} must be integers or strings (one type), got dtype object")
    return arr


def make_profiles(emb, profile_ids) -> tuple[np.ndarray, np.ndarray]:
    """Voice profiles: the renormalised mean of each profile's L2-normalised embeddings.

    Parameters
    ----------
    emb : array_like, shape (n, d)
        Enrolment embeddings, one per utterance.
    profile_ids : array_like, shape (n,)
        Profile (e.g. speaker) id of each utterance: integers or strings.

    Returns
    -------
    unique_profile_ids : ndarray, shape (k,)
        The distinct ids, sorted.
    profiles : ndarray, shape (k, d)
        Unit-norm profile vectors, row ``i`` for ``unique_profile_ids[i]``.

    Raises
    ------
    ValueError
        On bad embeddings (see :func:`l2_normalize`), a length mismatch, or a profile whose
        normalised embeddings cancel out (zero mean).

    Examples
    --------
    >>> ids, prof = make_profiles([[2.0, 0.0], [0.0, 5.0], [1.0, 1.0]], ["b", "b", "a"])
    >>> ids.tolist()
    ['a', 'b']
    >>> prof.round(4)
    array([[0.7071, 0.7071],
           [0.7071, 0.7071]])
    """
    e = l2_normalize(emb, name="emb")
    ids = _ids_1d(profile_ids, "profile_ids")
    if ids.size != e.shape[0]:
        raise ValueError(f"emb has {e.shape[0]} rows but profile_ids has {ids.size} entries")
    uniq, inverse = np.unique(ids, return_inverse=True)
    # Group rows by profile with one stable sort, then sum each group with reduceat: no Python
    # loop per profile. Sums are accumulated in float64; the mean's scale is irrelevant since
    # it is renormalised.
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=uniq.size)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    sums = np.add.reduceat(e[order].astype(np.float64), starts, axis=0)
    norms = _rownorms(sums)
    bad = np.flatnonzero(norms <= 1e-12 * counts)
    if bad.size:
        raise ValueError(
            f"profile {_show(uniq[bad[0]])} (and {bad.size - 1} more): its normalised embeddings cancel "
            "out, so the profile has no direction"
        )
    return uniq, (sums / norms[:, None]).astype(e.dtype, copy=False)


def _rows_of(wanted, table_ids, n_rows: int, what: str, table_what: str) -> np.ndarray:
    """Row index in the table for every wanted id (or validate integer rows if no table ids)."""
    q = _ids_1d(wanted, what)
    if table_ids is None:
        if q.size and q.dtype.kind not in "iu":
            raise ValueError(
                f"{what} must be integer row indices when {table_what} is None, got dtype {q.dtype}"
            )
        bad = (q < 0) | (q >= n_rows)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{what} has row index {q[i]} at position {i}, outside 0..{n_rows - 1}")
        return q.astype(np.intp, copy=False)
    table = _ids_1d(table_ids, table_what)
    if table.size != n_rows:
        raise ValueError(f"{table_what} has {table.size} entries but its embeddings have {n_rows} rows")
    if table.dtype.kind in "iuf" and q.dtype.kind in "iuf":
        # Numbers: sort the table once and binary-search it (vectorised).
        order = np.argsort(table, kind="stable")
        st = table[order]
        dup = np.flatnonzero(st[1:] == st[:-1])
        if dup.size:
            raise ValueError(f"{table_what} contains duplicate id {_show(st[dup[0]])}")
        pos = np.searchsorted(st, q)
        found = (pos < n_rows) & (st[np.minimum(pos, n_rows - 1)] == q)
        rows = order[np.minimum(pos, n_rows - 1)]
    else:
        # Strings: a dict is ~4x faster than searchsorted on numpy unicode arrays (580 k trial
        # ids: ~0.05 s against 0.2 s), and ids of different types simply are not found.
        lookup = dict(zip(table.tolist(), range(n_rows)))
        if len(lookup) < n_rows:
            seen = set()
            first_dup = next(x for x in table.tolist() if x in seen or seen.add(x))
            raise ValueError(f"{table_what} contains duplicate id {first_dup!r}")
        get = lookup.get
        rows = np.fromiter((get(x, -1) for x in q.tolist()), dtype=np.intp, count=q.size)
        found = rows >= 0
    if not found.all():
        i = int(np.argmin(found))
        raise ValueError(
            f"{what} has id {_show(q[i])} (first at position {i}, {int((~found).sum())} trial(s) in all) "
            f"that is not in {table_what}"
        )
    return rows


def _compact(rows: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """``(used rows ascending, position of each entry among them)``; O(len + n_rows), no sort."""
    used = np.zeros(n_rows, dtype=bool)
    used[rows] = True
    uniq = np.flatnonzero(used)
    remap = np.empty(n_rows, dtype=np.intp)
    remap[uniq] = np.arange(uniq.size)
    return uniq, remap[rows]


def score_trials(
    profiles,
    profile_ids,
    test_emb,
    test_ids,
    trial_profile_ids,
    trial_test_ids,
    *,
    block_size: int | None = None,
) -> np.ndarray:
    """Cosine score of every trial (profile vs test utterance), without a Python loop per trial.

    Parameters
    ----------
    profiles : array_like, shape (k, d)
        Enrolled profile vectors (e.g. from :func:`make_profiles`); normalised here anyway.
    profile_ids : array_like, shape (k,), or None
        Id of each profile row (integers or strings, unique). ``None``: ``trial_profile_ids``
        are row indices into ``profiles``.
    test_emb : array_like, shape (m, d)
        Test-utterance embeddings; normalised here.
    test_ids : array_like, shape (m,), or None
        Id of each test row (unique). ``None``: ``trial_test_ids`` are row indices.
    trial_profile_ids, trial_test_ids : array_like, shape (t,)
        The two sides of every trial.
    block_size : int, optional
        Profiles per block of the score matrix. Default: as many as fit in 256 MB of scores.
        Only memory depends on it, never the result.

    Returns
    -------
    ndarray, shape (t,)
        Cosine similarities in [-1, 1]; float32 when both embedding arrays are float32.

    Raises
    ------
    ValueError
        On bad embeddings (NaN/inf or all-zero rows), mismatched dimensions or lengths, duplicate
        ids, an id not found (naming the first one), or a row index out of range.

    Notes
    -----
    Ids are mapped to rows (binary search for numbers, a dict for strings), then one matrix
    product is computed between the profiles and the test utterances that the trials use, block
    by block of profiles, and the trial scores are gathered from it. When both sides are the same
    embedding matrix (utterance-vs-utterance lists such as VoxCeleb's), only the upper block
    triangle of the symmetric product is computed (~58 % of the work). When trials cover only a
    tiny fraction of the matrix, a vectorised per-trial dot product is used instead.

    Examples
    --------
    >>> prof = [[1.0, 0.0], [0.0, 3.0]]
    >>> test = [[2.0, 2.0], [0.0, -1.0]]
    >>> score_trials(prof, ["alice", "bob"], test, ["u1", "u2"],
    ...              ["alice", "bob", "bob"], ["u1", "u1", "u2"]).round(4)
    array([ 0.7071,  0.7071, -1.    ])
    >>> score_trials(prof, None, test, None, [0, 1], [1, 1])
    array([ 0., -1.])
    """
    P = as_embeddings(profiles, name="profiles")
    Q = as_embeddings(test_emb, name="test_emb", dim=P.shape[1])
    rp = _rows_of(trial_profile_ids, profile_ids, P.shape[0], "trial_profile_ids", "profile_ids")
    rt = _rows_of(trial_test_ids, test_ids, Q.shape[0], "trial_test_ids", "test_ids")
    if rp.size != rt.size:
        raise ValueError(f"trial_profile_ids has {rp.size} entries but trial_test_ids has {rt.size}")
    dtype = np.result_type(P.dtype, Q.dtype)
    if rp.size == 0:
        return np.zeros(0, dtype=dtype)
    if block_size is not None and (int(block_size) != block_size or block_size < 1):
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")

    # Normalise only the rows the trials use (errors still name the original row).
    up, ip = _compact(rp, P.shape[0])
    ut, it = _compact(rt, Q.shape[0])
    sparse = rp.size < _DENSE_MIN_FILL * up.size * ut.size
    itemsize = np.dtype(dtype).itemsize
    rows = block_size or max(1, _BLOCK_BYTES // (ut.size * itemsize))

    # Utterance-vs-utterance lists (VoxCeleb's) draw both sides from one pool: the score matrix
    # over that pool is symmetric, so only its upper block triangle needs computing.
    if not sparse and block_size is None and P.shape == Q.shape and (Q is P or np.array_equal(Q, P)):
        pool = np.union1d(up, ut)
        if pool.size**2 * _SYM_COST <= up.size * ut.size and pool.size**2 * itemsize <= _BLOCK_BYTES:
            remap = np.empty(P.shape[0], dtype=np.intp)
            remap[pool] = np.arange(pool.size)
            An = _normalize_rows(P, pool, "profiles").astype(dtype, copy=False)
            return _symmetric_scores(An, remap[rp], remap[rt])

    Pn = _normalize_rows(P, up, "profiles").astype(dtype, copy=False)
    Qn = _normalize_rows(Q, ut, "test_emb").astype(dtype, copy=False)
    if sparse:
        out = np.empty(rp.size, dtype=dtype)
        for s in range(0, rp.size, _GATHER_CHUNK):
            sl = slice(s, s + _GATHER_CHUNK)
            out[sl] = np.einsum("ij,ij->i", Pn[ip[sl]], Qn[it[sl]])
        return out
    if rows >= up.size:
        # Gathering through flat indices is ~3x faster than 2-D fancy indexing.
        return np.take((Pn @ Qn.T).ravel(), ip * ut.size + it)
    # Several blocks: order trials by block of profiles so each block's trials are one run.
    # Small unsigned block ids let numpy's stable sort use a radix sort.
    n_blocks = -(-up.size // rows)
    block_of = (ip // rows).astype(np.uint16 if n_blocks < 2**16 else np.intp)
    order = np.argsort(block_of, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(block_of, minlength=n_blocks))))
    QnT = np.ascontiguousarray(Qn.T)
    buf = np.empty((min(rows, up.size), ut.size), dtype=dtype)
    out = np.empty(rp.size, dtype=dtype)
    for b in range(n_blocks):
        sel = order[bounds[b] : bounds[b + 1]]
        if sel.size:
            lo = b * rows
            block = buf[: min(rows, up.size - lo)]
            np.matmul(Pn[lo : lo + rows], QnT, out=block)  # reuse one buffer: no page faults
            out[sel] = np.take(block.ravel(), (ip[sel] - lo) * ut.size + it[sel])
    return out


def _symmetric_scores(An: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``(An @ An.T)[i, j]`` computing only the upper block triangle of the symmetric product."""
    n = An.shape[0]
    chunk = -(-n // _SYM_CHUNKS)
    S = np.empty((n, n), dtype=An.dtype)  # the lower block triangle stays unwritten, never read
    for u in range(0, n, chunk):
        for v in range(u, n, chunk):
            np.matmul(An[u : u + chunk], An[v : v + chunk].T, out=S[u : u + chunk, v : v + chunk])
    below = (i // chunk) > (j // chunk)  # S[i, j] == S[j, i]: read those from the upper blocks
    return np.take(S.ravel(), np.where(below, j, i) * n + np.where(below, i, j))


def _normalize_rows(x: np.ndarray, rows: np.ndarray, name: str) -> np.ndarray:
    """``l2_normalize(x[rows])`` with a zero-row error that names rows of ``x``."""
    sub = x[rows]
    norms = _rownorms(sub)
    zero = norms == 0
    if zero.any():
        bad = rows[zero]
        raise ValueError(
            f"{name} has {bad.size} all-zero row(s) used by trials, first at row(s) {bad[:5].tolist()}: "
            "a zero vector has no direction (silent or failed embedding?)"
        )
    return sub / norms[:, None].astype(sub.dtype, copy=False)
