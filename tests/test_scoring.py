"""Tests for nessa_lib.evaluation.scoring: normalisation, voice profiles, vectorised cosine trial scoring."""

import numpy as np
import pytest

from nessa_lib.evaluation import scoring
from nessa_lib.evaluation.scoring import l2_normalize, make_profiles, score_trials

S2 = 1 / np.sqrt(2)


def loop_scores(profiles, test, rows_p, rows_t):
    """Reference: one normalised dot product per trial, in Python."""
    p = np.asarray(profiles, dtype=float)
    t = np.asarray(test, dtype=float)
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    t = t / np.linalg.norm(t, axis=1, keepdims=True)
    return np.array([p[i] @ t[j] for i, j in zip(rows_p, rows_t)])


# ---------------------------------------------------------------------------------------------
# l2_normalize


def test_l2_normalize_hand_computed():
    x = np.array([[3.0, 4.0], [0.0, -2.0], [1.0, 1.0]])
    out = l2_normalize(x)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, -1.0], [S2, S2]])
    assert x[0, 0] == 3.0  # input untouched


def test_l2_normalize_keeps_float32_and_handles_extreme_magnitudes():
    x = np.array([[1e30, 1e30], [1e-30, 0.0]], dtype=np.float32)
    out = l2_normalize(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[S2, S2], [1.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(l2_normalize([[1e300, 1e300], [1e-300, 0.0]]), [[S2, S2], [1.0, 0.0]])


def test_l2_normalize_zero_row():
    with pytest.raises(ValueError, match=r"2 all-zero row\(s\), first at row\(s\) \[0, 2\]"):
        l2_normalize([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])


@pytest.mark.parametrize(
    "x, match",
    [
        ([[1.0, np.nan], [1.0, 0.0]], "NaN/inf"),
        ([1.0, 2.0], "2-D"),
        (np.zeros((0, 3)), "empty"),
        ([["a", "b"]], "numeric"),
    ],
)
def test_l2_normalize_bad_input(x, match):
    with pytest.raises(ValueError, match=match):
        l2_normalize(x)


# ---------------------------------------------------------------------------------------------
# make_profiles


def test_profile_is_normalised_mean_of_normalised_vectors():
    # Normalising first matters: [10, 0] and [0, 1] -> [1, 0], [0, 1] -> mean direction (1, 1).
    # Averaging raw vectors would point at (10, 1) instead.
    emb = [[10.0, 0.0], [0.0, 1.0], [0.0, -3.0]]
    ids, prof = make_profiles(emb, ["spk1", "spk1", "spk0"])
    assert ids.tolist() == ["spk0", "spk1"]
    np.testing.assert_allclose(prof, [[0.0, -1.0], [S2, S2]])


def test_make_profiles_matches_per_profile_loop(rng):
    emb = rng.standard_normal((200, 16)).astype(np.float32)
    spk = rng.integers(0, 23, 200)
    ids, prof = make_profiles(emb, spk)
    assert prof.dtype == np.float32
    np.testing.assert_array_equal(ids, np.unique(spk))
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    for i, s in enumerate(ids):
        mean = unit[spk == s].mean(axis=0)
        np.testing.assert_allclose(prof[i], mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(prof, axis=1), 1.0, rtol=1e-6)


def test_make_profiles_errors():
    with pytest.raises(ValueError, match="cancel out"):
        make_profiles([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], ["a", "a", "b"])
    with pytest.raises(ValueError, match="3 rows but profile_ids has 2"):
        make_profiles(np.ones((3, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="all-zero"):
        make_profiles([[0.0, 0.0], [1.0, 0.0]], ["a", "b"])


# ---------------------------------------------------------------------------------------------
# score_trials


def test_score_trials_hand_computed():
    prof = [[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]]
    test = [[2.0, 2.0], [0.0, -1.0], [-4.0, 0.0]]
    got = score_trials(
        prof, ["alice", "bob", "carol"], test, ["u1", "u2", "u3"],
        ["alice", "bob", "bob", "carol", "carol", "alice"],
        ["u1", "u1", "u2", "u1", "u3", "u3"],
    )  # fmt: skip
    np.testing.assert_allclose(got, [S2, S2, -1.0, 1.0, -S2, -1.0])


def test_score_trials_integer_ids_and_row_indices():
    prof = np.array([[1.0, 0.0], [0.0, 1.0]])
    test = np.array([[1.0, 1.0], [0.0, 2.0]])
    by_id = score_trials(prof, [20, 10], test, [7, 9], [10, 20, 20], [9, 9, 7])
    by_row = score_trials(prof, None, test, None, [1, 0, 0], [1, 1, 0])
    np.testing.assert_allclose(by_id, [1.0, 0.0, S2])
    np.testing.assert_array_equal(by_id, by_row)


def test_score_trials_unknown_id_names_first_missing():
    prof, test = np.eye(2), np.eye(2)
    with pytest.raises(ValueError, match=r"trial_profile_ids has id 'zoe' \(first at position 1, 2 trial"):
        score_trials(prof, ["a", "b"], test, ["x", "y"], ["a", "zoe", "max"], ["x", "y", "x"])
    with pytest.raises(ValueError, match=r"trial_test_ids has id 5 \(first at position 0"):
        score_trials(prof, ["a", "b"], test, [1, 2], ["a", "b"], [5, 2])
    with pytest.raises(ValueError, match="not in test_ids"):  # ids of another type never match
        score_trials(prof, ["a", "b"], test, [1, 2], ["a", "b"], ["1", "2"])


def test_score_trials_zero_vector_error():
    prof = np.array([[1.0, 0.0], [0.0, 0.0]])
    test = np.eye(2)
    msg = r"profiles has 1 all-zero row\(s\) used by trials, first at row\(s\) \[1\]"
    with pytest.raises(ValueError, match=msg):
        score_trials(prof, None, test, None, [0, 1], [0, 1])
    # An unused zero row is harmless.
    np.testing.assert_allclose(score_trials(prof, None, test, None, [0], [0]), [1.0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(profiles=[[1.0, np.nan]]), "profiles contains NaN/inf"),
        (dict(test_emb=np.ones((2, 3))), "dimension 3, expected 2"),
        (dict(profile_ids=["a", "a"]), "duplicate id 'a'"),
        (dict(profile_ids=[3, 3]), "duplicate id 3"),
        (dict(profile_ids=["a"]), "profile_ids has 1 entries but its embeddings have 2 rows"),
        (dict(trial_test_ids=[0]), "trial_profile_ids has 2 entries but trial_test_ids has 1"),
        (dict(trial_test_ids=[0, 2]), "row index 2 at position 1, outside 0..1"),
        (dict(trial_test_ids=[0, -1]), "row index -1"),
        (dict(trial_test_ids=[0.0, 1.0]), "must be integer row indices"),
        (dict(trial_profile_ids=[["a", "b"]]), "must be 1-D"),
        (dict(block_size=0), "block_size"),
    ],
)
def test_score_trials_bad_input(kwargs, match):
    args = dict(
        profiles=np.eye(2), profile_ids=["a", "b"], test_emb=np.eye(2), test_ids=None,
        trial_profile_ids=["a", "b"], trial_test_ids=[0, 1],
    )  # fmt: skip
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        score_trials(**args)


def test_score_trials_empty_trial_list():
    out = score_trials(np.eye(2), None, np.eye(2), None, [], [])
    assert out.shape == (0,)


def _random_problem(rng, n_prof=40, n_test=70, n_trials=3000, d=12, dtype=np.float64):
    prof = (rng.standard_normal((n_prof, d)) * rng.uniform(0.1, 10, (n_prof, 1))).astype(dtype)
    test = rng.standard_normal((n_test, d)).astype(dtype)
    rp = rng.integers(0, n_prof, n_trials)
    rt = rng.integers(0, n_test, n_trials)
    return prof, test, rp, rt


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_score_trials_equals_per_trial_loop(rng, dtype):
    prof, test, rp, rt = _random_problem(rng, dtype=dtype)
    pid = np.array([f"spk{i:03d}" for i in range(len(prof))])
    tid = rng.permutation(10_000)[: len(test)]  # unsorted integer ids
    got = score_trials(prof, pid, test, tid, pid[rp], tid[rt])
    assert got.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(got, loop_scores(prof, test, rp, rt), atol=tol)


@pytest.mark.parametrize("block_size", [1, 3, 7, 39, 40, 1000])
def test_blocks_give_same_result(rng, block_size):
    prof, test, rp, rt = _random_problem(rng)
    whole = score_trials(prof, None, test, None, rp, rt)
    blocked = score_trials(prof, None, test, None, rp, rt, block_size=block_size)
    np.testing.assert_allclose(blocked, whole, atol=1e-14)


def test_memory_budget_splits_into_blocks(rng, monkeypatch):
    prof, test, rp, rt = _random_problem(rng)
    whole = score_trials(prof, None, test, None, rp, rt)
    monkeypatch.setattr(scoring, "_BLOCK_BYTES", 8 * 70 * 4)  # 4 profiles' rows per block
    np.testing.assert_allclose(score_trials(prof, None, test, None, rp, rt), whole, atol=1e-14)


def test_sparse_trials_use_gather_path_with_same_result(rng, monkeypatch):
    # 50 trials over 500 x 600 rows: far too sparse for a full matrix product.
    prof, test, rp, rt = _random_problem(rng, n_prof=500, n_test=600, n_trials=50)
    sparse = score_trials(prof, None, test, None, rp, rt)
    np.testing.assert_allclose(sparse, loop_scores(prof, test, rp, rt), atol=1e-12)
    monkeypatch.setattr(scoring, "_DENSE_MIN_FILL", 0.0)  # force the matrix product
    np.testing.assert_allclose(score_trials(prof, None, test, None, rp, rt), sparse, atol=1e-14)


def test_profiles_then_trials_end_to_end(rng):
    emb = rng.standard_normal((60, 8))
    spk = rng.integers(0, 6, 60).astype(str)
    ids, prof = make_profiles(emb[:30], spk[:30])
    test_ids = np.array([f"utt{i}" for i in range(30, 60)])
    trials_p = rng.choice(ids, 200)
    trials_t = rng.choice(test_ids, 200)
    got = score_trials(prof, ids, emb[30:], test_ids, trials_p, trials_t)
    rows_p = np.searchsorted(ids, trials_p)
    rows_t = np.array([int(t[3:]) - 30 for t in trials_t])
    np.testing.assert_allclose(got, loop_scores(prof, emb[30:], rows_p, rows_t), atol=1e-12)
    assert np.all(np.abs(got) <= 1 + 1e-12)


@pytest.mark.parametrize("chunks", [1, 4, 6, 7])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_pool_symmetric_path_equals_loop(rng, monkeypatch, chunks, dtype):
    # Utterance-vs-utterance trials over one pool (the VoxCeleb protocol) take the symmetric path.
    monkeypatch.setattr(scoring, "_SYM_CHUNKS", chunks)
    emb = (rng.standard_normal((45, 10)) * rng.uniform(0.5, 5, (45, 1))).astype(dtype)
    a, b = rng.integers(0, 45, 2000), rng.integers(0, 45, 2000)
    want = loop_scores(emb, emb, a, b)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for other in (emb, emb.copy()):  # same object or equal copy
        got = score_trials(emb, None, other, None, a, b)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, atol=tol)
    ids = np.array([f"utt{i}" for i in range(45)])
    np.testing.assert_allclose(score_trials(emb, ids, emb, ids, ids[a], ids[b]), want, atol=tol)


def test_one_pool_disjoint_sides_use_plain_product(rng, monkeypatch):
    # Enrolment rows 0..19, test rows 20..39 of one matrix: the symmetric 40 x 40 product would
    # cost more than the 20 x 20 one, so the plain path is taken; results agree either way.
    emb = rng.standard_normal((40, 6))
    a, b = rng.integers(0, 20, 500), rng.integers(20, 40, 500)
    got = score_trials(emb, None, emb, None, a, b)
    np.testing.assert_allclose(got, loop_scores(emb, emb, a, b), atol=1e-12)
    monkeypatch.setattr(scoring, "_SYM_COST", 0.0)
    np.testing.assert_allclose(score_trials(emb, None, emb, None, a, b), got, atol=1e-14)
