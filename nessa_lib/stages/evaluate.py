"""Stage 05, ``evaluate``: every pair and method scored on the evaluation trials with speaker-bootstrap
intervals, the paper's claims, the A/B case study, the alignment-data ablation and the deployment check.

``notebooks/05_evaluate.py`` calls these; :class:`Params` is the ``evaluate`` section of ``params.yaml`` plus
what it reads of stage 04's and stage 03's sections. The pairs always come from ``params.yaml``
(``fit_aligners.pairs``), never from the folders on disk, so a pair removed from the parameters cannot linger in
the tables.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from nessa_lib import embeddings
from nessa_lib.align.folder import load_pair
from nessa_lib.align.hparams import METHODS, resolve_hparams
from nessa_lib.evaluation.operating_points import DEFAULT_FARS, frr_key
from nessa_lib.stages import schema
from nessa_lib.stages.schema import field

SECTION = "evaluate"
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class AsNormParams:
    """``evaluate.asnorm``: the AS-norm comparison's cohort (speakers of stage 04's fit pool) and top-k."""

    top_k: int = field(ge=2)
    cohort_speakers: int = field(ge=0)


@dataclasses.dataclass(frozen=True)
class Params:
    """The ``evaluate`` section of ``params.yaml`` (its comments say what each key does), + ``base.seed``, the
    pairs, fit splits and hyper-parameters of ``fit_aligners`` and stage 03's held-out ``check_condition``."""

    seed: int = field(source="base.seed")
    ab_model_a: str = field()
    ab_model_b: str = field()
    far_targets: tuple[float, ...] = field(gt=0, lt=1, each=True)
    ab_methods: tuple[str, ...] = field(choices=METHODS, each=True)
    ablation_pair: str = field()
    ablation_methods: tuple[str, ...] = field(choices=METHODS, each=True)
    ablation_speakers: tuple[int, ...] = field(ge=0, each=True)
    ablation_utts: tuple[int, ...] = field(ge=0, each=True)
    learning_curve_targets: tuple[float, ...] = field(gt=0, le=1, each=True)
    calibration_split: str = field()
    bootstrap_rounds: int = field(ge=1)
    check_rounds: int = field(ge=1)
    workers: int = field(ge=1)
    threads: int = field(ge=1)
    asnorm: AsNormParams = field()
    chain: tuple[str, ...] = field()
    chain_hparams: dict = field()
    pairs: dict = field(source="fit_aligners.pairs")
    methods: tuple[str, ...] = field(source="fit_aligners.methods")
    fit_splits: tuple[str, ...] = field(source="fit_aligners.fit_splits")
    hparams: dict = field(source="fit_aligners.hparams")
    check_condition: str = field(source="extract_embeddings.check_condition")

    def cross_checks(self) -> list[str]:
        """The FAR targets are distinct and ascending (the first is the strictest: ``rel_frr_change`` reads it),
        the ablation's pair is one of the pairs, the A/B case study names two different models, and AS-norm's
        top-k fits in its cohort (when the cohort's size is set; else it is checked against each fit pool), and
        the chain of upgrades is empty or at least three distinct models whose consecutive pairs are fitted with
        M2 (:func:`chain_problems`), and ``chain_hparams`` on top of M2's hyper-parameters are valid ones."""
        out = chain_problems(self.chain, self.pairs, self.methods)
        try:
            resolve_hparams("nessa-m2", {**dict(self.hparams.get("nessa-m2") or {}), **dict(self.chain_hparams)})
        except (TypeError, ValueError) as err:
            out.append(f"evaluate.chain_hparams: {err}")
        fars = list(self.far_targets)
        if not fars or fars != sorted(set(fars)):
            out.append(f"evaluate.far_targets must be distinct FAR fractions in ascending order, at least one, "
                       f"got {fars}")
        if self.ablation_pair not in self.pairs:
            out.append(f"evaluate.ablation_pair {self.ablation_pair!r} is not a pair of fit_aligners.pairs "
                       f"{list(self.pairs)}")
        if not self.ablation_methods or len(set(self.ablation_methods)) != len(self.ablation_methods):
            out.append(f"evaluate.ablation_methods must name at least one method, each once, got "
                       f"{list(self.ablation_methods)}")
        if self.ab_model_a == self.ab_model_b:
            out.append(f"evaluate.ab_model_a and ab_model_b must differ, both are {self.ab_model_a!r}")
        n = self.asnorm.cohort_speakers
        if n and self.asnorm.top_k > n:
            out.append(f"evaluate.asnorm.top_k ({self.asnorm.top_k}) must not exceed the cohort, "
                       f"evaluate.asnorm.cohort_speakers ({n})")
        return out


def pair_of(pairs: dict, x_model: str, y_model: str) -> str | None:
    """The name of the first pair of ``pairs`` (``fit_aligners.pairs``) fitted ``x_model -> y_model``, or ``None``.

    Examples
    --------
    >>> pair_of({"a-b": {"enroll_model": "a", "runtime_model": "b"}}, "a", "b"), pair_of({}, "a", "b")
    ('a-b', None)
    """
    return next((name for name, spec in pairs.items()
                 if (spec.get("enroll_model"), spec.get("runtime_model")) == (x_model, y_model)), None)


def chain_problems(chain, pairs: dict, methods) -> list[str]:
    """What is wrong with ``evaluate.chain`` (empty: nothing, or the table is disabled): it must name at least
    three distinct models, oldest first, each consecutive two a pair of ``fit_aligners.pairs``, and
    ``fit_aligners.methods`` must include ``nessa-m2`` (the method composed at each upgrade).

    Examples
    --------
    >>> pairs = {"a-b": {"enroll_model": "a", "runtime_model": "b"}, "b-c": {"enroll_model": "b", "runtime_model": "c"}}
    >>> chain_problems(["a", "b", "c"], pairs, ["nessa-m2"]), chain_problems([], {}, [])
    ([], [])
    >>> print(chain_problems(["a", "c", "b"], pairs, ["nessa-m2"])[0])  # doctest: +NORMALIZE_WHITESPACE
    evaluate.chain: upgrade a -> c is not a pair of fit_aligners.pairs (add e.g. 'a-c: {enroll_model: a,
    runtime_model: c}'), so it has no aligners to chain
    """
    chain = list(chain)
    if not chain:
        return []
    out = []
    if len(chain) < 3 or len(set(chain)) != len(chain):
        out.append(f"evaluate.chain must name at least three distinct models, oldest first (v1, v2, v3 ...), or be "
                   f"empty to disable the chain table; got {chain}")
    for a, b in zip(chain, chain[1:]):
        if a != b and pair_of(pairs, a, b) is None:
            out.append(f"evaluate.chain: upgrade {a} -> {b} is not a pair of fit_aligners.pairs (add e.g. "
                       f"'{a}-{b}: {{enroll_model: {a}, runtime_model: {b}}}'), so it has no aligners to chain")
    if "nessa-m2" not in methods:
        out.append(f"evaluate.chain needs nessa-m2 in fit_aligners.methods (the aligner composed at each upgrade), "
                   f"got {list(methods)}")
    return out


def load(params_file: str = schema.PARAMS_FILE, root=None) -> Params:
    """The ``evaluate`` parameters of ``params_file`` (repo-relative), checked.

    Examples
    --------
    >>> p = load()
    >>> all(0 < f < 1 for f in p.far_targets), p.ablation_pair in p.pairs
    (True, True)
    """
    return schema.load(Params, SECTION, params_file, root)


@dataclasses.dataclass
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
        ``{pair: {method: [Aligner, ...]}}``: the aligners stage 04 fitted (every method of
        ``fit_aligners.methods`` the pair has: ``identity`` only between models of the same dimension), one per
        seed, first seed first.
    embeddings_root : Path
        Stage 03's output folder (for the fit pools).
    """

    pairs: dict
    objectives: dict
    sets: dict
    aligners: dict
    embeddings_root: Path
    _pools: dict = dataclasses.field(default_factory=dict, repr=False)

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


def load_study(pairs: dict, *, methods, embeddings_root, encoders_root, aligners_root, extra_models=()) -> Study:
    """Load the evaluation embeddings, model objectives and stage-04 aligners of ``pairs``.

    The aligners are those of ``methods`` (``fit_aligners.methods``), read from stage 04's method folders under
    ``aligners_root`` (:func:`nessa_lib.align.folder.load_pair`). ``extra_models`` (the A/B case study's) are
    loaded too. A method whose folder is missing, or that has not been fitted on a pair, raises
    ``FileNotFoundError`` naming the stage to run (``fit_aligners@<method>``).
    """
    # json only: the encoder code (torch, SpeechBrain) is not a dependency of the evaluation
    from nessa_lib.encoders.meta import objective

    pairs = dict(sorted(pairs.items()))
    models = sorted({m for p in pairs.values() for m in (p["enroll_model"], p["runtime_model"])} | set(extra_models))
    objectives = {m: objective(Path(encoders_root) / m) for m in models}
    sets = {m: embeddings.load_embeddings(Path(embeddings_root) / m / "eval.npz") for m in models}
    aligners = {}
    for name, spec in pairs.items():
        aligners[name] = load_pair(aligners_root, name, methods, **spec)
    return Study(pairs, objectives, sets, aligners, Path(embeddings_root))


@dataclasses.dataclass
class Evaluated:
    """Per pair: the metrics table (rows = systems), every system's trial scores (the first seed's) and DET curve,
    and, with a bootstrap, every system's per-round metrics (``{pair: {system: {metric: rounds}}}``)."""

    tables: dict
    scores: dict
    det: dict
    rounds: dict = dataclasses.field(default_factory=dict)


def _pair_table(scores: dict, labels, boot, fars):
    """One pair's table and bootstrap rounds (a worker job of :func:`evaluate_study`)."""
    from nessa_lib.evaluation import tables

    rounds: dict = {}
    return tables.table_from_scores(scores, labels, boot=boot, rounds=rounds, fars=fars), rounds


def evaluate_study(study: Study, enroll: pd.DataFrame, trials: pd.DataFrame, *, fars, boot=None,
                   workers: int = 1) -> Evaluated:
    """Score every pair's symmetric systems and aligners (every seed) on the evaluation trials.

    For each pair: the table of :func:`nessa_lib.evaluation.tables.table_from_scores` (seed means and spreads;
    with ``boot``, a :class:`nessa_lib.evaluation.bootstrap.SpeakerBootstrap` of ``trials``, the 95 % speaker
    intervals, the same rounds for every pair so that comparisons are paired; ``frr_at_far<far>`` for every FAR
    limit of ``fars``, e.g. ``evaluate.far_targets``), the trial scores of ``X/X``,
    ``Y/Y`` and every method (first seed) and their DET curves ``(far, frr)``. Each system is scored once; the
    pairs' bootstraps run in ``workers`` processes (the same rounds, so the same result for any ``workers``).
    """
    from nessa_lib.evaluation import metrics, tables
    from nessa_lib.parallel import run_jobs

    labels = trials["label"].to_numpy()
    out = Evaluated({}, {}, {}, {})
    all_scores = {}
    for name in study.pairs:
        x, y, ids = study.eval_pair(*study.orientation(name))
        all_scores[name] = tables.pair_scores(study.aligners[name], x, y, ids, enroll, trials)
    done = run_jobs(_pair_table, [(all_scores[n], labels, boot, tuple(fars)) for n in study.pairs],
                    workers=workers if boot is not None else 1)
    for name, (table, rounds) in zip(study.pairs, done):
        out.tables[name], out.rounds[name] = table, rounds
        sc = out.scores[name] = first_seed_scores(all_scores[name])
        out.det[name] = {k: metrics.det_curve(v, trials.label)[:2] for k, v in sc.items()}
    return out


def calibration_study(study: Study, evaluated: Evaluated, trials: pd.DataFrame, *, fit_splits, calibration_split: str,
                      k_enroll: int, manifest_df: pd.DataFrame, seed: int, fars, boot=None,
                      calibrations: dict | None = None) -> pd.DataFrame:
    """Every pair's systems calibrated on trials of ``calibration_split`` and judged on the evaluation trials.

    The calibration trials are built as the A/B case study builds its own (:func:`nessa_lib.evaluation.ab.
    alignment_trials` on the fit pool's rows of that split: voices the encoders never heard, which the aligners
    were fitted on), and scored by ``X/X``, ``Y/Y`` and every method's first-seed aligner, the systems of
    ``evaluated.scores``. Per system and FAR target: :func:`nessa_lib.evaluation.calibration.system_calibration`.

    Parameters
    ----------
    manifest_df : DataFrame
        The corpus manifest: its enrollment-condition flags make calibration profiles enrolled on clean audio, as
        the evaluation's are.
    calibrations : dict, optional
        Filled with ``{pair: {system: Calibration}}`` (for :func:`write_calibrations`).

    Returns
    -------
    DataFrame
        Index ``(pair, system, far_target)``; with ``boot``, 95 % speaker intervals on Cllr, actual DCF and the
        evaluation FAR and FRR of every threshold.
    """
    from nessa_lib.data.manifest import enroll_flags
    from nessa_lib.evaluation import ab, calibration, tables

    labels = trials["label"].to_numpy()
    out = {}
    for name in study.pairs:
        pool = study.fit_pool(*study.orientation(name), fit_splits)
        rows = np.flatnonzero(pool.splits == calibration_split)
        if not len(rows):
            raise ValueError(f"evaluate.calibration_split {calibration_split!r} has no utterance in the fit pool of "
                             f"pair {name!r} (splits {sorted(set(pool.splits))})")
        ids = pool.utt_ids[rows]
        cal_enroll, cal_trials = ab.alignment_trials(pool.speaker_ids[rows], ids, k_enroll=k_enroll,
                                                     n_nontarget_per_profile=nontarget_per_profile(trials),
                                                     rng=seed, enroll_flag=enroll_flags(manifest_df, ids))
        cal = first_seed_scores(tables.pair_scores(study.aligners[name], pool.x[rows], pool.y[rows], ids, cal_enroll,
                                                   cal_trials))
        fitted = {}
        out[name] = calibration.system_calibration(cal, cal_trials["label"].to_numpy(), evaluated.scores[name],
                                                   labels, fars, boot=boot, calibrations=fitted)
        if calibrations is not None:
            calibrations[name] = fitted
    return pd.concat(out, names=["pair"])


def calibration_file(out_root, pair: str, system: str) -> Path:
    """Where stage 05 writes a system's calibration file: ``<out_root>/<pair>/<stem>.calibration.json``, the stem
    of the aligner file for a method (:func:`nessa_lib.evaluation.calibration.calibration_path` of
    ``<pair>/<method>.safetensors``), ``XX`` / ``YY`` for the symmetric systems.

    Examples
    --------
    >>> calibration_file("models/evaluate", "x-y", "nessa-m2").as_posix()
    'models/evaluate/x-y/nessa-m2.calibration.json'
    >>> calibration_file("models/evaluate", "x-y", "X/X").name
    'XX.calibration.json'
    """
    from nessa_lib.evaluation.calibration import calibration_path

    stem = {"X/X": "XX", "Y/Y": "YY"}.get(system, system)
    return calibration_path(Path(out_root) / pair / f"{stem}.safetensors")


def write_calibrations(study: Study, cal_table: pd.DataFrame, calibrations: dict, out_root) -> list[Path]:
    """Write every system's calibration and chosen thresholds (:func:`calibration_study`) as the calibration
    files ``python -m nessa_lib.migrate --calibration FILE`` reads (:func:`calibration_file`): a method's records
    stage 04's aligner of its first seed (the one scored; ``models/fit_aligners/<method>/<pair>.safetensors``), so
    it is refused with any other aligner; X/X and Y/Y record none. Returns the files written.
    """
    from nessa_lib.evaluation.calibration import save_calibration

    written = []
    for pair, systems in calibrations.items():
        x, y = study.orientation(pair)
        for system, cal in systems.items():
            aligner = None if system in ("X/X", "Y/Y") else study.first_fit(pair, system)
            label = {"X/X": f"{x}/{x}", "Y/Y": f"{y}/{y}"}.get(system, f"{x} profiles -> {y} tests, {system}")
            path = calibration_file(out_root, pair, system)
            path.parent.mkdir(parents=True, exist_ok=True)
            save_calibration(path, cal, cal_table.loc[(pair, system)], aligner=aligner, system=f"{pair}: {label}")
            written.append(path)
    return written


def asnorm_study(study: Study, evaluated: Evaluated, enroll: pd.DataFrame, trials: pd.DataFrame, *, fit_splits,
                 top_k: int, cohort_speakers: int, seed: int, fars, boot=None, workers: int = 1) -> pd.DataFrame:
    """Every pair's systems (``X/X``, ``Y/Y``, each method's first seed: those of ``evaluated.scores``) scored
    without and with AS-norm (:mod:`nessa_lib.evaluation.asnorm`) on the evaluation trials.

    The cohort: one averaged embedding per speaker of the pair's fit pool (the ``fit_splits`` utterances the
    aligners were fitted on; never an evaluation speaker), ``cohort_speakers`` of them drawn with ``seed`` (0:
    all). Each side of a trial meets the cohort as the *other* side produces it (see the module docstring of
    :mod:`nessa_lib.evaluation.asnorm`): the profiles the runtime-side cohort (Y, through the aligner's
    ``map_runtime``), the test utterances the enrollment-side cohort (X averaged, then ``map_enrollment``, as
    profiles are migrated). X/X and Y/Y use their own model's cohort on both sides.

    Returns
    -------
    DataFrame
        Index ``(pair, system, asnorm)``: :func:`nessa_lib.evaluation.asnorm.compare_norm` per pair, with 95 %
        speaker intervals and the paired interval of the change when ``boot`` is given (the pairs' bootstraps in
        ``workers`` processes; the same result for any ``workers``).

    Raises
    ------
    ValueError
        When ``top_k`` exceeds a pair's cohort (naming ``evaluate.asnorm.top_k``) or ``cohort_speakers`` the
        speakers of a fit pool (naming ``evaluate.asnorm.cohort_speakers``).
    """
    from nessa_lib.evaluation import asnorm
    from nessa_lib.parallel import run_jobs

    labels = trials["label"].to_numpy()
    jobs = []
    for name in study.pairs:
        x_model, y_model = study.orientation(name)
        pool = study.fit_pool(x_model, y_model, fit_splits)
        n_pool = len(np.unique(pool.speaker_ids))
        if cohort_speakers > n_pool:
            raise ValueError(f"evaluate.asnorm.cohort_speakers ({cohort_speakers}) exceeds the {n_pool} speakers of "
                             f"pair {name!r}'s fit pool (fit_aligners.fit_splits {list(fit_splits)})")
        size = cohort_speakers or n_pool
        if top_k > size:
            raise ValueError(f"evaluate.asnorm.top_k ({top_k}) exceeds the AS-norm cohort of pair {name!r}: {size} "
                             f"speakers of its fit pool (fit_aligners.fit_splits {list(fit_splits)}, "
                             f"evaluate.asnorm.cohort_speakers {cohort_speakers}); lower top_k")
        # The same seed draws the same speakers for both models: the two cohorts hold the same voices, row for row.
        _, cx = asnorm.speaker_cohort(pool.x, pool.speaker_ids, n_speakers=cohort_speakers, seed=seed)
        _, cy = asnorm.speaker_cohort(pool.y, pool.speaker_ids, n_speakers=cohort_speakers, seed=seed)
        x, y, ids = study.eval_pair(x_model, y_model)
        off = evaluated.scores[name]
        on = {}
        for system, scores in off.items():
            if system in ("X/X", "Y/Y"):
                e, c = (x, cx) if system == "X/X" else (y, cy)
                on[system] = asnorm.as_norm_lists(scores, e, e, ids, enroll, trials, cohort_for_profiles=c,
                                                  cohort_for_tests=c, top_k=top_k)
                continue
            a = study.first_fit(name, system)
            on[system] = asnorm.as_norm_lists(scores, x, a.map_runtime(y), ids, enroll, trials,
                                              cohort_for_profiles=a.map_runtime(cy),
                                              cohort_for_tests=a.map_enrollment(cx), top_k=top_k,
                                              enroll_map=a.map_enrollment)
        jobs.append((off, on, labels, tuple(fars), boot))
    done = run_jobs(_compare_norm, jobs, workers=workers if boot is not None else 1)
    return pd.concat(dict(zip(study.pairs, done)), names=["pair"])


def _compare_norm(off, on, labels, fars, boot):
    """One pair's AS-norm table (a worker job of :func:`asnorm_study`)."""
    from nessa_lib.evaluation.asnorm import compare_norm

    return compare_norm(off, on, labels, fars=fars, boot=boot)


def asnorm_percent_table(table: pd.DataFrame, fars=DEFAULT_FARS) -> pd.DataFrame:
    """The AS-norm table for reading: per pair and system, the EER and the FRR at the last FAR target without
    and with AS-norm and the change (%, with 95 % intervals; the change's interval is paired).

    Examples
    --------
    >>> idx = pd.MultiIndex.from_tuples([("x-y", "X/X", "off"), ("x-y", "X/X", "on")],
    ...                                 names=["pair", "system", "asnorm"])
    >>> t = pd.DataFrame({"eer": [0.1, 0.08], "eer_change": [np.nan, -0.02]}, index=idx)
    >>> asnorm_percent_table(t, fars=()).values.tolist()
    [[10.0, 8.0, -2.0]]
    """
    cols = {}
    for m, label in [("eer", "EER %"), *([(frr_key(fars[-1]), f"FRR@{far_label(fars[-1])} %")] if fars else [])]:
        for norm in ("off", "on"):
            part = table.xs(norm, level="asnorm")
            cols[f"{label} {norm}"] = (part[m] * 100).round(2)
            if f"{m}_lo" in part:
                cols[f"{label} {norm} 95 % CI"] = [f"{lo * 100:.2f}-{hi * 100:.2f}"
                                                   for lo, hi in zip(part[f"{m}_lo"], part[f"{m}_hi"])]
        on = table.xs("on", level="asnorm")
        cols[f"{label} change"] = (on[f"{m}_change"] * 100).round(2)
        if f"{m}_change_lo" in on:
            cols[f"{label} change 95 % CI"] = [f"{lo * 100:.2f}-{hi * 100:.2f}"
                                               for lo, hi in zip(on[f"{m}_change_lo"], on[f"{m}_change_hi"])]
    return pd.DataFrame(cols)


def nontarget_per_profile(trials: pd.DataFrame) -> int:
    """Non-target trials per profile of the evaluation lists (the median; calibration lists are built alike).

    Examples
    --------
    >>> nontarget_per_profile(pd.DataFrame({"profile_id": ["a", "a", "a", "b", "b", "b"], "label": [1, 0, 0, 1, 0, 0]}))
    2
    """
    per_profile = trials[trials["label"] == 0].groupby("profile_id").size()
    return int(per_profile.median())


def first_seed_scores(scores: dict) -> dict:
    """Each system's trial scores of :func:`nessa_lib.evaluation.tables.pair_scores`, the first seed's where a
    method has several, keyed by the labels of :class:`Evaluated` (``X/X``, ``Y/Y``, the methods).

    Examples
    --------
    >>> s = first_seed_scores({"symmetric X/X": np.array([0.1]), "nessa-m2": [np.array([0.2]), np.array([0.3])]})
    >>> {k: v.tolist() for k, v in s.items()}
    {'X/X': [0.1], 'nessa-m2': [0.2]}
    """
    from nessa_lib.evaluation import tables

    short = {tables.SYMMETRIC_X: "X/X", tables.SYMMETRIC_Y: "Y/Y"}
    return {short.get(system, system): s[0] if isinstance(s, list) else s for system, s in scores.items()}


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


def far_label(far: float) -> str:
    """A FAR limit (fraction) as the tables' percent label.

    Examples
    --------
    >>> far_label(0.01), far_label(0.05), far_label(0.125)
    ('FAR1%', 'FAR5%', 'FAR12.5%')
    """
    return f"FAR{100 * float(far):g}%"  # :g drops the float noise of 100 * 0.05


def _percent_columns(table: pd.DataFrame, names: dict, pct: set) -> pd.DataFrame:
    """``table``'s columns ``names`` (in that order, where present) renamed, those of ``pct`` in %, two decimals,
    with a ``95 % CI`` column where the table has ``_lo``/``_hi`` and a ``seed s.d.`` column where it has one."""
    shown = {}
    for c, label in names.items():
        if c not in table.columns:
            continue
        k = 100.0 if c in pct else 1.0
        shown[label] = (table[c] * k).round(2)
        if f"{c}_lo" in table.columns:
            shown[f"{label} 95 % CI"] = [f"{lo * k:.2f}-{hi * k:.2f}" if pd.notna(lo) else ""
                                         for lo, hi in zip(table[f"{c}_lo"], table[f"{c}_hi"])]
        if f"{c}_seed_sd" in table.columns:
            shown[f"{label} seed s.d."] = (table[f"{c}_seed_sd"] * k).round(2)
    return pd.DataFrame(shown, index=table.index)


def percent_table(main: pd.DataFrame, fars=DEFAULT_FARS) -> pd.DataFrame:
    """The main table for reading: error rates and shares in %, minDCF as is, two decimals; a metric with an
    interval gets a ``95 % CI`` column (``lo-hi``), a seeded one its seed standard deviation. ``fars`` are the
    FAR limits of the table's FRR columns (``evaluate.far_targets``), shown as ``FRR@FAR12.5% %`` and so on.

    Examples
    --------
    >>> percent_table(pd.DataFrame({"eer": [0.0123], "min_dcf_p0.01": [0.5]})).values.tolist()
    [[1.23, 0.5]]
    >>> percent_table(pd.DataFrame({"eer": [0.0123], "eer_lo": [0.01], "eer_hi": [0.015]})).values.tolist()
    [[1.23, '1.00-1.50']]
    >>> percent_table(pd.DataFrame({"frr_at_far0.125": [0.2]}), fars=(0.125,)).to_dict("list")
    {'FRR@FAR12.5% %': [20.0]}
    """
    frr = {frr_key(f): f"FRR@{far_label(f)} %" for f in fars}
    names = {"eer": "EER %", "min_dcf_p0.01": "min_dcf_p0.01", "min_dcf_p0.05": "min_dcf_p0.05", **frr,
             "gain_recovered": "gain recovered %", "rel_frr_change": f"FRR@{far_label(fars[0])} change vs X/X %"}
    return _percent_columns(main, names, {"eer", *frr, "gain_recovered", "rel_frr_change"})


def ab_percent_table(ab_table: pd.DataFrame) -> pd.DataFrame:
    """The A/B case study for reading (one block per FAR target): the FAR and FRR as deployed, the FRR at the
    target on the evaluation trials themselves, and the relative FRR impact against A/A (the figure the paper
    reports, 43.62 % at best at 12.5 % FAR), in %, with their 95 % intervals.

    Examples
    --------
    >>> t = pd.DataFrame({"frr_deployed": [0.2, 0.15], "rel_frr_impact": [0.0, 0.25]},
    ...                  index=pd.MultiIndex.from_product([[0.125], ["A/A", "B/B"]], names=["far_target", "system"]))
    >>> ab_percent_table(t).values.tolist()
    [[20.0, 0.0], [15.0, 25.0]]
    """
    names = {"far_deployed": "FAR deployed %", "frr_deployed": "FRR deployed %",
             "rel_frr_impact": "relative FRR impact vs A/A %", "frr_at_far_oracle": "FRR at the target FAR %",
             "rel_frr_impact_oracle": "relative FRR impact vs A/A at the target FAR %", "eer": "EER %"}
    return _percent_columns(ab_table, names, set(names))


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
    """The ablation's points for other plotting tools: EER against the number of paired utterances, per method and
    utterances per speaker.

    Examples
    --------
    >>> a = pd.DataFrame({"method": ["m", "m"], "utts_per_speaker": [-1, -1], "n_pairs": [40, 10], "eer": [0.1, 0.2],
    ...                   "n_speakers_used": [10, 5]})
    >>> ablation_curve(a).values.tolist()
    [['m', -1, 10, 0.2], ['m', -1, 40, 0.1]]
    """
    cols = [c for c in ("method", "utts_per_speaker") if c in ablation]
    return (ablation[cols + ["n_pairs", "eer"]].sort_values(cols + ["n_pairs"], kind="stable")
            .reset_index(drop=True))


def ablation_study(x_fit, y_fit, speakers_fit, x_eval, y_eval, utt_ids_eval, enroll: pd.DataFrame,
                   trials: pd.DataFrame, *, methods, n_speakers, utts_per_speaker, seed: int, hparams: dict, boot,
                   workers: int = 1, prefitted: dict | None = None, targets=(0.6, 0.8)):
    """The alignment-data ablation of several methods, and the learning curve fitted to each of its series.

    Every method is fitted on the same nested subsamples (:func:`nessa_lib.evaluation.ablation.alignment_ablation`,
    one seed); each (method, utterances-per-speaker) series with at least
    :data:`~nessa_lib.evaluation.learning_curve.MIN_SIZES` sizes gets a saturating curve in the voices used
    (:func:`~nessa_lib.evaluation.learning_curve.fit_curve`), refitted on every bootstrap round for its band and
    for the interval of the voices at which it reaches each target share (or the statement that it does not).

    Parameters
    ----------
    x_fit, y_fit, speakers_fit
        The fit pool (paired embeddings and speakers).
    x_eval, y_eval, utt_ids_eval, enroll, trials
        The evaluation embeddings and lists.
    methods : sequence of str
    n_speakers, utts_per_speaker : sequence of int or None
        The grid (``None`` = all).
    seed : int
    hparams : dict
    boot : SpeakerBootstrap
    workers : int
    prefitted : dict, optional
        ``{method: Aligner}``: stage 04's fit of the all-data point (see ``alignment_ablation``).
    targets : sequence of float
        Shares of the gain to find the voices for.

    Returns
    -------
    ablation : DataFrame
        ``alignment_ablation``'s rows with a first column ``method``.
    curves : dict
        ``{(method, utts_per_speaker): CurveFit}`` for the series with enough sizes.
    targets : DataFrame
        One row per series and target: ``method``, ``utts_per_speaker``, ``target``, ``voices``, ``voices_lo``,
        ``voices_hi``, ``reached``, ``never_share``, the curve's ``a``, ``b``, ``c``, ``max_voices`` (the largest
        size measured) and ``statement`` (a sentence).

    Examples
    --------
    >>> from nessa_lib import toy
    >>> from nessa_lib.evaluation.ab import alignment_trials
    >>> from nessa_lib.evaluation.bootstrap import SpeakerBootstrap
    >>> p = toy.make_paired_spaces(40, 4, noise_x=0.8, rng=np.random.default_rng(0))
    >>> ids = np.array([f"u{i}" for i in range(len(p.x))])
    >>> enroll, trials = alignment_trials(p.speakers, ids, k_enroll=1, n_nontarget_per_profile=5, rng=0)
    >>> boot = SpeakerBootstrap.from_lists(enroll, trials, dict(zip(ids, p.speakers)), n_rounds=20, seed=0)
    >>> abl, curves, tg = ablation_study(p.x, p.y, p.speakers, p.x, p.y, ids, enroll, trials, methods=["linear"],
    ...                                  n_speakers=(5, 10, 20, None), utts_per_speaker=(None,), seed=0, hparams={},
    ...                                  boot=boot, targets=[0.6])
    >>> abl["method"].unique().tolist(), list(curves), tg["target"].tolist()
    (['linear'], [('linear', -1)], [0.6])
    """
    from nessa_lib.evaluation import ablation as abl_mod
    from nessa_lib.evaluation import learning_curve as lcm

    # All methods in one pass: the X/X and Y/Y scores once, every method's fits in one pool.
    results = abl_mod.alignment_ablations(
        x_fit, y_fit, speakers_fit, x_eval, y_eval, utt_ids_eval, enroll, trials, methods=methods, seed=seed,
        n_speakers=n_speakers, utts_per_speaker=utts_per_speaker, hparams=hparams, boot=boot, workers=workers,
        prefitted=prefitted, return_rounds=True)
    parts, curves, trows = [], {}, []
    for method, (df, rounds) in results.items():
        df.insert(0, "method", method)
        parts.append(df)
        for u, part in df.groupby("utts_per_speaker", sort=False):
            # One point per distinct size actually used (a request beyond the pool is capped onto "all").
            part = part.drop_duplicates("n_speakers_used")
            if len(part) < lcm.MIN_SIZES:
                logger.info("ablation_study: %s, %s utterances per voice: %d sizes, fewer than the %d a curve needs; "
                            "no curve", method, u, len(part), lcm.MIN_SIZES)
                continue
            n = part["n_speakers_used"].to_numpy(float)
            f = lcm.fit_curve(n, part["gain_recovered"].to_numpy(), rounds[:, part.index.to_numpy()],
                              method=method, targets=targets)
            curves[(method, int(u))] = f
            for r in f.targets.to_dict("records"):
                trows.append(dict(method=method, utts_per_speaker=int(u), target=r["target"], voices=r["voices"],
                                  voices_lo=r["voices_lo"], voices_hi=r["voices_hi"], reached=r["reached"],
                                  never_share=r["never_share"], a=f.curve.a, b=f.curve.b, c=f.curve.c,
                                  max_voices=float(n.max()), statement=r["statement"]))
    cols = ["method", "utts_per_speaker", "target", "voices", "voices_lo", "voices_hi", "reached", "never_share",
            "a", "b", "c", "max_voices", "statement"]
    return pd.concat(parts, ignore_index=True), curves, pd.DataFrame(trows, columns=cols)


def chain_study(study: Study, chain: list, enroll: pd.DataFrame, trials: pd.DataFrame, *, fit_splits, hparams: dict,
                fars, boot=None, timings: dict | None = None, workers: int = 1,
                chain_hparams: dict | None = None) -> pd.DataFrame:
    """The chain-of-upgrades table (:func:`nessa_lib.evaluation.chains.chain_table`) of ``evaluate.chain``.

    Stored profiles enrolled with ``chain[0]`` (v1), tests by ``chain[-1]`` (vN), through every route of
    :func:`nessa_lib.chain.upgrade_routes`: stage 04's M2 aligners of each consecutive pair composed (the
    profiles migrated at each upgrade), the M2 and M3 aligners of the pair v1 -> vN where stage 04 fitted one,
    and M3 at the first upgrade followed by an M2 aligner fitted here from M3's space (on the second upgrade's
    fit pool of ``fit_splits``, M2's ``hparams`` with ``chain_hparams`` on top; one fit, M3's first seed: it is the
    table's only fit). Each
    hop's M2 and M3 aligners are rows of their own (what each hop costs). An empty ``chain`` gives an empty table.
    ``timings`` gets the seconds of the fit from M3's space (``fit_s``); ``workers`` processes run the legs'
    bootstraps.
    """
    from nessa_lib import chain as chains_of_aligners
    from nessa_lib.evaluation import chains

    if not chain:
        return pd.DataFrame(index=pd.Index([], name="system"))
    problems = chain_problems(chain, study.pairs, METHODS)
    if problems:
        raise ValueError("; ".join(problems))
    kept = ("nessa-m2", "nessa-m3")
    hops = []
    for a, b in zip(chain, chain[1:]):
        fitted = study.aligners[pair_of(study.pairs, a, b)]
        if "nessa-m2" not in fitted:
            raise ValueError(f"evaluate.chain: stage 04 fitted no nessa-m2 aligner for {a} -> {b} "
                             f"(pair {pair_of(study.pairs, a, b)!r}); fit_aligners.methods must include nessa-m2")
        hops.append({m: fitted[m] for m in kept if m in fitted})
    direct_pair = pair_of(study.pairs, chain[0], chain[-1])
    direct = {m: study.aligners[direct_pair][m] for m in kept if direct_pair and m in study.aligners[direct_pair]}
    from_space, fit_s = None, {}
    if "nessa-m3" in hops[0]:
        pool = study.fit_pool(chain[1], chain[2], fit_splits)
        from_space = chains_of_aligners.fit_from_spaces(
            "nessa-m2", hops[0]["nessa-m3"][:1], pool.x, pool.y, pool.speaker_ids,
            runtime_model_id=pool.runtime_model_id, timings=fit_s,
            **{**hparams.get("nessa-m2", {}), **(chain_hparams or {})})
    routes = chains_of_aligners.upgrade_routes(hops, direct=direct, from_m3_space=from_space)
    embs, ids = chain_embeddings(study, chain)
    if timings is not None:
        timings.update(fit_s)
    return chains.chain_table(embs, ids, enroll, trials, routes, hops=hops, names=chain, boot=boot, fars=fars,
                              fit_s={"m3-then-nessa-m2": fit_s.get("fit_s", np.nan)}, workers=workers)


def chain_embeddings(study: Study, models) -> tuple[list, np.ndarray]:
    """Evaluation embeddings of every model of ``models`` on the same rows: ``([emb, ...], utt_ids)``."""
    first = study.sets[models[0]]
    embs, ids = [], None
    for m in models:
        a, b, utt, _ = embeddings.paired(first, study.sets[m], names=(models[0], m))
        if ids is None:
            ids, embs = utt, [a]
        if m != models[0]:
            embs.append(b)
    return embs, ids


def chain_percent_table(table: pd.DataFrame, fars=DEFAULT_FARS) -> pd.DataFrame:
    """The chain table for reading: leg, models and reference, then EER, FRR at the last FAR target, the share of
    the leg's gain recovered and the excess EER over the reference, in % with their 95 % intervals.

    Examples
    --------
    >>> t = pd.DataFrame({"leg": ["v1 -> v3"], "profiles": ["a"], "tests": ["c"], "reference": ["v3/v3"],
    ...                   "eer": [0.1], "excess_eer": [0.02]}, index=["composed-nessa-m2"])
    >>> chain_percent_table(t, fars=()).values.tolist()
    [['v1 -> v3', 'a', 'c', 'v3/v3', 10.0, 2.0]]
    """
    if table.empty:
        return table
    frr = {frr_key(f): f"FRR@{far_label(f)} %" for f in fars[-1:]}
    names = {"eer": "EER %", **frr, "gain_recovered": "gain recovered %", "excess_eer": "EER over re-enrolled %"}
    shown = _percent_columns(table, names, {"eer", *frr, "gain_recovered", "excess_eer"})
    return pd.concat([table[["leg", "profiles", "tests", "reference"]], shown], axis=1)
