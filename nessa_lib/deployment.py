"""Deployment check of a fitted aligner on a small paired sample of the target traffic.

An aligner fitted on one domain can fail on another (new channels, languages, a synthetic fit set and real
users), and its fit-time metrics will not say so. Given the same few hundred utterances embedded by both models
(X and Y), with or without speaker labels, :func:`deployment_check` reports how the aligner holds there compared
with its fit data, and names each problem it finds:

- *pair agreement*: the cosine between the two mapped sides of the same utterance
  (``map_enrollment(x)`` and ``map_runtime(y)``). On the fit data it is high (the aligner was trained to make the
  two sides meet); on traffic the aligner has not learned to map, it falls. Flagged when the sample's median
  falls below the fit's 5th percentile: a typical target utterance then agrees less than 95 % of the fit
  utterances did.
- *collapse* (:mod:`nessa_lib.align.collapse`): agreement cannot see a space that closes up, where the two sides of
  one utterance still meet but so do those of different utterances (measured on real recordings: agreement 0.847
  above the fit's 0.832, aligned EER 30 % against 8.3 % for X/X). Two label-free statistics see it, each measured
  the same way on the fit data:

  * the *non-pair cosines* (different utterances' mapped sides, i.e. the scores of non-pair trials). Flagged when
    the sample's median is above the fit data's 95th percentile: a typical pair of different utterances is then
    as similar as only the top 5 % of the fit data's were (real collapse: median 0.0 -> 0.52). The yardstick is
    the spread of the single cosines, not the bootstrap range of their median, which is so narrow (a few
    thousandths) that any new voices or channel would cross it.
  * the *pair identification rate* (share of utterances whose nearest mapped runtime-side neighbour is their own
    pair), at the same sample size on both sides. Flagged when the sample's rate is below half the fit data's
    5th percentile. The margin is wide on purpose: the fit data are the pairs the aligner was trained on and new
    voices with more utterances each (more same-speaker rivals) identify less well without anything being wrong,
    while a collapsed or scrambled space loses most of it (real collapse: 0.79 -> 0.08; chance is 1 / size).

  The fit data's statistics are stored in the aligner file (:attr:`nessa_lib.align.Aligner.fit_reference`, JSON
  metadata, written by :func:`nessa_lib.align.fit`), so the check needs no fit data. Aligner files written before
  them still load and are checked on agreement only, with a note saying so; passing ``reference=(x_fit, y_fit)``
  (a paired sample of the fit data) measures them instead, at exactly the sample's size.
- with speaker labels, the *EERs* of X/X (the control: keep the old model and its profiles), Y/Y and the aligned
  system on trials built from the sample, with 95 % speaker-bootstrap intervals, and the aligned system's *gain
  over the control* (X/X EER minus aligned EER) with a paired interval (the same resampled speakers for both).
  Flagged when the aligned system is not better than the control on the sample (gain <= 0, unless both EERs are
  0): migrating would then cost accuracy or buy nothing. A gain whose interval includes 0 is not flagged, only
  noted: a sample of a few hundred utterances often cannot show a real gain of a point or two.

``python -m nessa_lib.migrate ... --check X.npz Y.npz`` runs it before migrating, and warns or, with ``--strict``,
refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nessa_lib.align.agreement import agreement_summary, pair_agreement  # noqa: F401  (part of this API)
from nessa_lib.align.collapse import SIZES, comparable_size, reference_statistics, sample_statistics

# How far below the fit data's 5th percentile a sample's pair identification rate may fall (see the module
# docstring for why the margin is a factor of 2).
PAIR_ID_MARGIN = 0.5


@dataclass
class DeploymentReport:
    """What :func:`deployment_check` found.

    Attributes
    ----------
    ok : bool
        False when any problem was found (see ``problems``).
    sample, fit : dict
        :func:`agreement_summary` of the sample and of the fit data.
    eer : DataFrame or None
        With speaker labels: ``eer``, ``eer_lo``, ``eer_hi`` of ``X/X``, ``Y/Y`` and ``aligned`` on the sample's
        trials.
    message : str
        One paragraph for a log or a notebook.
    details : dict
        ``agreement``: the sample's pair agreements.
    space : dict or None
        The collapse statistics: the sample's (:func:`nessa_lib.align.collapse.sample_statistics`) and the fit
        data's at the same size (``fit_nonpair_median``, ``fit_nonpair_p95``, ``fit_pair_id_median``,
        ``fit_pair_id_p05``); None when there was no reference or the sample is below 16 utterances (see
        ``notes``).
    control : dict or None
        With speaker labels: ``gain`` (X/X EER minus aligned EER; positive = the aligned system is better than
        keeping X) and its paired 95 % interval ``gain_lo``, ``gain_hi``.
    problems : list of str
        One sentence per problem, empty when ``ok``.
    notes : list of str
        What could not be checked and why.
    """

    ok: bool
    sample: dict
    fit: dict
    eer: pd.DataFrame | None = None
    message: str = ""
    details: dict = field(default_factory=dict)
    space: dict | None = None
    control: dict | None = None
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def pull_toward_one(x, y, strength: float = 0.7, *, anchor: int = 0):
    """A synthetic collapse: every utterance pulled toward one utterance (its X and its Y embedding).

    Row ``i`` becomes ``(1 - strength) * u_i + strength * u_anchor`` on each side (``u``: unit rows), so the
    pair relation is kept (the anchor is the same utterance seen by both models, and agreement stays high) while
    the different utterances close up. Used to show that :func:`deployment_check` catches a collapse (stage 05's
    ``synthetic collapse`` sample). The default 0.7 is a clear collapse: on the toy spaces of the tests it raises
    the mapped non-pair median cosine from 0.0 to about 0.6, as much as the collapse measured on real recordings
    (0.52).

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> xp, yp = pull_toward_one(x, 2 * x, 0.5)
    >>> xp.tolist(), yp.tolist()
    ([[1.0, 0.0], [0.5, 0.5]], [[1.0, 0.0], [0.5, 0.5]])
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    out = []
    for e in (x, y):
        u = np.asarray(e, dtype=np.float64)
        u = u / np.linalg.norm(u, axis=1, keepdims=True)
        out.append((1 - strength) * u + strength * u[anchor])
    return out[0], out[1]


def deployment_check(aligner, x, y, speakers=None, *, n_rounds: int = 500, seed: int = 0,
                     n_nontarget_per_profile: int = 50, max_eer: float | None = None, reference=None,
                     source: str | None = None) -> DeploymentReport:
    """Check an aligner on a paired sample of the target traffic (see the module docstring for the rules).

    Parameters
    ----------
    aligner : nessa_lib.align.Aligner
        With its stored fit agreement and fit reference statistics (aligners fitted by this version of the
        library have both), or with ``reference``.
    x, y : array_like, shapes (n, d_x), (n, d_y)
        The same ``n`` utterances embedded by the enrollment model X and the runtime model Y.
    speakers : array_like, shape (n,), optional
        Speaker labels: adds EERs with intervals and the comparison with keeping X (each speaker's first
        utterance is its profile, its others target trials, ``n_nontarget_per_profile`` other speakers'
        utterances non-targets). At least 2 speakers with 2 or more utterances each are needed.
    n_rounds, seed : int
        Speaker-bootstrap rounds and seed (also of the non-target draw and of the random subsets of the
        pair identification rate).
    max_eer : float, optional
        Also flag the sample when the aligned EER's whole interval lies above this.
    reference : (x_fit, y_fit), optional
        A paired sample of the aligner's fit data: the fit agreement and collapse statistics are measured on it
        (at the check sample's size) instead of read from the aligner; for aligner files saved without them.
    source : str, optional
        Where the sample came from (file names), named in errors.

    Returns
    -------
    DeploymentReport

    Raises
    ------
    ValueError
        An unpaired sample; speaker labels with fewer than 2 speakers of 2 or more utterances; an aligner
        without stored fit agreement and no ``reference``.

    Examples
    --------
    >>> from nessa_lib import toy
    >>> from nessa_lib.align import fit
    >>> p = toy.make_paired_spaces(20, 4, rng=np.random.default_rng(0))
    >>> a = fit("linear", p.x, p.y, p.speakers)
    >>> deployment_check(a, p.x, p.y).ok
    True
    >>> r = deployment_check(a, p.x, p.y[np.random.default_rng(1).permutation(80)])  # runtime side scrambled
    >>> r.ok, r.problems[0].split(":")[0]
    (False, 'agreement')
    """
    where = f"{source}: " if source else ""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"{where}the check sample is not paired: {len(x)} enrollment-side and {len(y)} "
                         "runtime-side rows")
    notes: list[str] = []
    if reference is not None:
        xf, yf = (np.asarray(v) for v in reference)
        fit = agreement_summary(pair_agreement(aligner, xf, yf))
        sizes = set(SIZES) | {min(len(x), len(xf))}
        fit_ref = reference_statistics(aligner.map_enrollment(xf), aligner.map_runtime(yf), sizes=sizes, seed=seed)
    else:
        if not aligner.fit_agreement:
            raise ValueError(f"this {aligner.method} aligner has no stored fit agreement (it was saved by an older "
                             "version of nessa_lib): refit it, or pass reference=(x_fit, y_fit), to run a "
                             "deployment check")
        fit, fit_ref = dict(aligner.fit_agreement), aligner.fit_reference
        if not fit_ref:
            notes.append("the aligner file carries no fit reference statistics (saved by an older version of "
                         "nessa_lib): a collapsed space was not checked; refit the aligner, or pass a sample of "
                         "its fit data, to check it")
    problems: list[str] = []
    a, b = aligner.map_enrollment(x), aligner.map_runtime(y)
    agree = np.sum(a.astype(np.float64) * b, axis=1)  # as pair_agreement, without mapping twice
    sample = agreement_summary(agree)
    msg = (f"Pair agreement on the sample: median {sample['median']:.3f} (n={sample['n']}), on the fit data: "
           f"median {fit['median']:.3f}, 5th percentile {fit['p05']:.3f}.")
    if sample["median"] < fit["p05"]:
        problems.append(f"agreement: median {sample['median']:.3f} below the fit's 5th percentile "
                        f"{fit['p05']:.3f}; the aligner does not map this traffic the way it maps its fit data")
    space = None
    size = comparable_size(fit_ref, len(x)) if fit_ref else None
    if fit_ref and size is None:
        notes.append(f"the sample's {len(x)} utterances are too few for the collapse statistics (at least "
                     f"{min(int(s) for s in fit_ref['pair_id'])})")
    if size is not None:
        space, msg = _space(a, b, fit_ref, size, seed, problems, msg)
    table = control = None
    if speakers is not None:
        speakers = np.asarray(speakers)
        _check_speakers(speakers, where)
        table, rounds = _sample_eers(aligner, x, y, speakers, n_rounds, seed, n_nontarget_per_profile)
        from nessa_lib.evaluation.bootstrap import interval

        r, xx = table.loc["aligned"], table.loc["X/X"]
        gain = float(xx.eer - r.eer)
        lo, hi = interval(rounds["X/X"] - rounds["aligned"])
        control = {"gain": gain, "gain_lo": lo, "gain_hi": hi}
        msg += (f" Aligned EER on the sample {100 * r.eer:.2f} % [{100 * r.eer_lo:.2f}-{100 * r.eer_hi:.2f}] "
                f"(X/X {100 * xx.eer:.2f} %, Y/Y {100 * table.loc['Y/Y', 'eer']:.2f} %): "
                f"{'better' if gain > 0 else 'worse'} than keeping X by {100 * abs(gain):.2f} points "
                f"(paired 95 % interval of the gain {100 * lo:+.2f} to {100 * hi:+.2f}).")
        # Not better than keeping X: the migration costs accuracy or buys nothing. The one exception is a tie at
        # 0 (both systems perfect on the sample), where there is nothing to be better at.
        if gain < 0 or (gain == 0 and xx.eer > 0):
            problems.append(f"control: the aligned system (EER {100 * r.eer:.2f} %) is not better than keeping X "
                            f"(X/X {100 * xx.eer:.2f} %) on the sample; gain {100 * gain:+.2f} points "
                            f"[{100 * lo:+.2f}, {100 * hi:+.2f}]")
        elif lo <= 0:
            notes.append("the gain over keeping X is not significant on this sample (its interval includes 0)")
        if max_eer is not None and r.eer_lo > max_eer:
            problems.append(f"max_eer: the aligned EER's whole interval is above the allowed {100 * max_eer:.2f} %")
    if problems:
        msg += " Problems: " + "; ".join(problems) + "."
    if notes:
        msg += " Notes: " + "; ".join(notes) + "."
    return DeploymentReport(ok=not problems, sample=sample, fit=fit, eer=table, message=msg,
                            details={"agreement": agree}, space=space, control=control, problems=problems,
                            notes=notes)


def _space(a, b, fit_ref, size, seed, problems, msg):
    """The collapse statistics of the sample against the fit's at ``size``; appends problems, extends msg."""
    s = sample_statistics(a, b, size, seed=seed)
    ref = fit_ref["pair_id"][str(size)]
    s.update(fit_nonpair_median=fit_ref["nonpair_cosine"]["median"], fit_nonpair_p95=fit_ref["nonpair_cosine"]["p95"],
             fit_pair_id_median=ref["median"], fit_pair_id_p05=ref["p05"])
    msg += (f" Non-pair cosines: median {s['nonpair_median']:.3f}, 95th percentile {s['nonpair_p95']:.3f} (fit: "
            f"{s['fit_nonpair_median']:.3f}, {s['fit_nonpair_p95']:.3f}). Pair identification rate among {size} "
            f"utterances: {s['pair_id']:.3f} (fit: median {ref['median']:.3f}, 5th percentile {ref['p05']:.3f}).")
    if s["nonpair_median"] > s["fit_nonpair_p95"]:
        problems.append(f"collapse: different utterances' median cosine {s['nonpair_median']:.3f} is above the fit "
                        f"data's 95th percentile {s['fit_nonpair_p95']:.3f}; the mapped space has closed up")
    if s["pair_id"] < PAIR_ID_MARGIN * ref["p05"]:
        problems.append(f"pair identification: {s['pair_id']:.3f} of the utterances find their own pair among "
                        f"{size}, below half the fit's 5th percentile {ref['p05']:.3f}; the mapped space is "
                        "collapsed or scrambled")
    return s, msg


def _check_speakers(speakers, where):
    """At least 2 speakers with 2 or more utterances each, every row labelled (ValueError naming the sample)."""
    if len(speakers) and (speakers.astype(str) == "").any():
        raise ValueError(f"{where}{int((speakers.astype(str) == '').sum())} of the sample's {len(speakers)} "
                         "utterances have no speaker label; label all or none")
    _, counts = np.unique(speakers.astype(str), return_counts=True)
    if (counts >= 2).sum() < 2:
        raise ValueError(f"{where}the check sample's speaker labels give {(counts >= 2).sum()} speaker(s) with 2 "
                         "or more utterances; an EER and its comparison with keeping X need at least 2")


def _sample_eers(aligner, x, y, speakers, n_rounds, seed, n_nontarget):
    """The EER table and each system's bootstrap rounds of the EER (the same speakers drawn for all: paired)."""
    from nessa_lib.evaluation import metrics
    from nessa_lib.evaluation.ab import alignment_trials
    from nessa_lib.evaluation.bootstrap import SpeakerBootstrap, interval
    from nessa_lib.evaluation.lists import score_lists
    from nessa_lib.evaluation.tables import aligned_scores

    ids = np.array([f"u{i}" for i in range(len(x))])
    enroll, trials = alignment_trials(speakers, ids, k_enroll=1, n_nontarget_per_profile=n_nontarget, rng=seed)
    if trials.empty or trials["label"].nunique() < 2:
        raise ValueError("the check sample needs at least 2 speakers with 2 or more utterances each for an EER")
    boot = SpeakerBootstrap.from_lists(enroll, trials, dict(zip(ids, speakers.astype(str))), n_rounds=n_rounds,
                                       seed=seed)
    systems = {"X/X": score_lists(x, x, ids, enroll, trials), "Y/Y": score_lists(y, y, ids, enroll, trials),
               "aligned": aligned_scores(aligner, x, y, ids, enroll, trials)}
    rows, rounds = {}, {}
    for name, s in systems.items():
        rounds[name] = boot.metrics(s)["eer"]
        lo, hi = interval(rounds[name])
        rows[name] = {"eer": metrics.eer(s, trials["label"].to_numpy()), "eer_lo": lo, "eer_hi": hi}
    return pd.DataFrame.from_dict(rows, orient="index"), rounds


def check_table(aligners: dict, samples: dict, *, n_rounds: int = 500, seed: int = 0) -> pd.DataFrame:
    """:func:`deployment_check` of several aligners on several labelled samples, as one table.

    Parameters
    ----------
    aligners : dict of str to Aligner
        E.g. ``{"nessa-m2": ..., "nessa-m1": ...}`` of one (X, Y) pair.
    samples : dict of str to (x, y, speakers)
        Named paired samples, e.g. the reference condition and a held-out one.

    Returns
    -------
    DataFrame
        Index ``(method, sample)``; columns ``agreement_median``, ``fit_agreement_p05``,
        ``fit_agreement_median``; the collapse statistics ``nonpair_median``, ``nonpair_p95``,
        ``fit_nonpair_p95``, ``pair_id`` (at ``pair_id_size`` utterances), ``fit_pair_id_p05`` (NaN when the
        aligner carries no reference); the EERs with intervals of ``X/X``, ``Y/Y`` and the aligned system on the
        sample's trials (``eer_xx``, ``eer_yy``, ``eer``, ``eer_lo``, ``eer_hi``; fractions), the gain over
        keeping X with its paired interval (``gain``, ``gain_lo``, ``gain_hi``: X/X EER minus aligned EER);
        ``flagged`` and ``problems`` (the names of the problems found, e.g. ``collapse; pair identification``).

    Examples
    --------
    >>> from nessa_lib import toy
    >>> from nessa_lib.align import fit
    >>> p = toy.make_paired_spaces(12, 4, noise_x=0.8, rng=np.random.default_rng(0))  # X the noisier model
    >>> t = check_table({"linear": fit("linear", p.x, p.y, p.speakers)}, {"fit": (p.x, p.y, p.speakers)},
    ...                 n_rounds=20)
    >>> t.index.tolist(), bool(t["flagged"].iloc[0]), bool(t["gain"].iloc[0] > 0)
    ([('linear', 'fit')], False, True)
    """
    rows = {}
    nan = float("nan")
    for method, aligner in aligners.items():
        for name, (x, y, spk) in samples.items():
            r = deployment_check(aligner, x, y, spk, n_rounds=n_rounds, seed=seed)
            sp = r.space or {}
            rows[(method, name)] = dict(
                agreement_median=r.sample["median"], fit_agreement_p05=r.fit["p05"],
                fit_agreement_median=r.fit["median"], nonpair_median=sp.get("nonpair_median", nan),
                nonpair_p95=sp.get("nonpair_p95", nan), fit_nonpair_p95=sp.get("fit_nonpair_p95", nan),
                pair_id=sp.get("pair_id", nan), pair_id_size=sp.get("size", 0),
                fit_pair_id_p05=sp.get("fit_pair_id_p05", nan), eer_xx=r.eer.loc["X/X", "eer"],
                eer_yy=r.eer.loc["Y/Y", "eer"], eer=r.eer.loc["aligned", "eer"], eer_lo=r.eer.loc["aligned", "eer_lo"],
                eer_hi=r.eer.loc["aligned", "eer_hi"], gain=r.control["gain"], gain_lo=r.control["gain_lo"],
                gain_hi=r.control["gain_hi"], flagged=not r.ok,
                problems="; ".join(p.split(":")[0] for p in r.problems))
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["method", "sample"]
    return table
