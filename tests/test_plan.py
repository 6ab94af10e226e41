"""python -m nessa_lib.plan: the learning curve of a team's paired sample, and its refusals (naming the file)."""

import numpy as np
import pytest

from nessa_lib import embeddings, plan, toy

FAST = ["--methods", "linear", "nessa-m2", "--rounds", "50", "--start", "10", "--eval-voices", "30"]


def _write(path, e, ids, spk, model_id):
    embeddings.save_embeddings(path, embeddings.EmbeddingSet(np.asarray(e, "float32"), ids, spk, model_id))
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    d = tmp_path_factory.mktemp("plan")
    p = toy.make_paired_spaces(110, 6, d_latent=8, d_x=8, d_y=24, noise_x=0.6, noise_y=0.05, warp_y="nonlinear",
                               warp_gain=0.7, rng=np.random.default_rng(0))
    ids = np.array([f"u{i}" for i in range(len(p.speakers))])
    spk = np.array([f"s{s}" for s in p.speakers])
    order = np.random.default_rng(1).permutation(len(ids))  # Y's file in another row order: paired by id
    return dict(dir=d, x=_write(d / "x.npz", p.x, ids, spk, "X@1"),
                y=_write(d / "y.npz", p.y[order], ids[order], spk[order], "Y@1"), p=p, ids=ids, spk=spk)


def test_plan_prints_the_curve_and_writes_the_page(sample, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(plan.lcm, "learning_curve", _fast(plan.lcm.learning_curve))
    out = tmp_path / "out"
    assert plan.main([str(sample["x"]), str(sample["y"]), "--out", str(out), *FAST]) == 0
    text = capsys.readouterr().out
    assert "660 paired utterances of 110 voices (X@1 -> Y@1)" in text
    assert "held-out voices: 30, fit voices: 80" in text
    assert "nessa-m2: share of the gain recovered" in text and "fitted curve share(n) =" in text
    assert "60 % of the gain" in text and "80 % of the gain" in text
    assert "recommended: " in text
    for f in ("index.html", "learning_curve.png", "learning_curve.csv", "targets.csv"):
        assert (out / f).stat().st_size > 0
    page = (out / "index.html").read_text()
    assert "Recommended:" in page and "learning_curve.png" in page and "x.npz" in page
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def _fast(fn):
    """learning_curve with few epochs (the CLI uses the methods' defaults)."""
    def wrapped(*a, **kw):
        kw["hparams"] = {"nessa-m2": dict(max_epochs=30, hidden_dim=32)}
        return fn(*a, **kw)
    return wrapped


def test_unlabelled_file_is_refused_naming_it(sample, tmp_path, capsys):
    bad = _write(tmp_path / "nolabels.npz", sample["p"].y, sample["ids"], np.full(len(sample["ids"]), ""), "Y@1")
    assert plan.main([str(sample["x"]), str(bad), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "no speaker labels" in err
    assert not (tmp_path / "o").exists()


def test_unpaired_files_are_refused_naming_both(sample, tmp_path, capsys):
    bad = _write(tmp_path / "other.npz", sample["p"].y[:-6], sample["ids"][:-6], sample["spk"][:-6], "Y@1")
    assert plan.main([str(sample["x"]), str(bad), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert str(sample["x"]) in err and str(bad) in err and "do not pair up" in err and "6 utterance(s)" in err


def test_too_few_voices_say_how_many_are_needed(tmp_path, capsys):
    p = toy.make_paired_spaces(40, 4, rng=np.random.default_rng(0))
    ids = np.array([f"u{i}" for i in range(len(p.speakers))])
    spk = p.speakers.astype(str)
    x = _write(tmp_path / "x.npz", p.x, ids, spk, "X@1")
    y = _write(tmp_path / "y.npz", p.y, ids, spk, "Y@1")
    assert plan.main([str(x), str(y), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert str(x) in err and "40 voices are too few" in err and "at least 145" in err


def test_bad_options_are_refused(sample, tmp_path, capsys):
    assert plan.main([str(sample["x"]), str(sample["y"]), "--methods", "nessa-m9"]) == 1
    assert "unknown method" in capsys.readouterr().err
    assert plan.main([str(sample["x"]), str(sample["y"]), "--targets", "80"]) == 1
    assert "fractions" in capsys.readouterr().err
