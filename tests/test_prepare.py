"""nessa_lib.data.sources, .splits and the prepare_data stage's steps on tiny hand-made inputs."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from nessa_lib.data import sources, splits
from nessa_lib.stages import prepare_data as stage


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
    s = sources.split_summary(df)
    assert s.loc["eval", "speakers"] == 3 and s.loc["train", "utterances"] == 9
    assert s.loc["eval", "hours"] == pytest.approx(9 / 3600)


def test_read_source_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown data source 'vox'"):
        sources.read_source("vox", str(tmp_path), min_clip_s=0.5)
    with pytest.raises(ValueError, match="needs prepare_data.dataset_root"):
        sources.read_source("voxceleb", "", min_clip_s=0.5)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        sources.read_source("folder", str(tmp_path / "nowhere"), min_clip_s=0.5)


def test_read_source_folder_skips_bad_files(tmp_path):
    for spk in ("alice", "bob"):
        (tmp_path / spk).mkdir()
        sf.write(tmp_path / spk / "a.wav", np.sin(np.arange(16000) / 5.0) * 0.1, 16000)
    (tmp_path / "bob" / "broken.wav").write_bytes(b"not audio")
    df, skipped = sources.read_source("folder", str(tmp_path), min_clip_s=0.5, progress=False)
    assert sorted(df.speaker_id) == ["alice", "bob"]
    assert [s[0].endswith("broken.wav") for s in skipped] == [True]


def test_synthetic_manifest_keeps_segments_and_load_waves_honours_them(tmp_path):
    (tmp_path / "wav").mkdir()
    x = (0.2 * np.sin(np.arange(24000) / 3.0)).astype(np.float32)
    sf.write(tmp_path / "wav" / "spk0.flac", x, 16000, format="FLAC", subtype="PCM_16")
    recs = [{"utt_id": f"spk0_{i}", "speaker_id": "spk0", "path": "wav/spk0.flac", "start": a, "stop": b,
             "duration_s": (b - a) / 16000, "enroll": i == 0, "condition": "clean"}
            for i, (a, b) in enumerate([(0, 16000), (16000, 24000)])]
    df = sources.synthetic_manifest(recs, tmp_path)
    assert list(df.columns) == ["utt_id", "speaker_id", "path", "duration_s", "split", "start", "stop", "enroll",
                                "condition"]
    whole = sf.read(tmp_path / "wav" / "spk0.flac", dtype="float32")[0]
    waves = sources.load_waves(df, progress=False)
    assert [w.size for w in waves] == [16000, 8000]
    np.testing.assert_array_equal(np.concatenate(waves), whole)
    # a plain list of paths still means whole files
    assert sources.load_waves([str(tmp_path / "wav" / "spk0.flac")], progress=False)[0].size == 24000


def _bad_input_folder(root):
    """Two speakers of good clips plus one bad file of each kind a header cannot reveal."""
    x = (0.2 * np.sin(np.arange(16000) / 5.0)).astype(np.float32)
    for spk in ("alice", "bob"):
        (root / spk).mkdir(parents=True)
        for k in range(3):
            sf.write(root / spk / f"good{k}.wav", x * (k + 1) / 3, 16000)
    sf.write(root / "alice" / "silent.wav", np.zeros(16000, np.float32), 16000)
    nan = x.copy()
    nan[100:200] = np.nan
    sf.write(root / "bob" / "nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(root / "bob" / "full.flac", x, 16000)
    data = (root / "bob" / "full.flac").read_bytes()
    (root / "bob" / "full.flac").unlink()
    (root / "bob" / "truncated.flac").write_bytes(data[: len(data) // 2])  # the header still claims 1 s
    return {"silent.wav": "silent", "nan.wav": "non_finite", "truncated.flac": "unreadable"}


def test_stage01_decodes_and_skips_silent_nan_and_truncated_files(tmp_path, monkeypatch):
    from nessa_lib.data import audio

    bad = _bad_input_folder(tmp_path)
    # Reading headers only (the old behaviour) lets all three through.
    df_headers, skipped_headers = sources.read_source("folder", str(tmp_path), min_clip_s=0.5, progress=False,
                                                      decode=False)
    assert len(df_headers) == 9 and skipped_headers == []
    df, skipped = sources.read_source("folder", str(tmp_path), min_clip_s=0.5, progress=False)
    assert {p.rsplit("/", 1)[-1]: r for p, r, _ in skipped} == bad
    for p, _, message in skipped:
        assert p in message  # each message names its file
    assert sorted(df.utt_id) == sorted(f"{s}/good{k}" for s in ("alice", "bob") for k in range(3))
    # Worker processes (chunks of 2 files) give exactly the same manifest and skip list.
    monkeypatch.setattr(audio, "SCAN_CHUNK", 2)
    df2, skipped2 = sources.read_source("folder", str(tmp_path), min_clip_s=0.5, progress=False, workers=2)
    pd.testing.assert_frame_equal(df, df2)
    assert skipped2 == skipped


def test_stage01_skip_report_names_each_file(tmp_path):
    from nessa_lib.data import audio

    bad = _bad_input_folder(tmp_path / "data")
    _, skipped = stage.build_corpus(tmp_path / "corpus", source="folder", dataset_root=str(tmp_path / "data"),
                                      seed=0, n_speakers=0, utts_per_speaker=0, workers=1, condition="clean",
                                      enroll_condition="clean", k_enroll=1, min_dur_s=1.0, max_dur_s=2.0,
                                      min_clip_s=0.5, progress=False)
    audio.write_skip_report(skipped, tmp_path / "skipped.csv")
    report = pd.read_csv(tmp_path / "skipped.csv")
    assert sorted(report.path.str.rsplit("/", n=1).str[-1]) == sorted(bad)
    assert dict(zip(report.path.str.rsplit("/", n=1).str[-1], report.reason)) == bad
