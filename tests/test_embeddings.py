"""nessa_lib.embeddings: safe embedding files and model fingerprints."""

import numpy as np
import pytest
import torch

from nessa_lib.embeddings import EmbeddingSet, fingerprint, load_embeddings, save_embeddings


def make(n=3, d=4, model="m@1"):
    rng = np.random.default_rng(0)
    return EmbeddingSet(rng.normal(size=(n, d)).astype(np.float32), np.array([f"u{i}" for i in range(n)]),
                        np.array(["a", "a", "b"][:n]), model)


def test_round_trip(tmp_path):
    e = make()
    save_embeddings(tmp_path / "x" / "e.npz", e)
    back = load_embeddings(tmp_path / "x" / "e.npz", dim=4, model_id="m@1")
    np.testing.assert_array_equal(back.embeddings, e.embeddings)
    assert back.utt_ids.tolist() == ["u0", "u1", "u2"] and back.speaker_ids.tolist() == ["a", "a", "b"]
    assert back.dim == 4 and not list(tmp_path.glob("x/*.tmp*"))


def test_nan_is_never_written(tmp_path):
    e = make()
    e.embeddings[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"embeddings \(from .*e.npz\) contains NaN/inf in 1 row"):
        save_embeddings(tmp_path / "e.npz", e)
    assert not (tmp_path / "e.npz").exists()


def test_load_checks_dim_model_and_format(tmp_path):
    save_embeddings(tmp_path / "e.npz", make())
    with pytest.raises(ValueError, match="dimension 4, expected 192"):
        load_embeddings(tmp_path / "e.npz", dim=192)
    with pytest.raises(ValueError, match="holds embeddings of model 'm@1', expected 'ecapa@2'"):
        load_embeddings(tmp_path / "e.npz", model_id="ecapa@2")
    np.savez(tmp_path / "obj.npz", embeddings=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickled objects"):
        load_embeddings(tmp_path / "obj.npz")
    np.savez(tmp_path / "other.npz", w=np.zeros(2))
    with pytest.raises(ValueError, match="missing"):
        load_embeddings(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match="gone.npz"):
        load_embeddings(tmp_path / "gone.npz")


def test_duplicate_ids_and_length_mismatch(tmp_path):
    e = make()
    e.utt_ids[2] = "u0"
    with pytest.raises(ValueError, match="duplicated utterance ids"):
        save_embeddings(tmp_path / "e.npz", e)
    e = make()
    e.speaker_ids = e.speaker_ids[:2]
    with pytest.raises(ValueError, match="3 embeddings, 3 utterance ids, 2 speaker ids"):
        save_embeddings(tmp_path / "e.npz", e)


def test_fingerprint_tracks_weights_and_config():
    sd = torch.nn.Linear(3, 2).state_dict()
    a = fingerprint(sd, {"crop": "full"}, "ecapa")
    assert a == fingerprint({k: v.clone() for k, v in sd.items()}, {"crop": "full"}, "ecapa")
    assert a != fingerprint(sd, {"crop": "3s"}, "ecapa")
    sd["weight"][0, 0] += 1e-3
    assert a != fingerprint(sd, {"crop": "full"}, "ecapa")


def test_paired_matches_by_id_and_refuses_unpaired():
    from nessa_lib.embeddings import paired

    a = make()
    b = EmbeddingSet(a.embeddings[::-1, :2].copy(), a.utt_ids[::-1].copy(), a.speaker_ids[::-1].copy(), "n@1")
    xa, yb, ids, spk = paired(a, b)
    np.testing.assert_array_equal(yb, a.embeddings[:, :2])
    assert ids.tolist() == ["u0", "u1", "u2"] and spk.tolist() == ["a", "a", "b"]
    c = EmbeddingSet(a.embeddings[:2], a.utt_ids[:2], a.speaker_ids[:2], "c@1")
    with pytest.raises(ValueError, match=r"1 utterance\(s\) only in X \(m@1\), 0 only in Y \(c@1\), e.g. 'u2'"):
        paired(a, c)
    d = EmbeddingSet(a.embeddings, a.utt_ids, np.array(["a", "b", "b"]), "d@1")
    with pytest.raises(ValueError, match="utterance 'u1' has speaker 'a' in X but 'b' in Y"):
        paired(a, d)


def _write_split(root, model, split, ids, spk, dim, model_id=None):
    (root / model).mkdir(exist_ok=True)
    e = np.arange(len(ids) * dim, dtype="float32").reshape(len(ids), dim) + 1
    save_embeddings(root / model / f"{split}.npz",
                    EmbeddingSet(e, np.array(ids), np.array(spk), model_id or f"{model}@1"))


def test_load_paired_splits_pools_and_tags(tmp_path):
    from nessa_lib.embeddings import load_paired_splits

    for m, d in (("x", 2), ("y", 3)):
        _write_split(tmp_path, m, "train", ["t2", "t1"] if m == "y" else ["t1", "t2"], ["a", "b"] if m == "x" else ["b", "a"], d)
        _write_split(tmp_path, m, "align", ["u1"], ["c"], d)
    p = load_paired_splits(tmp_path, "x", "y", ["train", "align"])
    assert p.utt_ids.tolist() == ["t1", "t2", "u1"] and p.speaker_ids.tolist() == ["a", "b", "c"]
    assert p.splits.tolist() == ["train", "train", "align"]
    assert p.x.shape == (3, 2) and p.y.shape == (3, 3) and (p.enroll_model_id, p.runtime_model_id) == ("x@1", "y@1")
    # y's train rows were written in the other order: pairing follows the ids, not the row order.
    np.testing.assert_array_equal(p.y[0], [4, 5, 6])
    with pytest.raises(ValueError, match="repeats"):
        load_paired_splits(tmp_path, "x", "y", ["align", "align"])
    with pytest.raises(FileNotFoundError):
        load_paired_splits(tmp_path, "x", "y", ["eval"])


def test_load_paired_splits_refuses_mixed_model_versions(tmp_path):
    from nessa_lib.embeddings import load_paired_splits

    for m in ("x", "y"):
        _write_split(tmp_path, m, "train", ["t1"], ["a"], 2)
        _write_split(tmp_path, m, "align", ["u1"], ["c"], 2, model_id=f"{m}@2")
    with pytest.raises(ValueError, match="other models"):
        load_paired_splits(tmp_path, "x", "y", ["train", "align"])
