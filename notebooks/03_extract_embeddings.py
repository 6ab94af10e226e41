# %% [markdown]
# # 03 · Extract embeddings
# > Embed the utterances of each split in `splits` with one encoder (for the training split, the first
# > `train_utts_per_speaker` of each speaker: extra alignment pairs), into pickle-free files that carry the model's
# > fingerprint, and score the evaluation trials symmetrically (profiles and tests from this model).
#
# Settings: the `extract_embeddings` section of `params.yaml`. **Outputs**: `data/extract_embeddings/<name>/`
# (`<split>.npz`, and `eval+<check_condition>.npz`: a held-out recording condition) and
# `reports/extract_embeddings/<name>/` (`metrics.json`, `scores.png`).

# %% tags=["parameters"]
name: str = "ecapa"  # which model of extract_embeddings.models to run
params_file: str = "params.yaml"  # the study's parameters (repo-relative)

# %%
import torch

from nessa_lib import io, plots
from nessa_lib.data import lists, manifest
from nessa_lib.encoders import extract, pretrained
from nessa_lib.evaluation.lists import evaluate_lists, score_lists
from nessa_lib.pipeline import layout
from nessa_lib.stages import extract_embeddings as stage
from nessa_lib.stages import schema

p = stage.load(params_file)
schema.entry(p.models, name, "extract_embeddings.models")
torch.set_num_threads(p.threads)
processes = p.processes_for(name)  # > 1: one-thread processes sharing the batches
data = layout.out_dir("prepare_data")
out = layout.out_dir("extract_embeddings", name, write=True)
reports = layout.report_dir("extract_embeddings", name, write=True)
out.mkdir(parents=True, exist_ok=True)
reports.mkdir(parents=True, exist_ok=True)
df = manifest.read_manifest(data / "manifest.csv")
enroll, trials = lists.read_lists(data, manifest=df)
encoder = pretrained.load(layout.out_dir("train_encoder", name))
print(name, encoder.model_id, "dim", encoder.emb_dim)

# %%
skipped = []  # utterances that fail (a file, or the encoder on it) are skipped and listed in skipped.csv
sets = stage.extract_splits(df, encoder, p.splits, out, train_utts_per_speaker=p.train_utts_per_speaker,
                            mode=p.mode, crop_s=p.crop_s, batch_size=p.batch_size, desc=name, skipped=skipped,
                            workers=p.workers, device=p.device, precision=p.precision, processes=processes)
{split: s.embeddings.shape for split, s in sets.items()}

# %% [markdown]
# A held-out recording condition for stage 05's deployment check: the first `check_utts_per_speaker` evaluation
# utterances of each speaker degraded with the `check_condition` augmentation preset (the same degraded audio for
# every model).

# %%
if p.check_condition:
    shifted = stage.extract_condition(df, encoder, out / f"eval+{p.check_condition}.npz",
                                      condition=p.check_condition, utts_per_speaker=p.check_utts_per_speaker,
                                      seed=p.seed, batch_size=p.batch_size, desc=name, skipped=skipped,
                                      workers=p.workers, device=p.device, precision=p.precision,
                                      processes=processes)
    print(f"eval+{p.check_condition}: {shifted.embeddings.shape}")
extract.write_skipped_utterances(skipped, out / "skipped.csv")
print(f"{len(skipped)} utterance(s) skipped")

# %% [markdown]
# ## Symmetric verification on the evaluation trials

# %%
ev = sets["eval"]
scores = score_lists(ev.embeddings, ev.embeddings, ev.utt_ids, enroll, trials)
result = evaluate_lists(ev.embeddings, ev.embeddings, ev.utt_ids, enroll, trials)
rtf = extract.real_time_factor(encoder, seconds=3.0, repeats=3)
plots.score_distributions(scores, trials.label, title=f"{name}: symmetric scores", path=reports / "scores.png")
io.write_json({**result, "rtf": rtf}, reports / "metrics.json")
{k: round(v, 4) for k, v in {**result, "rtf": rtf}.items()}

# %% [markdown]
# Next: `04_fit_aligners` fits every alignment method on the paired embeddings of two models.
