"""The alignment-data ablation: how much paired data a method needs (nested subsamples of speakers and utterances)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from nessa_lib.evaluation import metrics
from nessa_lib.evaluation.lists import score_lists
from nessa_lib.evaluation.tables import aligned_scores, gain_recovered, gain_recovered_rounds

logger = logging.getLogger(__name__)


def _nested_order(speakers: np.ndarray, seed: int):
    """Speakers in a seeded random order, and each speaker's rows in a seeded random order.

    Taking prefixes of both orders gives nested subsets: a smaller subsample is always inside a larger one.
    """
    rng = np.random.default_rng(seed)
    uniq = np.unique(speakers)
    spk_order = uniq[rng.permutation(len(uniq))]
    rows = {s: np.flatnonzero(speakers == s) for s in uniq}
    rows = {s: r[rng.permutation(len(r))] for s, r in rows.items()}  # drawn in sorted speaker order
    return spk_order, rows


def alignment_ablation(x_align, y_align, speakers_align, x_eval, y_eval, utt_ids_eval, enroll: pd.DataFrame,
                       trials: pd.DataFrame, *, method: str = "nessa-m2", n_speakers=(25, 50, 100, None),
                       utts_per_speaker=(2, 4, 8, None), seed: int = 0, hparams: dict | None = None,
                       boot=None, workers: int = 1, prefitted=None, return_rounds: bool = False):
    """EER of one method fitted on subsamples of the alignment data: how much paired data does it need?

    The alignment speakers are put in an order drawn from ``seed``, and each speaker's utterances too; the
    subsample (n, u) takes the first ``n`` speakers and the first ``u`` utterances of each, so subsamples are
    nested in both directions and the same for every method and grid. ``None`` means all (speakers or
    utterances); requests beyond what exists are capped (``n_speakers_used``, ``n_pairs`` say what was used).
    Every fit uses ``seed``.

    Parameters
    ----------
    x_align, y_align, speakers_align
        Paired alignment embeddings (X = enrollment model, Y = runtime model) and their speakers.
    x_eval, y_eval, utt_ids_eval, enroll, trials
        Evaluation embeddings and lists, as in :func:`evaluate_pair`.
    method : str
        Alignment method.
    n_speakers, utts_per_speaker : sequence of int or None
        The grid.
    seed : int
    hparams : dict, optional
        ``{method: {...}}`` overrides.
    boot : nessa_lib.evaluation.bootstrap.SpeakerBootstrap, optional
        Speaker-bootstrap rounds of ``trials``: adds 95 % intervals ``eer_lo``/``eer_hi`` and
        ``gain_recovered_lo``/``gain_recovered_hi`` (the gain per round from the same round's X/X and Y/Y).
    workers : int
        Processes for the fits (:func:`nessa_lib.parallel.run_jobs`); the results do not depend on it.
    prefitted : Aligner, optional
        ``method`` already fitted with ``seed`` on all of the alignment data, e.g. stage 04's first seed: the
        grid's all-speakers, all-utterances point is that very fit (same rows, same seed), so it is used instead of
        fitting it again, and that row's ``fit_s`` is NaN. Only when its method, seed, hyper-parameters and number
        of fit pairs are this call's; otherwise that point is fitted here (logged). ``attrs["reused_fit"]`` says
        which.
    return_rounds : bool
        Also return the share of the gain per bootstrap round and row (needs ``boot``): what a learning curve's
        band is refitted on (:func:`nessa_lib.evaluation.learning_curve.fit_curve`).

    Returns
    -------
    DataFrame
        One row per (n_speakers, utts_per_speaker), columns ``n_speakers``, ``utts_per_speaker`` (requested;
        ``None`` as ``-1`` = all), ``n_speakers_used``, ``n_pairs``, ``eer``, ``gain_recovered``, ``fit_s`` (and
        the intervals, with ``boot``).
        ``attrs``: ``method``, ``eer_xx``, ``eer_yy``.
    ndarray, shape (n_rounds, n_rows)
        Only with ``return_rounds``: the share per bootstrap round (rows in the table's order).

    Examples
    --------
    >>> from nessa_lib import toy
    >>> p = toy.make_paired_spaces(10, 4, rng=np.random.default_rng(0))
    >>> ids = np.array([f"u{i}" for i in range(len(p.x))])
    >>> from nessa_lib.evaluation.ab import alignment_trials
    >>> enroll, trials = alignment_trials(p.speakers, ids, k_enroll=1, n_nontarget_per_profile=5, rng=0)
    >>> df = alignment_ablation(p.x, p.y, p.speakers, p.x, p.y, ids, enroll, trials, method="linear",
    ...                         n_speakers=(5, None), utts_per_speaker=(2,))
    >>> df["n_pairs"].tolist()
    [10, 20]
    >>> out = alignment_ablations(p.x, p.y, p.speakers, p.x, p.y, ids, enroll, trials, methods=["linear", "procrustes"],
    ...                           n_speakers=(5, None), utts_per_speaker=(2,))  # several methods in one pass
    >>> list(out), out["linear"].drop(columns="fit_s").equals(df.drop(columns="fit_s"))  # fit_s: seconds taken
    (['linear', 'procrustes'], True)
    """
    out = alignment_ablations(x_align, y_align, speakers_align, x_eval, y_eval, utt_ids_eval, enroll, trials,
                              methods=[method], n_speakers=n_speakers, utts_per_speaker=utts_per_speaker, seed=seed,
                              hparams=hparams, boot=boot, workers=workers,
                              prefitted={method: prefitted} if prefitted is not None else None,
                              return_rounds=return_rounds)
    return out[method]


def alignment_ablations(x_align, y_align, speakers_align, x_eval, y_eval, utt_ids_eval, enroll: pd.DataFrame,
                        trials: pd.DataFrame, *, methods, n_speakers=(25, 50, 100, None),
                        utts_per_speaker=(2, 4, 8, None), seed: int = 0, hparams: dict | None = None,
                        boot=None, workers: int = 1, prefitted: dict | None = None, return_rounds: bool = False) -> dict:
    """:func:`alignment_ablation` of several methods on the same subsamples, in one pass.

    The X/X and Y/Y scores and their bootstrap rounds are computed once for all methods, and every method's fits
    share one pool of ``workers`` processes (largest first), so no worker idles between methods. Each method's
    result is exactly what :func:`alignment_ablation` returns for it alone (same subsamples, same seed).

    Parameters
    ----------
    methods : sequence of str
        Distinct alignment methods.
    prefitted : dict, optional
        ``{method: Aligner}``: a method's fit on all of the alignment data (see :func:`alignment_ablation`).
    x_align, y_align, speakers_align, x_eval, y_eval, utt_ids_eval, enroll, trials, n_speakers, utts_per_speaker,
    seed, hparams, boot, workers, return_rounds
        As in :func:`alignment_ablation`.

    Returns
    -------
    dict
        ``{method: DataFrame}`` (or ``{method: (DataFrame, rounds)}`` with ``return_rounds``), in the order of
        ``methods``.

    Examples
    --------
    See :func:`alignment_ablation`'s.
    """
    from nessa_lib.align.hparams import resolve_hparams
    from nessa_lib.evaluation.bootstrap import interval
    from nessa_lib.evaluation.tables import _fit_one, check_hparams
    from nessa_lib.parallel import run_jobs

    methods = list(methods)
    if not methods or len(set(methods)) != len(methods):
        raise ValueError(f"methods must be distinct and at least one, got {methods}")
    hparams = hparams or {}
    check_hparams(hparams)
    if return_rounds and boot is None:
        raise ValueError("return_rounds needs boot (the bootstrap rounds to return)")
    speakers = np.asarray(speakers_align)
    x, y = np.asarray(x_align), np.asarray(y_align)
    labels = trials["label"].to_numpy()
    s_xx = score_lists(x_eval, x_eval, utt_ids_eval, enroll, trials)
    s_yy = score_lists(y_eval, y_eval, utt_ids_eval, enroll, trials)
    eer_xx, eer_yy = metrics.eer(s_xx, labels), metrics.eer(s_yy, labels)
    if boot is not None:
        r_xx, r_yy = boot.metrics(s_xx)["eer"], boot.metrics(s_yy)["eer"]
    prefitted = dict(prefitted or {})
    for method, pre in list(prefitted.items()):
        if pre is None:
            continue
        want = dict(method=method, seed=int(seed), hparams=resolve_hparams(method, dict(hparams.get(method, {}))),
                    n_pairs=len(x))
        got = dict(method=pre.method, seed=int(pre.seed), hparams=pre.hparams,
                   n_pairs=(pre.fit_agreement or {}).get("n"))
        if got != want:  # e.g. stage 04 ran with another seed_offset: fit it here, as without prefitted
            diff = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
            logger.info("alignment_ablation: prefitted is not this grid's full-data fit (its, wanted: %s); "
                        "fitting that point here", diff)
            prefitted[method] = None
    spk_order, spk_rows = _nested_order(speakers, seed)
    grid_rows, subsets = [], []
    for n in n_speakers:
        chosen = spk_order if n is None else spk_order[: int(n)]
        for u in utts_per_speaker:
            idx = np.sort(np.concatenate([spk_rows[s] if u is None else spk_rows[s][: int(u)] for s in chosen]))
            grid_rows.append(dict(n_speakers=-1 if n is None else int(n), utts_per_speaker=-1 if u is None else int(u),
                                  n_speakers_used=len(chosen), n_pairs=len(idx)))
            subsets.append((x[idx], y[idx], speakers[idx]))  # one copy of a subset, shared by every method
    full = [i for i, r in enumerate(grid_rows) if r["n_speakers"] == -1 and r["utts_per_speaker"] == -1]
    jobs, reused = {}, {}
    for method in methods:
        for i, (xs, ys, ss) in enumerate(subsets):
            if full and i == full[0] and prefitted.get(method) is not None:
                reused[(method, i)] = (prefitted[method], float("nan"))
            else:
                jobs[(method, i)] = (method, xs, ys, ss, seed, dict(hparams.get(method, {})))
    # Largest fits first, so the last fit of the queue is a small one (results keep the grid's order).
    order = sorted(jobs, key=lambda k: -len(jobs[k][1]))
    fitted = {**dict(zip(order, run_jobs(_fit_one, [jobs[k] for k in order], workers=workers))), **reused}
    out = {}
    for method in methods:
        rows, share_rounds = [], []
        for i, row in enumerate(grid_rows):
            a, sec = fitted[(method, i)]
            row = dict(row)
            s = aligned_scores(a, x_eval, y_eval, utt_ids_eval, enroll, trials)
            e = metrics.eer(s, labels)
            row.update(eer=e, gain_recovered=gain_recovered(eer_xx, eer_yy, e), fit_s=sec)
            if boot is not None:
                r = boot.metrics(s)["eer"]
                row["eer_lo"], row["eer_hi"] = interval(r)
                g = gain_recovered_rounds(r_xx, r_yy, r)
                row["gain_recovered_lo"], row["gain_recovered_hi"] = interval(g)
                share_rounds.append(g)
            rows.append(row)
        df = pd.DataFrame(rows)
        df.attrs.update(method=method, eer_xx=eer_xx, eer_yy=eer_yy,
                        reused_fit=any(k[0] == method for k in reused))
        out[method] = (df, np.column_stack(share_rounds)) if return_rounds else df
    return out


def grid(values) -> tuple:
    """A subsampling grid from ``params.yaml``, where 0 means "all": ``(100, 0)`` -> ``(100, None)``.

    Examples
    --------
    >>> grid([100, 200, 0])
    (100, 200, None)
    """
    return tuple(int(v) or None for v in values)
