"""Stage 05's headline figures (nessa_lib.evaluation.headline) on hand-computed toy tables, and dvc.yaml's
metrics: only the headline files, the full metrics.json files as committed outs."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nessa_lib.evaluation import headline

ROOT = Path(__file__).resolve().parents[1]


def toy_main():
    rows = [  # pair, system, eer, gain_recovered = (eer_xx - eer) / (eer_xx - eer_yy)
        ("p1", "symmetric X/X", 0.10, 0.0),
        ("p1", "symmetric Y/Y", 0.04, 1.0),
        ("p1", "speaker-logit", 0.12, -1 / 3),
        ("p1", "nessa-m1", 0.08, 1 / 3),
        ("p1", "nessa-m2", 0.07, 0.5),
        ("p1", "nessa-m3", 0.06, 2 / 3),
        ("p2", "symmetric X/X", 0.05, 0.0),
        ("p2", "symmetric Y/Y", 0.15, 1.0),
        ("p2", "nessa-m1", 0.123456, 0.26544),
        ("p2", "nessa-m3", float("nan"), float("nan")),  # a missing fit: not the best
    ]
    return pd.DataFrame(rows, columns=["pair", "system", "eer", "gain_recovered"])


def toy_findings():
    return pd.DataFrame({
        "finding": ["a: best NESSA < speaker-logit"] * 2 + ["b: mapping into the better space"] * 2
                   + ["c: recovers >= 60 %"] * 2,
        "group": ["classification"] * 2 + ["both orientations"] * 2 + ["Y better than X"] * 2,
        "evidence": ["p1", "summary over 1 pair(s)", "p1", "summary over 1 pair(s)", "p2",
                     "summary over 1 pair(s)"],
        "verdict": ["holds", "holds", "does not hold", "does not hold", "inconclusive", "inconclusive"],
    })


def test_toy_headline_by_hand():
    got = headline.evaluate_headline(toy_main(), toy_findings(), ab_pair="p1")
    assert got == {
        "ab:gain_recovered": 0.6667,         # M3 on p1: (0.10 - 0.06) / (0.10 - 0.04)
        "claim_a:classification": 1,
        "claim_b:both-orientations": 0,      # does not hold
        "claim_c:y-better-than-x": 0,        # inconclusive counts as not holding
        "p1:eer_nessa": 0.06,                # min of M1 0.08, M2 0.07, M3 0.06
        "p1:eer_xx": 0.1,
        "p1:eer_yy": 0.04,
        "p2:eer_nessa": 0.1235,              # M3 is NaN, so M1, rounded to 4 decimals
        "p2:eer_xx": 0.05,
        "p2:eer_yy": 0.15,
    }
    assert list(got) == sorted(got)


def test_indexed_main_table_and_other_ab_method():
    main = toy_main().set_index(["pair", "system"])
    got = headline.evaluate_headline(main, toy_findings(), ab_pair="p1", ab_method="nessa-m2")
    assert got["ab:gain_recovered"] == 0.5
    assert "ab:gain_recovered" not in headline.evaluate_headline(main, toy_findings())


def test_no_ab_figure_without_the_ab_method_row():
    # A study without M3 (or an A/B pair that is not fitted) has no A/B figure; the rest is still there.
    got = headline.evaluate_headline(toy_main(), toy_findings(), ab_pair="p9")
    assert "ab:gain_recovered" not in got and got == headline.evaluate_headline(toy_main(), toy_findings())


def test_write_from_report_folder(tmp_path):
    toy_main().to_csv(tmp_path / "main_table.csv", index=False)
    toy_findings().to_csv(tmp_path / "findings.csv", index=False)
    path = headline.write_evaluate_headline(tmp_path, ab_pair="p1")
    assert path == tmp_path / "headline.json"
    data = json.loads(path.read_text())
    assert len(data) == 10 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in data.values())


def test_ab_pair_of_params():
    pairs = yaml.safe_load((ROOT / "params.yaml").read_text())
    ev = pairs["evaluate"]
    name = headline.ab_pair_of(pairs["fit_aligners"]["pairs"], ev["ab_model_a"], ev["ab_model_b"])
    assert name in pairs["fit_aligners"]["pairs"]
    assert headline.ab_pair_of(pairs["fit_aligners"]["pairs"], "nope", "none") is None


def test_dvc_metrics_are_the_headline_files_only():
    """`dvc metrics show` / `dvc exp show` list the headline files; each stage's full metrics.json stays a
    committed (cache: false) out, so `dvc metrics show reports/<stage>/metrics.json` still reads it."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    metrics, full = [], []
    for name, spec in dvc["stages"].items():
        body = spec.get("do", spec)
        metrics += [next(iter(m)) for m in body.get("metrics", [])]
        full += [o for o in body.get("outs", []) if isinstance(o, dict) and next(iter(o)).endswith("metrics.json")]
    assert metrics and all(Path(m).name == headline.HEADLINE_FILE for m in metrics), metrics
    assert "reports/evaluate/headline.json" in metrics
    for out in full:
        assert next(iter(out.values())) == {"cache": False}
    assert "reports/evaluate/metrics.json" in [next(iter(o)) for o in full]
