"""nessa_lib.data.readers: folder and VoxCeleb layouts on disk, official-format trial lists."""

import logging
import os

import numpy as np
import pytest
import soundfile as sf

from nessa_lib.data.lists import single_utterance_enrollment
from nessa_lib.data.manifest import COLUMNS, read_manifest, write_manifest
from nessa_lib.data.readers import read_folder_dataset, read_voxceleb, read_voxceleb_trials


def _wav(path, seconds=1.0, sr=16000, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    x = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr)).astype(np.float32)
    sf.write(path, x, sr)
    return path


# Exactly the real VoxCeleb1 layout: wav/<speaker id>/<YouTube id>/<5-digit index>.wav
VOX = {
    "id10001/1zcIwhmdeo4/00001.wav": 1.0,
    "id10001/7w0IBEWc9Qw/00002.wav": 1.5,
    "id10001/7w0IBEWc9Qw/00003.wav": 0.75,
    "id10002/0_laIeN-Q44/00001.wav": 2.0,
    "id10002/6WO410QOeuo/00002.wav": 1.25,
}


@pytest.fixture
def vox(tmp_path):
    root = tmp_path / "vox1" / "wav"
    for i, (rel, dur) in enumerate(VOX.items()):
        _wav(root / rel, dur, seed=i)
    return root


def test_read_voxceleb(vox):
    df, skipped = read_voxceleb(vox)
    assert skipped == []
    assert list(df.columns) == list(COLUMNS)
    assert df["utt_id"].tolist() == sorted(VOX)              # ids keep '.wav', as in the official lists
    assert df["speaker_id"].tolist() == ["id10001"] * 3 + ["id10002"] * 2
    assert df["duration_s"].tolist() == [VOX[u] for u in sorted(VOX)]
    assert df["path"].tolist() == [str(vox / u) for u in sorted(VOX)]
    assert (df["split"] == "").all()


def test_voxceleb_skips_bad_files_and_ignores_off_layout(vox, caplog):
    (vox / "id10002" / "6WO410QOeuo" / "00003.wav").write_bytes(b"not audio at all")
    _wav(vox / "id10002" / "stray.wav")                        # not id/video/file
    _wav(vox / "notaspeaker" / "v" / "00001.wav")              # not an id* folder
    with caplog.at_level(logging.WARNING, logger="nessa_lib.data.readers"):
        df, skipped = read_voxceleb(vox)
    assert len(df) == len(VOX)
    assert [(s[0], s[1]) for s in skipped] == [(str(vox / "id10002/6WO410QOeuo/00003.wav"), "unreadable")]
    assert any("not at id*/<video>/<file>.wav depth" in r.getMessage() for r in caplog.records)


def test_voxceleb_root_errors(tmp_path, vox):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_voxceleb(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"no speaker folders .*pass that as root") as e:
        read_voxceleb(vox.parent)                              # user passed vox1/ instead of vox1/wav
    assert str(vox) in str(e.value)


def test_voxceleb_m4a_only_says_how_to_convert(tmp_path):
    root = tmp_path / "vox2" / "aac"
    for rel in ["id00012/21Uxsk56VDQ/00001.m4a", "id00012/21Uxsk56VDQ/00002.m4a"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"\x00\x00\x00\x20ftypM4A ")
    hint = r"2 \.m4a file\(s\) and no \.wav.*ffmpeg -i x\.m4a -ar 16000 -ac 1 x\.wav"
    with pytest.raises(ValueError, match=hint) as e:
        read_voxceleb(root)
    assert str(root) in str(e.value)


def test_official_trial_list(vox, tmp_path):
    df, _ = read_voxceleb(vox)
    lst = tmp_path / "veri_test2.txt"
    lst.write_text("1 id10001/1zcIwhmdeo4/00001.wav id10001/7w0IBEWc9Qw/00002.wav\n"
                   "0 id10001/1zcIwhmdeo4/00001.wav id10002/0_laIeN-Q44/00001.wav\n"
                   "1 id10002/6WO410QOeuo/00002.wav id10002/0_laIeN-Q44/00001.wav\n")
    trials = read_voxceleb_trials(lst, df)
    assert trials["label"].tolist() == [1, 0, 1]
    assert trials["profile_id"].tolist()[0] == "id10001/1zcIwhmdeo4/00001.wav"
    enroll = single_utterance_enrollment(trials)
    assert enroll["utt_id"].tolist() == ["id10001/1zcIwhmdeo4/00001.wav", "id10002/6WO410QOeuo/00002.wav"]
    assert set(enroll.utt_id) | set(trials.test_utt_id) <= set(df.utt_id)


def test_trial_list_naming_missing_files(vox, tmp_path):
    df, _ = read_voxceleb(vox)
    lst = tmp_path / "list_test_hard2.txt"
    lst.write_text("1 id10001/1zcIwhmdeo4/00001.wav id10001/7w0IBEWc9Qw/00002.wav\n"
                   "0 id10001/1zcIwhmdeo4/00001.wav id10999/abcdefghijk/00001.wav\n"
                   "0 id10998/abcdefghijk/00004.wav id10002/0_laIeN-Q44/00001.wav\n")
    with pytest.raises(ValueError) as e:
        read_voxceleb_trials(lst, df)
    msg = str(e.value)
    assert str(lst) in msg and "2 utterance(s) named in 2 of 3 trial(s)" in msg
    assert "id10999/abcdefghijk/00001.wav" in msg and "id10998/abcdefghijk/00004.wav" in msg

    # A manifest whose ids dropped the extension gets a pointed hint.
    no_ext = df.assign(utt_id=df["utt_id"].str.replace(".wav", "", regex=False))
    with pytest.raises(ValueError, match="lack the file extension"):
        read_voxceleb_trials(lst, no_ext)


def test_folder_dataset_nested(tmp_path):
    root = tmp_path / "corpus"
    _wav(root / "alice" / "day1" / "mic" / "001.wav")
    _wav(root / "alice" / "002.FLAC", 0.6)                  # extension match is case-insensitive
    _wav(root / "bob" / "s" / "001.wav", 2.0)
    _wav(root / "loose.wav")                                # no speaker folder: ignored
    (root / "bob" / "s" / "._001.wav").write_bytes(b"\x00")  # macOS resource fork: ignored
    (root / "bob" / "notes.txt").write_text("hi")
    df, skipped = read_folder_dataset(root)
    assert df["utt_id"].tolist() == ["alice/002", "alice/day1/mic/001", "bob/s/001"]
    assert df["speaker_id"].tolist() == ["alice", "alice", "bob"]
    assert df["duration_s"].tolist() == [0.6, 1.0, 2.0]
    assert skipped == []
    # only wav
    df, _ = read_folder_dataset(root, exts=("wav",))
    assert df["utt_id"].tolist() == ["alice/day1/mic/001", "bob/s/001"]
    # the manifest round-trips with paths relative to the corpus
    write_manifest(df, root / "manifest.csv")
    assert "alice/day1/mic/001.wav" in (root / "manifest.csv").read_text()
    assert read_manifest(root / "manifest.csv")["path"].tolist() == df["path"].tolist()


def test_folder_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_root"):
        read_folder_dataset(tmp_path / "missing_root")
    root = tmp_path / "c"
    (root / "spk").mkdir(parents=True)
    (root / "spk" / "a.m4a").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"no audio files .*1 \.m4a.*ffmpeg") as e:
        read_folder_dataset(root)
    assert str(root) in str(e.value)
    _wav(root / "spk" / "a.wav")
    _wav(root / "spk" / "a.flac")
    with pytest.raises(ValueError, match="same utt_id 'spk/a'"):
        read_folder_dataset(root)
    (root / "spk" / "a.flac").unlink()
    (root / "spk" / "a.wav").write_bytes(b"")
    with pytest.raises(ValueError, match=r"none of the 1 audio file\(s\) is usable .*'empty'"):
        read_folder_dataset(root)


# --- issue 24: files soundfile cannot open are skipped and listed, never abort the read ---------------------------

_FORMATS = {"wav": {}, "flac": {}, "ogg": {"format": "OGG", "subtype": "VORBIS"}, "mp3": {"format": "MP3"},
            "opus": {"format": "OGG", "subtype": "OPUS"}, "aiff": {}, "caf": {}, "au": {}, "w64": {}}


def _writable_formats():
    """The containers of _FORMATS that this soundfile build both writes and reads."""
    from nessa_lib.data.audio import readable_extensions

    return [e for e in _FORMATS if e in readable_extensions()]


@pytest.mark.parametrize("workers", [0, 2])
def test_folder_dataset_skips_what_soundfile_cannot_open(tmp_path, workers, monkeypatch):
    import nessa_lib.data.audio as audio

    monkeypatch.setattr(audio, "SCAN_CHUNK", 2)  # so workers=2 really runs worker processes on a few files
    root = tmp_path / "corpus"
    x = 0.1 * np.sin(np.arange(16000) / 5).astype(np.float32)
    formats = _writable_formats()
    assert {"wav", "flac", "ogg", "mp3"} <= set(formats)
    for ext in formats:
        (root / "alice").mkdir(parents=True, exist_ok=True)
        sf.write(root / "alice" / f"clip {ext}.{ext}", x, 16000, **_FORMATS[ext])  # a name with a space
    _wav(root / "bob" / "ok.wav")
    # A name that is not UTF-8 (bytes path), and containers soundfile cannot decode.
    fd = os.open(os.fsencode(root / "bob") + b"/\xff.wav", os.O_WRONLY | os.O_CREAT, 0o644)
    with open(root / "bob" / "ok.wav", "rb") as f:
        os.write(fd, f.read())
    os.close(fd)
    (root / "bob" / "talk.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A ")
    (root / "bob" / "talk.aac").write_bytes(b"\xff\xf1")
    df, skipped = read_folder_dataset(root, decode=True, workers=workers)
    assert sorted(df["utt_id"]) == sorted([f"alice/clip {e}" for e in formats] + ["bob/ok"])
    assert df["duration_s"].min() >= 0.9
    reasons = {os.path.basename(p): r for p, r, _ in skipped}
    assert reasons == {"\\xff.wav": "unreadable_name", "talk.m4a": "unsupported_format",
                       "talk.aac": "unsupported_format"}
    for p, _, msg in skipped:  # each entry names its file, in text a UTF-8 skip report can hold
        assert p in msg and p.encode("utf-8")
    assert "ffmpeg" in dict((r, m) for _, r, m in skipped)["unsupported_format"]
    # the skip report is written, stray byte and all
    from nessa_lib.data.audio import write_skip_report

    write_skip_report(skipped, tmp_path / "skipped.csv")
    assert "\\xff.wav,unreadable_name" in (tmp_path / "skipped.csv").read_text(encoding="utf-8")


def test_probe_audio_names_an_undecodable_name_or_container(tmp_path):
    from nessa_lib.data.audio import AudioError, probe_audio

    bad = os.fsencode(tmp_path) + b"/\xfe.wav"
    os.close(os.open(bad, os.O_WRONLY | os.O_CREAT, 0o644))
    with pytest.raises(AudioError, match=r"\\xfe\.wav.*not valid UTF-8") as e:
        probe_audio(os.fsdecode(bad))
    assert e.value.reason == "unreadable_name"
    (tmp_path / "a.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A ")
    with pytest.raises(AudioError, match=r"a\.m4a.*convert") as e:
        probe_audio(tmp_path / "a.m4a")
    assert e.value.reason == "unsupported_format"
