"""Training data at scale: streaming crops from the files (same batches as the in-memory path), the automatic
choice between them, WebDataset shards (pack, stream across ranks and workers), short training runs on each
path, and bad audio named and skipped."""

import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from nessa_lib.data.audio import AudioError
from nessa_lib.data.manifest import read_manifest, write_manifest
from nessa_lib.encoders.brain import train_encoder
from nessa_lib.encoders.config import WEIGHTS_FILE, EncoderConfig
from nessa_lib.encoders.data import CropSampler, _prepare_data, collate_crops
from nessa_lib.encoders.export import load_encoder
from nessa_lib.encoders.shards import ShardCropStream, assign_shards, read_index, write_shards

SR = 16000
N_SPK, N_UTT = 6, 5
TINY = dict(name="tiny", architecture="xvector", objective="softmax", emb_dim=16, channels=16, n_mels=24, crop_s=0.5,
            batch_size=8, epochs=1, valid_crop_s=1.0, lr=1e-2, valid_utts_per_speaker=1)


def _noise(rng, n):
    return (0.1 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """6 speakers x 5 utterances: 16 kHz wav files of varying length, one speaker as segments of a FLAC, one
    speaker at 8 kHz (resampled whole), one stereo file."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    rows = []
    for s in range(N_SPK):
        spk = f"id{s:05d}"
        (root / spk).mkdir()
        if s == 0:  # segments of one FLAC
            waves = [_noise(rng, int(SR * (1.0 + 0.3 * u))) for u in range(N_UTT)]
            sf.write(root / spk / "all.flac", np.concatenate(waves), SR, subtype="PCM_16")
            ends = np.cumsum([0] + [len(w) for w in waves])
            rows += [dict(utt_id=f"{spk}/u{u}", speaker_id=spk, path=str(root / spk / "all.flac"),
                          duration_s=len(waves[u]) / SR, split="train", start=int(ends[u]), stop=int(ends[u + 1]))
                     for u in range(N_UTT)]
            continue
        for u in range(N_UTT):
            sr = 8000 if s == 1 else SR
            x = _noise(rng, int(sr * (0.8 + 0.4 * u)))
            if s == 2 and u == 0:
                x = np.stack([x, _noise(rng, len(x))], axis=1)
            p = root / spk / f"u{u}.wav"
            sf.write(p, x, sr, subtype="PCM_16")
            rows.append(dict(utt_id=f"{spk}/u{u}", speaker_id=spk, path=str(p), duration_s=len(x) / sr,
                             split="train", start=None, stop=None))
    df = pd.DataFrame(rows)
    df["start"] = df["start"].astype("Int64")
    df["stop"] = df["stop"].astype("Int64")
    write_manifest(df, root / "manifest.csv")
    return root / "manifest.csv"


def _cfg(**kw):
    return EncoderConfig(**{**TINY, **kw})


def _items(ds, sampler, epochs=(1, 2)):
    out = []
    for e in epochs:
        sampler.set_epoch(e)
        out += [ds[it] for it in sampler]
    return out


# ---------------------------------------------------------------------------------------------- memory vs stream


def test_stream_gives_the_same_crops_as_memory(corpus, tmp_path):
    mem, mem_valid, spk_m = _prepare_data(corpus, _cfg(data="memory"), progress=False)
    st, st_valid, spk_s = _prepare_data(corpus, _cfg(data="stream"), progress=False, skip_log=tmp_path / "s.csv")
    assert (mem.data_path, st.data_path) == ("memory", "stream") and spk_m == spk_s
    assert len(st) == len(mem) > 0 and st.lengths.tolist() == [len(a) for a in mem.audio]
    sampler = CropSampler(len(mem), seed=3)
    a, b = _items(mem, sampler), _items(st, sampler)
    for (wa, ya), (wb, yb) in zip(a, b):
        assert ya == yb and torch.equal(wa, wb)
    assert len(mem_valid) == len(st_valid)
    for i in range(len(mem_valid)):
        assert torch.equal(mem_valid[i][0], st_valid[i][0])
    assert not (tmp_path / "s.csv").exists()  # nothing skipped, no report


def test_stream_training_is_byte_identical_to_memory(corpus, tmp_path):
    """The choice of path is speed and memory only: same weights, with the crops read by a worker process."""
    s_mem = train_encoder(corpus, tmp_path / "m", _cfg(data="memory"), progress=False)
    s_st = train_encoder(corpus, tmp_path / "s", _cfg(data="stream", data_workers=1), progress=False)
    from safetensors.torch import load_file

    wm, ws = load_file(str(tmp_path / "m" / WEIGHTS_FILE)), load_file(str(tmp_path / "s" / WEIGHTS_FILE))
    assert wm.keys() == ws.keys() and all(torch.equal(wm[k], ws[k]) for k in wm)  # bit for bit
    assert "data_path" not in s_mem and s_st["data_path"] == "stream" and "skipped_reads" not in s_st
    assert s_st["final_train_loss"] == s_mem["final_train_loss"]


def test_auto_picks_memory_below_the_threshold_and_stream_above(corpus):
    small, _, _ = _prepare_data(corpus, _cfg(), progress=False)
    big, _, _ = _prepare_data(corpus, _cfg(preload_max_gb=1e-6), progress=False)
    assert small.data_path == "memory" and big.data_path == "stream"


def test_data_fields_change_neither_defaults_nor_identity(corpus, tmp_path):
    d = EncoderConfig().to_dict()
    assert not {"data", "preload_max_gb", "data_workers", "shuffle_buffer"} & set(d)
    with pytest.raises(ValueError, match="unknown data 'disk'"):
        EncoderConfig(data="disk")
    with pytest.raises(ValueError, match="supcon"):
        EncoderConfig(data="shards", objective="supcon")
    # A run may resume on another equivalent path; shards (another order) is refused.
    out = tmp_path / "o"
    train_encoder(corpus, out, _cfg(data="memory"), progress=False)
    train_encoder(corpus, out, _cfg(data="stream", data_workers=0, epochs=2), progress=False)
    with pytest.raises(ValueError, match=r"different encoder config \(differs in \['data'\]\)"):
        train_encoder(corpus, out, _cfg(data="shards", epochs=3), progress=False, shards=tmp_path)


def test_stream_names_and_skips_bad_files(corpus, tmp_path):
    df = read_manifest(corpus)
    root = tmp_path / "bad"
    root.mkdir()
    # a FLAC whose header (frame count) is intact but whose audio data is cut off: found at read time, in a worker
    trunc = root / "trunc.flac"
    sf.write(trunc, _noise(np.random.default_rng(1), 3 * SR), SR, subtype="PCM_16")
    assert sf.info(trunc).frames == 3 * SR
    trunc.write_bytes(trunc.read_bytes()[:300])
    assert sf.info(trunc).frames == 3 * SR
    df.loc[15, ["path", "start", "stop"]] = [str(trunc), None, None]
    df.loc[16, "path"] = str(root / "missing.wav")  # found when probing headers
    write_manifest(df, root / "m.csv")
    with pytest.raises(AudioError, match="missing.wav|trunc.flac"):
        train_encoder(root / "m.csv", tmp_path / "mem", _cfg(data="memory"), progress=False)
    out = tmp_path / "st"
    summary = train_encoder(root / "m.csv", out, _cfg(data="stream", data_workers=1, epochs=2), progress=False)
    report = pd.read_csv(out / "skipped_train.csv")
    assert any("missing.wav" in p for p in report["path"]) and any("trunc.flac" in p for p in report["path"])
    assert all(("missing.wav" in m) or ("trunc.flac" in m) for m in report["message"])
    assert summary["skipped_reads"] == len(report) >= 2 and np.isfinite(summary["final_train_loss"])
    assert summary["n_train_utts"] == N_SPK * (N_UTT - 1) - 1  # only the missing file left the plan
    load_encoder(out)


# ---------------------------------------------------------------------------------------------- shards


@pytest.fixture(scope="module")
def shards(corpus, tmp_path_factory):
    from nessa_lib.encoders.shards import main

    out = tmp_path_factory.mktemp("shards")
    assert main(["--manifest", str(corpus), "--out", str(out), "--shard-size", "4", "--seed", "1",
                 "--no-progress"]) == 0
    return out


def test_pack_writes_webdataset_shards_and_an_index(corpus, shards):
    index = read_index(shards)
    df = pd.read_csv(corpus)
    assert index["n_utts"] == len(df) and index["n_skipped"] == 0 and len(index["shards"]) == 8
    assert sorted(u for s in index["shards"] for u in s["utt_ids"]) == sorted(df["utt_id"])
    assert index["speakers"] == df["speaker_id"].value_counts().sort_index().to_dict()
    with tarfile.open(shards / index["shards"][0]["name"]) as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile(names[1]).read())
    assert names[0].endswith(".wav") and names[1] == names[0][:-4] + ".json" and meta["utt_id"] in df["utt_id"].values
    # the packed samples are the in-memory path's int16 samples
    mem, _, _ = _prepare_data(corpus, _cfg(data="memory", valid_utts_per_speaker=0), progress=False)
    by_id = dict(zip(sorted(df["utt_id"]), mem.audio))
    with tarfile.open(shards / index["shards"][0]["name"]) as tar:
        x = sf.read(tar.extractfile(names[0]), dtype="int16")[0]
    np.testing.assert_array_equal(x, by_id[meta["utt_id"]])


@pytest.mark.parametrize("world,workers", [(1, 2), (2, 1), (2, 2)])
def test_shards_stream_every_utterance_once_per_epoch(shards, world, workers, monkeypatch):
    index = read_index(shards)
    ids = [u for s in index["shards"] for u in s["utt_ids"]]
    ds = ShardCropStream(shards, {u: i for i, u in enumerate(ids)}, 4000, seed=0, shuffle_buffer=3)
    ds.with_ids = True
    for epoch in (1, 2):
        ds.set_epoch(epoch)
        seen = []
        for rank in range(world):
            for worker in range(workers):
                monkeypatch.setattr(ShardCropStream, "_reader", staticmethod(lambda r=rank, w=worker:
                                                                                 (r, world, w, workers)))
                seen += [u for _, _, u in ds]
        assert sorted(seen) == sorted(ids)  # all seen, none twice
    # the shard split itself is a partition, and differs between epochs
    parts = [assign_shards(8, seed=0, epoch=1, rank=r, world=2, worker=0, workers=1) for r in (0, 1)]
    assert sorted(parts[0] + parts[1]) == list(range(8))
    assert parts[0] != assign_shards(8, seed=0, epoch=2, rank=0, world=2, worker=0, workers=1)


def test_shards_quota_keeps_ranks_in_step(shards, monkeypatch):
    """With a batch budget every rank x worker yields exactly its share, re-reading its shards if needed."""
    index = read_index(shards)
    ids = [u for s in index["shards"] for u in s["utt_ids"]]
    ds = ShardCropStream(shards, {u: 0 for u in ids}, 4000, seed=0, shuffle_buffer=5)
    ds.set_batches(7, 4)  # 28 examples per rank, more than a rank's half of the 30 utterances
    for rank in (0, 1):
        got = []
        for worker in (0, 1):
            monkeypatch.setattr(ShardCropStream, "_reader", staticmethod(lambda r=rank, w=worker: (r, 2, w, 2)))
            got.append(len(list(ds)))
        assert got == [16, 12]  # 4 + 3 batches of 4


def test_training_on_shards(corpus, shards, tmp_path):
    summary = train_encoder(corpus, tmp_path / "sh", _cfg(data="shards", data_workers=2, max_steps=3, epochs=5,
                                                          shuffle_buffer=4), progress=False, shards=shards)
    assert summary["data_path"] == "shards" and summary["optimizer_steps"] == 3
    assert summary["n_train_utts"] == N_SPK * (N_UTT - 1)
    enc = load_encoder(tmp_path / "sh")
    emb = enc.embed(torch.randn(2, SR), torch.ones(2))
    assert emb.shape == (2, 16) and torch.isfinite(emb).all()
    with pytest.raises(ValueError, match="needs the shard folder"):
        train_encoder(corpus, tmp_path / "x", _cfg(data="shards"), progress=False)
    with pytest.raises(ValueError, match="cannot feed"):
        train_encoder(corpus, tmp_path / "y", _cfg(data="shards", data_workers=9), progress=False, shards=shards)
    with pytest.raises(ValueError, match="not a readable shard index"):
        train_encoder(corpus, tmp_path / "z", _cfg(data="shards"), progress=False, shards=tmp_path)


def test_stream_training_run_with_max_steps_exports(corpus, tmp_path):
    summary = train_encoder(corpus, tmp_path / "st", _cfg(data="stream", data_workers=0, max_steps=2, epochs=3),
                            progress=False)
    assert summary["optimizer_steps"] == 2 and summary["data_path"] == "stream"
    assert load_encoder(tmp_path / "st").embed(torch.randn(1, SR), torch.ones(1)).shape == (1, 16)


def test_pack_and_stream_name_and_skip_bad_audio(corpus, shards, tmp_path, monkeypatch):
    # packing: a missing and a silent file are named in skipped.csv, the rest is packed
    df = read_manifest(corpus)
    df.loc[7, "path"] = str(tmp_path / "gone.wav")
    sf.write(tmp_path / "silent.wav", np.zeros(SR, dtype=np.int16), SR)
    df.loc[8, ["path", "start", "stop"]] = [str(tmp_path / "silent.wav"), None, None]
    write_manifest(df, tmp_path / "m.csv")
    index = write_shards(tmp_path / "m.csv", tmp_path / "sh", shard_size=10, progress=False)
    report = pd.read_csv(tmp_path / "sh" / "skipped.csv")
    assert index["n_utts"] == len(df) - 2 and index["n_skipped"] == 2
    assert sorted(report["reason"]) == ["missing", "silent"] and report["message"].str.contains("gone.wav").any()
    # streaming: one member's audio corrupted, one json broken, one shard truncated
    bad = tmp_path / "bad"
    bad.mkdir()
    src = read_index(shards)
    for s in src["shards"]:
        (bad / s["name"]).write_bytes((shards / s["name"]).read_bytes())
    (bad / "index.json").write_text((shards / "index.json").read_text())

    def rewrite(name, fn):
        with tarfile.open(shards / name) as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
        with tarfile.open(bad / name, "w", format=tarfile.USTAR_FORMAT) as tar:
            for m, data in members:
                data = fn(m.name, data)
                m.size = len(data)
                tar.addfile(m, __import__("io").BytesIO(data))

    names = [s["name"] for s in src["shards"]]
    rewrite(names[0], lambda n, d: b"not a wav" if n == "u000000000.wav" else d)
    rewrite(names[1], lambda n, d: b"{" if n.endswith(".json") and n.startswith("u000000004") else d)
    raw = (bad / names[2]).read_bytes()
    (bad / names[2]).write_bytes(raw[: len(raw) // 3])
    ids = [u for s in src["shards"] for u in s["utt_ids"]]
    log = tmp_path / "skips.csv"
    ds = ShardCropStream(bad, {u: 0 for u in ids}, 4000, seed=0, shuffle_buffer=2, skip_log=log)
    ds.with_ids = True
    seen = [u for _, _, u in ds]
    rep = pd.read_csv(log)
    assert rep["path"].str.contains(names[0] + ":u000000000").any()
    assert rep["path"].str.contains(names[1] + ":u000000004").any()
    assert (rep["reason"] == "bad_shard").sum() == 1 and rep["message"].str.contains(names[2]).any()
    lost = set(src["shards"][2]["utt_ids"]) | {src["shards"][0]["utt_ids"][0], src["shards"][1]["utt_ids"][0]}
    assert len(seen) == len(set(seen)) and set(ids) - set(seen) <= lost and len(seen) >= len(ids) - len(lost)


def test_collate_drops_skipped_items():
    w, lens, y = collate_crops([None, (torch.ones(3), 2)])
    assert w.shape == (1, 3) and y.tolist() == [2]
    with pytest.raises(RuntimeError, match="every read"):
        collate_crops([None, None])


@pytest.mark.slow
@pytest.mark.parametrize("path", ["stream", "shards"])
def test_ddp_torchrun_two_processes_streaming(corpus, shards, tmp_path, path):
    """torchrun --nproc_per_node 2 (gloo, CPU) with a DataLoader worker per rank: both ranks run the same number of
    steps (no hang) and rank 0 exports a usable encoder."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cfg = json.dumps({**TINY, "name": "ddp", "batch_size": 4, "epochs": 2, "data": path, "data_workers": 1,
                      "shuffle_buffer": 3})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "nessa_lib.encoders", "--manifest", str(corpus), "--out", str(out), "--config", cfg,
           "--shards", str(shards), "--no-progress"]
    res = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=180, cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1])
    assert summary["world_size"] == 2 and summary["data_path"] == path and summary["epochs"] == 2
    assert load_encoder(out).model_id == summary["model_id"]
