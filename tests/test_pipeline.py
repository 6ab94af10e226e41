"""The pipeline's contract (dvc.yaml <-> params.yaml <-> notebook parameters) and smoke runs of its stages."""

import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def notebook_parameters(path):
    """Names declared in the cell tagged ``parameters`` (``name: type = value  # help``)."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    names = re.findall(r"^(\w+)\s*:\s*\w+\s*=", cells[0].source, flags=re.M)
    assert len(names) == len(cells[0].source.strip().splitlines()), (
        f"{path.name}: every line of the parameters cell must be a typed, commented scalar"
    )
    # papermill's parameter inspection gives up on a line with a second "=" (even inside the comment) and then
    # warns "Passed unknown parameter" on every run.
    from papermill.translators import PythonTranslator

    inspected = [p.name for p in PythonTranslator.inspect(cells[0])]
    assert inspected == names, f"{path.name}: papermill cannot parse {sorted(set(names) - set(inspected))}"
    return names


def stage_of(path):
    return path.stem.split("_", 1)[1]


def stage_cmd(stage):
    """The command of a plain stage or of a ``foreach`` stage's ``do`` block."""
    spec = DVC["stages"][stage]
    return spec["cmd"] if "cmd" in spec else spec["do"]["cmd"], spec.get("do", spec)


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_stage_contract(nb_path):
    stage = stage_of(nb_path)
    assert stage in DVC["stages"], f"{nb_path.name} has no stage {stage!r} in dvc.yaml"
    assert stage in PARAMS, f"params.yaml has no section {stage!r}"
    cmd, body = stage_cmd(stage)
    assert f"papermill notebooks/{nb_path.name} " in cmd
    passed = set(re.findall(r"-p (\w+) ", cmd)) | set(re.findall(r'-y "\{(\w+):', cmd))
    declared = set(notebook_parameters(nb_path))
    assert passed <= declared, f"dvc.yaml passes parameters the notebook does not declare: {passed - declared}"
    foreach = DVC["stages"][stage].get("foreach")
    for key, value in PARAMS[stage].items():
        if foreach == f"${{{stage}.{key}}}":
            # A foreach stage: every field of every item must reach the notebook, or DVC would not
            # re-run the stage when it changes (foreach items are tracked through the command).
            items = value.values() if isinstance(value, dict) else [v for v in value if isinstance(v, dict)]
            for item in items:
                for field in item:
                    assert f"${{item.{field}}}" in cmd, f"{stage}: item field {field!r} is not passed to the notebook"
        else:
            assert f"${{{stage}.{key}}}" in cmd, f"params.yaml {stage}.{key} is not passed to the notebook by dvc.yaml"
    assert "${base.seed}" in cmd
    deps = body["deps"]
    assert f"notebooks/{nb_path.name}" in deps
    imported = set(re.findall(r"\b(?:from nessa_lib import|import nessa_lib\.)([\w, ]+)", nb_source(nb_path)))
    imported |= set(re.findall(r"\bfrom nessa_lib\.(\w+) import", nb_source(nb_path)))
    modules = {m.strip() for group in imported for m in group.split(",")}
    for m in modules:
        assert f"nessa_lib/{m}.py" in deps, f"{nb_path.name} imports nessa_lib.{m} but dvc.yaml does not list it"


def nb_source(path):
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_stripped_and_define_nothing(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{nb_path.name}: commit notebooks stripped"
            assert not re.search(r"^\s*(def|class) ", cell.source, flags=re.M), (
                f"{nb_path.name}: move function/class definitions into nessa_lib"
            )


def test_dvc_config_is_quiet():
    cfg = (ROOT / ".dvc" / "config").read_text()
    assert "analytics = false" in cfg and "check_update = false" in cfg


@pytest.mark.slow
def test_prepare_data_smoke(tmp_path):
    """Run stage 01 on a tiny synthetic corpus (SpeechBrain recipe-test style): outputs exist and are consistent."""
    import papermill as pm

    from nessa_lib import manifest

    params = dict(n_speakers=24, utts_per_speaker=5, n_train_speakers=8, n_align_speakers=6, n_eval_speakers=8,
                  min_eval_speakers=5, k_enroll=2, n_nontarget_per_profile=10, min_dur_s=1.5, max_dur_s=2.5,
                  baseline_resemblyzer=False, out_dir=str(tmp_path / "data"), report_dir=str(tmp_path / "reports"))
    pm.execute_notebook(str(ROOT / "notebooks/01_prepare_data.ipynb"), str(tmp_path / "01.ipynb"),
                        parameters=params, cwd=str(ROOT / "notebooks"), progress_bar=False)
    df = manifest.read_manifest(tmp_path / "data" / "manifest.csv", check_files=True)
    assert len(df) == 24 * 5
    assert df.groupby("speaker_id")["split"].nunique().max() == 1  # speaker-disjoint
    assert df.groupby("split")["speaker_id"].nunique().to_dict() == {"train": 8, "align": 6, "eval": 8, "": 2}
    enroll = manifest.read_enrollment(tmp_path / "data" / "enroll.txt", manifest=df)
    trials = manifest.read_trials(tmp_path / "data" / "trials.txt", manifest=df, enrollment=enroll)
    assert set(enroll.utt_id).isdisjoint(trials.test_utt_id)
    assert (trials.label == 1).sum() == 8 * (5 - 2)
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert 0.0 <= metrics["baseline_mfcc_eer"] <= 1.0
    assert metrics["n_speakers_eval"] == 8.0
    assert (tmp_path / "reports" / "figures" / "spectrograms.png").stat().st_size > 1000


@pytest.mark.slow
def test_prepare_data_smoke_voxceleb_layout(tmp_path):
    """Stage 01 pointed at a dataset laid out like VoxCeleb1, with an official-format trial list used as given."""
    import numpy as np
    import papermill as pm
    import soundfile as sf

    from nessa_lib import manifest

    root = tmp_path / "vox1" / "wav"
    rng = np.random.default_rng(0)
    for s in range(10):
        for v in range(2):
            d = root / f"id1{s:04d}" / f"vid{v}XyZ"
            d.mkdir(parents=True)
            for u in range(2):
                # Each speaker gets its own pitch so the MFCC baseline has something to find.
                t = np.arange(16000) / 16000
                wave = 0.3 * np.sin(2 * np.pi * (120 + 25 * s) * t) + 0.01 * rng.standard_normal(16000)
                sf.write(d / f"{u + 1:05d}.wav", wave, 16000)
    (root / "id10000" / "vid0XyZ" / "00003.wav").write_bytes(b"corrupt")  # must be skipped and reported
    lines = [f"1 id1{s:04d}/vid0XyZ/00001.wav id1{s:04d}/vid1XyZ/00002.wav" for s in range(6, 10)]
    lines += [f"0 id1{s:04d}/vid0XyZ/00001.wav id1{(s + 1) % 4 + 6:04d}/vid1XyZ/00001.wav" for s in range(6, 10)]
    trial_list = tmp_path / "veri_test2.txt"
    trial_list.write_text("\n".join(lines) + "\n")
    params = dict(source="voxceleb", dataset_root=str(root), trial_list=str(trial_list), n_train_speakers=4,
                  n_align_speakers=2, min_eval_speakers=4, baseline_resemblyzer=False,
                  out_dir=str(tmp_path / "data"), report_dir=str(tmp_path / "reports"))
    pm.execute_notebook(str(ROOT / "notebooks/01_prepare_data.ipynb"), str(tmp_path / "01.ipynb"),
                        parameters=params, cwd=str(ROOT / "notebooks"), progress_bar=False)
    df = manifest.read_manifest(tmp_path / "data" / "manifest.csv")
    assert df.groupby("split")["speaker_id"].nunique().to_dict() == {"train": 4, "align": 2, "eval": 4}
    trials = manifest.read_trials(tmp_path / "data" / "trials.txt", manifest=df)
    assert trials.values.tolist() == [[int(a), b, c] for a, b, c in (ln.split() for ln in lines)]
    skipped = (tmp_path / "data" / "skipped.csv").read_text()
    assert "00003.wav" in skipped
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert metrics["n_skipped"] == 1.0 and metrics["n_trials"] == 8.0


@pytest.mark.slow
def test_whole_pipeline_smoke(tmp_path):
    """Stages 01 -> 05 on a tiny corpus with tiny encoders (the `smoke` settings): every output the next stage
    reads is produced, and the evaluation report has a row for every pair and method."""
    import pandas as pd
    import papermill as pm

    def run(nb, **params):
        pm.execute_notebook(str(ROOT / "notebooks" / nb), str(tmp_path / nb), parameters=params,
                            cwd=str(ROOT / "notebooks"), progress_bar=False)

    data, models, emb, rep = tmp_path / "data", tmp_path / "models", tmp_path / "emb", tmp_path / "reports"
    run("01_prepare_data.ipynb", n_speakers=36, utts_per_speaker=6, n_train_speakers=16, n_align_speakers=10,
        n_eval_speakers=10, min_eval_speakers=5, k_enroll=2, n_nontarget_per_profile=20, min_dur_s=1.5,
        max_dur_s=2.5, baseline_resemblyzer=False, out_dir=str(data), report_dir=str(rep / "prep"))
    tiny = dict(emb_dim=16, channels=16, epochs=1, crop_s=1.0, batch_size=16, threads=1,
                manifest=str(data / "manifest.csv"))
    for name, arch, objective in [("xv", "xvector", "softmax"), ("ec", "ecapa", "aam"),
                                  ("rz", "resemblyzer", "pretrained-ge2e")]:
        run("02_train_encoder.ipynb", name=name, architecture=arch, objective=objective,
            out_dir=str(models / name), report_dir=str(rep / "train" / name), **tiny)
        run("03_extract_embeddings.ipynb", name=name, model_dir=str(models / name), data_dir=str(data),
            out_dir=str(emb / name), report_dir=str(rep / "extract" / name), threads=1)
    fast = "identity,linear,speaker-logit,nessa-m1,nessa-m2"
    for pair, x, y in [("xv-ec", "xv", "ec"), ("rz-ec", "rz", "ec")]:
        run("04_fit_aligners.ipynb", pair=pair, enroll_model=x, runtime_model=y, methods=fast, threads=1,
            embeddings_dir=str(emb), out_dir=str(tmp_path / "aligners" / pair), report_dir=str(rep / "fit" / pair))
    run("05_evaluate.ipynb", ab_model_a="xv", ab_model_b="ec", ablation_pair="xv-ec", ablation_speakers="4,0",
        ablation_utts="2,0", threads=1, data_dir=str(data), embeddings_dir=str(emb), encoders_dir=str(models),
        aligners_dir=str(tmp_path / "aligners"), report_dir=str(rep / "eval"))

    main = pd.read_csv(rep / "eval" / "main_table.csv")
    assert set(main["pair"]) == {"xv-ec", "rz-ec"}
    systems = {"symmetric X/X", "symmetric Y/Y", "linear", "speaker-logit", "nessa-m1", "nessa-m2"}
    assert set(main.loc[main.pair == "xv-ec", "system"]) == systems | {"identity"}  # both 16-d
    assert set(main.loc[main.pair == "rz-ec", "system"]) == systems  # 256-d vs 16-d: identity is skipped
    assert main["eer"].between(0, 1).all()
    findings = pd.read_csv(rep / "eval" / "findings.csv")
    assert {"claim", "holds"} <= set(findings.columns) and len(findings) > 0
    metrics = json.loads((rep / "eval" / "metrics.json").read_text())
    assert all(0 <= v <= 1 for k, v in metrics.items() if k.endswith(":eer"))
    assert (rep / "eval" / "figures" / "det_xv-ec.png").is_file()
    # The aligners were fitted on the training speakers' utterances plus the alignment split (16 + 10 voices):
    # speaker-logit's reference set is exactly those speakers.
    from nessa_lib import align

    assert (emb / "xv" / "train.npz").is_file()
    assert align.load(tmp_path / "aligners" / "xv-ec" / "speaker-logit.safetensors").shared_dim == 16 + 10

    # nbval regression check of the executed evaluation notebook: re-running it must reproduce the marked
    # key-number cell exactly (same seed, same inputs -> same metrics).
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                          "--rootdir", str(tmp_path), str(tmp_path / "05_evaluate.ipynb")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:]
    assert " passed" in res.stdout
