# %% [markdown]
# # 01 · Prepare data
# > Build the embedded synthetic corpus (or read VoxCeleb / a folder dataset), split speakers into encoder-training,
# > alignment and evaluation sets, write the manifest and the enrollment and trial lists, and report how hard the
# > corpus is for two reference systems.
#
# Run by `dvc repro` (`python -m nessa_lib.pipeline.run prepare_data`). Every setting comes from the
# `prepare_data` section of `params.yaml`; the `parameters` cell below only names that file.
# **Outputs**: `data/prepare_data/` (`manifest.csv`, `enroll.txt`, `trials.txt`, `skipped.csv`, `corpus/`) and
# `reports/prepare_data/` (`metrics.json`, `figures/`).

# %% tags=["parameters"]
params_file: str = "params.yaml"  # the study's parameters (repo-relative); this stage reads prepare_data

# %%
import logging

import numpy as np
from IPython.display import Audio, display

from nessa_lib import io, plots
from nessa_lib.data import lists, sources
from nessa_lib.data.synth.corpus import read_voices
from nessa_lib.pipeline import layout
from nessa_lib.stages import prepare_data as stage

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
p = stage.load(params_file)
out = layout.out_dir("prepare_data", write=True)
reports = layout.report_dir("prepare_data", write=True)
figures = reports / "figures"
figures.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(p.seed)
p

# %% [markdown]
# ## 1 · The corpus
# The default is synthetic: every speaker is a random eSpeak NG voice variant (vocal-tract length, formants, pitch,
# voice quality, accent, speaking rate) reading sentences from a built-in grammar, with per-utterance session
# variability (`condition`). Each speaker's `k_enroll` enrollment utterances are recorded in `enroll_condition`.
# Real datasets are read from their standard layout instead; every file is decoded (`probe_workers` processes) and
# unusable ones (unreadable, truncated, too short, silent, NaN/inf) are skipped and listed in `skipped.csv`.

# %%
corpus, skipped = stage.build_corpus(
    out / "corpus", source=p.source, dataset_root=p.dataset_root, seed=p.seed, n_speakers=p.n_speakers,
    utts_per_speaker=p.utts_per_speaker, workers=p.workers, condition=p.condition,
    enroll_condition=p.enroll_condition, k_enroll=p.k_enroll, min_dur_s=p.min_dur_s, max_dur_s=p.max_dur_s,
    min_clip_s=p.min_clip_s, probe_workers=p.probe_workers,
)
print(f"{len(corpus)} utterances of {corpus.speaker_id.nunique()} speakers; {len(skipped)} file(s) skipped")

# %% [markdown]
# ## 2 · Speaker-disjoint splits and evaluation lists
# With an official trial list (`trial_list`), its speakers become the evaluation split and the list is used as given.

# %%
df, enroll, trials = stage.splits_and_lists(
    corpus, rng=rng, trial_list=p.trial_list, n_train=p.n_train_speakers, n_align=p.n_align_speakers,
    n_eval=p.n_eval_speakers, min_eval_speakers=p.min_eval_speakers, k_enroll=p.k_enroll,
    n_nontarget_per_profile=p.n_nontarget_per_profile,
)
stage.write_stage_outputs(out, df, enroll, trials, skipped)
summary = sources.split_summary(df)
summary

# %%
print(lists.describe(enroll, trials))
plots.durations(df, figures / "durations.png");

# %% [markdown]
# ## 3 · Listen and look

# %%
examples = stage.listening_examples(df)
waves = sources.load_waves(examples, progress=False)
for (_, row), wave in zip(examples.iterrows(), waves):
    print(row.utt_id, f"{row.duration_s:.1f} s", row.get("condition", ""))
    display(Audio(np.clip(wave, -1, 1), rate=16000, normalize=False))  # its own level, unscaled

# %%
plots.spectrograms(stage.labelled(examples, waves), path=figures / "spectrograms.png");

# %%
voices = read_voices(out / "corpus")  # None for a real dataset
if voices is not None:
    plots.voice_parameters(voices, path=figures / "voice_parameters.png")
    display(voices["accent"].value_counts().rename("speakers per accent").to_frame().T)

# %% [markdown]
# ## 4 · How hard is it? Two reference systems on the evaluation trials
# - **mean MFCC**: the average MFCC vector of the voiced frames, scored by cosine: a floor any encoder must beat.
# - **resemblyzer**: the pretrained GE2E LSTM shipped inside the `resemblyzer` wheel (real human speech, nothing
#   downloaded), through the same encoder the rest of the study uses: a real model's view of this corpus.

# %%
results = stage.reference_systems(df, enroll, trials, resemblyzer=p.baseline_resemblyzer)
io.write_json(stage.stage_metrics(summary, enroll, trials, skipped, results), reports / "metrics.json")
stage.reference_table(results)

# %% [markdown]
# **Outputs** (`data/prepare_data/`): `manifest.csv` (utt_id, speaker_id, path, duration_s, split, ...),
# `enroll.txt` (`profile_id utt_id`), `trials.txt` (`label profile_id test_utt_id`), `skipped.csv`, and for the
# synthetic source `corpus/` (one 16-bit WAV recording per speaker, `wav/<speaker>.wav`, each utterance a `start`/`stop`
# segment of it in the manifest; `speakers.jsonl` with every speaker's voice parameters; `recipe.json`).
# Next stage: `02_train_encoder`, which reads the `train` split of the manifest.
