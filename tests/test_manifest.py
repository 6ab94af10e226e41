"""nessa_lib.data.manifest, .splits, .lists: CSV round-trip, validation errors, speaker-disjoint splits,
enrollment/trial lists."""

import logging
import os

import numpy as np
import pandas as pd
import pytest

from nessa_lib.data.lists import (
    make_enrollment_and_trials, read_enrollment, read_trials, single_utterance_enrollment, write_enrollment,
    write_trials,
)
from nessa_lib.data.manifest import COLUMNS, read_manifest, write_manifest
from nessa_lib.data.splits import speaker_disjoint_split

HEADER = ",".join(COLUMNS)
SEG_HEADER = HEADER + ",start,stop"


def _manifest(root, n_spk=3, n_utt=2):
    rows = [(f"s{s}/{u}", f"s{s}", os.path.join(root, f"s{s}", f"{u}.wav"), 1.0 + u, "")
            for s in range(n_spk) for u in range(n_utt)]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_round_trip_relative_and_absolute_paths(tmp_path):
    data = tmp_path / "data"
    df = _manifest(str(data))
    outside = tmp_path.parent / "elsewhere" / "x.wav"
    df.loc[len(df)] = ["x", "NA", str(outside), 0.75, "eval"]  # speaker "NA" must stay a string
    df["extra"] = "keep"
    m = data / "manifest.csv"
    data.mkdir()
    write_manifest(df, m)
    lines = m.read_text().splitlines()
    assert lines[0] == HEADER + ",extra"
    assert lines[1].startswith("s0/0,s0,s0/0.wav,1.0,,")      # under the manifest dir: relative
    assert f",{outside}," in lines[-1]                          # elsewhere: absolute
    back = read_manifest(m)
    pd.testing.assert_frame_equal(back.astype({c: object for c in back.columns if c != "duration_s"}),
                                  df.astype({c: object for c in df.columns if c != "duration_s"}))
    assert back.loc[len(back) - 1, "speaker_id"] == "NA"
    assert not [f for f in os.listdir(data) if f.startswith(".tmp-")]


def test_relative_paths_follow_the_folder(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    write_manifest(_manifest(str(a)), a / "m.csv")
    b = tmp_path / "b"
    os.rename(a, b)
    assert read_manifest(b / "m.csv")["path"].iloc[0] == str(b / "s0" / "0.wav")


def test_sibling_prefix_is_not_under(tmp_path):
    # /tmp/x/data2/... must not be written as relative to /tmp/x/data
    (tmp_path / "data").mkdir()
    df = _manifest(str(tmp_path / "data2"))
    write_manifest(df, tmp_path / "data" / "m.csv")
    assert str(tmp_path / "data2") in (tmp_path / "data" / "m.csv").read_text()


def _write(tmp_path, body, header=HEADER):
    p = tmp_path / "bad.csv"
    p.write_text(header + "\n" + body)
    return p


@pytest.mark.parametrize("header, body, match", [
    ("utt_id,speaker_id,path,duration_s", "a,s,a.wav,1\n", r"missing column\(s\) \['split'\]"),
    (HEADER, "", "has no rows"),
    (HEADER, "a,s,a.wav,1,\nb,s,b.wav,1,\na,s,c.wav,1,\n", r"utt_id 'a' appears on lines \[2, 4\]"),
    (HEADER, "a,s,a.wav,1,\nb,s,b.wav,nan,\n", r"line 3 \(utt_id 'b'\): duration_s 'nan'"),
    (HEADER, "a,s,a.wav,-1,\n", "line 2 .*duration_s '-1'"),
    (HEADER, "a,s,a.wav,abc,\n", "duration_s 'abc'"),
    (HEADER, "a,s,a.wav,1,test\n", "split 'test' is not one of"),
    (HEADER, "a,,a.wav,1,\n", "line 2 .*empty speaker_id"),
    # the optional segment columns
    (HEADER + ",start", "a,s,a.wav,1,,0\n", "has column 'start' but not 'stop'; give both"),
    (HEADER + ",stop", "a,s,a.wav,1,,10\n", "has column 'stop' but not 'start'"),
    (SEG_HEADER, "a,s,a.wav,1,,0,16000\nb,s,a.wav,1,,16000,\n",
     r"line 3 \(utt_id 'b'\): start 16000 is given without stop"),
    (SEG_HEADER, "a,s,a.wav,1,,,16000\n", r"line 2 \(utt_id 'a'\): stop 16000 is given without start"),
    (SEG_HEADER, "a,s,a.wav,1,,-1,16000\n", r"line 2 \(utt_id 'a'\): start '-1' is not a sample frame"),
    (SEG_HEADER, "a,s,a.wav,1,,0,1.5e4\n", r"line 2 \(utt_id 'a'\): stop '1.5e4' is not a sample frame"),
    (SEG_HEADER, "a,s,a.wav,1,,0,abc\n", "stop 'abc' is not a sample frame"),
    (SEG_HEADER, "a,s,a.wav,1,,16000,16000\n", r"line 2 \(utt_id 'a'\): stop 16000 is not after start 16000"),
])
def test_read_validation_names_file_and_row(tmp_path, header, body, match):
    p = _write(tmp_path, body, header)
    with pytest.raises(ValueError, match=match) as e:
        read_manifest(p)
    assert str(p) in str(e.value)


def test_read_missing_and_check_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_manifest(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty.csv"):
        read_manifest(tmp_path / "empty.csv")
    p = _write(tmp_path, "a,s,a.wav,1,\n")
    with pytest.raises(FileNotFoundError, match=r"bad.csv: line 2 \(utt_id 'a'\): audio file .*a.wav"):
        read_manifest(p, check_files=True)


def test_write_validates_before_touching_disk(tmp_path):
    df = _manifest(str(tmp_path))
    df.loc[1, "utt_id"] = df.loc[0, "utt_id"]
    with pytest.raises(ValueError, match="m.csv"):
        write_manifest(df, tmp_path / "m.csv")
    assert os.listdir(tmp_path) == []


def test_segments_round_trip_as_integers(tmp_path):
    """start/stop (Kaldi-segments style sample frames) are written and read back as integers, never 16000.0."""
    df = _manifest(str(tmp_path), n_spk=1, n_utt=3)
    df["path"] = [str(tmp_path / "s0.flac")] * 2 + [str(tmp_path / "whole.wav")]
    df["start"] = [0, 16000, None]  # pandas makes this a float column with NaN for the whole-file row
    df["stop"] = [16000, 48000, None]
    df["condition"] = "clean"
    m = tmp_path / "m.csv"
    write_manifest(df, m)
    assert m.read_text().splitlines() == [
        SEG_HEADER + ",condition",
        "s0/0,s0,s0.flac,1.0,,0,16000,clean",
        "s0/1,s0,s0.flac,2.0,,16000,48000,clean",
        "s0/2,s0,whole.wav,3.0,,,,clean",
    ]
    back = read_manifest(m)
    assert list(back.columns) == [*COLUMNS, "start", "stop", "condition"]
    assert str(back["start"].dtype) == "Int64" and str(back["stop"].dtype) == "Int64"
    assert back["start"].tolist()[:2] == [0, 16000] and back["stop"].tolist()[:2] == [16000, 48000]
    assert back["start"].isna().tolist() == [False, False, True]
    write_manifest(back, tmp_path / "again.csv")  # what read_manifest returns writes back unchanged
    assert (tmp_path / "again.csv").read_text() == m.read_text()
    # a manifest without the columns stays without them
    write_manifest(df.drop(columns=["start", "stop"]), m)
    assert "start" not in read_manifest(m).columns


def test_write_refuses_bad_segments(tmp_path):
    df = _manifest(str(tmp_path), n_spk=1, n_utt=2)
    with pytest.raises(ValueError, match=r"m.csv: line 3 \(utt_id 's0/1'\): start -8000 is not a sample frame"):
        write_manifest(df.assign(start=[0, -8000], stop=[8000, 16000]), tmp_path / "m.csv")
    with pytest.raises(ValueError, match=r"m.csv: line 2 \(utt_id 's0/0'\): start 0 is given without stop"):
        write_manifest(df.assign(start=[0, 8000], stop=[None, 16000]), tmp_path / "m.csv")
    with pytest.raises(ValueError, match=r"start 2.5 is not a sample frame"):
        write_manifest(df.assign(start=[2.5, 8000], stop=[8000, 16000]), tmp_path / "m.csv")
    with pytest.raises(ValueError, match=r"stop True is not a sample frame"):
        write_manifest(df.assign(start=[0, 1], stop=[True, 16000]), tmp_path / "m.csv")
    assert os.listdir(tmp_path) == []


def test_split_disjoint_complete_deterministic():
    spk = [f"spk{i:03d}" for i in range(200)]
    sizes = {"train": 0.5, "align": 0.25, "eval": 0.25}
    a = speaker_disjoint_split(spk * 3, sizes, np.random.default_rng(7), min_eval_speakers=50)
    b = speaker_disjoint_split(spk[::-1], sizes, np.random.default_rng(7), min_eval_speakers=50)
    assert a == b                                   # same rng, any input order/duplication: same split
    assert set(a) == set(spk)                       # a dict: each speaker in exactly one split
    assert pd.Series(a).value_counts().to_dict() == {"train": 100, "align": 50, "eval": 50}
    c = speaker_disjoint_split(spk, sizes, np.random.default_rng(8), min_eval_speakers=50)
    assert a != c


def test_split_counts_and_rounding():
    spk = list(range(10))
    s = speaker_disjoint_split(spk, {"align": 3, "eval": 4}, 0, min_eval_speakers=4)
    assert pd.Series(s).value_counts().to_dict() == {"": 3, "eval": 4, "align": 3}
    s = speaker_disjoint_split(spk, {"train": 1 / 3, "align": 1 / 3, "eval": 1 / 3}, 0, min_eval_speakers=3)
    assert sorted(pd.Series(s).value_counts().tolist()) == [3, 3, 4]


@pytest.mark.parametrize("sizes, match", [
    ({"train": 0.5, "eval": 0.2}, "sum to 0.7"),
    ({"train": 8, "eval": 5}, "only 10 speakers"),
    ({"test": 1.0}, "unknown split"),
    ({"eval": -1}, ">= 0"),
])
def test_split_bad_sizes(sizes, match):
    with pytest.raises(ValueError, match=match):
        speaker_disjoint_split(range(10), sizes, 0, min_eval_speakers=0)


def test_split_min_eval():
    with pytest.raises(ValueError, match="eval would get 2 of 10 speakers, fewer than min_eval_speakers=100"):
        speaker_disjoint_split(range(10), {"train": 0.8, "eval": 0.2}, 0)


def _toy_eval():
    # a: 4 utts, b: 3, c: 3, d: 1 (dropped when k_enroll=2)
    n = {"a": 4, "b": 3, "c": 3, "d": 1}
    rows = [(f"{s}/{i}", s) for s, k in n.items() for i in range(k)]
    return pd.DataFrame(rows, columns=["utt_id", "speaker_id"]).sample(frac=1, random_state=1)


def test_trials_counts_by_hand(caplog):
    df = _toy_eval()
    with caplog.at_level(logging.WARNING, logger="nessa_lib.data.lists"):
        enroll, trials = make_enrollment_and_trials(df, k_enroll=2, n_nontarget_per_profile=2, rng=0)
    assert any("dropping 1 speaker" in r.getMessage() for r in caplog.records)
    # profiles a, b, c with 2 utts each; test utts: a 2, b 1, c 1
    assert enroll.groupby("profile_id").size().to_dict() == {"a": 2, "b": 2, "c": 2}
    tgt, non = trials[trials.label == 1], trials[trials.label == 0]
    assert tgt.groupby("profile_id").size().to_dict() == {"a": 2, "b": 1, "c": 1}     # 4 targets
    assert non.groupby("profile_id").size().to_dict() == {"a": 2, "b": 2, "c": 2}     # 3 x 2 non-targets
    assert len(trials) == 10
    spk = trials["test_utt_id"].str[0]
    assert (spk[trials.label == 1] == trials.profile_id[trials.label == 1]).all()
    assert (spk[trials.label == 0] != trials.profile_id[trials.label == 0]).all()
    assert not non.duplicated().any()                                               # no replacement per profile
    # test utterances are never enrollment utterances, and every utt is used exactly once as one or the other
    test_utts = set(tgt.test_utt_id)
    assert not test_utts & set(enroll.utt_id)
    assert test_utts | set(enroll.utt_id) == set(df.utt_id) - {"d/0"}
    assert set(non.test_utt_id) <= test_utts


def test_trials_deterministic_and_order_independent():
    df = _toy_eval()
    a = make_enrollment_and_trials(df, k_enroll=1, n_nontarget_per_profile=3, rng=np.random.default_rng(3))
    b = make_enrollment_and_trials(df.iloc[::-1], k_enroll=1, n_nontarget_per_profile=3,
                                   rng=np.random.default_rng(3))
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x, y)


def test_trials_cap_and_errors(caplog):
    df = _toy_eval()
    with caplog.at_level(logging.WARNING, logger="nessa_lib.data.lists"):
        _, trials = make_enrollment_and_trials(df, k_enroll=2, n_nontarget_per_profile=50, rng=0)
    assert (trials.label == 0).sum() == 2 + 3 + 3    # a: b,c tests (2); b: a,c (3); c: a,b (3)
    assert any("fewer than n_nontarget_per_profile=50" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="need at least 2"):
        make_enrollment_and_trials(df, k_enroll=3, n_nontarget_per_profile=1, rng=0)
    with pytest.raises(ValueError, match="split \\['train'\\]"):
        make_enrollment_and_trials(df.assign(split="train"), k_enroll=1, n_nontarget_per_profile=1, rng=0)
    with pytest.raises(ValueError, match="k_enroll must be >= 1"):
        make_enrollment_and_trials(df, k_enroll=0, n_nontarget_per_profile=1, rng=0)


def test_trial_and_enrollment_io_round_trip(tmp_path):
    df = _toy_eval()
    enroll, trials = make_enrollment_and_trials(df, k_enroll=2, n_nontarget_per_profile=2, rng=0)
    write_trials(trials, tmp_path / "trials.txt")
    write_enrollment(enroll, tmp_path / "enroll.txt")
    first = (tmp_path / "trials.txt").read_text().splitlines()[0].split(" ")
    assert first[0] == "1" and len(first) == 3
    e = read_enrollment(tmp_path / "enroll.txt", manifest=df)
    t = read_trials(tmp_path / "trials.txt", manifest=df, enrollment=e)
    pd.testing.assert_frame_equal(t.astype({"profile_id": object, "test_utt_id": object}),
                                  trials.astype({"profile_id": object, "test_utt_id": object}))
    pd.testing.assert_frame_equal(e.astype(object), enroll.astype(object))


def test_trial_reader_errors(tmp_path):
    man = pd.DataFrame({"utt_id": ["a/0", "b/0"]})
    p = tmp_path / "t.txt"
    p.write_text("1 a a/0\n\n0 a zz/9\n")
    with pytest.raises(ValueError, match=r"t.txt: line 3: test_utt_id 'zz/9' is not in the manifest"):
        read_trials(p, manifest=man)
    with pytest.raises(ValueError, match=r"t.txt: line 1: profile_id 'a' is not in the enrollment"):
        read_trials(p, enrollment=pd.DataFrame({"profile_id": ["b"], "utt_id": ["b/0"]}))
    p.write_text("1 a a/0\ntarget a b/0\n")
    with pytest.raises(ValueError, match="t.txt: line 2: label 'target' is not 1"):
        read_trials(p)
    p.write_text("1 a\n")
    with pytest.raises(ValueError, match="t.txt: line 1: expected 3"):
        read_trials(p)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_trials(tmp_path / "nope.txt")
    e = tmp_path / "e.txt"
    e.write_text("a a/0\nb b/1\n")
    with pytest.raises(ValueError, match=r"e.txt: line 2: utt_id 'b/1' is not in the manifest"):
        read_enrollment(e, manifest=man)
    with pytest.raises(ValueError, match="whitespace"):
        write_trials(pd.DataFrame({"label": [1], "profile_id": ["a b"], "test_utt_id": ["x"]}), tmp_path / "w.txt")
    with pytest.raises(ValueError, match="label 2"):
        write_trials(pd.DataFrame({"label": [2], "profile_id": ["a"], "test_utt_id": ["x"]}), tmp_path / "w.txt")


def test_single_utterance_enrollment():
    t = pd.DataFrame({"label": [1, 0, 1], "profile_id": ["u1", "u1", "u2"], "test_utt_id": ["u3", "u4", "u1"]})
    assert single_utterance_enrollment(t).values.tolist() == [["u1", "u1"], ["u2", "u2"]]


def test_enrollment_uses_flagged_utterances_when_present():
    # Speaker a: utterances 0,1 flagged for enrollment (e.g. recorded clean), 2,3 are test.
    df = pd.DataFrame({
        "utt_id": [f"{s}/{i}" for s in "ab" for i in range(4)],
        "speaker_id": [s for s in "ab" for _ in range(4)],
        "enroll": [i < 2 for _ in "ab" for i in range(4)],
    })
    enroll, trials = make_enrollment_and_trials(df, k_enroll=2, n_nontarget_per_profile=2, rng=0)
    assert enroll.values.tolist() == [["a", "a/0"], ["a", "a/1"], ["b", "b/0"], ["b", "b/1"]]
    assert set(trials["test_utt_id"]) == {"a/2", "a/3", "b/2", "b/3"}
    assert trials["label"].tolist() == [1, 1, 0, 0, 1, 1, 0, 0]


def test_first_utterances_keeps_every_speaker_in_id_order():
    from nessa_lib.data.splits import first_utterances

    df = pd.DataFrame({"utt_id": ["b3", "a2", "b1", "a1", "b2"], "speaker_id": ["b", "a", "b", "a", "b"]})
    assert first_utterances(df, 2)["utt_id"].tolist() == ["a2", "b1", "a1", "b2"]  # original row order
    assert first_utterances(df, 0) is df
    assert len(first_utterances(df, 10)) == 5
    with pytest.raises(ValueError, match=">= 0"):
        first_utterances(df, -1)
