"""The study as a small static site: ``reports/index.html`` links every executed notebook (rendered to HTML by
:mod:`nessa_lib.pipeline.run`), shows the main table, the claims and the key figures, and opens in any browser
without Jupyter.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

from nessa_lib import paths
from nessa_lib.io import atomic_write_text
from nessa_lib.pipeline import layout

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;
color:#1d2430;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #d8dde6;padding-bottom:.2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0} th,td{border:1px solid #d8dde6;padding:.2rem .5rem;
text-align:right} th{background:#f1f4f8} td:first-child,th:first-child{text-align:left}
ul.stages li{margin:.15rem 0} .muted{color:#5b6678} img{max-width:100%;border:1px solid #e3e7ee;margin:.4rem 0}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(22rem,1fr));gap:.6rem}
figure{margin:0} figcaption{font-size:.8rem;color:#5b6678} caption{caption-side:bottom;font-size:.8rem;color:#5b6678;
text-align:left;padding-top:.2rem} .scroll{overflow-x:auto} td{white-space:nowrap}
.ok{color:#1a7f37} .bad{color:#b42318} .maybe{color:#9a6700} table.prov th{text-align:left}
"""


def executed_pages(root=None) -> list[tuple[str, str, Path]]:
    """``(stage, item, html path)`` of every rendered notebook under ``reports/``, in pipeline order."""
    found = []
    for s in layout.STAGES.values():
        base = layout.report_dir(s.name, root=root)
        pages = sorted(base.glob(f"*/{s.number:02d}_{s.name}.html")) + sorted(base.glob(f"{s.number:02d}_*.html"))
        found.extend((s.name, p.parent.name if p.parent != base else "", p) for p in pages)
    return found


_CAPTIONS = {
    "det": "DET curves of every system on {pair} (probit axes; legend: EER with its 95 % speaker-bootstrap "
           "interval). Lower left is better.",
    "ablation": "Alignment-data ablation: EER and share of the symmetric gain recovered against the number of paired "
                "utterances the aligner is fitted on, one line per utterances-per-speaker setting (95 % intervals).",
    "learning_curve": "Learning curve of the paired data: share of the symmetric gain recovered against the voices the "
                      "aligner is fitted on (95 % intervals), with each method's fitted saturating curve and its "
                      "bootstrap band; dotted lines: the target shares; dashed: the largest size measured.",
    "gain_recovered": "Share of the symmetric upgrade's EER gain that each alignment method keeps without "
                      "re-enrollment, per pair (0 % = no better than X/X, 100 % = as good as Y/Y).",
    "scores_before_after": "Target and non-target score distributions before and after alignment.",
}


def _fmt_pct(v, lo=None, hi=None) -> str:
    """``0.0733, 0.0673, 0.0812`` -> ``"7.3 [6.7, 8.1]"`` (percent, one decimal); blank for a missing value.

    >>> _fmt_pct(0.0733, 0.0673, 0.0812), _fmt_pct(-0.0), _fmt_pct(float("nan"))
    ('7.3 [6.7, 8.1]', '0.0', '')
    """
    import math

    def one(x):
        return f"{100 * float(x) + 0.0:.1f}"  # + 0.0: no "-0.0"

    if v is None or not math.isfinite(float(v)):
        return ""
    text = one(v)
    if lo is not None and hi is not None and math.isfinite(float(lo)) and math.isfinite(float(hi)):
        text += f" [{one(lo)}, {one(hi)}]"
    return text


def _fmt_num(v, digits: int = 3) -> str:
    import math

    return "" if v is None or not math.isfinite(float(v)) else f"{float(v) + 0.0:.{digits}f}"


def _html_table(header: list[str], rows: list[list[str]], caption: str = "") -> str:
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _missing(path: Path) -> str:
    return f'<p class="muted">{html.escape(path.name)} not produced yet.</p>'


def _get(row, col):
    return row[col] if col in row and row[col] == row[col] else None  # NaN -> None


def _frr_columns(path: Path) -> list[str]:
    """The ``frr_at_far<far>`` columns of a table CSV, in its order (none when it does not exist yet)."""
    import pandas as pd

    if not path.is_file():
        return []
    return [c for c in pd.read_csv(path, nrows=0).columns if re.fullmatch(r"frr_at_far[0-9.e-]+", c)]


def main_tables(path: Path) -> str:
    """One table per pair: systems as rows; EER, FRR at each FAR target and the gain recovered in % with their
    95 % intervals, min DCF, and the NESSA rows' seed spread."""
    import pandas as pd

    if not path.is_file():
        return _missing(path)
    df = pd.read_csv(path)
    frr = _frr_columns(path)
    header = ["system", "EER %", *[f"FRR % at FAR {100 * float(c[len('frr_at_far'):]):g} %" for c in frr],
              "min DCF (p=0.01)", "gain recovered %", "seeds (EER s.d. %)"]
    out = []
    for pair, sub in df.groupby("pair", sort=False):
        rows = []
        for _, r in sub.iterrows():
            sd = _get(r, "eer_seed_sd")
            n = _get(r, "n_seeds")
            seeds = f"{int(n)}" + (f" ({100 * sd:.2f})" if sd is not None else "") if n is not None else ""
            rows.append([r["system"], _fmt_pct(r["eer"], _get(r, "eer_lo"), _get(r, "eer_hi")),
                         *[_fmt_pct(_get(r, c), _get(r, f"{c}_lo"), _get(r, f"{c}_hi")) for c in frr],
                         _fmt_num(_get(r, "min_dcf_p0.01")),
                         _fmt_pct(_get(r, "gain_recovered"), _get(r, "gain_recovered_lo"),
                                  _get(r, "gain_recovered_hi")), seeds])
        out.append(f"<h3>{html.escape(str(pair))}</h3>" + _html_table(
            header, rows, f"Pair {pair}: X profiles against Y test utterances; 95 % speaker-bootstrap intervals in "
                          "brackets; NESSA rows are the mean over stage 04's seeds."))
    return "".join(out)


_VERDICT_CLASS = {"holds": "ok", "does not hold": "bad", "inconclusive": "maybe", "not testable": "muted"}


def claims_section(path: Path) -> str:
    """Each claim in words, then its verdict per group of pairs and the evidence of each pair."""
    import pandas as pd

    if not path.is_file():
        return _missing(path)
    df = pd.read_csv(path)
    parts = []
    for finding, sub in df.groupby("finding", sort=False):
        claim = str(sub["claim"].iloc[0]) if "claim" in sub else str(finding)
        items = []
        for group, g in sub.groupby("group", sort=False):
            summary = g[g["evidence"].astype(str).str.startswith("summary")]
            verdict = str(summary["verdict"].iloc[0]) if len(summary) else ""
            detail = html.escape(str(summary["detail"].iloc[0])) if len(summary) and "detail" in g else ""
            pairs = "".join(
                f'<li><b>{html.escape(str(r["evidence"]))}</b>: <span class="{_VERDICT_CLASS.get(r["verdict"], "")}">'
                f'{html.escape(str(r["verdict"]))}</span>; {html.escape(str(r.get("detail", "")))}</li>'
                for _, r in g.iterrows() if not str(r["evidence"]).startswith("summary"))
            items.append(f'<li>{html.escape(str(group))}: <b class="{_VERDICT_CLASS.get(verdict, "")}">'
                         f'{html.escape(verdict)}</b> <span class="muted">({detail})</span><ul>{pairs}</ul></li>')
        parts.append(f"<h3>{html.escape(str(finding).split(':', 1)[0])}. {html.escape(claim)}</h3>"
                     f"<ul>{''.join(items)}</ul>")
    return "".join(parts)


def ab_tables(path: Path) -> str:
    """The A/B case study: one table per FAR target, deployments as rows."""
    import pandas as pd

    if not path.is_file():
        return _missing(path)
    df = pd.read_csv(path)
    cols = [("EER %", "eer"), ("FAR % deployed", "far_deployed"), ("FRR % deployed", "frr_deployed"),
            ("FRR % at the A/A threshold", "frr_at_aa_threshold"), ("relative FRR gain %", "rel_frr_impact")]
    out = []
    for far, sub in df.groupby("far_target", sort=True):
        rows = [[r["system"], *[_fmt_pct(_get(r, c), _get(r, f"{c}_lo"), _get(r, f"{c}_hi")) for _, c in cols]]
                for _, r in sub.iterrows()]
        out.append(_html_table(["deployment", *[h for h, _ in cols]], rows,
                               f"Thresholds calibrated for {100 * far:g} % FAR on voices the encoders never heard; "
                               "relative FRR gain: share of the B/B reduction of A/A's FRR (95 % intervals)."))
    return "".join(out)


def ablation_table(path: Path) -> str:
    """The alignment-data ablation: one row per (speakers, utterances per speaker) setting."""
    import pandas as pd

    if not path.is_file():
        return _missing(path)
    df = pd.read_csv(path)

    def n(v):
        return "all" if int(v) <= 0 else str(int(v))

    rows = [([r["method"]] if "method" in df else [])
            + [f"{int(r['n_speakers_used'])}" + (" (all)" if int(r["n_speakers"]) <= 0 else ""),
             n(r["utts_per_speaker"]), f"{int(r['n_pairs']):,}",
             _fmt_pct(r["eer"], _get(r, "eer_lo"), _get(r, "eer_hi")),
             _fmt_pct(r["gain_recovered"], _get(r, "gain_recovered_lo"), _get(r, "gain_recovered_hi"))]
            for _, r in df.iterrows()]
    head = (["method"] if "method" in df else []) + ["speakers", "utterances / speaker", "paired utterances",
                                                      "EER %", "gain recovered %"]
    return _html_table(head, rows, "EER and share of the symmetric gain recovered by each ablation method on its "
                                   "pair, as the alignment data shrink (95 % intervals).")


def learning_curve_section(path: Path) -> str:
    """The learning curve's sentences: the voices at which each method reaches each target share, or that it does
    not (``learning_curve.csv`` of stage 05)."""
    import pandas as pd

    if not path.is_file():
        return _missing(path)
    df = pd.read_csv(path)
    if df.empty:
        return '<p class="muted">No ablation series has the four sizes a curve needs.</p>'
    items = "".join(f"<li><b>{'all' if int(r['utts_per_speaker']) <= 0 else int(r['utts_per_speaker'])} utterances "
                    f"per voice</b>: {html.escape(str(r['statement']))}</li>" for _, r in df.iterrows())
    return f"<ul>{items}</ul>"


def deployment_table(path: Path) -> str:
    import pandas as pd

    if not path.is_file():
        return _missing(path)
    df = pd.read_csv(path)
    rows = [[r["method"], r["sample"], _fmt_pct(r["eer"], _get(r, "eer_lo"), _get(r, "eer_hi")),
             _fmt_pct(_get(r, "eer_xx")), _fmt_pct(_get(r, "eer_yy")),
             _fmt_num(_get(r, "agreement_median")), "yes" if str(r.get("flagged")) == "True" else "no",
             "" if _get(r, "problems") is None else str(r["problems"])] for _, r in df.iterrows()]
    return _html_table(["method", "sample", "EER %", "X/X EER %", "Y/Y EER %", "agreement (median)", "flagged",
                        "problems"], rows, "The A/B aligners on a held-out recording condition.")


def _caption(stem: str) -> str:
    if stem.startswith("det_"):
        return _CAPTIONS["det"].format(pair=stem[4:])
    return _CAPTIONS.get(stem, stem.replace("_", " "))


def stage_durations(root: Path) -> list[tuple[str, float | None]]:
    """``(page label, seconds)`` of each executed notebook, from papermill's metadata in the ``.ipynb``."""
    import json

    out = []
    for stage, item, page in executed_pages(root):
        nb = page.with_suffix(".ipynb")
        try:
            duration = json.loads(nb.read_text())["metadata"]["papermill"].get("duration")
        except (OSError, ValueError, KeyError):
            duration = None
        out.append((f"{stage} · {item}" if item else stage, duration))
    return out


def provenance(root: Path) -> dict[str, str]:
    """Date, commit, params digest and machine of this report, for its provenance block."""
    import datetime
    import hashlib
    import os
    import platform
    import subprocess

    def git(*args):
        try:
            r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return ""
        return r.stdout.strip() if r.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD")
    if commit and git("status", "--porcelain", "--untracked-files=no", "--", "params.yaml", "dvc.yaml", "nessa_lib",
                      "notebooks"):
        commit += " (with uncommitted changes to the code or parameters)"
    params = root / "params.yaml"
    digest = hashlib.sha256(params.read_bytes()).hexdigest()[:12] if params.is_file() else ""
    return {
        "built": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit or "not a git checkout",
        "params.yaml sha256": digest or "no params.yaml",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}, "
                   f"Python {platform.python_version()}",
    }


def build_report(root=None) -> Path:
    """Write ``reports/index.html``: links to each stage's executed notebook, the main table per pair, the claims
    in words with their verdicts, the A/B and ablation tables, the captioned evaluation figures (linked, not
    copied) and a provenance block. Returns its path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "dvc.yaml").write_text("stages: {}\\n") and None
    >>> build_report(d).name
    'index.html'
    """
    root = Path(root) if root is not None else paths.repo_root()
    reports = root / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    items = []
    for stage, item, page in executed_pages(root):
        label = f"{stage} · {item}" if item else stage
        items.append(f'<li><a href="{page.relative_to(reports).as_posix()}">{html.escape(label)}</a></li>')
    evaluate = layout.report_dir("evaluate", root=root)
    figures = sorted((evaluate / "figures").glob("*.png"))
    figs = "".join(f'<figure><a href="{f.relative_to(reports).as_posix()}"><img src="{f.relative_to(reports).as_posix()}" '
                   f'alt="{html.escape(f.stem)}" loading="lazy"></a><figcaption>{html.escape(_caption(f.stem))}'
                   f'</figcaption></figure>' for f in figures)
    prov = provenance(root)
    times = stage_durations(root)
    prov_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in prov.items())
    time_rows = "".join(f"<tr><td>{html.escape(label)}</td><td>{'' if s is None else f'{s / 60:.1f} min'}</td></tr>"
                        for label, s in times)
    total = sum(s for _, s in times if s)
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>NESSA study report</title>
<style>{_STYLE}</style></head><body>
<h1>NESSA: aligning speaker-embedding spaces so voice profiles survive a model upgrade</h1>
<p class="muted">The results of the last <code>dvc repro</code>. Error rates and shares in %, one decimal, with the
95 % speaker-bootstrap interval in brackets; full-precision fractions in <code>reports/evaluate/*.csv</code> and
<code>metrics.json</code>.</p>
<h2>The paper's claims, as measured here</h2>{claims_section(evaluate / 'findings.csv')}
<h2>Main table</h2>{main_tables(evaluate / 'main_table.csv')}
<h2>A/B case study: upgrading the runtime model without re-enrolling</h2>{ab_tables(evaluate / 'ab_case_study.csv')}
<h2>Ablation: how much alignment data</h2>{ablation_table(evaluate / 'ablation.csv')}
<h3>How many paired voices for a share of the gain</h3>{learning_curve_section(evaluate / 'learning_curve.csv')}
<h2>Deployment check of the A/B aligners on a held-out recording condition</h2>
{deployment_table(evaluate / 'deployment_check.csv')}
<h2>Figures</h2><div class="figs">{figs or '<p class="muted">no figures yet</p>'}</div>
<h2>Stages</h2><ul class="stages">{''.join(items) or '<li class="muted">no stage has run yet</li>'}</ul>
<h2>Provenance</h2><table class="prov">{prov_rows}</table>
<table class="prov"><thead><tr><th>executed notebook</th><th>wall time</th></tr></thead><tbody>{time_rows}
<tr><th>total</th><th>{total / 60:.1f} min</th></tr></tbody></table>
</body></html>
"""
    out = reports / "index.html"
    atomic_write_text(out, body)
    return out


if __name__ == "__main__":
    print(build_report())
    sys.exit(0)
