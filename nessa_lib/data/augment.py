"""Session variability for any waveform (numpy/scipy only, every draw from the ``rng`` passed in): the synthetic
corpus's recording conditions (:mod:`nessa_lib.data.synth.corpus`) and stage 03's degraded held-out condition.

The chain, in order: speed change (resampling, +-5 %), random equaliser (peaking and shelving biquads),
reverberation (exponentially decaying noise room impulse response with a random RT60), telephone band
(300-3400 Hz, optionally 8-bit mu-law), additive noise (white, pink, brown, or babble built from other
voices' audio) at a random SNR, and a random output level. Presets, by name (:data:`PRESETS`):

``clean``
    nothing (the waveform is only converted to float32 and clipped to [-1, 1]);
``mild``
    moderate noise, some reverberation and EQ;
``aug``
    heavy noise, long reverberation, strong EQ, frequent telephone channel.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

__all__ = [
    "PRESETS",
    "augment",
    "add_noise",
    "colored_noise",
    "babble_noise",
    "reverberate",
    "random_eq",
    "telephone",
    "change_speed",
]

#: Probability and range of every step for each preset.
PRESETS: dict[str, dict] = {
    "clean": {},
    "mild": {
        "speed": (0.3, 0.03),              # probability, max relative change
        "eq": (0.6, 2, 5.0),               # probability, max bands, max |gain| dB
        "reverb": (0.5, 0.15, 0.6, 0.0, 12.0),  # probability, RT60 range s, DRR range dB
        "telephone": (0.1, 0.3),           # probability, probability of mu-law given telephone
        "noise": (0.85, 12.0, 30.0, (0.3, 0.25, 0.15, 0.3)),  # prob, SNR range dB, p(white, pink, brown, babble)
        "level": (-12.0, -1.0),            # output peak level range, dBFS
    },
    "aug": {
        "speed": (0.6, 0.05),
        "eq": (0.9, 3, 8.0),
        "reverb": (0.7, 0.2, 0.9, -3.0, 10.0),
        "telephone": (0.25, 0.5),
        "noise": (1.0, 4.0, 22.0, (0.25, 0.25, 0.15, 0.35)),
        "level": (-20.0, -1.0),
    },
}


def _check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _as_wave(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"waveform must be a non-empty 1-D array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("waveform contains NaN/inf")
    return x


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x)) + 1e-20))


def colored_noise(n: int, rng: np.random.Generator, kind: str = "white") -> np.ndarray:
    """Unit-RMS noise of ``n`` samples with a white, pink (1/f) or brown (1/f^2) power spectrum.

    Examples
    --------
    >>> x = colored_noise(16000, np.random.default_rng(0), "pink")
    >>> x.shape, round(float(np.sqrt(np.mean(x ** 2))), 3)
    ((16000,), 1.0)
    """
    _check_rng(rng)
    exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}.get(kind)
    if exponent is None:
        raise ValueError(f"unknown noise kind {kind!r}; valid: white, pink, brown")
    from scipy import fft as sfft

    w = rng.standard_normal(int(n))
    if exponent:
        m = sfft.next_fast_len(int(n), real=True)
        spec = sfft.rfft(w, m)
        f = np.arange(spec.size, dtype=np.float64)
        f[0] = 1.0
        w = sfft.irfft(spec / f**exponent, m)[: int(n)]
        w -= w.mean()
    return w / _rms(w)


def babble_noise(n: int, sources, rng: np.random.Generator, n_talkers: tuple[int, int] = (3, 7)) -> np.ndarray:
    """Unit-RMS babble: the sum of a few randomly chosen, randomly shifted ``sources`` waveforms.

    Examples
    --------
    >>> src = [np.random.default_rng(i).standard_normal(8000) for i in range(4)]
    >>> babble_noise(20000, src, np.random.default_rng(0)).shape
    (20000,)
    """
    _check_rng(rng)
    sources = [np.asarray(s, dtype=np.float64) for s in (sources or []) if np.size(s) > 0]
    if not sources:
        raise ValueError("babble noise needs at least one source waveform")
    k = int(rng.integers(n_talkers[0], n_talkers[1] + 1))
    out = np.zeros(int(n))
    for _ in range(k):
        s = sources[int(rng.integers(len(sources)))]
        s = s / _rms(s)
        reps = int(np.ceil((n + s.size) / s.size)) + 1
        tiled = np.tile(s, reps)
        start = int(rng.integers(s.size))
        out += tiled[start:start + int(n)] * float(np.exp(rng.normal(0, 0.3)))
    return out / _rms(out)


def add_noise(x, rng: np.random.Generator, snr_db: float, kind: str = "white", babble=None) -> np.ndarray:
    """Add ``kind`` noise (white, pink, brown or babble from the ``babble`` waveforms) at ``snr_db``.

    The SNR is measured against the RMS of the active (non-silent) part of ``x``.

    Examples
    --------
    >>> x = np.sign(np.sin(np.arange(16000) / 5.0 + 0.1))
    >>> y = add_noise(x, np.random.default_rng(0), 10.0, "pink")
    >>> float(round(10 * np.log10(np.mean(x ** 2) / np.mean((y - x) ** 2)), 1))
    10.0
    """
    x = _as_wave(x)
    _check_rng(rng)
    noise = babble_noise(x.size, babble, rng) if kind == "babble" else colored_noise(x.size, rng, kind)
    frame = np.abs(x)
    active = x[frame > 0.05 * frame.max()] if frame.max() > 0 else x
    return x + noise * _rms(active) * 10.0 ** (-snr_db / 20.0)


def reverberate(x, rng: np.random.Generator, rt60: float, drr_db: float = 6.0, sr: int = 16000) -> np.ndarray:
    """Convolve with a synthetic room impulse response: direct path plus decaying noise tail.

    The tail is Gaussian noise with an exponential envelope reaching -60 dB after ``rt60`` seconds, low-pass
    filtered a little more as it decays; ``drr_db`` is the direct-to-reverberant energy ratio.
    The output keeps the input's length and RMS.

    Examples
    --------
    >>> y = reverberate(np.random.default_rng(1).standard_normal(8000), np.random.default_rng(0), 0.4)
    >>> y.shape
    (8000,)
    """
    x = _as_wave(x)
    _check_rng(rng)
    if rt60 <= 0:
        return x.copy()
    n = max(int(rt60 * 1.2 * sr), 16)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    # frequency-dependent decay: blend towards a low-passed copy later in the tail
    b, a = signal.butter(1, 3000 / (sr / 2))
    lp = signal.lfilter(b, a, tail)
    mix = np.clip(t / rt60, 0, 1)
    tail = (1 - mix) * tail + mix * lp
    onset = int(rng.integers(int(0.002 * sr), int(0.02 * sr)))  # first reflections after the direct sound
    tail[:onset] = 0.0
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / (np.sum(tail**2) + 1e-20))
    rir = tail
    rir[0] = 1.0
    y = signal.fftconvolve(x, rir)[: x.size]
    return y * (_rms(x) / _rms(y))


def _peaking(f0, gain_db, q, sr):
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * f0 / sr
    alpha = np.sin(w) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w), 1 - alpha / a]
    return np.array(b) / den[0], np.array(den) / den[0]


def _shelf(f0, gain_db, sr, high):
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * f0 / sr
    alpha = np.sin(w) / 2 * np.sqrt(2)  # shelf slope 1
    c, s2 = np.cos(w), 2 * np.sqrt(a) * alpha
    if high:
        b = [a * ((a + 1) + (a - 1) * c + s2), -2 * a * ((a - 1) + (a + 1) * c), a * ((a + 1) + (a - 1) * c - s2)]
        den = [(a + 1) - (a - 1) * c + s2, 2 * ((a - 1) - (a + 1) * c), (a + 1) - (a - 1) * c - s2]
    else:
        b = [a * ((a + 1) - (a - 1) * c + s2), 2 * a * ((a - 1) - (a + 1) * c), a * ((a + 1) - (a - 1) * c - s2)]
        den = [(a + 1) + (a - 1) * c + s2, -2 * ((a - 1) + (a + 1) * c), (a + 1) + (a - 1) * c - s2]
    return np.array(b) / den[0], np.array(den) / den[0]


def random_eq(x, rng: np.random.Generator, n_bands: int = 3, max_gain_db: float = 6.0, sr: int = 16000) -> np.ndarray:
    """Apply ``n_bands`` random biquads: peaking filters (log-uniform 150-6000 Hz) and low/high shelves.

    Examples
    --------
    >>> random_eq(np.ones(100), np.random.default_rng(0)).shape
    (100,)
    """
    x = _as_wave(x)
    _check_rng(rng)
    y = x
    for _ in range(int(n_bands)):
        g = float(rng.uniform(-max_gain_db, max_gain_db))
        kind = rng.choice(["peak", "peak", "low", "high"])
        if kind == "peak":
            f0 = float(np.exp(rng.uniform(np.log(150), np.log(6000))))
            b, a = _peaking(f0, g, float(rng.uniform(0.5, 3.0)), sr)
        else:
            f0 = float(rng.uniform(100, 400)) if kind == "low" else float(rng.uniform(2500, 6000))
            b, a = _shelf(f0, g, sr, high=kind == "high")
        y = signal.lfilter(b, a, y)
    return y


def telephone(x, rng: np.random.Generator | None = None, mulaw: bool = False, sr: int = 16000) -> np.ndarray:
    """Telephone channel: 300-3400 Hz band-pass, optionally 8-bit mu-law companding.

    Examples
    --------
    >>> telephone(np.random.default_rng(0).standard_normal(1600), mulaw=True).shape
    (1600,)
    """
    x = _as_wave(x)
    sos = signal.butter(4, [300, 3400], btype="bandpass", fs=sr, output="sos")
    y = signal.sosfilt(sos, x)
    if mulaw:
        peak = np.abs(y).max() + 1e-12
        v = y / peak
        mu = 255.0
        c = np.sign(v) * np.log1p(mu * np.abs(v)) / np.log1p(mu)
        c = np.round(c * 127) / 127  # 8-bit code
        y = np.sign(c) * ((1 + mu) ** np.abs(c) - 1) / mu * peak
    return y


def change_speed(x, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (tempo and pitch), by polyphase resampling.

    Examples
    --------
    >>> change_speed(np.zeros(1000), 1.05).shape
    (953,)
    """
    from fractions import Fraction

    x = _as_wave(x)
    if factor <= 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    fr = Fraction(float(factor)).limit_denominator(200)
    if fr == 1:
        return x.copy()
    return signal.resample_poly(x, fr.denominator, fr.numerator)


def augment(x, rng: np.random.Generator, preset: str = "mild", *, babble=None, sr: int = 16000) -> np.ndarray:
    """Apply the session-variability chain of ``preset`` to one waveform.

    Parameters
    ----------
    x : array_like, shape (n,)
        Waveform, float in [-1, 1].
    rng : numpy.random.Generator
        Drives every random choice (pass one generator per utterance for reproducibility).
    preset : {'clean', 'mild', 'aug'}
        See :data:`PRESETS`.
    babble : sequence of arrays, optional
        Other voices' audio for babble noise; without it babble is replaced by pink noise.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray, float32, values in [-1, 1]

    Examples
    --------
    >>> x = 0.5 * np.sin(np.arange(16000) / 3.0)
    >>> y = augment(x, np.random.default_rng(0), "aug")
    >>> y.dtype, bool(np.abs(y).max() <= 1.0)
    (dtype('float32'), True)
    >>> augment(x, np.random.default_rng(0), "loud")
    Traceback (most recent call last):
    ...
    ValueError: unknown augmentation preset 'loud'; valid: clean, mild, aug
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}; valid: {', '.join(PRESETS)}")
    x = _as_wave(x)
    _check_rng(rng)
    p = PRESETS[preset]
    if not p:
        return np.clip(x, -1.0, 1.0).astype(np.float32)
    # draw every decision up front, in a fixed order, so presets stay comparable
    prob, dmax = p["speed"]
    speed = float(rng.uniform(1 - dmax, 1 + dmax)) if rng.random() < prob else 1.0
    prob, max_bands, max_gain = p["eq"]
    eq_bands = int(rng.integers(1, max_bands + 1)) if rng.random() < prob else 0
    prob, rt_lo, rt_hi, drr_lo, drr_hi = p["reverb"]
    rt60 = float(rng.uniform(rt_lo, rt_hi)) if rng.random() < prob else 0.0
    drr = float(rng.uniform(drr_lo, drr_hi))
    prob, p_mu = p["telephone"]
    tel = rng.random() < prob
    mu = bool(rng.random() < p_mu)
    prob, snr_lo, snr_hi, kinds_p = p["noise"]
    noisy = rng.random() < prob
    snr = float(rng.uniform(snr_lo, snr_hi))
    kind = str(rng.choice(["white", "pink", "brown", "babble"], p=np.asarray(kinds_p) / np.sum(kinds_p)))
    if kind == "babble" and not babble:
        kind = "pink"
    level_db = float(rng.uniform(*p["level"]))

    y = change_speed(x, speed) if speed != 1.0 else x
    if eq_bands:
        y = random_eq(y, rng, eq_bands, max_gain, sr)
    if rt60 > 0:
        y = reverberate(y, rng, rt60, drr, sr)
    if noisy:
        y = add_noise(y, rng, snr, kind, babble)
    if tel:  # the channel comes last: noise in the room goes through the phone line too
        y = telephone(y, rng, mu, sr)
    peak = float(np.abs(y).max())
    if peak > 0:
        y = y * (10.0 ** (level_db / 20.0) / peak)
    return np.clip(y, -1.0, 1.0).astype(np.float32)
