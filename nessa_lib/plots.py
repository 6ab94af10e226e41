"""Figures for the stage notebooks. matplotlib/seaborn are imported inside the functions (no import cost
for library users who never plot). Every function returns the ``Figure`` and, given ``path``, saves a PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _save(fig, path):
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def durations(df: pd.DataFrame, path=None):
    """Histogram of utterance durations per split.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> df = pd.DataFrame({"duration_s": [3.0, 4.0, 5.0], "split": ["train", "eval", "eval"]})
    >>> type(durations(df)).__name__
    'Figure'
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(6, 3))
    sns.histplot(data=df.assign(split=df["split"].replace("", "unused")), x="duration_s", hue="split",
                 element="step", stat="count", bins=30, ax=ax)
    ax.set_xlabel("duration (s)")
    ax.set_title("Utterance durations by split")
    return _save(fig, path)


def spectrograms(waves: dict, sr: int = 16000, path=None):
    """Log-magnitude spectrograms, one panel per ``{title: waveform}`` item.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig = spectrograms({"a": np.zeros(16000), "b": np.ones(8000)})
    >>> len(fig.axes) >= 2
    True
    """
    import matplotlib.pyplot as plt
    from scipy.signal import spectrogram

    n = len(waves)
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3), squeeze=False, sharey=True)
    for ax, (title, w) in zip(axes[0], waves.items()):
        f, t, s = spectrogram(np.asarray(w, dtype=np.float64), fs=sr, nperseg=400, noverlap=240)
        ax.pcolormesh(t, f / 1000, 10 * np.log10(s + 1e-10), shading="auto", cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time (s)")
    axes[0][0].set_ylabel("frequency (kHz)")
    fig.tight_layout()
    return _save(fig, path)


def voice_parameters(voices: pd.DataFrame, columns, path=None):
    """Histograms of synthetic voice parameters across speakers (one panel per column, colour = sex).

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> v = pd.DataFrame({"vtl_factor": [0.9, 1.1], "pitch_base": [80, 120], "sex": ["m", "f"]})
    >>> len(voice_parameters(v, ["vtl_factor", "pitch_base"]).axes)
    2
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    columns = list(columns)
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 2.8), squeeze=False)
    hue = "sex" if "sex" in voices.columns else None
    for ax, col in zip(axes[0], columns):
        sns.histplot(data=voices, x=col, hue=hue, element="step", bins=20, ax=ax, legend=ax is axes[0][0])
    fig.tight_layout()
    return _save(fig, path)


def score_distributions(scores, labels, title: str = "", path=None):
    """Target vs non-target score densities.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> type(score_distributions([0.1, 0.9, 0.2, 0.8], [0, 1, 0, 1])).__name__
    'Figure'
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    d = pd.DataFrame({"score": np.asarray(scores, dtype=float),
                      "trial": np.where(np.asarray(labels) == 1, "target", "non-target")})
    fig, ax = plt.subplots(figsize=(5, 3))
    sns.histplot(data=d, x="score", hue="trial", stat="density", common_norm=False, element="step", bins=60, ax=ax)
    ax.set_title(title)
    return _save(fig, path)
