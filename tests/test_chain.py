"""nessa_lib.chain and chained migrations: v1 -> v2 -> v3 profiles, what connects, what is refused and why."""

import numpy as np
import pytest

from nessa_lib import align, chain, embeddings, migrate
from nessa_lib.evaluation import metrics
from nessa_lib.evaluation.ab import alignment_trials
from nessa_lib.evaluation.lists import score_lists
from nessa_lib.evaluation.tables import aligned_scores

FAST = dict(max_epochs=60, patience=10, hidden_dim=32)
IDS = ("v1@1", "v2@1", "v3@1")


@pytest.fixture(scope="module")
def data(model_versions):
    return model_versions(200, 0), model_versions(30, 1000)


@pytest.fixture(scope="module")
def aligners(data):
    fit_set, _ = data
    v1, v2, v3 = fit_set.embeddings
    spk = fit_set.speakers
    return {
        "m2_12": align.fit("nessa-m2", v1, v2, spk, seed=0, enroll_model_id=IDS[0], runtime_model_id=IDS[1], **FAST),
        "m2_23": align.fit("nessa-m2", v2, v3, spk, seed=0, enroll_model_id=IDS[1], runtime_model_id=IDS[2], **FAST),
        "m1_12": align.fit("nessa-m1", v1, v2, spk, seed=0, enroll_model_id=IDS[0], runtime_model_id=IDS[1],
                           max_epochs=3, hidden_dim=8),
        "m3_12": align.fit("nessa-m3", v1, v2, spk, seed=0, enroll_model_id=IDS[0], runtime_model_id=IDS[2 - 1],
                           max_epochs=3, hidden_dim=8),
    }


@pytest.fixture
def files(tmp_path, aligners, data):
    paths = {}
    for name, a in aligners.items():
        a.save(tmp_path / f"{name}.safetensors")
        paths[name] = tmp_path / f"{name}.safetensors"
    _, ev = data
    ids = np.array([f"u{i}" for i in range(len(ev.speakers))])
    for k, e in enumerate(ev.embeddings):
        embeddings.save_embeddings(tmp_path / f"eval_v{k + 1}.npz", embeddings.EmbeddingSet(
            e.astype("float32"), ids, ev.speakers.astype(str), IDS[k]))
        paths[f"v{k + 1}"] = tmp_path / f"eval_v{k + 1}.npz"
    return paths


def test_chained_m2_migration_scores_well_against_the_newest_model(aligners, data):
    _, ev = data
    v1, _, v3 = ev.embeddings
    ids = np.array([f"u{i}" for i in range(len(ev.speakers))])
    enroll, trials = alignment_trials(ev.speakers, ids, k_enroll=2, n_nontarget_per_profile=20, rng=0)
    labels = trials["label"].to_numpy()
    c = chain.make_chain([aligners["m2_12"], aligners["m2_23"]])
    eer_11 = metrics.eer(score_lists(v1, v1, ids, enroll, trials), labels)
    eer_33 = metrics.eer(score_lists(v3, v3, ids, enroll, trials), labels)
    eer_chain = metrics.eer(aligned_scores(c, v1, v3, ids, enroll, trials), labels)
    unaligned = metrics.eer(score_lists(v1, v3, ids, enroll, trials), labels)
    assert eer_33 < eer_11  # the toy versions improve, as upgrades do
    assert unaligned > 0.3  # v1 profiles against v3 embeddings without alignment: chance
    # The chain keeps most of the v1 -> v3 symmetric gain.
    assert (eer_11 - eer_chain) / (eer_11 - eer_33) > 0.5, (eer_11, eer_chain, eer_33)


def test_chain_maps_like_the_aligners_one_after_another(aligners, data):
    _, ev = data
    c = chain.make_chain([aligners["m2_12"], aligners["m2_23"]])
    step = aligners["m2_23"].map_enrollment(aligners["m2_12"].map_enrollment(ev.embeddings[0]))
    np.testing.assert_array_equal(c.map_enrollment(ev.embeddings[0]), step)
    assert (c.enroll_model_id, c.runtime_model_id, c.space_id) == ("v1@1", "v3@1", "v3@1")


def test_chain_file_migration_records_the_whole_chain(files, tmp_path, aligners, data):
    out = migrate.migrate_file([files["m2_12"], files["m2_23"]], files["v1"], tmp_path / "out.npz")
    assert out.model_id == "v3@1"
    back = embeddings.load_embeddings(tmp_path / "out.npz", model_id="v3@1")
    np.testing.assert_allclose(back.embeddings, chain.make_chain([aligners["m2_12"], aligners["m2_23"]])
                               .map_enrollment(data[1].embeddings[0]), atol=1e-6)
    prov = migrate.read_provenance(tmp_path / "out.npz")
    assert prov["format_version"] == 2 and prov["aligner"] is None and prov["space_id"] == "v3@1"
    assert [r["file"] for r in prov["chain"]] == ["m2_12.safetensors", "m2_23.safetensors"]
    assert [(r["method"], r["enroll_model_id"], r["runtime_model_id"], r["profile_space"]) for r in prov["chain"]] \
        == [("nessa-m2", "v1@1", "v2@1", "v2@1"), ("nessa-m2", "v2@1", "v3@1", "v3@1")]
    from nessa_lib.encoders.hub import file_sha256

    assert prov["chain"][0]["sha256"] == file_sha256(files["m2_12"])


def test_a_chain_of_one_is_the_single_migration(files, tmp_path):
    a = migrate.migrate_file([files["m2_12"]], files["v1"], tmp_path / "a.npz")
    b = migrate.migrate_file(files["m2_12"], files["v1"], tmp_path / "b.npz")
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    pa, pb = migrate.read_provenance(tmp_path / "a.npz"), migrate.read_provenance(tmp_path / "b.npz")
    assert pa == {**pb, "input": pa["input"]} and pa["format_version"] == 1 and "chain" not in pa


def test_chain_whose_ids_do_not_connect_is_refused_naming_both_files_and_ids(files, tmp_path):
    with pytest.raises(chain.ChainError) as err:
        migrate.migrate_file([files["m2_23"], files["m2_12"]], files["v1"], tmp_path / "o.npz")
    msg = str(err.value)
    for part in (str(files["m2_23"]), str(files["m2_12"]), "'v3@1'", "enrollment model 'v1@1'"):
        assert part in msg
    assert not (tmp_path / "o.npz").exists()


def test_m1_leaves_profiles_in_the_old_space_so_the_chain_is_refused(aligners):
    with pytest.raises(chain.ChainError, match=r"leaves profiles in its enrollment model's space 'v1@1'.*"
                                               r"fitted for enrollment model 'v2@1'.*nothing to chain"):
        chain.make_chain([aligners["m1_12"], aligners["m2_23"]], ["m1.safetensors", "m2.safetensors"])


def test_after_m3_only_an_aligner_fitted_from_its_space_connects(aligners, data):
    m3 = aligners["m3_12"]
    with pytest.raises(chain.ChainError, match=r"new space 'nessa-m3@.*neither of its models.*fit_from_space"):
        chain.make_chain([m3, aligners["m2_23"]])
    fit_set, ev = data
    nxt = chain.fit_from_space("nessa-m2", m3, fit_set.embeddings[1], fit_set.embeddings[2], fit_set.speakers,
                               runtime_model_id=IDS[2], max_epochs=3, hidden_dim=8)
    c = chain.make_chain([m3, nxt])
    assert nxt.enroll_model_id == migrate.space_id(m3) and c.space_id == "v3@1"
    assert c.map_enrollment(ev.embeddings[0]).shape == (len(ev.speakers), 8)


def test_dimension_break_is_named(aligners, data):
    fit_set, _ = data
    v1, _, v3 = fit_set.embeddings
    # Claims to start from v2 but was fitted on 6-d embeddings: ids connect, dimensions do not.
    liar = align.fit("linear", v1[:, :6], v3, fit_set.speakers, enroll_model_id=IDS[1], runtime_model_id=IDS[2])
    with pytest.raises(chain.ChainError, match=r"8-d vectors, but b expects 6-d"):
        chain.make_chain([aligners["m2_12"], liar], ["a", "b"])


def test_cli_chain_check_and_refusals(files, tmp_path, capsys):
    out = tmp_path / "cli.npz"
    rc = migrate.main([str(files["m2_12"]), str(files["m2_23"]), str(files["v1"]), str(out),
                       "--check", str(files["v1"]), str(files["v3"])])
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "chain of 2 aligners connects: v1@1 -> nessa-m2 -> v2@1 -> nessa-m2 -> v3@1" in text.out
    assert "deployment check" in text.out + text.err and "last aligner's fit data" in text.out + text.err
    assert "a chain ships no threshold" in text.out
    assert migrate.read_provenance(out)["chain"][1]["file"] == "m2_23.safetensors"

    bad = tmp_path / "bad.npz"
    assert migrate.main([str(files["m2_23"]), str(files["m2_12"]), str(files["v1"]), str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(files["m2_23"]) in err and str(files["m2_12"]) in err and "nothing migrated" in err
    assert not bad.exists()
    assert migrate.main([str(files["m2_12"]), str(files["m2_23"]), str(files["v1"]), str(bad),
                         "--side", "runtime"]) == 1
    assert "enrollment side" in capsys.readouterr().err
    assert migrate.main([str(files["m2_12"]), str(files["m2_23"]), str(files["v1"]), str(bad),
                         "--calibration", str(tmp_path / "c.json")]) == 1
    assert "no threshold ships with a chained migration" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        migrate.main([str(files["m2_12"]), str(bad)])
    assert not bad.exists()


def test_check_of_a_chain_refuses_samples_of_the_wrong_models(files):
    with pytest.raises(ValueError, match=r"eval_v2.npz holds embeddings of model 'v2@1', expected 'v1@1'"):
        migrate.check_files([files["m2_12"], files["m2_23"]], files["v2"], files["v3"], n_rounds=20)
    r = migrate.check_files([files["m2_12"], files["m2_23"]], files["v1"], files["v3"], n_rounds=50)
    assert r.control["gain"] > 0  # the chained system beats keeping v1
