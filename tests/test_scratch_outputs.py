"""Issue 22: a notebook run outside the pipeline writes under scratch/ (git- and DVC-ignored), not into the
tracked outputs, unless asked (NESSA_WRITE_OUTPUTS=1); it still reads earlier stages' results from the tracked
folders. Run by the pipeline (NESSA_PIPELINE=1, set by the runner) it writes the tracked outputs."""

import ast
from pathlib import Path

import pytest

from nessa_lib.pipeline import layout, run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def outside_pipeline(monkeypatch):
    monkeypatch.delenv(layout.PIPELINE_ENV, raising=False)
    monkeypatch.delenv(layout.WRITE_ENV, raising=False)
    monkeypatch.setattr(layout, "_announced", set())


def test_outside_the_pipeline_writes_go_to_scratch_and_reads_do_not(outside_pipeline, tmp_path, capsys):
    assert layout.out_dir("fit_aligners", "x-y", tmp_path, write=True) == tmp_path / "scratch/models/fit_aligners/x-y"
    assert (layout.report_dir("fit_aligners", "x-y", tmp_path, write=True)
            == tmp_path / "scratch/reports/fit_aligners/x-y")
    layout.out_dir("fit_aligners", "x-y", tmp_path, write=True)  # said once per folder
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 2 and all(s.startswith("Not run by the pipeline: writing to scratch/") for s in said)
    assert "NESSA_WRITE_OUTPUTS=1" in said[0]
    # reading an earlier stage's results: the tracked folder, silently
    assert layout.out_dir("extract_embeddings", root=tmp_path) == tmp_path / "data/extract_embeddings"
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("variable", [layout.PIPELINE_ENV, layout.WRITE_ENV])
def test_the_pipeline_or_the_user_writes_the_tracked_outputs(outside_pipeline, monkeypatch, tmp_path, capsys,
                                                              variable):
    monkeypatch.setenv(variable, "1")
    assert layout.out_dir("train_encoder", "ecapa", tmp_path, write=True) == tmp_path / "models/train_encoder/ecapa"
    assert layout.report_dir("evaluate", root=tmp_path, write=True) == tmp_path / "reports/evaluate"
    assert capsys.readouterr().out == ""


def test_the_runner_marks_the_kernel_as_the_pipelines():
    assert layout.writes_outputs(run.kernel_environment({}))


def _layout_calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "layout"
                and node.func.attr in ("out_dir", "report_dir")):
            stage = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            write = any(k.arg == "write" and isinstance(k.value, ast.Constant) and k.value.value for k in node.keywords)
            yield node.lineno, stage, write


@pytest.mark.parametrize("stage", list(layout.STAGES), ids=str)
def test_notebooks_write_only_their_own_folders_and_say_so(stage):
    """Every folder a notebook asks for with write=True is its own stage's, and it writes its own folders only
    through write=True (else a run in JupyterLab would overwrite the tracked outputs)."""
    nb = ROOT / layout.stage(stage).notebook
    calls = list(_layout_calls(nb))
    assert calls, f"{nb} asks layout for no folder"
    wrong = [(line, s, w) for line, s, w in calls if w != (s == stage)]
    assert wrong == [], f"{nb}: (line, stage, write=True) of calls that read their own or write another's folder"
    assert any(w for _, _, w in calls), f"{nb} writes nothing through layout"


def test_scratch_is_ignored_by_git_and_dvc():
    for name in (".gitignore", ".dvcignore"):
        assert f"/{layout.SCRATCH}/" in (ROOT / name).read_text().splitlines(), name
