"""Stage 05's headline figures: a dozen fractions that `dvc exp show` and `dvc metrics diff` can display.

The full tables stay as CSV files (main_table.csv, findings.csv, ...) and the full flat ``metrics.json``; this module
picks, from those tables, the figures a reader compares between experiments:

* per pair, the EER of symmetric X/X, of symmetric Y/Y, and of the best NESSA variant (``<pair>:eer_xx``,
  ``<pair>:eer_yy``, ``<pair>:eer_nessa``);
* the share of the symmetric update's EER gain that the A/B method (M3 by default) recovers on the A/B pair
  (``ab:gain_recovered``);
* one 0/1 flag per claim and group of pairs: 1 when the claim holds, 0 when it does not or is inconclusive
  (``claim_<letter>:<group>``).

Every value is a fraction rounded to 4 decimals (0.01 percentage points), so the columns stay narrow.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

HEADLINE_FILE = "headline.json"
SYMMETRIC_X = "symmetric X/X"  # the row names of tables.SYMMETRIC_X / SYMMETRIC_Y (not imported: kept light)
SYMMETRIC_Y = "symmetric Y/Y"
NESSA_METHODS = ("nessa-m1", "nessa-m2", "nessa-m3")
DECIMALS = 4


def _slug(text: str) -> str:
    """``"Y better than X"`` -> ``"y-better-than-x"``."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


def _num(value) -> float:
    value = float(value)
    return round(value, DECIMALS) if np.isfinite(value) else value


def _long(main_table: pd.DataFrame) -> pd.DataFrame:
    """The main table with ``pair`` and ``system`` as columns, however it was indexed."""
    df = main_table.reset_index() if {"pair", "system"} - set(main_table.columns) else main_table
    missing = {"pair", "system", "eer"} - set(df.columns)
    if missing:
        raise ValueError(f"headline: the main table has no column(s) {sorted(missing)}")
    return df


def evaluate_headline(main_table: pd.DataFrame, findings: pd.DataFrame, *, ab_pair: str | None = None,
                      ab_method: str = "nessa-m3") -> dict[str, float]:
    """The headline figures of stage 05 from its main table and its claims table.

    Parameters
    ----------
    main_table : the long main table (``main_table.csv``): one row per pair and system, with ``eer`` and, for the
        A/B figure, ``gain_recovered``; ``pair``/``system`` as columns or index levels.
    findings : the claims table (``findings.csv``); only its summary rows (``evidence`` starting with
        ``"summary"``) are read: ``finding`` (``"a: ..."``), ``group`` and ``verdict``.
    ab_pair : the pair of the A/B case study (None: no ``ab:`` figure).
    ab_method : the method whose gain share is reported for ``ab_pair``.

    Returns
    -------
    dict : flat ``{name: fraction}``, sorted by name.

    Examples
    --------
    >>> main = pd.DataFrame({"pair": ["x-y"] * 4,
    ...                      "system": ["symmetric X/X", "symmetric Y/Y", "nessa-m1", "nessa-m3"],
    ...                      "eer": [0.10, 0.04, 0.07, 0.05], "gain_recovered": [0.0, 1.0, 0.5, 5 / 6]})
    >>> claims = pd.DataFrame({"finding": ["a: best NESSA beats speaker-logit"], "group": ["classification"],
    ...                        "evidence": ["summary over 1 pair(s)"], "verdict": ["holds"]})
    >>> evaluate_headline(main, claims, ab_pair="x-y")
    {'ab:gain_recovered': 0.8333, 'claim_a:classification': 1, 'x-y:eer_nessa': 0.05, 'x-y:eer_xx': 0.1, 'x-y:eer_yy': 0.04}
    """
    df = _long(main_table)
    out: dict[str, float] = {}
    for pair, rows in df.groupby("pair", sort=True):
        eer = rows.set_index("system")["eer"].astype(float)
        for key, system in (("eer_xx", SYMMETRIC_X), ("eer_yy", SYMMETRIC_Y)):
            if system in eer.index:
                out[f"{pair}:{key}"] = _num(eer[system])
        nessa = eer.reindex([m for m in NESSA_METHODS if m in eer.index]).dropna()
        if len(nessa):
            out[f"{pair}:eer_nessa"] = _num(nessa.min())
    if ab_pair is not None:
        rows = df[(df["pair"] == ab_pair) & (df["system"] == ab_method)]
        if not rows.empty and "gain_recovered" in rows:  # a study without that method has no such figure
            out["ab:gain_recovered"] = _num(rows["gain_recovered"].iloc[0])
    summary = findings[findings["evidence"].astype(str).str.startswith("summary")]
    for _, row in summary.iterrows():
        letter = str(row["finding"]).split(":", 1)[0].strip()
        out[f"claim_{_slug(letter)}:{_slug(row['group'])}"] = int(row["verdict"] == "holds")
    return dict(sorted(out.items()))


def evaluate_headline_from_reports(report_dir, *, ab_pair: str | None = None,
                                   ab_method: str = "nessa-m3") -> dict[str, float]:
    """:func:`evaluate_headline` from stage 05's ``main_table.csv`` and ``findings.csv`` in ``report_dir``."""
    report_dir = Path(report_dir)
    return evaluate_headline(pd.read_csv(report_dir / "main_table.csv"), pd.read_csv(report_dir / "findings.csv"),
                             ab_pair=ab_pair, ab_method=ab_method)


def ab_pair_of(pairs: dict, model_a: str, model_b: str) -> str | None:
    """The pair whose enrollment model is ``model_a`` and runtime model ``model_b`` (None if there is none).

    >>> ab_pair_of({"x-y": {"enroll_model": "x", "runtime_model": "y"}}, "x", "y")
    'x-y'
    """
    for name, spec in pairs.items():
        spec = spec if isinstance(spec, dict) else vars(spec)
        if spec.get("enroll_model") == model_a and spec.get("runtime_model") == model_b:
            return name
    return None


def write_evaluate_headline(report_dir, *, ab_pair: str | None = None, ab_method: str = "nessa-m3") -> Path:
    """Write ``report_dir/headline.json`` (:func:`evaluate_headline` of the tables written there) and return it."""
    from nessa_lib import io

    path = Path(report_dir) / HEADLINE_FILE
    io.write_json(evaluate_headline_from_reports(report_dir, ab_pair=ab_pair, ab_method=ab_method), path)
    return path


def main(argv=None) -> int:
    """``python -m nessa_lib.evaluation.headline [REPORT_DIR]``: (re)write the headline from the written tables."""
    import argparse

    import yaml  # params.yaml read directly: the evaluation layer does not import the pipeline's

    ap = argparse.ArgumentParser(description=main.__doc__.split("\n")[0])
    ap.add_argument("report_dir", nargs="?", default="reports/evaluate")
    ap.add_argument("--ab-pair", help="pair of the A/B case study (default: from params.yaml's evaluate section)")
    ap.add_argument("--ab-method", default="nessa-m3")
    args = ap.parse_args(argv)
    ab = args.ab_pair
    if ab is None:
        p = yaml.safe_load(Path("params.yaml").read_text())
        ab = ab_pair_of(p["fit_aligners"]["pairs"], p["evaluate"]["ab_model_a"], p["evaluate"]["ab_model_b"])
    print(write_evaluate_headline(args.report_dir, ab_pair=ab, ab_method=args.ab_method))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
