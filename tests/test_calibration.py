"""Tests for nessa_lib.evaluation.calibration: hand-computed Cllr / PAV / actual-DCF cases, recovery of a known
score-to-LLR map, thresholds chosen on calibration trials, and the calibration file's refusal of another aligner."""

import json
import math

import numpy as np
import pytest

from nessa_lib.evaluation import calibration as cal
from nessa_lib.evaluation.metrics import min_dcf


def gaussian_trials(n_target, n_nontarget, rng, mu_t=2.0, mu_n=0.0, sigma=1.0):
    """Equal-variance Gaussian scores: the true LLR is ``(mu_t - mu_n) / sigma^2 * s - (mu_t^2 - mu_n^2) / 2 sigma^2``."""
    s = np.r_[rng.normal(mu_t, sigma, n_target), rng.normal(mu_n, sigma, n_nontarget)]
    y = np.r_[np.ones(n_target, dtype=int), np.zeros(n_nontarget, dtype=int)]
    return s, y


# ---------------------------------------------------------------------------------------------
# Cllr, PAV, min-Cllr, actual DCF on hand-computed cases


def test_cllr_of_no_information_is_one_bit():
    assert cal.cllr(np.zeros(5), [0, 1, 1, 0, 1]) == pytest.approx(1.0)


def test_cllr_hand_computed():
    # Targets at +log 3 and non-targets at -log 3: each trial costs log2(1 + 1/3) bits.
    llr = [math.log(3), math.log(3), -math.log(3)]
    assert cal.cllr(llr, [1, 1, 0]) == pytest.approx(math.log2(4 / 3))
    # A confident wrong decision costs a lot: target at -log 3 costs log2(4), non-target at -log 3 log2(4/3).
    assert cal.cllr([-math.log(3), -math.log(3)], [1, 0]) == pytest.approx((2 + math.log2(4 / 3)) / 2)


def test_cllr_refuses_nan_and_one_class():
    with pytest.raises(ValueError, match="NaN"):
        cal.cllr([0.0, np.nan], [0, 1])
    with pytest.raises(ValueError, match="no target trial"):
        cal.cllr([0.0, 1.0], [0, 0])


def test_pav_four_trials_by_hand():
    # Labels 0,1,0,1 in score order: the middle pair violates monotonicity and is pooled to 1/2.
    order, post = cal.pav([4.0, 1.0, 3.0, 2.0], [1, 0, 0, 1])
    assert order.tolist() == [1, 3, 2, 0]
    assert post.tolist() == [1.0, 0.0, 0.5, 0.5]


def test_pav_pools_tied_scores_first():
    # Ties at 2 form one block (1/2), which is above the 0 at score 3: all three pool to 1/3.
    # Without pooling the ties, the stable order 0, 1 | 0 would give 0, 1/2, 1/2.
    np.testing.assert_allclose(cal.pav([2.0, 2.0, 3.0], [0, 1, 0])[1], [1 / 3, 1 / 3, 1 / 3])


def test_pav_matches_isotonic_regression():
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(3)
    s, y = gaussian_trials(200, 500, rng, mu_t=1.0)
    want = IsotonicRegression().fit_transform(s, y)
    np.testing.assert_allclose(cal.pav(s, y)[1], want, atol=1e-12)


def test_min_cllr_four_trials_by_hand():
    # PAV posteriors 0, 1/2, 1/2, 1 with a target proportion of 1/2: LLRs -inf, 0, 0, +inf. The two
    # trials at 0 cost 1 bit each, the sure ones nothing: (1/2 + 1/2) / 2 = 0.5 bit.
    assert cal.min_cllr([1.0, 2.0, 3.0, 4.0], [0, 1, 0, 1]) == pytest.approx(0.5)


def test_min_cllr_of_separated_scores_is_zero_and_of_reversed_is_one():
    assert cal.min_cllr([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 0.0
    # Reversed scores carry no usable (monotone) information: PAV pools everything to the prior.
    assert cal.min_cllr([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == pytest.approx(1.0)


def test_min_cllr_at_most_cllr_and_invariant_to_monotone_maps():
    rng = np.random.default_rng(0)
    s, y = gaussian_trials(300, 3000, rng)
    c = cal.fit_calibration(s, y)
    m = cal.min_cllr(s, y)
    assert m <= cal.cllr(c.apply(s), y)
    assert m <= cal.cllr(2.0 * s - 2.0, y)  # the true LLR, in-sample
    assert cal.min_cllr(np.exp(s), y) == pytest.approx(m)


def test_actual_dcf_hand_computed():
    llr, y = [-1.0, 2.0, 0.5, 3.0], [0, 0, 1, 1]
    # p = 0.5: threshold 0, FAR 1/2 (the 2.0), FRR 0 -> (0.5 * 1/2) / 0.5.
    assert cal.actual_dcf(llr, y, p_target=0.5) == pytest.approx(0.5)
    # c_fa = 10 moves the threshold to log 10 = 2.30: FAR 0, FRR 1/2 -> 0.5 * 0.5 / 0.5.
    assert cal.actual_dcf(llr, y, p_target=0.5, c_fa=10.0) == pytest.approx(0.5)
    # The threshold itself is accepted (score >= threshold).
    assert cal.actual_dcf([0.0, 0.0], [0, 1], p_target=0.5) == pytest.approx(1.0)


@pytest.mark.parametrize("p_target", [0.01, 0.05, 0.5, 0.9])
def test_actual_dcf_never_below_min_dcf(p_target):
    rng = np.random.default_rng(1)
    s, y = gaussian_trials(500, 5000, rng)
    for llr in (cal.fit_calibration(s[::2], y[::2]).apply(s), 3.0 * s - 1.0, s):
        assert cal.actual_dcf(llr, y, p_target) >= min_dcf(llr, y, p_target) - 1e-12


def test_well_calibrated_actual_dcf_is_close_to_min_dcf():
    rng = np.random.default_rng(2)
    s, y = gaussian_trials(20000, 20000, rng)
    llr = 2.0 * s - 2.0  # the true LLR: its Bayes decisions are optimal up to sampling noise
    bad = llr + 3.0      # miscalibrated: shifted by 3 nats
    assert cal.actual_dcf(llr, y, 0.05) - min_dcf(llr, y, 0.05) < 0.02
    assert cal.actual_dcf(bad, y, 0.05) - min_dcf(bad, y, 0.05) > 0.2


def test_bayes_threshold():
    assert cal.bayes_threshold(0.5) == 0.0
    assert cal.bayes_threshold(0.01) == pytest.approx(math.log(99))
    assert cal.bayes_threshold(0.5, c_miss=10.0) == pytest.approx(-math.log(10))
    with pytest.raises(ValueError, match="p_target"):
        cal.bayes_threshold(0.0)


# ---------------------------------------------------------------------------------------------
# Linear calibration


def test_calibration_recovers_the_true_llr_map():
    rng = np.random.default_rng(4)
    s, y = gaussian_trials(20000, 20000, rng)
    c = cal.fit_calibration(s, y)
    assert c.scale == pytest.approx(2.0, abs=0.05)
    assert c.offset == pytest.approx(-2.0, abs=0.05)
    assert (c.n_target, c.n_nontarget, c.prior) == (20000, 20000, 0.5)


def test_calibration_output_is_an_llr_whatever_the_prior_and_class_balance():
    # The true LLR does not depend on the prior nor on the trial counts: neither should the fit (BOSARIS adds the
    # prior's log-odds before the sigmoid and weighs each class by its prior).
    rng = np.random.default_rng(5)
    s, y = gaussian_trials(4000, 40000, rng, mu_t=1.0, mu_n=-1.0)  # true LLR = 2 s
    for prior in (0.5, 0.1, 0.01):
        c = cal.fit_calibration(s, y, prior=prior)
        assert c.scale == pytest.approx(2.0, abs=0.1), prior
        assert c.offset == pytest.approx(0.0, abs=0.1), prior


def test_calibration_matches_unpenalised_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(6)
    s, y = gaussian_trials(300, 3000, rng)
    prior = 0.2
    w = np.where(y == 1, prior / 300, (1 - prior) / 3000) * len(y)
    lr = LogisticRegression(C=1e12, tol=1e-12, max_iter=10000).fit(s[:, None], y, sample_weight=w)
    c = cal.fit_calibration(s, y, prior=prior, l2=0.0)
    assert c.scale == pytest.approx(lr.coef_[0, 0], rel=1e-5)
    assert c.offset == pytest.approx(lr.intercept_[0] - math.log(prior / (1 - prior)), abs=1e-5)


def test_calibration_of_separated_trials_stays_finite_and_ordered():
    c = cal.fit_calibration([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert math.isfinite(c.scale) and math.isfinite(c.offset) and c.scale > 0
    # Perfect separation is rewarded: the fitted LLRs have the right signs and a small Cllr.
    llr = c.apply([0.1, 0.2, 0.8, 0.9])
    assert (llr[:2] < 0).all() and (llr[2:] > 0).all()
    assert cal.cllr(llr, [0, 0, 1, 1]) < 0.01


def test_calibration_apply_and_inverse():
    c = cal.Calibration(scale=4.0, offset=-2.0, prior=0.5, n_target=1, n_nontarget=1)
    assert c.apply([0.5, 1.0]).tolist() == [0.0, 2.0]
    assert c.score_at_llr(2.0) == 1.0
    with pytest.raises(AttributeError):
        c.scale = 1.0  # frozen: a saved calibration cannot drift


@pytest.mark.parametrize("labels, missing", [([0, 0, 0], "no target trial"), ([1, 1, 1], "no non-target trial")])
def test_calibration_refuses_trials_of_one_class(labels, missing):
    with pytest.raises(ValueError, match=f"cannot fit a calibration on alignment split.*{missing}"):
        cal.fit_calibration([0.1, 0.2, 0.3], labels, what="alignment split")


def test_calibration_refuses_bad_prior():
    with pytest.raises(ValueError, match="prior"):
        cal.fit_calibration([0.1, 0.9], [0, 1], prior=1.0)


# ---------------------------------------------------------------------------------------------
# Thresholds chosen on calibration trials


def test_threshold_report_by_hand():
    cal_s, cal_y = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 0, 0, 0, 1, 1]
    ev_s, ev_y = [0.1, 0.35, 0.2, 0.9], [0, 0, 1, 1]
    t = cal.threshold_report(cal_s, cal_y, ev_s, ev_y, [0.25, 0.5])
    assert t.index.tolist() == [0.25, 0.5]
    # FAR <= 1/4 on four non-targets: at most one false alarm, threshold just above 0.3; FAR <= 1/2: just above 0.2.
    assert 0.3 < t.loc[0.25, "threshold"] < 0.3 + 1e-12
    assert 0.2 < t.loc[0.5, "threshold"] < 0.2 + 1e-12
    assert t["far_calibration"].tolist() == [0.25, 0.5]
    assert t["frr_calibration"].tolist() == [0.0, 0.0]
    # On evaluation, 0.35 is a false alarm at both thresholds and the target at 0.2 is missed at both.
    assert t["far_eval"].tolist() == [0.5, 0.5]
    assert t["frr_eval"].tolist() == [0.5, 0.5]
    assert t["holds"].tolist() == [False, True]


@pytest.mark.parametrize("far", [0.0, 1.0, -0.1, 1.5])
def test_threshold_report_refuses_far_outside_open_unit_interval(far):
    with pytest.raises(ValueError, match=r"FAR target must be a fraction in \(0, 1\)"):
        cal.threshold_report([0.1, 0.9], [0, 1], [0.1, 0.9], [0, 1], [0.01, far])


def test_threshold_report_refuses_calibration_without_targets():
    with pytest.raises(ValueError, match="threshold calibration trials: no target trial"):
        cal.threshold_report([0.1, 0.9], [0, 0], [0.1, 0.9], [0, 1], 0.01)


def test_threshold_report_bootstrap_intervals_bracket_the_estimate():
    from nessa_lib.evaluation.bootstrap import SpeakerBootstrap

    rng = np.random.default_rng(7)
    cs, cy = gaussian_trials(400, 4000, rng)
    es, ey = gaussian_trials(400, 4000, rng)
    speakers = rng.integers(0, 40, size=es.size).astype(str)
    boot = SpeakerBootstrap(speakers, ey, n_rounds=200, seed=0)
    t = cal.threshold_report(cs, cy, es, ey, [0.01, 0.1], boot=boot)
    for col in ("far_eval", "frr_eval"):
        assert (t[f"{col}_lo"] <= t[col]).all() and (t[col] <= t[f"{col}_hi"]).all()
        assert (t[f"{col}_lo"] < t[f"{col}_hi"]).all()


def test_cllr_and_actual_dcf_per_round_hand_computed():
    """Two speakers, one target and one non-target each; rounds that draw one speaker twice or both once."""
    from nessa_lib.evaluation.bootstrap import SpeakerBootstrap

    labels = np.array([1, 0, 1, 0])
    boot = SpeakerBootstrap(np.array(["a", "a", "b", "b"]), labels, n_rounds=3)
    boot.counts = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0]])
    # Speaker a: target LLR 0 (1 bit), non-target LLR 0 (1 bit); speaker b: target +ln 3, non-target -ln 3:
    # log2(1 + 1/3) bits each.
    llr = np.array([0.0, 0.0, math.log(3.0), -math.log(3.0)])
    b_bits = math.log2(4.0 / 3.0)
    np.testing.assert_allclose(cal.cllr_rounds(llr, boot), [(1.0 + b_bits) / 2, 1.0, b_bits])
    assert cal.cllr_rounds(llr, boot)[0] == pytest.approx(cal.cllr(llr, labels))  # uniform weights: the plain Cllr
    # At p_target 0.5 (threshold 0): a's target is accepted (0 >= 0) and so is its non-target: FAR 1 for a, 0 for b.
    np.testing.assert_allclose(cal.actual_dcf_rounds(llr, boot, p_target=0.5), [0.5, 1.0, 0.0])
    assert cal.actual_dcf_rounds(llr, boot, p_target=0.5)[0] == cal.actual_dcf(llr, labels, p_target=0.5)


def two_speaker_boot(speakers, labels, counts):
    from nessa_lib.evaluation.bootstrap import SpeakerBootstrap

    boot = SpeakerBootstrap(np.asarray(speakers), np.asarray(labels), n_rounds=len(counts))
    boot.counts = np.asarray(counts, dtype=float)
    return boot


def test_min_cllr_rounds_hand_computed():
    """Speaker a: non-target at 1, target at 2; speaker b: non-target at 3, target at 4."""
    s, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 1, 0, 1])
    boot = two_speaker_boot(["a", "a", "b", "b"], y, [[1, 1], [2, 0], [0, 2], [1, 2], [3, 1]])
    # [1, 1]: min_cllr's own case, 0.5 bit. [2, 0] and [0, 2]: one speaker's trials, separated: 0.
    # [1, 2]: in score order non-target x1, target x1, non-target x2, target x2; PAV pools the middle pair to 1/3
    # (one target, two non-targets). Equal class weights (3, 3): that block's LLR is log(1/2), so its target costs
    # log2(1 + 2) and each of its non-targets log2(1 + 1/2): (log2 3 / 3 + 2 log2(3/2) / 3) / 2.
    # [3, 1]: non x3, target x3, non x1, target x1: the middle pair pools to 3/4 with class weights (4, 4): LLR
    # log 3, target costs log2(4/3) (x3), the non-target log2(4): (3 log2(4/3) / 4 + 2 / 4) / 2.
    want = [0.5, 0.0, 0.0, (math.log2(3) + 2 * math.log2(1.5)) / 6, (0.75 * math.log2(4 / 3) + 0.5) / 2]
    np.testing.assert_allclose(cal.min_cllr_rounds(s, y, boot), want, rtol=0, atol=1e-15)
    assert cal.min_cllr_rounds(s, y, boot)[0] == pytest.approx(cal.min_cllr(s, y), abs=1e-15)


def test_min_cllr_rounds_pools_tied_scores():
    # Speaker a: a target at 2; b: a non-target at 2 (tied with a's target); c: a non-target at 1, a target at 3.
    s, y = np.array([2.0, 2.0, 1.0, 3.0]), np.array([1, 0, 0, 1])
    boot = two_speaker_boot(["a", "b", "c", "c"], y, [[2, 1, 1]])
    # The tie is one value: two targets, one non-target, 2/3, between the 0 at 1 and the 1 at 3 (no violation).
    # Class weights (3, 2), so its LLR is log(2/1) - log(3/2) = log(4/3): two targets cost log2(1 + 3/4) each, the
    # non-target log2(1 + 4/3). Ordering the tie non-target-first instead would separate the classes (0 bits).
    want = (2 * math.log2(7 / 4) / 3 + math.log2(7 / 3) / 2) / 2
    assert cal.min_cllr_rounds(s, y, boot)[0] == pytest.approx(want, abs=1e-15)
    assert cal.min_cllr([2.0, 2.0, 2.0, 1.0, 3.0], [1, 1, 0, 0, 1]) == pytest.approx(want, abs=1e-15)


def test_min_cllr_rounds_nan_without_a_class_and_refuses_other_labels():
    y = np.array([1, 1, 0, 0])
    boot = two_speaker_boot(["a", "a", "b", "b"], y, [[2, 0], [1, 1]])  # a has only targets
    r = cal.min_cllr_rounds([0.1, 0.9, 0.5, 0.2], y, boot)
    assert math.isnan(r[0]) and r[1] == pytest.approx(cal.min_cllr([0.1, 0.9, 0.5, 0.2], y))
    with pytest.raises(ValueError, match="not those of the bootstrap"):
        cal.min_cllr_rounds([0.1, 0.9, 0.5, 0.2], [1, 0, 1, 0], boot)
    with pytest.raises(ValueError, match="NaN"):
        cal.min_cllr_rounds([0.1, np.nan, 0.5, 0.2], y, boot)


@pytest.mark.parametrize("decimals", [None, 1])  # distinct scores, and scores with many ties of both classes
def test_min_cllr_rounds_is_min_cllr_of_the_resampled_trials(decimals):
    from nessa_lib.evaluation.bootstrap import SpeakerBootstrap

    rng = np.random.default_rng(8)
    s, y = gaussian_trials(150, 1500, rng, mu_t=1.5)
    if decimals is not None:
        s = np.round(s, decimals)
    boot = SpeakerBootstrap(rng.integers(0, 25, size=s.size).astype(str), y, n_rounds=30, seed=1)
    boot.counts[0] = 1.0  # round 0: every speaker once = the trials as they are
    got = cal.min_cllr_rounds(s, y, boot)
    assert abs(got[0] - cal.min_cllr(s, y)) < 1e-12
    for r in range(1, boot.n_rounds):
        w = boot.counts[r][boot.cluster].astype(int)
        assert abs(got[r] - cal.min_cllr(np.repeat(s, w), np.repeat(y, w))) < 1e-12, r


def test_min_cllr_rounds_matches_weighted_isotonic_regression():
    sklearn_isotonic = pytest.importorskip("sklearn.isotonic")
    from nessa_lib.evaluation.bootstrap import SpeakerBootstrap

    rng = np.random.default_rng(9)
    s, y = gaussian_trials(100, 900, rng, mu_t=1.0)
    s = np.round(s, 2)  # ties: sklearn pools equal scores too (weighted mean of their labels)
    boot = SpeakerBootstrap(rng.integers(0, 20, size=s.size).astype(str), y, n_rounds=10, seed=2)
    got = cal.min_cllr_rounds(s, y, boot)
    for r in range(boot.n_rounds):
        w = boot.counts[r][boot.cluster]
        keep = w > 0
        sw, yw, ww = s[keep], y[keep], w[keep]
        post = sklearn_isotonic.IsotonicRegression().fit_transform(sw, yw, sample_weight=ww)
        n_t, n_n = ww[yw == 1].sum(), ww[yw == 0].sum()
        with np.errstate(divide="ignore"):
            llr = np.log(post) - np.log1p(-post) - math.log(n_t / n_n)
        cost_t = np.logaddexp(0.0, -llr[yw == 1]) @ ww[yw == 1] / n_t
        cost_n = np.logaddexp(0.0, llr[yw == 0]) @ ww[yw == 0] / n_n
        assert got[r] == pytest.approx((cost_t + cost_n) / (2 * math.log(2)), abs=1e-12), r


def test_class_means_weights_trials_by_draws():
    from nessa_lib.evaluation.bootstrap import SpeakerBootstrap

    boot = SpeakerBootstrap(np.array(["a", "a", "b", "b", "b"]), np.array([1, 0, 1, 1, 0]), n_rounds=2)
    boot.counts = np.array([[1.0, 2.0], [3.0, 0.0]])
    tar, non = boot.class_means(np.array([1.0, 10.0, 2.0, 4.0, 20.0]))
    # Round 0: targets 1 (x1), 2 and 4 (x2 each): (1 + 4 + 8) / 5; non-targets 10 (x1), 20 (x2): 50 / 3.
    np.testing.assert_allclose(tar, [13 / 5, 1.0])
    np.testing.assert_allclose(non, [50 / 3, 10.0])
    with pytest.raises(ValueError, match="values have shape"):
        boot.class_means(np.zeros(3))


def test_system_calibration_intervals_and_fitted_calibrations():
    from nessa_lib.evaluation.bootstrap import SpeakerBootstrap

    rng = np.random.default_rng(3)
    cs, cy = gaussian_trials(300, 3000, rng)
    es, ey = gaussian_trials(300, 3000, rng)
    boot = SpeakerBootstrap(rng.integers(0, 30, size=es.size).astype(str), ey, n_rounds=200, seed=0)
    fitted = {}
    t = cal.system_calibration({"s": cs}, cy, {"s": es}, ey, [0.01, 0.1], boot=boot, calibrations=fitted)
    assert list(t.columns[:10]) == ["cllr", "cllr_lo", "cllr_hi", "min_cllr", "min_cllr_lo", "min_cllr_hi",
                                    "act_dcf_p0.01", "act_dcf_p0.01_lo", "act_dcf_p0.01_hi", "min_dcf_p0.01"]
    for col in ("cllr", "min_cllr", "act_dcf_p0.01"):
        assert (t[f"{col}_lo"] <= t[col]).all() and (t[col] <= t[f"{col}_hi"]).all()
        assert (t[f"{col}_lo"] < t[f"{col}_hi"]).all()
    assert fitted["s"] == cal.fit_calibration(cs, cy)
    assert t.loc[("s", 0.01), "cllr"] == pytest.approx(cal.cllr(fitted["s"].apply(es), ey))
    assert not {"cllr_lo", "min_cllr_lo"} & set(cal.system_calibration({"s": cs}, cy, {"s": es}, ey, [0.01]).columns)


# ---------------------------------------------------------------------------------------------
# The calibration file


@pytest.fixture
def aligners():
    from nessa_lib import align

    rng = np.random.default_rng(0)
    x, spk = rng.normal(size=(12, 3)), np.arange(12) // 3
    a = align.fit("linear", x, x, spk, enroll_model_id="X@1", runtime_model_id="Y@1")
    b = align.fit("linear", x, x + 0.5 * rng.normal(size=x.shape), spk, enroll_model_id="X@1",
                  runtime_model_id="Y@1")
    return a, b


def test_save_and_load_round_trip(tmp_path, aligners):
    a, _ = aligners
    c = cal.Calibration(scale=2.5, offset=-1.25, prior=0.5, n_target=10, n_nontarget=90)
    p = tmp_path / "m.calibration.json"
    cal.save_calibration(p, c, {0.125: 0.375, 0.01: 0.5}, aligner=a, system="X/Y nessa-m2")
    got = cal.load_calibration(p, aligner=a)
    assert got.calibration == c
    assert got.thresholds == {0.01: 0.5, 0.125: 0.375}
    assert got.system == "X/Y nessa-m2"
    assert got.aligner == cal.aligner_identity(a)
    doc = json.loads(p.read_text())  # plain JSON, readable without this library
    assert doc["format"] == "nessa-calibration" and doc["accept_rule"] == "score >= threshold"


def test_saved_threshold_report_keeps_its_thresholds(tmp_path):
    t = cal.threshold_report([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 0, 0, 0, 1, 1], [0.1, 0.9], [0, 1], [0.25, 0.5])
    p = tmp_path / "x.calibration.json"
    cal.save_calibration(p, thresholds=t)
    assert cal.load_calibration(p).thresholds == t["threshold"].to_dict()


def test_identity_survives_the_aligner_file(tmp_path, aligners):
    from nessa_lib import align

    a, _ = aligners
    path = tmp_path / "nessa-m2.safetensors"
    a.save(path)
    cal.save_calibration(cal.calibration_path(path), thresholds={0.01: 0.5}, aligner=path)
    assert cal.aligner_identity(align.load(path)) == cal.aligner_identity(a)
    assert cal.load_calibration(tmp_path / "nessa-m2.calibration.json", aligner=a).thresholds == {0.01: 0.5}


def test_load_refuses_a_file_made_for_another_aligner(tmp_path, aligners):
    a, b = aligners
    p = tmp_path / "a.calibration.json"
    cal.save_calibration(p, thresholds={0.01: 0.5}, aligner=a)
    assert cal.aligner_identity(a)["fingerprint"] != cal.aligner_identity(b)["fingerprint"]
    with pytest.raises(ValueError, match=r"a\.calibration\.json was made for another aligner"):
        cal.load_calibration(p, aligner=b)
    # A file made without an aligner (X/X) does not apply to an aligned system either.
    q = tmp_path / "xx.calibration.json"
    cal.save_calibration(q, thresholds={0.01: 0.5}, system="X/X")
    with pytest.raises(ValueError, match=r"xx\.calibration\.json was made for a system without an aligner"):
        cal.load_calibration(q, aligner=a)


def test_load_refuses_other_files_naming_them(tmp_path):
    p = tmp_path / "metrics.json"
    p.write_text('{"eer": 0.1}')
    with pytest.raises(ValueError, match="metrics.json is not a NESSA calibration file"):
        cal.load_calibration(p)
    q = tmp_path / "broken.calibration.json"
    q.write_text("{")
    with pytest.raises(ValueError, match="broken.calibration.json is not a readable JSON"):
        cal.load_calibration(q)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        cal.load_calibration(tmp_path / "missing.json")


def test_save_refuses_bad_thresholds(tmp_path):
    p = tmp_path / "x.json"
    with pytest.raises(ValueError, match="not finite"):
        cal.save_calibration(p, thresholds={0.01: float("inf")})
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        cal.save_calibration(p, thresholds={1.0: 0.5})
    assert not p.exists()
