"""benchmarks/check_report.py (`make check-report`) on a toy report in a real headless Chromium: a good report
passes, and a deliberately broken copy fails, naming each problem. Skipped where Chromium is not installed (CI);
the checks that need no browser (no Chromium, no report) always run."""

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from nessa_lib.pipeline import report

matplotlib.use("Agg")

_spec = importlib.util.spec_from_file_location(
    "check_report", Path(__file__).resolve().parents[1] / "benchmarks" / "check_report.py")
check_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_report)

try:
    check_report.find_browser()
    HAVE_CHROMIUM = True
except check_report.Missing:
    HAVE_CHROMIUM = False
needs_chromium = pytest.mark.skipif(not HAVE_CHROMIUM, reason="no Chromium (apt-get install chromium)")


def _toy_project(root: Path, write_tables) -> Path:
    """A project with every table and one figure of stage 05, its executed page, committed; its report built."""
    import matplotlib.pyplot as plt

    ev = root / "reports/evaluate"
    (ev / "figures").mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages:\n  evaluate: {cmd: 'true'}\n")
    (root / "params.yaml").write_text("base: {seed: 0}\n")
    write_tables(ev, "frr_at_far0.01")
    pd.DataFrame({"method": ["nessa-m2"], "sample": ["as recorded"], "eer": [0.093], "eer_xx": [0.084],
                  "eer_yy": [0.042], "agreement_median": [0.797], "flagged": [True], "problems": ["control"]}).to_csv(
        ev / "deployment_check.csv", index=False)
    plt.imsave(ev / "figures/det_x-y.png", np.linspace(0, 1, 64 * 48).reshape(48, 64))
    (ev / "05_evaluate.ipynb").write_text(json.dumps({"metadata": {"papermill": {"duration": 90.0}}}))
    (ev / "05_evaluate.html").write_text("<!doctype html><html><body><h1>05 · Evaluate</h1><p>done</p></body></html>")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "dvc.yaml", "params.yaml"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "toy"], cwd=root, check=True)
    report.build_report(root)
    return root


def test_no_chromium_is_named(tmp_path, monkeypatch, capsys, toy_evaluate_tables):
    _toy_project(tmp_path, toy_evaluate_tables)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert check_report.main(["--root", str(tmp_path)]) == 2
    assert "no Chromium found" in capsys.readouterr().err


def test_no_report_is_named(tmp_path, capsys):
    assert check_report.main(["--root", str(tmp_path)]) == 2
    assert "reports/index.html is missing" in capsys.readouterr().err


@needs_chromium
def test_a_good_report_passes_and_is_screenshot(tmp_path, capsys, toy_evaluate_tables):
    root = _toy_project(tmp_path, toy_evaluate_tables)
    shot = tmp_path / "shot.png"
    rc = check_report.main(["--root", str(root), "--screenshot", str(shot)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "1 main tables, 2 verdicts" in out and "05_evaluate.html" in out
    from PIL import Image

    with Image.open(shot) as image:
        assert image.width == check_report.WIDTH and image.height > 600


@needs_chromium
def test_a_broken_report_fails_naming_each_problem(tmp_path, capsys, toy_evaluate_tables):
    root = _toy_project(tmp_path, toy_evaluate_tables)
    index = root / "reports/index.html"
    page = index.read_text()
    broken = (page.replace('src="evaluate/figures/det_x-y.png"', 'src="evaluate/figures/nowhere.png"')
              .replace("<td>7.3 [6.7, 8.2]</td>", "<td>0.0733</td>", 1)
              .replace("<h2>Stages</h2>", '<table><tr><td style="white-space:nowrap">' + "wide " * 400
                       + '</td></tr></table><div class="scroll"><table><tr><td>' + "wider " * 300
                       + '</td></tr></table></div><script src="https://cdn.example.org/x.js"></script>'
                       '<script>console.error("boom")</script><h2>Stages</h2>'))
    assert broken.count("nowhere.png") == 1 and "0.0733" in broken
    index.write_text(broken)
    shutil.rmtree(root / "reports/evaluate/figures")  # ... and the figure itself is gone
    rc = check_report.main(["--root", str(root), "--index-only"])
    out = capsys.readouterr().out
    assert rc == 1
    for problem in ("console errors", "boom", "requests outside file://", "cdn.example.org",
                    "wider than a 1280-px window", 'div.scroll "wider wider', "scrolls sideways",
                    "'EER %' not in percent with one decimal",
                    "EER shown '0.0733'", "image 'evaluate/figures/nowhere.png' did not load",
                    "link 'evaluate/figures/nowhere.png' does not resolve to a file",
                    "1 images shown for 0 figures"):
        assert problem in out, problem
