"""nessa_lib.evaluation.learning_curve: the saturating curve on hand-computed points, and the curve on toy spaces
where more paired voices must help."""

import math

import numpy as np
import pandas as pd
import pytest

from nessa_lib import toy
from nessa_lib.evaluation import learning_curve as lcm

N = np.array([25.0, 50, 100, 200, 400, 800])


@pytest.mark.parametrize("a, b, c", [(0.9, 3.0, 0.5), (0.6, 20.0, 1.0), (1.0, 1.5, 0.2), (0.3, 0.5, 2.5)])
def test_exact_points_give_back_their_parameters(a, b, c):
    f = lcm.fit_saturating(N, a - b * N ** -c)
    assert (f.a, f.b, f.c) == pytest.approx((a, b, c), rel=1e-6, abs=1e-8)
    assert f.sse == pytest.approx(0, abs=1e-18)
    # Weights change nothing on exact points.
    g = lcm.fit_saturating(N, a - b * N ** -c, weights=np.arange(1.0, 7.0))
    assert (g.a, g.b, g.c) == pytest.approx((a, b, c), rel=1e-6, abs=1e-8)


def test_hand_computed_voices_for_a_share():
    f = lcm.SaturatingCurve(a=0.9, b=3.0, c=0.5)
    # 0.9 - 3 / sqrt(n) = 0.6  <=>  sqrt(n) = 10  <=>  n = 100; and 0.8 at n = 900.
    assert lcm.voices_for_share(f, 0.6) == pytest.approx(100)
    assert lcm.voices_for_share(f, 0.8) == pytest.approx(900)
    assert lcm.voices_for_share(f, 0.9) == math.inf and lcm.voices_for_share(f, 0.95) == math.inf
    assert f(lcm.voices_for_share(f, 0.7)) == pytest.approx(0.7)


def test_falling_or_flat_shares_give_a_flat_curve():
    f = lcm.fit_saturating(N, 0.5 + 0.1 * N ** -0.5)  # falls with n
    assert f.b == 0 and f.a == pytest.approx(np.mean(0.5 + 0.1 * N ** -0.5))
    assert lcm.voices_for_share(f, 0.8) == math.inf and lcm.voices_for_share(f, 0.4) == 0.0


def test_the_ceiling_is_bounded():
    # Linear in log n: no ceiling in sight; the fit keeps a at its bound instead of running off.
    f = lcm.fit_saturating(N, 0.2 * np.log2(N / 100))
    assert f.a == lcm.A_MAX and f.b > 0
    assert np.all(np.diff(f(N)) > 0)


def test_fit_saturating_refuses_too_few_sizes():
    with pytest.raises(ValueError, match="at least 3 distinct sizes"):
        lcm.fit_saturating([25, 50, 50], [0.1, 0.2, 0.2])


def test_sizes_and_voices_needed():
    assert lcm.doubling_sizes(650) == [25, 50, 100, 200, 400, 650]
    assert lcm.doubling_sizes(125) == [25, 50, 100, 125]
    assert lcm.voices_needed() == 145  # 25, 50, 100, 125 fit voices + 20 held out


@pytest.fixture(scope="module")
def toy_curve():
    # X: a noisy old model; Y: a better model that sees the latent space through a nonlinear warp, so the map
    # from X to Y must be learned from the data and more voices help. M2 from a random start: its default
    # least-squares start already reaches 9 % EER with 10 voices here, and the rise would sit inside the intervals.
    p = toy.make_paired_spaces(200, 6, d_latent=8, d_x=8, d_y=24, noise_x=0.6, noise_y=0.05, warp_y="nonlinear",
                               warp_gain=0.7, rng=np.random.default_rng(0))
    return lcm.learning_curve(p.x, p.y, p.speakers, methods=["nessa-m2"], n_eval=40, start=10, n_rounds=200,
                              n_nontarget_per_profile=30, hparams={"nessa-m2": dict(max_epochs=40, hidden_dim=32, init="random")})


def test_more_voices_help_on_toy_spaces(toy_curve):
    t = toy_curve.table
    assert t["n_voices"].tolist() == [10, 20, 40, 80, 160] and toy_curve.n_eval_voices == 40
    assert toy_curve.n_fit_voices == 160
    share = t["share"].to_numpy()
    assert share[-1] > share[0] and np.all(np.diff(t["eer"].to_numpy()) < 0.02)
    assert t["share_lo"].iloc[-1] > t["share_hi"].iloc[0]  # the rise is beyond its intervals
    assert (t["share_lo"] <= t["share"]).all() and (t["share"] <= t["share_hi"]).all()
    f = toy_curve.curves["nessa-m2"]
    assert f.b > 0 and np.all(np.diff(f(t["n_voices"])) > 0)
    assert toy_curve.baselines["eer_yy"] < toy_curve.baselines["eer_xx"]


def test_band_rounds_and_targets(toy_curve):
    r = toy_curve.rounds["nessa-m2"]
    assert r.shape == (200, 5) and len(toy_curve.round_curves["nessa-m2"]) >= 190
    lo, hi = toy_curve.band("nessa-m2", [10, 160, 1000])
    assert np.all(lo <= hi) and (hi - lo)[0] > (hi - lo)[1]  # wider where the data are noisier
    tg = toy_curve.targets.set_index("target")
    assert tg.index.tolist() == [0.6, 0.8] and tg.loc[0.6, "voices"] <= tg.loc[0.8, "voices"]
    for _, row in tg.iterrows():
        if row["reached"]:
            assert row["voices_lo"] <= row["voices"] <= row["voices_hi"]
            assert "reaches" in row["statement"] and "voices" in row["statement"]
        else:
            assert "does not reach" in row["statement"]


def test_too_few_voices_say_how_many_are_needed():
    p = toy.make_paired_spaces(60, 4, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"60 voices are too few .* at least 145"):
        lcm.learning_curve(p.x, p.y, p.speakers, methods=["linear"])


def test_no_gain_to_recover_is_refused():
    p = toy.make_paired_spaces(60, 4, noise_x=0.1, noise_y=0.9, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="not better than the old one"):
        lcm.learning_curve(p.x, p.y, p.speakers, methods=["linear"], n_eval=20, start=5, n_rounds=20)


# --- the stage-05 ablation's curves (nessa_lib.stages.evaluate.ablation_study) ---------------------------------


def test_fit_curve_is_what_learning_curve_fits():
    """The refactored fit of a measured series gives learning_curve's own curve, band and target rows."""
    from nessa_lib import toy
    from nessa_lib.evaluation.learning_curve import fit_curve, learning_curve

    p = toy.make_paired_spaces(70, 4, noise_x=0.8, rng=np.random.default_rng(1))
    lc = learning_curve(p.x, p.y, p.speakers, methods=["linear"], n_eval=20, start=5, n_rounds=30,
                        n_nontarget_per_profile=10)
    part = lc.table[lc.table["method"] == "linear"]
    f = fit_curve(part["n_voices"].to_numpy(float), part["share"].to_numpy(), lc.rounds["linear"], method="linear")
    assert (f.curve.a, f.curve.b, f.curve.c) == (lc.curves["linear"].a, lc.curves["linear"].b, lc.curves["linear"].c)
    assert len(f.round_curves) == len(lc.round_curves["linear"])
    pd.testing.assert_frame_equal(f.targets.reset_index(drop=True), lc.targets.reset_index(drop=True))


def test_fit_curve_refuses_rounds_of_another_grid():
    from nessa_lib.evaluation.learning_curve import fit_curve

    with pytest.raises(ValueError, match="rounds must be"):
        fit_curve([1.0, 2, 4, 8], [0.1, 0.2, 0.3, 0.4], np.zeros((5, 3)), method="m")


def test_ablation_study_curves_per_method_and_setting():
    """Every method on the same nested subsamples; a curve per series with >= 4 sizes; a series with fewer is left
    out; where more voices help (toy spaces) the linear map's share rises and its curve reaches a modest target."""
    from nessa_lib import toy
    from nessa_lib.evaluation.ab import alignment_trials
    from nessa_lib.evaluation.bootstrap import SpeakerBootstrap
    from nessa_lib.stages.evaluate import ablation_study

    # Held-out voices of the same spaces: the last 20 of a 100-voice draw.
    allp = toy.make_paired_spaces(100, 4, noise_x=0.8, rng=np.random.default_rng(0))
    held = np.isin(allp.speakers, np.unique(allp.speakers)[80:])
    x, y, spk = allp.x[~held], allp.y[~held], allp.speakers[~held]
    ids = np.array([f"u{i}" for i in range(held.sum())])
    enroll, trials = alignment_trials(allp.speakers[held], ids, k_enroll=1, n_nontarget_per_profile=10, rng=0)
    boot = SpeakerBootstrap.from_lists(enroll, trials, dict(zip(ids, allp.speakers[held])), n_rounds=40, seed=0)
    abl, curves, tg = ablation_study(x, y, spk, allp.x[held], allp.y[held], ids, enroll, trials,
                                     methods=["linear", "procrustes"], n_speakers=(5, 10, 20, 40, None),
                                     utts_per_speaker=(2, None), seed=0, hparams={}, boot=boot, targets=[0.5, 0.9])
    assert abl["method"].tolist() == ["linear"] * 10 + ["procrustes"] * 10
    # the same subsamples for both methods
    a, b = abl[abl["method"] == "linear"], abl[abl["method"] == "procrustes"]
    assert a["n_pairs"].tolist() == b["n_pairs"].tolist()
    assert set(curves) == {("linear", 2), ("linear", -1), ("procrustes", 2), ("procrustes", -1)}
    assert len(tg) == 8 and set(tg["target"]) == {0.5, 0.9}
    lin = a[a["utts_per_speaker"] == -1].sort_values("n_speakers_used")
    assert lin["gain_recovered"].iloc[-1] > lin["gain_recovered"].iloc[0]  # more voices help
    # fewer than four sizes: no curve, no target rows
    _, curves3, tg3 = ablation_study(x, y, spk, allp.x[held], allp.y[held], ids, enroll, trials, methods=["linear"],
                                     n_speakers=(5, 10, None), utts_per_speaker=(None,), seed=0, hparams={},
                                     boot=boot)
    assert curves3 == {} and tg3.empty and list(tg3.columns)[:3] == ["method", "utts_per_speaker", "target"]


def test_a_crossing_far_beyond_the_measured_voices_reads_as_out_of_reach():
    # Levels off at 80.5 %: 0.805 - 3.7 n^-0.257 = 0.8 at n = (3.7 / 0.005) ** (1 / 0.257), about 1.5e11 voices.
    f = lcm.SaturatingCurve(a=0.805, b=3.7, c=0.257)
    row = lcm._target_row("m", 0.8, f, [f], largest=800)
    assert row["voices"] == pytest.approx((3.7 / 0.005) ** (1 / 0.257))
    assert row["statement"].startswith("m does not reach 80 % of the gain within reach") and "1.5e+11" in row["statement"]
    near = lcm._target_row("m", 0.6, f, [f], largest=800)  # 3.7 n^-0.257 = 0.205: n about 7.8e4, below 100 x 800
    assert near["statement"].startswith("m reaches 60 % of the gain at about")
