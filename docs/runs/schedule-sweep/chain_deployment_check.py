"""The deployment check on the chain fit from M3's space (2026-12-07, session 13): M3 fitted on resemblyzer -> xvector [train], M2 from its space on xvector -> ecapa [train] with the penalty its held-out speakers choose and with a fixed 1e-2, each checked (nessa_lib.deployment.deployment_check) on the inputs it meets: M3's enrollment side applied to resemblyzer embeddings of the [align] voices, paired with their ecapa embeddings. Run from the repository root: OMP_NUM_THREADS=1 .venv/bin/python docs/runs/schedule-sweep/chain_deployment_check.py"""
import numpy as np, torch
torch.set_num_threads(1)
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]
from nessa_lib import embeddings, align, deployment
from nessa_lib import chain as ch
from nessa_lib.stages import fit_aligners as stage
p = stage.load()
E = ROOT / "data/extract_embeddings"
h1 = embeddings.load_paired_splits(E, "resemblyzer", "xvector", ["train"])
h2 = embeddings.load_paired_splits(E, "xvector", "ecapa", ["train"])
dev = embeddings.load_paired_splits(E, "resemblyzer", "ecapa", ["align"])
m3 = align.fit_ensemble("nessa-m3", h1.x, h1.y, h1.speaker_ids, seeds=[0], enroll_model_id="v1", runtime_model_id="v2", **p.hparams["nessa-m3"])[0]
for name, ov in {"chosen 1e-6": {}, "fixed 1e-2": dict(init_ridge=1e-2, init_ridge_max=1e-2)}.items():
    nxt = ch.fit_from_space("nessa-m2", m3, h2.x, h2.y, h2.speaker_ids, runtime_model_id="v3", seed=0, **{**p.hparams["nessa-m2"], **ov})
    r = deployment.deployment_check(nxt, m3.map_enrollment(dev.x), dev.y, dev.speaker_ids, n_rounds=200)
    print(name, "ok" if r.ok else "FLAGGED", r.problems, flush=True)
    print("   ", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in (r.sample or {}).items()} if hasattr(r, 'sample') else '')
