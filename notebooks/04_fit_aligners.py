# %% [markdown]
# # 04 · Fit aligners
# > For one (enrollment model X, runtime model Y) pair, fit every alignment method on the paired embeddings (the same
# > utterances through both models) of the splits in `fit_splits` and save each aligner. By default that is the
# > encoder-training speakers' utterances plus the alignment split: the paper's speaker-logit baseline uses the
# > encoders' training speakers as its reference set, and NESSA generalises to new voices only from many voices.
# > No evaluation data is read here.
#
# Settings: the `fit_aligners` section of `params.yaml`, including every method's hyper-parameters (`hparams`).
# The NESSA methods are fitted `seeds` times (seeds `base.seed + seed_offset`, `+1`, ...), the seeds of a method
# as one stacked ensemble (`ensemble`), `workers` fits side by side; stage 05 reports their mean and spread. The closed-form methods are deterministic and fitted once.
# **Outputs**: `models/fit_aligners/<pair>/` (`<method>.safetensors`, `pair.json`) and
# `reports/fit_aligners/<pair>/` (`metrics.json`, training curves).

# %% tags=["parameters"]
pair: str = "xvector-ecapa"  # which entry of fit_aligners.pairs to fit
params_file: str = "params.yaml"  # the study's parameters (repo-relative)

# %%
import torch

from nessa_lib import embeddings, io, plots
from nessa_lib.align import folder
from nessa_lib.evaluation import tables
from nessa_lib.pipeline import layout
from nessa_lib.stages import fit_aligners as stage
from nessa_lib.stages import schema

p = stage.load(params_file)
spec = schema.entry(p.pairs, pair, "fit_aligners.pairs")
torch.set_num_threads(p.threads)
out = layout.out_dir("fit_aligners", pair, write=True)
reports = layout.report_dir("fit_aligners", pair, write=True)
out.mkdir(parents=True, exist_ok=True)
reports.mkdir(parents=True, exist_ok=True)
fit = embeddings.load_paired_splits(layout.out_dir("extract_embeddings"), spec["enroll_model"],
                                    spec["runtime_model"], p.fit_splits)
print(f"{len(fit.utt_ids)} paired utterances of {len(set(fit.speaker_ids))} speakers from {p.fit_splits}: "
      f"X {fit.x.shape[1]}-d, Y {fit.y.shape[1]}-d")

# %%
timings = {}
first = p.seed + p.seed_offset
seeded = tables.fit_seeds(fit.x, fit.y, fit.speaker_ids, methods=p.methods, seeds=range(first, first + p.seeds),
                          hparams=p.hparams, workers=p.workers, progress=True, enroll_model_id=fit.enroll_model_id,
                          runtime_model_id=fit.runtime_model_id, timings=timings, device=p.device,
                          ensemble=p.ensemble)
folder.save_aligners(seeded, out, pair=pair, **spec)
aligners = {m: a[0] for m, a in seeded.items()}  # the first seed: curves and the development check
{m: round(t, 2) for m, t in timings.items()}

# %%
from IPython.display import Image, display

for figure in plots.aligner_training(aligners, pair, reports):
    display(Image(filename=str(figure)))

# %% [markdown]
# ## Development check
# When `dev_split` is not among `fit_splits` (e.g. `dvc exp run -S 'fit_aligners.fit_splits=[train]'`, what
# `tools/choose_defaults.py` queues), every aligner is scored on trials of that split: voices neither the
# aligners nor the evaluation use. With the default fit pool there is nothing left to check on (`None`).

# %%
development = stage.development_table(
    seeded, layout.out_dir("extract_embeddings"), spec["enroll_model"], spec["runtime_model"],
    dev_split=p.dev_split, fit_splits=p.fit_splits, manifest_path=layout.out_dir("prepare_data") / "manifest.csv",
    k_enroll=p.k_enroll, n_nontarget_per_profile=p.n_nontarget_per_profile, seed=p.seed,
)
io.write_json(stage.fit_metrics(timings, development), reports / "metrics.json")
development

# %% [markdown]
# Next: `05_evaluate` scores the evaluation trials with every pair and method and tests the paper's claims.
