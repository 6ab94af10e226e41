"""Deployment check of aligners on a sample of target traffic, and the migration CLI's --check / --strict."""

import numpy as np
import pytest

from nessa_lib import align, embeddings, migrate, toy
from nessa_lib.deployment import agreement_summary, deployment_check, pair_agreement


def spaces(offset, n_spk=30):
    # Seeded alike: the same two models; the offset gives new voices.
    return toy.make_paired_spaces(n_spk, 6, rng=np.random.default_rng(0), speaker_offset=offset)


def shifted(y, rng):
    """A channel shift on the runtime side: a constant offset and extra noise, as an unseen condition gives."""
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    c = rng.normal(size=y.shape[1])
    return y + 0.8 * c / np.linalg.norm(c) + 0.4 * rng.normal(size=y.shape) / np.sqrt(y.shape[1])


@pytest.fixture(scope="module")
def fitted():
    p = spaces(0, n_spk=60)
    return align.fit("nessa-m2", p.x, p.y, p.speakers, max_epochs=30, hidden_dim=32, seed=0,
                     enroll_model_id="X@1", runtime_model_id="Y@1")


def test_fit_agreement_is_stored_and_survives_save(fitted, tmp_path):
    p = spaces(0, n_spk=60)
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
    assert not bad.ok and "agrees less than 95 %" in bad.message
    # With labels, the EER on the sample says the same: the aligned system got worse under the shift.
    assert bad.eer.loc["aligned", "eer"] > ok.eer.loc["aligned", "eer"]
    assert list(bad.eer.columns) == ["eer", "eer_lo", "eer_hi"] and list(bad.eer.index) == ["X/X", "Y/Y", "aligned"]
    assert (bad.eer["eer_lo"] <= bad.eer["eer_hi"]).all()
    # Without labels: agreement only.
    assert deployment_check(fitted, new.x, y_shift).eer is None


def test_max_eer_flags_a_sample_whose_interval_is_above_it(fitted):
    new = spaces(1000)
    r = deployment_check(fitted, new.x, new.y, new.speakers, n_rounds=100, max_eer=0.0)
    assert (not r.ok) == (r.eer.loc["aligned", "eer_lo"] > 0)


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
