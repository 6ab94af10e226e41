"""Is the mapped space still spread out? Label-free statistics that see a collapsed or scrambled space.

Pair agreement (:mod:`nessa_lib.align.agreement`) asks whether the two mapped sides of one utterance meet. It
cannot see a space that has closed up: when every mapped embedding drifts toward one direction, the two sides of
an utterance still meet, but so do the sides of *different* utterances, and scoring can no longer tell voices
apart (measured on real recordings: agreement 0.847, above the fit's 5th percentile, while the aligned EER was
30 % against 8.3 % for keeping the old model). Two statistics of the cross-side cosines
``S[i, j] = cos(map_enrollment(x_i), map_runtime(y_j))`` see it:

- *non-pair cosines* ``S[i, j]``, ``i != j``: the scores of different utterances. A collapse moves their whole
  distribution up (the real case above: median from about 0.0 to 0.52).
- *pair identification rate*: the share of utterances ``i`` whose nearest mapped runtime-side embedding
  (``argmax_j S[i, j]``) is their own pair ``j = i``. A collapsed or scrambled space loses it (0.79 to 0.08 in
  the real case). It falls as the sample grows (more rivals per utterance), so it is only compared at one sample
  size: :func:`reference_statistics` measures the fit data at the sizes :data:`SIZES` and
  :func:`sample_statistics` measures a sample at the largest of them it reaches.

Every fitted aligner stores :func:`reference_statistics` of its fit data (:attr:`nessa_lib.align.Aligner.fit_reference`);
:mod:`nessa_lib.deployment` compares samples of target traffic with it.
"""

from __future__ import annotations

import numpy as np

# Sample sizes at which the fit data's pair identification rate is stored: powers of two, so that a check sample
# is compared at a size at least half its own. 16 utterances is the least that says anything.
SIZES = (16, 32, 64, 128, 256, 512, 1024)


def pair_identification_rate(a, b) -> float:
    """Share of rows ``i`` of ``a`` whose most similar row of ``b`` (cosine) is ``b[i]``, their own pair.

    Parameters
    ----------
    a, b : array_like, shape (m, d)
        The enrollment-side and runtime-side mapped embeddings of the same ``m`` utterances, row ``i`` of both
        the same utterance.

    Returns
    -------
    float
        In ``[0, 1]``; ``1 / m`` is what a random pairing gives on average.

    Examples
    --------
    Three utterances; the third one's runtime side has drifted away (cosine 0 with its enrollment side, 0.8
    with the second utterance's runtime side):

    >>> a = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]
    >>> b = [[1.0, 0.0], [0.0, 1.0], [0.8, -0.6]]
    >>> pair_identification_rate(a, b)  # rows 0 and 1 find their pair, row 2 finds row 1
    0.6666666666666666
    """
    s = cross_cosines(a, b)
    return float(np.mean(np.argmax(s, axis=1) == np.arange(len(s))))


def cross_cosines(a, b) -> np.ndarray:
    """``S[i, j]``: cosine between row ``i`` of ``a`` and row ``j`` of ``b`` (float64).

    Examples
    --------
    >>> cross_cosines([[2.0, 0.0]], [[1.0, 1.0], [0.0, 3.0]]).round(3).tolist()
    [[0.707, 0.0]]
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def nonpair_cosines(a, b) -> np.ndarray:
    """The off-diagonal of :func:`cross_cosines`: cosines between different utterances' mapped sides.

    Examples
    --------
    >>> nonpair_cosines([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.6, 0.8]]).tolist()
    [0.6, 0.0]
    """
    s = cross_cosines(a, b)
    return s[~np.eye(len(s), dtype=bool)]


def _draws(size: int) -> int:
    """Random subsets drawn at ``size``: enough for stable percentiles, at most about 4 M cosines per size."""
    return int(max(4, min(32, 4096 // size)))


def _measure(a, b, size: int, n_draws: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Pair identification rate of ``n_draws`` random ``size``-subsets and their pooled non-pair cosines."""
    rates, off = [], []
    for _ in range(n_draws):
        idx = rng.choice(len(a), size=size, replace=False) if size < len(a) else np.arange(len(a))
        s = cross_cosines(a[idx].astype(np.float64), b[idx].astype(np.float64))
        rates.append(np.mean(np.argmax(s, axis=1) == np.arange(size)))
        off.append(s[~np.eye(size, dtype=bool)])
    return np.asarray(rates), np.concatenate(off)


def _spread(values) -> dict:
    return {"median": float(np.median(values)), "p95": float(np.percentile(values, 95))}


def reference_statistics(a, b, *, sizes=None, seed: int = 0) -> dict:
    """The fit data's non-pair cosines and pair identification rates, for :func:`sample_statistics` to compare with.

    Parameters
    ----------
    a, b : array_like, shape (n, d)
        The fit data's enrollment-side and runtime-side mapped embeddings (paired rows).
    sizes : sequence of int, optional
        Sample sizes of the pair identification rate; default the :data:`SIZES` up to ``n`` (and ``n`` itself
        when it is below 16 there is nothing to store).
    seed : int
        Seed of the random subsets (the same seed gives the same statistics).

    Returns
    -------
    dict
        Plain floats for JSON: ``n``; ``nonpair_cosine`` (``median``, ``p95`` of the non-pair cosines of random
        subsets of the largest size); ``pair_id`` ``{str(size): {"median", "p05", "p95", "draws"}}`` over random
        subsets of each size. ``{}`` when ``n`` is below the smallest size.

    Examples
    --------
    >>> e = np.eye(16)
    >>> r = reference_statistics(e, e)
    >>> r["pair_id"]["16"]["median"], r["nonpair_cosine"]["median"]
    (1.0, 0.0)
    """
    # Subsets are taken to float64 one at a time (_measure): a million-row fit set is never copied whole.
    a, b = np.asarray(a), np.asarray(b)
    n = len(a)
    sizes = sorted({int(s) for s in (sizes if sizes is not None else SIZES) if int(s) <= n})
    if not sizes:
        return {}
    rng = np.random.default_rng(seed)
    pair_id, off = {}, None
    for size in sizes:
        rates, off = _measure(a, b, size, _draws(size) if size < n else 1, rng)
        pair_id[str(size)] = {"median": float(np.median(rates)), "p05": float(np.percentile(rates, 5)),
                              "p95": float(np.percentile(rates, 95)), "draws": int(len(rates))}
    return {"n": int(n), "nonpair_cosine": _spread(off), "pair_id": pair_id}


def comparable_size(reference: dict, n: int) -> int | None:
    """The largest size of ``reference``'s pair identification rates that a sample of ``n`` reaches, or None.

    Examples
    --------
    >>> comparable_size({"pair_id": {"16": {}, "32": {}, "64": {}}}, 50)
    32
    >>> comparable_size({"pair_id": {"16": {}}}, 10) is None
    True
    """
    fits = [int(s) for s in reference.get("pair_id", {}) if int(s) <= n]
    return max(fits) if fits else None


def sample_statistics(a, b, size: int, *, seed: int = 0) -> dict:
    """A check sample's non-pair cosines and pair identification rate at ``size`` (see :func:`comparable_size`).

    When the sample is larger than ``size``, the rate is the mean over random ``size``-subsets, so that it is
    comparable with the fit data's rate at that size.

    Returns
    -------
    dict
        ``n``, ``size``, ``nonpair_median``, ``nonpair_p95``, ``pair_id``.

    Examples
    --------
    >>> e = np.eye(3)
    >>> sample_statistics(e, e[[0, 2, 1]], 3)["pair_id"]  # utterances 1 and 2 scrambled
    0.3333333333333333
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not 2 <= size <= len(a):
        raise ValueError(f"size must be between 2 and the sample's {len(a)} rows, got {size}")
    rng = np.random.default_rng(seed)
    rates, off = _measure(a, b, size, _draws(size) if size < len(a) else 1, rng)
    spread = _spread(off)
    return {"n": int(len(a)), "size": int(size), "nonpair_median": spread["median"], "nonpair_p95": spread["p95"],
            "pair_id": float(np.mean(rates))}
