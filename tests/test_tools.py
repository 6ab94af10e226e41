"""tools/choose_defaults.py: the development sweep behind the aligners' defaults, on toy embedding files."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nessa_lib import embeddings, toy

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("choose_defaults", ROOT / "tools" / "choose_defaults.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["choose_defaults"] = mod  # worker processes look their function up by module name
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def emb_tree(tmp_path):
    """``<root>/{a,b}/{train,align}.npz`` of two toy models, and a manifest with enrollment flags."""
    rows = []
    for split, n_spk, offset in (("train", 12, 0), ("align", 8, 100)):
        # Generators seeded alike: the same two toy models, other speakers (toy.make_paired_spaces).
        p = toy.make_paired_spaces(n_spk, 6, d_latent=8, d_x=8, d_y=6, warp_y="nonlinear",
                                   rng=np.random.default_rng(0), speaker_offset=offset)
        spk = np.array([f"s{s}" for s in p.speakers])
        ids = np.array([f"{split}_{i}" for i in range(len(spk))])
        for model, e in (("a", p.x), ("b", p.y)):
            (tmp_path / model).mkdir(exist_ok=True)
            embeddings.save_embeddings(tmp_path / model / f"{split}.npz",
                                       embeddings.EmbeddingSet(e.astype("float32"), ids, spk, f"{model}@1"))
        first = pd.Series(spk).groupby(spk).cumcount().to_numpy() < 2  # 2 enrollment-condition utts per speaker
        rows += [{"utt_id": u, "speaker_id": s, "split": split, "enroll": bool(f)} for u, s, f in zip(ids, spk, first)]
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path


@pytest.mark.parametrize("jobs", ["1", "2"])  # in this process / in worker processes
def test_sweep_writes_one_row_per_fit_with_consistent_gain(sweep, emb_tree, jobs):
    out = emb_tree / "sweep.csv"
    rc = sweep.main(["--emb", str(emb_tree), "--manifest", str(emb_tree / "manifest.csv"), "--pairs", "a:b",
                     "--configs", "default,m2", "--seeds", "0,1", "--jobs", jobs, "--k-enroll", "2",
                     "--n-nontarget", "5", "--set", "max_epochs=2", "--set", "hidden_dim=8", "--out", str(out)])
    assert rc == 0
    df = pd.read_csv(out)
    assert sorted(zip(df["config"], df["seed"])) == [("default", 0), ("default", 1), ("m2", 0), ("m2", 1)]
    assert (df["n_fit_pairs"] == 72).all()  # the train split only: the align split is the development set
    assert (df["epochs"] <= 2).all()  # --set reached every fit
    assert df["eer"].between(0, 1).all()
    expected = (df["eer_xx"] - df["eer"]) / (df["eer_xx"] - df["eer_yy"])
    np.testing.assert_allclose(df["gain"], expected)


@pytest.mark.parametrize("args, message", [
    (["--configs", "default,nope"], "unknown configs ['nope']"),
    (["--set", "max_epochs"], "--set expects NAME=VALUE"),
])
def test_sweep_refuses_bad_arguments(sweep, emb_tree, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        sweep.main(["--emb", str(emb_tree), "--out", str(emb_tree / "x.csv"), *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
