"""Synthetic corpus: eSpeak wrapper, voices, sentences, augmentation, generation and the MFCC baseline."""

import json

import numpy as np
import pytest
import soundfile as sf

from nessa_lib.data.audio import load_segment
from nessa_lib.data import augment
from nessa_lib.data.synth import espeak
from nessa_lib.data.synth.corpus import CORPUS_VERSION, generate_corpus
from nessa_lib.data.synth.sentences import VOCABULARY, sentence, sentences
from nessa_lib.data.synth.voices import Voice, sample_voice, utterance_voice, variant_text
from nessa_lib.evaluation.baselines import frame_stats_embeddings

TEXT = "Please carry the old wooden ladder to the garden before dinner."


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return espeak.make_english_data_dir(tmp_path_factory.mktemp("espeak"))


def _spectral_centroid(x, sr=16000):
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / sr)
    return float((p * f).sum() / p.sum())


def test_synthesize_basic(data_dir):
    x = espeak.synthesize(TEXT, "en-us", path=data_dir, seed=3)
    assert x.dtype == np.float32 and x.ndim == 1
    assert 2.0 < x.size / 16000 < 8.0
    assert np.isfinite(x).all() and np.abs(x).max() <= 1.0 and np.abs(x).max() > 0.05


def test_variant_really_applied(data_dir):
    hi = Voice.from_dict({**sample_voice(0, 0).to_dict(), "pitch_base": 230, "pitch_top": 320,
                          "formants": [[130, 100, 100]] * 9, "klatt": 0})
    lo = Voice.from_dict({**hi.to_dict(), "pitch_base": 70, "pitch_top": 90, "formants": [[75, 100, 100]] * 9})
    espeak.write_variant(data_dir, "t_hi", variant_text(hi, "t_hi"))
    espeak.write_variant(data_dir, "t_lo", variant_text(lo, "t_lo"))
    a = espeak.synthesize(TEXT, "en+t_hi", path=data_dir, seed=1)
    b = espeak.synthesize(TEXT, "en+t_lo", path=data_dir, seed=1)
    plain = espeak.synthesize(TEXT, "en", path=data_dir, seed=1)
    assert _spectral_centroid(a) > 1.3 * _spectral_centroid(b)
    assert abs(_spectral_centroid(plain) - _spectral_centroid(a)) > 100
    # rewriting the same variant file changes the voice (eSpeak re-reads it)
    espeak.write_variant(data_dir, "t_x", variant_text(hi, "t_x"))
    c1 = espeak.synthesize(TEXT, "en+t_x", path=data_dir, seed=1)
    espeak.write_variant(data_dir, "t_x", variant_text(lo, "t_x"))
    c2 = espeak.synthesize(TEXT, "en+t_x", path=data_dir, seed=1)
    assert _spectral_centroid(c1) > 1.3 * _spectral_centroid(c2)


def test_missing_variant_and_voice_raise(data_dir):
    with pytest.raises(FileNotFoundError, match="variant"):
        espeak.synthesize("Hello.", "en+no_such_variant", path=data_dir)
    with pytest.raises(ValueError, match="no voice"):
        espeak.synthesize("Hello.", "xx-nonsense", path=data_dir)
    with pytest.raises(ValueError):
        espeak.synthesize("  ", "en", path=data_dir)


def test_accents_available(data_dir):
    assert set(espeak.english_accents(data_dir)) == set(espeak.ENGLISH_ACCENTS)


def test_voices_deterministic_and_serialisable():
    v = sample_voice(5, 11)
    assert v == sample_voice(5, 11) and v != sample_voice(5, 12) and v != sample_voice(6, 11)
    d = json.loads(json.dumps(v.to_dict()))
    assert Voice.from_dict(d) == v
    t = variant_text(v)
    assert t.startswith("language variant\n") and t.count("\nformant ") == 9
    assert utterance_voice(v, np.random.default_rng(0)) == utterance_voice(v, np.random.default_rng(0))
    with pytest.raises(ValueError):
        sample_voice(0, -1)


def test_voice_population_is_varied():
    vs = [sample_voice(0, i) for i in range(200)]
    assert {v.sex for v in vs} == {"male", "female"}
    assert len({v.accent for v in vs}) >= 6
    f = [v.pitch_base for v in vs if v.sex == "female"]
    m = [v.pitch_base for v in vs if v.sex == "male"]
    assert np.median(f) > 1.5 * np.median(m)


def test_sentences_deterministic():
    a = sentences(np.random.default_rng(3), 20)
    assert a == sentences(np.random.default_rng(3), 20)
    assert a != sentences(np.random.default_rng(4), 20)
    assert len(set(a)) == 20
    assert all(9 <= len(s.split()) <= 17 for s in a)
    assert len(VOCABULARY) > 250
    assert len(sentence(np.random.default_rng(0), 3, 4).split()) <= 4


@pytest.mark.parametrize("preset", ["clean", "mild", "aug"])
def test_augment_presets(preset):
    rng = np.random.default_rng(0)
    x = (0.5 * np.sin(np.arange(32000) * 0.07) * (1 + rng.standard_normal(32000) * 0.1)).astype(np.float32)
    babble = [rng.standard_normal(16000) for _ in range(3)]
    for i in range(5):
        y = augment.augment(x, np.random.default_rng(i), preset, babble=babble)
        assert y.dtype == np.float32 and y.ndim == 1
        assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
        assert 0.94 * x.size <= y.size <= 1.06 * x.size
    y1 = augment.augment(x, np.random.default_rng(7), preset, babble=babble)
    y2 = augment.augment(x, np.random.default_rng(7), preset, babble=babble)
    assert np.array_equal(y1, y2)
    if preset == "clean":
        assert np.array_equal(y1, x)
    else:
        assert not np.allclose(y1[: x.size], x[: y1.size])


def test_augment_errors():
    with pytest.raises(ValueError, match="valid: clean, mild, aug"):
        augment.augment(np.zeros(100), np.random.default_rng(0), "heavy")
    with pytest.raises(ValueError):
        augment.augment(np.array([0.0, np.nan]), np.random.default_rng(0), "mild")
    with pytest.raises(ValueError, match="noise kind"):
        augment.colored_noise(10, np.random.default_rng(0), "blue")
    with pytest.raises(ValueError, match="babble"):
        augment.add_noise(np.ones(10), np.random.default_rng(0), 10, "babble", babble=None)


def test_baseline_shapes():
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n) for n in (4000, 16000, 30000)]
    assert frame_stats_embeddings(waves).shape == (3, 19)
    assert frame_stats_embeddings(waves, stats=("mean", "std"), drop_c0=False).shape == (3, 40)
    e = frame_stats_embeddings(waves, features="logmel", n_mels=24)
    assert e.shape == (3, 24) and e.dtype == np.float32
    with pytest.raises(ValueError):
        frame_stats_embeddings(waves, features="plp")
    with pytest.raises(ValueError):
        frame_stats_embeddings([np.zeros(0)])


@pytest.mark.slow
def test_generate_corpus_deterministic(tmp_path):
    kw = dict(n_speakers=3, utts_per_speaker=2, seed=1, workers=2, condition="mild", enroll_condition="clean",
              n_enroll=1, min_dur_s=1.0, max_dur_s=2.0, progress=False)
    r1 = generate_corpus(tmp_path / "a", **kw)
    r2 = generate_corpus(tmp_path / "b", **kw)
    assert [r["utt_id"] for r in r1] == [f"spk000{s}_000{u}" for s in range(3) for u in range(2)]
    assert [r["condition"] for r in r1] == ["clean", "mild"] * 3
    assert [r["enroll"] for r in r1] == [True, False] * 3
    assert r1 == r2
    # One recording per speaker (a few hundred files for DVC to check, not one per utterance) ...
    wavs = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a" / "wav").rglob("*")
                  if p.is_file())
    assert wavs == [f"wav/spk000{s}.wav" for s in range(3)]
    assert not (tmp_path / "a" / "speakers").exists()
    for w in wavs:  # ... byte-identical for the same seed and workers
        assert (tmp_path / "a" / w).read_bytes() == (tmp_path / "b" / w).read_bytes()
    # ... holding the speaker's utterances back to back: segments tile the file exactly.
    for s in range(3):
        recs = [r for r in r1 if r["speaker_index"] == s]
        x, sr = sf.read(tmp_path / "a" / recs[0]["path"], dtype="float32")
        assert sr == 16000 and x.ndim == 1
        assert [r["path"] for r in recs] == [f"wav/spk000{s}.wav"] * 2
        assert recs[0]["start"] == 0 and recs[0]["stop"] == recs[1]["start"] and recs[-1]["stop"] == x.size
        for r in recs:
            assert isinstance(r["start"], int) and isinstance(r["stop"], int)
            assert abs((r["stop"] - r["start"]) / sr - r["duration_s"]) < 1e-4
            assert 0.9 <= r["duration_s"] <= 2.3
            seg = load_segment(dict(r, path=tmp_path / "a" / r["path"]), min_dur_s=0.0)
            assert np.array_equal(seg, x[r["start"]:r["stop"]])
    lines = (tmp_path / "a" / "speakers.jsonl").read_text().splitlines()
    spk = [json.loads(ln) for ln in lines]
    assert [d["speaker_id"] for d in spk] == ["spk0000", "spk0001", "spk0002"]
    assert Voice.from_dict(spk[1]["voice"]) == sample_voice(1, 1)
    assert (tmp_path / "a" / "speakers.jsonl").read_bytes() == (tmp_path / "b" / "speakers.jsonl").read_bytes()
    recipe = json.loads((tmp_path / "a" / "recipe.json").read_text())
    assert recipe["workers"] == 2 and recipe["corpus_version"] == CORPUS_VERSION == 3
    # different speakers differ: the clean enrollment utterances of two speakers have different spectra
    e = [load_segment(dict(r, path=tmp_path / "a" / r["path"]), min_dur_s=0.0) for r in r1 if r["enroll"]]
    emb = frame_stats_embeddings(e)
    assert not np.allclose(emb[0], emb[1], atol=0.1)


def test_generate_corpus_validation(tmp_path):
    with pytest.raises(ValueError, match="valid"):
        generate_corpus(tmp_path, n_speakers=1, utts_per_speaker=1, condition="loud")
    with pytest.raises(ValueError):
        generate_corpus(tmp_path, n_speakers=0, utts_per_speaker=1)
    with pytest.raises(ValueError):
        generate_corpus(tmp_path, n_speakers=1, utts_per_speaker=1, workers=0)


def test_pcm16_is_the_rule_the_flac_corpus_was_written_with():
    """Corpus version 3 (WAV) holds the samples version 2 (FLAC) held: pcm16 converts floats as libsndfile does when
    it writes them to FLAC (WAV would floor instead), ties and clipping included."""
    import io

    from nessa_lib.data.synth.corpus import pcm16

    for dtype in (np.float32, np.float64):
        x = np.random.default_rng(0).uniform(-1.05, 1.05, 50000).astype(dtype)
        x[:4] = [0.5 / 32768, 1.5 / 32768, -2.5 / 32768, -1.0]
        buf = io.BytesIO()
        sf.write(buf, x, 16000, format="FLAC", subtype="PCM_16")
        buf.seek(0)
        np.testing.assert_array_equal(pcm16(x), sf.read(buf, dtype="int16")[0])
