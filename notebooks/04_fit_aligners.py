# %% [markdown]
# # 04 · Fit aligners
# > Fit one alignment method on every (enrollment model X, runtime model Y) pair, on the paired embeddings (the
# > same utterances through both models) of the splits in `fit_splits`, and save its aligners. By default that is
# > the encoder-training speakers' utterances plus the alignment split: the paper's speaker-logit baseline uses the
# > encoders' training speakers as its reference set, and NESSA generalises to new voices only from many voices.
# > No evaluation data is read here.
#
# The stage runs once per method (`fit_aligners@<method>`, one entry of `fit_aligners.methods`), and each run
# declares only its own method's hyper-parameters (`fit_aligners.hparams.<method>`) to DVC: an experiment such
# as `dvc exp run -S 'fit_aligners.hparams.nessa-m3.hidden_dim=256'` re-fits M3 (every pair and seed) and leaves
# the other methods' aligners as they are. The NESSA methods are fitted `seeds` times (seeds
# `base.seed + seed_offset`, `+1`, ...), a pair's seeds as one stacked ensemble (`ensemble`), the pairs' fits
# `workers` side by side; stage 05 reports their mean and spread. The closed-form methods are deterministic,
# fitted once per pair in a few seconds. Regrouping the fits by method changes no aligner: each is seeded by
# its method and seed alone.
# **Outputs**: `models/fit_aligners/<method>/` (`<pair>.safetensors` for the first seed,
# `<pair>.seed<k>.safetensors`, `method.json`) and `reports/fit_aligners/<method>/` (`metrics.json`: fit
# times and development checks per pair; training curves).

# %% tags=["parameters"]
method: str = "nessa-m3"  # which entry of fit_aligners.methods to fit (on every pair)
params_file: str = "params.yaml"  # the study's parameters (repo-relative)

# %%
import torch

from nessa_lib import io, plots
from nessa_lib.align import folder
from nessa_lib.pipeline import layout
from nessa_lib.stages import fit_aligners as stage
from nessa_lib.stages import schema

p = stage.load(params_file)
schema.entry(p.methods, method, "fit_aligners.methods")
torch.set_num_threads(p.threads)
out = layout.out_dir("fit_aligners", method, write=True)
reports = layout.report_dir("fit_aligners", method, write=True)
out.mkdir(parents=True, exist_ok=True)
reports.mkdir(parents=True, exist_ok=True)
pools = stage.load_pools(layout.out_dir("extract_embeddings"), p.pairs, p.fit_splits)
print(f"{method} on {len(pools)} pairs, paired utterances of {p.fit_splits}:")
stage.describe_pools(pools)

# %%
timings = {}
first = p.seed + p.seed_offset
seeded = stage.fit_method(method, pools, seeds=range(first, first + p.seeds), hparams=p.hparams[method],
                          workers=p.workers, device=p.device, ensemble=p.ensemble, progress=True, timings=timings)
folder.save_method(seeded, out, method=method, pairs=p.pairs)
print(f"pairs skipped: {[pair for pair in p.pairs if pair not in seeded]}")  # identity between different dimensions
{pair: round(t, 2) for pair, t in timings.items()}

# %%
from IPython.display import Image, display

for figure in plots.aligner_training({pair: a[0] for pair, a in seeded.items()}, method, reports):
    display(Image(filename=str(figure)))

# %% [markdown]
# ## Development check
# When `dev_split` is not among `fit_splits` (e.g. `dvc exp run -S 'fit_aligners.fit_splits=[train]'`, what
# `tools/choose_defaults.py` queues), every pair's aligners are scored on trials of that split: voices neither
# the aligners nor the evaluation use. With the default fit pool there is nothing left to check on (`None`).

# %%
development = stage.development_tables(
    method, seeded, p.pairs, layout.out_dir("extract_embeddings"), dev_split=p.dev_split, fit_splits=p.fit_splits,
    manifest_path=layout.out_dir("prepare_data") / "manifest.csv", k_enroll=p.k_enroll,
    n_nontarget_per_profile=p.n_nontarget_per_profile, seed=p.seed,
)
io.write_json(stage.fit_metrics(timings, development), reports / "metrics.json")
{pair: t for pair, t in development.items() if t is not None}

# %% [markdown]
# Next: `05_evaluate` scores the evaluation trials with every pair and method and tests the paper's claims.
