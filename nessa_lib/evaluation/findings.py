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


HOLDS, FAILS, INCONCLUSIVE, UNTESTABLE = "holds", "does not hold", "inconclusive", "not testable"


def speakers_to_decide(point: float, lo: float, hi: float, threshold: float, n_speakers: int) -> float:
    """Evaluation speakers it would take for the interval to clear ``threshold``, if the point estimate stayed
    where it is and the interval shrank as ``1 / sqrt(speakers)`` (NaN when it already clears it or never can).

    Examples
    --------
    >>> speakers_to_decide(0.57, 0.46, 0.70, 0.6, 150)  # half-width 0.12 must shrink below 0.03
    2400.0
    """
    d = abs(point - threshold)
    half = (hi - lo) / 2
    if not (np.isfinite(d) and np.isfinite(half)) or d == 0 or half <= d:
        return float("nan")
    return float(np.ceil(n_speakers * (half / d) ** 2))


def _judge(point: float, rounds, threshold: float, *, want_below: bool, n_speakers: int | None) -> dict:
    """Verdict of "point < threshold" (``want_below``) or "point >= threshold", three-way when ``rounds`` (the
    statistic's bootstrap distribution) is given, else on the point alone."""
    from nessa_lib.evaluation.bootstrap import interval

    if not np.isfinite(point):
        return dict(verdict=UNTESTABLE, holds=pd.NA, lo=np.nan, hi=np.nan, speakers_to_decide=np.nan)
    if rounds is None:
        ok = bool(point < threshold) if want_below else bool(point >= threshold)
        return dict(verdict=HOLDS if ok else FAILS, holds=ok, lo=np.nan, hi=np.nan, speakers_to_decide=np.nan)
    lo, hi = interval(rounds)
    if want_below:
        verdict = HOLDS if hi < threshold else FAILS if lo >= threshold else INCONCLUSIVE
    else:
        verdict = HOLDS if lo >= threshold else FAILS if hi < threshold else INCONCLUSIVE
    need = (speakers_to_decide(point, lo, hi, threshold, n_speakers)
            if verdict == INCONCLUSIVE and n_speakers else np.nan)
    return dict(verdict=verdict, holds={HOLDS: True, FAILS: False}.get(verdict, pd.NA), lo=lo, hi=hi,
                speakers_to_decide=need)


def _summary(finding, group, claim, sub: list[dict]) -> dict:
    """A group's verdict: holds if it holds in every pair, does not hold if it fails in one, else inconclusive."""
    known = [r for r in sub if r["verdict"] != UNTESTABLE]
    n = {v: sum(r["verdict"] == v for r in known) for v in (HOLDS, FAILS, INCONCLUSIVE)}
    verdict = (UNTESTABLE if not known else FAILS if n[FAILS] else INCONCLUSIVE if n[INCONCLUSIVE] else HOLDS)
    need = [r["speakers_to_decide"] for r in known if r["verdict"] == INCONCLUSIVE]
    return dict(finding=finding, group=group, claim=claim, evidence=f"summary over {len(known)} pair(s)",
                verdict=verdict, holds={HOLDS: True, FAILS: False}.get(verdict, pd.NA),
                value=n[HOLDS] / len(known) if known else np.nan, reference=1.0, lo=np.nan, hi=np.nan,
                speakers_to_decide=float(np.nanmax(need)) if need and np.isfinite(need).any() else np.nan,
                detail=f"holds in {n[HOLDS]}, does not hold in {n[FAILS]}, inconclusive in {n[INCONCLUSIVE]} "
                       f"of {len(known)} pair(s)" + (f"; {len(sub) - len(known)} not testable"
                                                    if len(sub) > len(known) else ""))


def paper_findings(tables: Mapping[str, pd.DataFrame], pairs: Mapping[str, tuple],
                   objectives: Mapping[str, str], *, rounds: Mapping | None = None,
                   n_speakers: int | None = None) -> pd.DataFrame:
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

    Verdicts. Without ``rounds`` each comparison is judged on its point estimates (``holds`` True/False). With
    ``rounds`` (per pair, per system, per metric: the speaker-bootstrap rounds of
    :func:`nessa_lib.evaluation.tables.table_from_scores`, the same resampled speakers for every system) each is
    judged on the bootstrap distribution of the *paired* statistic: the EER difference for (a) and (b), the gain
    recovered for (c). ``verdict`` is ``holds`` when the 95 % interval (``lo``, ``hi``) lies entirely on the
    claimed side of the threshold (0 for a difference, 0.6 for the gain), ``does not hold`` when it lies entirely
    on the other side, ``inconclusive`` when it straddles it; ``speakers_to_decide`` then estimates how many
    evaluation speakers (``n_speakers`` now) would narrow the interval enough, were the point estimate to stay
    (:func:`speakers_to_decide`). For (b), when the two models' symmetric EERs cannot be told apart (the
    interval of their difference contains 0) the better model is unknown and the verdict is ``inconclusive``.
    "Best NESSA" is chosen on the point estimates of the same trials, a mild optimism the intervals ignore.

    Each group ends with a summary row: ``holds`` if it holds in every testable pair, ``does not hold`` if it
    fails in one, else ``inconclusive``; ``value`` = the share of testable pairs where it holds. ``holds`` (a
    nullable boolean) is True/False for those two verdicts and NA otherwise (inconclusive, not testable).

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
        ``verdict``, ``holds`` (nullable boolean), ``value`` and ``reference`` (the two numbers compared: e.g.
        best-NESSA EER vs speaker-logit EER), ``statistic`` (what ``lo``/``hi`` bound), ``lo``, ``hi``,
        ``speakers_to_decide`` and ``detail`` (the numbers in words).

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
    rounds = rounds or {}

    def r(pair, system, metric="eer"):
        """A system's bootstrap rounds of ``metric``, or None without a bootstrap."""
        return rounds.get(pair, {}).get(system, {}).get(metric)

    def diff(pair_a, sys_a, pair_b, sys_b):
        ra, rb = r(pair_a, sys_a), r(pair_b, sys_b)
        return None if ra is None or rb is None else ra - rb

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
        j = _judge(e_best - e_sl, diff(name, best, name, "speaker-logit"), 0.0, want_below=True,
                   n_speakers=n_speakers)
        groups[group].append(dict(finding=FINDING_A, group=group, claim=claim_a, evidence=name, **j,
                                  value=e_best, reference=e_sl, statistic="EER(best NESSA) - EER(speaker-logit)",
                                  detail=f"best NESSA ({best}) EER {_pct(e_best)} vs speaker-logit EER {_pct(e_sl)}"
                                         + _ci_text(j, "difference")))
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
        sym = diff(name, SYMMETRIC_X, name, SYMMETRIC_Y)  # EER(p) - EER(q) on the same resampled speakers
        sym_known = sym is None or better is None or _judge(e_p - e_q, sym, 0.0, want_below=e_p < e_q,
                                                            n_speakers=None)["verdict"] == HOLDS
        for pair_name, (enr, run) in ((name, (p, q)), (by_models[(q, p)], (q, p))):
            t = tables[pair_name]
            base = dict(finding=FINDING_B, group="both orientations", claim=claim_b, evidence=pair_name,
                        statistic="EER(into better) - EER(into other)")
            if better is None:
                sub_b.append(dict(base, verdict=UNTESTABLE, holds=pd.NA, value=np.nan, reference=np.nan, lo=np.nan,
                                  hi=np.nan, speakers_to_decide=np.nan,
                                  detail=f"{p} and {q} tie on symmetric EER ({_pct(e_p)}): no better model"))
                continue
            into_better, into_other = ("nessa-m1", "nessa-m2") if better == enr else ("nessa-m2", "nessa-m1")
            if into_better in t.index and into_other in t.index:
                e_b, e_o = float(t.loc[into_better, "eer"]), float(t.loc[into_other, "eer"])
            else:
                e_b = e_o = np.nan
            j = _judge(e_b - e_o, diff(pair_name, into_better, pair_name, into_other), 0.0, want_below=True,
                       n_speakers=n_speakers)
            note = ""
            if not sym_known and j["verdict"] != UNTESTABLE:
                j.update(verdict=INCONCLUSIVE, holds=pd.NA)
                note = "; the symmetric EERs of the two models cannot be told apart, so neither is the better one"
            sub_b.append(dict(base, **j, value=e_b, reference=e_o,
                              detail=(f"better model {better} (symmetric EER {_pct(min(e_p, e_q))} vs "
                                      f"{_pct(max(e_p, e_q))}); {into_better} (into {better}) EER {_pct(e_b)} vs "
                                      f"{into_other} EER {_pct(e_o)}" + _ci_text(j, "difference") + note)))
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
        j = _judge(g, r(name, best, "gain_recovered") if best is not None else None, 0.6, want_below=False,
                   n_speakers=n_speakers)
        sub_c.append(dict(finding=FINDING_C, group="Y better than X", claim=claim_c, evidence=name, **j,
                          value=g, reference=0.6, statistic="gain recovered by the best NESSA variant",
                          detail=(f"X/X EER {_pct(xx)}, Y/Y EER {_pct(yy)}, best NESSA ({best}) EER {_pct(e_best)}: "
                                  f"gain recovered {100 * g:.1f} %" + _ci_text(j, "gain"))))
    out += sub_c + [_summary(FINDING_C, "Y better than X", claim_c, sub_c)]

    df = pd.DataFrame(out, columns=["finding", "group", "claim", "evidence", "verdict", "holds", "value",
                                    "reference", "statistic", "lo", "hi", "speakers_to_decide", "detail"])
    df["holds"] = df["holds"].astype("boolean")
    return df


def _pct(v: float) -> str:
    """A fraction as a percentage for the sentences of ``detail`` (the figures stay fractions in their columns).

    >>> _pct(0.04658), _pct(float("nan"))
    ('4.66 %', 'n/a')
    """
    return f"{100 * v:.2f} %" if np.isfinite(v) else "n/a"


def _ci_text(j: dict, what: str) -> str:
    """`` (<what> 95 % interval lo to hi)``: EER differences in percentage points, gains in percent."""
    if not np.isfinite(j["lo"]):
        return ""
    need = (f"; about {j['speakers_to_decide']:.0f} evaluation speakers would decide it"
            if np.isfinite(j["speakers_to_decide"]) else "")
    if what == "gain":
        return f" ({what} 95 % interval {100 * j['lo']:.1f} to {100 * j['hi']:.1f} %){need}"
    return f" ({what} 95 % interval {100 * j['lo']:+.2f} to {100 * j['hi']:+.2f} points){need}"


def format_findings(findings: pd.DataFrame) -> str:
    """The findings as lines ``[HOLDS|DOES NOT HOLD|INCONCLUSIVE|NOT TESTABLE] (finding, group) claim :: evidence``.

    Examples
    --------
    >>> f = pd.DataFrame({"finding": ["a"], "group": ["all"], "claim": ["c"], "holds": [True], "evidence": ["e"]})
    >>> format_findings(f)
    '[HOLDS] (a, all) c :: e'
    """
    lines = []
    for _, f in findings.iterrows():
        if "verdict" in f:
            verdict = f.verdict.upper()
        else:
            verdict = "NOT TESTABLE" if pd.isna(f.holds) else ("HOLDS" if f.holds else "DOES NOT HOLD")
        lines.append(f"[{verdict}] ({f.finding}, {f.group}) {f.claim} :: {f.evidence}")
    return "\n".join(lines)
