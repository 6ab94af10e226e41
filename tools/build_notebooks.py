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
utts_per_speaker: int = 12  # synthetic: utterances per speaker
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
from nessa_lib.audio import load_segment, write_skip_report
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
    display(Audio(np.clip(load_segment(row), -1, 1), rate=16000, normalize=False))  # its own level, unscaled
'''),
    code('''
waves = {f"{r.utt_id} ({r.get('condition', '')})": w
         for (_, r), w in zip(examples.iterrows(), prepare.load_waves(examples, progress=False))}
plots.spectrograms(waves, path=figures / "spectrograms.png");
'''),
    code('''
speakers_file = out / "corpus" / "speakers.jsonl"
if source == "synthetic" and speakers_file.is_file():
    voices = pd.DataFrame([json.loads(line)["voice"] for line in speakers_file.read_text().splitlines() if line])
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
eval_waves = prepare.load_waves(df.set_index("utt_id", drop=False).loc[used], desc="load eval audio")
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
synthetic source `corpus/` (one FLAC recording per speaker, `wav/<speaker>.flac`, each utterance a `start`/`stop`
segment of it in the manifest; `speakers.jsonl` with every speaker's voice parameters; `recipe.json`).
Next stage: encoder training, which reads the `train` split of the manifest.
"""),
]


TRAIN = [
    md("""
# 02 · Train an encoder
> Train one speaker encoder with SpeechBrain (a `Brain` subclass, SpeechBrain lobes, Fbank features, losses and
> `Checkpointer`) on the `train` split, or describe a pretrained one, and export it as safetensors + JSON.

DVC runs this notebook once per entry of `train_encoder.encoders` in `params.yaml` (a `foreach` stage). The
study needs models that differ the way real upgrades do: architecture, objective, embedding size, training speakers.
"""),
    code('''
seed: int = 0  # base seed; this encoder's seed is seed + seed_offset
name: str = "ecapa"  # encoder name, also its output folder
architecture: str = "ecapa"  # xvector | ecapa | resnet | resemblyzer (pretrained, nothing trained)
objective: str = "aam"  # softmax | aam | supcon | pretrained-ge2e
emb_dim: int = 192  # embedding dimension
channels: int = 128  # width of the TDNN / ECAPA blocks, ResNet base channels
epochs: int = 4  # passes over the training utterances, one random crop each
crop_s: float = 1.5  # length of the training crops in seconds
lr: float = 0.002  # peak learning rate
batch_size: int = 64  # crops per batch for the classification objectives
n_train_speakers: int = 0  # speakers of the train split to use; 0 means all of them
speaker_offset: int = 0  # start of this encoder's speaker subset in a seeded permutation
seed_offset: int = 0  # gives each encoder its own initialisation and sampling
threads: int = 2  # torch threads
manifest: str = "data/prepare_data/manifest.csv"  # manifest written by stage 01
out_dir: str = "models/train_encoder/ecapa"  # exported encoder (repo-relative)
report_dir: str = "reports/train_encoder/ecapa"  # metrics.json and figures (repo-relative)
''', tags=["parameters"]),
    code('''
import json

import pandas as pd
import torch

from nessa_lib import encoders, io, paths, plots, zoo

torch.set_num_threads(threads)
out = paths.resolve(out_dir)
reports = paths.resolve(report_dir)
out.mkdir(parents=True, exist_ok=True)
reports.mkdir(parents=True, exist_ok=True)
'''),
    code('''
if architecture in zoo.PRETRAINED:
    meta = zoo.export_pretrained(architecture, out)
    summary = {"train_time_s": 0.0}
else:
    cfg = encoders.EncoderConfig.from_dict(dict(
        name=name, architecture=architecture, objective=objective, emb_dim=emb_dim, channels=channels,
        epochs=epochs, crop_s=crop_s, lr=lr, batch_size=batch_size, n_train_speakers=n_train_speakers or None,
        speaker_offset=speaker_offset, seed=seed + seed_offset,
    ))
    summary = encoders.train_encoder(paths.resolve(manifest), out, cfg, progress=True)
    meta = zoo.read_meta(out)
print(meta["model_id"], {k: v for k, v in summary.items() if k != "model_id"})
'''),
    code('''
history = meta.get("history", [])
if history:
    cols = [c for c in pd.DataFrame(history).columns if c != "epoch"]
    plots.training_curves(history, cols, title=name, path=reports / "training.png")
    display(pd.DataFrame(history).set_index("epoch").round(4))
else:
    plots.text_figure(f"{name}: pretrained, not trained in this study", path=reports / "training.png")
'''),
    code('''
metrics = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
metrics["emb_dim"] = float(meta["emb_dim"])
io.write_json(metrics, reports / "metrics.json")
'''),
    md("Next: `03_extract_embeddings` embeds the utterances the aligners and the evaluation need with this model."),
]

EXTRACT = [
    md("""
# 03 · Extract embeddings
> Embed the utterances of each split in `splits` with one encoder (for the training split, the first
> `train_utts_per_speaker` of each speaker: extra alignment pairs), into pickle-free files that carry the model's
> fingerprint, and score the evaluation trials symmetrically (profiles and tests from this model).
"""),
    code('''
seed: int = 0  # base seed (extraction itself is deterministic)
name: str = "ecapa"  # encoder name
mode: str = "full"  # full: whole utterances; crop: a fixed centre crop
crop_s: float = 3.0  # crop length in seconds for mode crop
batch_size: int = 16  # utterances per forward pass
threads: int = 2  # torch threads
splits: str = "train,align,eval"  # comma-separated manifest splits to embed (eval is required)
train_utts_per_speaker: int = 6  # train split: first n utterances of each speaker; 0 means all
model_dir: str = "models/train_encoder/ecapa"  # encoder exported by stage 02
data_dir: str = "data/prepare_data"  # manifest and lists from stage 01
out_dir: str = "data/extract_embeddings/ecapa"  # one <split>.npz per split (repo-relative)
report_dir: str = "reports/extract_embeddings/ecapa"  # metrics.json and figures (repo-relative)
''', tags=["parameters"]),
    code('''
import torch

from nessa_lib import embeddings, evaluation, extract, io, manifest, paths, plots, zoo

torch.set_num_threads(threads)
data = paths.resolve(data_dir)
out = paths.resolve(out_dir)
reports = paths.resolve(report_dir)
out.mkdir(parents=True, exist_ok=True)
reports.mkdir(parents=True, exist_ok=True)
df = manifest.read_manifest(data / "manifest.csv")
enroll = manifest.read_enrollment(data / "enroll.txt", manifest=df)
trials = manifest.read_trials(data / "trials.txt", manifest=df, enrollment=enroll)
encoder = zoo.load(paths.resolve(model_dir))
print(name, encoder.model_id, "dim", encoder.emb_dim)
'''),
    code('''
sets = {}
for split in splits.split(","):
    rows = df[df.split == split]
    if split == "train":
        rows = manifest.first_utterances(rows, train_utts_per_speaker)
    sets[split] = extract.extract_embeddings(rows, encoder, mode=mode, crop_s=crop_s,
                                             batch_size=batch_size, desc=f"{name} {split}")
    embeddings.save_embeddings(out / f"{split}.npz", sets[split])
    print(split, sets[split].embeddings.shape)
'''),
    md("## Symmetric verification on the evaluation trials"),
    code('''
ev = sets["eval"]
scores = evaluation.score_lists(ev.embeddings, ev.embeddings, ev.utt_ids, enroll, trials)
result = evaluation.evaluate_lists(ev.embeddings, ev.embeddings, ev.utt_ids, enroll, trials)
rtf = extract.real_time_factor(encoder, seconds=3.0, repeats=3)
plots.score_distributions(scores, trials.label, title=f"{name}: symmetric scores", path=reports / "scores.png")
io.write_json({**result, "rtf": rtf}, reports / "metrics.json")
{k: round(v, 4) for k, v in {**result, "rtf": rtf}.items()}
'''),
    md("Next: `04_fit_aligners` fits every alignment method on the paired embeddings of two models."),
]

FIT = [
    md("""
# 04 · Fit aligners
> For one (enrollment model X, runtime model Y) pair, fit every alignment method on the paired embeddings (the same
> utterances through both models) of the splits in `fit_splits` and save each aligner. By default that is the
> encoder-training speakers' utterances plus the alignment split: the paper's speaker-logit baseline uses the
> encoders' training speakers as its reference set, and NESSA generalises to new voices only from many voices.
> No evaluation data is read here.
"""),
    code('''
seed: int = 0  # seed of every fit
pair: str = "xvector-ecapa"  # pair name, also the output folder
enroll_model: str = "xvector"  # X: the model that made the stored profiles
runtime_model: str = "ecapa"  # Y: the model that embeds incoming audio
methods: str = "identity,linear,procrustes,speaker-logit,nessa-m1,nessa-m2,nessa-m3"  # comma-separated
fit_splits: str = "train,align"  # comma-separated splits whose paired embeddings fit the aligners
threads: int = 2  # torch threads
embeddings_dir: str = "data/extract_embeddings"  # stage 03 output
out_dir: str = "models/fit_aligners/xvector-ecapa"  # one safetensors file per method (repo-relative)
report_dir: str = "reports/fit_aligners/xvector-ecapa"  # metrics.json and figures (repo-relative)
''', tags=["parameters"]),
    code('''
import json

import torch

from nessa_lib import embeddings, io, paths, plots, study

torch.set_num_threads(threads)
emb = paths.resolve(embeddings_dir)
out = paths.resolve(out_dir)
reports = paths.resolve(report_dir)
out.mkdir(parents=True, exist_ok=True)
reports.mkdir(parents=True, exist_ok=True)
fit = embeddings.load_paired_splits(emb, enroll_model, runtime_model, fit_splits.split(","))
x, y, speakers = fit.x, fit.y, fit.speaker_ids
print(f"{len(fit.utt_ids)} paired utterances of {len(set(speakers))} speakers from {fit_splits}: "
      f"X {x.shape[1]}-d, Y {y.shape[1]}-d")
'''),
    code('''
timings = {}
aligners = study.fit_aligners(x, y, speakers, methods=methods.split(","), seed=seed, progress=True,
                              enroll_model_id=fit.enroll_model_id, runtime_model_id=fit.runtime_model_id,
                              timings=timings)
for method, aligner in aligners.items():
    aligner.save(out / f"{method}.safetensors")
io.atomic_write_text(out / "pair.json", json.dumps({"pair": pair, "enroll_model": enroll_model,
                                                    "runtime_model": runtime_model,
                                                    "methods": list(aligners)}, indent=1) + "\\n")
{m: round(t, 2) for m, t in timings.items()}
'''),
    code('''
for method, aligner in aligners.items():
    if aligner.history:
        plots.training_curves(aligner.history, ["train_loss", "val_loss"], title=f"{pair}: {method}",
                              path=reports / f"{method}_training.png")
io.write_json({f"fit_s_{m}": float(t) for m, t in timings.items()}, reports / "metrics.json")
'''),
    md("Next: `05_evaluate` scores the evaluation trials with every pair and method and tests the paper's claims."),
]

EVALUATE = [
    md('''
# 05 · Evaluate: does NESSA let stored profiles survive a model upgrade?
> Score the evaluation trials with every (enrollment X, runtime Y) pair and method, test the paper's three claims
> as measured here, run the A/B upgrade case study and the alignment-data ablation.

Profiles average `k_enroll` enrollment utterances embedded by X (in X's own space), then are mapped by the
aligner's enrollment side (identity for M1, migration for M2); test utterances are embedded by Y and mapped by its
runtime side. Aligners are fitted on the splits of stage 04 (`fit_splits`); thresholds are calibrated on the
alignment split only; the evaluation trials are never used to tune.
'''),
    code('''
seed: int = 0  # seed of the A/B and ablation fits
ab_model_a: str = "xvector"  # A: in production, profiles stored
ab_model_b: str = "ecapa"  # B: the candidate runtime model
ab_far: float = 0.01  # operating point of the A/B case study (false-accept rate)
ab_methods: str = "nessa-m2,nessa-m1,nessa-m3"  # aligned deployments the A/B case study compares
ablation_pair: str = "xvector-ecapa"  # pair for the alignment-data ablation
ablation_method: str = "nessa-m3"  # method for the ablation
ablation_speakers: str = "100,200,400,0"  # speakers of the fit pool to subsample; 0 means all
ablation_utts: str = "3,0"  # utterances per speaker to subsample; 0 means all
fit_splits: str = "train,align"  # splits the aligners are fitted on (as in stage 04)
calibration_split: str = "align"  # split whose trials calibrate the A/B thresholds
threads: int = 2  # torch threads
data_dir: str = "data/prepare_data"  # manifest and lists (stage 01)
embeddings_dir: str = "data/extract_embeddings"  # stage 03
encoders_dir: str = "models/train_encoder"  # stage 02, for each model's training objective
aligners_dir: str = "models/fit_aligners"  # stage 04
report_dir: str = "reports/evaluate"  # tables, figures, metrics.json (repo-relative)
''', tags=["parameters"]),
    code('''
import json

import numpy as np
import pandas as pd
import torch
from IPython.display import display

from nessa_lib import align, embeddings, evaluation, io, manifest, metrics, paths, plots, study, zoo

torch.set_num_threads(threads)
data = paths.resolve(data_dir)
emb_root = paths.resolve(embeddings_dir)
reports = paths.resolve(report_dir)
figures = reports / "figures"
figures.mkdir(parents=True, exist_ok=True)
df = manifest.read_manifest(data / "manifest.csv")
enroll = manifest.read_enrollment(data / "enroll.txt", manifest=df)
trials = manifest.read_trials(data / "trials.txt", manifest=df, enrollment=enroll)
pair_files = sorted(paths.resolve(aligners_dir).glob("*/pair.json"))
pairs = {p.parent.name: json.loads(p.read_text()) for p in pair_files}
models = sorted({m for p in pairs.values() for m in (p["enroll_model"], p["runtime_model"])} | {ab_model_a, ab_model_b})
objectives = {m: zoo.objective(paths.resolve(encoders_dir) / m) for m in models}
sets = {m: embeddings.load_embeddings(emb_root / m / "eval.npz") for m in models}
print(f"{len(pairs)} pairs, models and objectives: {objectives}")
print(f"{enroll.profile_id.nunique()} profiles, {len(trials)} trials ({int(trials.label.sum())} target)")
'''),
    md('''
## 1 · Main table
Rows per pair: symmetric X/X (no upgrade), symmetric Y/Y (everyone re-enrolled), then each method with X profiles
against Y tests. `gain_recovered` = (EER_XX − EER) / (EER_XX − EER_YY): the share of the symmetric upgrade's gain
kept without re-enrollment. Percentages in the tables; fractions in `metrics.json`.
'''),
    code('''
tables, det, score_sets = {}, {}, {}
for name, p in pairs.items():
    X, Y = p["enroll_model"], p["runtime_model"]
    x, y, ids, _ = embeddings.paired(sets[X], sets[Y], names=(X, Y))
    aligners = {m: align.load(paths.resolve(aligners_dir) / name / f"{m}.safetensors") for m in p["methods"]}
    tables[name] = study.evaluate_pair(aligners, x, y, ids, enroll, trials)
    sc = {"X/X": evaluation.score_lists(x, x, ids, enroll, trials), "Y/Y": evaluation.score_lists(y, y, ids, enroll, trials)}
    sc.update({m: study.aligned_scores(a, x, y, ids, enroll, trials) for m, a in aligners.items()})
    score_sets[name] = sc
    det[name] = {k: metrics.det_curve(v, trials.label)[:2] for k, v in sc.items()}
main = pd.concat(tables, names=["pair"])
pct = ["eer", "min_dcf_p0.01", "min_dcf_p0.05", "frr_at_far0.01", "frr_at_far0.05", "gain_recovered", "rel_frr_change"]
shown = main[pct].copy()
shown[["eer", "frr_at_far0.01", "frr_at_far0.05", "gain_recovered", "rel_frr_change"]] *= 100
shown.round(2).rename(columns={"eer": "EER %", "frr_at_far0.01": "FRR@FAR1% %", "frr_at_far0.05": "FRR@FAR5% %",
                               "gain_recovered": "gain recovered %", "rel_frr_change": "FRR change vs X/X %"})
'''),
    code('''
for name in pairs:
    plots.det_curves(det[name], title=name, path=figures / f"det_{name}.png")
plots.gain_recovered_bars(tables, path=figures / "gain_recovered.png");
'''),
    code('''
first = next(iter(pairs))
before = "identity" if "identity" in score_sets[first] else "X/X"
after = min((m for m in score_sets[first] if m.startswith("nessa")), key=lambda m: tables[first].loc[m, "eer"])
plots.score_distributions_grid({f"{first}: {before}": (score_sets[first][before], trials.label),
                                f"{first}: {after}": (score_sets[first][after], trials.label)},
                               path=figures / "scores_before_after.png");
'''),
    md("## 2 · The paper's three claims, as measured here"),
    code('''
findings = study.paper_findings(tables, {n: (p["enroll_model"], p["runtime_model"]) for n, p in pairs.items()}, objectives)
findings.to_csv(reports / "findings.csv", index=False)
for _, f in findings.iterrows():
    verdict = "NOT TESTABLE" if pd.isna(f.holds) else ("HOLDS" if f.holds else "DOES NOT HOLD")
    print(f"[{verdict}] ({f.finding}, {f.group}) {f.claim} :: {f.evidence}")
'''),
    md('''
## 3 · A/B case study: upgrading the runtime model without re-enrolling anyone
A is in production with stored profiles; B is the candidate. The aligners (`ab_methods`: M2 migrates the stored
profiles into B's space once; M1 maps B's runtime embeddings into A's space; M3 migrates the profiles once *and*
maps every runtime embedding, into a new space) are fitted on the `fit_splits` pool; each system's threshold is calibrated at the target FAR on trials of the `calibration_split` (no evaluation data); the
table shows the FAR and FRR that threshold gives on the evaluation trials, and what happens if A/A's threshold is
naively kept after the upgrade.
'''),
    code('''
pool = embeddings.load_paired_splits(emb_root, ab_model_a, ab_model_b, fit_splits.split(","))
a_e, b_e, ids_eval, _ = embeddings.paired(sets[ab_model_a], sets[ab_model_b])
flags = df.set_index("utt_id").reindex(pool.utt_ids)["enroll"] if "enroll" in df.columns else None
k_enroll = int(enroll.groupby("profile_id").size().min())  # calibrate with profiles like the evaluation ones
# The stage-04 aligners of the pair (A, B) when it was fitted there (same data, same seed): no refit.
deployments = ab_methods.split(",")
fitted = next((n for n, p in pairs.items() if (p["enroll_model"], p["runtime_model"]) == (ab_model_a, ab_model_b)
               and set(deployments) <= set(p["methods"])), None)
ab_aligners = None if fitted is None else {
    m: align.load(paths.resolve(aligners_dir) / fitted / f"{m}.safetensors") for m in deployments}
ab = study.ab_case_study(pool.x, pool.y, pool.speaker_ids, pool.utt_ids, a_e, b_e, ids_eval, enroll, trials,
                         far=ab_far, seed=seed, k_enroll=k_enroll, calibrate_on=pool.splits == calibration_split,
                         aligners=ab_aligners, methods=deployments,
                         enroll_flag_align=None if flags is None else flags.astype(str).str.lower().eq("true").to_numpy())
print(f"aligners {'of stage 04 (' + fitted + ')' if fitted else 'fitted here'} on {len(pool.utt_ids)} pairs "
      f"({fit_splits}); calibrated on {ab.attrs['n_calibration_trials']} {calibration_split} trials")
ab.to_csv(reports / "ab_case_study.csv")
ab.round(4)
'''),
    md("""
## 4 · How much alignment data does NESSA need?
The fit pool of stage 04, subsampled: the first `n` speakers (in a seeded order) and `u` utterances of each.
"""),
    code('''
p = pairs[ablation_pair]
pool = embeddings.load_paired_splits(emb_root, p["enroll_model"], p["runtime_model"], fit_splits.split(","))
xe, ye, ids, _ = embeddings.paired(sets[p["enroll_model"]], sets[p["runtime_model"]])
ablation = study.alignment_ablation(
    pool.x, pool.y, pool.speaker_ids, xe, ye, ids, enroll, trials, method=ablation_method, seed=seed,
    n_speakers=tuple(int(v) or None for v in ablation_speakers.split(",")),
    utts_per_speaker=tuple(int(v) or None for v in ablation_utts.split(",")),
)
ablation.to_csv(reports / "ablation.csv", index=False)
plots.ablation_curves(ablation, path=figures / "ablation.png")
ablation.round(4)
'''),
    md("## 5 · Key numbers (checked by nbval on re-runs)"),
    code('''
# NBVAL_CHECK_OUTPUT
for name, t in tables.items():
    print(name, {k: round(float(v), 3) for k, v in t["eer"].items()})
'''),
    code('''
key = {"symmetric X/X": "XX", "symmetric Y/Y": "YY"}
flat = {f"{name}:{key.get(system, system)}:{col}": float(v)
        for name, t in tables.items() for system, row in t.iterrows()
        for col, v in row.items() if col in ("eer", "min_dcf_p0.01", "frr_at_far0.01", "gain_recovered")}
flat.update({f"ab:{r}:{c}": float(v) for r, row in ab.iterrows() for c, v in row.items()
             if c in ("eer", "far_deployed", "frr_deployed", "frr_at_aa_threshold")})
io.write_json(flat, reports / "metrics.json")
main.to_csv(reports / "main_table.csv")
'''),
]

NOTEBOOKS = {"notebooks/01_prepare_data.ipynb": PREPARE, "notebooks/02_train_encoder.ipynb": TRAIN,
             "notebooks/03_extract_embeddings.ipynb": EXTRACT, "notebooks/04_fit_aligners.ipynb": FIT,
             "notebooks/05_evaluate.ipynb": EVALUATE}


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
