"""Write the stage notebooks from the cell sources below (outputs stripped, stable ids).

Edit a notebook either here (then run ``python tools/build_notebooks.py``) or in Jupyter; this script is the
reviewable source of truth for cell text, so diffs of the pipeline's code stay readable.
"""

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text, tags=()):
    cell = nbformat.v4.new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


PREPARE = [
    md("""
# 01 · Prepare data
> Build the embedded synthetic corpus (or read VoxCeleb / a folder dataset), split speakers into encoder-training,
> alignment and evaluation sets, write the manifest and the enrollment and trial lists, and report how hard the
> corpus is for two reference systems.

Run by `dvc repro` through papermill; the `parameters` cell below is the stage's interface (values come from the
`prepare_data` section of `params.yaml`). Paths are relative to the repository root.
"""),
    code('''
seed: int = 0  # base seed: drives the corpus, the splits and the lists
source: str = "synthetic"  # synthetic | voxceleb | folder
dataset_root: str = ""  # voxceleb / folder: the dataset's root folder
trial_list: str = ""  # voxceleb: an official trial list used as given; empty: build our own lists
n_speakers: int = 950  # synthetic: speakers generated
utts_per_speaker: int = 16  # synthetic: utterances per speaker
workers: int = 2  # synthetic: synthesis processes; part of the recipe, like the seed
condition: str = "mild"  # synthetic: clean | mild | aug session variability of non-enrollment utterances
enroll_condition: str = "clean"  # synthetic: preset of each speaker's k_enroll enrollment utterances
min_dur_s: float = 3.0  # synthetic: shortest utterance (s)
max_dur_s: float = 6.0  # synthetic: longest utterance (s)
n_train_speakers: int = 600  # speakers for encoder training
n_align_speakers: int = 200  # speakers whose paired embeddings fit the aligners
n_eval_speakers: int = 150  # speakers of the evaluation trials (ignored with an official trial list)
min_eval_speakers: int = 100  # refuse an evaluation set smaller than this
k_enroll: int = 3  # enrollment utterances averaged into one voice profile
n_nontarget_per_profile: int = 200  # non-target trials per profile
min_clip_s: float = 0.5  # real datasets: shorter clips are skipped and reported
baseline_resemblyzer: bool = True  # also score the evaluation trials with the pretrained GE2E encoder
out_dir: str = "data/prepare_data"  # stage output: corpus, manifest, lists (repo-relative)
report_dir: str = "reports/prepare_data"  # metrics.json and figures/ (repo-relative)
''', tags=["parameters"]),
    code('''
import json
import logging

import numpy as np
import pandas as pd
from IPython.display import Audio, display

from nessa_lib import baselines, datasets, evaluation, io, manifest, paths, plots, prepare
from nessa_lib.audio import write_skip_report
from nessa_lib.synth_corpus import generate_corpus

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
out = paths.resolve(out_dir)
figures = paths.resolve(report_dir) / "figures"
out.mkdir(parents=True, exist_ok=True)
figures.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(seed)
'''),
    md("""
## 1 · The corpus
The default is synthetic: every speaker is a random eSpeak NG voice variant (vocal-tract length, formants, pitch,
voice quality, accent, speaking rate) reading sentences from a built-in grammar, with per-utterance session
variability (`condition`). Each speaker's `k_enroll` enrollment utterances are recorded in `enroll_condition`.
Real datasets are read from their standard layout instead; unusable files are skipped and listed in `skipped.csv`.
"""),
    code('''
if source == "synthetic":
    records = generate_corpus(
        out / "corpus", n_speakers=n_speakers, utts_per_speaker=utts_per_speaker, seed=seed, workers=workers,
        condition=condition, enroll_condition=enroll_condition, n_enroll=k_enroll,
        min_dur_s=min_dur_s, max_dur_s=max_dur_s, progress=True,
    )
    corpus = prepare.synthetic_manifest(records, out / "corpus")
    skipped = []
else:
    corpus, skipped = prepare.read_source(
        source, str(paths.resolve(dataset_root)) if dataset_root else "", min_clip_s=min_clip_s
    )
print(f"{len(corpus)} utterances of {corpus.speaker_id.nunique()} speakers; {len(skipped)} file(s) skipped")
'''),
    md("## 2 · Speaker-disjoint splits and evaluation lists"),
    code('''
official = datasets.read_voxceleb_trials(paths.resolve(trial_list), corpus) if trial_list else None
eval_speakers = None
if official is not None:
    eval_utts = set(official.profile_id) | set(official.test_utt_id)
    eval_speakers = sorted(set(corpus.loc[corpus.utt_id.isin(eval_utts), "speaker_id"]))
df = prepare.assign_splits(
    corpus, n_train=n_train_speakers, n_align=n_align_speakers, n_eval=n_eval_speakers, rng=rng,
    min_eval_speakers=min_eval_speakers, eval_speakers=eval_speakers,
)
if official is not None:
    trials = official
    enroll = manifest.single_utterance_enrollment(trials)
else:
    enroll, trials = manifest.make_enrollment_and_trials(
        df[df.split == "eval"], k_enroll=k_enroll, n_nontarget_per_profile=n_nontarget_per_profile, rng=rng
    )
manifest.write_manifest(df, out / "manifest.csv")
manifest.write_enrollment(enroll, out / "enroll.txt")
manifest.write_trials(trials, out / "trials.txt")
write_skip_report(skipped, out / "skipped.csv")
summary = prepare.split_summary(df)
summary
'''),
    code('''
print(f"{enroll.profile_id.nunique()} profiles of {k_enroll if official is None else 1} utterance(s); "
      f"{len(trials)} trials ({int(trials.label.sum())} target, {int((trials.label == 0).sum())} non-target)")
plots.durations(df, figures / "durations.png");
'''),
    md("## 3 · Listen and look"),
    code('''
ev = df[df.split == "eval"]
two = ev.speaker_id.drop_duplicates().iloc[:2].tolist()
examples = pd.concat([ev[ev.speaker_id == s].iloc[[0, -1]] for s in two])
for _, row in examples.iterrows():
    print(row.utt_id, f"{row.duration_s:.1f} s", row.get("condition", ""))
    display(Audio(filename=row.path))
'''),
    code('''
waves = {f"{r.utt_id} ({r.get('condition', '')})": w
         for (_, r), w in zip(examples.iterrows(), prepare.load_waves(examples.path, progress=False))}
plots.spectrograms(waves, path=figures / "spectrograms.png");
'''),
    code('''
voice_files = sorted((out / "corpus" / "speakers").glob("*.json")) if source == "synthetic" else []
if voice_files:
    voices = pd.DataFrame([json.loads(p.read_text())["voice"] for p in voice_files])
    cols = [c for c in ("vtl_factor", "pitch_base", "pitch_top", "rate_wpm", "roughness", "flutter")
            if c in voices.columns]
    plots.voice_parameters(voices, cols, path=figures / "voice_parameters.png")
    display(voices["accent"].value_counts().rename("speakers per accent").to_frame().T)
'''),
    md("""
## 4 · How hard is it? Two reference systems on the evaluation trials
- **mean MFCC**: the average MFCC vector of the voiced frames, scored by cosine: a floor any encoder must beat.
- **resemblyzer**: the pretrained GE2E LSTM shipped inside the `resemblyzer` wheel (real human speech, nothing
  downloaded): a real model's view of this corpus.
"""),
    code('''
used = sorted(set(enroll.utt_id) | set(trials.test_utt_id))
eval_waves = prepare.load_waves(df.set_index("utt_id").loc[used, "path"], desc="load eval audio")
systems = {"mfcc": baselines.frame_stats_embeddings(eval_waves)}
if baseline_resemblyzer:
    systems["resemblyzer"] = prepare.resemblyzer_embeddings(eval_waves)
results = {name: evaluation.evaluate_lists(emb, emb, used, enroll, trials) for name, emb in systems.items()}
pd.DataFrame(results).T.mul(100).round(2).rename(columns=lambda c: c + " (%)")
'''),
    code('''
metrics = {f"n_{k}_{split}": float(v) for split, row in summary.iterrows() for k, v in row.items() if k != "hours"}
metrics.update({f"hours_{split}": float(h) for split, h in summary["hours"].items()})
metrics.update({"n_trials": float(len(trials)), "n_target_trials": float(trials.label.sum()),
                "n_profiles": float(enroll.profile_id.nunique()), "n_skipped": float(len(skipped))})
metrics.update({f"baseline_{name}_{k}": v for name, res in results.items() for k, v in res.items()})
io.write_json(metrics, paths.resolve(report_dir) / "metrics.json")
print(json.dumps({k: round(v, 4) for k, v in metrics.items() if k.startswith("baseline")}, indent=1))
'''),
    md("""
**Outputs** (`data/prepare_data/`): `manifest.csv` (utt_id, speaker_id, path, duration_s, split, ...),
`enroll.txt` (`profile_id utt_id`), `trials.txt` (`label profile_id test_utt_id`), `skipped.csv`, and for the
synthetic source `corpus/` (FLAC audio, one JSON of voice parameters per speaker, `recipe.json`).
Next stage: encoder training, which reads the `train` split of the manifest.
"""),
]

NOTEBOOKS = {"notebooks/01_prepare_data.ipynb": PREPARE}


def main():
    for rel, cells in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata = {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        }
        for i, c in enumerate(cells):
            c.id = f"c{i:02d}"
        nb.cells = cells
        nbformat.validate(nb)
        nbformat.write(nb, ROOT / rel)
        print("wrote", rel)


if __name__ == "__main__":
    sys.exit(main())
