"""Stage 04, ``fit_aligners``: every alignment method fitted on the paired embeddings of one (enrollment X,
runtime Y) pair, NESSA once per seed, saved as a folder of aligner files; and the development check.

``notebooks/04_fit_aligners.py`` calls these; :class:`Params` is the ``fit_aligners`` section of ``params.yaml``.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from nessa_lib import embeddings
from nessa_lib.align.hparams import METHODS, check_hparams
from nessa_lib.evaluation.tables import flat_metrics
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
        """Every pair names two models; the hyper-parameters are known, well-typed and in range."""
        out = pair_problems(self.pairs)
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
