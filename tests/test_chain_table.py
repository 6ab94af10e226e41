"""Stage 05's chain-of-upgrades table on toy model versions (nessa_lib.evaluation.chains, chain.upgrade_routes)
and the evaluate.chain key's validation."""

import numpy as np
import pandas as pd
import pytest

from nessa_lib import align, chain
from nessa_lib.evaluation import bootstrap, chains
from nessa_lib.evaluation.ab import alignment_trials
from nessa_lib.stages import evaluate as stage

FAST = dict(max_epochs=60, patience=10, hidden_dim=32)
M3 = dict(max_epochs=20, patience=5, hidden_dim=32)
IDS = ("v1@1", "v2@1", "v3@1")


@pytest.fixture(scope="module")
def table(model_versions):
    fit_set, ev = model_versions(200, 0), model_versions(30, 1000)
    e, spk = fit_set.embeddings, fit_set.speakers

    def fit(method, a, b, seed=0, **kw):
        return align.fit(method, e[a], e[b], spk, seed=seed, enroll_model_id=IDS[a], runtime_model_id=IDS[b], **kw)

    hops = [{"nessa-m2": [fit("nessa-m2", 0, 1, s, **FAST) for s in (0, 1)], "nessa-m3": [fit("nessa-m3", 0, 1, **M3)]},
            {"nessa-m2": [fit("nessa-m2", 1, 2, s, **FAST) for s in (0, 1)]}]
    direct = {"nessa-m2": [fit("nessa-m2", 0, 2, **FAST)]}
    from_space = chain.fit_from_spaces("nessa-m2", hops[0]["nessa-m3"], e[1], e[2], spk, runtime_model_id=IDS[2],
                                       **FAST)
    routes = chain.upgrade_routes(hops, direct=direct, from_m3_space=from_space)
    ids = np.array([f"u{i}" for i in range(len(ev.speakers))])
    enroll, trials = alignment_trials(ev.speakers, ids, k_enroll=2, n_nontarget_per_profile=20, rng=0)
    boot = bootstrap.SpeakerBootstrap(trials["profile_id"].to_numpy(), trials["label"].to_numpy(), n_rounds=100,
                                      seed=0)
    return chains.chain_table(ev.embeddings, ids, enroll, trials, routes, hops=hops, names=("a", "b", "c"),
                              boot=boot, fars=(0.05,))


def test_chain_table_rows_and_legs(table):
    assert table.index.tolist() == ["v1/v1", "v3/v3", "v2/v2", "composed-nessa-m2", "direct-nessa-m2",
                                    "m3-then-nessa-m2", "hop1-nessa-m2", "hop1-nessa-m3", "hop2-nessa-m2"]
    assert table.loc["composed-nessa-m2", ["leg", "profiles", "tests", "reference"]].tolist() == \
        ["v1 -> v3", "a", "c", "v3/v3"]
    assert table.loc["hop1-nessa-m2", ["leg", "profiles", "tests", "reference"]].tolist() == \
        ["hop 1", "a", "b", "v2/v2"]
    assert table.loc["composed-nessa-m2", "n_seeds"] == 2  # seed s of hop 1 with seed s of hop 2
    assert table.loc["v1/v1", "gain_recovered"] == 0.0 and table.loc["v3/v3", "gain_recovered"] == 1.0
    assert table.loc["v3/v3", "excess_eer"] == 0.0


def test_composed_chain_beats_no_upgrade_with_intervals(table):
    # The toy versions improve, as upgrades do, and the composed M2 chain keeps most of the v1 -> v3 gain.
    assert table.loc["v3/v3", "eer"] < table.loc["v2/v2", "eer"] < table.loc["v1/v1", "eer"]
    c = table.loc["composed-nessa-m2"]
    assert c["eer"] < table.loc["v1/v1", "eer"] and c["gain_recovered"] > 0.5, c["gain_recovered"]
    # ... with a 95 % speaker interval on every figure, that of the gain above 0 (beats no upgrade).
    assert c["gain_recovered_lo"] > 0 and c["eer_lo"] <= c["eer"] <= c["eer_hi"]
    assert (table["excess_eer_lo"] <= table["excess_eer_hi"]).all()
    assert table[["eer_lo", "eer_hi", "gain_recovered_lo", "frr_at_far0.05_hi"]].notna().all().all()
    flat = chains.flat_metrics(table, fars=(0.05,))
    assert flat["chain:composed-nessa-m2:eer"] == c["eer"]
    assert {"chain:hop2-nessa-m2:excess_eer_hi", "chain:m3-then-nessa-m2:gain_recovered_lo"} <= set(flat)
    assert all(isinstance(v, float) for v in flat.values())


def test_chain_table_is_the_same_for_any_workers(model_versions):
    v = model_versions(20, 0)
    ids = np.array([f"u{i}" for i in range(len(v.speakers))])
    enroll, trials = alignment_trials(v.speakers, ids, k_enroll=2, n_nontarget_per_profile=5, rng=0)
    boot = bootstrap.SpeakerBootstrap(trials["profile_id"].to_numpy(), trials["label"].to_numpy(), n_rounds=50,
                                      seed=0)
    lin = [{"linear": align.fit("linear", v.embeddings[k], v.embeddings[k + 1], v.speakers)} for k in (0, 1)]
    direct = {"direct-linear": align.fit("linear", v.embeddings[0], v.embeddings[2], v.speakers)}
    one, two = (chains.chain_table(v.embeddings, ids, enroll, trials, direct, hops=lin, boot=boot, fars=(0.05,),
                                   workers=w) for w in (1, 2))
    pd.testing.assert_frame_equal(one, two)
    assert one.index.tolist()[-2:] == ["hop1-linear", "hop2-linear"]


def test_upgrade_routes_refuse_a_chain_that_does_not_connect():
    x = np.random.default_rng(0).normal(size=(20, 3)).astype("float32")
    ab = align.fit("nessa-m2", x, x, np.arange(20) // 4, max_epochs=2, hidden_dim=8, enroll_model_id="v1",
                   runtime_model_id="v2")
    with pytest.raises(chain.ChainError, match="does not connect"):
        chain.upgrade_routes([{"nessa-m2": ab}, {"nessa-m2": ab}])


PAIRS = {"rz-xv": {"enroll_model": "rz", "runtime_model": "xv"}, "xv-ec": {"enroll_model": "xv", "runtime_model": "ec"}}


@pytest.mark.parametrize("value, message", [
    (["rz", "ec", "xv"], "upgrade rz -> ec is not a pair of fit_aligners.pairs"),
    (["rz", "xv"], "at least three distinct models"),
    (["rz", "xv", "rz"], "at least three distinct models"),
])
def test_chain_key_is_validated(value, message):
    problems = stage.chain_problems(value, PAIRS, ["nessa-m2"])
    assert any(message in p and p.startswith("evaluate.chain") for p in problems), problems


def test_chain_key_empty_disables_and_valid_passes():
    assert stage.chain_problems([], {}, []) == []
    assert stage.chain_problems(["rz", "xv", "ec"], PAIRS, ["nessa-m2", "nessa-m3"]) == []
    assert "nessa-m2 in fit_aligners.methods" in stage.chain_problems(["rz", "xv", "ec"], PAIRS, ["linear"])[0]


def test_params_file_checks_the_chain_key(tmp_path):
    import yaml

    from nessa_lib.pipeline.params import problems

    data = yaml.safe_load((stage.schema.paths.repo_root() / "params.yaml").read_text())
    assert data["evaluate"]["chain"], "the study's chain is set"
    data["evaluate"]["chain"] = ["xvector", "resemblyzer", "ecapa"]  # no pair xvector -> resemblyzer
    found = problems(data, "params.yaml")
    assert any(p.startswith("params.yaml: evaluate.chain: upgrade xvector -> resemblyzer") for p in found), found
    assert stage.chain_percent_table(pd.DataFrame()).empty
