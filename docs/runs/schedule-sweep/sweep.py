"""The M3 schedule sweep of 2026-12-07 (dev_sweep.csv), as it was run: tools/choose_defaults.py's protocol (fit on
the encoder-training voices [train], development EER on trials of the alignment voices [align]; never evaluation
trials) in one process per pair group instead of one queued DVC experiment per seed, and all seeds of a
configuration fitted as one stacked ensemble (members are bit for bit single-seed fits).

Run from the repository root after `dvc repro` (embeddings of the default study), one torch thread:

    OMP_NUM_THREADS=1 .venv/bin/python docs/runs/schedule-sweep/sweep.py out.jsonl \
        xvector-ecapa,ecapa-xvector m3-e80,m3-e60-dropout0.1-lr3e-3 [--seeds 3,4,5]

Configurations are tools/choose_defaults.py's CONFIGS (each sets max_epochs, lr and dropout explicitly, on top of
params.yaml's fit_aligners.hparams.nessa-m3). Times (s per aligner) were measured with two such processes sharing
the 2 cores: compare them within the sweep only.
"""
import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[3]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("pairs")
    ap.add_argument("configs")
    ap.add_argument("--seeds", default="0,1,2")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from nessa_lib import embeddings
    from nessa_lib.align import fit_ensemble
    from nessa_lib.stages import fit_aligners as stage

    spec_ = importlib.util.spec_from_file_location("choose_defaults", ROOT / "tools/choose_defaults.py")
    tool = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(tool)
    p = stage.load()
    seeds = [int(s) for s in a.seeds.split(",")]
    for name in a.configs.split(","):
        method, overrides = tool.CONFIGS[name]
        hp = {**p.hparams[method], **overrides}
        for pair in a.pairs.split(","):
            spec = p.pairs[pair]
            fit = embeddings.load_paired_splits(ROOT / "data/extract_embeddings", spec["enroll_model"],
                                                spec["runtime_model"], ["train"])
            t = time.perf_counter()
            news = fit_ensemble(method, fit.x, fit.y, fit.speaker_ids, seeds=seeds, **hp)
            dt = (time.perf_counter() - t) / len(seeds)
            dev = stage.development_table({f"s{i}": al for i, al in enumerate(news)}, ROOT / "data/extract_embeddings",
                                          spec["enroll_model"], spec["runtime_model"], dev_split="align",
                                          fit_splits=["train"], manifest_path=ROOT / "data/prepare_data/manifest.csv",
                                          k_enroll=p.k_enroll, n_nontarget_per_profile=p.n_nontarget_per_profile,
                                          seed=p.seed)
            eer = (100 * dev.loc[[f"s{i}" for i in range(len(seeds))], "eer"]).round(3).tolist()
            rec = dict(config=name, pair=pair, seeds=seeds, s_per_aligner=round(dt, 3), eer=eer,
                       mean=round(float(np.mean(eer)), 3), epochs=[len(al.history) for al in news])
            with open(a.out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            print(rec, flush=True)


if __name__ == "__main__":
    main()
