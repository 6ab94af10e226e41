"""Development sweep behind the aligners' defaults (README, "Choosing defaults"). Never touches evaluation speakers.

Fits each configuration on the paired embeddings of the encoder-training speakers (``train.npz``) and scores it
on trials of the alignment speakers (``align.npz``; profiles of ``--k-enroll`` enrollment-condition utterances,
as in the evaluation lists). Prints and writes one row per (pair, configuration, seed) and a summary of the
share of the symmetric gain recovered, averaged over seeds::

    python tools/choose_defaults.py --jobs 2 --out dev_sweep.csv            # after stage 03 (extract_embeddings)
    python tools/choose_defaults.py --configs default,before --seeds 0 --pairs xvector:ecapa
    python tools/choose_defaults.py --configs default,mse0.03 --set max_epochs=50   # same override for every config

Each fit runs single-threaded, in a worker process of its own unless ``--jobs 1``; ``--jobs`` should not exceed
the cores.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The sweep of 2026-11-26 started from these defaults (hidden width 512, dropout 0.1 for every MLP); each
# configuration below states its values on top of them, so the table in the README stays reproducible after the
# library's defaults moved. Every configuration starts from the method's hyper-parameters in params.yaml
# (`fit_aligners.hparams`, what the pipeline fits with; `--params` picks another file): "default" is exactly those.
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
    "m1": _m("nessa-m1"),
    "m2": _m("nessa-m2"),
    "m1-hidden256": _m("nessa-m1", hidden_dim=256),
    "m2-hidden256": _m("nessa-m2", hidden_dim=256),
}


@functools.lru_cache(maxsize=4)  # a process runs many fits of the same pair: load and build the lists once
def _load(emb_root: Path, manifest: Path, x_model: str, y_model: str, k_enroll: int, n_nontarget: int):
    """Fit pairs (train split), development pairs (align split) and development lists like the evaluation ones.

    Callers must not modify what it returns (it is shared between the fits of a process).
    """
    import pandas as pd

    from nessa_lib import embeddings
    from nessa_lib.data.manifest import enroll_flags
    from nessa_lib.evaluation.ab import alignment_trials

    fit = embeddings.load_paired_splits(emb_root, x_model, y_model, ["train"])
    dev = embeddings.load_paired_splits(emb_root, x_model, y_model, ["align"])
    flags = enroll_flags(pd.read_csv(manifest, dtype={"utt_id": str}), dev.utt_ids)
    enroll, trials = alignment_trials(dev.speaker_ids, dev.utt_ids, k_enroll=k_enroll,
                                      n_nontarget_per_profile=n_nontarget, rng=0, enroll_flag=flags)
    return fit, dev, enroll, trials


def _run(job):
    import torch

    torch.set_num_threads(1)
    from nessa_lib import align
    from nessa_lib.evaluation import tables

    emb_root, manifest, x_model, y_model, name, seed, k_enroll, n_nontarget, common, base = job
    method, overrides = CONFIGS[name]
    overrides = {**base[method], **overrides, **common}
    fit, dev, enroll, trials = _load(Path(emb_root), Path(manifest), x_model, y_model, k_enroll, n_nontarget)
    t0 = time.perf_counter()
    a = align.fit(method, fit.x, fit.y, fit.speaker_ids, seed=seed, **overrides)
    fit_s = time.perf_counter() - t0
    table = tables.evaluate_pair({name: a}, dev.x, dev.y, dev.utt_ids, enroll, trials)
    return {
        "pair": f"{x_model}->{y_model}", "config": name, "seed": seed,
        "eer": float(table.loc[name, "eer"]), "eer_xx": float(table.loc[tables.SYMMETRIC_X, "eer"]),
        "eer_yy": float(table.loc[tables.SYMMETRIC_Y, "eer"]), "gain": float(table.loc[name, "gain_recovered"]),
        "fit_s": round(fit_s, 1), "epochs": len(a.history), "n_fit_pairs": len(fit.utt_ids),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--emb", default=str(ROOT / "data/extract_embeddings"), help="stage-03 output folder")
    ap.add_argument("--manifest", default=str(ROOT / "data/prepare_data/manifest.csv"))
    ap.add_argument("--pairs", default="xvector:ecapa,ecapa:xvector", help="enroll:runtime model pairs")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"names among {list(CONFIGS)}")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--k-enroll", type=int, default=3)
    ap.add_argument("--n-nontarget", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="hyper-parameter applied on top of every configuration (repeatable), e.g. max_epochs=50")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"),
                    help="parameters file whose fit_aligners.hparams every configuration starts from")
    ap.add_argument("--out", default="dev_sweep.csv")
    args = ap.parse_args(argv)
    from nessa_lib.pipeline.params import stage_params

    params_file = Path(args.params).resolve()
    base = stage_params("fit_aligners", path=params_file.name, root=params_file.parent).hparams

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
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",") if p]
    jobs = [(args.emb, args.manifest, x, y, n, int(s), args.k_enroll, args.n_nontarget, common, base)
            for s in args.seeds.split(",") for x, y in pairs for n in names]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = []
    with open(args.out, "w", newline="") as fh, ProcessPoolExecutor(max_workers=args.jobs) as pool:
        writer = None
        # --jobs 1: the fits run here, one after another (no worker process; easier to debug).
        results = map(_run, jobs) if args.jobs == 1 else (f.result() for f in as_completed(
            [pool.submit(_run, j) for j in jobs]))
        for row in results:
            rows.append(row)
            if writer is None:
                writer = csv.DictWriter(fh, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
            fh.flush()
            print(row, flush=True)

    import pandas as pd

    df = pd.DataFrame(rows)
    summary = df.groupby(["pair", "config"]).agg(eer=("eer", "mean"), gain=("gain", "mean"), gain_sd=("gain", "std"),
                                                 fit_s=("fit_s", "mean"), epochs=("epochs", "mean"))
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(summary.round(4).sort_values(["pair", "eer"]))  # by EER: "gain" reads backwards for a downgrade
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
