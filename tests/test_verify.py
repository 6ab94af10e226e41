"""``python -m nessa_lib.pipeline.verify``: a run against the published one (issue 20, part 2).

Each test builds a small git repository holding the study's own published stage-05 tables (the committed
``reports/evaluate/*.csv``), commits them as "published", and puts a "fresh run" in the workspace; then it runs
the CLI as ``make verify`` does (without the nbval step, which needs the whole study's data).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nessa_lib.pipeline import verify

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / verify.REPORTS
FIGURE = "main_table: xvector-ecapa / nessa-m3 / eer"

pytestmark = pytest.mark.skipif(not (PUBLISHED / "main_table.csv").is_file(),
                                reason="the published stage-05 tables are not in this checkout")


def _git(root, *args):
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=root, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A repository whose HEAD holds the published tables and whose workspace holds the same run."""
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    shutil.copytree(PUBLISHED, tmp_path / verify.REPORTS, ignore=lambda d, names: [
        n for n in names if not n.endswith(".csv")])
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "published")
    return tmp_path


def _verify(root, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nessa_lib.pipeline.verify", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def _edit(path, fn):
    t = pd.read_csv(path)
    new = fn(t)  # an edit in place returns None; one that makes a new frame returns it
    (t if new is None else new).to_csv(path, index=False)


def _shift_m3_eer(by):
    """An edit of the main table: xvector -> ecapa M3's EER moved by ``by``."""
    def edit(t):
        t.loc[(t["pair"] == "xvector-ecapa") & (t["system"] == "nessa-m3"), "eer"] += by
    return edit


def _publish_edit(root, table, fn):
    """Commit an edited published table, then put the original back in the workspace (the "fresh run")."""
    path = root / verify.REPORTS / f"{table}.csv"
    original = path.read_bytes()
    _edit(path, fn)
    _git(root, "commit", "-qam", "published, edited")
    path.write_bytes(original)


def test_the_same_run_passes(repo):
    res = _verify(repo)
    assert res.returncode == 0, res.stderr
    assert "checks pass" in res.stdout and FIGURE in res.stdout


def test_a_wrong_published_figure_fails_naming_it(repo):
    """The provoked failure: one published EER moved by 3 points, far outside its interval (about +-1 point)."""
    _publish_edit(repo, "main_table", _shift_m3_eer(0.03))
    res = _verify(repo)
    assert res.returncode == 1
    assert FIGURE in res.stderr
    failing = [line for line in res.stdout.splitlines() if "FAIL" in line]
    assert len(failing) == 1 and failing[0].startswith(FIGURE)


def test_a_small_difference_inside_the_interval_passes(repo):
    t = pd.read_csv(repo / verify.REPORTS / "main_table.csv").set_index(["pair", "system"])
    half = (t.loc[("xvector-ecapa", "nessa-m3"), "eer_hi"] - t.loc[("xvector-ecapa", "nessa-m3"), "eer_lo"]) / 2
    _publish_edit(repo, "main_table", _shift_m3_eer(0.5 * half))
    assert _verify(repo).returncode == 0


def test_a_changed_verdict_fails_unless_encoder_training_changes_it(repo):
    findings = pd.read_csv(PUBLISHED / "findings.csv")
    i = int((findings["verdict"] == "holds").idxmax())
    key = verify.verdicts(findings).index[i]

    def edit(t):
        t.loc[i, "verdict"] = "inconclusive"
    _publish_edit(repo, "findings", edit)
    res = _verify(repo)
    assert res.returncode == 1 and f"verdict: {key}" in res.stderr

    # An encoder-seed run in which this verdict differs from the published one: now it may change.
    seeds = repo / verify.ENCODER_SEEDS_DIR / "plus10"
    seeds.mkdir(parents=True)
    for name in ("main_table", "findings"):
        shutil.copy(PUBLISHED / f"{name}.csv", seeds)
    res = _verify(repo)
    assert res.returncode == 0, res.stdout[-2000:]
    assert "changes with encoder training" in res.stdout


def test_a_figure_missing_from_your_run_fails(repo):
    _edit(repo / verify.REPORTS / "ablation.csv", lambda t: t.drop(index=t.index[-1]))
    res = _verify(repo)
    assert res.returncode == 1 and "missing from your run" in res.stdout


def test_no_published_run_is_a_clear_error(repo):
    res = _verify(repo, "--published", "HEAD~5")
    assert res.returncode == 2 and "the published run" in res.stderr


def test_encoder_spread_widens_the_tolerance():
    """A figure whose published interval is narrow still passes when encoder training moves it that much."""
    table = lambda e, lo, hi: {"main_table": pd.DataFrame(  # noqa: E731
        {"pair": ["p"], "system": ["s"], "eer": [e], "eer_lo": [lo], "eer_hi": [hi]})}
    runs = [table(0.10, 0.099, 0.101), table(0.12, 0.119, 0.121), table(0.11, 0.109, 0.111)]
    spread = verify.encoder_spread(runs)
    alone = verify.compare(runs[0], runs[1])
    widened = verify.compare(runs[0], runs[1], spread)
    assert not alone["ok"].iloc[0] and alone["basis"].iloc[0] == "published 95 % interval"
    assert widened["ok"].iloc[0] and widened["basis"].iloc[0] == "encoder-training spread"


def test_asnorm_and_chain_tables_are_compared():
    """AS-norm on/off and the chain of upgrades are headline figures too: a moved chain EER is caught."""
    from nessa_lib.pipeline.verify import figures

    chain = pd.DataFrame({"system": ["M2 each upgrade"], "leg": ["v1 -> v3"], "eer": [0.05], "eer_lo": [0.04],
                          "eer_hi": [0.06]})
    asn = pd.DataFrame({"pair": ["x-y"], "system": ["X/X"], "asnorm": ["on"], "eer": [0.1], "eer_lo": [0.09],
                        "eer_hi": [0.11]})
    f = figures({"chain": chain, "asnorm": asn}).set_index("figure")
    assert f.loc["chain: M2 each upgrade / v1 -> v3 / eer", "value"] == 0.05
    assert f.loc["asnorm: x-y / X/X / on / eer", "hi"] == 0.11
