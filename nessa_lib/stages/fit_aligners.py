"""Stage 04, ``fit_aligners``: one alignment method fitted on the paired embeddings of every (enrollment X,
runtime Y) pair, NESSA once per seed, saved as a method folder of aligner files; and the development check.

The stage runs once per method (``fit_aligners@<method>`` in ``dvc.yaml``, which declares only that method's
``fit_aligners.hparams.<method>``), so an experiment on one method's hyper-parameters re-fits that method alone.
``notebooks/04_fit_aligners.py`` calls these; :class:`Params` is the ``fit_aligners`` section of ``params.yaml``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from nessa_lib import embeddings
from nessa_lib.align.hparams import METHODS, check_hparams
# the fits of fit_seeds, job for job (a regrouping of them by method cannot change an aligner)
from nessa_lib.evaluation.tables import NESSA_METHODS, _fit_ensemble, _fit_one, flat_metrics
from nessa_lib.stages import schema
from nessa_lib.stages.schema import field

SECTION = "fit_aligners"
PAIR_KEYS = ("enroll_model", "runtime_model")


@dataclasses.dataclass(frozen=True)
class Params:
    """The ``fit_aligners`` section of ``params.yaml`` (its comments say what each key does), + ``base.seed`` and
    the evaluation lists' profile settings (development trials are built like them)."""

    seed: int = field(source="base.seed")
    methods: tuple[str, ...] = field(choices=METHODS, each=True)
    fit_splits: tuple[str, ...] = field()
    dev_split: str = field()
    seed_offset: int = field(ge=0)
    seeds: int = field(ge=1)
    ensemble: bool = field()
    workers: int = field(ge=1)
    threads: int = field(ge=1)
    device: str = field()
    pairs: dict = field()
    hparams: dict = field()
    k_enroll: int = field(source="prepare_data.k_enroll")
    n_nontarget_per_profile: int = field(source="prepare_data.n_nontarget_per_profile")

    def cross_checks(self) -> list[str]:
        """Every pair names two models; every method has its hyper-parameters entry (``{}`` for none: each
        method's stage declares it); the hyper-parameters are known, well-typed and in range."""
        out = pair_problems(self.pairs)
        out += [f"fit_aligners.hparams.{m} is missing (stage fit_aligners@{m} declares it; write {{}} for a method "
                f"without settings)" for m in self.methods if m not in self.hparams]
        if not self.fit_splits:
            out.append("fit_aligners.fit_splits must name at least one split")
        try:
            check_hparams(self.hparams)
        except ValueError as e:
            out.append(f"fit_aligners.hparams: {e}")
        return out


def pair_problems(pairs: dict) -> list[str]:
    """What is wrong with a ``fit_aligners.pairs`` mapping (each entry: ``enroll_model`` and ``runtime_model``).

    Examples
    --------
    >>> pair_problems({"a-b": {"enroll_model": "a", "runtime_model": "b"}})
    []
    >>> pair_problems({"a-b": {"enroll_model": "a"}})
    ["fit_aligners.pairs.a-b must have exactly the keys ('enroll_model', 'runtime_model') (strings), got {'enroll_model': 'a'}"]
    """
    out = []
    for name, spec in pairs.items():
        if not (isinstance(spec, dict) and set(spec) == set(PAIR_KEYS)
                and all(isinstance(v, str) and v for v in spec.values())):
            out.append(f"fit_aligners.pairs.{name} must have exactly the keys {PAIR_KEYS} (strings), got {spec!r}")
    return out


def load(params_file: str = schema.PARAMS_FILE, root=None) -> Params:
    """The ``fit_aligners`` parameters of ``params_file`` (repo-relative), checked.

    Examples
    --------
    >>> p = load()
    >>> "nessa-m3" in p.methods, p.seeds >= 1
    (True, True)
    """
    return schema.load(Params, SECTION, params_file, root)


def load_pools(embeddings_root, pairs: dict, splits) -> dict:
    """``{pair: PairedSplits}``: the paired embeddings of ``splits`` every pair is fitted on
    (:func:`nessa_lib.embeddings.load_paired_splits`), pairs in the order of ``pairs``."""
    return {name: embeddings.load_paired_splits(embeddings_root, spec["enroll_model"], spec["runtime_model"],
                                                list(splits))
            for name, spec in pairs.items()}


def describe_pools(pools: dict) -> pd.DataFrame:
    """One row per pair: paired utterances, speakers, and the two models' dimensions.

    Examples
    --------
    >>> import numpy as np, types
    >>> pool = types.SimpleNamespace(x=np.zeros((4, 3)), y=np.zeros((4, 2)), speaker_ids=np.array([0, 0, 1, 1]),
    ...                              utt_ids=np.arange(4))
    >>> describe_pools({"a-b": pool}).to_dict("records")
    [{'utterances': 4, 'speakers': 2, 'dim_x': 3, 'dim_y': 2}]
    """
    return pd.DataFrame([{"utterances": len(p.utt_ids), "speakers": len(set(p.speaker_ids.tolist())),
                          "dim_x": int(p.x.shape[1]), "dim_y": int(p.y.shape[1])} for p in pools.values()],
                        index=pd.Index(list(pools), name="pair"))


def fit_method(method: str, pools: dict, *, seeds, hparams: dict | None = None, workers: int = 1,
               device: str = "cpu", ensemble: bool = True, progress: bool = False,
               timings: dict | None = None) -> dict:
    """Fit ``method`` on every pair's pool: ``{pair: [Aligner, ...]}`` (one per seed for the NESSA methods, one
    for the closed-form ones), pairs in the order of ``pools``.

    Each fit is exactly the one :func:`nessa_lib.evaluation.tables.fit_seeds` makes for that pair and method: a
    NESSA method's seeds of a pair are one job (one stacked ensemble with ``ensemble``, else one job per seed) and
    the pairs' jobs run side by side in ``workers`` processes, one torch thread each; the closed-form methods are
    fitted here, pair after pair, with the first seed. ``identity`` skips (leaves out) the pairs whose models
    differ in dimension.

    Parameters
    ----------
    method : str
        One of :data:`nessa_lib.align.METHODS`.
    pools : dict
        ``{pair: PairedSplits}`` (:func:`load_pools`).
    seeds : sequence of int
        Seeds of the trained methods, first one first.
    hparams : dict, optional
        The method's hyper-parameters (checked before anything is fitted).
    workers, device, ensemble, progress
        As in :func:`~nessa_lib.evaluation.tables.fit_seeds`.
    timings : dict, optional
        Filled with ``{pair: mean fit seconds per seed}``.

    Examples
    --------
    >>> import numpy as np, types
    >>> x = np.random.default_rng(0).normal(size=(20, 3))
    >>> pool = types.SimpleNamespace(x=x, y=x, speaker_ids=np.repeat(np.arange(5), 4), enroll_model_id="a@1",
    ...                              runtime_model_id="b@1")
    >>> out = fit_method("linear", {"a-b": pool}, seeds=[3, 4])
    >>> len(out["a-b"]), out["a-b"][0].seed
    (1, 3)
    """
    from nessa_lib.parallel import run_jobs

    hparams = dict(hparams or {})
    check_hparams({method: hparams})
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, at least one, got {seeds}")
    data = {}
    for pair, pool in pools.items():
        x, y, speakers = np.asarray(pool.x), np.asarray(pool.y), np.asarray(pool.speaker_ids)
        if method == "identity" and x.shape[1] != y.shape[1]:
            continue
        data[pair] = (x, y, speakers, dict(enroll_model_id=pool.enroll_model_id,
                                           runtime_model_id=pool.runtime_model_id, device=device, **hparams))
    out, spent = {}, {}
    if method not in NESSA_METHODS:  # closed form: deterministic, quick, fitted here with the first seed
        for pair, (x, y, speakers, kw) in data.items():
            a, sec = _fit_one(method, x, y, speakers, seeds[0], kw)
            out[pair], spent[pair] = [a], [sec]
    elif ensemble:  # one job per pair: its seeds trained together
        jobs = [(method, x, y, speakers, seeds, kw) for x, y, speakers, kw in data.values()]
        fitted = run_jobs(_fit_ensemble, jobs, workers=workers, progress=f"fit {method}" if progress else None)
        for pair, (aligners, sec) in zip(data, fitted):
            out[pair], spent[pair] = list(aligners), [sec] * len(aligners)
    else:  # one job per pair and seed
        jobs = [(method, x, y, speakers, s, kw) for x, y, speakers, kw in data.values() for s in seeds]
        fitted = iter(run_jobs(_fit_one, jobs, workers=workers, progress=f"fit {method}" if progress else None))
        for pair in data:
            done = [next(fitted) for _ in seeds]
            out[pair], spent[pair] = [a for a, _ in done], [sec for _, sec in done]
    if timings is not None:
        timings.update({pair: float(np.mean(t)) for pair, t in spent.items()})
    return out


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


def development_tables(method: str, fitted: dict, pairs: dict, embeddings_root, **kwargs) -> dict:
    """:func:`development_table` of ``method``'s aligners for every pair of ``fitted`` (``{pair: [Aligner,
    ...]}``, as :func:`fit_method` returns): ``{pair: table or None}``. ``pairs`` gives each pair's models;
    ``kwargs`` are :func:`development_table`'s keywords."""
    return {pair: development_table({method: fits}, embeddings_root, pairs[pair]["enroll_model"],
                                    pairs[pair]["runtime_model"], **kwargs)
            for pair, fits in fitted.items()}


def fit_metrics(timings: dict, development: dict | None = None) -> dict[str, float]:
    """Stage 04's flat ``metrics.json`` of one method: ``fit_s:<pair>`` (mean seconds per seed) and, for the pairs
    with a development table, its ``dev:<pair>:<system>:<metric>`` entries (as :func:`flat_metrics` names them).

    Examples
    --------
    >>> fit_metrics({"a-b": 0.5}, {"a-b": pd.DataFrame({"eer": [0.2]}, index=["linear"]), "b-a": None})
    {'fit_s:a-b': 0.5, 'dev:a-b:linear:eer': 0.2}
    """
    out = {f"fit_s:{pair}": float(t) for pair, t in timings.items()}
    tables = {f"dev:{pair}": t for pair, t in (development or {}).items() if t is not None}
    out.update(flat_metrics(tables))
    return out
