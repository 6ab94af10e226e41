"""Sharing the study's artifacts through a DVC remote (docs/sharing.md), on a toy pipeline shaped like ours: a
`train_encoder` stage per encoder writes a model folder (cached, pushed), an `evaluate` stage reads them and writes
metrics (`cache: false`, in git). One repository pushes to a local folder remote; a git clone of it pulls the
encoders only and must not train them again. Runs the venv's `dvc` executable; no network."""

import filecmp
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC_EXE = str(Path(sys.executable).parent / "dvc")
# the toy stages run `python`: this interpreter's (it has PyYAML), whatever PATH says
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
       "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

TOY_DVC_YAML = """\
stages:
  train_encoder:
    foreach: ${encoders}
    do:
      cmd: python train.py ${key} ${item}
      params:
        - base
      deps:
        - train.py
      outs:
        - models/train_encoder/${key}
  evaluate:
    cmd: python evaluate.py
    params:
      - evaluate
    deps:
      - evaluate.py
      - models/train_encoder
    metrics:
      - metrics.json:
          cache: false
"""
TOY_PARAMS = "base:\n  seed: 0\nencoders:\n  a: 3\n  b: 5\nevaluate:\n  scale: 1\n"
# each run appends to runs.log (git-ignored, outside every out), so a test sees which stages ran
TOY_TRAIN = """\
import pathlib, random, sys, yaml
name, size = sys.argv[1], int(sys.argv[2])
seed = yaml.safe_load(open("params.yaml"))["base"]["seed"]
out = pathlib.Path("models/train_encoder", name)
out.mkdir(parents=True, exist_ok=True)
(out / "encoder.bin").write_bytes(random.Random(f"{seed}-{name}").randbytes(1000 * size))
(out / "encoder.json").write_text('{"name": "%s"}' % name)
open("runs.log", "a").write(f"train_encoder@{name}\\n")
"""
TOY_EVALUATE = """\
import json, pathlib, yaml
scale = yaml.safe_load(open("params.yaml"))["evaluate"]["scale"]
sizes = {p.name: (p / "encoder.bin").stat().st_size for p in sorted(pathlib.Path("models/train_encoder").iterdir())
         if p.is_dir()}
pathlib.Path("metrics.json").write_text(json.dumps({k: v * scale for k, v in sizes.items()}))
open("runs.log", "a").write("evaluate\\n")
"""


def _run(cmd, cwd, check=True):
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV, timeout=120)
    if check:
        assert res.returncode == 0, f"{shlex.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res


def dvc(*args, cwd, check=True):
    return _run([DVC_EXE, *args], cwd, check)


def git(*args, cwd):
    return _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd)


def runs(repo: Path) -> list[str]:
    log = repo / "runs.log"
    return log.read_text().split() if log.exists() else []


def clone_with_remote(origin: Path, dst: Path, remote: Path) -> Path:
    """A git clone of ``origin`` whose default DVC remote is ``remote``, in .dvc/config.local (docs/sharing.md)."""
    git("clone", "-q", str(origin), str(dst), cwd=origin.parent)
    dvc("remote", "add", "--local", "-d", "team", str(remote), cwd=dst)
    return dst


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """The toy study run once and pushed: (the repository, its remote folder)."""
    base = tmp_path_factory.mktemp("sharing")
    origin, remote = base / "origin", base / "remote"
    origin.mkdir()
    remote.mkdir()
    git("init", "-q", cwd=origin)
    dvc("init", "-q", cwd=origin)
    dvc("config", "core.analytics", "false", cwd=origin)
    for name, text in [("dvc.yaml", TOY_DVC_YAML), ("params.yaml", TOY_PARAMS), ("train.py", TOY_TRAIN),
                       ("evaluate.py", TOY_EVALUATE), (".gitignore", "runs.log\n")]:
        (origin / name).write_text(text)
    dvc("repro", cwd=origin)
    assert runs(origin) == ["train_encoder@a", "train_encoder@b", "evaluate"]
    git("add", "-A", cwd=origin)  # the toy repository's own files: dvc.lock, metrics.json, the .gitignore files
    git("commit", "-qm", "toy study", cwd=origin)
    dvc("remote", "add", "--local", "-d", "team", str(remote), cwd=origin)
    dvc("push", cwd=origin)
    return origin, remote


def test_pulled_encoders_are_the_pushed_ones_and_are_not_trained_again(pushed, tmp_path):
    origin, remote = pushed
    assert "team" not in (origin / ".dvc" / "config").read_text()  # the remote stays private to each checkout
    clone = clone_with_remote(origin, tmp_path / "clone", remote)
    assert not (clone / "models").exists() or not any((clone / "models").rglob("*.bin"))
    # the metrics are cache: false: they came with git, not from the remote
    assert (clone / "metrics.json").read_bytes() == (origin / "metrics.json").read_bytes()

    dvc("pull", "train_encoder", cwd=clone)  # the foreach group's name: every train_encoder@NAME
    for name in ("a", "b"):
        pulled, original = clone / "models/train_encoder" / name, origin / "models/train_encoder" / name
        cmp = filecmp.dircmp(pulled, original)
        assert sorted(cmp.common_files) == ["encoder.bin", "encoder.json"] and not cmp.left_only + cmp.right_only
        for f in cmp.common_files:
            assert (pulled / f).read_bytes() == (original / f).read_bytes()

    status = json.loads(dvc("status", "--json", cwd=clone).stdout)
    assert status == {}, status  # every stage up to date: encoders pulled, metrics from git
    assert dvc("status", "-q", "--with-deps", "evaluate", cwd=clone).returncode == 0

    # a parameter of the later stage changes: only it runs, from the pulled encoders
    (clone / "params.yaml").write_text(TOY_PARAMS.replace("scale: 1", "scale: 2"))
    assert "Running stage 'train_encoder" not in dvc("repro", "--dry", cwd=clone).stdout
    out = dvc("repro", cwd=clone).stdout
    assert "Stage 'train_encoder@a' didn't change, skipping" in out
    assert runs(clone) == ["evaluate"]
    assert json.loads((clone / "metrics.json").read_text()) == {"a": 6000, "b": 10000}


def test_cache_false_outputs_are_not_pushed(pushed):
    origin, remote = pushed
    lock = yaml.safe_load((origin / "dvc.lock").read_text())
    metrics_md5 = lock["stages"]["evaluate"]["outs"][0]["md5"]
    encoder_md5 = lock["stages"]["train_encoder@a"]["outs"][0]["md5"]  # a folder: "<md5>.dir"
    in_remote = {p.parent.name + p.name for p in remote.rglob("*") if p.is_file()}
    assert encoder_md5 in in_remote
    assert metrics_md5 not in in_remote
    assert dvc("status", "-c", "-q", cwd=origin).returncode == 0  # cache and remote in sync


def test_pull_from_an_empty_remote_fails_and_names_the_outputs(pushed, tmp_path):
    origin, _ = pushed
    empty = tmp_path / "empty-remote"
    empty.mkdir()
    clone = clone_with_remote(origin, tmp_path / "clone", empty)
    res = dvc("pull", "train_encoder", cwd=clone, check=False)
    assert res.returncode != 0
    message = res.stdout + res.stderr
    assert "models/train_encoder/a" in message and "models/train_encoder/b" in message, message
    # nothing pulled, so the stage is not up to date
    assert dvc("status", "-q", "train_encoder", cwd=clone, check=False).returncode == 1


# --------------------------------------------------------------------------------------------
# docs/sharing.md and the Makefile name only stages and outputs that dvc.yaml has
# --------------------------------------------------------------------------------------------

_TAKES_VALUE = {"-r", "--remote", "-j", "--jobs"}


def _dvc_targets(text: str) -> list[str]:
    """The targets of every `dvc pull|fetch|checkout|status|repro ...` command in ``text``: ``.venv/bin/dvc``,
    ``$(BIN)/dvc`` or a backquoted ``dvc`` (not prose that mentions dvc)."""
    targets = []
    text = re.sub(r"\\\n\s*", " ", text)  # shell line continuations
    for m in re.finditer(r"(?<=[/`])dvc (?:pull|fetch|checkout|status|repro)\b([^`\n#;|&),]*)", text):
        words = shlex.split(m.group(1))
        skip = False
        for w in words:
            if skip:
                skip = False
            elif w in _TAKES_VALUE:
                skip = True
            elif not w.startswith("-") and not w.startswith("$") and w not in {"...", "…"}:
                targets.append(w)
    return targets


def test_docs_and_makefile_pull_what_dvc_yaml_has():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    literal_outs = set()
    for stage in stages.values():
        body = stage.get("do", stage)
        for key in ("outs", "metrics"):
            for out in body.get(key, []):
                path = out if isinstance(out, str) else next(iter(out))
                if "${" not in path:
                    literal_outs.add(path)
    targets = _dvc_targets((ROOT / "docs" / "sharing.md").read_text()) + _dvc_targets((ROOT / "Makefile").read_text())
    assert {"extract_embeddings", "fit_aligners"} <= set(targets)
    for t in targets:
        ok = (t.split("@")[0] in stages
              or any(t == o or t.startswith(o.rstrip("/") + "/") for o in literal_outs))
        assert ok, f"docs/sharing.md or the Makefile names {t!r}, which is neither a stage nor an output in dvc.yaml"
