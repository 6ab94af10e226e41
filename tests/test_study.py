"""nessa_lib.study: the per-pair comparison table."""

import numpy as np
import pandas as pd
import pytest

from nessa_lib import study, toy


def lists(speakers, ids, k=2):
    """First k utterances of each speaker enroll; every other utterance is a target or non-target test."""
    df = pd.DataFrame({"utt_id": ids, "speaker_id": speakers.astype(str)})
    df["rank"] = df.groupby("speaker_id").cumcount()
    enroll = df[df["rank"] < k].rename(columns={"speaker_id": "profile_id"})[["profile_id", "utt_id"]]
    test = df[df["rank"] >= k]
    profiles = enroll["profile_id"].unique()
    rows = [(int(p == s), p, u) for p in profiles for u, s in zip(test.utt_id, test.speaker_id)]
    return enroll, pd.DataFrame(rows, columns=["label", "profile_id", "test_utt_id"])


def test_gain_recovered_values():
    assert study.gain_recovered(0.5, 0.25, 0.5) == 0.0  # no better than not updating
    assert study.gain_recovered(0.5, 0.25, 0.25) == 1.0  # as good as re-enrolling everybody
    assert study.gain_recovered(0.25, 0.5, 0.375) == 0.5  # Y worse: the share of the loss
    assert np.isnan(study.gain_recovered(0.3, 0.3, 0.2))


@pytest.fixture(scope="module")
def rotated_pair():
    # X noisier than Y; Y is X's latent rotated: the asymmetric systems sit between X/X and Y/Y.
    kw = dict(d_latent=8, d_x=8, d_y=8, noise_x=0.5, noise_y=0.2)
    fit = toy.make_paired_spaces(120, 6, rng=np.random.default_rng(2), **kw)
    ev = toy.make_paired_spaces(30, 6, rng=np.random.default_rng(2), speaker_offset=500, **kw)
    ids = np.array([f"u{i}" for i in range(len(ev.x))])
    enroll, trials = lists(ev.speakers, ids)
    return fit, ev, ids, enroll, trials


def test_compare_methods_table(rotated_pair):
    fit, ev, ids, enroll, trials = rotated_pair
    table, aligners = study.compare_methods(fit.x, fit.y, fit.speakers, ev.x, ev.y, ids, enroll, trials,
                                            methods=["identity", "linear", "speaker-logit"], seed=0)
    assert table.index.tolist() == ["symmetric X/X", "symmetric Y/Y", "identity", "linear", "speaker-logit"]
    assert set(aligners) == {"identity", "linear", "speaker-logit"}
    xx, yy = table.loc["symmetric X/X", "eer"], table.loc["symmetric Y/Y", "eer"]
    assert yy < xx  # Y is the better model here
    assert table.loc["symmetric X/X", "gain_recovered"] == 0.0 and table.loc["symmetric Y/Y", "gain_recovered"] == 1.0
    assert table.loc["identity", "eer"] > 0.3  # unaligned rotated spaces: near chance
    assert table.loc["linear", "gain_recovered"] > 0.2  # undoing the rotation keeps part of Y's advantage
    assert table.loc["symmetric X/X", "rel_frr_change"] == 0.0
    assert (table["fit_s"] >= 0).all()


def test_identity_skipped_for_different_dims():
    p = toy.make_paired_spaces(20, 4, d_x=4, d_y=6, d_latent=4, warp_y="nonlinear", rng=np.random.default_rng(0))
    ids = np.array([f"u{i}" for i in range(len(p.x))])
    enroll, trials = lists(p.speakers, ids)
    table, _ = study.compare_methods(p.x, p.y, p.speakers, p.x, p.y, ids, enroll, trials,
                                     methods=["identity", "linear"])
    assert "identity" not in table.index and "linear" in table.index
