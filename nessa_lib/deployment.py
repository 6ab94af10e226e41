"""Deployment check of a fitted aligner on a small paired sample of the target traffic.

An aligner fitted on one domain can fail on another (new channels, languages, a synthetic fit set and real
users), and its fit-time metrics will not say so. Given the same few hundred utterances embedded by both models
(X and Y), with or without speaker labels, :func:`deployment_check` reports how the aligner holds there compared
with its fit data:

- *pair agreement*: the cosine between the two mapped sides of the same utterance
  (``map_enrollment(x)`` and ``map_runtime(y)``). On the fit data it is high (the aligner was trained to make the
  two sides meet); on traffic the aligner has not learned to map, it falls. The aligner file stores its fit
  agreement (:attr:`nessa_lib.align.Aligner.fit_agreement`), so the check needs no fit data. The sample is
  flagged when its median agreement falls below the fit's 5th percentile: a typical target utterance then agrees
  less than 95 % of the fit utterances did.
- with speaker labels, the *EER* of the aligned system on trials built from the sample, with a 95 %
  speaker-bootstrap interval, next to the symmetric X/X and Y/Y EERs on the same trials.

``python -m nessa_lib.migrate ... --check X.npz Y.npz`` runs it before migrating, and warns or, with ``--strict``,
refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nessa_lib.align.agreement import agreement_summary, pair_agreement  # noqa: F401  (part of this API)


@dataclass
class DeploymentReport:
    """What :func:`deployment_check` found.

    Attributes
    ----------
    ok : bool
        False when the sample's median agreement is below the fit's ``p05`` (or its EER interval lies entirely
        above the ``max_eer`` given).
    sample, fit : dict
        :func:`agreement_summary` of the sample and of the fit data.
    eer : DataFrame or None
        With speaker labels: ``eer``, ``eer_lo``, ``eer_hi`` of ``X/X``, ``Y/Y`` and ``aligned`` on the sample's
        trials.
    message : str
        One paragraph for a log or a notebook.
    """

    ok: bool
    sample: dict
    fit: dict
    eer: pd.DataFrame | None = None
    message: str = ""
    details: dict = field(default_factory=dict)


def deployment_check(aligner, x, y, speakers=None, *, n_rounds: int = 500, seed: int = 0,
                     n_nontarget_per_profile: int = 50, max_eer: float | None = None) -> DeploymentReport:
    """Check an aligner on a paired sample of the target traffic.

    Parameters
    ----------
    aligner : nessa_lib.align.Aligner
        With its stored fit agreement (aligners fitted by this version of the library have one).
    x, y : array_like, shapes (n, d_x), (n, d_y)
        The same ``n`` utterances embedded by the enrollment model X and the runtime model Y.
    speakers : array_like, shape (n,), optional
        Speaker labels: adds EERs with intervals (each speaker's first utterance is its profile, its others
        target trials, ``n_nontarget_per_profile`` other speakers' utterances non-targets).
    n_rounds, seed : int
        Speaker-bootstrap rounds and seed (also of the non-target draw).
    max_eer : float, optional
        Also flag the sample when the aligned EER's whole interval lies above this.

    Returns
    -------
    DeploymentReport

    Examples
    --------
    >>> from nessa_lib import toy
    >>> from nessa_lib.align import fit
    >>> p = toy.make_paired_spaces(20, 4, rng=np.random.default_rng(0))
    >>> a = fit("linear", p.x, p.y, p.speakers)
    >>> deployment_check(a, p.x, p.y).ok
    True
    >>> rng = np.random.default_rng(1)
    >>> deployment_check(a, p.x, rng.normal(size=p.y.shape)).ok  # the runtime side is unrelated noise
    False
    """
    if not aligner.fit_agreement:
        raise ValueError(f"this {aligner.method} aligner has no stored fit agreement (it was saved by an older "
                         "version of nessa_lib): refit it to run a deployment check")
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"the check sample is not paired: {len(x)} enrollment-side and {len(y)} runtime-side rows")
    agree = pair_agreement(aligner, x, y)
    sample, fit = agreement_summary(agree), aligner.fit_agreement
    ok = sample["median"] >= fit["p05"]
    msg = (f"pair agreement on the sample: median {sample['median']:.3f} (n={sample['n']}), on the fit data: "
           f"median {fit['median']:.3f}, 5th percentile {fit['p05']:.3f}")
    msg += "." if ok else (": the sample agrees less than 95 % of the fit utterances did; the aligner does not map "
                           "this traffic the way it maps its fit data")
    table = None
    if speakers is not None:
        table = _sample_eers(aligner, x, y, np.asarray(speakers), n_rounds, seed, n_nontarget_per_profile)
        r = table.loc["aligned"]
        msg += (f" Aligned EER on the sample {100 * r.eer:.2f} % [{100 * r.eer_lo:.2f}-{100 * r.eer_hi:.2f}] "
                f"(X/X {100 * table.loc['X/X', 'eer']:.2f} %, Y/Y {100 * table.loc['Y/Y', 'eer']:.2f} %).")
        if max_eer is not None and r.eer_lo > max_eer:
            ok = False
            msg += f" Its whole interval is above the allowed {100 * max_eer:.2f} %."
    return DeploymentReport(ok=bool(ok), sample=sample, fit=dict(fit), eer=table, message=msg,
                            details={"agreement": agree})


def _sample_eers(aligner, x, y, speakers, n_rounds, seed, n_nontarget):
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
    from nessa_lib.evaluation import metrics

    rows = {}
    for name, s in systems.items():
        lo, hi = interval(boot.metrics(s)["eer"])
        rows[name] = {"eer": metrics.eer(s, trials["label"].to_numpy()), "eer_lo": lo, "eer_hi": hi}
    return pd.DataFrame.from_dict(rows, orient="index")


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
        ``fit_agreement_median``, ``flagged``, and the EERs with intervals of ``X/X``, ``Y/Y`` and the aligned
        system on the sample's trials (``eer_xx``, ``eer_yy``, ``eer``, ``eer_lo``, ``eer_hi``; fractions).

    Examples
    --------
    >>> from nessa_lib import toy
    >>> from nessa_lib.align import fit
    >>> p = toy.make_paired_spaces(12, 4, rng=np.random.default_rng(0))
    >>> t = check_table({"linear": fit("linear", p.x, p.y, p.speakers)}, {"fit": (p.x, p.y, p.speakers)},
    ...                 n_rounds=20)
    >>> t.index.tolist(), bool(t["flagged"].iloc[0])
    ([('linear', 'fit')], False)
    """
    rows = {}
    for method, aligner in aligners.items():
        for name, (x, y, spk) in samples.items():
            r = deployment_check(aligner, x, y, spk, n_rounds=n_rounds, seed=seed)
            rows[(method, name)] = dict(
                agreement_median=r.sample["median"], fit_agreement_p05=r.fit["p05"],
                fit_agreement_median=r.fit["median"], flagged=not r.ok, eer_xx=r.eer.loc["X/X", "eer"],
                eer_yy=r.eer.loc["Y/Y", "eer"], eer=r.eer.loc["aligned", "eer"], eer_lo=r.eer.loc["aligned", "eer_lo"],
                eer_hi=r.eer.loc["aligned", "eer_hi"])
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["method", "sample"]
    return table
