"""Encoder training through SpeechBrain: config checks, every architecture/objective, export round trip,
determinism, resume after a kill, DDP under torchrun, and bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from nessa_lib.data.audio import AudioError
from nessa_lib.data.manifest import write_manifest
from nessa_lib.embeddings import fingerprint
from nessa_lib.encoders.brain import EncoderBrain, train_encoder
from nessa_lib.encoders.config import CKPT_DIR, DEFAULT_CONFIGS, META_FILE, WEIGHTS_FILE, EncoderConfig, default_config
from nessa_lib.encoders.data import SpeakerBatchSampler, _prepare_data, select_speakers
from nessa_lib.encoders.export import load_encoder
from nessa_lib.encoders.modules import build_modules

SR = 16000
N_SPK, N_UTT = 6, 4
# Tiny but real: every SpeechBrain piece runs, one or two optimiser steps per epoch.
TINY = dict(emb_dim=16, channels=16, n_mels=24, crop_s=0.5, batch_size=8, speakers_per_batch=3, utts_per_speaker=2,
            epochs=1, valid_crop_s=1.0, lr=1e-2)


def _tone(f0, rng, dur_s=1.5):
    t = np.arange(int(dur_s * SR)) / SR
    x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    return (0.2 * x / np.abs(x).max() + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """6 speakers x 4 utterances of 1.5 s: each speaker a distinct harmonic tone plus noise."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    rows = []
    for s in range(N_SPK):
        for u in range(N_UTT):
            p = root / f"spk{s}" / f"spk{s}_{u}.flac"
            p.parent.mkdir(exist_ok=True)
            sf.write(p, _tone(110 + 40 * s, rng), SR)
            rows.append(dict(utt_id=f"spk{s}_{u}", speaker_id=f"spk{s}", path=str(p), duration_s=1.5, split="train"))
    manifest = root / "manifest.csv"
    write_manifest(pd.DataFrame(rows), manifest)
    return manifest


def _cfg(arch="ecapa", obj="aam", **kw):
    return EncoderConfig(**{**TINY, "name": f"{arch}-{obj}", "architecture": arch, "objective": obj, **kw})


def _weights(out):
    from safetensors.torch import load_file

    return load_file(str(Path(out) / WEIGHTS_FILE))


# ---------------------------------------------------------------------------------------------- config


def test_config_rejects_unknown_architecture_objective_and_keys():
    with pytest.raises(ValueError, match=r"unknown architecture 'tdnn'.*xvector.*ecapa"):
        EncoderConfig(architecture="tdnn")
    with pytest.raises(ValueError, match=r"unknown objective 'triplet'.*softmax.*aam.*supcon"):
        EncoderConfig(objective="triplet")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['emb_size'\]"):
        EncoderConfig.from_dict({"emb_size": 3})
    with pytest.raises(ValueError, match="emb_dim must be an integer"):
        EncoderConfig(emb_dim=0)
    with pytest.raises(ValueError, match="crop_s"):
        EncoderConfig(crop_s=float("nan"))
    with pytest.raises(ValueError, match="divisible by res2net_scale"):
        EncoderConfig(architecture="ecapa", channels=30, res2net_scale=4)
    with pytest.raises(ValueError, match="unknown default encoder"):
        default_config("wavlm")
    for name in DEFAULT_CONFIGS:
        cfg = default_config(name)
        assert EncoderConfig.from_dict(cfg.to_dict()) == cfg
        assert json.loads(json.dumps(cfg.to_dict())) == cfg.to_dict()


def test_speaker_subsets_are_deterministic_and_can_be_disjoint():
    spk = [f"s{i:02d}" for i in range(20)]
    a = select_speakers(spk, 10, seed=1)
    assert a == select_speakers(list(reversed(spk)), 10, seed=1)  # input order does not matter
    assert set(a).isdisjoint(select_speakers(spk, 10, seed=1, offset=10))
    assert len(set(a) & set(select_speakers(spk, 10, seed=1, offset=5))) == 5
    with pytest.raises(ValueError, match="only 20 are available"):
        select_speakers(spk, 21, seed=0)


def test_build_modules_heads():
    mods = build_modules(_cfg("ecapa", "supcon"))
    assert "classifier" not in mods
    with pytest.raises(ValueError, match="needs n_speakers"):
        build_modules(_cfg("ecapa", "aam"))


def test_speaker_batch_sampler_is_seeded_and_epoch_dependent():
    labels = np.repeat(np.arange(6), 4)
    s = SpeakerBatchSampler(labels, n_speakers=3, n_utts=2, seed=0)
    s.set_epoch(1)
    e1 = list(s)
    assert e1 == list(s)
    s.set_epoch(2)
    assert e1 != list(s)
    for b in e1:
        spk = labels[[i for i, _ in b]]
        assert len(b) == 6 and all((spk == v).sum() == 2 for v in set(spk))


def test_package_imports_nothing():
    """``nessa_lib.encoders`` is a docstring: callers import the submodule that holds a name, so importing one
    (say the extraction) loads neither SpeechBrain nor the training code, and the old package-level names are gone."""
    import ast
    import inspect

    import nessa_lib.encoders as package

    tree = ast.parse(inspect.getsource(package))
    assert [type(node) for node in tree.body] == [ast.Expr]  # the docstring only
    assert not hasattr(package, "EncoderConfig") or "EncoderConfig" not in vars(package)
    with pytest.raises(ImportError):
        from nessa_lib.encoders import train_encoder  # noqa: F401


def test_module_cli_runs():
    res = subprocess.run([sys.executable, "-m", "nessa_lib.encoders", "--help"], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.startswith("usage: python -m nessa_lib.encoders") and "--manifest" in res.stdout


# ---------------------------------------------------------------------------------------------- training


@pytest.mark.slow
@pytest.mark.parametrize("arch,obj", [("xvector", "softmax"), ("ecapa", "aam"), ("ecapa", "supcon"),
                                      ("resnet", "aam")])
def test_train_and_export_round_trip(corpus, tmp_path, arch, obj):
    kw = dict(channels=4) if arch == "resnet" else {}
    cfg = _cfg(arch, obj, epochs=2, **kw)
    out = tmp_path / "enc"
    summary = train_encoder(corpus, out, cfg, progress=False)
    assert summary["epochs"] == 2 and summary["n_train_speakers"] == N_SPK
    assert summary["n_train_utts"] == N_SPK * (N_UTT - cfg.valid_utts_per_speaker)
    assert np.isfinite(summary["final_train_loss"]) and summary["n_params"] > 0
    meta = json.loads((out / META_FILE).read_text())
    assert [r["epoch"] for r in meta["history"]] == [1, 2]
    assert all(np.isfinite(r["valid_error"]) for r in meta["history"])
    assert (out / CKPT_DIR).is_dir()

    model = load_encoder(out)
    assert model.model_id == summary["model_id"] == meta["model_id"]
    assert model.emb_dim == 16 and model.sample_rate == SR and model.config["objective"] == obj
    # The fingerprint is reproducible from the exported files alone.
    assert fingerprint(_weights(out), meta["embedding_config"], cfg.name) == model.model_id
    assert load_encoder(out).model_id == model.model_id

    wavs = torch.randn(3, SR) * 0.1
    lens = torch.tensor([1.0, 0.5, 0.75])
    e = model.embed(wavs, lens)
    assert e.shape == (3, 16) and e.dtype == torch.float32 and torch.isfinite(e).all()
    assert torch.equal(e, model.embed(wavs, lens))  # eval mode: no batch-norm updates, deterministic
    # Relative lengths keep the padding out of the statistics: row 1 alone at its true length gives nearly the
    # same embedding (not exactly: convolutions near the end of the row see padding instead of reflection).
    alone = model.embed(wavs[1:2, : SR // 2])
    assert torch.nn.functional.cosine_similarity(alone[0], e[1], dim=0) > 0.9


@pytest.mark.slow
def test_same_seed_same_weights_other_seed_differs(corpus, tmp_path):
    s1 = train_encoder(corpus, tmp_path / "a", _cfg(seed=3), progress=False)
    s2 = train_encoder(corpus, tmp_path / "b", _cfg(seed=3), progress=False)
    s3 = train_encoder(corpus, tmp_path / "c", _cfg(seed=4), progress=False)
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert s1["model_id"] == s2["model_id"] != s3["model_id"]


class _Killed(Exception):
    pass


@pytest.mark.slow
def test_killed_run_resumes_from_last_epoch(corpus, tmp_path, monkeypatch):
    cfg = _cfg("xvector", "softmax", epochs=3)
    full = train_encoder(corpus, tmp_path / "full", cfg, progress=False)

    # Kill the second run right after its epoch-2 checkpoint is written.
    original = EncoderBrain._end_epoch

    def end_epoch_then_die(self, hist, rec):
        original(self, hist, rec)
        if rec["epoch"] == 2:
            raise _Killed

    out = tmp_path / "killed"
    monkeypatch.setattr(EncoderBrain, "_end_epoch", end_epoch_then_die)
    with pytest.raises(_Killed):
        train_encoder(corpus, out, cfg, progress=False)
    monkeypatch.setattr(EncoderBrain, "_end_epoch", original)
    assert not (out / META_FILE).exists()
    ckpts = list((out / CKPT_DIR).glob("CKPT*"))
    assert len(ckpts) == 1 and (ckpts[0] / "counter.ckpt").read_text() == "2"

    # Re-run: only epoch 3 is trained (the epoch counter was restored), and the result equals the uninterrupted run.
    calls = []
    monkeypatch.setattr(EncoderBrain, "_end_epoch", lambda self, h, r: (calls.append(r["epoch"]),
                                                                              original(self, h, r)))
    resumed = train_encoder(corpus, out, cfg, progress=False)
    assert calls == [3]
    meta = json.loads((out / META_FILE).read_text())
    assert [r["epoch"] for r in meta["history"]] == [1, 2, 3]
    assert resumed["model_id"] == full["model_id"]

    # A finished run is not trained again.
    calls.clear()
    assert train_encoder(corpus, out, cfg, progress=False)["model_id"] == full["model_id"]
    assert calls == []


def test_max_steps_caps_training_across_epochs_and_exports(corpus, tmp_path, monkeypatch, capsys):
    """--set max_steps=3 through the CLI: 12 training crops in batches of 6 = 2 steps per epoch, so the run stops
    one step into epoch 2 of 4, still validates, checkpoints and exports an encoder that embeds; a re-run trains
    nothing more."""
    from nessa_lib.encoders.cli import main

    steps = []
    original = EncoderBrain.fit_batch
    monkeypatch.setattr(EncoderBrain, "fit_batch", lambda self, b: (steps.append(1), original(self, b))[1])
    out = tmp_path / "capped"
    cfg = json.dumps({**TINY, "name": "capped", "architecture": "xvector", "objective": "softmax",
                      "batch_size": 6, "epochs": 4})
    assert main(["--manifest", str(corpus), "--out", str(out), "--config", cfg, "--set", "max_steps=3",
                 "--no-progress", "--device", "cpu"]) == 0
    summary = json.loads([ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")][-1])
    assert len(steps) == 3 and summary["optimizer_steps"] == 3
    meta = json.loads((out / META_FILE).read_text())
    assert meta["config"]["max_steps"] == 3 and [r["epoch"] for r in meta["history"]] == [1, 2]
    enc = load_encoder(out)
    emb = enc.embed(torch.from_numpy(_tone(150, np.random.default_rng(1))[None]))
    assert emb.shape == (1, 16) and torch.isfinite(emb).all()
    # A finished capped run is not trained again.
    steps.clear()
    assert train_encoder(corpus, out, EncoderConfig.from_dict(meta["config"]), progress=False)["model_id"] \
        == enc.model_id
    assert steps == []
    with pytest.raises(ValueError, match="max_steps must be None or an integer >= 1"):
        EncoderConfig(max_steps=0)


def test_uncapped_config_dict_is_unchanged():
    """max_steps=None is left out of to_dict, so uncapped exports and checkpoint configs keep their old bytes."""
    assert "max_steps" not in EncoderConfig().to_dict()
    assert EncoderConfig.from_dict(EncoderConfig(max_steps=5).to_dict()).max_steps == 5


@pytest.mark.slow
def test_ddp_torchrun_two_processes(corpus, tmp_path):
    out = tmp_path / "ddp"
    cfg = json.dumps({**TINY, "name": "ddp", "architecture": "xvector", "objective": "softmax", "batch_size": 4})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "nessa_lib.encoders", "--manifest", str(corpus), "--out", str(out), "--config", cfg,
           "--no-progress"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180,
                         cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1])
    assert summary["world_size"] == 2
    assert load_encoder(out).model_id == summary["model_id"]


@pytest.mark.slow
def test_torchrun_extraction_two_processes_matches_one(corpus, tiny_encoder, tmp_path):
    """torchrun --nproc_per_node 2 -m nessa_lib.encoders.extract_cli (gloo, CPU): one embedding file with the same
    ids in the same order as a single-process run, the same embeddings, and a bad file skipped and reported once."""
    from nessa_lib.data.manifest import read_manifest
    from nessa_lib.embeddings import load_embeddings
    from nessa_lib.encoders.extract import extract_embeddings

    df = read_manifest(corpus)  # absolute paths (the file stores them relative to its folder)
    silent = tmp_path / "silent.flac"
    sf.write(silent, np.zeros(SR, np.float32), SR)
    df = pd.concat([df.iloc[:5], pd.DataFrame([dict(utt_id="bad", speaker_id="spk0", path=str(silent),
                                                    duration_s=1.0, split="train")]), df.iloc[5:]], ignore_index=True)
    manifest = tmp_path / "m.csv"
    write_manifest(df, manifest)
    out = tmp_path / "emb.npz"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "nessa_lib.encoders.extract_cli", "--manifest", str(manifest), "--encoder", tiny_encoder.source,
           "--out", str(out), "--batch-size", "4", "--no-progress"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180,
                         cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1])["world_size"] == 2
    got = load_embeddings(out, model_id=tiny_encoder.model_id)
    skipped = []
    ref = extract_embeddings(read_manifest(manifest), tiny_encoder, batch_size=4, progress=False, skipped=skipped)
    assert got.utt_ids.tolist() == ref.utt_ids.tolist() == [u for u in df.utt_id if u != "bad"]
    assert got.speaker_ids.tolist() == ref.speaker_ids.tolist()
    np.testing.assert_allclose(got.embeddings, ref.embeddings, rtol=1e-5, atol=1e-6)
    report = pd.read_csv(tmp_path / "emb.skipped.csv")
    assert report.utt_id.tolist() == ["bad"] and report.reason.tolist() == ["silent"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npz", "emb.skipped.csv", "m.csv", "silent.flac"]


# ---------------------------------------------------------------------------------------------- bad input


def test_corrupt_training_file_is_named(corpus, tmp_path):
    df = pd.read_csv(corpus)
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"not audio at all" * 100)
    df.loc[3, "path"] = str(bad)
    m = tmp_path / "m.csv"
    df["path"] = [p if os.path.isabs(p) else str(Path(corpus).parent / p) for p in df["path"]]
    write_manifest(df, m)
    with pytest.raises(AudioError, match="bad.flac"):
        train_encoder(m, tmp_path / "out", _cfg(), progress=False)


def test_training_audio_honours_segments(corpus, tmp_path):
    """A manifest whose utterances are segments of one FLAC per speaker trains on exactly the same samples."""
    df = pd.read_csv(corpus)
    df["path"] = [str(Path(corpus).parent / p) for p in df["path"]]
    rows = []
    for spk, g in df.groupby("speaker_id", sort=True):
        waves = [sf.read(p, dtype="float32")[0] for p in g["path"]]
        sf.write(tmp_path / f"{spk}.flac", np.concatenate(waves), SR, format="FLAC", subtype="PCM_16")
        ends = np.cumsum([0] + [len(w) for w in waves])
        rows += [dict(r, path=str(tmp_path / f"{spk}.flac"), start=int(a), stop=int(b))
                 for r, a, b in zip(g.to_dict("records"), ends[:-1], ends[1:])]
    write_manifest(pd.DataFrame(rows), tmp_path / "m.csv")
    whole, whole_valid, spk_a = _prepare_data(corpus, _cfg(), progress=False)
    seg, seg_valid, spk_b = _prepare_data(tmp_path / "m.csv", _cfg(), progress=False)
    assert spk_a == spk_b and len(seg.audio) == len(whole.audio) > 0
    for a, b in zip(whole.audio + (whole_valid.audio if whole_valid else []),
                    seg.audio + (seg_valid.audio if seg_valid else [])):
        np.testing.assert_array_equal(a, b)


def test_unknown_speakers_and_empty_train_split(corpus, tmp_path):
    with pytest.raises(ValueError, match="not in the train split"):
        train_encoder(corpus, tmp_path / "o", _cfg(speakers=["spk0", "nobody"]), progress=False)
    df = pd.read_csv(corpus).assign(split="eval")
    df["path"] = [str(Path(corpus).parent / p) for p in df["path"]]
    write_manifest(df, tmp_path / "m.csv")
    with pytest.raises(ValueError, match="no utterance has split 'train'"):
        train_encoder(tmp_path / "m.csv", tmp_path / "o", _cfg(), progress=False)


@pytest.fixture(scope="module")
def tiny_encoder(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc")
    train_encoder(corpus, out, _cfg("xvector", "softmax", speakers=["spk0", "spk1", "spk2", "spk3"],
                                        valid_utts_per_speaker=0, batch_size=4), progress=False)
    return load_encoder(out)


def test_embed_rejects_bad_input(tiny_encoder):
    m = tiny_encoder
    assert m.min_samples >= 400 and m.meta["summary"]["n_train_speakers"] == 4
    x = torch.randn(2, SR) * 0.1
    x[1, 5] = float("nan")
    with pytest.raises(ValueError, match=r"row\(s\) \[1\] contain NaN/inf"):
        m.embed(x)
    with pytest.raises(ValueError, match="fewer than min_samples"):
        m.embed(torch.randn(1, m.min_samples - 1))
    with pytest.raises(ValueError, match=r"row 1 has .* fewer than min_samples"):
        m.embed(torch.randn(2, SR), torch.tensor([1.0, (m.min_samples - 10) / SR]))
    with pytest.raises(ValueError, match="relative lengths"):
        m.embed(torch.randn(2, SR), torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"shape \(batch, samples\)"):
        m.embed(torch.randn(SR))
    assert m.embed(torch.randn(1, m.min_samples)).shape == (1, 16)


def test_load_encoder_refuses_incomplete_or_foreign_exports(tiny_encoder, tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder.json"):
        load_encoder(tmp_path)
    src = Path(tiny_encoder.source)
    (tmp_path / WEIGHTS_FILE).write_bytes((src / WEIGHTS_FILE).read_bytes())
    meta = json.loads((src / META_FILE).read_text())
    (tmp_path / META_FILE).write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(ValueError, match="not a nessa-encoder"):
        load_encoder(tmp_path)
    meta["embedding_config"]["arch_kwargs"]["lin_neurons"] = 32
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not match the architecture"):
        load_encoder(tmp_path)


@pytest.mark.slow
def test_resume_refuses_a_different_config(corpus, tmp_path):
    out = tmp_path / "enc"
    train_encoder(corpus, out, _cfg("xvector", "softmax"), progress=False)
    with pytest.raises(ValueError, match=r"different encoder config \(differs in \['emb_dim'\]\)"):
        train_encoder(corpus, out, _cfg("xvector", "softmax", emb_dim=8), progress=False)


def test_device_options_of_training_and_the_encoder(corpus, tmp_path, tiny_encoder):
    """No GPU here: 'auto' is the CPU, mixed precision is refused on the CPU before any work, and an exported
    encoder moved with .to('cpu') embeds exactly as before."""
    from nessa_lib.devices import resolve_device

    if torch.cuda.is_available():
        pytest.skip("documents the CPU-only machine")
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="precision='fp16' is a GPU option"):
        train_encoder(corpus, tmp_path / "o", _cfg(), progress=False, precision="fp16")
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        train_encoder(corpus, tmp_path / "o", _cfg(), progress=False, device="cuda")
    assert not (tmp_path / "o").exists()
    enc = tiny_encoder
    wav = torch.from_numpy(_tone(150, np.random.default_rng(2))[None])
    before = enc.embed(wav)
    assert enc.to("cpu") is enc and enc.device.type == "cpu"
    assert torch.equal(enc.embed(wav), before)
