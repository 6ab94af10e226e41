"""``python -m nessa_lib.pipeline.verify``: is your run a reproduction of the published study?

(Not listed in the package docstring on purpose: ``pipeline/__init__.py`` is a dependency of every stage.)

The published run is what git holds: stage 05's tables (``cache: false`` in ``dvc.yaml``) at a revision (default
``HEAD``). Yours is what the workspace holds after ``make repro``. Two checks:

1. **Figures within tolerance.** Every headline figure (each system's EER, FRR at each FAR target and share of the
   gain recovered, per pair; the A/B case study; the ablation; AS-norm on and off; the chain of upgrades) must differ from the published one by no more than
   its *tolerance*, the larger of

   - the published figure's 95 % speaker-bootstrap half-width: the uncertainty the study states for it. A run on
     the same corpus does not re-draw the evaluation speakers, so a reproduction normally lands far inside it;
   - the spread from encoder training: ``t(0.975, n-1) * sqrt(2) * s``, with ``s`` the figure's standard deviation
     over the ``n`` encoder trainings of :data:`ENCODER_SEEDS_DIR` (the published run and the supplementary runs
     that differ from it only by the encoders' seeds). This is a 95 % prediction bound for the difference between
     two runs whose encoders were trained differently, which is what another machine's run was before
     ``base.cpu_kernels`` (issue 20) and may still be on a CPU the setting does not cover.

   And every verdict of ``findings.csv`` must equal the published one, unless the encoder-seed runs show that this
   verdict itself changes with encoder training (then it is reported, not failed).
2. **The nbval key numbers** (``--nbval``): the committed executed evaluation notebook is re-run with nbval on
   your data (stage 05's outputs are restored afterwards); its marked cell (every pair's EERs at 3 decimals) must print what the published run printed. That
   is the bit-level check: it holds when your encoders are the published ones (same kind of CPU, or kernels capped
   by ``base.cpu_kernels``), and it is expected to fail, with the figures still within tolerance, when they are not.

Exit status: 0 when everything passes, 1 when a figure or a verdict fails, 3 when only the nbval key numbers
differ, 2 on a usage error (no published tables at that revision, no run in the workspace).
"""

from __future__ import annotations

import argparse
import io
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nessa_lib import paths

REPORTS = "reports/evaluate"
#: Stage 05's tables that hold headline figures, with the columns that identify a row.
TABLES = {
    "main_table": ["pair", "system"],
    "ab_case_study": ["far_target", "system"],
    "ablation": ["method", "n_speakers", "utts_per_speaker"],
    "calibration": ["pair", "system", "far_target"],
    "asnorm": ["pair", "system", "asnorm"],
    "chain": ["system", "leg"],
}
FINDINGS = "findings"
#: Columns that are headline figures wherever they appear (each with ``_lo``/``_hi`` columns for its interval).
#: FRR columns are matched by pattern (``frr_at_far0.01`` ..., not ``frr_at_far_oracle``), so every FAR target of ``evaluate.far_targets`` is included.
FIGURE_COLUMNS = ("eer", "gain_recovered", "far_deployed", "frr_deployed", "frr_at_aa_threshold", "frr_at_far_oracle",
                  "rel_frr_impact", "rel_frr_impact_oracle", "far_eval", "frr_eval")
FIGURE_PATTERN = re.compile(r"frr_at_far\d")
#: Supplementary runs that differ from the published one only by the encoders' seeds (issue 20, part 4).
ENCODER_SEEDS_DIR = "docs/runs/encoder-seeds"
NOTEBOOK = f"{REPORTS}/05_evaluate.ipynb"


def _is_figure(column: str) -> bool:
    if column.endswith(("_lo", "_hi", "_sd")):
        return False
    return column in FIGURE_COLUMNS or bool(FIGURE_PATTERN.match(column))


def figures(tables: dict) -> pd.DataFrame:
    """Every headline figure of stage 05's tables, one row each: ``figure`` (an id), ``value``, ``lo``, ``hi``.

    Parameters
    ----------
    tables : dict
        Table name of :data:`TABLES` -> its DataFrame as read from the CSV (missing tables are skipped).

    Examples
    --------
    >>> t = pd.DataFrame({"pair": ["x-y"], "system": ["m3"], "eer": [0.1], "eer_lo": [0.08], "eer_hi": [0.13]})
    >>> figures({"main_table": t}).to_dict("records")
    [{'figure': 'main_table: x-y / m3 / eer', 'value': 0.1, 'lo': 0.08, 'hi': 0.13}]
    """
    rows = []
    for name, keys in TABLES.items():
        t = tables.get(name)
        if t is None:
            continue
        for _, r in t.iterrows():
            label = " / ".join(str(r[k]) for k in keys if k in t.columns)
            for c in t.columns:
                if _is_figure(c) and pd.notna(r[c]):
                    lo, hi = r.get(f"{c}_lo", np.nan), r.get(f"{c}_hi", np.nan)
                    rows.append(dict(figure=f"{name}: {label} / {c}", value=float(r[c]),
                                     lo=float(lo) if pd.notna(lo) else np.nan, hi=float(hi) if pd.notna(hi) else np.nan))
    return pd.DataFrame(rows, columns=["figure", "value", "lo", "hi"])


def verdicts(findings: pd.DataFrame) -> pd.Series:
    """The verdict of every finding, indexed by ``"claim | group | evidence"`` (the claim's letter).

    Examples
    --------
    >>> f = pd.DataFrame({"finding": ["a: NESSA wins"], "group": ["g"], "evidence": ["x-y"], "verdict": ["holds"]})
    >>> verdicts(f).to_dict()
    {'claim a | g | x-y': 'holds'}
    """
    claim = findings["finding"].astype(str).str.split(":").str[0]
    index = "claim " + claim + " | " + findings["group"].astype(str) + " | " + findings["evidence"].astype(str)
    return pd.Series(findings["verdict"].astype(str).values, index=index.values, name="verdict")


def encoder_spread(runs: list) -> pd.DataFrame:
    """Each figure's spread over encoder trainings: ``n`` runs that have it, standard deviation ``s``, and the
    95 % prediction bound ``bound = t(0.975, n-1) * sqrt(2) * s`` for the difference between two such runs.

    Parameters
    ----------
    runs : list of dict
        Stage 05's tables of each run (as for :func:`figures`), the published one included.

    Examples
    --------
    >>> t = lambda e: {"main_table": pd.DataFrame({"pair": ["p"], "system": ["s"], "eer": [e]})}
    >>> s = encoder_spread([t(0.10), t(0.12), t(0.11)])
    >>> round(float(s.loc["main_table: p / s / eer", "s"]), 4), round(float(s.loc["main_table: p / s / eer", "bound"]), 4)
    (0.01, 0.0608)
    """
    from scipy import stats

    values = pd.concat([figures(r).set_index("figure")["value"].rename(i) for i, r in enumerate(runs)], axis=1)
    n = values.notna().sum(axis=1)
    s = values.std(axis=1, ddof=1)
    t = pd.Series([stats.t.ppf(0.975, k - 1) if k >= 2 else np.nan for k in n], index=values.index)
    return pd.DataFrame({"n": n, "s": s, "bound": t * math.sqrt(2) * s})


def verdict_spread(runs: list) -> pd.DataFrame:
    """Each finding's verdicts over encoder trainings and the verdict that holds across them.

    ``across`` is the common verdict when every run gives the same one, else ``varies``; ``verdicts`` lists them
    in run order (the published run first).

    Examples
    --------
    >>> f = lambda v: {"findings": pd.DataFrame({"finding": ["a: x"], "group": ["g"], "evidence": ["x"], "verdict": [v]})}
    >>> verdict_spread([f("holds"), f("inconclusive"), f("holds")]).to_dict("records")
    [{'verdicts': 'holds, inconclusive, holds', 'across': 'varies'}]
    """
    v = pd.concat([verdicts(r[FINDINGS]).rename(i) for i, r in enumerate(runs)], axis=1)
    return pd.DataFrame({
        "verdicts": v.apply(lambda r: ", ".join(str(x) for x in r if pd.notna(x)), axis=1),
        "across": v.apply(lambda r: r.dropna().iloc[0] if r.dropna().nunique() == 1 else "varies", axis=1),
    })


def spread_report(runs: list) -> str:
    """The verdicts across encoder trainings, and each pair's EERs and gains (in %) in every training."""
    v = verdict_spread(runs)
    pub = figures(runs[0]).set_index("figure")
    values = pd.concat([figures(r).set_index("figure")["value"].rename(f"run {i}") for i, r in enumerate(runs)],
                       axis=1).reindex(pub.index)
    main = values[values.index.str.startswith("main_table:") & values.index.str.endswith(("/ eer", "/ gain_recovered"))]
    main = (100 * main).round(2)
    main["s.d."] = main.std(axis=1, ddof=1).round(2)
    main["published 95 % half-width"] = (100 * (pub["hi"] - pub["lo"]) / 2).reindex(main.index).round(2)
    return (f"Verdicts across {len(runs)} encoder trainings (run 0: the published run)\n"
            f"{v.to_string()}\n\nEER and gain recovered (%) in each training\n{main.to_string()}")


def compare(published: dict, yours: dict, spread: pd.DataFrame | None = None,
            varying: set | None = None) -> pd.DataFrame:
    """One row per headline figure and per verdict: published, yours, tolerance, its basis, and ``ok``.

    Parameters
    ----------
    published, yours : dict
        Stage 05's tables of each run (:data:`TABLES` and :data:`FINDINGS`).
    spread : DataFrame, optional
        :func:`encoder_spread` of the encoder-seed runs (its ``bound`` widens a figure's tolerance).
    varying : set, optional
        Verdict ids (as :func:`verdicts`) that change with encoder training: a different verdict there passes.

    Examples
    --------
    >>> t = lambda e: {"main_table": pd.DataFrame({"pair": ["p"], "system": ["s"], "eer": [e], "eer_lo": [0.08],
    ...                                          "eer_hi": [0.12]})}
    >>> r = compare(t(0.10), t(0.11))
    >>> r["figure"].iloc[0], round(float(r["tolerance"].iloc[0]), 6), bool(r["ok"].iloc[0])
    ('main_table: p / s / eer', 0.02, True)
    >>> bool(compare(t(0.10), t(0.13))["ok"].iloc[0])
    False
    """
    pub, mine = figures(published).set_index("figure"), figures(yours).set_index("figure")
    rows = []
    for fig, p in pub.iterrows():
        half = (p["hi"] - p["lo"]) / 2 if pd.notna(p["lo"]) and pd.notna(p["hi"]) else np.nan
        bound = spread["bound"].get(fig, np.nan) if spread is not None else np.nan
        tol, basis = max(((half, "published 95 % interval"), (bound, "encoder-training spread")),
                         key=lambda tb: -np.inf if pd.isna(tb[0]) else tb[0])
        if pd.isna(tol):
            tol, basis = 0.0, "no interval: must be equal"
        if fig not in mine.index:
            rows.append(dict(figure=fig, published=p["value"], yours=np.nan, tolerance=tol, basis=basis, ok=False,
                             note="missing from your run"))
            continue
        y = mine.loc[fig, "value"]
        # A hair of slack for values written through CSV text (the tolerance can be 0).
        ok = bool(abs(y - p["value"]) <= tol + 1e-12)
        rows.append(dict(figure=fig, published=p["value"], yours=y, tolerance=tol, basis=basis, ok=ok, note=""))
    rows += [dict(figure=fig, published=np.nan, yours=mine.loc[fig, "value"], tolerance=np.nan, basis="", ok=False,
                  note="not in the published run") for fig in mine.index.difference(pub.index)]
    if FINDINGS in published:
        pv = verdicts(published[FINDINGS])
        yv = verdicts(yours[FINDINGS]) if FINDINGS in yours else pd.Series(dtype=str)
        for key, v in pv.items():
            y = yv.get(key)
            same = y == v
            allowed = not same and y is not None and key in (varying or set())
            rows.append(dict(figure=f"verdict: {key}", published=v, yours=y if y is not None else "missing",
                             tolerance=np.nan, basis="must be equal", ok=bool(same or allowed),
                             note="changes with encoder training (docs/runs/encoder-seeds)" if allowed else ""))
    return pd.DataFrame(rows, columns=["figure", "published", "yours", "tolerance", "basis", "ok", "note"])


def format_table(result: pd.DataFrame, only_failures: bool = False) -> str:
    """The comparison as text: figures in percent (the tables' fractions x 100), verdicts as words.

    Examples
    --------
    >>> r = pd.DataFrame([dict(figure="f", published=0.1, yours=0.11, tolerance=0.02, basis="b", ok=True, note="")])
    >>> print(format_table(r))  # doctest: +NORMALIZE_WHITESPACE
    figure  published %  yours %  |diff| %  tolerance %  basis  result
    f       10.000       11.000   1.000     2.000        b      pass
    """
    if only_failures:
        result = result[~result["ok"]]

    def pct(v):
        return f"{100 * v:.3f}" if isinstance(v, (float, int, np.floating)) and pd.notna(v) else ("" if pd.isna(v)
                                                                                                  else str(v))
    shown = pd.DataFrame({
        "figure": result["figure"],
        "published %": result["published"].map(pct),
        "yours %": result["yours"].map(pct),
        "|diff| %": [pct(abs(y - p)) if isinstance(p, float) and isinstance(y, float) and pd.notna(y) else ""
                     for p, y in zip(result["published"], result["yours"])],
        "tolerance %": result["tolerance"].map(pct),
        "basis": result["basis"],
        "result": ["pass" + (f" ({n})" if n else "") if ok else "FAIL" + (f" ({n})" if n else "")
                   for ok, n in zip(result["ok"], result["note"])],
    })
    width = max([len("figure"), *map(len, shown["figure"])])
    return shown.to_string(index=False, justify="left", formatters={"figure": lambda f: f.ljust(width)})


def read_tables(folder) -> dict:
    """Stage 05's tables in ``folder`` (``reports/evaluate`` or a run copied under docs/runs/); missing ones
    are left out."""
    folder = Path(folder)
    return {name: pd.read_csv(folder / f"{name}.csv") for name in (*TABLES, FINDINGS)
            if (folder / f"{name}.csv").is_file()}


def _git_show(rev: str, path: str, root: Path) -> bytes:
    res = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True)
    if res.returncode:
        raise FileNotFoundError(f"{path} is not in git at {rev!r}: {res.stderr.decode().strip()}")
    return res.stdout


def published_tables(rev: str = "HEAD", root=None) -> dict:
    """Stage 05's tables as committed at ``rev`` (they are ``cache: false`` outputs: git holds them)."""
    root = Path(root) if root is not None else paths.repo_root()
    out = {}
    for name in (*TABLES, FINDINGS):
        try:
            out[name] = pd.read_csv(io.BytesIO(_git_show(rev, f"{REPORTS}/{name}.csv", root)))
        except FileNotFoundError:
            if name in ("main_table", FINDINGS):
                raise
    return out


def encoder_seed_runs(published: dict, root=None) -> list:
    """Stage 05's tables of the published run (``published``, as :func:`published_tables` read them) and of every
    run under :data:`ENCODER_SEEDS_DIR`; empty when there is none."""
    root = Path(root) if root is not None else paths.repo_root()
    folders = sorted(p for p in (root / ENCODER_SEEDS_DIR).glob("*/") if (p / "main_table.csv").is_file())
    return [published, *(read_tables(f) for f in folders)] if folders else []


def nbval_key_numbers(rev: str = "HEAD", root=None) -> tuple[bool, str]:
    """Re-run the committed executed evaluation notebook (at ``rev``) with nbval on the workspace's data.

    The kernel starts with the CPU kernels of ``base.cpu_kernels``, as the pipeline's runner starts it (without
    them, scores differ from the stage's in their last bits on an AVX-512 machine). The notebook rewrites stage 05's
    outputs as it runs (``NESSA_WRITE_OUTPUTS=1``: the tracked folder, not ``scratch/``); the folder is restored
    afterwards, so verifying changes nothing in the workspace.
    """
    from nessa_lib import cpu_kernels
    from nessa_lib.pipeline import layout
    from nessa_lib.stages.schema import read_params_file

    root = Path(root) if root is not None else paths.repo_root()
    setting = (read_params_file(root=root).get("base") or {}).get("cpu_kernels", "native")
    tmp = root / ".verify"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    nb = tmp / "05_evaluate.published.ipynb"
    backup = tmp / "outputs"
    shutil.copytree(root / REPORTS, backup)
    try:
        nb.write_bytes(_git_show(rev, NOTEBOOK, root))
        res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                              "--rootdir", str(tmp), str(nb)], cwd=root, capture_output=True, text=True,
                             env={**cpu_kernels.environment(setting), layout.WRITE_ENV: "1"})  # as the runner
    finally:
        shutil.rmtree(root / REPORTS, ignore_errors=True)
        shutil.copytree(backup, root / REPORTS)  # copy2: contents and times as the run left them
        shutil.rmtree(tmp, ignore_errors=True)
    return res.returncode == 0, res.stdout[-4000:]


def main(argv=None) -> int:
    """Print the comparison table; return the exit status (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m nessa_lib.pipeline.verify", description=__doc__.split("\n")[0])
    parser.add_argument("--published", default="HEAD", help="git revision of the published run (default: %(default)s)")
    parser.add_argument("--failures-only", action="store_true", help="print only the rows that fail")
    parser.add_argument("--nbval", action="store_true", help="also re-run the committed notebook's key-number cell "
                                                             "with nbval (about a minute)")
    parser.add_argument("--spread", action="store_true", help="print instead the verdicts and the main figures "
                                                              "across the encoder trainings, then exit")
    args = parser.parse_args(argv)
    root = paths.repo_root()
    try:
        published = published_tables(args.published, root)
        runs = encoder_seed_runs(published, root)
    except (FileNotFoundError, pd.errors.ParserError) as err:
        print(f"error: the published run: {err}", file=sys.stderr)
        return 2
    if args.spread:
        if not runs:
            print(f"error: no encoder-seed runs under {ENCODER_SEEDS_DIR}", file=sys.stderr)
            return 2
        print(spread_report(runs))
        return 0
    yours = read_tables(root / REPORTS)
    if "main_table" not in yours or FINDINGS not in yours:
        print(f"error: no run in the workspace ({REPORTS}/main_table.csv, findings.csv): run `make repro` first",
              file=sys.stderr)
        return 2
    spread = encoder_spread(runs) if len(runs) >= 2 else None
    varying = set(verdict_spread(runs).query("across == 'varies'").index) if runs else set()
    result = compare(published, yours, spread, varying)
    print(f"Your run ({REPORTS}) against the published one (git {args.published}); "
          f"encoder-training spread over {len(runs)} trainings (the published run and {len(runs) - 1} in "
          f"{ENCODER_SEEDS_DIR})"
          if runs else f"Your run ({REPORTS}) against the published one (git {args.published}); no encoder-seed runs")
    if args.failures_only and result["ok"].all():
        print("(no figure or verdict differs beyond its tolerance)")
    else:
        print(format_table(result, args.failures_only))
    bad = result[~result["ok"]]
    n_fig = int((~result["figure"].str.startswith("verdict:")).sum())
    print(f"\n{len(result) - len(bad)} of {len(result)} checks pass ({n_fig} figures, {len(result) - n_fig} verdicts)")
    if len(bad):
        print("FAILED: " + "; ".join(bad["figure"].head(10)) + (" ..." if len(bad) > 10 else ""), file=sys.stderr)
        return 1
    if args.nbval:
        ok, out = nbval_key_numbers(args.published, root)
        if not ok:
            print(out, file=sys.stderr)
            print("The nbval key numbers differ from the published notebook's: every figure is within its "
                  "tolerance, but your encoders are not bit-identical to the published ones (another CPU kernel "
                  "path; docs/reproducibility.md).", file=sys.stderr)
            return 3
        print("nbval: the key-number cell of the published notebook prints the same on your data (bit-level "
              "reproduction).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
