"""nessa_lib.align on synthetic two-space problems whose answer is known (nessa_lib.toy)."""

import json
import pickle

import numpy as np
import pytest
import torch

from nessa_lib import align, toy
from nessa_lib.align import aligner, fitting, hparams
from nessa_lib.evaluation.metrics import eer

FAST = dict(max_epochs=30, patience=5, hidden_dim=64)  # keeps each trained fit to ~1 s


def pair_eer(enr, run, spk):
    """EER over all cross-utterance pairs (i < j) scored enrollment-side i against runtime-side j."""
    s = enr @ run.T
    iu = np.triu_indices(len(spk), 1)
    return eer(s[iu], (spk[:, None] == spk[None, :])[iu].astype(int))


def unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def rotation():
    """Equal dims, Y = rotated X plus a little noise: every sensible method should undo it."""
    kw = dict(d_latent=8, d_x=8, d_y=8, warp_x="rotation", warp_y="rotation", noise_x=0.2, noise_y=0.2)
    fit_set = toy.make_paired_spaces(150, 6, rng=np.random.default_rng(3), **kw)
    eval_set = toy.make_paired_spaces(40, 6, rng=np.random.default_rng(3), speaker_offset=1000, **kw)
    return fit_set, eval_set


@pytest.fixture(scope="module")
def warp():
    """Different dims; Y is a strongly nonlinear (saturating) warp of the latent, so no linear map undoes it."""
    kw = dict(d_latent=8, d_x=8, d_y=12, warp_x="rotation", warp_y="nonlinear", warp_gain=2.5,
              session_noise=0.5, noise_x=0.05, noise_y=0.05)
    fit_set = toy.make_paired_spaces(300, 8, rng=np.random.default_rng(5), **kw)
    eval_set = toy.make_paired_spaces(60, 8, rng=np.random.default_rng(5), speaker_offset=1000, **kw)
    return fit_set, eval_set


def test_same_models_across_offsets():
    a = toy.make_paired_spaces(2, 2, rng=np.random.default_rng(0))
    b = toy.make_paired_spaces(2, 2, rng=np.random.default_rng(0), speaker_offset=5)
    assert not np.allclose(a.x, b.x)  # new voices
    assert b.speakers.tolist() == [5, 5, 6, 6]


@pytest.mark.parametrize("method", ["linear", "procrustes", "nessa-m1", "nessa-m2", "nessa-m3"])
def test_rotation_is_undone(rotation, method):
    fit_set, ev = rotation
    hp = FAST if method.startswith("nessa") else {}
    a = align.fit(method, fit_set.x, fit_set.y, fit_set.speakers, seed=0, **hp)
    sym = pair_eer(unit(ev.x), unit(ev.x), ev.speakers)
    unaligned = pair_eer(unit(ev.x), unit(ev.y), ev.speakers)
    aligned = pair_eer(a.map_enrollment(ev.x), a.map_runtime(ev.y), ev.speakers)
    assert unaligned > 0.3  # a random rotation makes raw cross-model cosine useless...
    assert aligned < sym + 0.03  # ...and alignment brings it back to symmetric quality


def test_identity_is_a_no_op(rotation):
    fit_set, ev = rotation
    a = align.fit("identity", fit_set.x, fit_set.y, fit_set.speakers)
    np.testing.assert_allclose(a.map_enrollment(ev.x), unit(ev.x), atol=1e-6)
    np.testing.assert_allclose(a.map_runtime(ev.y), unit(ev.y), atol=1e-6)


def test_procrustes_is_orthogonal_for_equal_dims(rotation):
    fit_set, _ = rotation
    a = align.fit("procrustes", fit_set.x, fit_set.y, fit_set.speakers)
    w = a.runtime_map.weight.detach().numpy()
    np.testing.assert_allclose(w @ w.T, np.eye(8), atol=1e-5)


def test_speaker_logit_maps_to_centroid_cosines():
    # Two reference speakers on the axes; an embedding at 45 degrees has cosine 1/sqrt(2) to both.
    x = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    a = align.fit("speaker-logit", x, x, ["a", "a", "b", "b"])
    assert a.shared_dim == 2
    out = a.map_enrollment([[1.0, 1.0]])
    np.testing.assert_allclose(out, [[2**-0.5, 2**-0.5]], atol=1e-6)  # (c, c) renormalised


def test_linear_solves_a_known_affine_map():
    rng = np.random.default_rng(0)
    y = unit(rng.normal(size=(200, 3)))
    # w has orthonormal rows, so x = y @ w keeps unit norm and the normalised target stays linear in y.
    w = np.linalg.qr(rng.normal(size=(4, 3)))[0].T
    x = y @ w
    a = align.fit("linear", x, y, np.arange(200) % 10, ridge=0.0)
    np.testing.assert_allclose(a.map_runtime(y), x, atol=1e-5)


def test_nonlinear_warp_nessa_beats_baselines(warp):
    fit_set, ev = warp
    eers = {}
    for method in ["speaker-logit", "linear", "procrustes", "nessa-m1"]:
        a = align.fit(method, fit_set.x, fit_set.y, fit_set.speakers, seed=0)
        assert a.shared_dim == a.map_runtime(ev.y).shape[1]
        eers[method] = pair_eer(a.map_enrollment(ev.x), a.map_runtime(ev.y), ev.speakers)
    # M1 must invert the warp better than any linear map, and beat centroid cosines.
    assert eers["nessa-m1"] < eers["linear"] - 0.005, eers
    assert eers["nessa-m1"] < eers["procrustes"], eers
    assert eers["nessa-m1"] < eers["speaker-logit"], eers


def test_m3_shared_dim_follows_reference(warp):
    fit_set, ev = warp
    for ref, dim in [("enroll", 8), ("runtime", 12)]:
        a = align.fit("nessa-m3", fit_set.x, fit_set.y, fit_set.speakers, reference=ref, **FAST)
        assert a.shared_dim == dim
        assert a.map_enrollment(ev.x).shape == (len(ev.x), dim)
        assert a.history and {"epoch", "train_loss", "val_loss"} <= set(a.history[0])


@pytest.mark.parametrize("method", align.METHODS)
def test_save_load_round_trip(tmp_path, rotation, method):
    fit_set, ev = rotation
    hp = FAST if method.startswith("nessa") else {}
    a = align.fit(method, fit_set.x, fit_set.y, fit_set.speakers, seed=1,
                  enroll_model_id="ecapa@abc", runtime_model_id="xvector@def", **hp)
    path = tmp_path / "sub" / f"{method}.safetensors"
    a.save(path)
    b = align.load(path)
    assert b.metadata() == json.loads(json.dumps(a.metadata()))
    np.testing.assert_array_equal(a.map_enrollment(ev.x), b.map_enrollment(ev.x))
    np.testing.assert_array_equal(a.map_runtime(ev.y), b.map_runtime(ev.y))


@pytest.mark.parametrize("method", ["nessa-m1", "nessa-m3"])
def test_same_seed_same_result(rotation, method):
    fit_set, ev = rotation
    out = [
        align.fit(method, fit_set.x, fit_set.y, fit_set.speakers, seed=s, **FAST).map_runtime(ev.y)
        for s in (7, 7, 8)
    ]
    np.testing.assert_array_equal(out[0], out[1])
    assert not np.array_equal(out[0], out[2])


def test_fit_leaves_global_torch_rng_alone(rotation):
    fit_set, _ = rotation
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    align.fit("nessa-m1", fit_set.x, fit_set.y, fit_set.speakers, max_epochs=1, hidden_dim=8)
    np.testing.assert_array_equal(torch.rand(3), expected)


# ------------------------------------------------------------------ bad input


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown alignment method 'nessa-m4'.*nessa-m1"):
        align.fit("nessa-m4", np.eye(2), np.eye(2), [0, 1])


def test_unknown_hparam():
    with pytest.raises(ValueError, match="unknown hyper-parameter.*'hiddendim'"):
        align.fit("nessa-m1", np.eye(2), np.eye(2), [0, 1], hiddendim=3)


@pytest.mark.parametrize("name, value, kind", [("hidden_dim", 64.0, "int"), ("hidden_dim", True, "int"),
                                               ("lr", "1e-3", "float"), ("dropout", None, "float")])
def test_hparam_of_the_wrong_type(name, value, kind):
    with pytest.raises(ValueError, match=f"nessa-m1 hyper-parameter '{name}' must be {kind}"):
        align.fit("nessa-m1", np.eye(2), np.eye(2), [0, 1], **{name: value})
    with pytest.raises(ValueError, match="write floats with a dot") if value == "1e-3" else pytest.raises(ValueError):
        align.check_hparams({"nessa-m1": {name: value}})


def test_hparams_schema_and_check():
    assert align.hparams_schema("identity") == {}
    assert align.hparams_schema("nessa-m3") == {k: type(v) for k, v in align.M3_DEFAULTS.items()}
    assert align.hparams_schema("nessa-m3")["reference"] is str and align.hparams_schema("linear") == {"ridge": float}
    # Partial dicts are filled from the defaults; integers are accepted for floats and stored as floats.
    got = align.check_hparams({"nessa-m3": {"w_contrastive": 1, "hidden_dim": np.int64(32)}, "identity": {}})
    assert got["identity"] == {} and list(got["nessa-m3"]) == list(align.M3_DEFAULTS)
    assert got["nessa-m3"]["w_contrastive"] == 1.0 and type(got["nessa-m3"]["w_contrastive"]) is float
    assert got["nessa-m3"]["hidden_dim"] == 32 and type(got["nessa-m3"]["hidden_dim"]) is int
    with pytest.raises(ValueError, match="unknown alignment method 'nessa_m3'"):
        align.check_hparams({"nessa_m3": {}})
    with pytest.raises(ValueError, match="unknown hyper-parameter.*'temperature'.*'nessa-m1'"):
        align.check_hparams({"nessa-m1": {"temperature": 0.1}})
    with pytest.raises(ValueError, match="unknown alignment method"):
        align.hparams_schema("nessa-m4")


@pytest.mark.parametrize("method", align.METHODS)
def test_full_default_hparams_give_the_same_aligner_file(tmp_path, rotation, method):
    """A complete hyper-parameter dict equal to the defaults (as params.yaml will hold them, integers written
    without a dot included) gives the same aligner, byte for byte, as no hyper-parameters at all."""
    fit_set, _ = rotation
    fast = {k: v for k, v in FAST.items() if k in align.DEFAULT_HPARAMS[method]}
    full = {**align.DEFAULT_HPARAMS[method], **fast}
    yaml_like = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in full.items()}
    files = []
    for i, hp in enumerate((fast, dict(full), yaml_like)):
        a = align.fit(method, fit_set.x, fit_set.y, fit_set.speakers, seed=2, **hp)
        a.save(tmp_path / f"{i}.safetensors")
        files.append((tmp_path / f"{i}.safetensors").read_bytes())
        assert a.hparams == full and [type(v) for v in a.hparams.values()] == [type(v) for v in full.values()]
    assert files[0] == files[1] == files[2]


def test_identity_needs_equal_dims():
    with pytest.raises(ValueError, match="equal embedding dims.*3 vs runtime 2"):
        align.fit("identity", np.eye(3), np.eye(3)[:, :2] + 1, [0, 1, 2])


def test_length_mismatch():
    with pytest.raises(ValueError, match="3 enrollment, 2 runtime"):
        align.fit("linear", np.eye(3), np.eye(2), [0, 1, 2])


def test_nan_in_fit_input():
    x = np.eye(3)
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"enrollment embeddings contains NaN/inf in 1 row\(s\), first at row\(s\) \[1\]"):
        align.fit("linear", x, np.eye(3), [0, 1, 2])


def test_map_rejects_wrong_dim_nan_and_foreign_model(rotation):
    fit_set, _ = rotation
    a = align.fit("linear", fit_set.x, fit_set.y, fit_set.speakers, runtime_model_id="xvector@1")
    with pytest.raises(ValueError, match="dimension 5, expected 8"):
        a.map_runtime(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"runtime embeddings \(from probe.npz\) contains NaN"):
        a.map_runtime(np.full((1, 8), np.nan), source="probe.npz")
    with pytest.raises(ValueError, match="model 'ecapa@2'.*fitted for runtime model 'xvector@1'"):
        a.map_runtime(np.ones((1, 8)), model_id="ecapa@2")
    a.map_runtime(np.ones((1, 8)), model_id="xvector@1")  # the right model passes


def test_load_refuses_non_aligner_files(tmp_path):
    from safetensors.torch import save_file

    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        align.load(missing)
    pkl = tmp_path / "evil.safetensors"
    pkl.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="evil.safetensors is not a readable safetensors"):
        align.load(pkl)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(ValueError, match="not a NESSA aligner"):
        align.load(other)


def test_zero_vector_in_fit_input():
    x = np.eye(3)
    x[2] = 0.0
    with pytest.raises(ValueError, match=r"enrollment embeddings has 1 all-zero row\(s\).*\[2\]"):
        align.fit("linear", x, np.eye(3), [0, 1, 2])


def test_package_reexports_its_modules_api():
    assert align.fit is fitting.fit and align.load is aligner.load and align.Aligner is aligner.Aligner
    assert align.FORMAT_VERSION == aligner.FORMAT_VERSION == 1
    for name in ("METHODS", "MLP_DEFAULTS", "M3_DEFAULTS", "DEFAULT_HPARAMS", "hparams_schema", "check_hparams"):
        assert getattr(align, name) is getattr(hparams, name)


# ------------------------------------------------------------------ device


@pytest.mark.parametrize("method", ["nessa-m2", "nessa-m3"])
def test_device_cpu_and_auto_give_the_default_result(tmp_path, rotation, method):
    """device='cpu' (the default) and 'auto' (cpu on a machine without a GPU) fit the very same aligner file."""
    fit_set, _ = rotation
    if torch.cuda.is_available():
        pytest.skip("'auto' means cuda here")
    files = []
    for k, kw in enumerate([{}, {"device": "cpu"}, {"device": "auto"}]):
        a = align.fit(method, fit_set.x, fit_set.y, fit_set.speakers, seed=4, **FAST, **kw)
        a.save(tmp_path / f"{k}.safetensors")
        files.append((tmp_path / f"{k}.safetensors").read_bytes())
        assert all(p.device.type == "cpu" for p in a.enroll_map.parameters())
    assert files[0] == files[1] == files[2]


def test_device_is_checked_and_reaches_fit_seeds(rotation):
    from nessa_lib.evaluation.tables import fit_seeds

    fit_set, _ = rotation
    with pytest.raises(ValueError, match="device must be"):
        align.fit("nessa-m1", fit_set.x, fit_set.y, fit_set.speakers, device="tpu", **FAST)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            fit_seeds(fit_set.x, fit_set.y, fit_set.speakers, methods=["nessa-m1"], hparams={"nessa-m1": FAST},
                      device="cuda")
    out = fit_seeds(fit_set.x, fit_set.y, fit_set.speakers, methods=["nessa-m1", "linear"],
                    hparams={"nessa-m1": FAST}, device="cpu")
    assert len(out["nessa-m1"]) == 1 and len(out["linear"]) == 1


# --- issue 24: refuse what cannot train ---------------------------------------------------------------------------


def test_nessa_refuses_fits_that_cannot_train(caplog):
    p = toy.make_paired_spaces(1, 8, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"nessa-m3 needs utterances of at least 2 speakers.*got 1"):
        align.fit("nessa-m3", p.x, p.y, p.speakers, max_epochs=2, hidden_dim=8)
    with pytest.raises(ValueError, match=r"'val_fraction' must be <= 0.5, got 1.0"):
        align.fit("nessa-m2", p.x, p.y, p.speakers, val_fraction=1.0)
    # M1/M2 train on one speaker; with too few speakers to hold out, early stopping says it uses the training data.
    with caplog.at_level("WARNING", logger="nessa_lib.align.nessa"):
        align.fit("nessa-m2", p.x, p.y, p.speakers, max_epochs=2, hidden_dim=8)
    assert "1 speaker(s) are too few to hold some out (need 4): early stopping validates on the training data" \
        in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="nessa_lib.align.nessa"):  # val_fraction=0 asks for that: no warning
        align.fit("nessa-m2", p.x, p.y, p.speakers, max_epochs=2, hidden_dim=8, val_fraction=0.0)
    assert caplog.text == ""


def test_nessa_split_leaves_training_data_and_gives_m3_a_validation_loss():
    from nessa_lib.align.nessa import _speaker_split

    spk = np.repeat(np.arange(5), 3)
    train, val = _speaker_split(spk, 0.5, np.random.default_rng(0))
    assert len(np.unique(spk[train])) == 3 and len(np.unique(spk[val])) == 2
    # M3's validation needs two speakers: it holds out two where round(0.1 * 12) = 1 would hold out one.
    p = toy.make_paired_spaces(12, 4, rng=np.random.default_rng(1))
    a = align.fit("nessa-m3", p.x, p.y, p.speakers, max_epochs=3, hidden_dim=8, speakers_per_batch=4,
                  utts_per_speaker=2)
    assert all(np.isfinite(h["val_loss"]) for h in a.history)


def _weight(module):
    return next(v for k, v in module.state_dict().items() if k.endswith("weight")).double().numpy()


@pytest.mark.parametrize("dx,dy,n", [(40, 40, 12), (60, 44, 12)])
def test_rank_limited_procrustes_is_orthogonal_and_fits_as_the_dense_svd(dx, dy, n):
    """More dims than rows: the rank-limited path gives an orthogonal map with the dense SVD's fit (unequal dims
    included, where the dense path had only n PCA components for k > n)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, dx)), rng.normal(size=(n, dy))
    a = align.fit("procrustes", x, y, np.repeat(np.arange(n // 3), 3))
    k = min(dx, dy)
    pe, wr = _weight(a.enroll_map), _weight(a.runtime_map)
    assert pe.shape == (k, dx) and wr.shape == (k, dy)
    np.testing.assert_allclose(pe @ pe.T, np.eye(k), atol=1e-6)
    np.testing.assert_allclose(wr @ wr.T, np.eye(k), atol=1e-6)
    xu, yu = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)
    xk, yk = xu @ pe.T, yu @ (np.linalg.svd(yu, full_matrices=False)[2].T if dy > k else np.eye(dy))
    u, _, vt = np.linalg.svd(yk.T @ xk)  # the dense solution on the same reduced data
    if dy == k:
        assert np.linalg.norm(yu @ wr.T - xk) == pytest.approx(np.linalg.norm(yk @ (u @ vt) - xk), abs=1e-5)
    assert np.linalg.norm(yu @ wr.T - xk) < np.linalg.norm(yu @ np.eye(dy, k) - xk)  # it fits at all


def test_high_dimensional_procrustes_takes_seconds(monkeypatch):
    """Dimension 3072 with 48 rows: the dense 3072 x 3072 SVD (about 30 s here, over 270 s at 4096 on the study
    machine) is never run."""
    import time

    svd = np.linalg.svd

    def small_svd(a, *args, **kwargs):
        assert min(np.shape(a)) <= 48, f"dense SVD of a {np.shape(a)} matrix"
        return svd(a, *args, **kwargs)

    monkeypatch.setattr(np.linalg, "svd", small_svd)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 3072))
    q, _ = np.linalg.qr(rng.normal(size=(3072, 48)))
    y = x @ (np.eye(3072) - 2 * q[:, :1] @ q[:, :1].T)  # a reflection: an orthogonal map Procrustes recovers
    t = time.perf_counter()
    a = align.fit("procrustes", x, y, np.repeat(np.arange(12), 4))
    assert time.perf_counter() - t < 60
    np.testing.assert_allclose((a.map_enrollment(x) * a.map_runtime(y)).sum(1), 1, atol=1e-4)
