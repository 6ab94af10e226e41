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


def aligner_file(method: str, k: int = 0) -> str:
    """File name of a method's ``k``-th seed in a pair folder: ``<method>.safetensors`` for the first (the one the
    migration CLI and the A/B study use), ``<method>.seed<k>.safetensors`` for the others.

    Examples
    --------
    >>> aligner_file("nessa-m3"), aligner_file("nessa-m3", 2)
    ('nessa-m3.safetensors', 'nessa-m3.seed2.safetensors')
    """
    return f"{method}.safetensors" if k == 0 else f"{method}.seed{k}.safetensors"


def save_aligners(aligners: dict, out_dir, *, pair: str, enroll_model: str, runtime_model: str) -> None:
    """Write each aligner (:func:`aligner_file`; a method may hold a list, one aligner per seed) and ``pair.json``
    (which models, which methods, each method's seeds) to ``out_dir``."""
    out = Path(out_dir)
    seeds = {}
    for method, fitted in aligners.items():
        fitted = list(fitted) if isinstance(fitted, (list, tuple)) else [fitted]
        for k, aligner in enumerate(fitted):
            aligner.save(out / aligner_file(method, k))
        seeds[method] = [a.seed for a in fitted]
    atomic_write_text(out / PAIR_FILE, json.dumps({"pair": pair, "enroll_model": enroll_model,
                                                   "runtime_model": runtime_model,
                                                   "methods": list(aligners), "seeds": seeds}, indent=1) + "\n")


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
        ``{pair: {method: [Aligner, ...]}}``: the aligners stage 04 fitted (the methods its ``pair.json`` lists),
        one per seed, first seed first.
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

    def condition_samples(self, x_model: str, y_model: str, condition: str) -> dict:
        """The deployment check's two paired samples of ``(x, y, speakers)``: the held-out recording condition
        ``eval+<condition>.npz`` of stage 03 and the same utterances as recorded (``eval.npz``)."""
        sets = [embeddings.load_embeddings(self.embeddings_root / m / f"eval+{condition}.npz") for m in (x_model, y_model)]
        x, y, ids, spk = embeddings.paired(*sets, names=(x_model, y_model))
        base = []
        for m in (x_model, y_model):
            s = self.sets[m]
            pos = {u: i for i, u in enumerate(s.utt_ids)}
            base.append(s.embeddings[[pos[u] for u in ids]])
        return {"as recorded": (base[0], base[1], spk), f"+{condition}": (x, y, spk)}

    def fit_pool(self, x_model: str, y_model: str, splits) -> embeddings.PairedSplits:
        """The paired embeddings stage 04 fits on (``splits`` of stage 03's output), read once per pair."""
        key = (x_model, y_model, tuple(splits))
        if key not in self._pools:
            self._pools[key] = embeddings.load_paired_splits(self.embeddings_root, x_model, y_model, list(splits))
        return self._pools[key]

    def first_fit(self, pair: str, method: str):
        """Stage 04's aligner of ``method`` for ``pair`` (its first seed), or ``None`` when it fitted none."""
        fits = self.aligners.get(pair, {}).get(method)
        return fits[0] if fits else None

    def stage_aligners(self, x_model: str, y_model: str, methods) -> tuple[str | None, dict | None]:
        """``(pair, {method: Aligner})`` of the first pair fitted with this orientation and all ``methods``, or
        ``(None, None)`` when stage 04 fitted none (the caller then fits its own). Seeded methods give their first
        seed's aligner."""
        for name, (x, y) in self.orientations().items():
            if (x, y) == (x_model, y_model) and set(methods) <= set(self.aligners[name]):
                return name, {m: self.aligners[name][m][0] for m in methods}
        return None, None


def load_study(pairs: dict, *, embeddings_root, encoders_root, aligners_root, extra_models=()) -> Study:
    """Load the evaluation embeddings, model objectives and stage-04 aligners of ``pairs``.

    ``extra_models`` (the A/B case study's) are loaded too. A pair whose aligner folder is missing raises
    ``FileNotFoundError`` naming it (stage 04 has not run for it).
    """
    # json only: the encoder code (torch, SpeechBrain) is not a dependency of the evaluation
    from nessa_lib.encoders.meta import objective

    pairs = dict(sorted(pairs.items()))
    models = sorted({m for p in pairs.values() for m in (p["enroll_model"], p["runtime_model"])} | set(extra_models))
    objectives = {m: objective(Path(encoders_root) / m) for m in models}
    sets = {m: embeddings.load_embeddings(Path(embeddings_root) / m / "eval.npz") for m in models}
    aligners = {}
    for name in pairs:
        info = Path(aligners_root) / name / PAIR_FILE
        if not info.is_file():
            raise FileNotFoundError(f"no aligners for pair {name!r}: {info} is missing (run stage fit_aligners@{name})")
        meta = json.loads(info.read_text())
        n_seeds = {m: len(meta.get("seeds", {}).get(m, [0])) for m in meta["methods"]}
        aligners[name] = {m: [align.load(info.parent / aligner_file(m, k)) for k in range(n_seeds[m])]
                          for m in meta["methods"]}
    return Study(pairs, objectives, sets, aligners, Path(embeddings_root))


@dataclass
class Evaluated:
    """Per pair: the metrics table (rows = systems), every system's trial scores (the first seed's) and DET curve,
    and, with a bootstrap, every system's per-round metrics (``{pair: {system: {metric: rounds}}}``)."""

    tables: dict
    scores: dict
    det: dict
    rounds: dict = field(default_factory=dict)


def _pair_table(scores: dict, labels, boot):
    """One pair's table and bootstrap rounds (a worker job of :func:`evaluate_study`)."""
    from nessa_lib.evaluation import tables

    rounds: dict = {}
    return tables.table_from_scores(scores, labels, boot=boot, rounds=rounds), rounds


def evaluate_study(study: Study, enroll: pd.DataFrame, trials: pd.DataFrame, *, boot=None,
                   workers: int = 1) -> Evaluated:
    """Score every pair's symmetric systems and aligners (every seed) on the evaluation trials.

    For each pair: the table of :func:`nessa_lib.evaluation.tables.table_from_scores` (seed means and spreads;
    with ``boot``, a :class:`nessa_lib.evaluation.bootstrap.SpeakerBootstrap` of ``trials``, the 95 % speaker
    intervals, the same rounds for every pair so that comparisons are paired), the trial scores of ``X/X``,
    ``Y/Y`` and every method (first seed) and their DET curves ``(far, frr)``. Each system is scored once; the
    pairs' bootstraps run in ``workers`` processes (the same rounds, so the same result for any ``workers``).
    """
    from nessa_lib.evaluation import metrics, tables
    from nessa_lib.parallel import run_jobs

    short = {tables.SYMMETRIC_X: "X/X", tables.SYMMETRIC_Y: "Y/Y"}
    labels = trials["label"].to_numpy()
    out = Evaluated({}, {}, {}, {})
    all_scores = {}
    for name in study.pairs:
        x, y, ids = study.eval_pair(*study.orientation(name))
        all_scores[name] = tables.pair_scores(study.aligners[name], x, y, ids, enroll, trials)
    done = run_jobs(_pair_table, [(all_scores[n], labels, boot) for n in study.pairs],
                    workers=workers if boot is not None else 1)
    for name, (table, rounds) in zip(study.pairs, done):
        out.tables[name], out.rounds[name] = table, rounds
        sc = {short.get(system, system): s[0] if isinstance(s, list) else s for system, s in all_scores[name].items()}
        out.scores[name] = sc
        out.det[name] = {k: metrics.det_curve(v, trials.label)[:2] for k, v in sc.items()}
    return out


def det_legend_intervals(table: pd.DataFrame) -> dict:
    """``{DET label: (eer, lo, hi)}`` of a pair's table with intervals (labels as in :class:`Evaluated`'s
    ``det``: ``X/X``, ``Y/Y``, the methods); empty without intervals.

    Examples
    --------
    >>> t = pd.DataFrame({"eer": [0.1], "eer_lo": [0.08], "eer_hi": [0.12]}, index=["symmetric X/X"])
    >>> det_legend_intervals(t)
    {'X/X': (0.1, 0.08, 0.12)}
    """
    if "eer_lo" not in table:
        return {}
    short = {"symmetric X/X": "X/X", "symmetric Y/Y": "Y/Y"}
    return {short.get(s, s): (float(r["eer"]), float(r["eer_lo"]), float(r["eer_hi"])) for s, r in table.iterrows()}


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
    ``ab:<system>:<metric>`` for the A/B case study, each with its interval (``<metric>_lo``, ``<metric>_hi``) and
    seed spread (``<metric>_seed_sd``) where the tables have them (those are left out where NaN).

    Examples
    --------
    >>> t = pd.DataFrame({"eer": [0.1, 0.05], "eer_lo": [0.08, 0.04]}, index=["symmetric X/X", "nessa-m2"])
    >>> flat_metrics({"x-y": t})
    {'x-y:XX:eer': 0.1, 'x-y:XX:eer_lo': 0.08, 'x-y:nessa-m2:eer': 0.05, 'x-y:nessa-m2:eer_lo': 0.04}
    """
    def keep(col, names, v):  # a metric always (NaN included, as before); its interval and spread where known
        return col in names or (pd.notna(v) and any(col in (f"{n}_lo", f"{n}_hi", f"{n}_seed_sd") for n in names))

    key = {"symmetric X/X": "XX", "symmetric Y/Y": "YY"}
    main = ("eer", "min_dcf_p0.01", "frr_at_far0.01", "gain_recovered")
    flat = {f"{name}:{key.get(system, system)}:{col}": float(v)
            for name, t in tables.items() for system, row in t.iterrows()
            for col, v in row.items() if keep(col, main, v)}
    if ab is not None:
        flat.update({f"ab:{r}:{c}": float(v) for r, row in ab.iterrows() for c, v in row.items()
                     if keep(c, ("eer", "far_deployed", "frr_deployed", "frr_at_aa_threshold"), v)})
    return flat


def percent_table(main: pd.DataFrame) -> pd.DataFrame:
    """The main table for reading: error rates and shares in %, minDCF as is, two decimals; a metric with an
    interval gets a ``95 % CI`` column (``lo-hi``), a seeded one its seed standard deviation.

    Examples
    --------
    >>> percent_table(pd.DataFrame({"eer": [0.0123], "min_dcf_p0.01": [0.5]})).values.tolist()
    [[1.23, 0.5]]
    >>> percent_table(pd.DataFrame({"eer": [0.0123], "eer_lo": [0.01], "eer_hi": [0.015]})).values.tolist()
    [[1.23, '1.00-1.50']]
    """
    names = {"eer": "EER %", "min_dcf_p0.01": "min_dcf_p0.01", "min_dcf_p0.05": "min_dcf_p0.05",
             "frr_at_far0.01": "FRR@FAR1% %", "frr_at_far0.05": "FRR@FAR5% %",
             "gain_recovered": "gain recovered %", "rel_frr_change": "FRR change vs X/X %"}
    pct = {"eer", "frr_at_far0.01", "frr_at_far0.05", "gain_recovered", "rel_frr_change"}
    shown = {}
    for c, label in names.items():
        if c not in main.columns:
            continue
        k = 100.0 if c in pct else 1.0
        shown[label] = (main[c] * k).round(2)
        if f"{c}_lo" in main.columns:
            shown[f"{label} 95 % CI"] = [f"{lo * k:.2f}-{hi * k:.2f}" if pd.notna(lo) else ""
                                         for lo, hi in zip(main[f"{c}_lo"], main[f"{c}_hi"])]
        if f"{c}_seed_sd" in main.columns:
            shown[f"{label} seed s.d."] = (main[f"{c}_seed_sd"] * k).round(2)
    return pd.DataFrame(shown, index=main.index)


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
