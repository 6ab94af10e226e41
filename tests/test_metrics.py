"""Tests for nessa_lib.evaluation.metrics: hand-computed cases, bad input, brute-force and sklearn cross-checks."""

import numpy as np
import pytest

from nessa_lib.evaluation import metrics
from nessa_lib.evaluation.metrics import TrialScores, det_curve, eer, frr_at_far, min_dcf, verification_metrics

# ---------------------------------------------------------------------------------------------
# Brute-force O(n^2) reference: one pass over all trials per candidate threshold.


def brute_points(scores, labels):
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels).astype(bool)
    n_t, n_n = y.sum(), (~y).sum()
    thresholds = sorted(set(s.tolist())) + [np.inf]
    far = [np.sum((s >= t) & ~y) / n_n for t in thresholds]
    frr = [np.sum((s < t) & y) / n_t for t in thresholds]
    return np.array(far), np.array(frr), np.array(thresholds)


def brute_eer(far, frr):
    for i in range(len(far)):
        if far[i] <= frr[i]:
            if far[i] == frr[i]:
                return frr[i]
            d0, d1 = far[i - 1] - frr[i - 1], far[i] - frr[i]
            return frr[i - 1] + d0 / (d0 - d1) * (frr[i] - frr[i - 1])
    raise AssertionError("FAR and FRR never cross")


def brute_min_dcf(far, frr, p, c_miss=1.0, c_fa=1.0):
    costs = [c_miss * p * r + c_fa * (1 - p) * a for a, r in zip(far, frr)]
    return min(costs) / min(c_miss * p, c_fa * (1 - p))


def brute_frr_at_far(far, frr, limit):
    return min(r for a, r in zip(far, frr) if a <= limit)


P_TARGETS = (0.001, 0.01, 0.05, 0.3, 0.5, 0.9)
FARS = (0.0, 0.001, 0.01, 0.05, 0.1, 0.37, 0.5, 1.0)


def assert_matches_brute(scores, labels, rtol=1e-12):
    far, frr, thr = brute_points(scores, labels)
    f2, r2, t2 = det_curve(scores, labels)
    np.testing.assert_array_equal(t2, thr)
    np.testing.assert_array_equal(f2, far)
    np.testing.assert_array_equal(r2, frr)
    ts = TrialScores.from_scores(scores, labels)
    assert ts.eer() == pytest.approx(brute_eer(far, frr), rel=rtol, abs=1e-15)
    for p in P_TARGETS:
        for c_miss, c_fa in ((1.0, 1.0), (10.0, 1.0), (1.0, 3.0)):
            want = brute_min_dcf(far, frr, p, c_miss, c_fa)
            assert ts.min_dcf(p, c_miss, c_fa) == pytest.approx(want, rel=rtol, abs=1e-15)
    for limit in FARS:
        assert ts.frr_at_far(limit) == brute_frr_at_far(far, frr, limit)


# ---------------------------------------------------------------------------------------------
# Hand-computed cases.


def test_perfect_separation():
    scores = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    labels = [0, 0, 0, 1, 1, 1]
    assert eer(scores, labels) == 0.0
    assert min_dcf(scores, labels) == 0.0
    assert min_dcf(scores, labels, p_target=0.5) == 0.0
    assert frr_at_far(scores, labels, 0.0) == 0.0


def test_inverted_scores():
    # Every target below every non-target: FAR stays 1 until FRR reaches 1.
    scores = [0.7, 0.8, 0.9, 0.1, 0.2, 0.3]
    labels = [0, 0, 0, 1, 1, 1]
    assert eer(scores, labels) == 1.0
    assert min_dcf(scores, labels) == 1.0
    assert frr_at_far(scores, labels, 0.0) == 1.0


def test_all_tied_scores():
    scores = [0.5] * 6
    labels = [0, 1, 0, 1, 1, 0]
    far, frr, thr = det_curve(scores, labels)
    assert far.tolist() == [1.0, 0.0]
    assert frr.tolist() == [0.0, 1.0]
    assert thr.tolist() == [0.5, np.inf]
    assert eer(scores, labels) == 0.5
    assert min_dcf(scores, labels, 0.01) == 1.0
    assert min_dcf(scores, labels, 0.5) == 1.0


def test_speechbrain_docstring_case():
    pos, neg = [0.6, 0.7, 0.8, 0.5], [0.4, 0.3, 0.2, 0.1]
    assert eer(pos + neg, [1] * 4 + [0] * 4) == 0.0


# Targets 0.2, 0.5, 0.5, 0.9, 0.9; non-targets 0.1, 0.3, 0.5, 0.6, 0.95 (a cross-class tie at
# 0.5, a within-class tie at 0.9). Accept when score >= t:
#
#   t      0.1  0.2  0.3  0.5  0.6  0.9  0.95  inf
#   #T<t    0    0    1    1    3    3    5     5     FRR = #T<t / 5
#   #N>=t   5    4    4    3    2    1    1     0     FAR = #N>=t / 5
#   FRR     0    0   .2   .2   .6   .6    1     1
#   FAR     1   .8   .8   .6   .4   .2   .2     0
#
# EER: FAR > FRR up to t=0.5 (.6 vs .2), FAR < FRR from t=0.6 (.4 vs .6). On the segment
# (.6,.2) -> (.4,.6), FAR-FRR goes .4 -> -.2, zero at alpha = .4/.6 = 2/3:
# EER = .2 + 2/3 * .4 = 7/15.
# minDCF p=0.5: (FRR+FAR) = 1, .8, 1, .8, 1, .8, 1.2, 1 -> 0.8.
# minDCF p=0.25 (norm .25): FRR + 3 FAR = 3, 2.4, 2.6, 2, 1.8, 1.2, 1.6, 1 -> 1.0 (reject-all).
# minDCF p=0.75 (norm .25): 3 FRR + FAR = 1, .8, 1.4, 1.2, 2.2, 2, 3.2, 3 -> 0.8.
# FRR@FAR: <=0.5 -> t=0.6: .6; <=0.2 -> t=0.9: .6; <=0.1 -> inf: 1; <=0.8 -> t=0.2: 0.
TIE_T = [0.2, 0.5, 0.5, 0.9, 0.9]
TIE_N = [0.1, 0.3, 0.5, 0.6, 0.95]


@pytest.fixture
def tie_case(rng):
    scores = np.array(TIE_T + TIE_N)
    labels = np.array([1] * 5 + [0] * 5)
    order = rng.permutation(scores.size)  # input order must not matter
    return scores[order], labels[order]


def test_hand_computed_ties(tie_case):
    scores, labels = tie_case
    far, frr, thr = det_curve(scores, labels)
    assert thr.tolist() == [0.1, 0.2, 0.3, 0.5, 0.6, 0.9, 0.95, np.inf]
    np.testing.assert_allclose(frr, [0, 0, 0.2, 0.2, 0.6, 0.6, 1, 1])
    np.testing.assert_allclose(far, [1, 0.8, 0.8, 0.6, 0.4, 0.2, 0.2, 0])
    assert eer(scores, labels) == pytest.approx(7 / 15)
    assert min_dcf(scores, labels, p_target=0.5) == pytest.approx(0.8)
    assert min_dcf(scores, labels, p_target=0.25) == pytest.approx(1.0)
    assert min_dcf(scores, labels, p_target=0.75) == pytest.approx(0.8)
    assert frr_at_far(scores, labels, 0.5) == pytest.approx(0.6)
    assert frr_at_far(scores, labels, 0.2) == pytest.approx(0.6)
    assert frr_at_far(scores, labels, 0.1) == 1.0
    assert frr_at_far(scores, labels, 0.8) == 0.0


def test_eer_exactly_at_a_point():
    # t=0.5: FRR = 1/2 (0.4 below), FAR = 1/2 (0.6 at/above) -> equal, no interpolation.
    assert eer([0.4, 0.9, 0.3, 0.6], [1, 1, 0, 0]) == 0.5


def test_costs_and_normalisation():
    # Tie case, p=0.25, c_miss=3: weights .75 (miss) and .75 (fa), norm .75 -> FRR+FAR, min .8.
    scores, labels = np.array(TIE_T + TIE_N), np.array([1] * 5 + [0] * 5)
    assert min_dcf(scores, labels, p_target=0.25, c_miss=3.0) == pytest.approx(0.8)


def test_labels_bool_int_float_equivalent(tie_case):
    scores, labels = tie_case
    want = verification_metrics(scores, labels)
    assert verification_metrics(scores, labels.astype(bool)) == want
    assert verification_metrics(scores, labels.astype(float)) == want
    assert verification_metrics(scores.astype(np.float32).tolist(), labels.tolist()).keys() == want.keys()


def test_verification_metrics_matches_single_calls(tie_case):
    scores, labels = tie_case
    m = verification_metrics(scores, labels, p_targets=(0.01, 0.05, 0.5), fars=(0.01, 0.2))
    assert set(m) == {"eer", "min_dcf_p0.01", "min_dcf_p0.05", "min_dcf_p0.5", "frr_at_far0.01", "frr_at_far0.2"}
    assert all(type(v) is float for v in m.values())
    assert m["eer"] == eer(scores, labels)
    assert m["min_dcf_p0.5"] == min_dcf(scores, labels, 0.5)
    assert m["frr_at_far0.2"] == frr_at_far(scores, labels, 0.2)


def test_frr_at_the_papers_12_5_percent_far_hand_computed():
    # 8 non-targets 0.1 ... 0.8: FAR <= 12.5 % lets exactly one pass (accept from just above 0.7); 12.4 % none.
    nontarget = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    target = [0.45, 0.75, 0.85, 0.95]
    scores, labels = nontarget + target, [0] * 8 + [1] * 4
    assert frr_at_far(scores, labels, 0.125) == 0.25  # 0.75 accepted (0.8 the one false alarm): 0.45 missed
    assert frr_at_far(scores, labels, 0.124) == 0.5  # threshold above 0.8: 0.45 and 0.75 missed
    m = verification_metrics(scores, labels, fars=(0.01, 0.05, 0.125))
    assert {k: m[k] for k in ("frr_at_far0.01", "frr_at_far0.05", "frr_at_far0.125")} == {
        "frr_at_far0.01": 0.5, "frr_at_far0.05": 0.5, "frr_at_far0.125": 0.25}


# ---------------------------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize(
    "scores, labels, match",
    [
        ([0.1, 0.2], [1, 1], "no non-target"),
        ([0.1, 0.2], [0, 0], "no target"),
        ([0.1, np.nan, 0.3, np.nan], [0, 1, 0, 1], r"2 NaN/inf value\(s\), first at index 1"),
        ([0.1, 0.2, np.inf], [0, 1, 0], r"1 NaN/inf value\(s\), first at index 2"),
        ([0.1, 0.2, 0.3], [0, 1], "differ in length: 3 scores, 2 labels"),
        ([0.1, 0.2, 0.3], [0, 1, 2], r"0 \(non-target\) or 1 \(target\); 1 other value\(s\), first 2 at index 2"),
        ([0.1, 0.2], [-1, 1], "first -1 at index 0"),
        ([0.1, 0.2], [0.5, 1.0], "first 0.5 at index 0"),
        ([0.1, 0.2], ["0", "1"], "labels must be 0/1 or bool"),
        ([[0.1, 0.2]], [0, 1], "scores must be 1-D"),
        ([0.1, 0.2], [[0, 1]], "labels must be 1-D"),
        ([], [], "empty"),
        (["a", "b"], [0, 1], "scores must be numeric"),
        (0.5, 1, "scores must be 1-D"),
    ],
)
def test_bad_input(scores, labels, match):
    for fn in (eer, min_dcf, det_curve, verification_metrics, lambda s, y: frr_at_far(s, y, 0.01)):
        with pytest.raises(ValueError, match=match):
            fn(scores, labels)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_bad_p_target(p):
    with pytest.raises(ValueError, match="p_target"):
        min_dcf([0.1, 0.9], [0, 1], p_target=p)


@pytest.mark.parametrize("costs", [(0.0, 1.0), (1.0, -1.0), (float("inf"), 1.0)])
def test_bad_costs(costs):
    with pytest.raises(ValueError, match="c_miss and c_fa"):
        min_dcf([0.1, 0.9], [0, 1], 0.01, *costs)


@pytest.mark.parametrize("far", [-0.01, 1.01, float("nan")])
def test_bad_far(far):
    with pytest.raises(ValueError, match="far must be a fraction"):
        frr_at_far([0.1, 0.9], [0, 1], far)


# ---------------------------------------------------------------------------------------------
# Property tests against the brute-force reference.


@pytest.fixture
def tiny_windows(monkeypatch):
    """Force subsampling, value windows, window widening and bucketing on small inputs."""
    monkeypatch.setattr(metrics, "_SAMPLE_SIZE", 3)
    monkeypatch.setattr(metrics, "_EXACT_MAX", 4)
    monkeypatch.setattr(metrics, "_BUCKETS", 5)


def _random_case(rng):
    n = int(rng.integers(2, 300))
    labels = rng.random(n) < rng.uniform(0.05, 0.95)
    i, j = rng.choice(n, size=2, replace=False)
    labels[i], labels[j] = True, False  # both classes present
    shift = rng.uniform(-1, 4)
    decimals = int(rng.integers(0, 3))  # round scores: many ties, within and across classes
    scores = np.round(rng.standard_normal(n) + shift * labels, decimals)
    return scores, labels


def test_random_vs_brute_force(rng):
    for _ in range(60):
        assert_matches_brute(*_random_case(rng))


def test_random_vs_brute_force_small_windows(rng, tiny_windows):
    for _ in range(60):
        assert_matches_brute(*_random_case(rng))


@pytest.mark.parametrize("knobs", [(32768, 1 << 16, 4096), (2, 3, 3), (1, 1, 2)])
def test_small_integer_cases_vs_brute_force(knobs):
    """150 small trial lists with scores on a coarse grid (ties everywhere), under three settings of the
    sampling knobs so the window-widening and bucketing paths run on small inputs. (A seeded loop, not
    hypothesis: hypothesis scans sys.modules and trips over SpeechBrain's lazy optional modules.)"""
    rng = np.random.default_rng(7)
    old = metrics._SAMPLE_SIZE, metrics._EXACT_MAX, metrics._BUCKETS
    metrics._SAMPLE_SIZE, metrics._EXACT_MAX, metrics._BUCKETS = knobs
    try:
        for _ in range(150):
            n = int(rng.integers(2, 41))
            labels = rng.random(n) < 0.5
            labels[:2] = [True, False]  # both classes present
            scores = rng.integers(-5, 6, size=n).astype(float) / 4
            assert_matches_brute(scores, labels)
    finally:
        metrics._SAMPLE_SIZE, metrics._EXACT_MAX, metrics._BUCKETS = old


def _from_det_curve(ts, p_targets, fars):
    """Metrics from the full DET curve (itself checked against brute force above)."""
    far, frr, _ = ts.det_curve()
    return far, frr, brute_eer_vec(far, frr), {p: brute_min_dcf_vec(far, frr, p) for p in p_targets}, {
        f: frr[far <= f].min() for f in fars
    }


def brute_eer_vec(far, frr):
    i = int(np.argmax(far <= frr))
    if far[i] == frr[i]:
        return frr[i]
    d0, d1 = far[i - 1] - frr[i - 1], far[i] - frr[i]
    return frr[i - 1] + d0 / (d0 - d1) * (frr[i] - frr[i - 1])


def brute_min_dcf_vec(far, frr, p):
    return np.min(p * frr + (1 - p) * far) / min(p, 1 - p)


@pytest.mark.parametrize("case", range(6))
def test_large_inputs_match_full_curve(case):
    # Large enough for the default subsample (32 k per class) and bucketing (> 64 k per window),
    # with ties, outliers and class imbalance.
    rng = np.random.default_rng(100 + case)
    n = 150_000
    frac = [0.5, 0.01, 0.5, 0.999, 0.5, 0.2][case]
    labels = rng.random(n) < frac
    labels[:2] = [True, False]
    scores = rng.standard_normal(n) * rng.uniform(0.2, 3) + labels * [2.0, 3.0, 0.3, 1.0, 5.0, 1.5][case]
    if case == 2:
        scores = np.round(scores, 1)
    if case == 4:
        scores[rng.integers(0, n, 20)] = 1e12
    ps, fs = (0.001, 0.01, 0.05, 0.5, 0.8), (0.0, 1e-4, 0.01, 0.05, 0.5)
    ts = TrialScores.from_scores(scores, labels)
    _, _, want_eer, want_dcf, want_frr = _from_det_curve(ts, ps, fs)
    assert ts.eer() == pytest.approx(want_eer, rel=1e-12)
    for p in ps:
        assert ts.min_dcf(p) == pytest.approx(want_dcf[p], rel=1e-12)
    for f in fs:
        assert ts.frr_at_far(f) == want_frr[f]


# ---------------------------------------------------------------------------------------------
# Cross-check with scikit-learn's ROC (which also groups tied scores into one point).


@pytest.mark.parametrize("decimals", [None, 2])
def test_matches_sklearn_roc_curve(decimals):
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(7)
    n = 40_000
    labels = rng.random(n) < 0.3
    scores = rng.standard_normal(n) + 1.7 * labels
    if decimals is not None:
        scores = np.round(scores, decimals)
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    # roc_curve goes from reject-all (thr inf) down; reverse into ascending thresholds.
    far, frr = fpr[::-1], 1 - tpr[::-1]
    far_ours, frr_ours, thr_ours = det_curve(scores, labels)
    np.testing.assert_allclose(far_ours, far, atol=1e-12)
    np.testing.assert_allclose(frr_ours, frr, atol=1e-12)
    np.testing.assert_array_equal(thr_ours[:-1], thr[::-1][:-1])
    m = verification_metrics(scores, labels, p_targets=(0.01, 0.05, 0.5), fars=(0.01, 0.05))
    assert m["eer"] == pytest.approx(brute_eer_vec(far, frr), abs=1e-12)
    for p in (0.01, 0.05, 0.5):
        assert m[f"min_dcf_p{p}"] == pytest.approx(brute_min_dcf_vec(far, frr, p), abs=1e-12)
    for f in (0.01, 0.05):
        assert m[f"frr_at_far{f}"] == pytest.approx(frr[far <= f].min(), abs=1e-12)


def test_frr_key_names_verification_metrics_columns():
    """operating_points.frr_key builds the names metrics.verification_metrics writes (two homes of one format,
    kept apart so stages 01-03 do not depend on the operating points)."""
    from nessa_lib.evaluation import metrics, operating_points

    fars = (0.01, 0.05, 0.125, 0.3)
    m = metrics.verification_metrics([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], fars=fars)
    assert {operating_points.frr_key(f) for f in fars} <= set(m)
    assert operating_points.DEFAULT_FARS == metrics.verification_metrics.__defaults__[1]
