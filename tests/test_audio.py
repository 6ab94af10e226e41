"""nessa_lib.data.audio: loading, probing and scanning real files, including every bad-input case we refuse."""

import logging
import os

import numpy as np
import pytest
import soundfile as sf

from nessa_lib.data.audio import (
    REASONS, AudioError, AudioInfo, load_audio, load_segment, manifest_segments, probe_audio, scan_audio,
    write_skip_report,
)


def _sine(n, sr, f=440.0):
    return (0.3 * np.sin(2 * np.pi * f * np.arange(n) / sr)).astype(np.float32)


@pytest.fixture
def wavs(tmp_path, rng):
    """One file per case, all generated here."""
    p = {}
    p["ok"] = tmp_path / "ok.wav"
    sf.write(p["ok"], _sine(16000, 16000), 16000, subtype="PCM_16")
    p["corrupt"] = tmp_path / "corrupt.wav"
    p["corrupt"].write_bytes(rng.bytes(4096))
    p["empty_file"] = tmp_path / "empty_file.wav"
    p["empty_file"].write_bytes(b"")
    p["no_samples"] = tmp_path / "no_samples.wav"
    sf.write(p["no_samples"], np.zeros(0, np.float32), 16000)
    p["short"] = tmp_path / "short.wav"
    sf.write(p["short"], _sine(400, 16000), 16000)  # 25 ms, the clip length that crashes fbank front-ends
    p["nan"] = tmp_path / "nan.wav"
    sf.write(p["nan"], np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    p["some_nan"] = tmp_path / "some_nan.wav"
    x = _sine(16000, 16000)
    x[100] = np.inf
    sf.write(p["some_nan"], x, 16000, subtype="FLOAT")
    p["silent"] = tmp_path / "silent.wav"
    sf.write(p["silent"], np.zeros(16000, np.float32), 16000)
    p["missing"] = tmp_path / "missing.wav"
    return p


def test_load_ok_is_mono_float32(wavs):
    x = load_audio(wavs["ok"])
    assert x.dtype == np.float32 and x.shape == (16000,)
    np.testing.assert_allclose(x, _sine(16000, 16000), atol=1e-4)  # PCM_16 quantisation


@pytest.mark.parametrize("case, reason", [
    ("corrupt", "unreadable"), ("empty_file", "empty"), ("no_samples", "empty"), ("short", "too_short"),
    ("nan", "non_finite"), ("some_nan", "non_finite"), ("silent", "silent"), ("missing", "missing"),
])
def test_load_bad_input_names_file_and_reason(wavs, case, reason):
    before = wavs[case].read_bytes() if wavs[case].exists() else None
    with pytest.raises(AudioError) as e:
        load_audio(wavs[case])
    assert e.value.reason == reason
    assert e.value.path == str(wavs[case])
    assert str(wavs[case]) in str(e.value)
    assert isinstance(e.value, ValueError)
    # never modifies (or creates) the source file
    assert (wavs[case].read_bytes() if wavs[case].exists() else None) == before


def test_min_dur_can_be_lowered(wavs):
    assert load_audio(wavs["short"], min_dur_s=0.01).shape == (400,)


def test_directory_is_unreadable(tmp_path):
    with pytest.raises(AudioError, match="not a regular file") as e:
        load_audio(tmp_path)
    assert e.value.reason == "unreadable"


def test_stereo_downmix_is_channel_average(tmp_path, caplog):
    left, right = _sine(16000, 16000, 300), _sine(16000, 16000, 500) * 0.5
    f = tmp_path / "stereo.wav"
    sf.write(f, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="nessa_lib.data.audio"):
        x = load_audio(f)
    np.testing.assert_allclose(x, (left + right) / 2, atol=1e-6)
    assert any("averaging" in r.getMessage() and str(f) in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(load_audio(f, mono="first"), left, atol=1e-6)
    with pytest.raises(AudioError) as e:
        load_audio(f, mono="error")
    assert e.value.reason == "multichannel"
    with pytest.raises(ValueError, match="mono must be"):
        load_audio(f, mono="left")


@pytest.mark.parametrize("sr", [8000, 44100])
def test_resample_length_and_warning(tmp_path, caplog, sr):
    f = tmp_path / f"sr{sr}.wav"
    sf.write(f, _sine(sr * 3 // 2, sr, 200), sr, subtype="FLOAT")  # 1.5 s
    with caplog.at_level(logging.WARNING, logger="nessa_lib.data.audio"):
        x = load_audio(f, target_sr=16000)
    assert x.shape == (24000,) and x.dtype == np.float32
    # a 200 Hz tone survives resampling (away from the edges, where the filter rings)
    np.testing.assert_allclose(x[2000:-2000], _sine(24000, 16000, 200)[2000:-2000], atol=2e-3)
    assert any("resampling" in r.getMessage() for r in caplog.records)


def test_probe(wavs):
    info = probe_audio(wavs["ok"])
    assert info == AudioInfo(16000, 1, 16000, 1.0, str(wavs["ok"]))
    assert probe_audio(wavs["no_samples"]).frames == 0
    for case, reason in [("corrupt", "unreadable"), ("missing", "missing"), ("empty_file", "empty")]:
        with pytest.raises(AudioError) as e:
            probe_audio(wavs[case])
        assert e.value.reason == reason and str(wavs[case]) in str(e.value)


def test_scan_separates_good_and_bad(wavs, tmp_path):
    order = ["ok", "corrupt", "empty_file", "no_samples", "short", "nan", "missing"]
    ok, skipped = scan_audio([wavs[k] for k in order], min_dur_s=0.5, progress=False)
    assert [i.path for i in ok] == [str(wavs["ok"]), str(wavs["nan"])]  # header-only scan cannot see NaNs
    assert [(p, r) for p, r, _ in skipped] == [
        (str(wavs["corrupt"]), "unreadable"), (str(wavs["empty_file"]), "empty"),
        (str(wavs["no_samples"]), "empty"), (str(wavs["short"]), "too_short"), (str(wavs["missing"]), "missing")]
    assert all(p in msg for p, _, msg in skipped)

    ok, skipped = scan_audio([wavs["ok"], wavs["nan"]], decode=True, progress=False)
    assert [i.path for i in ok] == [str(wavs["ok"])] and skipped[0][1] == "non_finite"

    report = tmp_path / "skipped.csv"
    write_skip_report(skipped, report)
    lines = report.read_text().splitlines()
    assert lines[0] == "path,reason,message" and lines[1].startswith(f"{wavs['nan']},non_finite,")
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


# ---------------------------------------------------------------------------------------- segments of a file


@pytest.fixture
def speaker_file(tmp_path):
    """One recording of three hand-made 'utterances' back to back (a ramp, silence, a sine), FLAC PCM_16."""
    ramp = np.linspace(-0.5, 0.5, 12000, dtype=np.float32)
    silence = np.zeros(8000, np.float32)
    sine = _sine(20000, 16000, 300)
    f = tmp_path / "spk.flac"
    sf.write(f, np.concatenate([ramp, silence, sine]), 16000, format="FLAC", subtype="PCM_16")
    whole = sf.read(f, dtype="float32")[0]  # the quantised samples every segment must reproduce
    return f, whole, {"ramp": (0, 12000), "silence": (12000, 20000), "sine": (20000, 40000)}


def test_two_segments_of_one_file_load_exactly_their_samples(speaker_file):
    f, whole, seg = speaker_file
    for name in ("ramp", "sine"):
        a, b = seg[name]
        x = load_audio(f, start=a, stop=b)
        assert x.dtype == np.float32 and x.shape == (b - a,)
        np.testing.assert_array_equal(x, whole[a:b])
    np.testing.assert_allclose(load_audio(f, start=20000, stop=40000), _sine(20000, 16000, 300), atol=1e-4)
    # an open end means the file's first / last frame, as in soundfile.read
    np.testing.assert_array_equal(load_audio(f, start=20000), whole[20000:])
    np.testing.assert_array_equal(load_audio(f, stop=12000), whole[:12000])
    np.testing.assert_array_equal(load_audio(f, start=0, stop=40000), load_audio(f))


@pytest.mark.parametrize("start, stop, what", [
    (30000, 40001, "runs past the end of the file (40000 frames)"),
    (40000, 48000, "runs past the end"),
    (40000, None, "runs past the end"),
    (16000, 16000, "start 16000 >= stop 16000"),
    (20000, 12000, "start 20000 >= stop 12000"),
    (-1, 12000, "start must be a sample frame >= 0, got -1"),
    (0.0, 12000, "start must be a sample frame >= 0, got 0.0"),
])
def test_bad_segment_names_file_and_segment(speaker_file, start, stop, what):
    f = speaker_file[0]
    with pytest.raises(AudioError) as e:
        load_audio(f, start=start, stop=stop, min_dur_s=0.0)
    assert e.value.reason == "bad_segment" and "bad_segment" in REASONS
    assert e.value.path == str(f) and e.value.segment == (start, stop)
    msg = str(e.value)
    assert msg.startswith(f"{f}[{start}:{'' if stop is None else stop}]: ") and what in msg


def test_checks_apply_to_the_segment(speaker_file, tmp_path, caplog):
    f, _, seg = speaker_file
    with pytest.raises(AudioError, match=r"spk\.flac\[12000:20000\]: all samples are exactly 0") as e:
        load_audio(f, start=12000, stop=20000)  # the file as a whole is not silent; this segment is
    assert e.value.reason == "silent"
    with pytest.raises(AudioError, match=r"spk\.flac\[0:4000\]: duration 0\.250 s < min_dur_s=0\.5") as e:
        load_audio(f, start=0, stop=4000)
    assert e.value.reason == "too_short"
    assert load_audio(f, start=0, stop=4000, min_dur_s=0.1).shape == (4000,)
    # resampling and downmixing work on the segment too, and the warning names it
    st = tmp_path / "st8k.wav"
    sf.write(st, np.stack([_sine(16000, 8000, 200)] * 2, axis=1), 8000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="nessa_lib.data.audio"):
        x = load_audio(st, start=4000, stop=12000, target_sr=16000)
    assert x.shape == (16000,)
    assert any(f"{st}[4000:12000]: sample rate 8000 Hz" in r.getMessage() for r in caplog.records)
    nan = tmp_path / "nan_tail.wav"
    y = _sine(16000, 16000)
    y[-10:] = np.nan
    sf.write(nan, y, 16000, subtype="FLOAT")
    assert load_audio(nan, start=0, stop=8000).shape == (8000,)  # the NaNs lie outside this segment
    with pytest.raises(AudioError, match=r"\[8000:16000\]: 10 of 8000 samples are NaN/inf") as e:
        load_audio(nan, start=8000, stop=16000)
    assert e.value.reason == "non_finite"


def test_manifest_segments_and_load_segment_handle_empty_cells(speaker_file, tmp_path):
    import pandas as pd

    f, whole, seg = speaker_file
    other = tmp_path / "other.wav"
    sf.write(other, _sine(16000, 16000), 16000)
    df = pd.DataFrame({"utt_id": ["ramp", "sine", "whole"], "path": [str(f), str(f), str(other)],
                       "start": pd.array([0, 20000, None], dtype="Int64"),
                       "stop": pd.array([12000, 40000, None], dtype="Int64")})
    assert manifest_segments(df) == [(str(f), 0, 12000), (str(f), 20000, 40000), (str(other), None, None)]
    # the same table as pandas reads it from a CSV (floats with NaN) or as text gives the same triples
    assert manifest_segments(df.astype({"start": float, "stop": float})) == manifest_segments(df)
    assert manifest_segments(df.astype({"start": str, "stop": str}).replace("<NA>", "")) == manifest_segments(df)
    assert manifest_segments(df.drop(columns=["start", "stop"]))[0] == (str(f), None, None)
    np.testing.assert_array_equal(load_segment(df.iloc[1]), whole[20000:40000])
    np.testing.assert_array_equal(load_segment(next(df.itertuples())), whole[:12000])
    assert load_segment(df.iloc[2]).shape == (16000,)
    with pytest.raises(ValueError, match=r"utt_id 'ramp' .*: start -5 is not a sample frame"):
        manifest_segments(df.assign(start=pd.Series([-5, 20000, None], dtype=object)))
