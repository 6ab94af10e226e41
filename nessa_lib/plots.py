"""Figures for the stage notebooks. matplotlib/seaborn are imported inside the functions (no import cost
for library users who never plot). Every function returns the ``Figure`` and, given ``path``, saves a PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nessa_lib.io import atomic_path


def _save(fig, path):
    if path is not None:
        path = Path(path)
        with atomic_path(path) as tmp:  # an interrupted stage leaves no half-written figure
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")
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


# The synthetic voice parameters worth a histogram in the data report.
VOICE_COLUMNS = ("vtl_factor", "pitch_base", "pitch_top", "rate_wpm", "roughness", "flutter")


def voice_parameters(voices: pd.DataFrame, columns=VOICE_COLUMNS, path=None):
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

    columns = [c for c in columns if c in voices.columns]  # older corpora lack some parameters
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


# DET plots: NIST-style normal-deviate axes from 0.1 % to 50 %.
_DET_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
# Rates of exactly 0 or 1 have infinite normal deviates; clip them just outside the plotted range.
_DET_CLIP = 1e-4


def _probit(p):
    from scipy.stats import norm

    return norm.ppf(np.clip(np.asarray(p, dtype=float), _DET_CLIP, 1 - _DET_CLIP))


def _pct(p: float) -> str:
    return f"{100 * p:g}"


def det_curves(curves: dict, title: str = "", path=None, eer_intervals: dict | None = None):
    """DET curves (FRR against FAR) on normal-deviate axes, ticks labelled in % from 0.1 to 50.

    Parameters
    ----------
    curves : dict of str to (far, frr)
        Label to the rates of each operating point (fractions), e.g. the first two outputs of
        :func:`nessa_lib.evaluation.metrics.det_curve`. Rates of 0 and 1 are clipped to stay finite.
    title : str
    path : path-like, optional
        Save a PNG there.
    eer_intervals : dict of str to (float, float, float), optional
        Label to ``(eer, lo, hi)`` (fractions): shown in the legend as ``EER x % [lo-hi]``.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig = det_curves({"a": ([1.0, 0.1, 0.0], [0.0, 0.2, 1.0])})
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()][:3]
    ['0.1', '0.2', '0.5']
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    for label, (far, frr) in curves.items():
        shown = label
        if eer_intervals and label in eer_intervals:
            e, lo, hi = (100 * v for v in eer_intervals[label])
            shown = f"{label}: EER {e:.2f} % [{lo:.2f}-{hi:.2f}]"
        ax.plot(_probit(far), _probit(frr), label=shown, lw=1.4)
    ticks = _probit(_DET_TICKS)
    lim = (ticks[0], ticks[-1])
    ax.plot(lim, lim, color="0.6", lw=0.8, ls=":", label="EER line")  # FAR = FRR
    ax.set_xticks(ticks, [_pct(p) for p in _DET_TICKS])
    ax.set_yticks(ticks, [_pct(p) for p in _DET_TICKS])
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_xlabel("false acceptance rate (%)")
    ax.set_ylabel("false rejection rate (%)")
    ax.grid(True, color="0.9")
    ax.set_title(title)
    ax.legend(fontsize=7 if eer_intervals else 8)
    return _save(fig, path)


def gain_recovered_bars(tables: dict, path=None):
    """Bars of ``gain_recovered`` per alignment method (x) and pair (colour), in %, with lines at 0, 60 and 100 %.

    Parameters
    ----------
    tables : dict of str to DataFrame
        Pair name to its :func:`nessa_lib.evaluation.tables.evaluate_pair` table; the symmetric rows are left out.
    path : path-like, optional

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> t = pd.DataFrame({"gain_recovered": [0.0, 1.0, 0.7]}, index=["symmetric X/X", "symmetric Y/Y", "nessa-m2"])
    >>> type(gain_recovered_bars({"p": t})).__name__
    'Figure'
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = [(pair, method, float(t.loc[method, "gain_recovered"]),
             float(t.loc[method, "gain_recovered_lo"]) if "gain_recovered_lo" in t else np.nan,
             float(t.loc[method, "gain_recovered_hi"]) if "gain_recovered_hi" in t else np.nan)
            for pair, t in tables.items() for method in t.index if not str(method).startswith("symmetric")]
    d = pd.DataFrame(rows, columns=["pair", "method", "gain_recovered", "lo", "hi"])
    d[["gain_recovered", "lo", "hi"]] *= 100  # figures speak percent; the tables and metrics files keep fractions
    methods, pairs = list(dict.fromkeys(d["method"])), list(dict.fromkeys(d["pair"]))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(methods) + 2) + 1.8, 3.4))
    width = 0.8 / max(len(pairs), 1)
    colors = sns.color_palette(n_colors=len(pairs))
    for k, (pair, color) in enumerate(zip(pairs, colors)):
        sub = d[d["pair"] == pair].set_index("method").reindex(methods)
        xs = np.arange(len(methods)) - 0.4 + width * (k + 0.5)
        ax.bar(xs, sub["gain_recovered"], width=width, color=color, label=pair)
        if sub["lo"].notna().any():  # 95 % speaker-bootstrap interval of each bar
            ax.vlines(xs, sub["lo"], sub["hi"], color="0.15", lw=1.0)
    ax.set_xticks(np.arange(len(methods)), methods)
    with_ci = d["lo"].notna().any()
    ax.set_title("Share of the symmetric update's EER gain kept" + (", 95 % speaker intervals" if with_ci else "")
                 + " (60 % = the paper's bar)", fontsize=9 if with_ci else None)
    for y, style in ((0.0, "-"), (60.0, "--"), (100.0, ":")):
        ax.axhline(y, color="0.3", lw=0.9, ls=style)
    ax.set_ylabel("gain recovered (%)")
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=30)
    # Outside the axes: bars of any height (a downgrade pair's can pass 200 %) stay readable.
    ax.legend(fontsize=7, title="pair", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, path)


def ablation_curves(df: pd.DataFrame, path=None):
    """EER and gain recovered against the number of alignment pairs, one line per utterances-per-speaker (and line
    style per method when ``df`` has a ``method`` column with several).

    ``df`` is :func:`nessa_lib.evaluation.ablation.alignment_ablation`'s table (``n_pairs``, ``utts_per_speaker``, ``eer``,
    ``gain_recovered``; ``utts_per_speaker`` -1 means all); ``eer_lo``/``eer_hi`` and ``gain_recovered_lo``/
    ``_hi``, where present, are drawn as interval bars.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> df = pd.DataFrame({"n_pairs": [10, 20, 20, 40], "utts_per_speaker": [2, 2, 4, 4],
    ...                    "eer": [0.2, 0.1, 0.15, 0.08], "gain_recovered": [0.1, 0.5, 0.3, 0.7]})
    >>> len(ablation_curves(df).axes)
    2
    """
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    d = df.assign(utts=df["utts_per_speaker"].map(lambda u: "all" if u == -1 else str(u)),
                  eer=100 * df["eer"], gain_recovered=100 * df["gain_recovered"])  # percent in figures
    # Several methods (stage 05's ablation_methods): one line style per method, one colour per utterance setting.
    style = "method" if "method" in d and d["method"].nunique() > 1 else None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3) if style is None else (10, 3.8))
    for ax, col in zip(axes, ("eer", "gain_recovered")):
        sns.lineplot(data=d, x="n_pairs", y=col, hue="utts", style=style, marker="o", ax=ax, legend=ax is axes[0])
        if f"{col}_lo" in df:  # 95 % speaker-bootstrap intervals as vertical bars
            ax.vlines(d["n_pairs"], 100 * df[f"{col}_lo"], 100 * df[f"{col}_hi"], color="0.35", lw=0.9)
        ax.set_xscale("log")
        # Plain numbers on the log axis; matplotlib's minor labels (3x10^2 ...) collide on a short decade.
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("alignment pairs (log scale)")
    axes[0].set_ylabel("EER (%)")
    axes[1].set_ylabel("gain recovered (%)")
    for y in (0.0, 60.0, 100.0):
        axes[1].axhline(y, color="0.6", lw=0.8, ls=":")
    if axes[0].get_legend() is not None and style is None:
        axes[0].get_legend().set_title("utts / speaker")
    fig.tight_layout()
    return _save(fig, path)


def learning_curve_axes(ax, series, targets=(0.6, 0.8), n_right=None):
    """Draw learning curves on ``ax``: measured shares with intervals, each fitted curve and its bootstrap band.

    Parameters
    ----------
    ax : matplotlib Axes
    series : list of dict
        One per curve: ``label``, ``n`` (voices), ``share``, ``lo``, ``hi`` (arrays, fractions), ``curve`` (a
        :class:`~nessa_lib.evaluation.learning_curve.SaturatingCurve`) and ``round_curves`` (its bootstrap fits).
    targets : sequence of float
        Target shares drawn as dotted lines.
    n_right : float, optional
        Right end of the curves (default twice the largest size measured).

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from nessa_lib.evaluation.learning_curve import SaturatingCurve
    >>> c = SaturatingCurve(0.9, 3.0, 0.5)
    >>> fig, ax = plt.subplots()
    >>> n = np.array([25.0, 50, 100, 200])
    >>> learning_curve_axes(ax, [dict(label="m", n=n, share=c(n), lo=c(n) - 0.1, hi=c(n) + 0.1, curve=c,
    ...                                 round_curves=[c, c])])
    >>> ax.get_xscale()
    'log'
    """
    import matplotlib.ticker as mticker

    n_all = np.concatenate([np.asarray(s["n"], dtype=float) for s in series])
    n_max = float(n_all.max())
    grid = np.geomspace(float(n_all.min()), float(n_right or 2 * n_max), 200)
    for i, s in enumerate(series):
        color = f"C{i}"
        # The 95 % band of the bootstrap curves (learning_curve.curve_band; not imported: every stage imports
        # this module, and the fitting code would become a dependency of all of them).
        lo, hi = np.percentile(np.array([c(grid) for c in s["round_curves"]]), [2.5, 97.5], axis=0)
        ax.fill_between(grid, 100 * lo, 100 * hi, color=color, alpha=0.15, lw=0)
        ax.plot(grid, 100 * s["curve"](grid), color=color, label=f"{s['label']} (fitted curve, 95 % band)")
        share = np.asarray(s["share"], dtype=float)
        yerr = 100 * np.abs(np.vstack([share - np.asarray(s["lo"]), np.asarray(s["hi"]) - share]))
        ax.errorbar(s["n"], 100 * share, yerr=yerr, fmt="o", color=color, capsize=3)
    for tgt in targets:
        ax.axhline(100 * tgt, color="grey", ls=":", lw=1)
    ax.axvline(n_max, color="grey", ls="--", lw=1, label=f"measured up to {n_max:,.0f} voices")
    ax.set_xscale("log")
    ax.set_xticks(sorted(set(n_all.tolist())))
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_locator(mticker.NullLocator())
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    ax.set_xlabel("paired voices used to fit")
    ax.set_ylabel("share of the gain recovered (%)")
    ax.set_ylim(max(-100, ax.get_ylim()[0]), min(150, ax.get_ylim()[1]))
    ax.legend(fontsize=8, loc="lower right")


def ablation_learning_curves(ablation: pd.DataFrame, curves: dict, targets=(0.6, 0.8), path=None):
    """The ablation's learning curves: one panel per utterances-per-voice setting, one curve per method.

    ``ablation`` and ``curves`` are :func:`nessa_lib.stages.evaluate.ablation_study`'s; a series without a curve
    (too few sizes) is left out. Returns the figure, or ``None`` when no series has a curve.

    Examples
    --------
    >>> ablation_learning_curves(pd.DataFrame(columns=["method", "utts_per_speaker"]), {}) is None
    True
    """
    import matplotlib.pyplot as plt

    settings = sorted({u for _, u in curves}, key=lambda u: (u == -1, u))
    if not settings:
        return None
    fig, axes = plt.subplots(1, len(settings), figsize=(6.2 * len(settings), 4.4), squeeze=False)
    for ax, u in zip(axes[0], settings):
        series = []
        for (method, uu), f in curves.items():
            if uu != u:
                continue
            part = ablation[(ablation["method"] == method) & (ablation["utts_per_speaker"] == u)]
            part = part.drop_duplicates("n_speakers_used")
            series.append(dict(label=method, n=part["n_speakers_used"].to_numpy(float),
                               share=part["gain_recovered"].to_numpy(float),
                               lo=part["gain_recovered_lo"].to_numpy(float),
                               hi=part["gain_recovered_hi"].to_numpy(float), curve=f.curve,
                               round_curves=f.round_curves))
        learning_curve_axes(ax, series, targets)
        ax.set_title(f"{'all' if u == -1 else u} utterances per voice")
    fig.tight_layout()
    return _save(fig, path)


def score_distributions_grid(panels: dict, path=None):
    """Target vs non-target score densities side by side, one panel per system (e.g. before/after alignment).

    Parameters
    ----------
    panels : dict of str to (scores, labels)
    path : path-like, optional

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig = score_distributions_grid({"before": ([0.1, 0.2, 0.0, 0.3], [0, 1, 0, 1]),
    ...                                 "after": ([0.1, 0.9, 0.2, 0.8], [0, 1, 0, 1])})
    >>> [a.get_title() for a in fig.axes]
    ['before', 'after']
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3), squeeze=False, sharex=True)
    for i, (ax, (title, (scores, labels))) in enumerate(zip(axes[0], panels.items())):
        d = pd.DataFrame({"score": np.asarray(scores, dtype=float),
                          "trial": np.where(np.asarray(labels) == 1, "target", "non-target")})
        sns.histplot(data=d, x="score", hue="trial", hue_order=["non-target", "target"], stat="density",
                     common_norm=False, element="step", bins=50, ax=ax, legend=i == 0)
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def training_curves(history, columns, title: str = "", path=None):
    """Per-epoch curves of a training history (a list of dicts with an ``epoch`` key), one panel per column.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> h = [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}]
    >>> len(training_curves(h, ["loss"]).axes)
    1
    """
    import matplotlib.pyplot as plt

    df = pd.DataFrame(history)
    columns = [c for c in columns if c in df.columns]
    fig, axes = plt.subplots(1, max(len(columns), 1), figsize=(4 * max(len(columns), 1), 2.8), squeeze=False)
    for ax, col in zip(axes[0], columns):
        ax.plot(df["epoch"], df[col], marker="o")
        ax.set_xlabel("epoch")
        ax.set_title(col)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def text_figure(text: str, path=None):
    """A small figure holding only ``text``: keeps a stage's declared figure when there is nothing to plot.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> type(text_figure("pretrained: not trained here")).__name__
    'Figure'
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 1.2))
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.set_axis_off()
    return _save(fig, path)


def training_report(history, name: str, path=None):
    """The training curves of one encoder, or a note that it is pretrained (the stage always writes its figure).

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> len(training_report([], "resemblyzer").axes)
    1
    """
    if not history:
        return text_figure(f"{name}: pretrained, not trained in this study", path=path)
    cols = [c for c in pd.DataFrame(history).columns if c != "epoch"]
    return training_curves(history, cols, title=name, path=path)


def aligner_training(aligners: dict, label: str, report_dir) -> list:
    """Training and validation loss curves of every trained aligner of ``{name: Aligner}`` (stage 04: one
    method's aligners by pair, titled ``<label>: <name>``), into ``<report_dir>/figures/<name>_training.png``.

    Returns the paths written (aligners without a history, the closed-form ones, have none); the figures are
    closed, so a notebook shows them from these files (``IPython.display.Image``, as stage 04 does).

    Examples
    --------
    >>> import matplotlib, tempfile, types; matplotlib.use("Agg")
    >>> a = types.SimpleNamespace(history=[{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2}])
    >>> [p.name for p in aligner_training({"nessa-m1": a, "linear": types.SimpleNamespace(history=[])}, "x-y",
    ...                                   tempfile.mkdtemp())]
    ['nessa-m1_training.png']
    """
    import matplotlib.pyplot as plt
    from pathlib import Path

    figures = Path(report_dir) / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    written = []
    for name, aligner in aligners.items():
        if aligner.history:
            path = figures / f"{name}_training.png"
            plt.close(training_curves(aligner.history, ["train_loss", "val_loss"], title=f"{label}: {name}",
                                      path=path))
            written.append(path)
    return written
