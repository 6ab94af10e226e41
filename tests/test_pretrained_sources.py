"""Pretrained encoders as pipeline entries (issue 12, parts 3 and 5): `{pretrained: speechbrain | wespeaker, source,
objective}` entries are described by stage 02 (source, fingerprint, per-file SHA-256), loaded by stage 03 only if
their files are still the ones described, and the VoxCeleb1 pretrained-pair preset runs stages 01-05 end to end on
a tiny VoxCeleb-layout fixture with local stand-ins in the SpeechBrain hub layout, offline."""

import hashlib
import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from nessa_lib import paths, zoo
from nessa_lib.encoders import pretrained
from nessa_lib.encoders.config import EncoderConfig
from nessa_lib.encoders.export import _export
from nessa_lib.encoders.modules import build_modules
from nessa_lib.pipeline import params
from nessa_lib.stages import train_encoder as stage02

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "presets" / "voxceleb1-pretrained.yaml"


def study_encoder(root: Path, arch: str, emb_dim: int, seed: int = 0) -> Path:
    """A study encoder export with random weights (no training), the input of the stand-in exports."""
    out = root / f"study-{arch}-{seed}"
    out.mkdir(parents=True)
    cfg = EncoderConfig(name=arch, architecture=arch, objective="supcon", emb_dim=emb_dim, n_mels=24, channels=16,
                        seed=seed)
    torch.manual_seed(seed)
    _export(out, cfg, build_modules(cfg), history=[], summary={}, speakers=["a", "b"])
    return out


def speechbrain_standin(root: Path, arch: str, emb_dim: int, seed: int = 0) -> Path:
    """A folder in the SpeechBrain hub layout (hyperparams.yaml + embedding_model.ckpt), like a downloaded
    speechbrain/spkrec-* folder but tiny."""
    return zoo.export_speechbrain(study_encoder(root, arch, emb_dim, seed), root / f"spkrec-{arch}-{seed}")


def wespeaker_standin(root: Path, seed: int = 0) -> Path:
    """A WeSpeaker-convention ONNX file (feats -> embs)."""
    return zoo.export_onnx(study_encoder(root, "xvector", 16, seed), root / f"ws-{seed}.onnx")


def section(**encoders):
    return stage02.Params(seed=0, manifest="m.csv", threads=1, device="cpu", precision="fp32", shards="", recipe={},
                          encoders=encoders)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------- entries


@pytest.mark.parametrize("entry, message", [
    ({"pretrained": "wav2vec"}, r"encoders\.m\.pretrained: unknown kind 'wav2vec'; valid: \['resemblyzer', "
                                r"'speechbrain', 'wespeaker'\]"),
    ({"pretrained": "speechbrain", "objective": "aam"}, r"encoders\.m\.source is missing"),
    ({"pretrained": "wespeaker", "source": "m.onnx"}, r"encoders\.m\.objective is missing"),
    ({"pretrained": "speechbrain", "source": "", "objective": "aam"}, r"encoders\.m\.source must be a SpeechBrain"),
    ({"pretrained": "speechbrain", "source": "a/b", "objective": "triplet"}, r"encoders\.m\.objective must be"),
    ({"pretrained": "speechbrain", "source": "a/b", "objective": "aam", "savedir": "x"},
     r"encoders\.m has unknown key\(s\) \['savedir'\]"),
    ({"pretrained": "resemblyzer", "source": "x"}, r"encoders\.m has unknown key\(s\) \['source'\]"),
])
def test_bad_entries_name_the_params_key(entry, message):
    with pytest.raises(ValueError, match=r"^params\.yaml: train_encoder\." + message):
        stage02.encoder_spec(section(m=entry), "m")


def test_good_entries_are_returned_as_they_are():
    sb = {"pretrained": "speechbrain", "source": "speechbrain/spkrec-ecapa-voxceleb", "objective": "aam"}
    assert stage02.encoder_spec(section(m=sb), "m") == sb
    assert stage02.encoder_spec(section(m={"pretrained": "resemblyzer"}), "m") == {"pretrained": "resemblyzer"}


# ---------------------------------------------------------------------------------------------- describe / load


def test_speechbrain_folder_is_described_loaded_and_refused_once_changed(tmp_path, offline):
    folder = speechbrain_standin(tmp_path, "ecapa", 12)
    out = tmp_path / "models" / "ecapa"
    meta = pretrained.describe({"pretrained": "speechbrain", "source": str(folder), "objective": "aam"}, out)
    direct = zoo.from_speechbrain(folder)
    assert json.loads((out / "encoder.json").read_text()) == meta
    assert meta["format"] == pretrained.PRETRAINED_FORMAT and meta["name"] == "speechbrain"
    assert meta["source"] == str(folder) and meta["model_id"] == direct.model_id
    assert meta["files"]["embedding_model"] == {"file": "embedding_model.ckpt",
                                                "sha256": sha256(folder / "embedding_model.ckpt")}
    assert meta["config"] == {"name": "speechbrain", "architecture": "ECAPA_TDNN", "objective": "aam", "emb_dim": 12}
    assert pretrained.objective(out) == "aam"

    enc = pretrained.load(out)
    assert enc.model_id == meta["model_id"] and enc.emb_dim == 12
    wavs = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(enc.embed(wavs, torch.ones(2)), direct.embed(wavs, torch.ones(2)))

    with open(folder / "hyperparams.yaml", "a") as f:  # any changed byte, even a comment
        f.write("# edited\n")
    with pytest.raises(zoo.SourceChangedError) as err:
        pretrained.load(out)
    text = str(err.value)
    assert str(folder) in text and "changed since stage 02" in text and "['hyperparams.yaml']" in text
    assert "dvc repro -f -s train_encoder@ecapa" in text

    (folder / "embedding_model.ckpt").unlink()
    with pytest.raises(zoo.SourceChangedError, match=r"cannot be loaded here \(.*embedding_model\.ckpt is missing"):
        pretrained.load(out)


def test_source_folder_missing_a_file_is_refused_by_stage_02(tmp_path, offline):
    folder = speechbrain_standin(tmp_path, "xvector", 16)
    (folder / "embedding_model.ckpt").unlink()
    with pytest.raises(zoo.ModelFileNotFoundError, match=r"embedding_model\.ckpt is missing"):
        pretrained.describe({"pretrained": "speechbrain", "source": str(folder), "objective": "softmax"},
                            tmp_path / "out")
    assert not (tmp_path / "out" / "encoder.json").exists()
    with pytest.raises(zoo.ModelFileNotFoundError, match=r"nothing\.onnx does not exist"):
        pretrained.describe({"pretrained": "wespeaker", "source": str(tmp_path / "nothing.onnx"),
                             "objective": "aam"}, tmp_path / "out")


def test_a_file_written_while_stage_02_reads_it_is_refused(tmp_path, offline, monkeypatch):
    from nessa_lib.encoders import speechbrain_hub

    folder = speechbrain_standin(tmp_path, "xvector", 16)
    original = speechbrain_hub.from_speechbrain

    def load_then_write(*args, **kwargs):
        enc = original(*args, **kwargs)
        with open(folder / "embedding_model.ckpt", "ab") as f:  # another process rewriting the weights
            f.write(b"\0")
        return enc

    monkeypatch.setattr(speechbrain_hub, "from_speechbrain", load_then_write)
    with pytest.raises(zoo.SourceChangedError, match=r"\['embedding_model\.ckpt'\] changed while being read"):
        pretrained.describe({"pretrained": "speechbrain", "source": str(folder), "objective": "softmax"},
                            tmp_path / "out")


def test_relative_source_is_read_from_the_repository_root(tmp_path, offline, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    speechbrain_standin(tmp_path / "models", "xvector", 16)
    monkeypatch.chdir(tmp_path / "models")  # a relative source means the repository root, not the cwd
    out = tmp_path / "desc"
    meta = pretrained.describe({"pretrained": "speechbrain", "source": "models/spkrec-xvector-0",
                                "objective": "softmax"}, out)
    assert meta["source"] == "models/spkrec-xvector-0"
    assert pretrained.load(out).model_id == meta["model_id"]


def standin_hub_cache(tmp_path, monkeypatch) -> Path:
    """A Hugging Face cache (HF_HUB_CACHE) holding a stand-in for the hub id nessa/spkrec-standin; its repo folder."""
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--nessa--spkrec-standin"
    shutil.copytree(speechbrain_standin(tmp_path, "ecapa", 12), repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return repo


def test_a_cached_hub_id_is_used_as_it_is_even_online(tmp_path, monkeypatch):
    """Stage 02 does not ask the hub for a newer revision of a model it has: no connection is even attempted."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    attempts = []

    def record(*args, **kwargs):
        attempts.append(args)
        raise OSError("no network in tests")

    monkeypatch.setattr(socket.socket, "connect", record)
    monkeypatch.setattr(socket, "create_connection", record)
    monkeypatch.setattr(socket, "getaddrinfo", record)
    standin_hub_cache(tmp_path, monkeypatch)
    meta = pretrained.describe({"pretrained": "speechbrain", "source": "nessa/spkrec-standin", "objective": "aam"},
                               tmp_path / "out")
    assert meta["model_id"].startswith("speechbrain@") and attempts == []


def test_hub_id_is_taken_from_the_cache_offline_and_never_downloaded_by_load(tmp_path, offline, monkeypatch):
    """A hub id found in the Hugging Face cache is described and loaded with no network; one that is not there
    gives the offline recipe (stage 02) or a refusal naming the source (stage 03)."""
    repo = standin_hub_cache(tmp_path, monkeypatch)

    out = tmp_path / "models" / "ecapa"
    meta = pretrained.describe({"pretrained": "speechbrain", "source": "nessa/spkrec-standin", "objective": "aam"},
                               out)
    assert meta["source"] == "nessa/spkrec-standin" and meta["model_id"].startswith("speechbrain@")
    assert pretrained.load(out).model_id == meta["model_id"]

    with pytest.raises(zoo.HubUnreachableError) as err:
        pretrained.describe({"pretrained": "speechbrain", "source": "nessa/not-cached", "objective": "aam"},
                            tmp_path / "models" / "other")
    assert "huggingface-cli download nessa/not-cached" in str(err.value)
    assert "set train_encoder.encoders.other.source to that folder" in str(err.value)

    shutil.rmtree(repo)  # e.g. another machine, whose cache lacks it: stage 03 never downloads
    with pytest.raises(zoo.SourceChangedError, match=r"'nessa/spkrec-standin' cannot be loaded here .*not in the "
                                                     r"local Hugging Face cache"):
        pretrained.load(out)


def test_wespeaker_file_is_described_loaded_and_refused_once_changed(tmp_path, offline):
    onnx = wespeaker_standin(tmp_path)
    out = tmp_path / "ws"
    meta = pretrained.describe({"pretrained": "wespeaker", "source": str(onnx), "objective": "aam"}, out)
    assert meta["model_id"] == zoo.from_wespeaker(onnx).model_id and meta["model_id"].startswith("wespeaker@")
    assert meta["files"] == {"model.onnx": {"file": onnx.name, "sha256": sha256(onnx)}}
    assert pretrained.load(out).model_id == meta["model_id"]
    shutil.copy(wespeaker_standin(tmp_path, seed=1), onnx)  # other weights under the same name
    with pytest.raises(zoo.SourceChangedError, match=rf"{onnx.name}'\]\); embeddings would not match"):
        pretrained.load(out)


def test_wespeaker_entry_through_the_calls_of_stages_02_and_03(tmp_path, offline):
    """What notebooks 02 and 03 call for a wespeaker entry, in-process (the pipeline run of the preset below
    covers the runner with SpeechBrain entries): describe, load, embed the splits into files carrying its id."""
    import pandas as pd
    import soundfile as sf

    from nessa_lib import embeddings
    from nessa_lib.stages import extract_embeddings as stage03

    onnx = wespeaker_standin(tmp_path)
    spec = stage02.encoder_spec(section(ws={"pretrained": "wespeaker", "source": str(onnx), "objective": "aam"}), "ws")
    meta, summary = stage02.train_or_describe(spec, "unused.csv", tmp_path / "models" / "ws")
    assert summary == {"train_time_s": 0.0} and stage02.training_metrics(meta, summary)["emb_dim"] == 16.0
    rows = []
    for i in range(4):
        path = tmp_path / "wav" / f"{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, 0.1 * np.random.default_rng(i).standard_normal(16000), 16000)
        rows.append({"utt_id": f"s{i % 2}/{i}", "speaker_id": f"s{i % 2}", "path": str(path), "duration_s": 1.0,
                     "split": "eval"})
    sets = stage03.extract_splits(pd.DataFrame(rows), pretrained.load(tmp_path / "models" / "ws"), ["eval"],
                                   tmp_path / "emb", batch_size=4, device="cpu")
    saved = embeddings.load_embeddings(tmp_path / "emb" / "eval.npz", model_id=meta["model_id"], dim=16)
    assert np.array_equal(saved.embeddings, sets["eval"].embeddings) and len(saved.utt_ids) == 4


def test_an_empty_split_to_embed_is_named(tmp_path):
    """Nothing trained, no train split (prepare_data.n_train_speakers: 0): listing it anyway says what to change."""
    import pandas as pd

    from nessa_lib.stages.extract_embeddings import extract_splits

    df = pd.DataFrame({"utt_id": ["a"], "speaker_id": ["s"], "path": [str(tmp_path / "a.wav")], "duration_s": [1.0],
                       "split": ["align"]})
    with pytest.raises(ValueError, match=r"split 'train' of the manifest has no utterances; remove it from "
                                         r"extract_embeddings\.splits"):
        extract_splits(df, object(), ["train"], tmp_path, device="cpu")


def test_pretrained_sources_are_not_exportable(tmp_path, offline):
    folder = speechbrain_standin(tmp_path, "xvector", 16)
    pretrained.describe({"pretrained": "speechbrain", "source": str(folder), "objective": "softmax"}, tmp_path / "d")
    with pytest.raises(zoo.NotExportableError, match="already in that format"):
        zoo.export_onnx(tmp_path / "d", tmp_path / "x.onnx")


# ---------------------------------------------------------------------------------------------- the preset


def test_preset_is_the_canonical_pair_on_vox1_o(tmp_path):
    from nessa_lib.pipeline.presets import apply_preset

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(PRESET, tmp_path / "p.yaml")
    p = params.load_params(apply_preset("p.yaml", root=tmp_path), root=tmp_path)
    enc = p["train_encoder"]["encoders"]
    assert enc == {"xvector": {"pretrained": "speechbrain", "source": "speechbrain/spkrec-xvect-voxceleb",
                               "objective": "softmax"},
                   "ecapa": {"pretrained": "speechbrain", "source": "speechbrain/spkrec-ecapa-voxceleb",
                             "objective": "aam"}}
    ns = stage02.Params(**p["train_encoder"], seed=0)
    for name in enc:
        stage02.encoder_spec(ns, name)
    # Every model the later stages name is an entry; the evaluation is the official list's speakers.
    models = set(p["extract_embeddings"]["models"])
    assert models == set(enc)
    assert {m for pair in p["fit_aligners"]["pairs"].values() for m in pair.values()} <= models
    assert {p["evaluate"]["ab_model_a"], p["evaluate"]["ab_model_b"]} <= models
    assert p["fit_aligners"]["pairs"][p["evaluate"]["ablation_pair"]] == {"enroll_model": "xvector",
                                                                          "runtime_model": "ecapa"}
    pd_ = p["prepare_data"]
    assert pd_["source"] == "voxceleb" and Path(pd_["trial_list"]).name == "veri_test2.txt"
    assert pd_["n_train_speakers"] + pd_["n_align_speakers"] == 1211 and pd_["min_eval_speakers"] == 40
    assert p["extract_embeddings"]["train_utts_per_speaker"] > 0
    # The placeholder root fails before any work, naming the key.
    from nessa_lib.data.sources import read_source

    with pytest.raises(FileNotFoundError, match=r"prepare_data\.dataset_root /path/to/VoxCeleb1/wav does not exist"):
        read_source("voxceleb", pd_["dataset_root"], min_clip_s=0.5, progress=False)


def vox_fixture(root: Path, n_speakers: int = 16, n_eval: int = 4) -> tuple[Path, Path]:
    """A tiny VoxCeleb1 layout (id1xxxx/<video>/0000N.wav, 1.5 s sines with a per-speaker pitch) and a trial list in
    veri_test2.txt's format over its last ``n_eval`` speakers."""
    import soundfile as sf

    wav = root / "VoxCeleb1" / "wav"
    rng = np.random.default_rng(0)
    t = np.arange(24000) / 16000
    for s in range(n_speakers):
        for v in range(2):
            d = wav / f"id1{s:04d}" / f"vid{v}AbC"
            d.mkdir(parents=True)
            for u in range(3):
                f0 = 110 + 17 * s + 3 * u
                wave = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 2.5 * f0 * t)
                sf.write(d / f"{u + 1:05d}.wav", wave + 0.01 * rng.standard_normal(len(t)), 16000)
    ev = range(n_speakers - n_eval, n_speakers)
    lines = [f"1 id1{s:04d}/vid0AbC/00001.wav id1{s:04d}/vid1AbC/0000{u}.wav" for s in ev for u in (1, 2, 3)]
    lines += [f"0 id1{s:04d}/vid0AbC/00001.wav id1{o:04d}/vid1AbC/0000{u}.wav" for s in ev for o in ev if o != s
              for u in (1, 2)]
    trial_list = root / "VoxCeleb1" / "veri_test2.txt"
    trial_list.write_text("\n".join(lines) + "\n")
    return wav, trial_list


@pytest.mark.slow
def test_voxceleb1_pretrained_preset_end_to_end(tmp_path, offline, run_study):
    """The shipped preset with only fixture-specific overrides (dataset, trial list, stand-in sources, tiny sizes),
    stages 01-05 through the runner `dvc repro` uses, offline: the embedding files carry the pretrained model ids,
    the descriptors record source and fingerprint, the evaluation scores both orientations, and a changed source
    file makes stage 03 refuse."""
    import pandas as pd
    from papermill.exceptions import PapermillExecutionError

    from nessa_lib import embeddings
    from nessa_lib.pipeline.presets import apply_preset
    from nessa_lib.pipeline.run import run_stage

    wav, trial_list = vox_fixture(tmp_path)
    hub = tmp_path / "hub"
    sources = {"xvector": speechbrain_standin(hub, "xvector", 16, seed=1),
               "ecapa": speechbrain_standin(hub, "ecapa", 12, seed=2)}
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    shutil.copy(PRESET, root / "preset.yaml")
    apply_preset("preset.yaml", root=root)
    fixture = {
        "prepare_data": {"dataset_root": str(wav), "trial_list": str(trial_list), "n_train_speakers": 8,
                         "n_align_speakers": 4, "min_eval_speakers": 4, "probe_workers": 0},
        "train_encoder": {"threads": 1, "encoders": {
            "xvector": {"pretrained": "speechbrain", "source": str(sources["xvector"]), "objective": "softmax"},
            "ecapa": {"pretrained": "speechbrain", "source": str(sources["ecapa"]), "objective": "aam"}}},
        "extract_embeddings": {"train_utts_per_speaker": 2, "threads": 1, "check_utts_per_speaker": 2},
        "fit_aligners": {"methods": ["identity", "linear", "speaker-logit", "nessa-m2"], "seeds": 1, "workers": 1,
                         "threads": 1},
        "evaluate": {"ab_methods": ["nessa-m2"], "ablation_methods": ["nessa-m2"], "ablation_speakers": [6, 0],
                     "ablation_utts": [2, 0], "bootstrap_rounds": 20, "check_rounds": 20, "workers": 1,
                     "threads": 1, "asnorm": {"top_k": 5, "cohort_speakers": 0}},  # a fit pool of 12 voices
    }
    (root / "fixture.yaml").write_text(yaml.safe_dump(fixture))
    apply_preset("fixture.yaml", root=root)
    p = params.load_params(root=root)
    assert p["fit_aligners"]["pairs"] == yaml.safe_load(PRESET.read_text())["fit_aligners"]["pairs"]

    run_study(root, p)

    df = pd.read_csv(root / "data/prepare_data/manifest.csv")
    assert df.groupby("split")["speaker_id"].nunique().to_dict() == {"train": 8, "align": 4, "eval": 4}
    for name, source in sources.items():
        meta = json.loads((root / "models/train_encoder" / name / "encoder.json").read_text())
        assert meta["source"] == str(source) and meta["model_id"] == zoo.from_speechbrain(source).model_id
        assert meta["model_id"].startswith("speechbrain@")
        assert all(len(f["sha256"]) == 64 for f in meta["files"].values())
        for split in ("train", "align", "eval"):
            emb = embeddings.load_embeddings(root / "data/extract_embeddings" / name / f"{split}.npz",
                                             model_id=meta["model_id"])
            assert emb.dim == meta["emb_dim"]
        # 2 utterances of each of the 8 "train" speakers: extra alignment pairs, nothing trained on them
        assert len(embeddings.load_embeddings(root / "data/extract_embeddings" / name / "train.npz").utt_ids) == 16
    metrics = json.loads((root / "reports/train_encoder/ecapa/metrics.json").read_text())
    assert metrics == {"train_time_s": 0.0, "emb_dim": 12.0}
    rep = root / "reports/evaluate"
    main = pd.read_csv(rep / "main_table.csv")
    assert set(main["pair"]) == {"xvector-ecapa", "ecapa-xvector"} and main["eer"].between(0, 1).all()
    assert (rep / "metrics.json").is_file() and (rep / "ab_case_study.csv").is_file()
    assert (rep / "plots" / "det_xvector-ecapa.csv").is_file()  # the plot dvc.yaml declares

    with open(sources["ecapa"] / "embedding_model.ckpt", "ab") as f:  # the folder changes after stage 02
        f.write(b"\0")
    with pytest.raises(PapermillExecutionError) as err:
        run_stage("extract_embeddings", "ecapa", root=root, progress=False)
    assert err.value.ename == "SourceChangedError"
    assert str(sources["ecapa"]) in err.value.evalue and "re-run stage 02" in err.value.evalue
