"""Small fit sets (2026-12-07): init random vs ridge (1e-6, 1e-3) on nested subsets of [train] (the ablation's order, seed 0), 3 seeds, dev EER on [align] trials. Run from the repository root: OMP_NUM_THREADS=1 .venv/bin/python docs/runs/schedule-sweep/small_fit_sets.py out.jsonl xvector-ecapa"""
import json, sys, time
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[3]
from nessa_lib import embeddings
from nessa_lib.align import fit_ensemble
from nessa_lib.stages import fit_aligners as stage
from nessa_lib.evaluation.ablation import _nested_order
p = stage.load()
out, pair = sys.argv[1], sys.argv[2]
spec = p.pairs[pair]
fit = embeddings.load_paired_splits(ROOT / "data/extract_embeddings", spec["enroll_model"], spec["runtime_model"], ["train"])
spk = np.asarray(fit.speaker_ids)
order, rows = _nested_order(spk, 0)
for n_spk, n_utt in ((100, 3), (200, 3), (100, None)):
    idx = np.sort(np.concatenate([rows[s] if n_utt is None else rows[s][:n_utt] for s in order[:n_spk]]))
    for method in ("nessa-m2", "nessa-m3", "nessa-m1"):
        for tag, ov in (("random", {}), ("ridge1e-6", dict(init="ridge", init_ridge=1e-6)), ("ridge1e-3", dict(init="ridge", init_ridge=1e-3))):
            if method != "nessa-m3" and tag != "random":
                ov = {**ov, "max_epochs": 20}
            hp = {**p.hparams[method], **ov}
            news = fit_ensemble(method, fit.x[idx], fit.y[idx], spk[idx], seeds=[0, 1, 2], **hp)
            dev = stage.development_table({f"s{i}": a for i, a in enumerate(news)}, ROOT / "data/extract_embeddings", spec["enroll_model"],
                  spec["runtime_model"], dev_split="align", fit_splits=["train"], manifest_path=ROOT / "data/prepare_data/manifest.csv",
                  k_enroll=p.k_enroll, n_nontarget_per_profile=p.n_nontarget_per_profile, seed=p.seed)
            e = (100 * dev.loc[["s0", "s1", "s2"], "eer"]).round(3).tolist()
            rec = dict(pair=pair, n_spk=n_spk, n_utt=n_utt, n_pairs=len(idx), method=method, init=tag, eer=e, mean=round(float(np.mean(e)), 3))
            open(out, "a").write(json.dumps(rec) + "\n"); print(rec, flush=True)
