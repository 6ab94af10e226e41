"""A trivial speaker "encoder": statistics of MFCC or log-mel frames per utterance (numpy/scipy only).

It gives a floor for how hard a corpus is: on the default synthetic corpus the mean-MFCC baseline should be
clearly worse than a trained speaker encoder, and worse again under augmentation.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.fft import dct

__all__ = ["log_mel_frames", "mfcc_frames", "frame_stats_embeddings"]


@lru_cache(maxsize=8)
def _mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    def hz2mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel2hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = mel2hz(np.linspace(hz2mel(fmin), hz2mel(fmax), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    fb = np.zeros((n_mels, freqs.size))
    for m in range(n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / max(c - lo, 1e-9)
        down = (hi - freqs) / max(hi - c, 1e-9)
        fb[m] = np.clip(np.minimum(up, down), 0.0, None)
    return fb


def log_mel_frames(x, sr: int = 16000, n_mels: int = 40, win_s: float = 0.025, hop_s: float = 0.010,
                   fmin: float = 20.0, fmax: float | None = None) -> np.ndarray:
    """Log mel filterbank energies, shape (n_frames, n_mels), Hamming window, pre-emphasis 0.97.

    Examples
    --------
    >>> log_mel_frames(np.random.default_rng(0).standard_normal(16000)).shape
    (98, 40)
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    win, hop = int(round(win_s * sr)), int(round(hop_s * sr))
    if x.size < win:
        x = np.pad(x, (0, win - x.size))
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])
    n = 1 + (x.size - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    frames = x[idx] * np.hamming(win)
    n_fft = 1 << int(np.ceil(np.log2(win)))
    power = np.abs(np.fft.rfft(frames, n_fft, axis=1)) ** 2
    fb = _mel_filterbank(int(sr), n_fft, int(n_mels), float(fmin), float(fmax or sr / 2))
    return np.log(power @ fb.T + 1e-10)


def mfcc_frames(x, sr: int = 16000, n_mfcc: int = 20, n_mels: int = 40, **kwargs) -> np.ndarray:
    """MFCCs (DCT-II of :func:`log_mel_frames`), shape (n_frames, n_mfcc), ``c0`` first.

    Examples
    --------
    >>> mfcc_frames(np.random.default_rng(0).standard_normal(8000)).shape
    (48, 20)
    """
    return dct(log_mel_frames(x, sr, n_mels=n_mels, **kwargs), type=2, norm="ortho", axis=1)[:, :n_mfcc]


def _active(feats: np.ndarray, energy: np.ndarray, drop_db: float = 40.0) -> np.ndarray:
    """Frames within ``drop_db`` of the loudest (crude energy VAD), at least one frame."""
    keep = energy > energy.max() - drop_db / 10.0 * np.log(10.0)
    return feats[keep] if keep.any() else feats


def frame_stats_embeddings(waves, sr: int = 16000, features: str = "mfcc", stats=("mean",), n_mfcc: int = 20,
                           n_mels: int = 40, drop_c0: bool = True, vad: bool = True) -> np.ndarray:
    """Baseline speaker embeddings: per-utterance statistics of MFCC or log-mel frames.

    Parameters
    ----------
    waves : sequence of 1-D arrays
        Waveforms at ``sr``.
    features : {'mfcc', 'logmel'}
        Frame features.
    stats : sequence of {'mean', 'std'}
        Statistics concatenated, in this order.
    n_mfcc, n_mels : int
        Feature sizes.
    drop_c0 : bool
        Drop the energy coefficient ``c0`` of MFCCs (level is not speaker identity).
    vad : bool
        Use only frames within 40 dB of the loudest one.

    Returns
    -------
    numpy.ndarray, float32, shape (len(waves), d)
        ``d = len(stats) * (n_mfcc - drop_c0)`` for MFCCs, ``len(stats) * n_mels`` for log-mels.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> e = frame_stats_embeddings([rng.standard_normal(16000), rng.standard_normal(9000)], stats=("mean", "std"))
    >>> e.shape, e.dtype
    ((2, 38), dtype('float32'))
    """
    if features not in ("mfcc", "logmel"):
        raise ValueError(f"unknown features {features!r}; valid: mfcc, logmel")
    bad = [s for s in stats if s not in ("mean", "std")]
    if bad or not stats:
        raise ValueError(f"stats must be a non-empty subset of ('mean', 'std'), got {stats!r}")
    waves = list(waves)
    if not waves:
        raise ValueError("no waveforms given")
    out = []
    for i, w in enumerate(waves):
        w = np.asarray(w, dtype=np.float64)
        if w.ndim != 1 or w.size == 0 or not np.isfinite(w).all():
            raise ValueError(f"waveform {i} must be a non-empty finite 1-D array, got shape {w.shape}")
        lm = log_mel_frames(w, sr, n_mels=n_mels)
        energy = np.log(np.exp(lm).sum(axis=1))
        f = dct(lm, type=2, norm="ortho", axis=1)[:, :n_mfcc] if features == "mfcc" else lm
        if features == "mfcc" and drop_c0:
            f = f[:, 1:]
        if vad:
            f = _active(f, energy)
        parts = [f.mean(axis=0) if s == "mean" else f.std(axis=0) for s in stats]
        out.append(np.concatenate(parts))
    return np.asarray(out, dtype=np.float32)
