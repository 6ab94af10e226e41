"""P speakers x K utterances batches for contrastive objectives: one sampler for the encoders' supervised
contrastive training (:class:`nessa_lib.encoders.data.SpeakerBatchSampler`, :func:`speaker_batches`) and NESSA
M3's fits (:class:`SpeakerRows`, the same sampling with one round per epoch, vectorised)."""

from __future__ import annotations

import numpy as np


def utterances_by_speaker(labels) -> dict:
    """``{speaker: row indices}`` of the speakers with at least 2 rows (a positive pair needs a second
    utterance), in sorted speaker order.

    Examples
    --------
    >>> utterances_by_speaker([1, 0, 1, 2])
    {1: array([0, 2])}
    """
    by_spk: dict = {}
    for i, s in enumerate(np.asarray(labels).tolist()):
        by_spk.setdefault(s, []).append(i)
    return {s: np.asarray(v) for s, v in sorted(by_spk.items()) if len(v) >= 2}


def speaker_batches(by_spk: dict, n_speakers: int, n_utts: int, rng: np.random.Generator, *,
                    rounds: int = 1) -> list[list[int]]:
    """One epoch of batches of ``n_speakers`` speakers x ``n_utts`` rows each, in random order.

    Every speaker's rows are shuffled and cut into ``rounds`` groups of ``n_utts`` (topped up by re-drawing the
    speaker's rows when it has fewer than ``rounds * n_utts``); in each round the speakers are shuffled and
    grouped ``n_speakers`` at a time, and the leftover speakers of the round (fewer than ``n_speakers``) sit it
    out, a different set each round. ``rounds=1`` shows each speaker once per epoch (NESSA M3);
    ``rounds = mean rows / n_utts`` shows each row about once (the encoders' contrastive training).

    Parameters
    ----------
    by_spk : dict
        ``{speaker: row indices}`` (:func:`utterances_by_speaker`).
    n_speakers, n_utts : int
        P and K.
    rng : numpy.random.Generator
        Every random choice of the epoch.
    rounds : int
        Groups of ``n_utts`` rows drawn per speaker.

    Returns
    -------
    list of list of int
        Row indices, ``n_speakers * n_utts`` per batch.

    Examples
    --------
    >>> by = utterances_by_speaker(np.repeat(np.arange(5), 3))
    >>> b = speaker_batches(by, 2, 2, np.random.default_rng(0))
    >>> len(b), [len(x) for x in b]
    (2, [4, 4])
    """
    spks = list(by_spk)
    need = int(rounds) * int(n_utts)
    chunks = {}
    for s in spks:
        idx = rng.permutation(by_spk[s])
        if len(idx) < need:
            idx = np.concatenate([idx, rng.choice(by_spk[s], need - len(idx))])
        chunks[s] = idx[:need].reshape(int(rounds), int(n_utts))
    batches = []
    for r in range(int(rounds)):
        order = rng.permutation(len(spks))
        for g in range(len(spks) // int(n_speakers)):
            chosen = [spks[j] for j in order[g * n_speakers:(g + 1) * n_speakers]]
            batches.append([int(i) for s in chosen for i in chunks[s][r]])
    return [batches[j] for j in rng.permutation(len(batches))]


class SpeakerRows:
    """M3's P speakers x K utterances batches over one row set, drawn with numpy in a few array operations.

    The encoders' sampler (:func:`nessa_lib.batches.speaker_batches`) with one round per epoch, vectorised: every
    speaker with at least 2 rows takes part once per epoch with K of its rows (distinct, topped up by re-drawing
    when it has fewer than K), the speakers are shuffled and grouped P at a time, the leftover (fewer than P) sit
    the epoch out. Same distribution of batches as ``speaker_batches``, not the same draws.

    Examples
    --------
    >>> sr = SpeakerRows(np.arange(100, 115), np.repeat(np.arange(5), 3))
    >>> b = sr.epoch(2, 2, np.random.default_rng(0))
    >>> len(b), [len(x) for x in b], all(len(set((x - 100) // 3)) == 2 for x in b)
    (2, [4, 4], True)
    """

    def __init__(self, idx: np.ndarray, codes: np.ndarray):
        order = np.argsort(codes, kind="stable")
        spk, start, count = np.unique(codes[order], return_index=True, return_counts=True)
        ok = count >= 2  # a positive pair needs a second utterance
        start, count = start[ok], count[ok]
        width = int(count.max()) if len(count) else 0
        col = np.arange(width)
        self.count = count
        # (speakers, most rows): each speaker's rows of idx, padded by repeating its first row.
        self.rows = np.asarray(idx)[order][start[:, None] + np.where(col < count[:, None], col, 0)]

    def epoch(self, n_speakers: int, n_utts: int, rng: np.random.Generator) -> list:
        n_spk = min(n_speakers, len(self.count))
        if n_spk < 2:
            return []
        n, width = self.rows.shape
        keys = rng.random((n, width))
        keys[np.arange(width)[None, :] >= self.count[:, None]] = 2.0  # padding sorts last
        pick = np.argsort(keys, axis=1)[:, :n_utts]
        if pick.shape[1] < n_utts or (self.count < n_utts).any():  # top up by re-drawing the speaker's rows
            pick = np.pad(pick, ((0, 0), (0, n_utts - pick.shape[1])))
            extra = (rng.random((n, n_utts)) * self.count[:, None]).astype(np.int64)
            short = np.arange(n_utts)[None, :] >= self.count[:, None]
            pick = np.where(short, extra, pick)
        chosen = np.take_along_axis(self.rows, pick, axis=1)
        order = rng.permutation(n)[: (n // n_spk) * n_spk]
        return list(chosen[order].reshape(-1, n_spk * n_utts))
