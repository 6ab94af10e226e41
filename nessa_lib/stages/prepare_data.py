"""Stage 01, ``prepare_data``: the corpus (synthetic, or a real dataset read in place), speaker-disjoint splits,
the evaluation's enrollment and trial lists, and two reference systems that say how hard the corpus is.

``notebooks/01_prepare_data.py`` calls these in order; :class:`Params` is the ``prepare_data`` section of
``params.yaml``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from nessa_lib import paths
from nessa_lib.data import manifest as mf
from nessa_lib.data import sources
from nessa_lib.stages import schema
from nessa_lib.stages.schema import field

SECTION = "prepare_data"


@dataclasses.dataclass(frozen=True)
class Params:
    """The ``prepare_data`` section of ``params.yaml`` (the comments there say what each key does), + ``base.seed``."""

    seed: int = field(source="base.seed")
    source: str = field(choices=sources.SOURCES)
    dataset_root: str = field()
    trial_list: str = field()
    n_speakers: int = field(ge=1)
    utts_per_speaker: int = field(ge=2)
    workers: int = field(ge=1)
    condition: str = field(choices=("clean", "mild", "aug"))
    enroll_condition: str = field(choices=("clean", "mild", "aug"))
    min_dur_s: float = field(gt=0)
    max_dur_s: float = field(gt=0)
    n_train_speakers: int = field(ge=1)
    n_align_speakers: int = field(ge=0)
    n_eval_speakers: int = field(ge=1)
    min_eval_speakers: int = field(ge=1)
    k_enroll: int = field(ge=1)
    n_nontarget_per_profile: int = field(ge=1)
    min_clip_s: float = field(ge=0)
    probe_workers: int = field(ge=0)
    baseline_resemblyzer: bool = field()

    def cross_checks(self) -> list[str]:
        """Problems between keys, found before any audio is made (each names its keys)."""
        out = []
        if self.min_dur_s > self.max_dur_s:
            out.append(f"prepare_data.min_dur_s ({self.min_dur_s}) must be <= max_dur_s ({self.max_dur_s})")
        if self.source != "synthetic" and not self.dataset_root:
            out.append(f"prepare_data.dataset_root must name the dataset's folder for source {self.source!r}")
        if self.source == "synthetic":
            need = self.n_train_speakers + self.n_align_speakers + self.n_eval_speakers
            if need > self.n_speakers:
                out.append(f"prepare_data.n_speakers ({self.n_speakers}) must cover n_train_speakers + "
                           f"n_align_speakers + n_eval_speakers = {need}")
            if self.n_eval_speakers < self.min_eval_speakers:
                out.append(f"prepare_data.n_eval_speakers ({self.n_eval_speakers}) is below min_eval_speakers "
                           f"({self.min_eval_speakers})")
            if self.k_enroll >= self.utts_per_speaker:
                out.append(f"prepare_data.k_enroll ({self.k_enroll}) must leave test utterances: it must be < "
                           f"utts_per_speaker ({self.utts_per_speaker})")
        return out


def load(params_file: str = schema.PARAMS_FILE, root=None) -> Params:
    """The ``prepare_data`` parameters of ``params_file`` (repo-relative), checked.

    Examples
    --------
    >>> p = load()
    >>> p.source, p.k_enroll >= 1
    ('synthetic', True)
    """
    return schema.load(Params, SECTION, params_file, root)


def build_corpus(corpus_dir, *, source: str, dataset_root: str, seed: int, n_speakers: int, utts_per_speaker: int,
                 workers: int, condition: str, enroll_condition: str, k_enroll: int, min_dur_s: float,
                 max_dur_s: float, min_clip_s: float, probe_workers: int = 0, progress: bool = True):
    """The stage's corpus: the synthetic one generated into ``corpus_dir``, or a real dataset read in place.

    Returns ``(manifest, skipped)``: manifest rows with an empty ``split``, and the ``(path, reason, message)``
    of every unusable file of a real dataset (the synthetic corpus skips nothing). ``dataset_root`` is
    repo-relative or absolute. Every file of a real dataset is decoded (:func:`nessa_lib.data.sources.read_source`) in
    ``probe_workers`` processes; the synthetic corpus writes its own audio and is not re-read.
    """
    if source == "synthetic":
        from nessa_lib.data.synth.corpus import generate_corpus

        records = generate_corpus(
            corpus_dir, n_speakers=n_speakers, utts_per_speaker=utts_per_speaker, seed=seed, workers=workers,
            condition=condition, enroll_condition=enroll_condition, n_enroll=k_enroll,
            min_dur_s=min_dur_s, max_dur_s=max_dur_s, progress=progress,
        )
        return sources.synthetic_manifest(records, corpus_dir), []
    return sources.read_source(source, str(paths.resolve(dataset_root)) if dataset_root else "", min_clip_s=min_clip_s,
                       progress=progress, decode=True, workers=probe_workers)


def splits_and_lists(corpus: pd.DataFrame, *, rng, trial_list: str, n_train: int, n_align: int, n_eval: int,
                     min_eval_speakers: int, k_enroll: int, n_nontarget_per_profile: int):
    """Speaker-disjoint splits and the evaluation's enrollment and trial lists.

    With an official ``trial_list`` (repo-relative or absolute; VoxCeleb format), its speakers become the
    evaluation split and the list is used as given, one utterance per profile; otherwise the evaluation speakers
    are drawn and their lists built with ``k_enroll`` utterances per profile. ``rng`` is used in that order:
    the split first, then the lists. Returns ``(manifest, enroll, trials)``.

    The official list's speakers are never in the train or align splits. When the speakers left are fewer than
    ``n_train + n_align`` (e.g. a VoxCeleb1-E/H list, whose speakers are VoxCeleb1's dev speakers, over a
    VoxCeleb1-only dataset) a ``ValueError`` names the list and the counts.
    """
    from nessa_lib.data import lists, readers, splits

    official = readers.read_voxceleb_trials(paths.resolve(trial_list), corpus) if trial_list else None
    eval_speakers = None
    if official is not None:
        eval_utts = set(official.profile_id) | set(official.test_utt_id)
        eval_speakers = sorted(set(corpus.loc[corpus.utt_id.isin(eval_utts), "speaker_id"]))
        # The list's speakers are never trained on: say so when too few speakers are left for training, the
        # usual cause being a VoxCeleb1-E/H list (VoxCeleb1 dev speakers) over a VoxCeleb1-only dataset_root.
        n_rest = corpus.loc[~corpus.speaker_id.isin(eval_speakers), "speaker_id"].nunique()
        if n_rest < int(n_train) + int(n_align):
            raise ValueError(
                f"prepare_data.trial_list {trial_list}: its {len(eval_speakers)} speakers form the evaluation split "
                f"and are never trained on, which leaves {n_rest} speaker(s) of dataset_root for "
                f"n_train_speakers + n_align_speakers = {int(n_train)} + {int(n_align)}. The VoxCeleb1-E/H lists "
                "(list_test_all2.txt, list_test_hard2.txt) name the VoxCeleb1 dev speakers: train on VoxCeleb2 dev "
                "(presets/voxceleb2-train.yaml), or lower the two counts")
    df = splits.assign_splits(corpus, n_train=n_train, n_align=n_align, n_eval=n_eval, rng=rng,
                              min_eval_speakers=min_eval_speakers, eval_speakers=eval_speakers)
    if official is not None:
        return df, lists.single_utterance_enrollment(official), official
    enroll, trials = lists.make_enrollment_and_trials(df[df.split == "eval"], k_enroll=k_enroll,
                                                      n_nontarget_per_profile=n_nontarget_per_profile, rng=rng)
    return df, enroll, trials


def write_stage_outputs(out_dir, df: pd.DataFrame, enroll: pd.DataFrame, trials: pd.DataFrame, skipped) -> None:
    """Write ``manifest.csv``, ``enroll.txt``, ``trials.txt`` and ``skipped.csv`` into ``out_dir``."""
    from nessa_lib.data import lists
    from nessa_lib.data.audio import write_skip_report

    out = Path(out_dir)
    mf.write_manifest(df, out / "manifest.csv")
    lists.write_enrollment(enroll, out / "enroll.txt")
    lists.write_trials(trials, out / "trials.txt")
    write_skip_report(skipped, out / "skipped.csv")


def listening_examples(df: pd.DataFrame) -> pd.DataFrame:
    """The first and last utterance of the first two evaluation speakers: something to listen to and look at.

    Examples
    --------
    >>> df = pd.DataFrame({"utt_id": list("abcdef"), "speaker_id": list("xxyyzz"), "split": ["eval"] * 6})
    >>> listening_examples(df).utt_id.tolist()
    ['a', 'b', 'c', 'd']
    """
    ev = df[df.split == "eval"]
    two = ev.speaker_id.drop_duplicates().iloc[:2].tolist()
    return pd.concat([ev[ev.speaker_id == s].iloc[[0, -1]] for s in two])


def labelled(rows: pd.DataFrame, waves) -> dict:
    """``{"<utt_id> (<condition>)": wave}`` for figures.

    Examples
    --------
    >>> list(labelled(pd.DataFrame({"utt_id": ["u1"], "condition": ["mild"]}), [np.zeros(3)]))
    ['u1 (mild)']
    """
    return {f"{r.utt_id} ({r.get('condition', '')})": w for (_, r), w in zip(rows.iterrows(), waves)}


def reference_systems(df: pd.DataFrame, enroll: pd.DataFrame, trials: pd.DataFrame, *, resemblyzer: bool,
                      progress: bool = True) -> dict[str, dict]:
    """Verification metrics of the reference systems on the evaluation lists: how hard the corpus is.

    ``mfcc``: the mean MFCC vector of the voiced frames, scored by cosine (a floor). ``resemblyzer`` (optional):
    the pretrained GE2E encoder through :class:`nessa_lib.encoders.resemblyzer.ResemblyzerEncoder` and the same
    extraction as stage 03, so both report the same EER for the same model.
    """
    from nessa_lib.evaluation.baselines import frame_stats_embeddings
    from nessa_lib.evaluation.lists import evaluate_lists

    used = sorted(set(enroll.utt_id) | set(trials.test_utt_id))
    rows = df.set_index("utt_id", drop=False).loc[used]
    waves = sources.load_waves(rows, desc="load eval audio", progress=progress)
    systems = {"mfcc": frame_stats_embeddings(waves)}
    if resemblyzer:
        from nessa_lib.encoders.extract import extract_embeddings
        from nessa_lib.encoders.resemblyzer import ResemblyzerEncoder

        emb = extract_embeddings(rows.reset_index(drop=True), ResemblyzerEncoder(), desc="resemblyzer")
        systems["resemblyzer"] = emb.embeddings[pd.Index(emb.utt_ids).get_indexer(used)]
    return {name: evaluate_lists(e, e, used, enroll, trials) for name, e in systems.items()}


def stage_metrics(summary: pd.DataFrame, enroll: pd.DataFrame, trials: pd.DataFrame, skipped,
                  results: dict[str, dict]) -> dict[str, float]:
    """The stage's flat ``metrics.json``: counts per split, list sizes, skipped files, reference-system metrics.

    Examples
    --------
    >>> s = pd.DataFrame({"speakers": [2.0], "utterances": [4.0], "hours": [0.5]}, index=["eval"])
    >>> e = pd.DataFrame({"profile_id": ["p"], "utt_id": ["u"]})
    >>> t = pd.DataFrame({"label": [1, 0], "profile_id": ["p", "p"], "test_utt_id": ["a", "b"]})
    >>> m = stage_metrics(s, e, t, [], {"mfcc": {"eer": 0.25}})
    >>> m["n_speakers_eval"], m["hours_eval"], m["n_trials"], m["baseline_mfcc_eer"]
    (2.0, 0.5, 2.0, 0.25)
    """
    metrics = {f"n_{k}_{split}": float(v) for split, row in summary.iterrows() for k, v in row.items()
               if k != "hours"}
    metrics.update({f"hours_{split}": float(h) for split, h in summary["hours"].items()})
    metrics.update({"n_trials": float(len(trials)), "n_target_trials": float(trials.label.sum()),
                    "n_profiles": float(enroll.profile_id.nunique()), "n_skipped": float(len(skipped))})
    metrics.update({f"baseline_{name}_{k}": v for name, res in results.items() for k, v in res.items()})
    return metrics


def reference_table(results: dict[str, dict]) -> pd.DataFrame:
    """The reference systems' metrics for reading: one row per system, values in %.

    Examples
    --------
    >>> reference_table({"mfcc": {"eer": 0.3074}}).values.tolist()
    [[30.74]]
    """
    return pd.DataFrame(results).T.mul(100).round(2).rename(columns=lambda c: c + " (%)")
