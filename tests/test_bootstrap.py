"""Speaker-level bootstrap, seeded tables and three-way verdicts: hand-computed toy cases."""

import numpy as np
import pandas as pd
import pytest

from nessa_lib.evaluation import metrics
from nessa_lib.evaluation.bootstrap import SpeakerBootstrap, interval, profile_speakers
from nessa_lib.evaluation.findings import (FAILS, FINDING_A, FINDING_B, FINDING_C, HOLDS, INCONCLUSIVE,
                                           paper_findings, speakers_to_decide)
from nessa_lib.evaluation.tables import SYMMETRIC_X, SYMMETRIC_Y, table_from_scores


def toy_trials(n_spk=40, per=30, seed=0, sep=2.0, spread=1.0):
    """Trials grouped by speaker, with a per-speaker offset so that a speaker's trials move together."""
    rng = np.random.default_rng(seed)
    spk = np.repeat(np.arange(n_spk), per)
    lab = np.tile(np.r_[np.ones(5), np.zeros(per - 5)], n_spk).astype(int)
    offset = rng.normal(scale=spread, size=n_spk)[spk]
    scores = rng.normal(size=spk.size) + sep * lab + offset * lab  # speaker-dependent target scores
    return spk, lab, scores


def test_uniform_round_reproduces_the_plain_metrics():
    spk, lab, s = toy_trials()
    s = np.round(s, 2)  # ties: operating points are distinct values
    b = SpeakerBootstrap(spk, lab, n_rounds=3, seed=1)
    b.counts[1] = 1.0  # every speaker once: the plain trial list
    got = b.metrics(s)
    want = metrics.verification_metrics(s, lab)
    for k, v in want.items():
        assert got[k][1] == pytest.approx(v, abs=1e-12), k
    far, frr = b.rates_at(s, 1.0)
    assert far[1] == pytest.approx(((s >= 1.0) & (lab == 0)).sum() / (lab == 0).sum())
    assert frr[1] == pytest.approx(((s < 1.0) & (lab == 1)).sum() / (lab == 1).sum())


def test_known_distribution_of_a_two_speaker_frr():
    # Speaker a misses every target at the threshold, b none: FRR per round = (draws of a) / 2, so 0, 0.5, 1 with
    # probabilities 1/4, 1/2, 1/4.
    spk = np.array(["a"] * 4 + ["b"] * 4)
    lab = np.array([1, 1, 0, 0] * 2)
    s = np.array([0.1, 0.1, 0.0, 0.0, 0.9, 0.9, 0.0, 0.0])
    b = SpeakerBootstrap(spk, lab, n_rounds=8000, seed=0)
    _, frr = b.rates_at(s, 0.5)
    freq = {v: np.mean(frr == v) for v in (0.0, 0.5, 1.0)}
    assert freq[0.0] == pytest.approx(0.25, abs=0.02) and freq[0.5] == pytest.approx(0.5, abs=0.02)
    assert freq[1.0] == pytest.approx(0.25, abs=0.02)
    assert interval(frr) == (0.0, 1.0)


def test_speaker_resampling_is_wider_than_trial_resampling_and_shrinks_with_speakers():
    spk, lab, s = toy_trials(n_spk=40, per=30, spread=2.5)
    by_speaker = SpeakerBootstrap(spk, lab, n_rounds=400, seed=0).metrics(s)["eer"]
    by_trial = SpeakerBootstrap(np.arange(spk.size), lab, n_rounds=400, seed=0).metrics(s)["eer"]
    w_spk, w_trial = np.subtract(*interval(by_speaker)[::-1]), np.subtract(*interval(by_trial)[::-1])
    assert w_spk > 1.3 * w_trial  # correlated trials: resampling them one by one understates the uncertainty
    # The same data four times over with new speaker names: the interval narrows by about sqrt(4).
    spk4 = np.concatenate([spk + 1000 * k for k in range(4)])
    b4 = SpeakerBootstrap(spk4, np.tile(lab, 4), n_rounds=400, seed=0).metrics(np.tile(s, 4))["eer"]
    w4 = np.subtract(*interval(b4)[::-1])
    assert 0.35 * w_spk < w4 < 0.7 * w_spk


def test_paired_difference_is_narrower_than_separate_intervals():
    spk, lab, s = toy_trials(n_spk=60, per=30, seed=2)
    rng = np.random.default_rng(3)
    s2 = s + 0.05 * rng.normal(size=s.size) - 0.1 * lab  # the same system, slightly worse
    b = SpeakerBootstrap(spk, lab, n_rounds=500, seed=0)
    e1, e2 = b.metrics(s)["eer"], b.metrics(s2)["eer"]
    lo, hi = interval(e2 - e1)
    assert lo > 0  # the paired difference sees it
    lo1, hi1 = interval(e1)
    lo2, hi2 = interval(e2)
    assert lo2 < hi1  # the two separate intervals overlap: they could not tell
    assert np.all(b.metrics(s)["eer"] - e1 == 0)  # same scores, same rounds: no difference at all


def test_bootstrap_input_errors():
    with pytest.raises(ValueError, match="one length"):
        SpeakerBootstrap(np.arange(3), np.array([0, 1]))
    with pytest.raises(ValueError, match="both target and non-target"):
        SpeakerBootstrap(np.arange(3), np.ones(3))
    b = SpeakerBootstrap(np.arange(4), np.array([0, 1, 0, 1]), n_rounds=2)
    with pytest.raises(ValueError, match="NaN"):
        b.metrics(np.array([0.1, np.nan, 0.2, 0.3]))
    with pytest.raises(ValueError, match="shape"):
        b.metrics(np.zeros(3))
    enroll = pd.DataFrame({"profile_id": ["p", "p"], "utt_id": ["u1", "u2"]})
    with pytest.raises(ValueError, match="mixes speakers"):
        profile_speakers(enroll, {"u1": "a", "u2": "b"})
    with pytest.raises(ValueError, match="no speaker"):
        profile_speakers(enroll, {"u1": "a"})
    trials = pd.DataFrame({"profile_id": ["q"], "label": [1]})
    with pytest.raises(ValueError, match="without enrollment"):
        SpeakerBootstrap.from_lists(enroll, trials, {"u1": "a", "u2": "a"})


def test_from_lists_follows_the_profiles_speaker():
    enroll = pd.DataFrame({"profile_id": ["p1", "p2"], "utt_id": ["e1", "e2"]})
    trials = pd.DataFrame({"profile_id": ["p1", "p1", "p2", "p2"], "label": [1, 0, 1, 0]})
    manifest = pd.DataFrame({"utt_id": ["e1", "e2"], "speaker_id": ["A", "B"]})
    b = SpeakerBootstrap.from_lists(enroll, trials, manifest, n_rounds=5)
    assert list(b.names) == ["A", "B"] and list(b.cluster) == [0, 0, 1, 1]


def test_seeded_table_means_spreads_and_intervals():
    spk, lab, s = toy_trials(n_spk=30, per=20, seed=4)
    rng = np.random.default_rng(5)
    seeds = [s + 0.3 * rng.normal(size=s.size) for _ in range(3)]
    scores = {SYMMETRIC_X: s - 0.8 * lab, SYMMETRIC_Y: s + 0.8 * lab, "m3": seeds, "linear": s}
    b = SpeakerBootstrap(spk, lab, n_rounds=300, seed=0)
    rounds: dict = {}
    t = table_from_scores(scores, lab, boot=b, rounds=rounds)
    per_seed = [metrics.eer(x, lab) for x in seeds]
    assert t.loc["m3", "eer"] == pytest.approx(np.mean(per_seed))
    assert t.loc["m3", "eer_seed_sd"] == pytest.approx(np.std(per_seed, ddof=1))
    assert t.loc["m3", "n_seeds"] == 3 and np.isnan(t.loc["linear", "eer_seed_sd"])
    for system in t.index:
        for m in ("eer", "frr_at_far0.01", "gain_recovered"):
            assert t.loc[system, f"{m}_lo"] <= t.loc[system, f"{m}_hi"]
    assert t.loc[SYMMETRIC_X, "gain_recovered_lo"] == 0 and t.loc[SYMMETRIC_Y, "gain_recovered_hi"] == 1
    # A seeded system's rounds are the mean of its seeds' rounds on the same resampled speakers.
    want = np.mean([b.metrics(x)["eer"] for x in seeds], axis=0)
    np.testing.assert_allclose(rounds["m3"]["eer"], want)
    assert interval(rounds["m3"]["eer"]) == (t.loc["m3", "eer_lo"], t.loc["m3", "eer_hi"])


def test_table_reads_frr_at_every_far_target_with_its_interval():
    spk, lab, s = toy_trials(n_spk=20, per=20, seed=2)
    scores = {SYMMETRIC_X: s - 0.8 * lab, SYMMETRIC_Y: s + 0.8 * lab, "linear": s}
    b = SpeakerBootstrap(spk, lab, n_rounds=50, seed=0)
    t = table_from_scores(scores, lab, boot=b, fars=(0.05, 0.125))
    assert "frr_at_far0.01" not in t  # only the targets asked for
    for system, sc in scores.items():
        assert t.loc[system, "frr_at_far0.125"] == metrics.frr_at_far(sc, lab, 0.125)
        assert t.loc[system, "frr_at_far0.125_lo"] <= t.loc[system, "frr_at_far0.125_hi"]
    # rel_frr_change reads the first target (here 5 %), relative to X/X.
    xx = t.loc[SYMMETRIC_X, "frr_at_far0.05"]
    assert t.loc["linear", "rel_frr_change"] == pytest.approx((t.loc["linear", "frr_at_far0.05"] - xx) / xx)
    with pytest.raises(ValueError, match="at least one FAR"):
        table_from_scores(scores, lab, fars=())


def test_speakers_to_decide():
    assert speakers_to_decide(0.57, 0.46, 0.70, 0.6, 150) == 150 * (0.12 / 0.03) ** 2
    assert np.isnan(speakers_to_decide(0.80, 0.70, 0.90, 0.6, 150))  # already decided
    assert np.isnan(speakers_to_decide(0.60, 0.50, 0.70, 0.6, 150))  # on the bar: never


def _rounds(center, width, n=1000):
    return center + width * np.linspace(-1, 1, n)


def test_three_way_verdicts_from_paired_rounds():
    def table(xx, yy, **eers):
        names = {"m1": "nessa-m1", "m2": "nessa-m2", "sl": "speaker-logit"}
        t = pd.DataFrame({"eer": [xx, yy] + list(eers.values())},
                         index=[SYMMETRIC_X, SYMMETRIC_Y] + [names[k] for k in eers])
        t["gain_recovered"] = (xx - t["eer"]) / (xx - yy)
        return t

    tables = {"A->B": table(0.10, 0.05, m1=0.09, m2=0.07, sl=0.08), "B->A": table(0.05, 0.10, m1=0.07, m2=0.08,
                                                                                   sl=0.09)}
    pairs = {"A->B": ("A", "B"), "B->A": ("B", "A")}
    r = {"A->B": {SYMMETRIC_X: {"eer": _rounds(0.10, 0.01)}, SYMMETRIC_Y: {"eer": _rounds(0.05, 0.01)},
                  # M2 - speaker-logit straddles 0 -> inconclusive; gain 0.6 +- 0.2 straddles 0.6 -> inconclusive
                  "nessa-m2": {"eer": _rounds(0.07, 0.02), "gain_recovered": _rounds(0.6, 0.2)},
                  "nessa-m1": {"eer": _rounds(0.09, 0.01)[::-1]}, "speaker-logit": {"eer": _rounds(0.08, 0.005)}},
         "B->A": {SYMMETRIC_X: {"eer": _rounds(0.05, 0.01)}, SYMMETRIC_Y: {"eer": _rounds(0.10, 0.01)},
                  "nessa-m1": {"eer": _rounds(0.07, 0.001)}, "nessa-m2": {"eer": _rounds(0.08, 0.001)},
                  "speaker-logit": {"eer": _rounds(0.09, 0.001)}}}
    f = paper_findings(tables, pairs, {"A": "softmax", "B": "aam"}, rounds=r, n_speakers=100)

    def row(finding, evidence):
        return f[(f.finding == finding) & (f.evidence == evidence)].iloc[0]

    a = row(FINDING_A, "A->B")
    assert a.verdict == INCONCLUSIVE and pd.isna(a.holds) and a.lo < 0 < a.hi and np.isfinite(a.speakers_to_decide)
    assert row(FINDING_A, "B->A").verdict == HOLDS  # M1 0.07 vs 0.09, differences never cross 0
    assert row(FINDING_A, "summary over 2 pair(s)").verdict == INCONCLUSIVE
    assert row(FINDING_C, "A->B").verdict == INCONCLUSIVE
    # (b) B is better; in B->A M1 maps into B: 0.07 vs 0.08 with tight rounds -> holds
    assert row(FINDING_B, "B->A").verdict == HOLDS
    # in A->B M2 maps into B: 0.07 +- 0.02 vs M1 0.09 +- 0.01 -> the difference interval straddles 0
    assert row(FINDING_B, "A->B").verdict == INCONCLUSIVE
    # A clear failure: speaker-logit far better in every round.
    r["B->A"]["speaker-logit"]["eer"] = _rounds(0.01, 0.001)
    f2 = paper_findings(tables, pairs, {"A": "softmax", "B": "aam"}, rounds=r, n_speakers=100)
    assert f2[(f2.finding == FINDING_A) & (f2.evidence == "B->A")].iloc[0].verdict == FAILS
    assert f2[(f2.finding == FINDING_A) & f2.evidence.str.startswith("summary")].iloc[0].verdict == FAILS


@pytest.mark.parametrize("elements", [1, 7 * 200, 10**9])  # one round per chunk, 7 rounds, all rounds at once
def test_chunking_of_rounds_never_changes_a_result(monkeypatch, elements):
    from nessa_lib.evaluation import bootstrap

    rng = np.random.default_rng(3)
    labels = np.r_[np.ones(40, bool), np.zeros(160, bool)]
    scores = np.round(rng.normal(size=200) + labels, 2)  # rounded: ties, so the gather path runs too
    b = SpeakerBootstrap(rng.integers(0, 12, 200), labels, n_rounds=50, seed=1)
    ref = b.metrics(scores)
    monkeypatch.setattr(bootstrap, "_CHUNK_ELEMENTS", elements)
    got = b.metrics(scores)
    assert ref.keys() == got.keys()
    for k in ref:
        assert ref[k].tobytes() == got[k].tobytes(), k
