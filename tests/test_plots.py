"""nessa_lib.plots: every figure function returns a Figure and writes a PNG when given a path."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy.stats import norm  # noqa: E402

from nessa_lib import plots  # noqa: E402
from nessa_lib.evaluation import metrics  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def scores(rng, shift):
    labels = np.repeat([0, 1], 300)
    return rng.normal(size=600) + shift * labels, labels


def is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_det_curves_probit_axes(tmp_path, rng):
    curves = {}
    for name, shift in (("before", 1.0), ("after", 3.0)):
        far, frr, _ = metrics.det_curve(*scores(rng, shift))
        curves[name] = (far, frr)  # includes FAR/FRR of exactly 0 and 1: clipped, not inf
    fig = plots.det_curves(curves, title="toy", path=tmp_path / "det.png")
    assert is_png(tmp_path / "det.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "0.2", "0.5", "1", "2", "5", "10", "20", "50"]
    assert np.allclose(ax.get_xticks(), norm.ppf([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]))
    assert np.allclose(ax.get_xlim(), norm.ppf([0.001, 0.5]))
    lines = [ln for ln in ax.get_lines() if ln.get_label() in curves]
    assert len(lines) == 2 and all(np.isfinite(ln.get_xydata()).all() for ln in lines)
    # Probit axes: the curve point at FAR 10 % sits at the normal deviate of 0.1.
    assert np.isclose(plots._probit([0.1])[0], norm.ppf(0.1))


def test_gain_recovered_bars(tmp_path):
    idx = ["symmetric X/X", "symmetric Y/Y", "linear", "nessa-m2"]
    tables = {"A->B": pd.DataFrame({"gain_recovered": [0.0, 1.0, 0.3, 0.8]}, index=idx),
              "B->A": pd.DataFrame({"gain_recovered": [0.0, 1.0, -0.2, 0.5]}, index=idx)}
    fig = plots.gain_recovered_bars(tables, path=tmp_path / "bars.png")
    assert is_png(tmp_path / "bars.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["linear", "nessa-m2"]  # symmetric rows left out
    # Figures speak percent: reference lines at 0, 60 (the paper's bar) and 100 %, bars at 100 x the fractions.
    assert {round(ln.get_ydata()[0], 2) for ln in ax.get_lines() if len(set(ln.get_ydata())) == 1} >= {0.0, 60.0, 100.0}
    assert sorted(round(p.get_height(), 6) for p in ax.patches if p.get_height() != 0) == [-20.0, 30.0, 50.0, 80.0]


def test_ablation_curves(tmp_path):
    df = pd.DataFrame({"n_speakers": [10, 10, 40, 40], "utts_per_speaker": [2, -1, 2, -1], "n_pairs": [20, 60, 80, 240],
                       "eer": [0.2, 0.1, 0.15, 0.08], "gain_recovered": [0.1, 0.5, 0.3, 0.7]})
    fig = plots.ablation_curves(df, path=tmp_path / "ablation.png")
    assert is_png(tmp_path / "ablation.png") and len(fig.axes) == 2
    assert fig.axes[0].get_xscale() == "log"
    ys = sorted(y for ln in fig.axes[0].get_lines() for y in ln.get_ydata() if np.isfinite(y))
    assert ys == [8.0, 10.0, 15.0, 20.0]  # EER in percent


def test_score_distributions_grid(tmp_path, rng):
    fig = plots.score_distributions_grid({"before": scores(rng, 0.5), "after": scores(rng, 3.0)},
                                         path=tmp_path / "dist.png")
    assert is_png(tmp_path / "dist.png")
    assert [a.get_title() for a in fig.axes] == ["before", "after"]
