"""The chain route "M3 at hop 1, then M2 fitted from M3's space" on development data (2026-12-07, session 13): M3 fitted on resemblyzer -> xvector, M2 from its space on xvector -> ecapa, both on [train]; resemblyzer profiles of [align] voices migrated through both, scored against their ecapa tests; 3 seeds, for several M2 starts. Run from the repository root: OMP_NUM_THREADS=1 .venv/bin/python docs/runs/schedule-sweep/chain_from_space.py"""
import sys
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[3]
from nessa_lib import embeddings, align
from nessa_lib import chain as ch
from nessa_lib.stages import fit_aligners as stage
from nessa_lib.data.manifest import enroll_flags, read_manifest
from nessa_lib.evaluation import ab, tables
p = stage.load()
E = ROOT / "data/extract_embeddings"
h1 = embeddings.load_paired_splits(E, "resemblyzer", "xvector", ["train"])
h2 = embeddings.load_paired_splits(E, "xvector", "ecapa", ["train"])
dev = embeddings.load_paired_splits(E, "resemblyzer", "ecapa", ["align"])
enroll, trials = ab.alignment_trials(dev.speaker_ids, dev.utt_ids, k_enroll=p.k_enroll,
                                     n_nontarget_per_profile=p.n_nontarget_per_profile, rng=p.seed,
                                     enroll_flag=enroll_flags(read_manifest(ROOT / "data/prepare_data/manifest.csv"), dev.utt_ids))
seeds = [0, 1, 2]
m3s = align.fit_ensemble("nessa-m3", h1.x, h1.y, h1.speaker_ids, seeds=seeds, enroll_model_id="v1", runtime_model_id="v2", **p.hparams["nessa-m3"])
variants = {
    "default (ridge chosen, 20 ep)": {},
    "random, 50 ep": dict(init="random", max_epochs=50),
    "ridge fixed 1e-2, 20 ep": dict(init_ridge=1e-2, init_ridge_max=1e-2),
    "ridge fixed 1e-1, 20 ep": dict(init_ridge=1e-1, init_ridge_max=1e-1),
}
for name, ov in variants.items():
    hp = {**p.hparams["nessa-m2"], **ov}
    systems = {}
    for m3 in m3s:
        nxt = ch.fit_from_space("nessa-m2", m3, h2.x, h2.y, h2.speaker_ids, runtime_model_id="v3", seed=m3.seed, **hp)
        systems[f"s{m3.seed}"] = ch.make_chain([m3, nxt])
        fi = nxt.fit_init
    t = tables.evaluate_pair(systems, dev.x, dev.y, dev.utt_ids, enroll, trials)
    e = (100 * t.loc[[f"s{s}" for s in seeds], "eer"]).round(2).tolist()
    print(f"{name:32s} dev EER % {e} mean {np.mean(e):.2f}  fit_init(last) {fi}", flush=True)
