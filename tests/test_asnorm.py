"""Tests for nessa_lib.evaluation.asnorm: a hand-computed 2-d toy, chunking and symmetry, bad input, and a toy
where one group of speakers scores high against everyone (AS-norm must make the two groups comparable)."""

import numpy as np
import pytest

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
