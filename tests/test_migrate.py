"""nessa_lib.migrate: profile migration through an aligner file, and every way it must refuse to."""

import numpy as np
import pytest

from nessa_lib import align, embeddings, migrate, toy

FAST = dict(max_epochs=5, patience=3, hidden_dim=16)


@pytest.fixture(scope="module")
def pair():
    p = toy.make_paired_spaces(20, 5, d_latent=6, d_x=6, d_y=4, warp_y="nonlinear", rng=np.random.default_rng(0))
    return p


def _save_set(path, x, model_id):
    ids = np.array([f"p{i}" for i in range(len(x))])
    embeddings.save_embeddings(path, embeddings.EmbeddingSet(np.asarray(x, "float32"), ids, ids, model_id))
    return path


@pytest.fixture
def files(tmp_path, pair):
    paths = {}
    for method in ("nessa-m2", "nessa-m1", "nessa-m3"):
        a = align.fit(method, pair.x, pair.y, pair.speakers, seed=0, enroll_model_id="X@1", runtime_model_id="Y@1",
                      **FAST)
        a.save(tmp_path / f"{method}.safetensors")
        paths[method] = tmp_path / f"{method}.safetensors"
    paths["profiles"] = _save_set(tmp_path / "profiles.npz", pair.x[:7], "X@1")
    paths["runtime"] = _save_set(tmp_path / "runtime.npz", pair.y[:5], "Y@1")
    return paths


def test_m2_migration_lands_in_the_runtime_space_and_matches_the_api(files, tmp_path, pair):
    out = migrate.migrate_file(files["nessa-m2"], files["profiles"], tmp_path / "out.npz")
    back = embeddings.load_embeddings(tmp_path / "out.npz")
    a = align.load(files["nessa-m2"])
    np.testing.assert_allclose(back.embeddings, a.map_enrollment(pair.x[:7]), rtol=0, atol=1e-6)
    assert back.model_id == "Y@1" == out.model_id  # comparable with plain runtime-model embeddings
    assert back.utt_ids.tolist() == [f"p{i}" for i in range(7)]
    np.testing.assert_allclose(np.linalg.norm(back.embeddings, axis=1), 1, atol=1e-6)


def test_m1_runtime_side_stays_in_the_enrollment_space(files, tmp_path):
    out = migrate.migrate_file(files["nessa-m1"], files["runtime"], tmp_path / "out.npz", side="runtime")
    assert out.model_id == "X@1" and out.dim == 6


def test_m3_sides_share_one_new_space_id(files, tmp_path):
    e = migrate.migrate_file(files["nessa-m3"], files["profiles"], tmp_path / "e.npz")
    r = migrate.migrate_file(files["nessa-m3"], files["runtime"], tmp_path / "r.npz", side="runtime")
    assert e.model_id == r.model_id and e.model_id.startswith("nessa-m3@")
    assert e.model_id != migrate.space_id(align.load(files["nessa-m2"]))


def test_chunked_mapping_equals_one_pass(files, pair):
    a = align.load(files["nessa-m3"])
    s = embeddings.EmbeddingSet(pair.x.astype("float32"), np.arange(len(pair.x)).astype(str),
                                pair.speakers.astype(str), "X@1")
    one = migrate.migrate_embeddings(a, s)
    # Same rows, same map; only the matrix-product blocking differs (float rounding).
    np.testing.assert_allclose(migrate.migrate_embeddings(a, s, chunk=7).embeddings, one.embeddings, atol=1e-6)


@pytest.mark.parametrize("case, error, match", [
    ("other model", ValueError, "come from model 'Z@9'.*fitted for enrollment model 'X@1'"),
    ("wrong dim", ValueError, "dimension"),
    ("nan row", ValueError, "NaN"),
    ("runtime file on the enrollment side", ValueError, "come from model 'Y@1'"),
])
def test_bad_profiles_are_refused_naming_the_file_and_nothing_is_written(files, tmp_path, pair, case, error, match):
    src = {
        "other model": lambda p: _save_set(p, pair.x[:3], "Z@9"),
        "wrong dim": lambda p: _save_set(p, pair.y[:3], "X@1"),
        "nan row": lambda p: np.savez(p, embeddings=np.array([[np.nan] * 6], "float32"), utt_ids=np.array(["p"]),
                                      speaker_ids=np.array(["s"]), model_id=np.array("X@1")),
        "runtime file on the enrollment side": lambda p: files["runtime"],
    }[case]
    path = tmp_path / "bad.npz"
    path = src(path) or path
    with pytest.raises(error, match=match) as exc:
        migrate.migrate_file(files["nessa-m2"], path, tmp_path / "out.npz")
    assert str(path) in str(exc.value)
    assert not (tmp_path / "out.npz").exists()


def test_never_overwrites_its_input_or_an_existing_file_unless_forced(files, tmp_path):
    before = files["profiles"].read_bytes()
    with pytest.raises(ValueError, match="over their input"):
        migrate.migrate_file(files["nessa-m2"], files["profiles"], files["profiles"])
    assert files["profiles"].read_bytes() == before
    out = tmp_path / "out.npz"
    out.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="exists"):
        migrate.migrate_file(files["nessa-m2"], files["profiles"], out)
    assert out.read_bytes() == b"keep me"
    migrate.migrate_file(files["nessa-m2"], files["profiles"], out, overwrite=True)
    assert embeddings.load_embeddings(out).model_id == "Y@1"
    with pytest.raises(ValueError, match="side must be one of"):
        migrate.migrate_file(files["nessa-m2"], files["profiles"], tmp_path / "x.npz", side="both")


def test_cli_reports_success_and_errors(files, tmp_path, capsys):
    out = tmp_path / "cli.npz"
    assert migrate.main([str(files["nessa-m2"]), str(files["profiles"]), str(out)]) == 0
    assert "migrated 7 rows" in capsys.readouterr().out and out.is_file()
    assert migrate.main([str(files["nessa-m2"]), str(files["runtime"]), str(tmp_path / "x.npz")]) == 1
    err = capsys.readouterr().err
    assert "error: " in err and str(files["runtime"]) in err
    assert migrate.main([str(tmp_path / "missing.safetensors"), str(files["profiles"]), str(tmp_path / "y.npz")]) == 1
    assert "aligner file not found" in capsys.readouterr().err


# --- issue 24: a CLI error is one line naming the path, never a traceback or a temporary file ----------------------


def _cli(*args):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nessa_lib.migrate", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120)


def test_cli_errors_name_the_path_and_leave_nothing_behind(files, tmp_path, pair, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    x = pair.x[:4].astype("float32")
    x[1, 0] = np.nan
    ids = np.array(["a", "b", "c", "d"])
    np.savez(bad / "nan.npz", embeddings=x, utt_ids=ids, speaker_ids=ids, model_id=np.array("X@1"))
    np.savez(bad / "dup.npz", embeddings=pair.x[:3].astype("float32"), utt_ids=np.array(["a", "b", "a"]),
             speaker_ids=ids[:3], model_id=np.array("X@1"))
    (tmp_path / "existing.npz").write_bytes(b"keep")
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    cases = [  # (arguments, what the one-line error must say)
        ((files["nessa-m2"], tmp_path / "missing.npz", tmp_path / "o.npz"), "missing.npz"),
        ((files["nessa-m2"], files["profiles"], outdir, "--force"), f"{outdir} is a directory"),
        ((files["nessa-m2"], files["profiles"], outdir), f"{outdir} is a directory"),
        ((files["nessa-m2"], files["profiles"], tmp_path / "existing.npz"), "exists; pass --force to replace it"),
        ((files["nessa-m2"], files["runtime"], tmp_path / "o.npz"), "Y@1"),  # wrong model id
        ((files["nessa-m2"], bad / "nan.npz", tmp_path / "o.npz"), "NaN/inf in 1 row(s)"),
        ((files["nessa-m2"], bad / "dup.npz", tmp_path / "o.npz"), f"{bad / 'dup.npz'}: duplicated utterance ids"),
        ((files["nessa-m2"], files["profiles"], tmp_path / "o.npz", "--check", bad / "nan.npz",
          files["runtime"]), "deployment check"),
    ]
    before = sorted(tmp_path.rglob("*"))
    # The first case through a real interpreter (exit status, no traceback on stderr); the others through the same
    # main() in this process (an uncaught exception would fail the test here), which saves a start-up per case.
    res = _cli(*cases[0][0])
    assert res.returncode == 1 and "Traceback" not in res.stderr and cases[0][1] in res.stderr, res.stderr
    for args, says in cases[1:]:
        capsys.readouterr()
        rc = migrate.main([str(a) for a in args])
        err = capsys.readouterr().err
        assert rc == 1, (args, err)
        assert says in err, (args, err)
        assert "overwrite=True" not in err  # the CLI's wording is --force
    assert sorted(tmp_path.rglob("*")) == before  # no output, no out.tmp.npz, input untouched
    assert (tmp_path / "existing.npz").read_bytes() == b"keep"


def test_api_errors_use_the_api_wording(files, tmp_path):
    tmp_path = tmp_path / "api"
    tmp_path.mkdir()
    (tmp_path / "o.npz").write_bytes(b"x")
    with pytest.raises(FileExistsError, match=r"exists; pass overwrite=True to replace it$"):
        migrate.migrate_file(files["nessa-m2"], files["profiles"], tmp_path / "o.npz")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        migrate.migrate_file(files["nessa-m2"], files["profiles"], tmp_path, overwrite=True)
    with pytest.raises(IsADirectoryError, match="is a directory"):  # the file writer refuses too, and cleans up
        embeddings.save_embeddings(tmp_path, embeddings.load_embeddings(files["profiles"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.npz"]


def test_streamed_migration_writes_what_stacking_the_chunks_wrote(files, tmp_path, pair):
    a = align.load(files["nessa-m3"])
    x = np.tile(pair.x.astype("float32"), (3, 1))
    ids = np.arange(len(x)).astype(str)
    e = embeddings.EmbeddingSet(x, ids, ids, "X@1")
    got = migrate.migrate_embeddings(a, e, chunk=7)
    want = np.vstack([a.map_enrollment(x[s:s + 7], model_id="X@1") for s in range(0, len(x), 7)])
    assert got.embeddings.dtype == want.dtype and got.embeddings.tobytes() == want.tobytes()


# --- issue 21: the calibration and thresholds shipped with the migrated profiles -----------------------------------


def _toy_calibration():
    from nessa_lib.evaluation.calibration import fit_calibration

    rng = np.random.default_rng(1)
    scores = np.r_[rng.normal(0.2, 0.1, 200), rng.normal(0.7, 0.1, 50)]
    labels = np.r_[np.zeros(200, int), np.ones(50, int)]
    return fit_calibration(scores, labels), {0.01: 0.55, 0.1: 0.4}


def test_calibration_beside_the_aligner_ships_its_thresholds_with_the_migrated_file(files, tmp_path, capsys):
    import hashlib

    from nessa_lib.evaluation.calibration import calibration_path, save_calibration

    cal, thr = _toy_calibration()
    cal_file = calibration_path(files["nessa-m2"])
    save_calibration(cal_file, cal, thr, aligner=files["nessa-m2"], system="X/Y nessa-m2")
    out = tmp_path / "shipped.npz"
    assert migrate.main([str(files["nessa-m2"]), str(files["profiles"]), str(out)]) == 0
    said = capsys.readouterr().out
    assert f"using {cal_file}, found beside the aligner" in said
    assert "FAR 0.01: 0.55" in said and "FAR 0.1: 0.4" in said
    rec = migrate.read_provenance(out)["calibration"]
    assert rec["file"] == cal_file.name and rec["sha256"] == hashlib.sha256(cal_file.read_bytes()).hexdigest()
    assert (rec["scale"], rec["offset"], rec["prior"]) == (cal.scale, cal.offset, cal.prior)
    assert rec["thresholds"] == [{"far_target": 0.01, "threshold": 0.55}, {"far_target": 0.1, "threshold": 0.4}]
    assert migrate.shipped_threshold(out, 0.01) == 0.55 and migrate.shipped_threshold(out, 0.1) == 0.4
    with pytest.raises(ValueError, match=r"no threshold for FAR target 0.05 .*\[0.01, 0.1\]"):
        migrate.shipped_threshold(out, 0.05)
    # The embeddings are those of a migration without calibration, and the file still loads as embeddings.
    plain = migrate.migrate_file(files["nessa-m2"], files["profiles"], tmp_path / "plain.npz")
    np.testing.assert_array_equal(embeddings.load_embeddings(out).embeddings, plain.embeddings)
    prov = migrate.read_provenance(tmp_path / "plain.npz")
    assert prov["calibration"] is None and prov["aligner"]["file"] == "nessa-m2.safetensors"
    with pytest.raises(ValueError, match="records no calibration"):
        migrate.shipped_threshold(tmp_path / "plain.npz", 0.01)
    with pytest.raises(ValueError, match="records no calibration"):  # a plain embedding file: no record at all
        migrate.shipped_threshold(files["profiles"], 0.01)


def test_calibration_made_for_another_aligner_is_refused_and_nothing_is_written(files, tmp_path, capsys):
    from nessa_lib.evaluation.calibration import calibration_path, save_calibration

    cal, thr = _toy_calibration()
    other = tmp_path / "m3.calibration.json"
    save_calibration(other, cal, thr, aligner=files["nessa-m3"])
    save_calibration(calibration_path(files["nessa-m2"]), cal, thr, aligner=files["nessa-m3"])  # beside, but wrong
    before = sorted(tmp_path.rglob("*"))
    for extra in (["--calibration", str(other)], []):
        rc = migrate.main([str(files["nessa-m2"]), str(files["profiles"]), str(tmp_path / "o.npz"), *extra])
        err = capsys.readouterr().err
        assert rc == 1, err
        assert "made for another aligner" in err and str(files["nessa-m2"]) in err and "nothing migrated" in err
        assert (str(other) if extra else str(calibration_path(files["nessa-m2"]))) in err
    with pytest.raises(ValueError, match="made for another aligner"):
        migrate.migrate_file(files["nessa-m2"], files["profiles"], tmp_path / "o.npz", calibration=other)
    assert sorted(tmp_path.rglob("*")) == before  # no output, no partial file


def test_no_calibration_flag_and_a_missing_calibration_file(files, tmp_path, capsys):
    from nessa_lib.evaluation.calibration import calibration_path, save_calibration

    cal, thr = _toy_calibration()
    save_calibration(calibration_path(files["nessa-m2"]), cal, thr, aligner=files["nessa-m2"])
    out = tmp_path / "o.npz"
    assert migrate.main([str(files["nessa-m2"]), str(files["profiles"]), str(out), "--no-calibration"]) == 0
    assert "no calibration recorded" in capsys.readouterr().out
    assert migrate.read_provenance(out)["calibration"] is None
    missing = tmp_path / "missing.calibration.json"
    rc = migrate.main([str(files["nessa-m2"]), str(files["profiles"]), str(tmp_path / "p.npz"),
                       "--calibration", str(missing)])
    err = capsys.readouterr().err
    assert rc == 1 and f"calibration file not found: {missing}" in err
    assert not (tmp_path / "p.npz").exists()
    with pytest.raises(SystemExit):  # one or the other
        migrate.main([str(files["nessa-m2"]), str(files["profiles"]), str(out), "--no-calibration",
                      "--calibration", str(missing)])
