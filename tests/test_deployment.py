"""Deployment check of aligners on a sample of target traffic, and the migration CLI's --check / --strict."""

import numpy as np
import pytest

from nessa_lib import align, embeddings, migrate, toy
from nessa_lib.align import collapse
from nessa_lib.deployment import (agreement_summary, check_table, deployment_check, pair_agreement,
                                  pull_toward_one)

# An upgrade worth making: the old model X is noisier than the new model Y (toy X/X EER about 13 %, Y/Y 5 %), so
# an aligner that works beats keeping X on the same trials.
UPGRADE = dict(noise_x=0.8, noise_y=0.3, session_noise=0.6)


def spaces(offset, n_spk=30, **kw):
    # Seeded alike: the same two models; the offset gives new voices.
    return toy.make_paired_spaces(n_spk, 6, rng=np.random.default_rng(0), speaker_offset=offset,
                                  **{**UPGRADE, **kw})


def shifted(y, rng):
    """A channel shift on the runtime side: a constant offset and extra noise, as an unseen condition gives."""
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    c = rng.normal(size=y.shape[1])
    return y + 1.5 * c / np.linalg.norm(c) + 0.4 * rng.normal(size=y.shape) / np.sqrt(y.shape[1])


def names(report):
    """The names of the problems a report found ("collapse", "control", ...)."""
    return [p.split(":")[0] for p in report.problems]


@pytest.fixture(scope="module")
def fitted():
    p = spaces(0, n_spk=100)
    return align.fit("nessa-m2", p.x, p.y, p.speakers, max_epochs=60, hidden_dim=32, seed=0,
                     enroll_model_id="X@1", runtime_model_id="Y@1")


def test_fit_agreement_is_stored_and_survives_save(fitted, tmp_path):
    p = spaces(0, n_spk=100)
    want = agreement_summary(pair_agreement(fitted, p.x, p.y))
    assert fitted.fit_agreement == pytest.approx(want)
    assert 0 < want["p05"] <= want["median"] <= 1
    fitted.save(tmp_path / "a.safetensors")
    assert align.load(tmp_path / "a.safetensors").fit_agreement == fitted.fit_agreement


def test_same_domain_sample_passes_and_a_shifted_one_is_flagged(fitted):
    new = spaces(1000)  # new voices, same models and conditions
    ok = deployment_check(fitted, new.x, new.y, new.speakers, n_rounds=200)
    assert ok.ok and ok.sample["median"] >= fitted.fit_agreement["p05"]
    y_shift = shifted(new.y, np.random.default_rng(1))
    bad = deployment_check(fitted, new.x, y_shift, new.speakers, n_rounds=200)
    assert not bad.ok and "agreement" in names(bad) and "below the fit's 5th percentile" in bad.message
    # With labels, the EER on the sample says the same: the aligned system got worse under the shift.
    assert bad.eer.loc["aligned", "eer"] > ok.eer.loc["aligned", "eer"]
    assert list(bad.eer.columns) == ["eer", "eer_lo", "eer_hi"] and list(bad.eer.index) == ["X/X", "Y/Y", "aligned"]
    assert (bad.eer["eer_lo"] <= bad.eer["eer_hi"]).all()
    # Without labels: agreement only.
    assert deployment_check(fitted, new.x, y_shift).eer is None


def test_max_eer_flags_a_sample_whose_interval_is_above_it(fitted):
    new = spaces(1000)
    r = deployment_check(fitted, new.x, new.y, new.speakers, n_rounds=100, max_eer=0.0)
    assert r.eer.loc["aligned", "eer_lo"] > 0 and names(r) == ["max_eer"] and not r.ok
    assert deployment_check(fitted, new.x, new.y, new.speakers, n_rounds=100, max_eer=0.5).ok


def test_deployment_check_errors(fitted):
    new = spaces(1000)
    with pytest.raises(ValueError, match="not paired"):
        deployment_check(fitted, new.x, new.y[:-1])
    old = align.fit("linear", new.x, new.y, new.speakers)
    old.fit_agreement = {}
    with pytest.raises(ValueError, match="no stored fit agreement"):
        deployment_check(old, new.x, new.y)


def _write(path, emb, ids, spk, model):
    embeddings.save_embeddings(path, embeddings.EmbeddingSet(emb.astype("float32"), ids, spk, model))


def test_migrate_cli_check_warns_or_refuses(fitted, tmp_path, capsys):
    fitted.save(tmp_path / "m2.safetensors")
    new = spaces(1000)
    ids = np.array([f"u{i}" for i in range(len(new.x))])
    spk = new.speakers.astype(str)
    _write(tmp_path / "sx.npz", new.x, ids, spk, "X@1")
    _write(tmp_path / "sy_shift.npz", shifted(new.y, np.random.default_rng(1)), ids, spk, "Y@1")
    _write(tmp_path / "sy.npz", new.y, ids, spk, "Y@1")
    _write(tmp_path / "profiles.npz", new.x[:5], ids[:5], spk[:5], "X@1")
    args = [str(tmp_path / "m2.safetensors"), str(tmp_path / "profiles.npz")]
    out = tmp_path / "migrated.npz"

    assert migrate.main(args + [str(out), "--check", str(tmp_path / "sx.npz"), str(tmp_path / "sy.npz"),
                                "--strict"]) == 0
    assert out.exists() and "deployment check passed" in capsys.readouterr().out
    out.unlink()
    assert migrate.main(args + [str(out), "--check", str(tmp_path / "sx.npz"), str(tmp_path / "sy_shift.npz"),
                                "--strict"]) == 2
    assert not out.exists() and "nothing migrated" in capsys.readouterr().err
    # A collapsed sample: refused by --strict, the message names the problem and the files.
    cx, cy = pull_toward_one(new.x, new.y, 0.7)
    _write(tmp_path / "cx.npz", cx, ids, spk, "X@1")
    _write(tmp_path / "cy.npz", cy, ids, spk, "Y@1")
    assert migrate.main(args + [str(out), "--check", str(tmp_path / "cx.npz"), str(tmp_path / "cy.npz"),
                                "--strict"]) == 2
    err = capsys.readouterr().err
    assert not out.exists() and "collapse: " in err and "cx.npz" in err and "cy.npz" in err and "m2.safetensors" in err
    # Labels of a single speaker: an error naming the files, nothing written.
    _write(tmp_path / "sx1.npz", new.x, ids, np.full(len(ids), "s1"), "X@1")
    _write(tmp_path / "sy1.npz", new.y, ids, np.full(len(ids), "s1"), "Y@1")
    assert migrate.main(args + [str(out), "--check", str(tmp_path / "sx1.npz"), str(tmp_path / "sy1.npz")]) == 1
    err = capsys.readouterr().err
    assert "sx1.npz" in err and "1 speaker(s)" in err and not out.exists()
    assert migrate.main(args + [str(out), "--check", str(tmp_path / "sx.npz"), str(tmp_path / "sy_shift.npz")]) == 0
    assert out.exists() and "warning: deployment check failed" in capsys.readouterr().err
    # A sample embedded by another model is refused, naming the file; nothing is written.
    out.unlink()
    _write(tmp_path / "sy_other.npz", new.y, ids, spk, "Z@9")
    assert migrate.main(args + [str(out), "--check", str(tmp_path / "sx.npz"), str(tmp_path / "sy_other.npz")]) == 1
    err = capsys.readouterr().err
    assert "sy_other.npz" in err and not out.exists()
    with pytest.raises(SystemExit):
        migrate.main(args + [str(out), "--strict"])


# -- the collapse statistics on hand-computed toy cases ---------------------------------------------------------

def test_pair_identification_rate_on_three_points():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    # Utterance 2's runtime side has drifted: cosine 0 with its own enrollment side, 0.8 with utterance 1's.
    b = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, -0.6]])
    assert collapse.pair_identification_rate(a, b) == pytest.approx(2 / 3)
    assert collapse.pair_identification_rate(a, a) == 1.0
    # Scrambled runtime side: the three rows rotated, nobody finds their pair.
    assert collapse.pair_identification_rate(np.eye(3), np.eye(3)[[1, 2, 0]]) == 0.0


def test_nonpair_cosines_and_sample_statistics_by_hand():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    # Off-diagonal S[i, j], row by row: (0, 1) 0, (0, 2) 0.6, (1, 0) 0, (1, 2) 0.8, (2, 0) 0.6, (2, 1) 0.8.
    assert collapse.nonpair_cosines(a, a).tolist() == pytest.approx([0.0, 0.6, 0.0, 0.8, 0.6, 0.8])
    s = collapse.sample_statistics(a, a, 3)
    assert s["nonpair_median"] == pytest.approx(0.6) and s["pair_id"] == 1.0 and s["size"] == 3
    with pytest.raises(ValueError, match="size must be between"):
        collapse.sample_statistics(a, a, 4)


def test_reference_statistics_sizes_and_comparable_size():
    e = np.eye(40)
    r = collapse.reference_statistics(e, e)
    assert r["n"] == 40 and sorted(r["pair_id"], key=int) == ["16", "32"]  # the SIZES up to n
    assert r["pair_id"]["16"] == {"median": 1.0, "p05": 1.0, "p95": 1.0, "draws": 32}
    assert r["nonpair_cosine"] == {"median": 0.0, "p95": 0.0}
    assert collapse.comparable_size(r, 39) == 32 and collapse.comparable_size(r, 31) == 16
    assert collapse.comparable_size(r, 15) is None
    assert collapse.reference_statistics(np.eye(10), np.eye(10)) == {}  # too few rows for any size
    assert collapse.reference_statistics(e, e, seed=3) == collapse.reference_statistics(e, e, seed=3)


def test_pull_toward_one_by_hand():
    x = np.array([[3.0, 0.0], [0.0, 1.0]])
    xp, yp = pull_toward_one(x, x[:, ::-1], 0.25, anchor=1)
    assert xp.tolist() == [[0.75, 0.25], [0.0, 1.0]] and yp.tolist() == [[0.25, 0.75], [1.0, 0.0]]
    with pytest.raises(ValueError, match="strength"):
        pull_toward_one(x, x, 1.5)


# -- the three failures provoked on purpose, and a sample where the aligner works --------------------------------

def test_fit_reference_is_stored_survives_save_and_keeps_the_space_id(fitted, tmp_path):
    ref = fitted.fit_reference
    assert ref["n"] == 600 and set(ref["pair_id"]) == {"16", "32", "64", "128", "256", "512"}
    assert 0 < ref["pair_id"]["128"]["p05"] <= ref["pair_id"]["128"]["median"] <= 1
    fitted.save(tmp_path / "a.safetensors")
    assert align.load(tmp_path / "a.safetensors").fit_reference == ref
    # The space id migrated profiles carry does not depend on the reference (files saved before it keep theirs).
    m3 = align.fit("nessa-m3", *(lambda p: (p.x, p.y, p.speakers))(spaces(0, n_spk=8)), max_epochs=2,
                   hidden_dim=8)
    before = migrate.space_id(m3)
    m3.fit_reference = {}
    assert migrate.space_id(m3) == before


def test_a_sample_where_the_aligner_works_is_ok(fitted):
    new = spaces(1000)  # new voices, same models and conditions
    r = deployment_check(fitted, new.x, new.y, new.speakers, n_rounds=200)
    assert r.ok and r.problems == [] and r.space["size"] == 128
    # Measured: non-pair median 0.025 (fit 95th pct. 0.455), pair identification 0.66 (fit 5th pct. 0.79 at 128).
    assert r.space["nonpair_median"] < r.space["fit_nonpair_p95"]
    assert r.space["pair_id"] >= 0.5 * r.space["fit_pair_id_p05"]
    # Better than keeping X: X/X 12.7 %, aligned 9.6 %.
    assert r.control["gain"] == pytest.approx(r.eer.loc["X/X", "eer"] - r.eer.loc["aligned", "eer"])
    assert r.control["gain"] > 0 and r.control["gain_lo"] <= r.control["gain"] <= r.control["gain_hi"]


def test_a_collapse_that_keeps_agreement_high_is_flagged_without_labels(fitted):
    new = spaces(1000)
    # Every utterance pulled toward one utterance, seen alike by both models: the two sides of an utterance still
    # meet (agreement alone passes) but different utterances close up.
    x, y = pull_toward_one(new.x, new.y, 0.7)
    r = deployment_check(fitted, x, y)
    assert r.sample["median"] >= r.fit["p05"]  # agreement alone would pass (measured 0.73 vs 0.57)
    assert names(r) == ["collapse", "pair identification"] and not r.ok
    # Measured: non-pair median 0.62 vs the fit's 95th percentile 0.455; pair identification 0.10 vs fit 0.79.
    assert r.space["nonpair_median"] > r.space["fit_nonpair_p95"]
    assert r.space["pair_id"] < 0.5 * r.space["fit_pair_id_p05"]
    assert "the mapped space has closed up" in r.message


def test_a_scrambled_runtime_side_is_flagged(fitted):
    new = spaces(1000)
    y = new.y[np.random.default_rng(2).permutation(len(new.y))]
    r = deployment_check(fitted, new.x, y, new.speakers, n_rounds=200)
    # Non-pair cosines stay where they were (the space is not collapsed, only the pairs are wrong) ...
    assert r.space["nonpair_median"] < r.space["fit_nonpair_p95"]
    # ... pair identification falls to chance (1/128) and, with labels, the aligned system is far worse than X.
    assert names(r) == ["agreement", "pair identification", "control"]
    assert r.space["pair_id"] < 0.05 and r.control["gain_hi"] < 0


def test_a_deployment_worse_than_keeping_x_is_flagged_without_an_argument():
    # A "downgrade": the runtime model Y is much noisier than X. The aligner maps fine (no label-free problem)
    # but profiles scored against Y lose to simply keeping X.
    kw = dict(noise_x=0.2, noise_y=1.0, session_noise=0.6)
    p, new = spaces(0, n_spk=60, **kw), spaces(1000, **kw)
    a = align.fit("linear", p.x, p.y, p.speakers)
    r = deployment_check(a, new.x, new.y, new.speakers, n_rounds=200)
    assert names(r) == ["control"] and r.control["gain_hi"] < 0
    assert "is not better than keeping X" in r.message and "worse than keeping X by" in r.message


def test_older_aligner_files_fall_back_with_a_note_or_use_a_fit_sample(fitted):
    new = spaces(1000)
    old = align.fit("linear", *(lambda p: (p.x, p.y, p.speakers))(spaces(0, n_spk=60)))
    old.fit_reference = {}  # as saved before the reference statistics existed
    x, y = pull_toward_one(new.x, new.y, 0.7)
    r = deployment_check(old, x, y)
    assert r.ok and r.space is None and "no fit reference statistics" in r.notes[0]
    # A sample of its fit data measures the reference instead, at exactly the sample's size.
    fit = spaces(0, n_spk=60)
    r = deployment_check(old, x, y, reference=(fit.x, fit.y))
    assert r.space["size"] == len(x) == 180 and "collapse" in names(r)
    # Too few utterances for the collapse statistics: said, not silently skipped.
    r = deployment_check(fitted, new.x[:10], new.y[:10])
    assert r.space is None and "too few" in r.notes[0]


def test_labels_with_fewer_than_two_speakers_are_refused_naming_the_sample(fitted):
    new = spaces(1000)
    with pytest.raises(ValueError, match=r"sx.npz, sy.npz: .* 1 speaker\(s\) with 2 or more"):
        deployment_check(fitted, new.x, new.y, np.zeros(len(new.x)), source="sx.npz, sy.npz")
    spk = new.speakers.astype(str)
    spk[0] = ""
    with pytest.raises(ValueError, match="1 of the sample's 180 utterances have no speaker label"):
        deployment_check(fitted, new.x, new.y, spk)


def test_check_table_has_the_new_columns_and_flags_a_synthetic_collapse(fitted):
    new = spaces(1000)
    t = check_table({"nessa-m2": fitted}, {"as recorded": (new.x, new.y, new.speakers),
                                           "synthetic collapse": (*pull_toward_one(new.x, new.y, 0.7),
                                                                  new.speakers)}, n_rounds=50)
    assert {"nonpair_median", "fit_nonpair_p95", "pair_id", "pair_id_size", "fit_pair_id_p05", "gain", "gain_lo",
            "gain_hi", "problems"} <= set(t.columns)
    assert t["flagged"].tolist() == [False, True] and t["pair_id_size"].tolist() == [128, 128]
    assert t.loc[("nessa-m2", "synthetic collapse"), "problems"].startswith("collapse; pair identification")


def test_check_flags_a_least_squares_start_fed_inputs_unlike_its_fit_data():
    """The failure the chain's fit from M3's space ran into (docs/runs/schedule-sweep): M2's skip path starts at a
    nearly unregularised least-squares map, which puts large weights on directions the fit data barely uses; the
    traffic it then meets has energy there. The same draw without that energy passes."""
    rng = np.random.default_rng(0)
    n_spk, k, d = 60, 6, 24
    spk = np.repeat(np.arange(n_spk), 8)
    centers = rng.normal(size=(n_spk, k))
    a_x, b_y = rng.normal(size=(k, d)), rng.normal(size=(k, d))

    def sample(outside):  # X: a noisy view of the latent voice, plus `outside` energy in every direction
        lat = centers[spk] + 0.1 * rng.normal(size=(len(spk), k))
        x = (lat + 0.4 * rng.normal(size=lat.shape)) @ a_x + outside * rng.normal(size=(len(spk), d))
        return x, np.tanh(lat @ b_y) + 0.02 * rng.normal(size=(len(spk), d))

    a = align.fit("nessa-m2", *sample(0.02), spk, seed=0, hidden_dim=32, init="ridge", init_ridge=1e-6,
                  init_ridge_max=1e-6)
    assert deployment_check(a, *sample(0.02), spk, n_rounds=100).ok
    bad = deployment_check(a, *sample(1.0), spk, n_rounds=100)
    assert not bad.ok and {"agreement", "pair identification"} <= set(names(bad))
