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
"""


def executed_pages(root=None) -> list[tuple[str, str, Path]]:
    """``(stage, item, html path)`` of every rendered notebook under ``reports/``, in pipeline order."""
    found = []
    for s in layout.STAGES.values():
        base = layout.report_dir(s.name, root=root)
        pages = sorted(base.glob(f"*/{s.number:02d}_{s.name}.html")) + sorted(base.glob(f"{s.number:02d}_*.html"))
        found.extend((s.name, p.parent.name if p.parent != base else "", p) for p in pages)
    return found


def _csv_table(path: Path, percent_cols=(), max_rows: int = 60, columns=None) -> str:
    import pandas as pd

    if not path.is_file():
        return f'<p class="muted">{html.escape(path.name)} not produced yet.</p>'
    df = pd.read_csv(path)
    if columns is not None:  # the columns worth reading, in this order, where present
        df = df[[c for c in columns if c in df.columns]]
    for c in percent_cols:
        if c in df.columns:
            df[c] = (100 * df[c]).round(2) + 0.0  # + 0.0: no "-0" in the table
    return df.head(max_rows).to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0)


def _frr_columns(path: Path) -> list[str]:
    """The ``frr_at_far<far>`` columns of a table CSV, in its order (none when it does not exist yet)."""
    import pandas as pd

    if not path.is_file():
        return []
    return [c for c in pd.read_csv(path, nrows=0).columns if re.fullmatch(r"frr_at_far[0-9.e-]+", c)]


def build_report(root=None) -> Path:
    """Write ``reports/index.html``: links to each stage's executed notebook, the main table, the claims and the
    evaluation figures (linked, not copied). Returns its path.

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
    figs = "".join(f'<a href="{f.relative_to(reports).as_posix()}"><img src="{f.relative_to(reports).as_posix()}" '
                   f'alt="{html.escape(f.stem)}" loading="lazy"></a>' for f in figures)
    # The FRR columns are the table's own (one per evaluate.far_targets, in that order): the report reads no params.
    frr = tuple(_frr_columns(evaluate / "main_table.csv"))
    rates = ("eer", *frr, "gain_recovered")
    pct = [f"{m}{s}" for m in rates + ("rel_frr_change",) for s in ("", "_lo", "_hi", "_seed_sd")]
    main_cols = ["pair", "system"] + [f"{m}{s}" for m in rates + ("min_dcf_p0.01",) for s in ("", "_lo", "_hi",
                                                                                            "_seed_sd")]
    main_cols += ["n_seeds"]
    claim_cols = ["finding", "group", "evidence", "verdict", "lo", "hi", "speakers_to_decide", "detail"]
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>NESSA study report</title>
<style>{_STYLE}</style></head><body>
<h1>NESSA: aligning speaker-embedding spaces so voice profiles survive a model upgrade</h1>
<p class="muted">The executed notebooks of the last <code>dvc repro</code>, rendered to HTML. Error rates in %;
<code>_lo</code>/<code>_hi</code>: 95 % speaker-bootstrap interval; <code>_seed_sd</code>: spread over the NESSA fits'
seeds (the figure is their mean).</p>
<h2>Stages</h2><ul class="stages">{''.join(items) or '<li class="muted">no stage has run yet</li>'}</ul>
<h2>Main table</h2>{_csv_table(evaluate / 'main_table.csv', pct, columns=main_cols)}
<h2>The paper's claims, as measured here</h2>{_csv_table(evaluate / 'findings.csv', columns=claim_cols)}
<h2>Deployment check of the A/B aligners on a held-out recording condition</h2>
{_csv_table(evaluate / 'deployment_check.csv', [f"eer{s}" for s in ("", "_lo", "_hi", "_xx", "_yy")])}
<h2>Figures</h2><div class="figs">{figs or '<p class="muted">no figures yet</p>'}</div>
</body></html>
"""
    out = reports / "index.html"
    atomic_write_text(out, body)
    return out


if __name__ == "__main__":
    print(build_report())
    sys.exit(0)
