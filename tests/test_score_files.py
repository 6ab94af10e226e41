"""Per-trial score files (Kaldi / WeSpeaker layout): hand-written toy files, round trips, and stage 05's folder."""

import gzip

import numpy as np
import pandas as pd
import pytest

from nessa_lib.evaluation import metrics
from nessa_lib.evaluation.score_files import (
    format_scores,
    read_score_file,
    score_file_name,
    write_score_file,
    write_study_scores,
)

TOY = ("spk1 spk1_02 0.75 target\n"
       "spk1 spk2_00 -0.125 nontarget\n"
       "spk2 spk2_01 0.5 target\n"
       "spk2 spk1_00 0.5 nontarget\n")


def test_toy_file_by_hand(tmp_path):
    p = write_score_file(tmp_path / "XX.txt", ["spk1", "spk1", "spk2", "spk2"],
                         ["spk1_02", "spk2_00", "spk2_01", "spk1_00"], np.float32([0.75, -0.125, 0.5, 0.5]),
                         np.array([1, 0, 1, 0]))
    assert p.read_text() == TOY
    back = read_score_file(p)
    assert back.columns.tolist() == ["profile_id", "test_utt_id", "score", "label"]
    assert back["score"].tolist() == [0.75, -0.125, 0.5, 0.5] and back["label"].tolist() == [1, 0, 1, 0]
    # labels as words or booleans give the same file
    write_score_file(tmp_path / "b.txt", back.profile_id, back.test_utt_id, back.score,
                     ["target", "nontarget", "target", "nontarget"])
    write_score_file(tmp_path / "c.txt", back.profile_id, back.test_utt_id, back.score, [True, False, True, False])
    assert (tmp_path / "b.txt").read_text() == (tmp_path / "c.txt").read_text() == TOY


def test_read_like_wespeaker_compute_metrics(tmp_path):
    """WeSpeaker's compute_metrics.py: four whitespace tokens, float(tokens[2]), tokens[-1] == 'target'."""
    write_score_file(tmp_path / "s.txt", ["a"] * 3, ["a_1", "b_1", "c_1"], [0.9, 0.2, 0.4], [1, 0, 0])
    scores, labels = [], []
    for line in open(tmp_path / "s.txt"):
        tokens = line.strip().split()
        assert len(tokens) == 4
        scores.append(float(tokens[2]))
        labels.append(tokens[-1] == "target")
    assert scores == [0.9, 0.2, 0.4] and labels == [True, False, False]


def test_metrics_from_the_file_are_the_studys_exactly(tmp_path):
    """Shortest round-trip text keeps every float32 score, so the order and ties (and EER, minDCF) are unchanged;
    5 decimals, WeSpeaker's, would tie distinct scores."""
    rng = np.random.default_rng(0)
    labels = (rng.random(4000) < 0.1).astype(int)
    scores = (0.5 + 1e-6 * rng.normal(size=4000) + 2e-6 * labels).astype(np.float32)  # all within a few 1e-6
    back = read_score_file(write_score_file(tmp_path / "s.txt", ["p"] * 4000, [f"u{i}" for i in range(4000)],
                                            scores, labels))
    np.testing.assert_array_equal(back["score"].to_numpy().astype(np.float32), scores)
    assert metrics.eer(back["score"], back["label"]) == metrics.eer(scores, labels)
    assert metrics.min_dcf(back["score"], back["label"]) == metrics.min_dcf(scores, labels)
    assert len(np.unique(np.round(scores.astype(np.float64), 5))) < len(np.unique(scores))


def test_format_keeps_float64_too():
    x = np.array([1 / 3, -2.5e-7, 1.0])
    np.testing.assert_array_equal(format_scores(x).astype(np.float64), x)
    assert format_scores(np.array([1, 0])).tolist() == ["1.0", "0.0"]


def test_gzip_round_trip_and_same_bytes(tmp_path):
    args = (["a", "a"], ["a_1", "b_1"], np.float32([0.3, 0.1]), [1, 0])
    p = write_score_file(tmp_path / "s.txt.gz", *args)
    first = p.read_bytes()
    write_score_file(p, *args)
    assert p.read_bytes() == first  # no timestamp or name in the gzip header
    assert gzip.decompress(first).decode() == "a a_1 0.3 target\na b_1 0.1 nontarget\n"
    assert read_score_file(p)["score"].tolist() == pytest.approx([0.3, 0.1])


@pytest.mark.parametrize("args, message", [
    ((["a b"], ["t"], [0.1], [1]), "no whitespace"),
    ((["a"], [""], [0.1], [1]), "non-empty"),
    ((["a", "a"], ["t"], [0.1, 0.2], [1, 0]), "test_ids has 1 entries, the scores 2"),
    ((["a"], ["t"], [np.nan], [1]), "finite"),
    ((["a"], ["t"], [0.1], [2]), "1 \\(target\\) or 0"),
    ((["a"], ["t"], [0.1], ["tgt"]), "'target' or 'nontarget'"),
    ((["a"], ["t"], [[0.1]], [1]), "one-dimensional"),
    ((["a"], ["t"], ["high"], [1]), "must be numbers"),
])
def test_bad_inputs_write_nothing(tmp_path, args, message):
    with pytest.raises(ValueError, match=message):
        write_score_file(tmp_path / "s.txt", *args)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text, message", [
    ("a b 0.1\n", "line 1: expected"),
    ("a b 0.1 target\na c 0.2 impostor\n", "line 2: expected"),
    ("a b x target\n", "a score is not a number"),
])
def test_reader_names_the_bad_line(tmp_path, text, message):
    (tmp_path / "s.txt").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_score_file(tmp_path / "s.txt")


def test_file_names():
    assert [score_file_name(s) for s in ("X/X", "Y/Y", "nessa-m1")] == ["XX.txt", "YY.txt", "nessa-m1.txt"]
    with pytest.raises(ValueError):
        score_file_name("a/b")


def test_study_scores_of_a_tiny_study(tmp_path):
    """Stage 05's call on an in-memory study: one file per system of every pair, in the trial list's order,
    the same EER as the study's table; a second call with fewer systems leaves no stale file."""
    from test_asnorm import tiny_study

    from nessa_lib.stages.evaluate import evaluate_study

    study, _, enroll, trials = tiny_study()
    evaluated = evaluate_study(study, enroll, trials, fars=(0.1,))
    out = tmp_path / "scores"
    (out / "old-pair").mkdir(parents=True)
    (out / "old-pair" / "XX.txt").write_text("stale\n")
    written = write_study_scores(evaluated.scores, trials, out)
    assert sorted(p.relative_to(out).as_posix() for p in written) == ["x-y/XX.txt", "x-y/YY.txt", "x-y/linear.txt"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "x-y", "x-y/XX.txt", "x-y/YY.txt", "x-y/linear.txt"]
    table = evaluated.tables["x-y"]
    for system, scores in evaluated.scores["x-y"].items():
        back = read_score_file(out / "x-y" / score_file_name(system))
        pd.testing.assert_frame_equal(back[["profile_id", "test_utt_id"]],
                                      trials[["profile_id", "test_utt_id"]].astype(str).reset_index(drop=True))
        assert back["label"].tolist() == trials["label"].tolist()
        np.testing.assert_array_equal(back["score"].to_numpy().astype(scores.dtype), scores)
        assert metrics.eer(back["score"], back["label"]) == metrics.eer(scores, trials["label"])
    assert metrics.eer(read_score_file(out / "x-y" / "linear.txt").score, trials.label) == table["eer"].iloc[-1]
    # rewritten whole: a system that is gone loses its file
    write_study_scores({"x-y": {k: v for k, v in evaluated.scores["x-y"].items() if k != "linear"}}, trials, out)
    assert sorted(p.name for p in (out / "x-y").iterdir()) == ["XX.txt", "YY.txt"]
    with pytest.raises(ValueError, match="scores for"):
        write_study_scores({"x-y": {"X/X": [0.1]}}, trials, out)
