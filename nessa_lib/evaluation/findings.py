"""The paper's three claims, checked on the study's per-pair tables and reported as measured."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from nessa_lib.evaluation.tables import NESSA_METHODS, SYMMETRIC_X, SYMMETRIC_Y, gain_recovered
from nessa_lib.losses import CLASSIFICATION_OBJECTIVES, CONTRASTIVE_OBJECTIVES

FINDING_A = "a: the best NESSA variant has a lower EER than speaker-logit"
FINDING_B = "b: the NESSA variant mapping into the better model's space has the lower EER"
FINDING_C = "c: asymmetric update with the best NESSA variant recovers >= 60 % of the symmetric gain"


def _objective_kind(model: str, objectives: Mapping) -> str:
    if model not in objectives:
        raise ValueError(f"paper_findings: no training objective given for model {model!r}")
    obj = objectives[model]
    if obj in CLASSIFICATION_OBJECTIVES:
        return "classification"
    if obj in CONTRASTIVE_OBJECTIVES:
        return "contrastive"
    raise ValueError(f"paper_findings: model {model!r} has unknown objective {obj!r}; known: "
                     f"{sorted(CLASSIFICATION_OBJECTIVES | CONTRASTIVE_OBJECTIVES)}")


def _best_nessa(table: pd.DataFrame):
    present = [m for m in NESSA_METHODS if m in table.index and np.isfinite(table.loc[m, "eer"])]
    if not present:
        return None, np.nan
    best = min(present, key=lambda m: table.loc[m, "eer"])  # ties: first of m1, m2, m3
    return best, float(table.loc[best, "eer"])


def _summary(finding, group, claim, sub: list[dict]) -> dict:
    known = [r for r in sub if r["holds"] is not pd.NA]
    n_hold = sum(bool(r["holds"]) for r in known)
    return dict(finding=finding, group=group, claim=claim, evidence=f"summary over {len(known)} pair(s)",
                holds=(n_hold == len(known)) if known else pd.NA,
                value=n_hold / len(known) if known else np.nan, reference=1.0,
                detail=f"holds in {n_hold} of {len(known)} pair(s)" + (
                    f"; {len(sub) - len(known)} not testable" if len(sub) > len(known) else ""))


def paper_findings(tables: Mapping[str, pd.DataFrame], pairs: Mapping[str, tuple],
                   objectives: Mapping[str, str]) -> pd.DataFrame:
    """Check the paper's three claims on the study's per-pair tables, reported as measured.

    Definitions (EER = the ``eer`` column of the :func:`evaluate_pair` tables; lower is better; "best NESSA" =
    the lowest-EER row among ``nessa-m1``/``nessa-m2``/``nessa-m3`` present in a table):

    (a) *NESSA beats speaker-logit.* Per pair: best-NESSA EER < ``speaker-logit`` EER (strictly). Two groups:
        ``classification`` = both models trained with a classification objective (``softmax``, ``aam``);
        ``contrastive`` = at least one model trained contrastively (``supcon``, ``ge2e``, ``pretrained-ge2e``).
    (b) *Aligning to the better model works better.* Only for model pairs present in both orientations
        ``(P, Q)`` and ``(Q, P)``. The better model is the one with the lower symmetric EER (its ``symmetric
        X/X`` or ``Y/Y`` row, averaged over the two tables). In each of the two tables, the variant whose target
        space is the better model's (``nessa-m1`` if it is the enrollment model, ``nessa-m2`` if it is the
        runtime model) must have a strictly lower EER than the other of the two. Untestable (NA) on a tie of the
        symmetric EERs.
    (c) *Recovery.* Per pair whose runtime model is better (symmetric Y/Y EER < X/X EER): best-NESSA
        ``gain_recovered`` >= 0.6. Pairs where Y is not better are left out (the ratio then measures a loss).

    Each group ends with a summary row: ``holds`` = it holds in every testable pair, ``value`` = the share of
    testable pairs where it holds. ``holds`` is NA where a pair cannot be tested (a method missing) or a group
    has no pair.

    Parameters
    ----------
    tables : mapping of str to DataFrame
        Pair name to its :func:`evaluate_pair` / :func:`compare_methods` table.
    pairs : mapping of str to (str, str)
        Pair name to ``(enrollment model, runtime model)``.
    objectives : mapping of str to str
        Model name to its training objective: ``softmax``, ``aam``, ``supcon``, ``ge2e`` or ``pretrained-ge2e``.

    Returns
    -------
    DataFrame
        Columns ``finding``, ``group``, ``claim`` (plain statement), ``evidence`` (pair name, or the summary),
        ``holds`` (nullable boolean), ``value`` and ``reference`` (the two numbers compared: e.g. best-NESSA
        EER vs speaker-logit EER) and ``detail`` (the numbers in words).

    Examples
    --------
    >>> t = pd.DataFrame({"eer": [0.10, 0.05, 0.06, 0.08, 0.09]}, index=[SYMMETRIC_X, SYMMETRIC_Y, "nessa-m1",
    ...                  "nessa-m2", "speaker-logit"])
    >>> t["gain_recovered"] = (0.10 - t["eer"]) / 0.05
    >>> f = paper_findings({"p": t}, {"p": ("a", "b")}, {"a": "softmax", "b": "aam"})
    >>> f[["group", "evidence", "holds"]].values.tolist()[:2]
    [['classification', 'p', True], ['classification', 'summary over 1 pair(s)', True]]
    """
    for name in tables:
        if name not in pairs:
            raise ValueError(f"paper_findings: table {name!r} has no (enrollment, runtime) models in `pairs`")
    out: list[dict] = []

    # (a) best NESSA vs speaker-logit, by training-objective group.
    claim_a = "The best NESSA variant (M1/M2/M3) has a lower EER than the speaker-logit baseline."
    groups: dict[str, list[dict]] = {"classification": [], "contrastive": []}
    for name, t in tables.items():
        x, y = pairs[name]
        kinds = {_objective_kind(x, objectives), _objective_kind(y, objectives)}
        group = "classification" if kinds == {"classification"} else "contrastive"
        best, e_best = _best_nessa(t)
        e_sl = float(t.loc["speaker-logit", "eer"]) if "speaker-logit" in t.index else np.nan
        ok = bool(e_best < e_sl) if np.isfinite(e_best) and np.isfinite(e_sl) else pd.NA
        groups[group].append(dict(finding=FINDING_A, group=group, claim=claim_a, evidence=name, holds=ok,
                                  value=e_best, reference=e_sl,
                                  detail=f"best NESSA ({best}) EER {e_best:.4f} vs speaker-logit EER {e_sl:.4f}"))
    for group, sub in groups.items():
        out += sub + [_summary(FINDING_A, group, claim_a, sub)]

    # (b) into the better model's space, for pairs present in both orientations.
    claim_b = ("For two models evaluated in both orientations, the NESSA variant that maps into the space of the "
               "model with the lower symmetric EER has the lower EER (M1 when that is the enrollment model, M2 "
               "when it is the runtime model).")
    by_models = {tuple(pairs[n]): n for n in tables}
    sub_b: list[dict] = []
    done: set = set()
    for (p, q), name in by_models.items():
        if (q, p) not in by_models or frozenset((p, q)) in done or p == q:
            continue
        done.add(frozenset((p, q)))
        t_pq, t_qp = tables[name], tables[by_models[(q, p)]]
        # Each model's symmetric EER, averaged over the two tables (identical on a shared evaluation set).
        e_p = np.mean([t_pq.loc[SYMMETRIC_X, "eer"], t_qp.loc[SYMMETRIC_Y, "eer"]])
        e_q = np.mean([t_pq.loc[SYMMETRIC_Y, "eer"], t_qp.loc[SYMMETRIC_X, "eer"]])
        better = p if e_p < e_q else q if e_q < e_p else None
        for pair_name, (enr, run) in ((name, (p, q)), (by_models[(q, p)], (q, p))):
            t = tables[pair_name]
            if better is None:
                sub_b.append(dict(finding=FINDING_B, group="both orientations", claim=claim_b, evidence=pair_name,
                                  holds=pd.NA, value=np.nan, reference=np.nan,
                                  detail=f"{p} and {q} tie on symmetric EER ({e_p:.4f}): no better model"))
                continue
            into_better, into_other = ("nessa-m1", "nessa-m2") if better == enr else ("nessa-m2", "nessa-m1")
            if into_better in t.index and into_other in t.index:
                e_b, e_o = float(t.loc[into_better, "eer"]), float(t.loc[into_other, "eer"])
                ok = bool(e_b < e_o)
            else:
                e_b = e_o = np.nan
                ok = pd.NA
            sub_b.append(dict(finding=FINDING_B, group="both orientations", claim=claim_b, evidence=pair_name,
                              holds=ok, value=e_b, reference=e_o,
                              detail=(f"better model {better} (symmetric EER {min(e_p, e_q):.4f} vs "
                                      f"{max(e_p, e_q):.4f}); {into_better} (into {better}) EER {e_b:.4f} vs "
                                      f"{into_other} EER {e_o:.4f}")))
    out += sub_b + [_summary(FINDING_B, "both orientations", claim_b, sub_b)]

    # (c) gain recovered by the best NESSA variant where the runtime model is the better one.
    claim_c = ("When the runtime model Y is better than the enrollment model X, the asymmetric system with the best "
               "NESSA variant recovers at least 60 % of the EER gain of re-enrolling everyone with Y.")
    sub_c: list[dict] = []
    for name, t in tables.items():
        xx, yy = float(t.loc[SYMMETRIC_X, "eer"]), float(t.loc[SYMMETRIC_Y, "eer"])
        if not yy < xx:
            continue
        best, e_best = _best_nessa(t)
        g = gain_recovered(xx, yy, e_best) if best is not None else np.nan
        ok = bool(g >= 0.6) if np.isfinite(g) else pd.NA
        sub_c.append(dict(finding=FINDING_C, group="Y better than X", claim=claim_c, evidence=name, holds=ok,
                          value=g, reference=0.6,
                          detail=(f"X/X EER {xx:.4f}, Y/Y EER {yy:.4f}, best NESSA ({best}) EER {e_best:.4f}: "
                                  f"gain recovered {g:.3f}")))
    out += sub_c + [_summary(FINDING_C, "Y better than X", claim_c, sub_c)]

    df = pd.DataFrame(out, columns=["finding", "group", "claim", "evidence", "holds", "value", "reference",
                                    "detail"])
    df["holds"] = df["holds"].astype("boolean")
    return df


def format_findings(findings: pd.DataFrame) -> str:
    """The findings as lines ``[HOLDS|DOES NOT HOLD|NOT TESTABLE] (finding, group) claim :: evidence``.

    Examples
    --------
    >>> f = pd.DataFrame({"finding": ["a"], "group": ["all"], "claim": ["c"], "holds": [True], "evidence": ["e"]})
    >>> format_findings(f)
    '[HOLDS] (a, all) c :: e'
    """
    lines = []
    for _, f in findings.iterrows():
        verdict = "NOT TESTABLE" if pd.isna(f.holds) else ("HOLDS" if f.holds else "DOES NOT HOLD")
        lines.append(f"[{verdict}] ({f.finding}, {f.group}) {f.claim} :: {f.evidence}")
    return "\n".join(lines)
