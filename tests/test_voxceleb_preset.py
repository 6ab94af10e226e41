"""The VoxCeleb presets (presets/voxceleb*-train.yaml): the ResNet34 layout they need, how their one dataset_root
maps onto the splits (on tiny VoxCeleb-layout trees), and a few real optimizer steps of every VoxCeleb-size encoder
they define, exported and embedding."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from nessa_lib.encoders.brain import train_encoder
from nessa_lib.encoders.config import EncoderConfig
from nessa_lib.encoders.export import load_encoder
from nessa_lib.encoders.modules import _arch_kwargs
from nessa_lib.pipeline import params
from nessa_lib.pipeline.presets import apply_preset
from nessa_lib.stages import prepare_data
from nessa_lib.stages import train_encoder as stage02

ROOT = Path(__file__).resolve().parents[1]
VOX2 = ROOT / "presets" / "voxceleb2-train.yaml"
VOX1 = ROOT / "presets" / "voxceleb1-train.yaml"
# Embedding-network parameters of the presets' encoders at 80 mels (docs/voxceleb.md quotes them).
N_PARAMS = {"xvector": 4_410_368, "ecapa": 20_767_552, "ecapa-c512": 6_194_048, "resnet34": 7_660_704}


# ---------------------------------------------------------------------------------------------------------------
# The ResNet34 layout: two ResNet-only EncoderConfig fields, unset = the layout of before
# ---------------------------------------------------------------------------------------------------------------


def test_resnet_layout_fields_reach_the_network_and_stay_out_of_old_configs():
    r34 = EncoderConfig(architecture="resnet", channels=32, resnet_blocks=[3, 4, 6, 3], resnet_widths=[1, 2, 4, 8])
    kw = _arch_kwargs(r34)
    assert kw["channels"] == [32, 64, 128, 256] and kw["block_sizes"] == [3, 4, 6, 3]
    assert r34.to_dict()["resnet_blocks"] == [3, 4, 6, 3]
    small = EncoderConfig(architecture="resnet", channels=16)
    assert _arch_kwargs(small)["channels"] == [16, 16, 32, 64] and _arch_kwargs(small)["block_sizes"] == [2, 2, 2, 2]
    assert not {"resnet_blocks", "resnet_widths"} & set(small.to_dict())  # exports of before: same bytes
    assert EncoderConfig.from_dict(r34.to_dict()) == r34


@pytest.mark.parametrize("kwargs, message", [
    (dict(architecture="ecapa", resnet_blocks=[3, 4, 6, 3]), "resnet_blocks is a ResNet setting"),
    (dict(architecture="resnet", resnet_blocks=[3, 4, 6]), "list of 4 integers"),
    (dict(architecture="resnet", resnet_widths=[1, 2, 0, 8]), "resnet_widths must be"),
    (dict(architecture="resnet", resnet_widths=[1, 2, 4, 8.0]), "resnet_widths must be"),
])
def test_resnet_layout_fields_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EncoderConfig(**kwargs)


# ---------------------------------------------------------------------------------------------------------------
# The presets as files: they apply, agree with each other, and their names are consistent
# ---------------------------------------------------------------------------------------------------------------


def applied(tmp_path: Path, *presets: Path) -> Path:
    """params.yaml with ``presets`` applied in order, in a scratch root; returns the parameters file."""
    root = tmp_path / "proj"
    root.mkdir(exist_ok=True)
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    base = "params.yaml"
    for i, preset in enumerate(presets):
        shutil.copy(preset, root / f"preset{i}.yaml")
        base = apply_preset(f"preset{i}.yaml", base=base, out=f"applied{i}.yaml", root=root).name
    return root / base


def test_presets_share_encoders_and_recipe():
    one, two = (yaml.safe_load(p.read_text()) for p in (VOX1, VOX2))
    for section in ("train_encoder", "extract_embeddings", "fit_aligners"):
        assert one[section] == two[section], section


@pytest.mark.parametrize("preset", [VOX1, VOX2], ids=lambda p: p.name)
def test_preset_names_are_consistent_and_every_dev_speaker_is_used(tmp_path, preset):
    file = applied(tmp_path, preset)
    p = params.load_params(file)
    encoders = p["train_encoder"]["encoders"]
    assert p["extract_embeddings"]["models"] == list(encoders)
    assert all("pretrained" not in e for e in encoders.values())
    pairs = p["fit_aligners"]["pairs"]
    assert {m for pair in pairs.values() for m in pair.values()} <= set(encoders)
    ev = p["evaluate"]
    assert ev["ablation_pair"] in pairs and {ev["ab_model_a"], ev["ab_model_b"]} <= set(encoders)
    assert {"enroll_model": ev["ab_model_a"], "runtime_model": ev["ab_model_b"]} in pairs.values()
    # Every dev speaker of the training corpus is in train or align (VoxCeleb2 dev 5,994; VoxCeleb1 dev 1,211).
    pd_ = p["prepare_data"]
    assert pd_["n_train_speakers"] + pd_["n_align_speakers"] == (5994 if preset == VOX2 else 1211)
    assert pd_["source"] == "voxceleb" and pd_["trial_list"].endswith("veri_test2.txt")
    assert 0 < p["extract_embeddings"]["train_utts_per_speaker"] <= 20
    section = stage02.load(file)
    for name in encoders:
        cfg = EncoderConfig.from_dict(stage02.encoder_spec(section, name))
        assert cfg.n_mels == 80 and 2.0 <= cfg.crop_s <= 3.0


# ---------------------------------------------------------------------------------------------------------------
# The one dataset_root: tiny VoxCeleb2 dev / VoxCeleb1 dev / VoxCeleb1 test trees linked into one folder
# ---------------------------------------------------------------------------------------------------------------

VOX2_DEV = [f"id{n:05d}" for n in (12, 15, 19, 20, 23, 27, 31, 40)]   # VoxCeleb2 ids: id00012-id09272
VOX1_DEV = [f"id{n:05d}" for n in (10001, 10002, 10003, 10004)]       # VoxCeleb1 dev ids
VOX1_TEST = [f"id{n:05d}" for n in (10270, 10271, 10272, 10273)]      # the Vox1-O speakers are id10270-id10309


def _write_speakers(tree: Path, speakers, *, utts: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(40000) / 16000  # 2.5 s
    for k, spk in enumerate(speakers):
        for v in range(2):
            d = tree / spk / f"vid{v}AbC"
            d.mkdir(parents=True)
            for u in range(utts):
                f0 = 100 + 13 * k + 170 * (seed % 3)
                wave = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(t.size)
                sf.write(d / f"{u + 1:05d}.wav", wave.astype(np.float32), 16000)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("vox")
    out = {"vox2_dev": base / "vox2" / "dev" / "aac", "vox1_dev": base / "vox1" / "dev" / "wav",
           "vox1_test": base / "vox1" / "test" / "wav"}
    _write_speakers(out["vox2_dev"], VOX2_DEV, utts=3, seed=0)
    _write_speakers(out["vox1_dev"], VOX1_DEV, utts=2, seed=1)
    _write_speakers(out["vox1_test"], VOX1_TEST, utts=2, seed=2)
    return out


def linked_root(dst: Path, *trees: Path) -> Path:
    """One dataset_root of symlinked speaker folders, as the presets' headers say to build it."""
    dst.mkdir(parents=True)
    for tree in trees:
        for spk in sorted(tree.iterdir()):
            (dst / spk.name).symlink_to(spk, target_is_directory=True)
    return dst


def trial_list(path: Path, speakers) -> Path:
    """An official-format list over ``speakers`` (one target and one non-target trial each)."""
    lines = []
    for i, s in enumerate(speakers):
        other = speakers[(i + 1) % len(speakers)]
        lines += [f"1 {s}/vid0AbC/00001.wav {s}/vid1AbC/00002.wav", f"0 {s}/vid0AbC/00001.wav {other}/vid1AbC/00001.wav"]
    path.write_text("\n".join(lines) + "\n")
    return path


def prepared(tmp_path: Path, preset: Path, root: Path, trials: Path, n_train: int, n_align: int):
    """Stage 01's corpus, splits and lists with ``preset`` applied, pointed at the fixture (scaled counts)."""
    (tmp_path / "fixture.yaml").write_text(yaml.safe_dump({"prepare_data": {
        "dataset_root": str(root), "trial_list": str(trials), "n_train_speakers": n_train,
        "n_align_speakers": n_align, "min_eval_speakers": 4, "probe_workers": 0}}))
    file = applied(tmp_path, preset, tmp_path / "fixture.yaml")
    p = prepare_data.load(file)
    assert p.source == "voxceleb"
    corpus, skipped = prepare_data.build_corpus(
        tmp_path / "corpus", source=p.source, dataset_root=p.dataset_root, seed=p.seed, n_speakers=p.n_speakers,
        utts_per_speaker=p.utts_per_speaker, workers=p.workers, condition=p.condition,
        enroll_condition=p.enroll_condition, k_enroll=p.k_enroll, min_dur_s=p.min_dur_s, max_dur_s=p.max_dur_s,
        min_clip_s=p.min_clip_s, probe_workers=p.probe_workers, progress=False)
    assert skipped == []
    df, enroll, trials_df = prepare_data.splits_and_lists(
        corpus, rng=np.random.default_rng(p.seed), trial_list=p.trial_list, n_train=p.n_train_speakers,
        n_align=p.n_align_speakers, n_eval=p.n_eval_speakers, min_eval_speakers=p.min_eval_speakers,
        k_enroll=p.k_enroll, n_nontarget_per_profile=p.n_nontarget_per_profile)
    return file, df, trials_df


def speakers_of(df, *splits) -> set:
    return set(df.loc[df.split.isin(splits), "speaker_id"])


@pytest.mark.parametrize("case", ["vox2-train/O", "vox2-train/E", "vox1-train/O"])
def test_one_dataset_root_maps_onto_the_claimed_splits(tmp_path, trees, case):
    """The list's speakers are the evaluation split, the training corpus's speakers train + align, no overlap."""
    train_trees, eval_speakers = {
        "vox2-train/O": ([trees["vox2_dev"]], VOX1_TEST),
        "vox2-train/E": ([trees["vox2_dev"], trees["vox1_dev"]], VOX1_DEV + VOX1_TEST),
        "vox1-train/O": ([trees["vox1_dev"]], VOX1_TEST),
    }[case]
    preset = VOX2 if case.startswith("vox2") else VOX1
    train_speakers = sorted(s.name for t in train_trees for s in t.iterdir() if s.name not in eval_speakers)
    root = linked_root(tmp_path / "wav", *train_trees, trees["vox1_test"])
    lst = trial_list(tmp_path / "list.txt", eval_speakers)
    _, df, trials = prepared(tmp_path, preset, root, lst, n_train=len(train_speakers) - 1, n_align=1)
    assert speakers_of(df, "eval") == set(eval_speakers)
    assert speakers_of(df, "train", "align") == set(train_speakers)
    assert speakers_of(df, "train").isdisjoint(speakers_of(df, "eval", "align"))
    assert (df.split != "").all() and len(speakers_of(df, "align")) == 1
    assert len(trials) == 2 * len(eval_speakers)  # the list as given
    assert df.path.str.startswith(str(root)).all()  # read through the links, ids relative to the one root


def test_vox1_training_with_an_e_or_h_list_is_refused_by_name(tmp_path, trees):
    """E/H name the VoxCeleb1 dev speakers: over a VoxCeleb1-only root nothing is left to train on."""
    root = linked_root(tmp_path / "wav", trees["vox1_dev"], trees["vox1_test"])
    lst = trial_list(tmp_path / "list_test_all2.txt", VOX1_DEV + VOX1_TEST)
    with pytest.raises(ValueError, match=r"list_test_all2\.txt: its 8 speakers form the evaluation split.*"
                                         r"leaves 0 speaker\(s\).*VoxCeleb1-E/H"):
        prepared(tmp_path, VOX1, root, lst, n_train=3, n_align=1)


# ---------------------------------------------------------------------------------------------------------------
# Every VoxCeleb-size encoder: real width, mels and crop, two optimizer steps on the fixture, exported, embedding
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vox2_train(trees, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vox2_train")
    root = linked_root(tmp / "wav", trees["vox2_dev"], trees["vox1_test"])
    file, df, _ = prepared(tmp, VOX2, root, trial_list(tmp / "veri_test2.txt", VOX1_TEST), n_train=6, n_align=2)
    return stage02.load(file), df


@pytest.mark.slow
@pytest.mark.parametrize("name", list(N_PARAMS))
def test_every_preset_encoder_trains_a_few_steps_and_embeds(vox2_train, tmp_path, name):
    section, df = vox2_train
    assert list(section.encoders) == list(N_PARAMS)
    spec = stage02.encoder_spec(section, name)
    # The preset's architecture, width, mels, crop and objective; only the batch and the step budget are cut.
    cfg = EncoderConfig.from_dict({**spec, "batch_size": 4, "epochs": 1, "max_steps": 2})
    torch.set_num_threads(1)
    summary = train_encoder(df, tmp_path / name, cfg, progress=False, device="cpu")
    assert summary["optimizer_steps"] == 2 and summary["n_train_speakers"] == 6
    assert summary["n_params"] == N_PARAMS[name]
    assert np.isfinite(summary["final_train_loss"])
    enc = load_encoder(tmp_path / name)
    assert enc.config == cfg.to_dict()
    emb = enc.embed(0.1 * torch.randn(2, 48000), torch.tensor([1.0, 0.5]))
    assert emb.shape == (2, spec["emb_dim"]) and torch.isfinite(emb).all()


# ---------------------------------------------------------------------------------------------------------------
# The multi-GPU training command of docs/voxceleb.md: each torchrun process on its own GPU
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("local_rank, cuda, device, expected", [
    ("3", True, "auto", "cuda:3"), ("1", True, "cuda", "cuda:1"), (None, True, "auto", "auto"),
    ("2", False, "auto", "auto"), ("2", True, "cpu", "cpu"), ("2", True, "cuda:0", "cuda:0"),
])
def test_training_cli_puts_each_torchrun_process_on_its_own_gpu(monkeypatch, local_rank, cuda, device, expected):
    from nessa_lib.encoders import cli

    seen = {}
    monkeypatch.setattr(cli, "train_encoder", lambda *a, **kw: seen.update(kw) or {"model_id": "x"})
    monkeypatch.setattr(cli.torch.cuda, "is_available", lambda: cuda)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    if local_rank is not None:
        monkeypatch.setenv("LOCAL_RANK", local_rank)
    assert cli.main(["--manifest", "m.csv", "--out", "o", "--config", "xvector", "--device", device]) == 0
    assert seen["device"] == expected
