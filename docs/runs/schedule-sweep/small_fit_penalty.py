"""The ridge start's penalty by fit-set size (2026-12-07): M1 (20 epochs) and M3 with init_ridge 1e-5 ... 1e-1 on 300, 1,200
and 7,200 pairs of [train] (the ablation's nested order), 3 seeds, dev EER on [align] trials. Run from the repository
root: OMP_NUM_THREADS=1 .venv/bin/python docs/runs/schedule-sweep/small_fit_penalty.py out.jsonl xvector-ecapa"""
import json, sys
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[3]
from nessa_lib import embeddings
from nessa_lib.align import fit_ensemble
from nessa_lib.stages import fit_aligners as stage
from nessa_lib.evaluation.ablation import _nested_order
p = stage.load()
out = sys.argv[1]
for pair in sys.argv[2].split(","):
    spec = p.pairs[pair]
    fit = embeddings.load_paired_splits(ROOT / "data/extract_embeddings", spec["enroll_model"], spec["runtime_model"], ["train"])
    spk = np.asarray(fit.speaker_ids)
    order, rows = _nested_order(spk, 0)
    for n_spk, n_utt in ((100, 3), (100, None), (600, None)):
        idx = np.sort(np.concatenate([rows[s] if n_utt is None else rows[s][:n_utt] for s in order[:n_spk]]))
        for method in ("nessa-m1", "nessa-m3"):
            for r in (1e-5, 1e-4, 1e-2, 1e-1):
                hp = {**p.hparams[method], "init": "ridge", "init_ridge": r}
                if method == "nessa-m1":
                    hp["max_epochs"] = 20
                news = fit_ensemble(method, fit.x[idx], fit.y[idx], spk[idx], seeds=[0, 1, 2], **hp)
                dev = stage.development_table({f"s{i}": a for i, a in enumerate(news)}, ROOT / "data/extract_embeddings", spec["enroll_model"],
                      spec["runtime_model"], dev_split="align", fit_splits=["train"], manifest_path=ROOT / "data/prepare_data/manifest.csv",
                      k_enroll=p.k_enroll, n_nontarget_per_profile=p.n_nontarget_per_profile, seed=p.seed)
                e = (100 * dev.loc[["s0", "s1", "s2"], "eer"]).round(3).tolist()
                rec = dict(pair=pair, n_pairs=len(idx), method=method, init_ridge=r, eer=e, mean=round(float(np.mean(e)), 3))
                open(out, "a").write(json.dumps(rec) + "\n"); print(rec, flush=True)
