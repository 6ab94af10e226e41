"""nessa_lib.evaluation: the per-pair comparison tables, the A/B case study, the ablation, the findings."""

import logging

import numpy as np
import pandas as pd
import pytest

from nessa_lib import align, toy
from nessa_lib.embeddings import PairedSplits
from nessa_lib.evaluation import metrics
from nessa_lib.evaluation.ab import (
    AB_CONTROL,
    AB_M1,
    AB_M2,
    AB_M3,
    AB_REENROLL,
    ab_case_study,
    alignment_trials,
    operating_point_rows,
    rates_at_threshold,
    relative_frr_impact,
    threshold_at_far,
)
from nessa_lib.evaluation.bootstrap import SpeakerBootstrap
from nessa_lib.evaluation.ablation import _nested_order, alignment_ablation, alignment_ablations
from nessa_lib.evaluation.findings import FINDING_A, FINDING_B, FINDING_C, paper_findings
from nessa_lib.evaluation.tables import (
    SYMMETRIC_X,
    SYMMETRIC_Y,
    aligned_scores,
    compare_methods,
    evaluate_pair,
    fit_aligners,
    gain_recovered,
)


def lists(speakers, ids, k=2):
    """First k utterances of each speaker enroll; every other utterance is a target or non-target test."""
    df = pd.DataFrame({"utt_id": ids, "speaker_id": speakers.astype(str)})
    df["rank"] = df.groupby("speaker_id").cumcount()
    enroll = df[df["rank"] < k].rename(columns={"speaker_id": "profile_id"})[["profile_id", "utt_id"]]
    test = df[df["rank"] >= k]
    profiles = enroll["profile_id"].unique()
    rows = [(int(p == s), p, u) for p in profiles for u, s in zip(test.utt_id, test.speaker_id)]
    return enroll, pd.DataFrame(rows, columns=["label", "profile_id", "test_utt_id"])


def test_gain_recovered_values():
    assert gain_recovered(0.5, 0.25, 0.5) == 0.0  # no better than not updating
    assert gain_recovered(0.5, 0.25, 0.25) == 1.0  # as good as re-enrolling everybody
    assert gain_recovered(0.25, 0.5, 0.375) == 0.5  # Y worse: the share of the loss
    assert np.isnan(gain_recovered(0.3, 0.3, 0.2))


@pytest.fixture(scope="module")
def rotated_pair():
    # X noisier than Y; Y is X's latent rotated: the asymmetric systems sit between X/X and Y/Y.
    kw = dict(d_latent=8, d_x=8, d_y=8, noise_x=0.5, noise_y=0.2)
    fit = toy.make_paired_spaces(120, 6, rng=np.random.default_rng(2), **kw)
    ev = toy.make_paired_spaces(30, 6, rng=np.random.default_rng(2), speaker_offset=500, **kw)
    ids = np.array([f"u{i}" for i in range(len(ev.x))])
    enroll, trials = lists(ev.speakers, ids)
    return fit, ev, ids, enroll, trials


def test_compare_methods_table(rotated_pair):
    fit, ev, ids, enroll, trials = rotated_pair
    table, aligners = compare_methods(fit.x, fit.y, fit.speakers, ev.x, ev.y, ids, enroll, trials,
                                      methods=["identity", "linear", "speaker-logit"], seed=0)
    assert table.index.tolist() == ["symmetric X/X", "symmetric Y/Y", "identity", "linear", "speaker-logit"]
    assert set(aligners) == {"identity", "linear", "speaker-logit"}
    xx, yy = table.loc["symmetric X/X", "eer"], table.loc["symmetric Y/Y", "eer"]
    assert yy < xx  # Y is the better model here
    assert table.loc["symmetric X/X", "gain_recovered"] == 0.0 and table.loc["symmetric Y/Y", "gain_recovered"] == 1.0
    assert table.loc["identity", "eer"] > 0.3  # unaligned rotated spaces: near chance
    assert table.loc["linear", "gain_recovered"] > 0.2  # undoing the rotation keeps part of Y's advantage
    assert table.loc["symmetric X/X", "rel_frr_change"] == 0.0
    assert (table["fit_s"] >= 0).all()


def test_identity_skipped_for_different_dims():
    p = toy.make_paired_spaces(20, 4, d_x=4, d_y=6, d_latent=4, warp_y="nonlinear", rng=np.random.default_rng(0))
    ids = np.array([f"u{i}" for i in range(len(p.x))])
    enroll, trials = lists(p.speakers, ids)
    table, _ = compare_methods(p.x, p.y, p.speakers, p.x, p.y, ids, enroll, trials,
                               methods=["identity", "linear"])
    assert "identity" not in table.index and "linear" in table.index


# --- fit / evaluate split ------------------------------------------------------------------------


def test_fit_then_evaluate_equals_compare_methods(rotated_pair):
    fit, ev, ids, enroll, trials = rotated_pair
    methods = ["linear", "procrustes"]
    table, _ = compare_methods(fit.x, fit.y, fit.speakers, ev.x, ev.y, ids, enroll, trials, methods=methods)
    timings = {}
    aligners = fit_aligners(fit.x, fit.y, fit.speakers, methods=methods, timings=timings)
    assert list(aligners) == methods and set(timings) == set(methods)
    split = evaluate_pair(aligners, ev.x, ev.y, ids, enroll, trials, fit_s=timings)
    assert split.index.tolist() == table.index.tolist() and split.columns.tolist() == table.columns.tolist()
    pd.testing.assert_frame_equal(split.drop(columns="fit_s"), table.drop(columns="fit_s"))
    # Without timings (aligners loaded from disk in another stage) the fit time is unknown, not zero.
    assert evaluate_pair(aligners, ev.x, ev.y, ids, enroll, trials)["fit_s"].isna().sum() == 2


def test_fit_aligners_checks_every_methods_hparams_first(rotated_pair):
    fit, *_ = rotated_pair
    full = {"linear": {"ridge": 0.001}, "nessa-m3": {"dropout": 0.2}}  # hparams of a method not fitted are fine
    assert list(fit_aligners(fit.x, fit.y, fit.speakers, methods=["linear"], hparams=full)) == ["linear"]
    for bad, match in (({"nessa_m3": {}}, "unknown alignment method 'nessa_m3'"),
                       ({"nessa-m3": {"lr": "1e-3"}}, "'lr' must be float"),
                       ({"nessa-m2": {"hiddendim": 8}}, "unknown hyper-parameter")):
        with pytest.raises(ValueError, match=match):
            fit_aligners(fit.x, fit.y, fit.speakers, methods=["linear"], hparams=bad)


# --- thresholds -----------------------------------------------------------------------------------

# Non-targets 0.1, 0.2, 0.2, 0.4, 0.5; targets 0.2, 0.5, 0.6 (ties across and within classes).
TOY_SCORES = np.array([0.1, 0.2, 0.2, 0.4, 0.5, 0.2, 0.5, 0.6])
TOY_LABELS = np.array([0, 0, 0, 0, 0, 1, 1, 1])


@pytest.mark.parametrize("far, above, far_got, frr_got", [
    (0.0, 0.5, 0.0, 2 / 3),   # no false alarm allowed: reject the top non-target 0.5 (and the target tied with it)
    (0.2, 0.4, 0.2, 1 / 3),   # one false alarm: just above the second-largest non-target
    (0.5, 0.2, 0.4, 1 / 3),   # two allowed, but 0.2 is tied: accepting it would give four, so only two
    (0.6, 0.2, 0.4, 1 / 3),   # three allowed: same tie, same threshold
    (0.8, 0.1, 0.8, 0.0),     # four allowed: just above the smallest non-target
])
def test_threshold_at_far_hand_computed(far, above, far_got, frr_got):
    t = threshold_at_far(TOY_SCORES, TOY_LABELS, far)
    assert t == np.nextafter(above, np.inf)  # the smallest float accepting nothing at or below `above`
    assert rates_at_threshold(TOY_SCORES, TOY_LABELS, t) == pytest.approx((far_got, frr_got))


def test_threshold_at_far_edges_and_rates():
    assert threshold_at_far(TOY_SCORES, TOY_LABELS, 1.0) == -np.inf
    assert rates_at_threshold(TOY_SCORES, TOY_LABELS, -np.inf) == (1.0, 0.0)
    assert rates_at_threshold(TOY_SCORES, TOY_LABELS, np.inf) == (0.0, 1.0)
    # Accept when score >= threshold: a threshold equal to the tied 0.2 accepts all three 0.2 scores.
    assert rates_at_threshold(TOY_SCORES, TOY_LABELS, 0.2) == pytest.approx((0.8, 0.0))
    with pytest.raises(ValueError, match="fraction"):
        threshold_at_far(TOY_SCORES, TOY_LABELS, 1.5)  # a percentage by mistake


def test_threshold_agrees_with_metrics_frr_at_far():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 2000)
    scores = np.round(rng.normal(size=2000) + labels, 2)  # rounding makes many ties
    for far in (0.0, 0.01, 0.05, 0.333, 0.9):
        t = threshold_at_far(scores, labels, far)
        got_far, got_frr = rates_at_threshold(scores, labels, t)
        assert got_far <= far
        assert got_frr == metrics.frr_at_far(scores, labels, far)
        # Smallest: any lower threshold (the largest score below t) breaks the FAR limit.
        below = scores[scores < t]
        if below.size:
            assert rates_at_threshold(scores, labels, below.max())[0] > far


def test_alignment_trials_uses_only_given_utterances():
    spk = np.repeat(["s1", "s2", "s3"], 4)
    ids = np.array([f"a{i}" for i in range(12)])
    enroll, trials = alignment_trials(spk, ids, k_enroll=2, n_nontarget_per_profile=3, rng=0)
    assert len(enroll) == 6 and set(enroll["utt_id"]) <= set(ids)
    assert (trials["label"] == 1).sum() == 6 and (trials["label"] == 0).sum() == 9
    assert set(trials["test_utt_id"]).isdisjoint(enroll["utt_id"])


def pool(p, ids, splits=None):
    """A toy pair as the A/B case study's paired fit/calibration pool (x = A, y = B), all rows in one split."""
    return PairedSplits(p.x, p.y, ids, p.speakers, np.full(len(ids), "align") if splits is None else splits,
                        "A@1", "B@1")


# --- A/B case study -------------------------------------------------------------------------------

HP = {m: {"max_epochs": 20, "hidden_dim": 32} for m in ("nessa-m1", "nessa-m2", "nessa-m3")}


@pytest.fixture(scope="module")
def ab_inputs():
    # A = X (noisier, in production), B = Y (better); B's space is A's latent rotated.
    kw = dict(d_latent=8, d_x=8, d_y=8, noise_x=0.8, noise_y=0.2)
    fit = toy.make_paired_spaces(150, 8, rng=np.random.default_rng(5), **kw)
    ev = toy.make_paired_spaces(40, 8, rng=np.random.default_rng(5), speaker_offset=500, **kw)
    ids_fit = np.array([f"a{i}" for i in range(len(fit.x))])
    ids = np.array([f"u{i}" for i in range(len(ev.x))])
    enroll, trials = alignment_trials(ev.speakers, ids, k_enroll=2, n_nontarget_per_profile=150, rng=1)
    args = (pool(fit, ids_fit), ev.x, ev.y, ids, enroll, trials)
    return args, dict(far=0.05, seed=0, k_enroll=2, n_nontarget_per_profile=100, hparams=HP)


@pytest.fixture(scope="module")
def ab_setup(ab_inputs):
    args, kw = ab_inputs
    return ab_case_study(*args, **kw)


def test_ab_case_study_rows_and_columns(ab_setup):
    t = ab_setup
    assert t.index.tolist() == [AB_CONTROL, AB_REENROLL, AB_M2, AB_M1]
    for c in ("eer", "frr_at_far_oracle", "threshold_oracle", "threshold_calibrated", "far_calibration",
              "far_deployed", "frr_deployed", "threshold_aa", "far_at_aa_threshold", "frr_at_aa_threshold"):
        assert c in t.columns
    rates = t.drop(columns=[c for c in t.columns if c.startswith("threshold")])
    assert ((rates >= 0) & (rates <= 1)).all().all()  # fractions, not percentages
    assert (t["far_calibration"] <= 0.05).all()  # the calibration trials meet the target by construction
    assert t.attrs["n_calibration_nontarget"] == 150 * 100
    # The oracle threshold is the best FRR any threshold with FAR <= 5 % gets on these trials.
    assert (t["frr_at_far_oracle"] <= t["frr_deployed"] + (t["far_deployed"] > 0.05)).all()


def test_ab_case_study_calibrated_far_close_to_target(ab_setup):
    # 40 evaluation profiles x 150 non-targets: the binomial sd of an FAR near 0.05 is ~0.003 on the 6,000
    # evaluation non-targets and ~0.002 on the 15,000 calibration ones, but trials sharing a profile are
    # correlated; over toy seeds of this size the deployed FAR spread with sd ~0.008. 0.025 is ~3 sd. (The
    # mapped systems land a little low, ~0.04: they are calibrated on their aligner's own training utterances.)
    assert np.allclose(ab_setup["far_deployed"], 0.05, atol=0.025)


def test_ab_case_study_threshold_carry_over(ab_setup):
    t = ab_setup
    assert (t["threshold_aa"] == t.loc[AB_CONTROL, "threshold_calibrated"]).all()
    aa = t.loc[AB_CONTROL]
    assert aa["frr_at_aa_threshold"] == aa["frr_deployed"] and aa["far_at_aa_threshold"] == aa["far_deployed"]
    mapped = t.loc[[AB_M2, AB_M1]]
    # Each mapped system gets its own threshold, so keeping A/A's changes its operating point.
    assert (mapped["threshold_calibrated"] != mapped["threshold_aa"]).all()
    changed = (mapped["frr_at_aa_threshold"] != mapped["frr_deployed"]) | (
        mapped["far_at_aa_threshold"] != mapped["far_deployed"])
    assert changed.all()
    assert (mapped["frr_at_aa_threshold"] != mapped["frr_deployed"]).any()


def test_relative_frr_impact_hand_computed():
    assert relative_frr_impact(0.5, 0.25) == 0.5  # half of the control's false rejections avoided
    assert relative_frr_impact(0.25, 0.375) == -0.5  # more rejections than the control: negative
    assert relative_frr_impact(0.5, 0.5) == 0.0
    assert np.isnan(relative_frr_impact(0.0, 0.0))  # the control rejects nobody: no share to take
    np.testing.assert_array_equal(relative_frr_impact([0.5, 0.5, 0.0], [0.25, 0.0, 0.5]), [0.5, 1.0, np.nan])


def test_relative_frr_impact_on_a_two_speaker_toy_with_a_paired_interval():
    # Calibration (the same for both systems): non-targets 0.1-0.4, so FAR 25 % allows one false alarm and both
    # thresholds sit just above 0.3. Evaluation: speakers s1, s2 with two targets and two non-targets each.
    cal_labels = np.array([0, 0, 0, 0, 1, 1])
    cal = {AB_CONTROL: np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])}
    cal["system"] = cal[AB_CONTROL]
    spk = np.array(["s1"] * 4 + ["s2"] * 4)
    lab = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    ev = {AB_CONTROL: np.array([0.2, 0.8, 0.1, 0.25, 0.25, 0.9, 0.1, 0.2]),  # misses s1's 0.2 and s2's 0.25
          "system": np.array([0.5, 0.8, 0.1, 0.25, 0.25, 0.9, 0.1, 0.2])}  # misses s2's 0.25 only
    boot = SpeakerBootstrap(spk, lab, n_rounds=3, seed=0)
    boot.counts[:] = [[1, 1], [2, 0], [0, 2]]  # as drawn, s1 twice, s2 twice
    t = operating_point_rows(0.25, cal, cal_labels, ev, lab, boot=boot)
    # Deployed: FRR 2/4 (control) and 1/4 (system): (0.5 - 0.25) / 0.5 = 0.5.
    assert t.loc[AB_CONTROL, "frr_deployed"] == 0.5 and t.loc["system", "frr_deployed"] == 0.25
    assert t.loc["system", "rel_frr_impact"] == 0.5 and t.loc[AB_CONTROL, "rel_frr_impact"] == 0.0
    # Paired rounds: control 1/2 in every round; system 1/4, 0 (s1 twice), 1/2 (s2 twice) -> impacts 0.5, 1, 0,
    # whose 2.5-97.5 percentiles are 0.025 and 0.975. (Unpaired draws could not produce these.)
    assert (t.loc["system", "rel_frr_impact_lo"], t.loc["system", "rel_frr_impact_hi"]) == pytest.approx(
        (0.025, 0.975))
    # At FAR <= 25 % on the evaluation trials themselves (one of the four non-targets may pass: accept from 0.25),
    # the control misses only s1's 0.2 (1/4) and the system nothing: impact 1.
    assert t.loc[AB_CONTROL, "frr_at_far_oracle"] == 0.25 and t.loc["system", "frr_at_far_oracle"] == 0.0
    assert t.loc["system", "rel_frr_impact_oracle"] == 1.0


def test_ab_case_study_one_block_per_far_target(ab_inputs, ab_setup):
    # Several targets share the fits and scores: the 5 % block equals the single-target table.
    args, kw = ab_inputs
    both = ab_case_study(*args, **{**kw, "far": [0.05, 0.125]})
    assert both.index.names == ["far_target", "system"] and both.attrs["far"] == (0.05, 0.125)
    assert both.index.get_level_values("far_target").unique().tolist() == [0.05, 0.125]
    pd.testing.assert_frame_equal(both.loc[0.05], ab_setup)
    at_12 = both.loc[0.125]
    assert (at_12["far_calibration"] <= 0.125).all() and (at_12["far_calibration"] > 0.05).any()
    assert (at_12["rel_frr_impact"] == relative_frr_impact(at_12.loc[AB_CONTROL, "frr_deployed"],
                                                           at_12["frr_deployed"])).all()
    with pytest.raises(ValueError, match="fraction"):
        ab_case_study(*args, **{**kw, "far": [0.05, 12.5]})  # a percentage by mistake


def test_flat_metrics_name_every_far_target_and_the_ab_blocks():
    from nessa_lib.evaluation.tables import flat_metrics

    t = pd.DataFrame({"eer": [0.1], "frr_at_far0.01": [0.5], "frr_at_far0.125": [0.2], "frr_at_far0.125_lo": [0.1],
                      "fit_s": [3.0]}, index=[SYMMETRIC_X])
    ab = pd.DataFrame({"frr_deployed": [0.2, 0.15], "rel_frr_impact": [0.0, 0.25], "threshold_aa": [0.3, 0.3]},
                      index=pd.MultiIndex.from_product([[0.125], [AB_CONTROL, AB_M2]], names=["far_target", "system"]))
    assert flat_metrics({"x-y": t}, ab, fars=(0.01, 0.125)) == {
        "x-y:XX:eer": 0.1, "x-y:XX:frr_at_far0.01": 0.5, "x-y:XX:frr_at_far0.125": 0.2,
        "x-y:XX:frr_at_far0.125_lo": 0.1,
        "ab@far0.125:A/A:frr_deployed": 0.2, "ab@far0.125:A/A:rel_frr_impact": 0.0,
        f"ab@far0.125:{AB_M2}:frr_deployed": 0.15, f"ab@far0.125:{AB_M2}:rel_frr_impact": 0.25}
    assert "x-y:XX:frr_at_far0.125" not in flat_metrics({"x-y": t}, fars=(0.01,))


def test_ab_case_study_calibration_holdout():
    p = toy.make_paired_spaces(20, 5, rng=np.random.default_rng(0))
    ids = np.array([f"u{i}" for i in range(len(p.x))])
    enroll, trials = alignment_trials(p.speakers, ids, k_enroll=2, n_nontarget_per_profile=20, rng=1)
    t = ab_case_study(pool(p, ids), p.x, p.y, ids, enroll, trials, far=0.1, hparams=HP,
                      k_enroll=2, n_nontarget_per_profile=10, calibration_holdout=0.25)
    assert t.attrs["n_fit_pairs"] == 75 and t.attrs["n_calibration_nontarget"] == 5 * 10


def test_ab_case_study_calibrate_on_a_subset():
    # Fit on all 20 speakers (say training + alignment speakers), calibrate on the last 8 only.
    p = toy.make_paired_spaces(20, 5, rng=np.random.default_rng(0))
    ids = np.array([f"u{i}" for i in range(len(p.x))])
    enroll, trials = alignment_trials(p.speakers, ids, k_enroll=2, n_nontarget_per_profile=20, rng=1)
    cal = np.isin(p.speakers, np.unique(p.speakers)[12:])
    t = ab_case_study(pool(p, ids), p.x, p.y, ids, enroll, trials, far=0.1, hparams=HP,
                      k_enroll=2, n_nontarget_per_profile=10, calibrate_on=cal)
    assert t.attrs["n_fit_pairs"] == 100 and t.attrs["n_calibration_nontarget"] == 8 * 10
    # With a holdout, 2 of the 8 calibration speakers leave the fit and are the only ones calibrated on: each
    # profile (2 of 5 utterances) then has only the other speaker's 3 test utterances as non-targets.
    t = ab_case_study(pool(p, ids), p.x, p.y, ids, enroll, trials, far=0.1, hparams=HP,
                      k_enroll=2, n_nontarget_per_profile=10, calibrate_on=cal, calibration_holdout=0.25)
    assert t.attrs["n_fit_pairs"] == 90 and t.attrs["n_calibration_nontarget"] == 2 * 3
    with pytest.raises(ValueError, match="calibrate_on"):
        ab_case_study(pool(p, ids), p.x, p.y, ids, enroll, trials, hparams=HP,
                      calibrate_on=np.zeros(len(ids), bool))


def test_ab_case_study_prefitted_aligners_match_refitting():
    p = toy.make_paired_spaces(12, 5, rng=np.random.default_rng(0))
    ids = np.array([f"u{i}" for i in range(len(p.x))])
    enroll, trials = alignment_trials(p.speakers, ids, k_enroll=2, n_nontarget_per_profile=20, rng=1)
    kw = dict(far=0.1, hparams=HP, k_enroll=2, n_nontarget_per_profile=10, seed=3)
    fitted = fit_aligners(p.x, p.y, p.speakers, methods=("nessa-m2", "nessa-m1"), seed=3, hparams=HP)
    a = ab_case_study(pool(p, ids), p.x, p.y, ids, enroll, trials, **kw)
    b = ab_case_study(pool(p, ids), p.x, p.y, ids, enroll, trials, aligners=fitted, **kw)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError, match="nessa-m1"):
        ab_case_study(pool(p, ids), p.x, p.y, ids, enroll, trials,
                      aligners={"nessa-m2": fitted["nessa-m2"]}, **kw)


def test_ab_case_study_m3_deployment_row():
    # M3 as a third deployment: its own row after the requested ones, calibrated like the others; bad names refused.
    p = toy.make_paired_spaces(12, 5, rng=np.random.default_rng(0))
    ids = np.array([f"u{i}" for i in range(len(p.x))])
    enroll, trials = alignment_trials(p.speakers, ids, k_enroll=2, n_nontarget_per_profile=20, rng=1)
    kw = dict(far=0.1, hparams=HP, k_enroll=2, n_nontarget_per_profile=10, seed=3)
    t = ab_case_study(pool(p, ids), p.x, p.y, ids, enroll, trials,
                      methods=("nessa-m3", "nessa-m2"), **kw)
    assert t.index.tolist() == [AB_CONTROL, AB_REENROLL, AB_M3, AB_M2]
    assert (t["far_calibration"] <= 0.1).all()
    # The M3 row scores exactly what aligned_scores gives with an M3 fitted on the same rows and seed.
    m3 = fit_aligners(p.x, p.y, p.speakers, methods=("nessa-m3",), seed=3, hparams=HP)["nessa-m3"]
    s = aligned_scores(m3, p.x, p.y, ids, enroll, trials)
    assert t.loc[AB_M3, "eer"] == pytest.approx(metrics.eer(s, trials["label"].to_numpy()))
    for bad in (("nessa-m4",), ("nessa-m1", "nessa-m1"), ("linear",)):
        with pytest.raises(ValueError, match="methods must be distinct names"):
            ab_case_study(pool(p, ids), p.x, p.y, ids, enroll, trials, methods=bad, **kw)
    with pytest.raises(ValueError, match="missing \\['nessa-m3'\\]"):
        ab_case_study(pool(p, ids), p.x, p.y, ids, enroll, trials, methods=("nessa-m3",),
                      aligners={"nessa-m2": m3}, **kw)


def test_ab_case_study_calibrate_on_split_names():
    # The pool knows each row's split: naming the calibration split equals passing its mask; unknown names refused.
    p = toy.make_paired_spaces(20, 5, rng=np.random.default_rng(0))
    ids = np.array([f"u{i}" for i in range(len(p.x))])
    enroll, trials = alignment_trials(p.speakers, ids, k_enroll=2, n_nontarget_per_profile=20, rng=1)
    cal = np.isin(p.speakers, np.unique(p.speakers)[12:])
    fit_pool = pool(p, ids, splits=np.where(cal, "align", "train"))
    kw = dict(far=0.1, hparams=HP, k_enroll=2, n_nontarget_per_profile=10)
    by_mask = ab_case_study(fit_pool, p.x, p.y, ids, enroll, trials, calibrate_on=cal, **kw)
    by_name = ab_case_study(fit_pool, p.x, p.y, ids, enroll, trials, calibrate_on="align", **kw)
    pd.testing.assert_frame_equal(by_mask, by_name)
    assert by_name.attrs == by_mask.attrs and by_name.attrs["n_calibration_nontarget"] == 8 * 10
    both = ab_case_study(fit_pool, p.x, p.y, ids, enroll, trials, calibrate_on=["train", "align"], **kw)
    pd.testing.assert_frame_equal(both, ab_case_study(fit_pool, p.x, p.y, ids, enroll, trials, **kw))
    with pytest.raises(ValueError, match=r"calibrate_on names split\(s\) \['eval'\]"):
        ab_case_study(fit_pool, p.x, p.y, ids, enroll, trials, calibrate_on="eval", **kw)
    with pytest.raises(TypeError, match="PairedSplits"):
        ab_case_study(p.x, p.x, p.y, ids, enroll, trials, **kw)  # arrays where the pool belongs


# --- alignment-data ablation ----------------------------------------------------------------------


def test_alignment_ablation_sizes_and_determinism(rotated_pair):
    fit, ev, ids, enroll, trials = rotated_pair
    kw = dict(method="linear", n_speakers=(10, 40, 1000), utts_per_speaker=(2, None))
    a = alignment_ablation(fit.x, fit.y, fit.speakers, ev.x, ev.y, ids, enroll, trials, seed=0, **kw)
    assert a[["n_speakers", "utts_per_speaker"]].values.tolist() == [[10, 2], [10, -1], [40, 2], [40, -1],
                                                                      [1000, 2], [1000, -1]]
    assert a["n_speakers_used"].tolist() == [10, 10, 40, 40, 120, 120]  # 120 speakers exist: capped
    assert a["n_pairs"].tolist() == [20, 60, 80, 240, 240, 720]
    assert a.attrs["eer_xx"] > a.attrs["eer_yy"]
    assert np.allclose(a["gain_recovered"], (a.attrs["eer_xx"] - a["eer"]) / (a.attrs["eer_xx"] - a.attrs["eer_yy"]))
    b = alignment_ablation(fit.x, fit.y, fit.speakers, ev.x, ev.y, ids, enroll, trials, seed=0, **kw)
    pd.testing.assert_frame_equal(a.drop(columns="fit_s"), b.drop(columns="fit_s"))
    c = alignment_ablation(fit.x, fit.y, fit.speakers, ev.x, ev.y, ids, enroll, trials, seed=1, **kw)
    assert not np.allclose(a["eer"][:2], c["eer"][:2])  # another seed draws other speakers
    assert np.isclose(a["eer"].iloc[-1], c["eer"].iloc[-1])  # ... but "all of them" is the same data
    # Fits run largest first; each row still gets its own fit: the last row is a fit on all the data.
    full = aligned_scores(align.fit("linear", fit.x, fit.y, fit.speakers), ev.x, ev.y, ids, enroll, trials)
    assert np.isclose(a["eer"].iloc[-1], metrics.eer(full, trials["label"].to_numpy()))
    assert not np.isclose(a["eer"].iloc[0], a["eer"].iloc[-1])


def test_alignment_ablation_subsets_are_nested():
    spk = np.repeat(np.arange(6), 5)
    order, rows = _nested_order(spk, seed=0)
    assert sorted(order.tolist()) == list(range(6))
    assert all(sorted(r.tolist()) == np.flatnonzero(spk == s).tolist() for s, r in rows.items())
    order2, rows2 = _nested_order(spk, seed=0)
    assert order.tolist() == order2.tolist()  # prefixes of one fixed order: smaller subsets sit in larger ones


def test_alignment_ablation_trained_method(rotated_pair):
    fit, ev, ids, enroll, trials = rotated_pair
    a = alignment_ablation(fit.x, fit.y, fit.speakers, ev.x, ev.y, ids, enroll, trials, method="nessa-m2",
                           n_speakers=(30,), utts_per_speaker=(3,), hparams=HP)
    assert a["n_pairs"].tolist() == [90] and a.attrs["method"] == "nessa-m2" and (a["fit_s"] > 0).all()


def test_alignment_ablations_of_several_methods_equal_each_alone(rotated_pair):
    """One pass over several methods (shared X/X, Y/Y scores and bootstrap, one pool of fits, one method reusing a
    stage fit) gives each method exactly its table and bootstrap rounds alone."""
    from nessa_lib.evaluation.bootstrap import SpeakerBootstrap

    fit, ev, ids, enroll, trials = rotated_pair
    boot = SpeakerBootstrap.from_lists(enroll, trials, dict(zip(ids, ev.speakers)), n_rounds=20, seed=0)
    kw = dict(n_speakers=(20, None), utts_per_speaker=(3, None), hparams=HP, seed=2, boot=boot, return_rounds=True)
    stage = align.fit("nessa-m2", fit.x, fit.y, fit.speakers, seed=2, **HP["nessa-m2"])
    both = alignment_ablations(fit.x, fit.y, fit.speakers, ev.x, ev.y, ids, enroll, trials,
                               methods=["nessa-m2", "linear"], prefitted={"nessa-m2": stage}, workers=2, **kw)
    assert list(both) == ["nessa-m2", "linear"]
    for method, pre in (("nessa-m2", stage), ("linear", None)):
        alone, rounds = alignment_ablation(fit.x, fit.y, fit.speakers, ev.x, ev.y, ids, enroll, trials, method=method,
                                           prefitted=pre, **kw)
        pd.testing.assert_frame_equal(both[method][0].drop(columns="fit_s"), alone.drop(columns="fit_s"))
        np.testing.assert_array_equal(both[method][1], rounds)
        assert both[method][0].attrs == alone.attrs
    assert both["nessa-m2"][0].attrs["reused_fit"] and not both["linear"][0].attrs["reused_fit"]
    with pytest.raises(ValueError, match="distinct"):
        alignment_ablations(fit.x, fit.y, fit.speakers, ev.x, ev.y, ids, enroll, trials, methods=["linear", "linear"])


def test_alignment_ablation_reuses_the_stage_fit_of_all_the_data(rotated_pair, caplog):
    """The all-data point with stage 04's fit (same method, seed, hyper-parameters, rows) is the table fitted
    from scratch; a fit that is not that point (another seed) is not used."""
    fit, ev, ids, enroll, trials = rotated_pair
    kw = dict(method="nessa-m2", n_speakers=(30, None), utts_per_speaker=(3, None), hparams=HP, seed=4)
    fresh = alignment_ablation(fit.x, fit.y, fit.speakers, ev.x, ev.y, ids, enroll, trials, **kw)
    stage = align.fit("nessa-m2", fit.x, fit.y, fit.speakers, seed=4, **HP["nessa-m2"])
    reused = alignment_ablation(fit.x, fit.y, fit.speakers, ev.x, ev.y, ids, enroll, trials, prefitted=stage, **kw)
    assert reused.attrs["reused_fit"] and not fresh.attrs["reused_fit"]
    pd.testing.assert_frame_equal(fresh.drop(columns="fit_s"), reused.drop(columns="fit_s"))
    assert reused["fit_s"].isna().tolist() == [False, False, False, True]  # the (all, all) row was not fitted here
    other = align.fit("nessa-m2", fit.x, fit.y, fit.speakers, seed=5, **HP["nessa-m2"])
    with caplog.at_level(logging.INFO, logger="nessa_lib.evaluation.ablation"):
        refit = alignment_ablation(fit.x, fit.y, fit.speakers, ev.x, ev.y, ids, enroll, trials, prefitted=other, **kw)
    assert not refit.attrs["reused_fit"] and "'seed': (5, 4)" in caplog.text
    pd.testing.assert_frame_equal(fresh.drop(columns="fit_s"), refit.drop(columns="fit_s"))


# --- the paper's claims ---------------------------------------------------------------------------


def table(xx, yy, **eers):
    names = {"m1": "nessa-m1", "m2": "nessa-m2", "m3": "nessa-m3", "sl": "speaker-logit"}
    t = pd.DataFrame({"eer": [xx, yy] + list(eers.values())},
                     index=[SYMMETRIC_X, SYMMETRIC_Y] + [names[k] for k in eers])
    t["gain_recovered"] = [gain_recovered(xx, yy, e) for e in t["eer"]]
    return t


@pytest.fixture
def findings():
    # Symmetric EERs: A 0.10 (softmax), B 0.05 (aam, the better one), C 0.08 (supcon).
    tables = {
        "A->B": table(0.10, 0.05, m1=0.09, m2=0.06, m3=0.07, sl=0.08),  # (a) yes (b) yes: M2 into B; (c) 0.8
        "B->A": table(0.05, 0.10, m1=0.07, m2=0.06, m3=0.08, sl=0.05),  # (a) no; (b) no: M1 into B is worse
        "A->C": table(0.10, 0.08, m1=0.095, m2=0.09, sl=0.12),          # (a) yes; (c) gain 0.5 < 0.6
    }
    pairs = {"A->B": ("A", "B"), "B->A": ("B", "A"), "A->C": ("A", "C")}
    return paper_findings(tables, pairs, {"A": "softmax", "B": "aam", "C": "supcon"})


def holds(df, finding, group, evidence):
    row = df[(df.finding == finding) & (df.group == group) & (df.evidence == evidence)]
    assert len(row) == 1, (finding, group, evidence)
    return row.iloc[0]


def test_paper_findings_a(findings):
    f = findings
    assert bool(holds(f, FINDING_A, "classification", "A->B").holds)
    r = holds(f, FINDING_A, "classification", "B->A")
    assert not r.holds and r.value == 0.06 and r.reference == 0.05
    s = holds(f, FINDING_A, "classification", "summary over 2 pair(s)")
    assert not s.holds and s.value == 0.5
    assert bool(holds(f, FINDING_A, "contrastive", "A->C").holds)  # one contrastive model is enough
    assert bool(holds(f, FINDING_A, "contrastive", "summary over 1 pair(s)").holds)


def test_paper_findings_b(findings):
    f = findings[findings.finding == FINDING_B]
    assert set(f.evidence) == {"A->B", "B->A", "summary over 2 pair(s)"}  # A->C has no C->A: not tested
    r = holds(f, FINDING_B, "both orientations", "A->B")
    assert r.holds and (r.value, r.reference) == (0.06, 0.09)  # M2 (into B) vs M1 (into A)
    r = holds(f, FINDING_B, "both orientations", "B->A")
    assert not r.holds and (r.value, r.reference) == (0.07, 0.06)  # M1 (into B) vs M2 (into A)
    assert not holds(f, FINDING_B, "both orientations", "summary over 2 pair(s)").holds


def test_paper_findings_c(findings):
    f = findings[findings.finding == FINDING_C]
    assert set(f.evidence) == {"A->B", "A->C", "summary over 2 pair(s)"}  # B->A: Y is worse, left out
    assert holds(f, FINDING_C, "Y better than X", "A->B").value == pytest.approx(0.8)
    r = holds(f, FINDING_C, "Y better than X", "A->C")
    assert not r.holds and r.value == pytest.approx(0.5) and r.reference == 0.6
    assert findings["holds"].dtype == "boolean"


def test_paper_findings_untestable_and_errors():
    t = table(0.1, 0.1, m1=0.09, m2=0.08)  # no speaker-logit row; X and Y tie
    f = paper_findings({"p": t, "q": t}, {"p": ("A", "B"), "q": ("B", "A")}, {"A": "ge2e", "B": "aam"})
    assert f[f.finding == FINDING_A]["holds"].isna().all()
    assert f[f.finding == FINDING_B]["holds"].isna().all()  # no better model
    assert (f.finding == FINDING_C).sum() == 1  # only the (empty) summary
    with pytest.raises(ValueError, match="unknown objective"):
        paper_findings({"p": t}, {"p": ("A", "B")}, {"A": "triplet", "B": "aam"})
    with pytest.raises(ValueError, match="no training objective"):
        paper_findings({"p": t}, {"p": ("A", "B")}, {"A": "aam"})
