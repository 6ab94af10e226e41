"""Embedding extraction: full/crop modes, batching, bad input, and the resemblyzer wrapper."""

import logging

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from scipy.signal import lfilter

from nessa_lib.data.audio import AudioError
from nessa_lib.embeddings import load_embeddings, save_embeddings
from nessa_lib.encoders.extract import extract_embeddings, real_time_factor
from nessa_lib.encoders.resemblyzer import ResemblyzerEncoder

SR = 16000


class FakeEncoder:
    """Deterministic toy encoder: a fixed random linear map of framewise log-energy statistics.

    Honours ``lengths`` (padding never leaks into the embedding) and refuses inputs shorter than
    ``min_samples``, so a test fails if extraction forgets to pad.
    """

    sample_rate = SR
    min_samples = 4000  # 0.25 s
    emb_dim = 8
    frame, hop = 400, 160

    def __init__(self, seed=0):
        self.w = torch.from_numpy(np.random.default_rng(seed).standard_normal((6, self.emb_dim)).astype(np.float32))
        self.model_id = f"fake@{seed:012d}"
        self.seen_lengths = []

    def _stats(self, x):
        d = torch.diff(x, prepend=x[:1])  # first difference: a crude high-frequency band
        feats = []
        for s in (x, d):
            fr = s.unfold(0, self.frame, self.hop)
            le = torch.log(fr.pow(2).mean(dim=1) + 1e-8)
            feats += [le.mean(), le.std(), le.max()]
        return torch.stack(feats)

    def embed(self, wavs, lengths):
        n = (lengths * wavs.shape[1]).round().long()
        self.seen_lengths += n.tolist()
        assert int(n.min()) >= self.min_samples, "extraction passed a clip shorter than min_samples"
        return torch.stack([self._stats(w[:k]) for w, k in zip(wavs, n)]) @ self.w


class NaNEncoder(FakeEncoder):
    """Returns NaN for inputs longer than 1.5 s (like a model that overflows on some inputs)."""

    def embed(self, wavs, lengths):
        e = super().embed(wavs, lengths)
        e[(lengths * wavs.shape[1]) > 1.5 * SR] = float("nan")
        return e


def vowel(sec, f0=120.0, seed=0, sr=SR):
    """Vowel-like signal (glottal pulse train through three formant resonators, syllabic envelope).

    Unlike a pure tone or noise, webrtcvad classifies it as speech, so resemblyzer's trimming path runs.
    """
    rng = np.random.default_rng(seed)
    n = int(round(sec * sr))
    t = np.arange(n) / sr
    phase = np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))) / sr
    y = (np.diff(np.floor(phase), prepend=0) > 0).astype(float) + 0.02 * rng.standard_normal(n)
    for fc, bw in [(700, 80), (1200, 90), (2600, 120)]:
        r, th = np.exp(-np.pi * bw / sr), 2 * np.pi * fc / sr
        y = lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], y)
    y = y * np.clip(np.sin(2 * np.pi * 2.5 * t + 0.3), 0, None) ** 0.5
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture
def manifest(tmp_path):
    """Five clips of different lengths (listed out of duration order) by two speakers."""
    rows = []
    for i, (sec, f0) in enumerate([(2.0, 110), (0.8, 180), (3.5, 120), (1.2, 200), (4.0, 115)]):
        p = tmp_path / f"u{i}.wav"
        sf.write(p, vowel(sec, f0, seed=i), SR)
        rows.append({"utt_id": f"spk{i % 2}/u{i}", "speaker_id": f"spk{i % 2}", "path": str(p),
                     "duration_s": sec, "split": "eval"})
    return pd.DataFrame(rows)


def one_by_one(df, enc, **kw):
    return np.concatenate([extract_embeddings(df.iloc[[i]], enc, progress=False, **kw).embeddings
                           for i in range(len(df))])


def test_full_mode_shapes_order_and_batching(manifest, tmp_path):
    enc = FakeEncoder()
    es = extract_embeddings(manifest, enc, batch_size=2, progress=False)
    assert es.embeddings.shape == (5, 8) and es.embeddings.dtype == np.float32
    assert list(es.utt_ids) == list(manifest.utt_id) and list(es.speaker_ids) == list(manifest.speaker_id)
    assert es.model_id == enc.model_id
    # Batches are formed in duration order (0.8 s and 1.2 s first), yet rows come back in manifest order.
    assert enc.seen_lengths[:2] == [int(0.8 * SR), int(1.2 * SR)]
    np.testing.assert_allclose(es.embeddings, one_by_one(manifest, FakeEncoder()), atol=1e-5)
    big = extract_embeddings(manifest, FakeEncoder(), batch_size=16, progress=False)
    np.testing.assert_allclose(big.embeddings, es.embeddings, atol=1e-5)
    save_embeddings(tmp_path / "e.npz", es)  # what extraction returns is what the pipeline can store
    assert load_embeddings(tmp_path / "e.npz", dim=8, model_id=enc.model_id).embeddings.shape == (5, 8)


def test_crop_mode_is_a_deterministic_centre_crop(manifest, caplog):
    with caplog.at_level(logging.WARNING, logger="nessa_lib.encoders.extract"):
        a = extract_embeddings(manifest, FakeEncoder(), mode="crop", crop_s=1.5, batch_size=3, progress=False)
    b = extract_embeddings(manifest, FakeEncoder(), mode="crop", crop_s=1.5, batch_size=1, progress=False)
    np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-5)
    assert list(a.utt_ids) == list(manifest.utt_id)
    # Utterance 2 (3.5 s): the crop is samples [1 s, 2.5 s), embedded directly it gives the same vector.
    x = sf.read(manifest.path[2], dtype="float32")[0]
    centre = torch.from_numpy(x[SR:SR + int(1.5 * SR)])[None]
    np.testing.assert_allclose(a.embeddings[2], FakeEncoder().embed(centre, torch.ones(1))[0].numpy(), atol=1e-5)
    full = extract_embeddings(manifest, FakeEncoder(), progress=False)
    assert not np.allclose(full.embeddings[2], a.embeddings[2])
    # The 0.8 s and 1.2 s clips were repeat-padded to the crop length: one summary warning.
    assert "2 of 5 utterances were shorter than crop_s=1.5" in caplog.text


def test_stereo_44k_file_is_downmixed_and_resampled_with_warnings(tmp_path, caplog):
    mono = vowel(1.0, sr=44100)
    p = tmp_path / "stereo.wav"
    sf.write(p, np.stack([mono, 0.5 * mono], axis=1), 44100)
    df = pd.DataFrame({"utt_id": ["st"], "speaker_id": ["s"], "path": [str(p)], "duration_s": [1.0]})
    with caplog.at_level(logging.WARNING):
        es = extract_embeddings(df, FakeEncoder(), progress=False)
    assert np.isfinite(es.embeddings).all()
    assert "stereo.wav: 2 channels, averaging to mono" in caplog.text
    assert "stereo.wav: sample rate 44100 Hz, resampling to 16000 Hz" in caplog.text


def test_too_short_clip_is_repeat_padded_with_a_warning(tmp_path, caplog):
    p = tmp_path / "short.wav"
    sf.write(p, vowel(0.1), SR)
    df = pd.DataFrame({"utt_id": ["sh"], "speaker_id": ["s"], "path": [str(p)], "duration_s": [0.1]})
    enc = FakeEncoder()
    with caplog.at_level(logging.WARNING, logger="nessa_lib.encoders.extract"):
        es = extract_embeddings(df, enc, progress=False)
    assert enc.seen_lengths == [enc.min_samples] and np.isfinite(es.embeddings).all()
    assert "short.wav: 1600 samples" in caplog.text and "repeat-padding" in caplog.text


def _segmented(manifest, tmp_path):
    """The fixture's utterances stored the synthetic corpus's way: one FLAC per speaker, start/stop per row."""
    tmp_path.mkdir(exist_ok=True)
    rows, waves = [], {}
    for r in manifest.itertuples():
        x = sf.read(r.path, dtype="float32")[0]
        done = sum(len(w) for w in waves.setdefault(r.speaker_id, []))
        waves[r.speaker_id].append(x)
        rows.append({**r._asdict(), "path": str(tmp_path / f"{r.speaker_id}.flac"), "start": done,
                     "stop": done + len(x)})
    for spk, ws in waves.items():
        sf.write(tmp_path / f"{spk}.flac", np.concatenate(ws), SR, format="FLAC", subtype="PCM_16")
    return pd.DataFrame(rows).drop(columns="Index")


@pytest.mark.parametrize("mode", ["full", "crop"])
def test_segmented_manifest_embeds_like_standalone_files(manifest, tmp_path, mode):
    seg = _segmented(manifest, tmp_path / "seg")
    assert seg["path"].nunique() == 2 and (seg["stop"] - seg["start"]).tolist() == [
        int(round(d * SR)) for d in manifest["duration_s"]]
    kw = dict(mode=mode, crop_s=1.5, batch_size=2, progress=False)
    a = extract_embeddings(manifest, FakeEncoder(), **kw)
    b = extract_embeddings(seg, FakeEncoder(), **kw)
    np.testing.assert_array_equal(b.embeddings, a.embeddings)  # the same samples, so the same numbers
    assert list(b.utt_ids) == list(a.utt_ids)
    # through the manifest file (nullable Int64 columns) as the pipeline does it
    from nessa_lib.data.manifest import read_manifest, write_manifest

    write_manifest(seg, tmp_path / "seg" / "manifest.csv")
    c = extract_embeddings(read_manifest(tmp_path / "seg" / "manifest.csv"), FakeEncoder(), **kw)
    np.testing.assert_array_equal(c.embeddings, a.embeddings)


def test_segment_past_the_end_is_named(manifest, tmp_path):
    seg = _segmented(manifest, tmp_path)
    seg.loc[4, "stop"] += 1
    with pytest.raises(AudioError, match=r"spk0\.flac\[\d+:\d+\]: segment runs past the end") as err:
        extract_embeddings(seg, FakeEncoder(), progress=False)
    assert err.value.reason == "bad_segment"


def test_corrupt_file_raises_an_error_naming_it(manifest, tmp_path):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 10)
    df = pd.concat([manifest, pd.DataFrame({"utt_id": ["c"], "speaker_id": ["s"], "path": [str(bad)],
                                            "duration_s": [1.0], "split": ["eval"]})], ignore_index=True)
    with pytest.raises(AudioError, match="corrupt.wav") as err:
        extract_embeddings(df, FakeEncoder(), progress=False)
    assert err.value.reason == "unreadable"


def test_nan_embedding_raises_naming_the_utterance(manifest):
    with pytest.raises(ValueError, match=r"NaN/inf embedding for utterance\(s\) 'spk0/u0'.*u0.wav"):
        extract_embeddings(manifest, NaNEncoder(), batch_size=1, progress=False)


def test_bad_arguments_are_refused(manifest):
    with pytest.raises(ValueError, match="mode must be one of"):
        extract_embeddings(manifest, FakeEncoder(), mode="middle", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        extract_embeddings(manifest, FakeEncoder(), batch_size=0, progress=False)
    with pytest.raises(ValueError, match="shorter than the encoder's min_samples"):
        extract_embeddings(manifest, FakeEncoder(), mode="crop", crop_s=0.1, progress=False)
    with pytest.raises(ValueError, match="duplicated utt_id"):
        extract_embeddings(pd.concat([manifest, manifest.iloc[:1]]), FakeEncoder(), progress=False)


def test_real_time_factor_of_fake_encoder():
    rtf = real_time_factor(FakeEncoder(), seconds=1.0, repeats=2, batch=2)
    assert 0 < rtf < 1


def test_the_old_alias_module_is_gone():
    """``nessa_lib.extract`` was an alias of ``nessa_lib.encoders.extract``; callers import the real home."""
    from pathlib import Path

    import nessa_lib

    assert not (Path(nessa_lib.__file__).parent / "extract.py").exists()


@pytest.fixture(scope="module")
def rz():
    return ResemblyzerEncoder()


def test_resemblyzer_embeddings(rz, manifest):
    from resemblyzer import VoiceEncoder, preprocess_wav

    w = [vowel(1.0, 110, seed=1), vowel(1.5, 210, seed=2)]
    batch = torch.zeros(2, len(w[1]))
    batch[0, :len(w[0])], batch[1] = torch.from_numpy(w[0]), torch.from_numpy(w[1])
    lengths = torch.tensor([len(w[0]) / len(w[1]), 1.0])
    e = rz.embed(batch, lengths).numpy()
    assert e.shape == (2, 256) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(e, rz.embed(batch, lengths).numpy())  # deterministic
    assert not np.allclose(e[0], e[1])
    # Speech-like input takes resemblyzer's own path: same as preprocess_wav + embed_utterance.
    # The batch's partials go through the LSTM together; each row still matches its own embed_utterance call.
    for i in range(2):
        ref = VoiceEncoder("cpu", verbose=False).embed_utterance(preprocess_wav(w[i], source_sr=SR))
        np.testing.assert_allclose(e[i], ref, atol=1e-5)
    assert rz.model_id.startswith("resemblyzer@") and rz.model_id == ResemblyzerEncoder().model_id
    assert rz.model_id != ResemblyzerEncoder(min_voiced_s=1.0).model_id
    es = extract_embeddings(manifest.iloc[:2], rz, progress=False)
    assert es.embeddings.shape == (2, 256) and es.model_id == rz.model_id


def test_resemblyzer_short_and_silent_clips(rz, caplog):
    # 0.3 s of speech-like audio and 1 s of very quiet noise: embedded (the quiet clip from the untrimmed
    # waveform, with a warning, because the VAD keeps nothing of it) - finite and unit norm.
    quiet = (1e-4 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="nessa_lib.encoders.resemblyzer"):
        for w in (vowel(0.3), quiet):
            e = rz.embed(torch.from_numpy(w)[None], torch.ones(1)).numpy()
            assert np.isfinite(e).all() and abs(np.linalg.norm(e) - 1) < 1e-5
    assert "VAD kept 0.00 s of a 1.00 s clip; embedding the untrimmed clip" in caplog.text
    # Digital silence carries no speaker information: a clear error, never a NaN or constant embedding.
    with pytest.raises(ValueError, match="batch item 1: .*digital silence"):
        rz.embed(torch.stack([torch.from_numpy(vowel(1.0)), torch.zeros(SR)]), torch.ones(2))


# ---------------------------------------------------------------------------------------------- scale: workers,
# skipping bad utterances, devices


def _with_bad_files(manifest, tmp_path):
    """The manifest plus a silent file, a NaN file and a FLAC truncated after a valid header (listed among the good
    ones, so skipping must not shift anything)."""
    x = vowel(1.5, 150, seed=9)
    sf.write(tmp_path / "silent.wav", np.zeros_like(x), SR)
    nan = x.copy()
    nan[1000:1100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, SR, subtype="FLOAT")
    sf.write(tmp_path / "whole.flac", x, SR)
    (tmp_path / "truncated.flac").write_bytes((tmp_path / "whole.flac").read_bytes()[:8000])
    bad = pd.DataFrame([{"utt_id": f"bad/{name}", "speaker_id": "spk9", "path": str(tmp_path / f"{name}"),
                         "duration_s": 1.5, "split": "eval"} for name in ("silent.wav", "nan.wav", "truncated.flac")])
    df = pd.concat([manifest.iloc[:2], bad.iloc[:2], manifest.iloc[2:], bad.iloc[2:]], ignore_index=True)
    return df, {"bad/silent.wav": "silent", "bad/nan.wav": "non_finite", "bad/truncated.flac": "unreadable"}


@pytest.mark.parametrize("mode", ["full", "crop"])
def test_dataloader_workers_give_byte_identical_embeddings(manifest, mode):
    """workers=2 decodes in DataLoader processes: same batches, same order, the same bytes as in-process."""
    a, b = FakeEncoder(), FakeEncoder()
    kw = dict(mode=mode, crop_s=1.0, batch_size=2, progress=False)
    base = extract_embeddings(manifest, a, **kw)
    par = extract_embeddings(manifest, b, workers=2, **kw)
    assert a.seen_lengths == b.seen_lengths  # the same batches in the same order
    assert base.embeddings.tobytes() == par.embeddings.tobytes()
    assert list(base.utt_ids) == list(par.utt_ids)


def test_dataloader_workers_run_the_transform_like_in_process(manifest):
    def louder(x, i):
        return 0.5 * x * (i + 1) / 5

    base = extract_embeddings(manifest, FakeEncoder(), batch_size=2, transform=louder, progress=False)
    par = extract_embeddings(manifest, FakeEncoder(), batch_size=2, transform=louder, workers=2, progress=False)
    assert base.embeddings.tobytes() == par.embeddings.tobytes()


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_files_are_named_and_skipped_nothing_else_lost(manifest, tmp_path, workers):
    df, bad = _with_bad_files(manifest, tmp_path)
    # Default: the first bad file (in batch order) still raises, naming itself.
    with pytest.raises(AudioError, match=r"(silent\.wav|nan\.wav|truncated\.flac)"):
        extract_embeddings(df, FakeEncoder(), batch_size=2, progress=False, workers=workers)
    skipped = []
    es = extract_embeddings(df, FakeEncoder(), batch_size=2, progress=False, workers=workers, skipped=skipped)
    assert {s["utt_id"]: s["reason"] for s in skipped} == bad
    for s in skipped:
        assert s["path"] in s["message"] and s["path"].endswith(s["utt_id"].split("/")[1])
    assert list(es.utt_ids) == list(manifest.utt_id)  # every good utterance, in manifest order
    good = extract_embeddings(manifest, FakeEncoder(), batch_size=2, progress=False)
    np.testing.assert_allclose(es.embeddings, good.embeddings, atol=1e-5)


def test_nan_embeddings_and_encoder_failures_are_skipped_one_by_one(manifest):
    skipped = []
    es = extract_embeddings(manifest, NaNEncoder(), batch_size=2, progress=False, skipped=skipped)
    long = set(manifest.utt_id[manifest.duration_s > 1.5])
    assert {s["utt_id"] for s in skipped} == long and {s["reason"] for s in skipped} == {"non_finite_embedding"}
    assert set(es.utt_ids) == set(manifest.utt_id) - long

    class Picky(FakeEncoder):
        def embed(self, wavs, lengths):
            if int(3.5 * SR) in (lengths * wavs.shape[1]).round().long().tolist():
                raise RuntimeError("out of memory (pretend)")
            return super().embed(wavs, lengths)

    skipped = []
    es = extract_embeddings(manifest, Picky(), batch_size=5, progress=False, skipped=skipped)
    assert [(s["utt_id"], s["reason"]) for s in skipped] == [("spk0/u2", "encoder_error")]
    assert "u2.wav" in skipped[0]["message"] and "out of memory" in skipped[0]["message"]
    assert len(es.utt_ids) == 4  # the rest of the failed batch is re-embedded one by one, not lost


def test_stage_report_of_skipped_utterances(manifest, tmp_path):
    from nessa_lib.encoders.extract import write_skipped_utterances
    from nessa_lib.stages.extract_embeddings import extract_splits

    df, bad = _with_bad_files(manifest, tmp_path)
    skipped = []
    sets = extract_splits(df, FakeEncoder(), ["eval"], tmp_path, batch_size=2, skipped=skipped)
    write_skipped_utterances(skipped, tmp_path / "skipped.csv")
    report = pd.read_csv(tmp_path / "skipped.csv")
    assert dict(zip(report.utt_id, report.reason)) == bad and set(report.split) == {"eval"}
    assert load_embeddings(tmp_path / "eval.npz").utt_ids.tolist() == list(sets["eval"].utt_ids)
    write_skipped_utterances([], tmp_path / "none.csv")
    assert pd.read_csv(tmp_path / "none.csv").empty


def test_device_auto_is_cpu_here_and_gpu_options_are_refused(manifest):
    from nessa_lib.devices import autocast, resolve_device

    if torch.cuda.is_available():
        pytest.skip("this test documents the CPU-only machine")
    assert resolve_device("auto") == "cpu"
    base = extract_embeddings(manifest, FakeEncoder(), progress=False)
    cpu = extract_embeddings(manifest, FakeEncoder(), progress=False, device="cpu")
    assert base.embeddings.tobytes() == cpu.embeddings.tobytes()
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        extract_embeddings(manifest, FakeEncoder(), progress=False, device="cuda")
    with pytest.raises(ValueError, match="GPU option"):
        extract_embeddings(manifest, FakeEncoder(), progress=False, precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast("cpu", "fp8")
    with pytest.raises(ValueError, match="workers must be an integer"):
        extract_embeddings(manifest, FakeEncoder(), progress=False, workers=-1)


def test_shards_together_are_the_unsharded_result(manifest):
    """What each torchrun rank embeds: every world-th batch of the single-process batches, rows in manifest order."""
    full = extract_embeddings(manifest, FakeEncoder(), batch_size=2, progress=False)
    parts = [extract_embeddings(manifest, FakeEncoder(), batch_size=2, progress=False, shard=(r, 3)) for r in range(3)]
    assert sorted(u for p in parts for u in p.utt_ids) == sorted(full.utt_ids)
    assert [len(p.utt_ids) for p in parts] == [2, 2, 1]  # batches 0, 1, 2 of 3 (sorted by duration)
    pos = {u: i for i, u in enumerate(full.utt_ids)}
    for p in parts:
        rows = [pos[u] for u in p.utt_ids]
        assert rows == sorted(rows)
        assert full.embeddings[rows].tobytes() == p.embeddings.tobytes()
    with pytest.raises(ValueError, match="shard must be"):
        extract_embeddings(manifest, FakeEncoder(), progress=False, shard=(3, 3))


# ------------------------------------------------------------------------ the two-step protocol, and processes


class Prepared(FakeEncoder):
    """FakeEncoder split in two (``prepare`` per waveform, ``embed_prepared`` per batch); refuses 3.5 s clips."""

    def prepare(self, x):
        if len(x) == int(3.5 * SR):
            raise ValueError("refused (pretend)")
        return self._stats(torch.from_numpy(np.asarray(x)))

    def embed_prepared(self, items):
        return torch.stack(items) @ self.w


@pytest.mark.parametrize("workers", [0, 2])
def test_prepare_runs_with_the_decoding_and_gives_what_embed_gives(manifest, workers):
    ok = manifest[manifest.duration_s != 3.5]
    kw = dict(batch_size=2, progress=False, workers=workers)
    base = extract_embeddings(ok, FakeEncoder(), **kw)
    two_step = extract_embeddings(ok, Prepared(), **kw)
    assert list(base.utt_ids) == list(two_step.utt_ids)
    assert base.embeddings.tobytes() == two_step.embeddings.tobytes()
    # A waveform prepare() refuses is an encoder failure: skipped and named, or raised naming the utterance.
    skipped = []
    es = extract_embeddings(manifest, Prepared(), skipped=skipped, **kw)
    assert [(s["utt_id"], s["reason"]) for s in skipped] == [("spk0/u2", "encoder_error")]
    assert "u2.wav" in skipped[0]["message"] and "refused (pretend)" in skipped[0]["message"]
    assert list(es.utt_ids) == list(ok.utt_id)
    with pytest.raises(ValueError, match=r"failed on utterance\(s\) 'spk0/u2' \(.*u2\.wav\): refused"):
        extract_embeddings(manifest, Prepared(), **kw)


def test_resemblyzer_two_steps_are_its_embed(rz, manifest):
    w = [vowel(1.0, 110, seed=1), vowel(1.5, 210, seed=2)]
    batch = torch.zeros(2, len(w[1]))
    batch[0, :len(w[0])], batch[1] = torch.from_numpy(w[0]), torch.from_numpy(w[1])
    lengths = torch.tensor([len(w[0]) / len(w[1]), 1.0])
    prepared = [rz.prepare(x) for x in w]
    assert [p.shape[1:] for p in prepared] == [(160, 40)] * 2 and prepared[1].shape[0] >= prepared[0].shape[0]
    assert rz.embed_prepared(prepared).numpy().tobytes() == rz.embed(batch, lengths).numpy().tobytes()
    with pytest.raises(ValueError, match="digital silence"):
        rz.prepare(np.zeros(SR, dtype=np.float32))


def test_processes_share_the_batches_and_give_the_one_process_result(manifest, tmp_path):
    """processes=2: every other batch in each of two one-thread processes, merged back in manifest order;
    bad files are skipped the same way and an error still names its file."""
    df, bad = _with_bad_files(manifest, tmp_path)
    kw = dict(batch_size=2, progress=False)
    one, two = [], []
    a = extract_embeddings(df, FakeEncoder(), skipped=one, **kw)
    b = extract_embeddings(df, FakeEncoder(), skipped=two, processes=2, **kw)
    assert list(a.utt_ids) == list(b.utt_ids) == list(manifest.utt_id)
    assert a.embeddings.tobytes() == b.embeddings.tobytes() and a.model_id == b.model_id
    assert sorted(one, key=lambda s: s["utt_id"]) == sorted(two, key=lambda s: s["utt_id"])
    assert [s["utt_id"] for s in two] == [u for u in df.utt_id if u in bad]  # in manifest order
    # An AudioError raised in a worker process reaches the caller as itself.
    with pytest.raises(AudioError, match=r"(silent\.wav|nan\.wav|truncated\.flac)") as err:
        extract_embeddings(df, FakeEncoder(), processes=2, **kw)
    assert err.value.reason in set(bad.values())
    with pytest.raises(ValueError, match="processes must be an integer >= 1"):
        extract_embeddings(df, FakeEncoder(), processes=0, **kw)
    with pytest.raises(ValueError, match="not both"):
        extract_embeddings(df, FakeEncoder(), processes=2, shard=(0, 2), **kw)


def test_stage_splits_and_condition_in_processes(manifest, tmp_path):
    """What stage 03 runs with extract_embeddings.processes: the same files as one process."""
    from nessa_lib.stages.extract_embeddings import extract_condition, extract_splits

    df = pd.concat([manifest.assign(split="eval"), manifest.assign(split="align", utt_id=manifest.utt_id + "a")],
                   ignore_index=True)
    out = {}
    for p in (1, 2):
        d = tmp_path / f"p{p}"
        sets = extract_splits(df, FakeEncoder(), ["align", "eval"], d, batch_size=2, skipped=[], processes=p)
        cond = extract_condition(df, FakeEncoder(), d / "eval+aug.npz", utts_per_speaker=2, batch_size=2,
                                 processes=p)
        out[p] = [sets["align"], sets["eval"], cond]
        assert (d / "eval.npz").is_file() and (d / "eval+aug.npz").is_file()
    for x, y in zip(out[1], out[2]):
        assert list(x.utt_ids) == list(y.utt_ids) and x.embeddings.tobytes() == y.embeddings.tobytes()
    # A bad process count is refused before anything is embedded or written.
    with pytest.raises(ValueError, match="processes must be an integer >= 1, got 0"):
        extract_splits(df, FakeEncoder(), ["align", "eval"], tmp_path / "p0", batch_size=2, processes=0)
    assert not (tmp_path / "p0").exists()


def test_audio_error_survives_pickling():
    import pickle

    e = AudioError("a.flac", "silent", "all samples are 0", segment=(16000, 32000))
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is AudioError and str(back) == str(e) == "a.flac[16000:32000]: all samples are 0 [silent]"
    assert (back.path, back.reason, back.detail, back.segment) == (e.path, e.reason, e.detail, e.segment)
