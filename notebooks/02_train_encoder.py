# %% [markdown]
# # 02 · Train an encoder
# > Train one speaker encoder with SpeechBrain (a `Brain` subclass, SpeechBrain lobes, Fbank features, losses and
# > `Checkpointer`) on the `train` split, or describe a pretrained one, and export it as safetensors + JSON.
#
# DVC runs this notebook once per entry of `train_encoder.encoders` in `params.yaml` (a `foreach` stage): the
# entry's settings over the shared `train_encoder.recipe`. The study needs models that differ the way real
# upgrades do: architecture, objective, embedding size, training speakers.
# **Outputs**: `models/train_encoder/<name>/` (`encoder.safetensors`, `encoder.json`, SpeechBrain `checkpoints/`)
# and `reports/train_encoder/<name>/` (`metrics.json`, `training.png`).

# %% tags=["parameters"]
name: str = "ecapa"  # which entry of train_encoder.encoders in params.yaml to train
params_file: str = "params.yaml"  # the study's parameters (repo-relative)

# %%
import pandas as pd
import torch

from nessa_lib import io, plots
from nessa_lib.pipeline import layout
from nessa_lib.stages import train_encoder as stage

p = stage.load(params_file)
spec = stage.encoder_spec(p, name)
torch.set_num_threads(p.threads)
out = layout.out_dir("train_encoder", name, write=True)
reports = layout.report_dir("train_encoder", name, write=True)
reports.mkdir(parents=True, exist_ok=True)
spec

# %%
meta, summary = stage.train_or_describe(spec, p.manifest, out, progress=True, device=p.device,
                                        precision=p.precision, shards=p.shards or None)
print(meta["model_id"], {k: v for k, v in summary.items() if k != "model_id"})

# %%
plots.training_report(meta.get("history", []), name, path=reports / "training.png")
pd.DataFrame(meta.get("history", [])).round(4)

# %%
io.write_json(stage.training_metrics(meta, summary), reports / "metrics.json")

# %% [markdown]
# Next: `03_extract_embeddings` embeds the utterances the aligners and the evaluation need with this model.
