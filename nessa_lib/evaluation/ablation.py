"""The alignment-data ablation: how much paired data a method needs (nested subsamples of speakers and utterances)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nessa_lib.evaluation import metrics
from nessa_lib.evaluation.lists import score_lists
from nessa_lib.evaluation.tables import aligned_scores, fit_aligners, gain_recovered


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
                       utts_per_speaker=(2, 4, 8, None), seed: int = 0, hparams: dict | None = None) -> pd.DataFrame:
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

    Returns
    -------
    DataFrame
        One row per (n_speakers, utts_per_speaker), columns ``n_speakers``, ``utts_per_speaker`` (requested;
        ``None`` as ``-1`` = all), ``n_speakers_used``, ``n_pairs``, ``eer``, ``gain_recovered``, ``fit_s``.
        ``attrs``: ``method``, ``eer_xx``, ``eer_yy``.

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
    """
    speakers = np.asarray(speakers_align)
    x, y = np.asarray(x_align), np.asarray(y_align)
    labels = trials["label"].to_numpy()
    eer_xx = metrics.eer(score_lists(x_eval, x_eval, utt_ids_eval, enroll, trials), labels)
    eer_yy = metrics.eer(score_lists(y_eval, y_eval, utt_ids_eval, enroll, trials), labels)
    spk_order, spk_rows = _nested_order(speakers, seed)
    rows = []
    for n in n_speakers:
        chosen = spk_order if n is None else spk_order[: int(n)]
        for u in utts_per_speaker:
            idx = np.sort(np.concatenate([spk_rows[s] if u is None else spk_rows[s][: int(u)] for s in chosen]))
            timings: dict = {}
            a = fit_aligners(x[idx], y[idx], speakers[idx], methods=[method], seed=seed, hparams=hparams,
                             timings=timings)[method]
            e = metrics.eer(aligned_scores(a, x_eval, y_eval, utt_ids_eval, enroll, trials), labels)
            rows.append(dict(n_speakers=-1 if n is None else int(n), utts_per_speaker=-1 if u is None else int(u),
                             n_speakers_used=len(chosen), n_pairs=len(idx), eer=e,
                             gain_recovered=gain_recovered(eer_xx, eer_yy, e), fit_s=timings[method]))
    df = pd.DataFrame(rows)
    df.attrs.update(method=method, eer_xx=eer_xx, eer_yy=eer_yy)
    return df


def grid(values) -> tuple:
    """A subsampling grid from ``params.yaml``, where 0 means "all": ``(100, 0)`` -> ``(100, None)``.

    Examples
    --------
    >>> grid([100, 200, 0])
    (100, 200, None)
    """
    return tuple(int(v) or None for v in values)
