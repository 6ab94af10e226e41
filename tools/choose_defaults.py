"""Development sweep behind the aligners' defaults (README, "Choosing defaults"): a queued DVC experiment sweep.

Every configuration is one `dvc exp run --queue` of its method's `fit_aligners@<method>` stage (which fits every
pair of `fit_aligners.pairs`; the pairs not chosen are removed with `-S '~fit_aligners.pairs.<pair>'`), with
`fit_aligners.fit_splits=[train]` (the encoder-training speakers only) and the configuration's hyper-parameters
set on top of params.yaml's `fit_aligners.hparams` (``-S``); stage 04 then scores each aligner on trials of the
alignment speakers (`fit_aligners.dev_split`), never on evaluation trials, into its metrics.json
(`dev:<pair>:<system>:<metric>` keys).
Seeds are `fit_aligners.seed_offset`. The encoders and embeddings come from DVC's cache, so each experiment only
fits::

    python tools/choose_defaults.py queue --configs default,hidden128 --seeds 0,1 --start --jobs 1
    python tools/choose_defaults.py collect --out dev_sweep.csv      # after `dvc queue status` shows them done
    python tools/choose_defaults.py queue --configs default --set max_epochs=50   # same override for every config

`collect` reads `dvc exp show --json` and, since stage 04's metrics.json is a committed out rather than a DVC
metric (dvc.yaml lists only the headline files as metrics), that file from each experiment's commit: one row per (pair, configuration, seed) and a summary of the share of the
symmetric gain recovered, averaged over seeds. `dvc exp show` and `dvc exp diff` show the same experiments.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "dev"  # experiment names: dev-<config>-s<seed>

# The sweep of 2026-11-26 started from these values (hidden width 512, dropout 0.1 for every MLP); each
# configuration below states its values on top of them, so the table in the README stays reproducible after the
# defaults moved. Every configuration starts from the method's hyper-parameters in params.yaml
# (`fit_aligners.hparams`, what the pipeline fits with): "default" is exactly those.
BEFORE = {"hidden_dim": 512, "dropout": 0.1}


def _m(method, **overrides):
    return method, {**BEFORE, **overrides}


CONFIGS = {
    "default": ("nessa-m3", {}),
    "before": _m("nessa-m3"),
    "mse0.03": _m("nessa-m3", w_mse_enroll=0.03, w_mse_runtime=0.03),
    "mse0.3": _m("nessa-m3", w_mse_enroll=0.3, w_mse_runtime=0.3),
    "ref-runtime": _m("nessa-m3", reference="runtime"),
    "utt6": _m("nessa-m3", utts_per_speaker=6),
    "utt8": _m("nessa-m3", utts_per_speaker=8),
    "spk128": _m("nessa-m3", speakers_per_batch=128),
    "spk32": _m("nessa-m3", speakers_per_batch=32),
    "temp0.07": _m("nessa-m3", temperature=0.07),
    "temp0.15": _m("nessa-m3", temperature=0.15),
    "hidden256": _m("nessa-m3", hidden_dim=256),
    "hidden1024": _m("nessa-m3", hidden_dim=1024),
    "depth1": _m("nessa-m3", n_hidden=1),
    "depth3": _m("nessa-m3", n_hidden=3),
    "dropout0": _m("nessa-m3", dropout=0.0),
    "dropout0.2": _m("nessa-m3", dropout=0.2),
    "lr2e-3": _m("nessa-m3", lr=2e-3),
    "lr5e-4": _m("nessa-m3", lr=5e-4),
    "wd1e-2": _m("nessa-m3", weight_decay=1e-2),
    "patience8": _m("nessa-m3", patience=8),
    "hidden256-lr2e-3": _m("nessa-m3", hidden_dim=256, lr=2e-3),
    "utt6-spk128": _m("nessa-m3", utts_per_speaker=6, speakers_per_batch=128),
    "mse0.03-utt6": _m("nessa-m3", w_mse_enroll=0.03, w_mse_runtime=0.03, utts_per_speaker=6),
    "mse0.03-spk128": _m("nessa-m3", w_mse_enroll=0.03, w_mse_runtime=0.03, speakers_per_batch=128),
    "hidden256-mse0.03": _m("nessa-m3", hidden_dim=256, w_mse_enroll=0.03, w_mse_runtime=0.03),
    "hidden128": _m("nessa-m3", hidden_dim=128),
    "hidden256-dropout0.2": _m("nessa-m3", hidden_dim=256, dropout=0.2),
    # M3's schedule (2026-12-07), on top of the defaults of 2026-12-06 (width 128, cosine schedule): 80 epochs at
    # 2e-3 with dropout 0.2 was the default; the sweep below chose 60 epochs at 3e-3 with dropout 0.1.
    "m3-e80": ("nessa-m3", dict(max_epochs=80, lr=2e-3, dropout=0.2)),
    "m3-e60": ("nessa-m3", dict(max_epochs=60, lr=2e-3, dropout=0.2)),
    "m3-e60-lr3e-3": ("nessa-m3", dict(max_epochs=60, lr=3e-3, dropout=0.2)),
    "m3-e60-lr4e-3": ("nessa-m3", dict(max_epochs=60, lr=4e-3, dropout=0.2)),
    "m3-e50-lr4e-3": ("nessa-m3", dict(max_epochs=50, lr=4e-3, dropout=0.2)),
    "m3-e80-dropout0.1": ("nessa-m3", dict(max_epochs=80, lr=2e-3, dropout=0.1)),
    "m3-e60-dropout0.1": ("nessa-m3", dict(max_epochs=60, lr=2e-3, dropout=0.1)),
    "m3-e60-dropout0.1-lr3e-3": ("nessa-m3", dict(max_epochs=60, lr=3e-3, dropout=0.1)),
    "m3-e50-dropout0.1": ("nessa-m3", dict(max_epochs=50, lr=2e-3, dropout=0.1)),
    "m3-e40-dropout0.1": ("nessa-m3", dict(max_epochs=40, lr=2e-3, dropout=0.1)),
    "m3-e60-dropout0": ("nessa-m3", dict(max_epochs=60, lr=2e-3, dropout=0.0)),
    "m3-e50-dropout0": ("nessa-m3", dict(max_epochs=50, lr=2e-3, dropout=0.0)),
    "m3-e80-2utt-spk64": ("nessa-m3", dict(max_epochs=80, lr=2e-3, dropout=0.2, utts_per_speaker=2)),
    "m3-e80-2utt-spk128": ("nessa-m3", dict(max_epochs=80, lr=2e-3, dropout=0.2, utts_per_speaker=2,
                                            speakers_per_batch=128)),
    # M1/M2's epoch budget (2026-12-07), on top of the defaults of 2026-12-06 (width 128, cosine, 50 epochs at 2e-3,
    # random start).
    **{f"{m}-{tag}": (f"nessa-{m}", dict(max_epochs=e, lr=lr, dropout=d, batch_size=b, init="random"))
       for m in ("m1", "m2")
       for tag, e, lr, d, b in (("e50", 50, 2e-3, 0.1, 256), ("e40", 40, 2e-3, 0.1, 256),
                                ("e40-lr3e-3", 40, 3e-3, 0.1, 256), ("e35-lr3e-3", 35, 3e-3, 0.1, 256),
                                ("e30-lr4e-3", 30, 4e-3, 0.1, 256), ("e40-dropout0", 40, 2e-3, 0.0, 256),
                                ("e50-batch512-lr3e-3", 50, 3e-3, 0.1, 512))},
    # The skip path started at the ridge least-squares map (`init: ridge`, 2026-12-07), on top of the defaults of
    # that day (M1 40 epochs, M2 50, M3 60 at 3e-3 with dropout 0.1), for three fixed ridge strengths ...
    **{f"{m}-ridge{r}-e{e}": (f"nessa-{m}", dict(init="ridge", init_ridge=float(r), init_ridge_max=float(r),
                                                 max_epochs=e))
       for r in ("1e-3", "1e-4", "1e-6")
       for m, budgets in (("m1", (20, 30, 40)), ("m2", (20, 30, 50)), ("m3", (40, 60))) for e in budgets},
    # ... and with the penalty each member chooses on its held-out speakers (1e-6 ... 0.1); M2's is the default
    # since 2026-12-07 (session 13; docs/runs/schedule-sweep/small_fit_m2.py ran the same on small fit sets).
    **{f"{m}-ridgeval-e{e}": (f"nessa-{m}", dict(init="ridge", init_ridge=1e-6, init_ridge_max=0.1, max_epochs=e))
       for m, e in (("m1", 20), ("m2", 20), ("m3", 60))},
    "m1": _m("nessa-m1"),
    "m2": _m("nessa-m2", init="random", max_epochs=50),  # M2's start and budget until 2026-12-07
    "m1-hidden256": _m("nessa-m1", hidden_dim=256),
    "m2-hidden256": _m("nessa-m2", hidden_dim=256, init="random", max_epochs=50),
}


def experiment_args(config: str, seed: int, pairs, common: dict | None = None, prefix: str = PREFIX,
                    all_pairs=()) -> list[str]:
    """The ``dvc exp run --queue`` arguments of one configuration and seed: its method's stage 04, on ``pairs``
    (the entries of ``all_pairs``, params.yaml's ``fit_aligners.pairs``, not in ``pairs`` are removed).

    >>> experiment_args("hidden128", 1, ["x-y"], all_pairs=["x-y", "y-x"])[:6]
    ['exp', 'run', '--queue', '-n', 'dev-hidden128-s1', 'fit_aligners@nessa-m3']
    >>> experiment_args("hidden128", 1, ["x-y"], all_pairs=["x-y", "y-x"])[-2:]
    ['-S', '~fit_aligners.pairs.y-x']
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; valid: {list(CONFIGS)}")
    method, overrides = CONFIGS[config]
    # One seed per experiment (the sweep's seeds are experiments, so dvc exp show lists each one).
    unknown = [p for p in pairs if all_pairs and p not in all_pairs]
    if unknown:
        raise ValueError(f"pairs {unknown} are not entries of fit_aligners.pairs {list(all_pairs)}")
    sets = {"fit_aligners.fit_splits": "[train]", "fit_aligners.seed_offset": str(int(seed)),
            "fit_aligners.seeds": "1"}
    sets.update({f"fit_aligners.hparams.{method}.{k}": json.dumps(v)
                 for k, v in {**overrides, **(common or {})}.items()})
    args = ["exp", "run", "--queue", "-n", f"{prefix}-{config}-s{int(seed)}", f"fit_aligners@{method}"]
    for key, value in sets.items():
        args += ["-S", f"{key}={value}"]
    for pair in all_pairs:  # Hydra's deletion: the method's stage fits the pairs left
        if pair not in pairs:
            args += ["-S", f"~fit_aligners.pairs.{pair}"]
    return args


def rows_from_show(show: list, prefix: str = PREFIX) -> list[dict]:
    """One row per (pair, configuration, seed) from ``dvc exp show --json``: the development EERs of stage 04
    (``reports/fit_aligners/<method>/metrics.json``, ``dev:<pair>:<system>:<metric>`` keys).

    Experiments not named ``<prefix>-<config>-s<seed>``, failed ones and pairs without ``dev:`` metrics are skipped.
    """
    rows = []
    for baseline in show:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs", []):
                name = rev.get("name") or ""
                if not name.startswith(prefix + "-") or rev.get("error") or not rev.get("data"):
                    continue
                config, _, seed = name[len(prefix) + 1:].rpartition("-s")
                if config not in CONFIGS:
                    continue
                method = CONFIGS[config][0]
                for path, metrics in rev["data"].get("metrics", {}).items():
                    parts = Path(path).parts
                    m = metrics.get("data") or {}
                    if len(parts) < 3 or parts[1] != "fit_aligners" or parts[2] != method:
                        continue
                    pairs = [k.split(":")[1] for k in m if k.startswith("dev:") and k.endswith(f":{method}:eer")]
                    rows += [{"pair": pair, "config": config, "seed": int(seed), "eer": m[f"dev:{pair}:{method}:eer"],
                              "eer_xx": m[f"dev:{pair}:XX:eer"], "eer_yy": m[f"dev:{pair}:YY:eer"],
                              "gain": m[f"dev:{pair}:{method}:gain_recovered"], "fit_s": m.get(f"fit_s:{pair}")}
                             for pair in pairs]
    return rows


def add_committed_metrics(show: list, read, prefix: str = PREFIX) -> list:
    """Put stage 04's ``reports/fit_aligners/<method>/metrics.json`` of each ``<prefix>-...`` experiment into its
    ``data.metrics``, as `dvc exp show --json` would if they were declared metrics.

    ``read(rev)`` returns ``{path: metrics}`` for the files committed in the experiment's commit ``rev``.
    """
    for baseline in show:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs", []):
                if not (rev.get("name") or "").startswith(prefix + "-") or rev.get("error") or not rev.get("data"):
                    continue
                metrics = rev["data"].setdefault("metrics", {})
                for path, data in read(rev["rev"]).items():
                    metrics.setdefault(path, {"data": data})
    return show


def _git_metrics(rev: str) -> dict:
    """Stage 04's metrics.json files committed in ``rev`` (an experiment's commit)."""
    ls = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "reports/fit_aligners"], cwd=ROOT,
                        text=True, capture_output=True)
    out = {}
    for path in ls.stdout.split():
        if path.endswith("/metrics.json"):
            shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, text=True, capture_output=True)
            if shown.returncode == 0:
                out[path] = json.loads(shown.stdout)
    return out


def _dvc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=ROOT, text=True, capture_output=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    q = sub.add_parser("queue", help="queue one experiment per configuration and seed")
    q.add_argument("--pairs", default="xvector-ecapa,ecapa-xvector", help="entries of fit_aligners.pairs")
    q.add_argument("--configs", default="default", help=f"names among {list(CONFIGS)}")
    q.add_argument("--seeds", default="0,1", help="values of fit_aligners.seed_offset")
    q.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="hyper-parameter applied on top of every configuration (repeatable), e.g. max_epochs=50")
    q.add_argument("--start", action="store_true", help="then start the queue (dvc queue start)")
    q.add_argument("--jobs", type=int, default=1, help="queue workers with --start (each fit is single-threaded "
                                                         "only if fit_aligners.threads is 1)")
    c = sub.add_parser("collect", help="rows and a summary from dvc exp show")
    c.add_argument("--out", default="dev_sweep.csv")
    for p in (q, c):
        p.add_argument("--prefix", default=PREFIX, help="experiment name prefix")
    args = ap.parse_args(argv)

    if args.command == "queue":
        common = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep or not key:
                ap.error(f"--set expects NAME=VALUE, got {item!r}")
            try:
                common[key] = json.loads(value)
            except json.JSONDecodeError:
                common[key] = value  # a bare string such as reference=runtime
        names = [c for c in args.configs.split(",") if c]
        unknown = sorted(set(names) - set(CONFIGS))
        if unknown:
            ap.error(f"unknown configs {unknown}; valid: {list(CONFIGS)}")
        pairs = [p for p in args.pairs.split(",") if p]
        import yaml

        all_pairs = list(yaml.safe_load((ROOT / "params.yaml").read_text())["fit_aligners"]["pairs"])
        unknown = sorted(set(pairs) - set(all_pairs))
        if unknown:
            ap.error(f"unknown pairs {unknown}; params.yaml's fit_aligners.pairs: {all_pairs}")
        for seed in (int(s) for s in args.seeds.split(",") if s):
            for name in names:
                res = _dvc(*experiment_args(name, seed, pairs, common, args.prefix, all_pairs=all_pairs))
                print(res.stdout.strip() or res.stderr.strip())
                if res.returncode:
                    return res.returncode
        if args.start:
            # Not captured: the queue's worker keeps the output pipes of `dvc queue start` open while it runs.
            return subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "-j", str(args.jobs)],
                                  cwd=ROOT, stdout=subprocess.DEVNULL).returncode
        return 0

    res = _dvc("exp", "show", "--json")
    if res.returncode:
        print(res.stderr, file=sys.stderr)
        return res.returncode
    rows = rows_from_show(add_committed_metrics(json.loads(res.stdout), _git_metrics, args.prefix), args.prefix)
    if not rows:
        print(f"no finished experiments named {args.prefix}-<config>-s<seed> with development metrics")
        return 1
    import pandas as pd

    df = pd.DataFrame(rows)
    df.to_csv(args.out, index=False)
    summary = df.groupby(["pair", "config"]).agg(eer=("eer", "mean"), gain=("gain", "mean"), gain_sd=("gain", "std"),
                                                 fit_s=("fit_s", "mean"), seeds=("seed", "count"))
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(summary.round(4).sort_values(["pair", "eer"]))  # by EER: "gain" reads backwards for a downgrade
    return 0


if __name__ == "__main__":
    sys.exit(main())
