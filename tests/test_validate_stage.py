"""Issue 24, fail fast: the `validate` stage of dvc.yaml runs before every other stage, so a plain `dvc repro`
with a mistake in params.yaml stops before DVC removes any stage's outputs."""

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
import yaml

from nessa_lib.pipeline import deps, validate

ROOT = Path(__file__).resolve().parents[1]
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_validate_stage_writes_the_stamp_prepare_data_depends_on():
    body = DVC_YAML["stages"]["validate"]
    assert body["cmd"] == f"python -m nessa_lib.pipeline.validate --stamp {validate.STAMP}"
    assert "params.yaml" in body["deps"]
    assert body["outs"] == [{validate.STAMP: {"cache": False}}]
    assert validate.STAMP in DVC_YAML["stages"]["prepare_data"]["deps"]
    assert deps.stage_deps("validate", ROOT) == [d for d in body["deps"] if d.startswith("nessa_lib/")]


def test_every_stage_is_downstream_of_validate():
    """DVC's own graph of dvc.yaml: validate is upstream of every other stage (so it runs first)."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        graph = repo.index.graph  # edges run from a stage to the stages it depends on
        by_name = {s.addressing: s for s in graph.nodes}
        upstream_of_all = by_name.pop("validate")
        assert list(graph.successors(upstream_of_all)) == []  # validate depends on no stage
        for name, stage in by_name.items():
            assert nx.has_path(graph, stage, upstream_of_all), f"{name} does not depend on validate"


def test_stamp_text_does_not_depend_on_the_parameters(tmp_path, monkeypatch):
    """A valid edit of params.yaml re-runs validate but leaves its out unchanged, so prepare_data is not re-run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    texts = []
    for seed in (0, 7):
        p["base"]["seed"] = seed
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        assert validate.main(["--stamp", validate.STAMP]) == 0
        texts.append((tmp_path / validate.STAMP).read_bytes())
    assert texts[0] == texts[1] == (ROOT / validate.STAMP).read_bytes()
    assert json.loads(texts[0]) == {"params_file": "params.yaml", "valid": True}
    p["evaluate"]["bootstrap_rounds"] = -5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    (tmp_path / validate.STAMP).unlink()
    assert validate.main(["--stamp", validate.STAMP]) == 2
    assert not (tmp_path / validate.STAMP).exists()


def _copy_project(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dst / rel)


@pytest.fixture
def project(tmp_path):
    """A copy of the repository with outputs of earlier runs in place, and a `python` on PATH that runs the
    validate module but only records (and fails) any other command, so no real stage can start."""
    root = tmp_path / "study"
    _copy_project(root)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    for rel in ("data/prepare_data/corpus/spk0001.flac", "models/fit_aligners/nessa-m2/xvector-ecapa.safetensors",
                "reports/fit_aligners/nessa-m2/metrics.json"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("an earlier run's output\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text(f'#!/bin/sh\nif [ "$1 $2" = "-m nessa_lib.pipeline.validate" ]; then exec {sys.executable} "$@"; fi\n'
                    f'echo "$*" >> {tmp_path}/ran.log\nexit 1\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {**ENV, "PATH": f"{bin_dir}{os.pathsep}{ENV['PATH']}", "PYTHONPATH": str(root)}
    return root, env


def _outputs(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for d in ("data", "models", "reports") for p in
            sorted((root / d).rglob("*")) if p.is_file() and not str(p.relative_to(root)).startswith(
                os.path.dirname(validate.STAMP))}


# --keep-going: DVC goes on with every stage that does not depend on the failed one (without the edge to
# validate, that would be all of them); a target: DVC runs the target's upstream stages only.
@pytest.mark.parametrize("targets", [[], ["--keep-going"], ["evaluate"], ["fit_aligners@nessa-m2"]],
                         ids=["all", "keep-going", "evaluate", "one-method"])
def test_dvc_repro_with_invalid_params_stops_before_any_output_is_removed(project, targets):
    root, env = project
    p = yaml.safe_load((root / "params.yaml").read_text())
    p["evaluate"]["bootstrap_rounds"] = -5  # found in the issue after every CSV of the stage had been deleted
    p["fit_aligners"]["methods"].append("nessa-m4")  # ... after the method's models had been removed
    p["fit_aligners"]["seeds"] = 2  # a change of this stage's own params: DVC would re-run (and clear) it
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    before = _outputs(root)
    assert "reports/evaluate/metrics.json" in before
    res = subprocess.run([sys.executable, "-m", "dvc", "repro", *targets], cwd=root, env=env, capture_output=True,
                         text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "evaluate.bootstrap_rounds" in out and "nessa-m4" in out, out
    assert "failed to reproduce 'validate'" in out, out
    assert not (root.parent / "ran.log").exists(), (root.parent / "ran.log").read_text()  # no stage command ran
    assert _outputs(root) == before  # nothing removed or changed


def test_a_valid_params_yaml_passes_validate_and_leaves_prepare_data_unchanged(project):
    root, env = project
    dvc = [sys.executable, "-m", "dvc"]
    res = subprocess.run([*dvc, "repro", "validate"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    status = json.loads(subprocess.run([*dvc, "status", "--json", "validate", "prepare_data"], cwd=root, env=env,
                                       capture_output=True, text=True, timeout=300, check=True).stdout)
    assert "validate" not in status
    # the stamp re-written by validate is the one prepare_data's entry of dvc.lock records
    for entry in status.get("prepare_data", []):
        assert validate.STAMP not in (entry.get("changed deps", {}) if isinstance(entry, dict) else {}), status


@pytest.mark.parametrize("drop, message", [
    (("base",), r"params.yaml: no 'base' section \(stage evaluate reads it\)"),
    (("evaluate",), r"params.yaml: no 'evaluate' section \(stage evaluate reads it\)"),
    (("base", "cpu_kernels"), r"params.yaml: base.cpu_kernels is missing"),
])
def test_the_runner_names_params_yaml_and_the_missing_key(tmp_path, monkeypatch, capsys, drop, message):
    import re

    from nessa_lib.pipeline import run

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    node = p
    for key in drop[:-1]:
        node = node[key]
    del node[drop[-1]]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    assert run.main(["evaluate", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not (tmp_path / "reports").exists()  # refused before anything was written
