"""Speaker-level bootstrap: 95 % intervals for EER, minDCF, FRR@FAR and every figure derived from them.

Trials of one speaker are not independent (they share the profile, and the profile's quality moves all of them
together), so resampling trials understates the uncertainty. :class:`SpeakerBootstrap` resamples *speakers*:
each round draws the evaluation speakers with replacement and every trial of a drawn speaker's profile enters
with the number of times the speaker was drawn. All systems scored on the same trials share the rounds, so the
bootstrap distribution of a *difference* between two systems (or of a ratio such as the gain recovered) is
paired: :func:`interval` of ``a - b`` judges "a beats b" on the same resampled speakers.

Cost. The rounds only change weights, never scores, so each system's scores are sorted once; a round is then a
weighted cumulative sum over the sorted trials (O(n) per round, no sort), with memory bounded by 64 rounds at a
time (a few arrays of ``64 * n`` floats). Measured on one core of the 2-core dev VM (``benchmarks/bench_bootstrap.py``,
1,000 rounds): 0.6-1.4 s per system on the default corpus (31 k trials), 4.5x faster than drawing the speakers and
re-scoring every round; at the Vox1-H shape (550 k trials, 1,190 speakers) about 45 s per system, where re-scoring
each round with :func:`~nessa_lib.evaluation.metrics.verification_metrics` (which sorts only a window of the scores)
is about 2x faster (20 ms per round). For Vox1-E/H use fewer rounds (``evaluate.bootstrap_rounds``), or expect a
minute per table row.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from nessa_lib.evaluation.operating_points import DEFAULT_FARS, frr_key

# Rounds evaluated together: as many as keep each (rounds x trials) float64 array near 6 MB, so the chain of
# array operations below stays in the processor's cache. On the default study's 31,350 trials that is 23 rounds,
# measured ~25 % faster than 64 (2-core development machine, 2026-11-29); every round is computed on its own, so
# the chunking never changes a result (tested).
_CHUNK_ELEMENTS = 750_000


def _chunk_rounds(n_trials: int) -> int:
    """Rounds per chunk for ``n_trials`` trials (at least one).

    Examples
    --------
    >>> _chunk_rounds(31350), _chunk_rounds(10**6)
    (23, 1)
    """
    return max(1, _CHUNK_ELEMENTS // max(1, int(n_trials)))


def interval(samples, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile interval of bootstrap samples: ``(lo, hi)`` at level ``1 - alpha`` (NaN rounds ignored).

    Examples
    --------
    >>> interval(np.arange(101.0))
    (2.5, 97.5)
    """
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(s, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def profile_speakers(enroll: pd.DataFrame, speaker_of_utt: Mapping) -> dict:
    """The speaker of each profile: ``{profile_id: speaker_id}`` from its enrollment utterances.

    Raises ``ValueError`` when a profile mixes speakers or an enrollment utterance has no known speaker.

    Examples
    --------
    >>> enroll = pd.DataFrame({"profile_id": ["p1", "p1", "p2"], "utt_id": ["a", "b", "c"]})
    >>> profile_speakers(enroll, {"a": "s1", "b": "s1", "c": "s2"})
    {'p1': 's1', 'p2': 's2'}
    """
    out: dict = {}
    for pid, utt in zip(enroll["profile_id"].astype(str), enroll["utt_id"].astype(str)):
        if utt not in speaker_of_utt:
            raise ValueError(f"enrollment utterance {utt!r} of profile {pid!r} has no speaker in the manifest")
        spk = str(speaker_of_utt[utt])
        if out.setdefault(pid, spk) != spk:
            raise ValueError(f"profile {pid!r} mixes speakers {out[pid]!r} and {spk!r}: "
                             "a speaker-level bootstrap needs one speaker per profile")
    return out


class SpeakerBootstrap:
    """Bootstrap rounds over speakers, shared by every system scored on one trial list.

    Parameters
    ----------
    clusters : array_like, shape (n_trials,)
        The resampling unit of each trial: the speaker of its profile (:func:`profile_speakers`).
    labels : array_like of {0, 1}, shape (n_trials,)
        1 = target trial.
    n_rounds : int
        Bootstrap rounds (1,000 gives stable 95 % percentile intervals; 200 is enough for a quick look).
    seed : int
        Seed of the draws; the same seed gives the same rounds.

    Attributes
    ----------
    counts : ndarray, shape (n_rounds, n_clusters)
        How often each speaker was drawn in each round.

    Examples
    --------
    >>> labels = np.array([1, 0, 1, 0]); spk = np.array(["a", "a", "b", "b"])
    >>> b = SpeakerBootstrap(spk, labels, n_rounds=4, seed=0)
    >>> b.metrics(np.array([0.9, 0.1, 0.8, 0.2]))["eer"].tolist()  # separable in every round
    [0.0, 0.0, 0.0, 0.0]
    """

    def __init__(self, clusters, labels, *, n_rounds: int = 1000, seed: int = 0):
        clusters = np.asarray(clusters)
        labels = np.asarray(labels)
        if clusters.ndim != 1 or clusters.shape != labels.shape:
            raise ValueError(f"clusters and labels must be 1-D of one length, got {clusters.shape} and {labels.shape}")
        if int(n_rounds) < 1:
            raise ValueError(f"n_rounds must be >= 1, got {n_rounds}")
        self.labels = labels.astype(bool)
        if not self.labels.any() or self.labels.all():
            raise ValueError("the trials need both target and non-target labels")
        self.names, self.cluster = np.unique(clusters, return_inverse=True)
        n = len(self.names)
        rng = np.random.default_rng(seed)
        self.counts = rng.multinomial(n, np.full(n, 1.0 / n), size=int(n_rounds)).astype(np.float64)
        self.n_rounds = int(n_rounds)

    @classmethod
    def from_lists(cls, enroll: pd.DataFrame, trials: pd.DataFrame, speakers, *,
                   n_rounds: int = 1000, seed: int = 0) -> SpeakerBootstrap:
        """Rounds for a trial list: each trial follows its profile's speaker (:func:`profile_speakers`).

        ``speakers`` maps utterance ids to speakers: a mapping, or a manifest DataFrame (``utt_id``,
        ``speaker_id``).
        """
        if isinstance(speakers, pd.DataFrame):
            speakers = dict(zip(speakers["utt_id"].astype(str), speakers["speaker_id"].astype(str)))
        spk = profile_speakers(enroll, speakers)
        pids = trials["profile_id"].astype(str)
        unknown = sorted(set(pids) - set(spk))
        if unknown:
            raise ValueError(f"trial list names profiles without enrollment: {unknown[:5]}")
        return cls(pids.map(spk).to_numpy(), trials["label"].to_numpy(), n_rounds=n_rounds, seed=seed)

    # -- per-round operating points -----------------------------------------------------------------

    def _points(self, scores):
        """Yield, per chunk of rounds, weighted (misses, false alarms) at every operating point and the totals.

        Operating points as in :mod:`nessa_lib.evaluation.metrics`: one per distinct score (accept when
        ``score >= t``) plus reject-all; misses = target weight below ``t``, false alarms = non-target weight at
        or above ``t``.
        """
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != self.labels.shape:
            raise ValueError(f"scores have shape {s.shape}, the bootstrap's trials {self.labels.shape}")
        if not np.isfinite(s).all():
            raise ValueError("scores contain NaN or inf")
        order = np.argsort(s, kind="stable")
        ss, lab, cl = s[order], self.labels[order], self.cluster[order]
        starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])  # first trial of each distinct value
        counts = self.counts.astype(np.float32)  # integer weights: exact in float32 below 2**24 trials
        chunk = _chunk_rounds(len(ss))
        for r0 in range(0, self.n_rounds, chunk):
            w = counts[r0:r0 + chunk][:, cl]  # (rounds, n): weight of each sorted trial
            wt = w * lab
            below_t = np.cumsum(wt, axis=1)
            below_n = np.cumsum(w - wt, axis=1)
            zero = np.zeros((len(w), 1))
            n_t, n_n = below_t[:, -1:].astype(np.float64), below_n[:, -1:].astype(np.float64)
            # Weight strictly below each point's value = cumulative sum up to the trial before its first trial.
            if len(starts) == len(ss):  # every score distinct: the points are the trials, slicing beats a gather
                bt, bn = below_t[:, :-1], below_n[:, :-1]
            else:
                bt, bn = below_t[:, starts[1:] - 1], below_n[:, starts[1:] - 1]
            misses = np.concatenate([zero, bt, n_t], axis=1)
            fas = np.concatenate([n_n, n_n - bn, zero], axis=1)
            yield misses, fas, n_t, n_n

    def metrics(self, scores, p_targets=(0.01, 0.05), fars=DEFAULT_FARS) -> dict[str, np.ndarray]:
        """Per-round ``eer``, ``min_dcf_p<p>`` and ``frr_at_far<f>`` of one system (keys as
        :func:`nessa_lib.evaluation.metrics.verification_metrics`), each an array of ``n_rounds``.

        A round with the uniform weight 1 for every speaker gives exactly the metrics of the plain trial list.
        """
        out: dict[str, list] = {"eer": []}
        out.update({f"min_dcf_p{float(p)!r}": [] for p in p_targets})
        out.update({frr_key(f): [] for f in fars})
        for misses, fas, n_t, n_n in self._points(scores):
            frr, far = misses / n_t, fas / n_n
            # EER: first point where FAR <= FRR (exact sign test in the integer weights), interpolated with the
            # point before it, as TrialScores.eer does.
            diff = fas * n_t - misses * n_n
            i = np.argmax(diff <= 0, axis=1)
            rows = np.arange(len(i))
            frr1, far1 = frr[rows, i], far[rows, i]
            frr0, far0 = frr[rows, i - 1], far[rows, i - 1]
            d0, d1 = far0 - frr0, far1 - frr1
            with np.errstate(invalid="ignore", divide="ignore"):
                e = frr0 + d0 / (d0 - d1) * (frr1 - frr0)
            out["eer"].append(np.where(diff[rows, i] == 0, frr1, e))
            for p in p_targets:
                w_miss, w_fa = float(p), 1.0 - float(p)
                norm = min(w_miss, w_fa)
                out[f"min_dcf_p{float(p)!r}"].append(((w_miss * frr + w_fa * far) / norm).min(1))
            for f in fars:
                ok = far <= float(f)  # the FAR falls with the threshold: the first such point has the lowest FRR
                out[frr_key(f)].append(frr[rows, np.argmax(ok, axis=1)])
        return {k: np.concatenate(v) for k, v in out.items()}

    def rates_at(self, scores, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-round ``(far, frr)`` of a fixed threshold (accept when ``score >= threshold``).

        Examples
        --------
        >>> b = SpeakerBootstrap(np.array(["a", "a", "b", "b"]), np.array([1, 0, 1, 0]), n_rounds=2)
        >>> far, frr = b.rates_at(np.array([0.9, 0.1, 0.4, 0.6]), 0.5)
        >>> bool(((far >= 0) & (far <= 1)).all())
        True
        """
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != self.labels.shape:
            raise ValueError(f"scores have shape {s.shape}, the bootstrap's trials {self.labels.shape}")
        lab, acc = self.labels, s >= threshold
        # Per speaker: target/non-target counts, misses and false alarms; then one matrix product per quantity.
        k = len(self.names)

        def per(mask):
            return np.bincount(self.cluster[mask], minlength=k).astype(np.float64)
        n_t, n_n = self.counts @ per(lab), self.counts @ per(~lab)
        miss, fa = self.counts @ per(lab & ~acc), self.counts @ per(~lab & acc)
        with np.errstate(invalid="ignore", divide="ignore"):
            return fa / n_n, miss / n_t

    def class_means(self, values) -> tuple[np.ndarray, np.ndarray]:
        """Per-round mean of a per-trial quantity over the target and over the non-target trials, each trial
        weighted by how often its speaker was drawn (e.g. the terms of Cllr,
        :func:`nessa_lib.evaluation.calibration.cllr`).

        Returns
        -------
        target_mean, nontarget_mean : ndarray, shape (n_rounds,)
            NaN in a round that drew no trial of the class.

        Examples
        --------
        >>> b = SpeakerBootstrap(np.array(["a", "a", "b", "b"]), np.array([1, 0, 1, 0]), n_rounds=1)
        >>> b.counts = np.array([[2.0, 0.0]])  # speaker a drawn twice, b never
        >>> [m.tolist() for m in b.class_means(np.array([1.0, 2.0, 3.0, 4.0]))]
        [[1.0], [2.0]]
        """
        v = np.asarray(values, dtype=np.float64)
        if v.shape != self.labels.shape:
            raise ValueError(f"values have shape {v.shape}, the bootstrap's trials {self.labels.shape}")
        k = len(self.names)

        def per(mask, weights=None):
            return np.bincount(self.cluster[mask], weights=weights, minlength=k).astype(np.float64)
        lab = self.labels
        with np.errstate(invalid="ignore", divide="ignore"):
            return ((self.counts @ per(lab, v[lab])) / (self.counts @ per(lab)),
                    (self.counts @ per(~lab, v[~lab])) / (self.counts @ per(~lab)))

