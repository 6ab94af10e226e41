"""Tests for nessa_lib.evaluation.asnorm: a hand-computed 2-d toy, chunking and symmetry, bad input, and a toy
where one group of speakers scores high against everyone (AS-norm must make the two groups comparable)."""

import numpy as np
import pytest

from nessa_lib import align
from nessa_lib.evaluation.asnorm import as_norm, cohort_stats, normalize_scores
from nessa_lib.evaluation.metrics import eer

COHORT = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]


def test_hand_computed_toy():
    # Enrollment (1, 0): cohort cosines 1, 0, -1, top-2 {1, 0}: mean 0.5, std 0.5.
    # Test (0.6, 0.8): cohort cosines 0.6, 0.8, -0.6, top-2 {0.8, 0.6}: mean 0.7, std 0.1.
    # Score 0.6: ((0.6 - 0.5) / 0.5 + (0.6 - 0.7) / 0.1) / 2 = (0.2 - 1) / 2 = -0.4.
    mean, std = cohort_stats([[1.0, 0.0], [0.6, 0.8]], COHORT, top_k=2)
    np.testing.assert_allclose(mean, [0.5, 0.7])
    np.testing.assert_allclose(std, [0.5, 0.1])
    np.testing.assert_allclose(as_norm([0.6], [[1.0, 0.0]], [[0.6, 0.8]], COHORT, top_k=2), [-0.4])
    # All three cohort members: means 0 and 0.8/3, population stds sqrt(2/3) and sqrt(mean of squares - mean^2).
    mean, std = cohort_stats([[2.0, 0.0], [0.6, 0.8]], COHORT, top_k=3)  # not unit-norm: normalised first
    np.testing.assert_allclose(mean, [0.0, 0.8 / 3])
    np.testing.assert_allclose(std, [np.sqrt(2 / 3), np.sqrt((0.36 + 0.64 + 0.36) / 3 - (0.8 / 3) ** 2)])


def test_separate_test_cohort():
    # Test side against cohort {(0, 1), (0, -1)}: cosines 0.8, -0.8, mean 0, std 0.8.
    z = as_norm([0.6], [[1.0, 0.0]], [[0.6, 0.8]], COHORT, top_k=2, test_cohort=[[0.0, 1.0], [0.0, -1.0]])
    np.testing.assert_allclose(z, [((0.6 - 0.5) / 0.5 + 0.6 / 0.8) / 2])


def test_chunking_and_repeated_rows_do_not_change_the_result():
    rng = np.random.default_rng(0)
    emb, cohort = rng.normal(size=(50, 8)), rng.normal(size=(30, 8))
    m1, s1 = cohort_stats(emb, cohort, top_k=5)
    m2, s2 = cohort_stats(emb, cohort, top_k=5, chunk_rows=7)
    np.testing.assert_allclose(m1, m2, rtol=1e-12)
    np.testing.assert_allclose(s1, s2, rtol=1e-12)
    # Brute force: sort every row's cosines and take the last five.
    en = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cn = cohort / np.linalg.norm(cohort, axis=1, keepdims=True)
    top = np.sort(en @ cn.T, axis=1)[:, -5:]
    np.testing.assert_allclose(m1, top.mean(1), rtol=1e-12)
    np.testing.assert_allclose(s1, top.std(1), rtol=1e-12)
    # Trials repeating rows get the statistics of their own rows.
    rows_e, rows_t = rng.integers(0, 50, 200), rng.integers(0, 50, 200)
    s = rng.uniform(-1, 1, 200)
    want = normalize_scores(s, (m1[rows_e], s1[rows_e]), (m1[rows_t], s1[rows_t]))
    np.testing.assert_allclose(as_norm(s, emb[rows_e], emb[rows_t], cohort, top_k=5), want, rtol=1e-12)


def test_symmetric_in_the_two_sides():
    rng = np.random.default_rng(1)
    e, t, cohort = rng.normal(size=(20, 4)), rng.normal(size=(20, 4)), rng.normal(size=(10, 4))
    s = rng.uniform(-1, 1, 20)
    np.testing.assert_allclose(as_norm(s, e, t, cohort, top_k=3), as_norm(s, t, e, cohort, top_k=3), rtol=1e-12)


@pytest.mark.parametrize("k", [0, 1, 4])
def test_top_k_must_fit_the_cohort(k):
    with pytest.raises(ValueError, match="top_k must be between 2 and the cohort size 3"):
        cohort_stats([[1.0, 0.0]], COHORT, top_k=k)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="dimension 3 but the cohort 2"):
        cohort_stats([[1.0, 0.0, 0.0]], COHORT, top_k=2)
    with pytest.raises(ValueError, match="std 0"):
        cohort_stats([[1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]], top_k=2)
    with pytest.raises(ValueError, match="one each per trial"):
        as_norm([0.1, 0.2], [[1.0, 0.0]], [[1.0, 0.0]], COHORT, top_k=2)
    with pytest.raises(ValueError, match="test std has shape"):
        normalize_scores([0.1, 0.2], ([0.0, 0.0], [1.0, 1.0]), ([0.0, 0.0], [1.0]))


def _grouped_trials(rng, d=16, n_spk=40, per_spk=4):
    """Two groups of speakers; group B shares a strong common direction, so every score among its voices is
    shifted up. Trials pair each profile with test utterances of its own group (as a pooled trial list does)."""
    common = np.zeros(d)
    common[0] = 1.0

    def speakers(n, h):
        u = rng.normal(size=(n, d))
        u[:, 0] = 0
        return u / np.linalg.norm(u, axis=1, keepdims=True) + h * common

    def utts(centres, m):
        return np.repeat(centres, m, axis=0) + 0.9 * rng.normal(size=(len(centres) * m, d)) / np.sqrt(d)

    half = n_spk // 2
    spk = np.r_[speakers(half, 0.0), speakers(half, 1.5)]
    prof, test = utts(spk, 1), utts(spk, per_spk)
    cohort = utts(np.r_[speakers(50, 0.0), speakers(50, 1.5)], 1)  # other speakers, from both groups
    e_rows, t_rows, labels = [], [], []
    for i in range(n_spk):
        for j in range(half) if i < half else range(half, n_spk):
            for u in range(per_spk):
                e_rows.append(i)
                t_rows.append(per_spk * j + u)
                labels.append(int(i == j))
    e, t = prof[e_rows], test[t_rows]
    s = np.einsum("ij,ij->i", e, t) / np.linalg.norm(e, axis=1) / np.linalg.norm(t, axis=1)
    return s, e, t, cohort, np.array(labels)


def test_as_norm_makes_shifted_groups_comparable():
    s, e, t, cohort, y = _grouped_trials(np.random.default_rng(0))
    z = as_norm(s, e, t, cohort, top_k=20)
    group_b = np.arange(len(y)) >= len(y) // 2

    def nontarget_gap(v):
        """Shift between the groups' non-target scores, in units of their (mean) spread."""
        nb, na = v[group_b & (y == 0)], v[~group_b & (y == 0)]
        return (nb.mean() - na.mean()) / (0.5 * (nb.std() + na.std()))

    # Measured: the raw gap is 2.8 spreads, 0.41 after AS-norm.
    assert nontarget_gap(s) > 2.0
    assert abs(nontarget_gap(z)) < 0.6
    # Measured: EER 0.208 on raw cosines, 0.085 after AS-norm (3200 trials, 160 targets).
    assert eer(s, y) > 0.15
    assert eer(z, y) < 0.5 * eer(s, y)


# --------------------------------------------------------------------------------------------
# Cohorts, list scoring, the on/off comparison and stage 05's AS-norm study
# --------------------------------------------------------------------------------------------


def test_speaker_cohort_averages_each_speaker_and_draws_the_same_speakers_for_two_models():
    from nessa_lib.evaluation.asnorm import speaker_cohort

    # Speaker a: (2, 0) and (0, 2) normalised, mean (0.5, 0.5), renormalised (0.7071, 0.7071); b: (0, 1).
    ids, c = speaker_cohort([[2.0, 0.0], [0.0, 2.0], [0.0, 5.0]], ["a", "a", "b"])
    assert ids.tolist() == ["a", "b"]
    np.testing.assert_allclose(c, [[np.sqrt(0.5), np.sqrt(0.5)], [0.0, 1.0]])
    rng = np.random.default_rng(0)
    spk = np.repeat([f"s{i}" for i in range(10)], 3)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 6))
    ids_x, cx = speaker_cohort(x, spk, n_speakers=4, seed=7)
    ids_y, cy = speaker_cohort(y, spk, n_speakers=4, seed=7)
    assert ids_x.tolist() == ids_y.tolist() and len(ids_x) == 4 and cx.shape == (4, 4) and cy.shape == (4, 6)
    with pytest.raises(ValueError, match="cannot draw 11 cohort speakers from a pool of 10 speakers"):
        speaker_cohort(x, spk, n_speakers=11)


def test_as_norm_lists_gathers_each_sides_statistics_by_id():
    """Two profiles and two test utterances on the unit circle; every statistic computed by hand."""
    import pandas as pd

    from nessa_lib.evaluation.asnorm import as_norm_lists
    from nessa_lib.evaluation.lists import score_lists

    # u0 enrolls A (1, 0), u1 enrolls B (0, 1); tests u2 (0.6, 0.8), u3 (0.8, -0.6).
    e = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, -0.6]])
    ids = ["u0", "u1", "u2", "u3"]
    enroll = pd.DataFrame({"profile_id": ["A", "B"], "utt_id": ["u0", "u1"]})
    trials = pd.DataFrame({"label": [1, 0, 0], "profile_id": ["A", "B", "A"], "test_utt_id": ["u2", "u2", "u3"]})
    s = score_lists(e, e, ids, enroll, trials)
    np.testing.assert_allclose(s, [0.6, 0.8, 0.8])
    cp = [[1.0, 0.0], [-1.0, 0.0]]  # profiles' cohort: A gets {1, -1} (mean 0, std 1), B {0, 0}: std 0 -> refused
    with pytest.raises(ValueError, match="all equal"):
        as_norm_lists(s, e, e, ids, enroll, trials, cohort_for_profiles=cp, cohort_for_tests=cp, top_k=2)
    cp = [[1.0, 0.0], [0.0, -1.0]]  # A: {1, 0}: mean 0.5, std 0.5; B: {0, -1}: mean -0.5, std 0.5
    ct = [[0.0, 1.0], [0.0, -1.0]]  # u2: {0.8, -0.8}: mean 0, std 0.8; u3: {-0.6, 0.6}: mean 0, std 0.6
    z = as_norm_lists(s, e, e, ids, enroll, trials, cohort_for_profiles=cp, cohort_for_tests=ct, top_k=2)
    want = [((0.6 - 0.5) / 0.5 + 0.6 / 0.8) / 2, ((0.8 + 0.5) / 0.5 + 0.8 / 0.8) / 2,
            ((0.8 - 0.5) / 0.5 + 0.8 / 0.6) / 2]
    np.testing.assert_allclose(z, want)
    # The profiles side goes through enroll_map like score_lists' profiles: a swap of the two axes.
    swap = lambda p: p[:, ::-1]  # noqa: E731
    z2 = as_norm_lists(score_lists(e, e, ids, enroll, trials, enroll_map=swap), e, e, ids, enroll, trials,
                       cohort_for_profiles=cp, cohort_for_tests=ct, top_k=2, enroll_map=swap)
    # A becomes (0, 1): against cp {0, -1}, mean -0.5; B becomes (1, 0): {1, 0}, mean 0.5; std 0.5 both.
    s2 = np.array([0.8, 0.6, -0.6])
    np.testing.assert_allclose(z2, [((s2[0] + 0.5) / 0.5 + s2[0] / 0.8) / 2, ((s2[1] - 0.5) / 0.5 + s2[1] / 0.8) / 2,
                                    ((s2[2] + 0.5) / 0.5 + s2[2] / 0.6) / 2])
    with pytest.raises(ValueError, match="2 scores for 3 trials"):
        as_norm_lists(s[:2], e, e, ids, enroll, trials, cohort_for_profiles=cp, cohort_for_tests=ct, top_k=2)
    with pytest.raises(ValueError, match="test utterance 'u9'"):
        as_norm_lists(s, e, e, ids, enroll, trials.assign(test_utt_id=["u2", "u2", "u9"]),
                      cohort_for_profiles=cp, cohort_for_tests=ct, top_k=2)


def test_compare_norm_hand_computed_with_paired_intervals():
    """Off: one non-target (0.5) above one of two targets -> EER 0.5; on: separated -> EER 0. With speaker rounds
    drawing only speaker a or only speaker b, the change in each round is known."""
    from nessa_lib.evaluation.asnorm import compare_norm, compared_metrics
    from nessa_lib.evaluation.bootstrap import SpeakerBootstrap

    lab = np.array([0, 1, 0, 1])
    off = {"s": np.array([0.5, 0.4, 0.1, 0.9])}
    on = {"s": np.array([-1.0, 0.4, 0.1, 0.9])}
    boot = SpeakerBootstrap(np.array(["a", "a", "b", "b"]), lab, n_rounds=2)
    boot.counts = np.array([[2.0, 0.0], [0.0, 2.0]])  # round 0: only a (0.5 vs 0.4: EER 1 off, 0 on); round 1: only b
    t = compare_norm(off, on, lab, fars=(0.5,), boot=boot)
    assert t.index.tolist() == [("s", "off"), ("s", "on")]
    assert list(t.columns[:3]) == ["eer", "eer_lo", "eer_hi"]
    assert t["eer"].tolist() == [0.5, 0.0]
    assert t.loc[("s", "on"), "eer_change"] == -0.5 and np.isnan(t.loc[("s", "off"), "eer_change"])
    # Per round: off EER (1, 0), on (0, 0): change (-1, 0); percentile interval of two values.
    np.testing.assert_allclose(t.loc[("s", "off"), ["eer_lo", "eer_hi"]].tolist(), [0.025, 0.975])
    np.testing.assert_allclose(t.loc[("s", "on"), ["eer_change_lo", "eer_change_hi"]].tolist(), [-0.975, -0.025])
    assert {f"{m}_change_hi" for m in compared_metrics((0.5,))} <= set(t.columns)
    with pytest.raises(ValueError, match="the same systems"):
        compare_norm(off, {"t": on["s"]}, lab, fars=(0.5,))


def tiny_study(n_pool_speakers=6, utts=3):
    """A stage-05 Study of one pair (X 3-d -> Y 3-d, Y a rotation of X) with a fitted linear aligner, its fit
    pool in memory, and evaluation lists of 4 speakers."""
    import pandas as pd

    from nessa_lib.embeddings import EmbeddingSet, PairedSplits
    from nessa_lib.stages.evaluate import Evaluated, Study, first_seed_scores
    from nessa_lib.evaluation import tables

    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    centres = rng.normal(size=(n_pool_speakers + 4, 3))
    spk = np.repeat(np.arange(n_pool_speakers + 4), utts)
    x = centres[spk] + 0.3 * rng.normal(size=(len(spk), 3))
    ids = np.array([f"u{i}" for i in range(len(spk))])
    pool = spk < n_pool_speakers
    ev = ~pool
    a = align.fit("linear", x[pool], x[pool] @ q, spk[pool])
    study = Study({"x-y": {"enroll_model": "x", "runtime_model": "y"}}, {},
                  {"x": EmbeddingSet(x[ev].astype(np.float32), ids[ev], spk[ev].astype(str), "x"),
                   "y": EmbeddingSet((x[ev] @ q).astype(np.float32), ids[ev], spk[ev].astype(str), "y")},
                  {"x-y": {"linear": [a]}}, None)
    study._pools[("x", "y", ("train",))] = PairedSplits(x[pool], x[pool] @ q, ids[pool], spk[pool].astype(str),
                                                        np.full(pool.sum(), "train"), "x", "y")
    ev_ids, ev_spk = ids[ev], spk[ev]
    first = np.r_[True, ev_spk[1:] != ev_spk[:-1]]
    enroll = pd.DataFrame({"profile_id": ev_spk[first].astype(str), "utt_id": ev_ids[first]})
    tests = ev_ids[~first]
    tspk = ev_spk[~first].astype(str)
    trials = pd.concat([pd.DataFrame({"label": 1, "profile_id": tspk, "test_utt_id": tests}),
                        pd.DataFrame({"label": 0, "profile_id": np.roll(tspk, utts - 1), "test_utt_id": tests})])
    xe, ye, eids = study.eval_pair("x", "y")
    scores = first_seed_scores(tables.pair_scores(study.aligners["x-y"], xe, ye, eids, enroll, trials))
    return study, Evaluated({}, {"x-y": scores}, {}), enroll, trials.reset_index(drop=True)


def test_asnorm_study_rows_and_a_cohort_smaller_than_top_k():
    from nessa_lib.stages.evaluate import asnorm_study

    study, evaluated, enroll, trials = tiny_study()
    t = asnorm_study(study, evaluated, enroll, trials, fit_splits=["train"], top_k=3, cohort_speakers=0, seed=0,
                     fars=(0.25,))
    assert t.index.tolist() == [("x-y", s, n) for s in ("X/X", "Y/Y", "linear") for n in ("off", "on")]
    assert t["eer"].between(0, 1).all()
    # Y is a rotation of X and the aligner (almost) undoes it: all three systems normalise alike.
    np.testing.assert_allclose(t.xs("on", level="asnorm")["eer"].to_numpy()[:2], t.loc[("x-y", "X/X", "on"), "eer"])
    with pytest.raises(ValueError, match=r"evaluate\.asnorm\.top_k \(7\) exceeds the AS-norm cohort of pair 'x-y': "
                                         r"6 speakers"):
        asnorm_study(study, evaluated, enroll, trials, fit_splits=["train"], top_k=7, cohort_speakers=0, seed=0,
                     fars=(0.25,))
    with pytest.raises(ValueError, match=r"evaluate\.asnorm\.top_k \(5\) exceeds .* 4 speakers"):
        asnorm_study(study, evaluated, enroll, trials, fit_splits=["train"], top_k=5, cohort_speakers=4, seed=0,
                     fars=(0.25,))
    with pytest.raises(ValueError, match=r"evaluate\.asnorm\.cohort_speakers \(9\) exceeds the 6 speakers"):
        asnorm_study(study, evaluated, enroll, trials, fit_splits=["train"], top_k=2, cohort_speakers=9, seed=0,
                     fars=(0.25,))
