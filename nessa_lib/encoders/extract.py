"""Embedding extraction: every utterance of a manifest through one speaker encoder, with a progress bar.

Any object with this duck-typed interface is an encoder here (:func:`nessa_lib.encoders.export.load_encoder`
returns one for SpeechBrain-trained models, :class:`~nessa_lib.encoders.pretrained.ResemblyzerEncoder` wraps
resemblyzer's pretrained GE2E LSTM)::

    encoder.model_id: str        # fingerprint of weights + config, e.g. "ecapa@1a2b3c4d5e6f"
    encoder.sample_rate: int     # 16000
    encoder.min_samples: int     # shortest input the model accepts
    encoder.emb_dim: int
    encoder.embed(wavs, lengths) # (B, T) float32 tensor, (B,) relative lengths in (0, 1] -> (B, emb_dim)

Bad input follows field notes F and :func:`nessa_lib.data.audio.load_audio`: stereo is averaged, other sample
rates are resampled (both with a logged warning); unreadable, empty, NaN/inf and all-zero files raise an
:class:`~nessa_lib.data.audio.AudioError` naming the file; clips shorter than ``encoder.min_samples`` are
repeat-padded with a warning; a NaN/inf embedding raises ``ValueError`` naming the utterance and is never returned.
"""

from __future__ import annotations

import logging
import math
import numbers
import time

import numpy as np

from nessa_lib.data.audio import load_audio, manifest_segments, segment_label
from nessa_lib.embeddings import EmbeddingSet

logger = logging.getLogger(__name__)

MODES = ("full", "crop")


def _repeat_pad(x: np.ndarray, n: int) -> np.ndarray:
    """Tile ``x`` until it has ``n`` samples (repeating keeps the voice's statistics; zeros would dilute them)."""
    if len(x) >= n:
        return x
    return np.tile(x, int(math.ceil(n / len(x))))[:n]


def _centre_crop(x: np.ndarray, n: int) -> np.ndarray:
    """The middle ``n`` samples of ``x`` (left-biased by at most one sample), repeat-padded first if shorter."""
    x = _repeat_pad(x, n)
    start = (len(x) - n) // 2
    return x[start:start + n]


def _describe(ids, k: int = 5) -> str:
    ids = [str(u) for u in ids]
    more = f" and {len(ids) - k} more" if len(ids) > k else ""
    return ", ".join(repr(u) for u in ids[:k]) + more


def _check_args(manifest_df, encoder, mode, crop_s, batch_size) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if mode == "crop":
        if isinstance(crop_s, bool) or not isinstance(crop_s, numbers.Real) or not (np.isfinite(crop_s) and crop_s > 0):
            raise ValueError(f"crop_s must be a finite number of seconds > 0, got {crop_s!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    for attr in ("model_id", "sample_rate", "min_samples", "emb_dim", "embed"):
        if not hasattr(encoder, attr):
            raise TypeError(f"encoder {type(encoder).__name__} lacks {attr!r}; "
                            "see the protocol in nessa_lib.encoders.extract")
    missing = [c for c in ("utt_id", "speaker_id", "path") if c not in manifest_df.columns]
    if missing:
        raise ValueError(f"manifest is missing column(s) {missing}")
    if len(manifest_df) == 0:
        raise ValueError("manifest has no rows: nothing to embed")
    dup = manifest_df["utt_id"].astype(str).duplicated()
    if dup.any():
        raise ValueError(f"manifest has duplicated utt_id(s): {_describe(manifest_df['utt_id'][dup].unique())}")


def extract_embeddings(manifest_df, encoder, *, mode: str = "full", crop_s: float = 3.0, batch_size: int = 16,
                       progress: bool = True, desc: str | None = None, transform=None) -> EmbeddingSet:
    """Embed every utterance of ``manifest_df`` with ``encoder``.

    Parameters
    ----------
    manifest_df : pandas.DataFrame
        Manifest rows (columns ``utt_id``, ``speaker_id``, ``path``; ``duration_s`` is used, when present, to
        batch utterances of similar length; optional ``start``/``stop`` make a row a segment of its file, empty
        = the whole file), e.g. from :func:`nessa_lib.data.manifest.read_manifest`.
    encoder : object
        Speaker encoder following the protocol in this module's docstring.
    mode : {'full', 'crop'}
        'full': the whole utterance; utterances are sorted by duration, batched, zero-padded, and the encoder
        gets their relative lengths. 'crop': the centre ``crop_s`` seconds (deterministic); utterances shorter
        than that are repeat-padded to it (one summary warning), so every input has the same length.
    crop_s : float
        Crop length in seconds (``mode='crop'`` only).
    batch_size : int
        Utterances per ``encoder.embed`` call.
    progress : bool
        Show a tqdm progress bar.
    desc : str, optional
        Progress bar label; default names the mode and the model.
    transform : callable, optional
        ``transform(wave, row) -> wave`` applied to each decoded waveform (``row``: its position in
        ``manifest_df``), e.g. a degradation that simulates another recording condition
        (:func:`extract_condition`).

    Returns
    -------
    EmbeddingSet
        float32 ``(n, encoder.emb_dim)`` embeddings, rows in the manifest's order, ``model_id`` of the encoder.

    Raises
    ------
    nessa_lib.data.audio.AudioError
        A file is missing, unreadable, empty, contains NaN/inf or is all zeros (the message names it).
    ValueError
        Bad arguments, an embedding of the wrong shape, or a NaN/inf embedding (the message names the utterance
        and its file).

    Examples
    --------
    >>> import os, tempfile, numpy as np, pandas as pd, soundfile as sf, torch
    >>> class Stats:  # toy encoder: mean and std of the valid samples
    ...     model_id, sample_rate, min_samples, emb_dim = "stats@0", 16000, 160, 2
    ...     def embed(self, wavs, lengths):
    ...         n = (lengths * wavs.shape[1]).round().long()
    ...         return torch.stack([torch.stack([w[:k].mean(), w[:k].std()]) for w, k in zip(wavs, n)])
    >>> d = tempfile.mkdtemp()
    >>> rows = []
    >>> for i, sec in enumerate([1.0, 0.5]):
    ...     p = os.path.join(d, f"u{i}.wav")
    ...     sf.write(p, 0.1 * np.random.default_rng(i).standard_normal(int(sec * 16000)), 16000)
    ...     rows.append({"utt_id": f"u{i}", "speaker_id": "s", "path": p, "duration_s": sec})
    >>> es = extract_embeddings(pd.DataFrame(rows), Stats(), progress=False)
    >>> es.embeddings.shape, list(es.utt_ids), es.model_id
    ((2, 2), ['u0', 'u1'], 'stats@0')
    """
    import torch
    from tqdm import tqdm

    _check_args(manifest_df, encoder, mode, crop_s, batch_size)
    sr = int(encoder.sample_rate)
    min_samples = max(1, int(encoder.min_samples))
    emb_dim = int(encoder.emb_dim)
    crop_len = int(round(crop_s * sr)) if mode == "crop" else None
    if crop_len is not None and crop_len < min_samples:
        raise ValueError(f"crop_s={crop_s} s is {crop_len} samples, shorter than the encoder's min_samples="
                         f"{min_samples} ({encoder.model_id})")

    utt_ids = manifest_df["utt_id"].astype(str).to_numpy()
    spk_ids = manifest_df["speaker_id"].astype(str).to_numpy()
    segments = manifest_segments(manifest_df)  # (path, start, stop): the optional segment columns, honoured
    paths = np.asarray([segment_label(*seg) for seg in segments], dtype=object)  # for messages
    n = len(utt_ids)
    if mode == "full" and "duration_s" in manifest_df.columns:
        # Similar lengths per batch: little zero-padding, so little wasted compute. Stable sort keeps ties in
        # manifest order, so the batches (and any batch-dependent rounding) are reproducible.
        dur = np.nan_to_num(np.asarray(manifest_df["duration_s"], dtype=float), nan=0.0)
        order = np.argsort(dur, kind="stable")
    else:
        order = np.arange(n)

    out = np.empty((n, emb_dim), dtype=np.float32)
    n_crop_padded = 0
    bar = tqdm(total=n, desc=desc or f"embed {mode} [{encoder.model_id}]", unit="utt", disable=not progress)
    try:
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            wavs = []
            for i in idx:
                p, a, b = segments[i]
                x = load_audio(p, target_sr=sr, min_dur_s=0.0, start=a, stop=b)  # short clips: padded, not refused
                if transform is not None:
                    x = np.asarray(transform(x, int(i)), dtype=np.float32)
                if len(x) < min_samples:
                    logger.warning("%s: %d samples (%.3f s) is shorter than min_samples=%d of %s; repeat-padding it",
                                   paths[i], len(x), len(x) / sr, min_samples, encoder.model_id)
                    x = _repeat_pad(x, min_samples)
                if crop_len is not None:
                    n_crop_padded += len(x) < crop_len
                    x = _centre_crop(x, crop_len)
                wavs.append(x)
            longest = max(len(x) for x in wavs)
            batch = np.zeros((len(wavs), longest), dtype=np.float32)
            for j, x in enumerate(wavs):
                batch[j, :len(x)] = x
            rel = torch.tensor([len(x) / longest for x in wavs], dtype=torch.float32)
            try:
                with torch.no_grad():
                    emb = encoder.embed(torch.from_numpy(batch), rel)
            except Exception as e:
                what = f"encoder {encoder.model_id} failed on utterance(s) {_describe(utt_ids[idx])} ({paths[idx[0]]}"
                what += ", ...)" if len(idx) > 1 else ")"
                raise (ValueError if isinstance(e, ValueError) else RuntimeError)(f"{what}: {e}") from e
            emb = emb.detach().cpu().numpy() if hasattr(emb, "detach") else np.asarray(emb)
            if emb.shape != (len(idx), emb_dim):
                raise ValueError(f"encoder {encoder.model_id} returned shape {emb.shape} for {len(idx)} utterance(s),"
                                 f" expected ({len(idx)}, {emb_dim})")
            bad = ~np.isfinite(emb).all(axis=1)
            if bad.any():
                k = idx[np.flatnonzero(bad)]
                raise ValueError(f"encoder {encoder.model_id} returned a NaN/inf embedding for utterance(s) "
                                 f"{_describe(utt_ids[k])} ({paths[k[0]]}); refusing to return it")
            out[idx] = emb
            bar.update(len(idx))
    finally:
        bar.close()
    if n_crop_padded:
        logger.warning("%d of %d utterances were shorter than crop_s=%g s and were repeat-padded to it",
                       n_crop_padded, n, crop_s)
    return EmbeddingSet(out, utt_ids, spk_ids, str(encoder.model_id))


def real_time_factor(encoder, *, seconds: float = 3.0, repeats: int = 5, batch: int = 1) -> float:
    """Processing time / audio time of ``encoder.embed`` on random audio (best of ``repeats``, after a warm-up).

    Lower is faster: 0.01 means 100 s of audio per second. Uses however many threads torch is set to;
    call ``torch.set_num_threads(1)`` first for a single-core figure.

    Parameters
    ----------
    encoder : object
        Speaker encoder following the protocol in this module's docstring.
    seconds : float
        Duration of each random clip.
    repeats : int
        Timed calls; the fastest counts (the others measure interference from other processes).
    batch : int
        Clips per call; audio time is ``seconds * batch``.

    Examples
    --------
    >>> import torch
    >>> class Null:
    ...     model_id, sample_rate, min_samples, emb_dim = "null@0", 16000, 1, 2
    ...     def embed(self, wavs, lengths):
    ...         return torch.zeros(len(wavs), 2)
    >>> 0 <= real_time_factor(Null(), seconds=0.5, repeats=2) < 1
    True
    """
    import torch

    if not (np.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    if repeats < 1 or batch < 1:
        raise ValueError(f"repeats and batch must be >= 1, got {repeats!r} and {batch!r}")
    n = max(int(round(seconds * encoder.sample_rate)), int(encoder.min_samples))
    rng = np.random.default_rng(0)
    wavs = torch.from_numpy((0.1 * rng.standard_normal((batch, n))).astype(np.float32))
    lengths = torch.ones(batch)
    best = math.inf
    with torch.no_grad():
        encoder.embed(wavs, lengths)  # warm-up: first-call allocations and lazy initialisation
        for _ in range(repeats):
            t = time.perf_counter()
            encoder.embed(wavs, lengths)
            best = min(best, time.perf_counter() - t)
    return best / (n / encoder.sample_rate * batch)


def extract_splits(manifest_df, encoder, splits, out_dir, *, train_utts_per_speaker: int = 0, mode: str = "full",
                   crop_s: float = 3.0, batch_size: int = 16, desc: str = "") -> dict:
    """Stage 03 for one model: embed each manifest split of ``splits`` into ``out_dir/<split>.npz``.

    For the ``train`` split only the first ``train_utts_per_speaker`` utterances of each speaker are embedded
    (0: all; they are extra alignment pairs, and VoxCeleb's training set is large). Returns
    ``{split: EmbeddingSet}``.
    """
    from pathlib import Path

    from nessa_lib.data.splits import first_utterances
    from nessa_lib.embeddings import save_embeddings

    sets = {}
    for split in splits:
        rows = manifest_df[manifest_df.split == split]
        if split == "train":
            rows = first_utterances(rows, train_utts_per_speaker)
        sets[split] = extract_embeddings(rows, encoder, mode=mode, crop_s=crop_s, batch_size=batch_size,
                                         desc=f"{desc} {split}".strip())
        save_embeddings(Path(out_dir) / f"{split}.npz", sets[split])
    return sets


def extract_condition(manifest_df, encoder, out_path, *, split: str = "eval", condition: str = "aug",
                      utts_per_speaker: int = 4, seed: int = 0, batch_size: int = 16, desc: str = ""):
    """Embed the first ``utts_per_speaker`` utterances of each speaker of ``split`` after degrading them with the
    :mod:`nessa_lib.data.synth.augment` preset ``condition``: a held-out recording condition for deployment
    checks (:mod:`nessa_lib.deployment`). Row ``i`` is degraded with ``default_rng([seed, i])``, so every model
    embeds the same degraded audio. Saved to ``out_path``; returns the :class:`~nessa_lib.embeddings.EmbeddingSet`.
    """
    from nessa_lib.data.splits import first_utterances
    from nessa_lib.data.synth.augment import augment
    from nessa_lib.embeddings import save_embeddings

    rows = first_utterances(manifest_df[manifest_df.split == split], utts_per_speaker).reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"extract_condition: the manifest has no utterance in split {split!r}")

    def degrade(x, i):
        return augment(x, np.random.default_rng([seed, i]), condition)

    out = extract_embeddings(rows, encoder, mode="full", batch_size=batch_size, transform=degrade,
                             desc=f"{desc} {split}+{condition}".strip())
    save_embeddings(out_path, out)
    return out
