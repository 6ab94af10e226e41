"""Speaker-disjoint train / align / eval splits of a manifest, and per-speaker utterance subsets."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from nessa_lib.data.manifest import SPLITS


def first_utterances(df: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first ``n`` utterances of every speaker, in ``utt_id`` order (``n = 0``: every utterance).

    Used to embed only part of a large split (the encoder-training speakers, as extra alignment pairs): the
    choice is deterministic, so it needs no seed, and it keeps every speaker, which matters more to an aligner
    than more utterances of the same voices (README, alignment-data ablation).

    Parameters
    ----------
    df : DataFrame
        Manifest rows (at least ``utt_id`` and ``speaker_id``).
    n : int
        Utterances kept per speaker (>= 0).

    Returns
    -------
    DataFrame
        The kept rows, in their original order.

    Examples
    --------
    >>> df = pd.DataFrame({"utt_id": ["b2", "a1", "b1", "a2", "a3"], "speaker_id": ["b", "a", "b", "a", "a"]})
    >>> first_utterances(df, 1)["utt_id"].tolist()
    ['a1', 'b1']
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"utterances per speaker must be >= 0 (0 = all), got {n}")
    if n == 0:
        return df
    rank = df.groupby("speaker_id")["utt_id"].rank(method="first")
    return df[rank <= n]


def _split_counts(sizes: dict, n: int) -> dict:
    unknown = set(sizes) - set(SPLITS)
    if unknown:
        raise ValueError(f"split sizes: unknown split(s) {sorted(unknown)}; use {list(SPLITS)}")
    vals = [sizes.get(s, 0) for s in SPLITS]
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v) or v < 0 for v in vals):
        raise ValueError(f"split sizes must be finite numbers >= 0, got {sizes}")
    if all(isinstance(v, numbers.Integral) for v in vals):
        counts = [int(v) for v in vals]
        if sum(counts) > n:
            raise ValueError(f"split counts {sizes} sum to {sum(counts)} but there are only {n} speakers")
        return dict(zip(SPLITS, counts))
    total = float(sum(vals))
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"split fractions {sizes} sum to {total}, expected 1 (or give integer speaker counts)")
    # Largest-remainder rounding so the counts add up to exactly n.
    raw = np.asarray(vals, dtype=float) * n
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return dict(zip(SPLITS, counts.tolist()))


def speaker_disjoint_split(speaker_ids, sizes: dict, rng, *, min_eval_speakers: int = 100) -> dict:
    """Assign each speaker to exactly one of train / align / eval.

    Parameters
    ----------
    speaker_ids : iterable
        Speaker ids; duplicates are fine (e.g. a manifest's ``speaker_id`` column). The result does not depend
        on their order.
    sizes : dict
        Either fractions summing to 1 (``{'train': .6, 'align': .2, 'eval': .2}``) or integer speaker counts
        (``{'align': 50, 'eval': 100}``). Missing keys mean 0. With counts, speakers left over are mapped to
        ``''`` (unused).
    rng : numpy.random.Generator or int
        Randomness source (an int is used as a seed).
    min_eval_speakers : int
        Raise if eval would get fewer speakers; EER on a handful of speakers is noise. Lower it only for tiny
        fixtures.

    Returns
    -------
    dict
        ``speaker_id -> split``.

    Examples
    --------
    >>> spk = [f"s{i}" for i in range(10)]
    >>> split = speaker_disjoint_split(spk, {"train": 0.6, "align": 0.2, "eval": 0.2}, 0, min_eval_speakers=2)
    >>> sorted(pd.Series(split).value_counts().items())
    [('align', 2), ('eval', 2), ('train', 6)]
    """
    rng = np.random.default_rng(rng)
    speakers = sorted(set(speaker_ids), key=str)
    if not speakers:
        raise ValueError("speaker_disjoint_split: no speakers given")
    counts = _split_counts(sizes, len(speakers))
    if counts["eval"] < min_eval_speakers:
        raise ValueError(f"speaker_disjoint_split: eval would get {counts['eval']} of {len(speakers)} speakers, "
                         f"fewer than min_eval_speakers={min_eval_speakers}")
    perm = rng.permutation(len(speakers))
    out, start = {}, 0
    for s in SPLITS:
        for i in perm[start:start + counts[s]]:
            out[speakers[i]] = s
        start += counts[s]
    for i in perm[start:]:
        out[speakers[i]] = ""
    return out


def assign_splits(df: pd.DataFrame, *, n_train: int, n_align: int, n_eval: int, rng,
                  min_eval_speakers: int = 100, eval_speakers=None) -> pd.DataFrame:
    """Copy of ``df`` with the ``split`` column set by a speaker-disjoint split of the given sizes.

    Speakers beyond ``n_train + n_align + n_eval`` keep split ``''`` (unused). Raises ``ValueError`` if the
    corpus has fewer speakers than asked for. With ``eval_speakers`` (the speakers of an official trial
    list), those speakers form the evaluation split, ``n_eval`` is ignored, and the others are split into
    ``n_train`` and ``n_align`` speakers.

    Examples
    --------
    >>> df = pd.DataFrame({"utt_id": list("abcdef"), "speaker_id": list("xxyyzz"), "split": ""})
    >>> out = assign_splits(df, n_train=1, n_align=1, n_eval=1, rng=0, min_eval_speakers=1)
    >>> sorted(out.groupby("split")["speaker_id"].nunique().to_dict().items())
    [('align', 1), ('eval', 1), ('train', 1)]
    """
    speakers = sorted(df["speaker_id"].unique(), key=str)
    if eval_speakers is not None:
        fixed = set(eval_speakers)
        rest = df[~df["speaker_id"].isin(fixed)]
        out = assign_splits(rest, n_train=n_train, n_align=n_align, n_eval=0, rng=rng, min_eval_speakers=0)
        out = pd.concat([out, df[df["speaker_id"].isin(fixed)].assign(split="eval")]).loc[df.index]
        if out.loc[out["split"] == "eval", "speaker_id"].nunique() < int(min_eval_speakers):
            raise ValueError(f"the trial list covers fewer than min_eval_speakers={min_eval_speakers} speakers")
        return out
    want = int(n_train) + int(n_align) + int(n_eval)
    if want > len(speakers):
        raise ValueError(
            f"the corpus has {len(speakers)} speakers but the splits ask for {want} "
            f"(train {n_train} + align {n_align} + eval {n_eval})"
        )
    mapping = speaker_disjoint_split(
        speakers, {"train": int(n_train), "align": int(n_align), "eval": int(n_eval)}, rng,
        min_eval_speakers=int(min_eval_speakers),
    )
    out = df.copy()
    out["split"] = out["speaker_id"].map(mapping).fillna("")
    return out
