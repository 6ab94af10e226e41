"""Chains of upgrades v1 -> v2 -> ... -> vN: how much of the v1 -> vN gain stored v1 profiles keep, and what each
hop costs.

Profiles are enrolled once with v1 and never re-enrolled; the product's runtime model is the last version, vN.
A *route* carries the profiles to vN's tests: composed M2 aligners (migrated at each upgrade), one aligner fitted
v1 -> vN directly, or M3 at the first upgrade with the next hop fitted from M3's space. The routes are built in
the deployment layer (:func:`nessa_lib.chain.upgrade_routes`); this module scores them on the evaluation trials.

The table (:func:`chain_table`) has one row per system, in three kinds of leg:

- ``v1 -> vN`` (the whole chain): ``v1/v1`` (no upgrade: the status quo), ``vN/vN`` (everyone re-enrolled with
  the newest model), every intermediate ``vk/vk`` (everyone re-enrolled at an intermediate version), then every
  route. ``gain_recovered`` is the share of the v1 -> vN symmetric gain, ``(EER_v1v1 - EER) / (EER_v1v1 -
  EER_vNvN)``.
- ``hop k`` (``vk -> vk+1``): the hop's own aligners (``hop<k>-<method>``: vk profiles against vk+1 tests), with
  the share of *that hop's* symmetric gain.

Every row also has ``excess_eer``, its EER minus its leg's re-enrolled reference (``vN/vN``, or ``vk+1/vk+1`` for a
hop): what skipping re-enrollment costs. With a :class:`~nessa_lib.evaluation.bootstrap.SpeakerBootstrap`, every
metric has a 95 % speaker-bootstrap interval, on the same rounds for every row (so ``excess_eer``'s is paired).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nessa_lib.evaluation import operating_points, tables
from nessa_lib.evaluation.lists import score_lists
from nessa_lib.parallel import run_jobs


def version_label(k: int) -> str:
    """Label of the ``k``-th model of a chain (0-based): ``v1``, ``v2`` ...

    Examples
    --------
    >>> version_label(0), version_label(2)
    ('v1', 'v3')
    """
    return f"v{k + 1}"


def _scores(aligners, e_from, e_to, utt_ids, enroll, trials):
    """Trial scores of one aligner (an array) or of one per seed (a list of arrays)."""
    if isinstance(aligners, (list, tuple)):
        return [tables.aligned_scores(a, e_from, e_to, utt_ids, enroll, trials) for a in aligners]
    return tables.aligned_scores(aligners, e_from, e_to, utt_ids, enroll, trials)


def _leg(scores: dict, labels, boot, fars, fit_s=None) -> pd.DataFrame:
    """One leg's table with ``excess_eer`` over its ``Y/Y`` (a worker job of :func:`chain_table`)."""
    rounds: dict = {}
    table = tables.table_from_scores(scores, labels, boot=boot, rounds=rounds, fars=fars, fit_s=fit_s)
    ref = table.loc[tables.SYMMETRIC_Y, "eer"]
    table["excess_eer"] = table["eer"] - ref
    if boot is not None:
        from nessa_lib.evaluation.bootstrap import interval

        ref_rounds = rounds[tables.SYMMETRIC_Y]["eer"]
        lo_hi = [interval(rounds[s]["eer"] - ref_rounds) if s != tables.SYMMETRIC_Y else (0.0, 0.0)
                 for s in table.index]
        table["excess_eer_lo"] = [v[0] for v in lo_hi]
        table["excess_eer_hi"] = [v[1] for v in lo_hi]
    return table


def chain_table(embs: Sequence, utt_ids, enroll: pd.DataFrame, trials: pd.DataFrame, routes: Mapping, *,
                hops: Sequence[Mapping] = (), names: Sequence[str] | None = None, boot=None,
                fars=operating_points.DEFAULT_FARS, fit_s: Mapping | None = None, workers: int = 1) -> pd.DataFrame:
    """Score a chain of upgrades' routes and hops on the evaluation trials (see the module docstring).

    Parameters
    ----------
    embs : sequence of array_like
        Evaluation embeddings of the utterances ``utt_ids`` by each model of the chain, v1 first (same rows).
    utt_ids : array_like
        Utterance id of each row.
    enroll, trials : DataFrame
        Enrollment and trial lists (as :func:`nessa_lib.evaluation.tables.evaluate_pair` reads them).
    routes : mapping of str to aligner or list of aligners
        ``{system: aligner}``, each taking v1 profiles to vN's tests (an :class:`~nessa_lib.chain.AlignerChain`
        or an aligner fitted v1 -> vN; a list holds one per seed, reported as their mean with the seed spread).
    hops : sequence of mappings
        For each upgrade ``k`` (vk -> vk+1), ``{method: aligner or list}``: scored as rows ``hop<k>-<method>``.
    names : sequence of str, optional
        The models' names (the ``profiles`` and ``tests`` columns); default ``v1``, ``v2`` ...
    boot : SpeakerBootstrap, optional
        Of ``trials``: 95 % intervals ``<metric>_lo`` / ``<metric>_hi`` on every metric, on the same rounds as
        every other table built with it.
    fars : sequence of float
        FAR limits of the ``frr_at_far<far>`` columns.
    fit_s : mapping, optional
        Fit seconds of routes fitted for the table (NaN elsewhere).
    workers : int
        Processes for the legs' bootstraps (the same result for any ``workers``).

    Returns
    -------
    DataFrame
        Index ``system``; columns ``leg`` (``v1 -> vN``, ``hop 1`` ...), ``profiles``, ``tests``, ``reference``
        (the leg's re-enrolled system), the metrics of :func:`nessa_lib.evaluation.tables.table_from_scores`
        (``gain_recovered`` of the row's leg) and ``excess_eer``.

    Examples
    --------
    >>> from nessa_lib import align, toy
    >>> from nessa_lib.evaluation.ab import alignment_trials
    >>> v = toy.make_model_versions(20, 4, rng=np.random.default_rng(0))
    >>> ids = np.array([f"u{i}" for i in range(len(v.speakers))])
    >>> enroll, trials = alignment_trials(v.speakers, ids, k_enroll=2, n_nontarget_per_profile=5, rng=0)
    >>> direct = align.fit("linear", v.embeddings[0], v.embeddings[2], v.speakers)
    >>> t = chain_table(v.embeddings, ids, enroll, trials, {"direct-linear": direct})
    >>> t.index.tolist(), t.loc[["v1/v1", "v3/v3"], "gain_recovered"].abs().tolist()
    (['v1/v1', 'v3/v3', 'v2/v2', 'direct-linear'], [0.0, 1.0])
    """
    n = len(embs)
    if n < 2:
        raise ValueError(f"a chain needs at least two models, got {n}")
    if len(hops) not in (0, n - 1):
        raise ValueError(f"hops must hold one mapping per upgrade ({n - 1}), got {len(hops)}")
    names = [version_label(k) for k in range(n)] if names is None else [str(m) for m in names]
    if len(names) != n:
        raise ValueError(f"{n} models but {len(names)} names")
    labels = trials["label"].to_numpy()
    sym = {k: score_lists(embs[k], embs[k], utt_ids, enroll, trials) for k in range(n)}
    v = [version_label(k) for k in range(n)]
    last = n - 1
    # The whole chain: v1/v1 and vN/vN first (table_from_scores' X/X and Y/Y), then the intermediate versions.
    scores = {tables.SYMMETRIC_X: sym[0], tables.SYMMETRIC_Y: sym[last]}
    rows = {tables.SYMMETRIC_X: (f"{v[0]}/{v[0]}", 0, 0), tables.SYMMETRIC_Y: (f"{v[last]}/{v[last]}", last, last)}
    for k in range(1, last):
        scores[f"{v[k]}/{v[k]}"] = sym[k]
        rows[f"{v[k]}/{v[k]}"] = (f"{v[k]}/{v[k]}", k, k)
    for system, a in routes.items():
        scores[system] = _scores(a, embs[0], embs[last], utt_ids, enroll, trials)
        rows[system] = (system, 0, last)
    legs = [(scores, rows, f"{v[0]} -> {v[last]}", f"{v[last]}/{v[last]}", dict(fit_s or {}))]
    for k, hop in enumerate(hops):
        scores = {tables.SYMMETRIC_X: sym[k], tables.SYMMETRIC_Y: sym[k + 1]}
        hop_rows = {}
        for method, a in hop.items():
            system = f"hop{k + 1}-{method}"
            scores[system] = _scores(a, embs[k], embs[k + 1], utt_ids, enroll, trials)
            hop_rows[system] = (system, k, k + 1)
        if hop_rows:
            legs.append((scores, hop_rows, f"hop {k + 1}", f"{v[k + 1]}/{v[k + 1]}", {}))
    # The legs' bootstraps side by side (the same rounds in every process: the same result for any workers).
    done = run_jobs(_leg, [(sc, labels, boot, tuple(fars), f) for sc, _, _, _, f in legs],
                    workers=workers if boot is not None else 1)
    parts = []
    for i, ((_, leg_rows, leg, reference, _), table) in enumerate(zip(legs, done)):
        if i:  # a hop's X/X and Y/Y are already rows of the whole chain
            table = table.drop(index=[tables.SYMMETRIC_X, tables.SYMMETRIC_Y])
            leg_rows = {s: r for s, r in leg_rows.items() if s in table.index}
        parts.append(_describe(table, leg_rows, leg, reference, names))
    return pd.concat(parts)


def _describe(table: pd.DataFrame, rows: dict, leg: str, reference: str, names) -> pd.DataFrame:
    """``table`` renamed to the chain's system labels, with the leg, the models and the reference in front."""
    table = table.rename(index={s: r[0] for s, r in rows.items()})
    table.index.name = "system"
    front = pd.DataFrame({"leg": leg, "profiles": [names[rows_k[1]] for rows_k in rows.values()],
                          "tests": [names[rows_k[2]] for rows_k in rows.values()], "reference": reference},
                         index=[r[0] for r in rows.values()])
    return pd.concat([front, table.loc[front.index]], axis=1).rename_axis("system")


def flat_metrics(table: pd.DataFrame, *, fars=operating_points.DEFAULT_FARS, prefix: str = "chain") -> dict:
    """The chain table's figures for ``metrics.json``: ``chain:<system>:<metric>`` for the EER, the FRR at every
    FAR limit of ``fars``, ``gain_recovered`` (of the row's leg) and ``excess_eer``, each with its interval and
    seed spread where the table has them (left out where NaN). Fractions.

    Examples
    --------
    >>> t = pd.DataFrame({"leg": ["v1 -> v3"], "eer": [0.1], "eer_lo": [0.08], "gain_recovered": [0.5]},
    ...                  index=["composed-m2"])
    >>> flat_metrics(t, fars=())
    {'chain:composed-m2:eer': 0.1, 'chain:composed-m2:eer_lo': 0.08, 'chain:composed-m2:gain_recovered': 0.5}
    """
    main = ("eer", *(operating_points.frr_key(f) for f in fars), "gain_recovered", "excess_eer")
    wanted = [c for m in main for c in (m, f"{m}_lo", f"{m}_hi", f"{m}_seed_sd")]
    out = {}
    for system, row in table.iterrows():
        for col in wanted:
            if col in row.index and pd.notna(row[col]):
                out[f"{prefix}:{system}:{col}"] = float(row[col])
    return out
