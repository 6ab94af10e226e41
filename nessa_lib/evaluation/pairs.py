"""The study's (enrollment X, runtime Y) pairs across stages: saving a pair's aligners (stage 04), loading every
pair's evaluation embeddings and aligners, scoring them, and the flat metrics and curve tables (stage 05).

The pairs always come from ``params.yaml`` (``fit_aligners.pairs``), never from the folders on disk, so a pair
removed from the parameters cannot linger in the tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nessa_lib import align, embeddings
from nessa_lib.io import atomic_write_text

PAIR_FILE = "pair.json"


def save_aligners(aligners: dict, out_dir, *, pair: str, enroll_model: str, runtime_model: str) -> None:
    """Write each aligner (``<method>.safetensors``) and ``pair.json`` (which models, which methods) to ``out_dir``."""
    out = Path(out_dir)
    for method, aligner in aligners.items():
        aligner.save(out / f"{method}.safetensors")
    atomic_write_text(out / PAIR_FILE, json.dumps({"pair": pair, "enroll_model": enroll_model,
                                                   "runtime_model": runtime_model,
                                                   "methods": list(aligners)}, indent=1) + "\n")



def development_table(aligners: dict, embeddings_root, enroll_model: str, runtime_model: str, *, dev_split: str,
                      fit_splits, manifest_path, k_enroll: int, n_nontarget_per_profile: int,
                      seed: int) -> pd.DataFrame | None:
    """Stage 04's development check: the table of :func:`nessa_lib.evaluation.tables.evaluate_pair` on trials of
    ``dev_split``, or ``None`` when that split is empty or was fitted on (its trials would be in-sample).

    The trials are built from the split's paired embeddings like the evaluation lists (profiles of ``k_enroll``
    enrollment-condition utterances when the manifest records the condition, ``n_nontarget_per_profile``
    non-targets; drawn from ``seed``), so hyper-parameters can be chosen without evaluation speakers.
    """
    if not dev_split or dev_split in fit_splits:
        return None
    from nessa_lib.data.manifest import enroll_flags, read_manifest
    from nessa_lib.evaluation import ab, tables

    dev = embeddings.load_paired_splits(embeddings_root, enroll_model, runtime_model, [dev_split])
    enroll, trials = ab.alignment_trials(dev.speaker_ids, dev.utt_ids, k_enroll=k_enroll,
                                         n_nontarget_per_profile=n_nontarget_per_profile, rng=seed,
                                         enroll_flag=enroll_flags(read_manifest(manifest_path), dev.utt_ids))
    return tables.evaluate_pair(aligners, dev.x, dev.y, dev.utt_ids, enroll, trials)


def fit_metrics(timings: dict, development: pd.DataFrame | None = None) -> dict[str, float]:
    """Stage 04's flat ``metrics.json``: ``fit_s_<method>`` and, with a development table, its
    ``dev:<system>:<metric>`` entries (as :func:`flat_metrics` names them).

    Examples
    --------
    >>> fit_metrics({"linear": 0.5}, pd.DataFrame({"eer": [0.2]}, index=["linear"]))
    {'fit_s_linear': 0.5, 'dev:linear:eer': 0.2}
    """
    out = {f"fit_s_{m}": float(t) for m, t in timings.items()}
    if development is not None:
        out.update(flat_metrics({"dev": development}))
    return out

@dataclass
class Study:
    """Everything stage 05 reads, keyed by pair and model.

    Attributes
    ----------
    pairs : dict
        ``{pair: {"enroll_model": X, "runtime_model": Y}}``, sorted by name.
    objectives : dict
        Training objective of every model (``softmax``, ``aam``, ``supcon``, ``pretrained-ge2e`` ...).
    sets : dict
        Evaluation-split :class:`nessa_lib.embeddings.EmbeddingSet` of every model.
    aligners : dict
        ``{pair: {method: Aligner}}``: the aligners stage 04 fitted (the methods its ``pair.json`` lists).
    embeddings_root : Path
        Stage 03's output folder (for the fit pools).
    """

    pairs: dict
    objectives: dict
    sets: dict
    aligners: dict
    embeddings_root: Path
    _pools: dict = field(default_factory=dict, repr=False)

    def orientation(self, pair: str) -> tuple[str, str]:
        """``(X, Y)`` of ``pair``."""
        if pair not in self.pairs:
            raise ValueError(f"unknown pair {pair!r}; pairs of fit_aligners.pairs: {list(self.pairs)}")
        return self.pairs[pair]["enroll_model"], self.pairs[pair]["runtime_model"]

    def orientations(self) -> dict[str, tuple[str, str]]:
        """``{pair: (X, Y)}`` for every pair."""
        return {name: self.orientation(name) for name in self.pairs}

    def eval_pair(self, x_model: str, y_model: str):
        """Paired evaluation embeddings ``(x, y, utt_ids)`` of two models (the utterances both embedded)."""
        x, y, ids, _ = embeddings.paired(self.sets[x_model], self.sets[y_model], names=(x_model, y_model))
        return x, y, ids

    def fit_pool(self, x_model: str, y_model: str, splits) -> embeddings.PairedSplits:
        """The paired embeddings stage 04 fits on (``splits`` of stage 03's output), read once per pair."""
        key = (x_model, y_model, tuple(splits))
        if key not in self._pools:
            self._pools[key] = embeddings.load_paired_splits(self.embeddings_root, x_model, y_model, list(splits))
        return self._pools[key]

    def stage_aligners(self, x_model: str, y_model: str, methods) -> tuple[str | None, dict | None]:
        """``(pair, {method: Aligner})`` of the first pair fitted with this orientation and all ``methods``, or
        ``(None, None)`` when stage 04 fitted none (the caller then fits its own)."""
        for name, (x, y) in self.orientations().items():
            if (x, y) == (x_model, y_model) and set(methods) <= set(self.aligners[name]):
                return name, {m: self.aligners[name][m] for m in methods}
        return None, None


def load_study(pairs: dict, *, embeddings_root, encoders_root, aligners_root, extra_models=()) -> Study:
    """Load the evaluation embeddings, model objectives and stage-04 aligners of ``pairs``.

    ``extra_models`` (the A/B case study's) are loaded too. A pair whose aligner folder is missing raises
    ``FileNotFoundError`` naming it (stage 04 has not run for it).
    """
    from nessa_lib.encoders import pretrained

    pairs = dict(sorted(pairs.items()))
    models = sorted({m for p in pairs.values() for m in (p["enroll_model"], p["runtime_model"])} | set(extra_models))
    objectives = {m: pretrained.objective(Path(encoders_root) / m) for m in models}
    sets = {m: embeddings.load_embeddings(Path(embeddings_root) / m / "eval.npz") for m in models}
    aligners = {}
    for name in pairs:
        info = Path(aligners_root) / name / PAIR_FILE
        if not info.is_file():
            raise FileNotFoundError(f"no aligners for pair {name!r}: {info} is missing (run stage fit_aligners@{name})")
        methods = json.loads(info.read_text())["methods"]
        aligners[name] = {m: align.load(info.parent / f"{m}.safetensors") for m in methods}
    return Study(pairs, objectives, sets, aligners, Path(embeddings_root))


@dataclass
class Evaluated:
    """Per pair: the metrics table (rows = systems), every system's trial scores and DET curve."""

    tables: dict
    scores: dict
    det: dict


def evaluate_study(study: Study, enroll: pd.DataFrame, trials: pd.DataFrame) -> Evaluated:
    """Score every pair's symmetric systems and aligners on the evaluation trials.

    For each pair: the table of :func:`nessa_lib.evaluation.tables.evaluate_pair`, the trial scores of
    ``X/X``, ``Y/Y`` and every method, and their DET curves ``(far, frr)``. Each system is scored once.
    """
    from nessa_lib.evaluation import metrics, tables

    short = {tables.SYMMETRIC_X: "X/X", tables.SYMMETRIC_Y: "Y/Y"}
    labels = trials["label"].to_numpy()
    out = Evaluated({}, {}, {})
    for name in study.pairs:
        x, y, ids = study.eval_pair(*study.orientation(name))
        scores = tables.pair_scores(study.aligners[name], x, y, ids, enroll, trials)
        out.tables[name] = tables.table_from_scores(scores, labels)
        sc = {short.get(system, system): s for system, s in scores.items()}
        out.scores[name] = sc
        out.det[name] = {k: metrics.det_curve(v, trials.label)[:2] for k, v in sc.items()}
    return out


def before_after_panels(evaluated: Evaluated, labels) -> dict:
    """Score distributions of the first pair without alignment (identity, else X/X) and with its best NESSA
    variant: ``{title: (scores, labels)}`` for :func:`nessa_lib.plots.score_distributions_grid`."""
    first = next(iter(evaluated.scores))
    sc, table = evaluated.scores[first], evaluated.tables[first]
    before = "identity" if "identity" in sc else "X/X"
    after = min((m for m in sc if m.startswith("nessa")), key=lambda m: table.loc[m, "eer"])
    return {f"{first}: {before}": (sc[before], labels), f"{first}: {after}": (sc[after], labels)}


def det_grid(curves: dict, n: int = 60) -> pd.DataFrame:
    """DET curves resampled on one FAR grid (0.1 % to 50 %, probit-spaced): a ``far`` column and one FRR column
    per system (the lowest FRR whose FAR is at most the grid value), for ``dvc plots``.

    Examples
    --------
    >>> far = np.array([0.0, 0.1, 0.5, 1.0]); frr = np.array([1.0, 0.3, 0.1, 0.0])
    >>> g = det_grid({"s": (far, frr)}, n=3)
    >>> g["far"].round(3).tolist(), g["s"].tolist()
    ([0.001, 0.061, 0.5], [1.0, 1.0, 0.1])
    """
    from scipy.stats import norm

    grid = norm.cdf(np.linspace(norm.ppf(0.001), norm.ppf(0.5), n))
    out = {"far": grid}
    for system, (far, frr) in curves.items():
        far, frr = np.asarray(far, float), np.asarray(frr, float)
        order = np.argsort(far, kind="stable")
        far, frr = far[order], np.minimum.accumulate(frr[order])  # FRR can only fall as FAR grows
        idx = np.searchsorted(far, grid, side="right") - 1
        out[system] = np.where(idx >= 0, frr[np.clip(idx, 0, None)], 1.0)
    return pd.DataFrame(out)


def flat_metrics(tables: dict, ab: pd.DataFrame | None = None) -> dict[str, float]:
    """Stage 05's flat ``metrics.json``: ``<pair>:<system>:<metric>`` (``XX``/``YY`` for the symmetric rows) and
    ``ab:<system>:<metric>`` for the A/B case study.

    Examples
    --------
    >>> t = pd.DataFrame({"eer": [0.1, 0.05]}, index=["symmetric X/X", "nessa-m2"])
    >>> flat_metrics({"x-y": t})
    {'x-y:XX:eer': 0.1, 'x-y:nessa-m2:eer': 0.05}
    """
    key = {"symmetric X/X": "XX", "symmetric Y/Y": "YY"}
    flat = {f"{name}:{key.get(system, system)}:{col}": float(v)
            for name, t in tables.items() for system, row in t.iterrows()
            for col, v in row.items() if col in ("eer", "min_dcf_p0.01", "frr_at_far0.01", "gain_recovered")}
    if ab is not None:
        flat.update({f"ab:{r}:{c}": float(v) for r, row in ab.iterrows() for c, v in row.items()
                     if c in ("eer", "far_deployed", "frr_deployed", "frr_at_aa_threshold")})
    return flat


def percent_table(main: pd.DataFrame) -> pd.DataFrame:
    """The main table for reading: error rates and shares in %, minDCF as is, two decimals.

    Examples
    --------
    >>> percent_table(pd.DataFrame({"eer": [0.0123], "min_dcf_p0.01": [0.5]})).values.tolist()
    [[1.23, 0.5]]
    """
    cols = [c for c in ("eer", "min_dcf_p0.01", "min_dcf_p0.05", "frr_at_far0.01", "frr_at_far0.05",
                        "gain_recovered", "rel_frr_change") if c in main.columns]
    shown = main[cols].copy()
    pct = [c for c in ("eer", "frr_at_far0.01", "frr_at_far0.05", "gain_recovered", "rel_frr_change") if c in cols]
    shown[pct] *= 100
    return shown.round(2).rename(columns={"eer": "EER %", "frr_at_far0.01": "FRR@FAR1% %",
                                          "frr_at_far0.05": "FRR@FAR5% %", "gain_recovered": "gain recovered %",
                                          "rel_frr_change": "FRR change vs X/X %"})


def key_numbers(tables: dict) -> str:
    """Every pair's EER per system, rounded to 3 decimals: the regression check's output (nbval).

    Examples
    --------
    >>> key_numbers({"x-y": pd.DataFrame({"eer": [0.12345]}, index=["linear"])})
    "x-y {'linear': 0.123}"
    """
    return "\n".join(f"{name} {({k: round(float(v), 3) for k, v in t['eer'].items()})}"
                     for name, t in tables.items())


def ablation_curve(ablation: pd.DataFrame) -> pd.DataFrame:
    """The ablation as one curve for ``dvc plots``: EER against the number of paired utterances.

    Examples
    --------
    >>> a = pd.DataFrame({"n_pairs": [40, 10], "eer": [0.1, 0.2], "n_speakers_used": [10, 5]})
    >>> ablation_curve(a).values.tolist()
    [[10.0, 0.2], [40.0, 0.1]]
    """
    return ablation[["n_pairs", "eer"]].astype(float).sort_values("n_pairs", kind="stable").reset_index(drop=True)
