"""P speakers x K utterances batches for contrastive objectives: one implementation for the encoders' supervised
contrastive training (:class:`nessa_lib.encoders.data.SpeakerBatchSampler`) and NESSA M3's fits."""

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
