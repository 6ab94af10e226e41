"""reports/index.html (nessa_lib.pipeline.report) from toy stage-05 tables: formatted per-pair tables, the claims
in words with their verdicts, the A/B and ablation tables, captioned figures and the provenance block."""

import json

import pandas as pd

from nessa_lib.pipeline import report


def _toy_reports(root, write_tables):
    ev = root / "reports/evaluate"
    (ev / "figures").mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / "params.yaml").write_text("base: {seed: 0}\n")
    write_tables(ev)
    (ev / "figures/det_x-y.png").write_bytes(b"\x89PNG")
    (ev / "05_evaluate.ipynb").write_text(json.dumps({"metadata": {"papermill": {"duration": 90.0}}}))
    (ev / "05_evaluate.html").write_text("<html></html>")
    return root


def test_report_formats_the_tables(tmp_path, toy_evaluate_tables):
    index = report.build_report(_toy_reports(tmp_path, toy_evaluate_tables)).read_text()
    # systems as rows, metrics as columns, percent with one decimal and the interval
    assert "<h3>x-y</h3>" in index and "<th>EER %</th>" in index and "<th>FRR % at FAR 12.5 %</th>" in index
    assert "<td>7.3 [6.7, 8.2]</td>" in index and "<td>4.6 [4.0, 5.1]</td>" in index
    assert "<td>63.4</td>" in index and "<td>3 (0.23)</td>" in index and "<td>0.909</td>" in index
    assert "frr_at_far" not in index and "_hi" not in index  # no raw column names
    # the claim in words with its verdict, per pair and summarised
    assert "The asymmetric system recovers at least 60 % of the gain." in index
    assert '<b class="maybe">inconclusive</b>' in index and "gain recovered 0.634" in index
    # A/B and ablation tables; the ablation's -1 reads "all"
    assert "<td>B/B</td><td>3.0</td><td>0.8</td><td>12.4</td><td>99.5</td><td>78.9</td>" in index
    assert "<td>800 (all)</td><td>all</td><td>9,600</td><td>4.7 [4.0, 5.5]</td><td>59.3</td>" in index
    # the learning curve's sentence, per utterance setting
    assert "<b>all utterances per voice</b>: nessa-m3 reaches 80 % of the gain at about 1,500 voices" in index
    # captioned figure, the executed page, provenance with the wall time read from papermill's metadata
    assert "<figcaption>DET curves of every system on x-y" in index
    assert 'href="evaluate/05_evaluate.html"' in index
    assert "params.yaml sha256" in index and "<td>1.5 min</td>" in index and "CPU cores" in index


def test_report_without_outputs_says_so(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    index = report.build_report(tmp_path).read_text()
    assert "main_table.csv not produced yet" in index and "findings.csv not produced yet" in index
