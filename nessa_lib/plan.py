"""How many paired voices does a team need? The learning curve of its own paired sample, as a command.

Given a paired, labelled sample (the same utterances embedded by the old model X and the new model Y, with speaker
labels; embedding files as :mod:`nessa_lib.migrate` reads them)::

    python -m nessa_lib.plan SAMPLE_X.npz SAMPLE_Y.npz --out plan/

holds out some voices (150 from 600 voices on, else a quarter), fits the NESSA methods (M2 and M3 by default,
default hyper-parameters) on nested subsets of the other voices (25, 50, 100, ... all), prints the share of the
symmetric gain each keeps on the held-out voices with 95 % speaker-bootstrap intervals, the fitted saturating
curve (:mod:`nessa_lib.evaluation.learning_curve`) and the voices it needs for each target share (or that it does
not reach it), recommends a method, and writes ``learning_curve.png``, ``learning_curve.csv``, ``targets.csv`` and
``index.html`` into ``--out``.

Refused, naming the file: files without speaker labels, files whose utterance ids do not pair up, and samples with
too few voices for a curve (the message says how many it needs).
"""

from __future__ import annotations

import argparse
import html
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nessa_lib import embeddings
from nessa_lib.evaluation import learning_curve as lcm

DEFAULT_METHODS = ("nessa-m2", "nessa-m3")


def read_sample(x_path, y_path):
    """``(x, y, speakers, model_ids)`` of two paired, labelled embedding files, rows matched by utterance id.

    Raises ``ValueError`` naming the file: a file with no (or some missing) speaker labels, files whose utterance
    ids do not pair up or whose labels disagree; ``FileNotFoundError`` for a missing file.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> for name, dim in (("x", 2), ("y", 3)):
    ...     embeddings.save_embeddings(os.path.join(d, f"{name}.npz"), embeddings.EmbeddingSet(
    ...         np.ones((2, dim), "float32"), np.array(["u1", "u2"]), np.array(["", ""]), f"{name}@1"))
    >>> read_sample(os.path.join(d, "x.npz"), os.path.join(d, "y.npz"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../x.npz carries no speaker labels ...
    """
    a, b = embeddings.load_embeddings(x_path), embeddings.load_embeddings(y_path)
    for path, e in ((x_path, a), (y_path, b)):
        empty = e.speaker_ids.astype(str) == ""
        if empty.all():
            raise ValueError(f"{path} carries no speaker labels (its speaker_ids are empty): the learning curve "
                             "needs labelled embeddings (held-out voices, speaker-level bootstrap); write the files "
                             "with speaker_ids")
        if empty.any():
            raise ValueError(f"{path}: {int(empty.sum())} of its {len(empty)} utterances have no speaker label; "
                             "label all of them")
    try:
        x, y, _, spk = embeddings.paired(a, b, names=(str(x_path), str(y_path)))
    except ValueError as exc:
        raise ValueError(f"{x_path} and {y_path} do not pair up: {exc}") from exc
    return x, y, spk, (a.model_id, b.model_id)


def recommend(lc: lcm.LearningCurve) -> tuple[str, str]:
    """``(method, reason)``: the method that keeps the most of the gain with all the sample's voices.

    When its lead over ``nessa-m2`` is within the paired 95 % interval (the same resampled speakers for both),
    ``nessa-m2`` is recommended instead: its runtime side is the new model's plain embeddings (nothing to run at
    query time) and its migrated profiles live in the new model's space, so they chain to the next upgrade
    (:mod:`nessa_lib.chain`), which M3's new space does not.
    """
    t = lc.table
    last = t[t["n_voices"] == t["n_voices"].max()].set_index("method")["share"]
    best = str(last.idxmax())
    n = int(t["n_voices"].max())
    reason = f"it keeps the most of the gain with all {n:,} fit voices ({100 * last[best]:.1f} %)"
    if best != "nessa-m2" and "nessa-m2" in last.index:
        from nessa_lib.evaluation.bootstrap import interval

        lo, hi = interval(lc.rounds[best][:, -1] - lc.rounds["nessa-m2"][:, -1])
        if lo <= 0:
            return "nessa-m2", (f"{best} keeps {100 * (last[best] - last['nessa-m2']):.1f} points more at {n:,} "
                                f"voices, within the paired 95 % interval ({100 * lo:+.1f} to {100 * hi:+.1f}); "
                                "nessa-m2 leaves the runtime model's embeddings as they are and its migrated "
                                "profiles chain to the next upgrade")
        reason += f", {100 * lo:.1f} to {100 * hi:.1f} points more than nessa-m2 (paired 95 % interval)"
    return best, reason


def _pct(v) -> str:
    return "n/a" if not np.isfinite(v) else f"{100 * v:.1f}"


def _voices(v) -> str:
    return "never" if math.isinf(v) else f"{v:,.0f}"


def report_lines(lc: lcm.LearningCurve, choice: tuple[str, str]) -> list[str]:
    """The printed report: baselines, one table per method, the curves, the voices needed, the recommendation."""
    b = lc.baselines
    out = [f"held-out voices: {lc.n_eval_voices}, fit voices: {lc.n_fit_voices}",
           f"EER X/X (keep the old model) {_pct(b['eer_xx'])} % [{_pct(b['eer_xx_lo'])}-{_pct(b['eer_xx_hi'])}], "
           f"Y/Y (re-enroll with the new one) {_pct(b['eer_yy'])} % [{_pct(b['eer_yy_lo'])}-{_pct(b['eer_yy_hi'])}]"]
    for method, part in lc.table.groupby("method", sort=False):
        c = lc.curves[method]
        out.append("")
        out.append(f"{method}: share of the gain recovered (95 % speaker-bootstrap interval), fitted curve "
                   f"share(n) = {c.a:.3f} - {c.b:.3g} n^-{c.c:.3f}")
        out.append(f"  {'voices':>7} {'pairs':>7} {'EER %':>17} {'share %':>21} {'curve %':>8}")
        for _, r in part.iterrows():
            out.append(f"  {r.n_voices:>7,} {r.n_pairs:>7,} {_pct(r.eer):>6} [{_pct(r.eer_lo)}-{_pct(r.eer_hi)}]"
                       f"{'':>1} {_pct(r.share):>7} [{_pct(r.share_lo)}, {_pct(r.share_hi)}] {_pct(r.curve):>8}")
    out.append("")
    for _, r in lc.targets.iterrows():
        out.append(r.statement)
    out.append("")
    out.append(f"recommended: {choice[0]}: {choice[1]}")
    return out


def plot(lc: lcm.LearningCurve, path, targets=(0.6, 0.8)) -> None:
    """The measured shares with their intervals, each method's fitted curve and bootstrap band, the targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nessa_lib.plots import learning_curve_axes

    t = lc.table
    n_max = float(t["n_voices"].max())
    reach = [v for v in lc.targets["voices"] if np.isfinite(v)]
    right = min(16 * n_max, max([2 * n_max] + [1.2 * v for v in reach]))
    series = [dict(label=method, n=part["n_voices"].to_numpy(float), share=part["share"].to_numpy(float),
                   lo=part["share_lo"].to_numpy(float), hi=part["share_hi"].to_numpy(float), curve=lc.curves[method],
                   round_curves=lc.round_curves[method]) for method, part in t.groupby("method", sort=False)]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    learning_curve_axes(ax, series, targets, n_right=right)
    ax.set_title("Learning curve of the paired data")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_html(path, lc: lcm.LearningCurve, lines, choice, inputs, command: str) -> None:
    """A small self-contained page: the recommendation, the statements, the plot, the tables, the inputs."""
    from nessa_lib.encoders.hub import file_sha256

    show = lc.table.copy()
    for col in ("eer", "eer_lo", "eer_hi", "share", "share_lo", "share_hi", "curve"):
        show[col] = (100 * show[col]).round(1)
    show = show.rename(columns={c: c + " (%)" for c in ("eer", "eer_lo", "eer_hi", "share", "share_lo",
                                                        "share_hi", "curve")})
    show["fit_s"] = show["fit_s"].round(1)
    rows = "".join(f"<li>{html.escape(s)}</li>" for s in lc.targets["statement"])
    files = "".join(f"<li><code>{html.escape(str(p))}</code> (model {html.escape(m)}, sha256 "
                    f"{file_sha256(p)[:12]}...)</li>" for p, m in inputs)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>NESSA plan: paired voices needed</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}</style></head><body>
<h1>How many paired voices?</h1>
<p><b>Recommended: {html.escape(choice[0])}</b>: {html.escape(choice[1])}.</p>
<ul>{rows}</ul>
<img src="learning_curve.png" alt="learning curve" style="max-width:100%">
<h2>Measured shares</h2>
<p>Share of the symmetric gain recovered: (EER X/X - EER aligned) / (EER X/X - EER Y/Y) on
{lc.n_eval_voices} held-out voices, with 95 % speaker-bootstrap intervals.</p>
{show.to_html(index=False)}
<h2>Report</h2><pre>{html.escape(chr(10).join(lines))}</pre>
<h2>Inputs</h2><ul>{files}</ul><p>Command: <code>{html.escape(command)}</code></p>
</body></html>
"""
    Path(path).write_text(page, encoding="utf-8")


def main(argv=None) -> int:
    """Command line: ``python -m nessa_lib.plan SAMPLE_X SAMPLE_Y [--out DIR] [--methods ...]`` (see the module)."""
    ap = argparse.ArgumentParser(prog="python -m nessa_lib.plan", description=__doc__.split("\n")[0])
    ap.add_argument("sample_x", help="embedding file (.npz) of the sample by the old model X, with speaker labels")
    ap.add_argument("sample_y", help="the same utterances by the new model Y (.npz), with speaker labels")
    ap.add_argument("--out", default="plan", help="folder for the plot, the tables and index.html (default: plan)")
    ap.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                    help="alignment methods to fit (default: nessa-m2 nessa-m3)")
    ap.add_argument("--targets", nargs="+", type=float, default=[0.6, 0.8],
                    help="shares of the gain to find the voices for, as fractions (default: 0.6 0.8)")
    ap.add_argument("--eval-voices", type=int, default=None,
                    help="voices held out to score on (default: 150 from 600 voices on, else a quarter)")
    ap.add_argument("--start", type=int, default=25, help="smallest fit size in voices, doubled up to all (25)")
    ap.add_argument("--utts-per-voice", type=int, default=None,
                    help="fit on only this many utterances per voice (default: all)")
    ap.add_argument("--rounds", type=int, default=500, help="speaker-bootstrap rounds (default 500)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split, the subsets, the fits, the bootstrap")
    ap.add_argument("--workers", type=int, default=1, help="processes for the fits (default 1)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    where = f"{args.sample_x}, {args.sample_y}"
    try:
        from nessa_lib.align.hparams import METHODS

        unknown = [m for m in args.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
        if any(not 0 < t < 1.5 for t in args.targets):
            raise ValueError(f"--targets are fractions of the gain (0.8 means 80 %), got {args.targets}")
        x, y, spk, mids = read_sample(args.sample_x, args.sample_y)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"sample: {len(spk):,} paired utterances of {len(np.unique(spk)):,} voices ({mids[0]} -> {mids[1]})")
    t0 = time.perf_counter()
    try:
        lc = lcm.learning_curve(x, y, spk, methods=args.methods, n_eval=args.eval_voices, start=args.start,
                                utts_per_speaker=args.utts_per_voice, targets=args.targets, n_rounds=args.rounds,
                                seed=args.seed, workers=args.workers, progress=True)
    except ValueError as exc:
        print(f"error: {where}: {exc}", file=sys.stderr)
        return 1
    choice = recommend(lc)
    lines = report_lines(lc, choice)
    print("\n".join(lines))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lc.table.to_csv(out / "learning_curve.csv", index=False)
    lc.targets.to_csv(out / "targets.csv", index=False)
    plot(lc, out / "learning_curve.png", args.targets)
    command = "python -m nessa_lib.plan " + " ".join(sys.argv[1:] if argv is None else [str(a) for a in argv])
    write_html(out / "index.html", lc, lines, choice,
               [(args.sample_x, mids[0]), (args.sample_y, mids[1])], command)
    print(f"wrote {out / 'index.html'}, {out / 'learning_curve.png'} and the tables "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
