"""nessa_lib.data.prepare and .splits: the data stage's steps on tiny hand-made inputs."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from nessa_lib.data import prepare, splits


def corpus(n_speakers=6, n_utts=3):
    spk = [f"s{i}" for i in range(n_speakers) for _ in range(n_utts)]
    return pd.DataFrame({"utt_id": [f"{s}_{j}" for j, s in enumerate(spk)], "speaker_id": spk,
                         "path": "x", "duration_s": 1.0, "split": ""})


def test_assign_splits_counts_and_disjoint():
    out = splits.assign_splits(corpus(), n_train=3, n_align=1, n_eval=2, rng=0, min_eval_speakers=2)
    assert out.groupby("split")["speaker_id"].nunique().to_dict() == {"align": 1, "eval": 2, "train": 3}
    assert out.groupby("speaker_id")["split"].nunique().max() == 1
    again = splits.assign_splits(corpus(), n_train=3, n_align=1, n_eval=2, rng=0, min_eval_speakers=2)
    pd.testing.assert_frame_equal(out, again)  # same seed, same split


def test_assign_splits_too_few_speakers():
    with pytest.raises(ValueError, match="has 6 speakers but the splits ask for 7"):
        splits.assign_splits(corpus(), n_train=4, n_align=1, n_eval=2, rng=0, min_eval_speakers=1)


def test_assign_splits_with_official_eval_speakers():
    out = splits.assign_splits(corpus(), n_train=2, n_align=2, n_eval=99, rng=0, min_eval_speakers=2,
                                eval_speakers=["s0", "s5"])
    assert sorted(out.loc[out.split == "eval", "speaker_id"].unique()) == ["s0", "s5"]
    assert out.groupby("split")["speaker_id"].nunique().to_dict() == {"align": 2, "eval": 2, "train": 2}
    assert out.index.equals(corpus().index)


def test_split_summary_hours():
    df = corpus().assign(split=["train"] * 9 + ["eval"] * 9)
    s = prepare.split_summary(df)
    assert s.loc["eval", "speakers"] == 3 and s.loc["train", "utterances"] == 9
    assert s.loc["eval", "hours"] == pytest.approx(9 / 3600)


def test_read_source_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown data source 'vox'"):
        prepare.read_source("vox", str(tmp_path), min_clip_s=0.5)
    with pytest.raises(ValueError, match="needs prepare_data.dataset_root"):
        prepare.read_source("voxceleb", "", min_clip_s=0.5)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        prepare.read_source("folder", str(tmp_path / "nowhere"), min_clip_s=0.5)


def test_read_source_folder_skips_bad_files(tmp_path):
    for spk in ("alice", "bob"):
        (tmp_path / spk).mkdir()
        sf.write(tmp_path / spk / "a.wav", np.sin(np.arange(16000) / 5.0) * 0.1, 16000)
    (tmp_path / "bob" / "broken.wav").write_bytes(b"not audio")
    df, skipped = prepare.read_source("folder", str(tmp_path), min_clip_s=0.5, progress=False)
    assert sorted(df.speaker_id) == ["alice", "bob"]
    assert [s[0].endswith("broken.wav") for s in skipped] == [True]


def test_synthetic_manifest_keeps_segments_and_load_waves_honours_them(tmp_path):
    (tmp_path / "wav").mkdir()
    x = (0.2 * np.sin(np.arange(24000) / 3.0)).astype(np.float32)
    sf.write(tmp_path / "wav" / "spk0.flac", x, 16000, format="FLAC", subtype="PCM_16")
    recs = [{"utt_id": f"spk0_{i}", "speaker_id": "spk0", "path": "wav/spk0.flac", "start": a, "stop": b,
             "duration_s": (b - a) / 16000, "enroll": i == 0, "condition": "clean"}
            for i, (a, b) in enumerate([(0, 16000), (16000, 24000)])]
    df = prepare.synthetic_manifest(recs, tmp_path)
    assert list(df.columns) == ["utt_id", "speaker_id", "path", "duration_s", "split", "start", "stop", "enroll",
                                "condition"]
    whole = sf.read(tmp_path / "wav" / "spk0.flac", dtype="float32")[0]
    waves = prepare.load_waves(df, progress=False)
    assert [w.size for w in waves] == [16000, 8000]
    np.testing.assert_array_equal(np.concatenate(waves), whole)
    # a plain list of paths still means whole files
    assert prepare.load_waves([str(tmp_path / "wav" / "spk0.flac")], progress=False)[0].size == 24000
