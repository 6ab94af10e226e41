"""M2's start by fit-set size, every pair (2026-12-07, session 13): random start at 50 epochs (the default then),
the ridge start at 1e-6 and the ridge start whose penalty each member chooses on its own held-out speakers
(1e-6 ... 1e-1, `init_ridge_max`), both at 20 epochs; nested subsets of [train] (the ablation's order, seed 0) and
all of it; 3 seeds; development EER on [align] trials.
Run from the repository root:
OMP_NUM_THREADS=1 .venv/bin/python docs/runs/schedule-sweep/small_fit_m2.py out.jsonl nessa-m2 ecapa-xvector [more pairs]"""
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
out, method = sys.argv[1], sys.argv[2]
epochs = {"nessa-m1": 20, "nessa-m2": 20, "nessa-m3": 60}[method]
CONFIGS = (("random", dict(init="random")),
           ("ridge1e-6", dict(init="ridge", init_ridge=1e-6, init_ridge_max=1e-6, max_epochs=epochs)),
           ("ridge-val", dict(init="ridge", init_ridge=1e-6, init_ridge_max=0.1, max_epochs=epochs)))
for pair in sys.argv[3:]:
    spec = p.pairs[pair]
    fit = embeddings.load_paired_splits(ROOT / "data/extract_embeddings", spec["enroll_model"], spec["runtime_model"], ["train"])
    spk = np.asarray(fit.speaker_ids)
    order, rows = _nested_order(spk, 0)
    for n_spk, n_utt in ((100, 3), (200, 3), (100, None), (None, None)):
        idx = (np.sort(np.concatenate([rows[s] if n_utt is None else rows[s][:n_utt] for s in order[:n_spk]]))
               if n_spk else np.arange(len(spk)))
        for tag, ov in CONFIGS:
            hp = {**p.hparams[method], **ov}
            news = fit_ensemble(method, fit.x[idx], fit.y[idx], spk[idx], seeds=[0, 1, 2], **hp)
            dev = stage.development_table({f"s{i}": a for i, a in enumerate(news)}, ROOT / "data/extract_embeddings", spec["enroll_model"],
                  spec["runtime_model"], dev_split="align", fit_splits=["train"], manifest_path=ROOT / "data/prepare_data/manifest.csv",
                  k_enroll=p.k_enroll, n_nontarget_per_profile=p.n_nontarget_per_profile, seed=p.seed)
            e = (100 * dev.loc[["s0", "s1", "s2"], "eer"]).round(3).tolist()
            rec = dict(pair=pair, n_spk=n_spk or len(np.unique(spk)), n_utt=n_utt, n_pairs=len(idx), method=method, init=tag,
                       eer=e, mean=round(float(np.mean(e)), 3), chosen=[a.fit_init for a in news])
            open(out, "a").write(json.dumps(rec) + "\n"); print(rec, flush=True)
