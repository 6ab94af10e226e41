"""Issue 24, checksummed artifacts: aligner, embedding and migrated profile files carry a SHA-256 digest of their
data, checked on load; a flipped byte is refused with the file named; a file without a digest (written before
them) loads with a warning."""

import json
import logging
import struct

import numpy as np
import pytest

from nessa_lib import align, checks, embeddings, migrate

RNG = np.random.default_rng(0)
X = RNG.normal(size=(24, 6)).astype("float32")
Y = (X @ RNG.normal(size=(6, 5))).astype("float32")
SPK = np.arange(24) // 4


def _flip(path, start: int, n: int = 64) -> None:
    """Invert ``n`` bytes of ``path`` from offset ``start`` (the container's headers untouched)."""
    raw = bytearray(path.read_bytes())
    raw[start:start + n] = bytes(b ^ 0xFF for b in raw[start:start + n])
    path.write_bytes(bytes(raw))


def _safetensors_data_offset(path) -> int:
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    return 8 + n


@pytest.fixture(scope="module")
def aligner():
    return align.fit("linear", X, Y, SPK, enroll_model_id="X@1", runtime_model_id="Y@1")


def test_aligner_file_carries_the_digest_and_loads_identical(aligner, tmp_path):
    from safetensors import safe_open

    path = tmp_path / "a.safetensors"
    aligner.save(path)
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["nessa"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert meta["data_sha256"] == checks.data_digest(tensors)
    loaded = align.load(path)
    assert np.array_equal(loaded.map_enrollment(X), aligner.map_enrollment(X))  # the arrays are unchanged
    assert np.array_equal(loaded.map_runtime(Y), aligner.map_runtime(Y))


def test_a_flipped_byte_in_an_aligners_weights_is_refused_naming_the_file(aligner, tmp_path):
    path = tmp_path / "a.safetensors"
    aligner.save(path)
    _flip(path, _safetensors_data_offset(path) + 4, n=4)
    with pytest.raises(ValueError, match=rf"{path}: its data do not match the SHA-256 digest"):
        align.load(path)


def test_a_corrupted_aligner_is_refused_by_the_migration_cli(aligner, tmp_path, capsys):
    path, prof = tmp_path / "a.safetensors", tmp_path / "profiles.npz"
    aligner.save(path)
    embeddings.save_embeddings(prof, embeddings.EmbeddingSet(X, np.array([f"u{i}" for i in range(24)]),
                                                             SPK.astype(str), "X@1"))
    _flip(path, _safetensors_data_offset(path) + 8, n=40)
    assert migrate.main([str(path), str(prof), str(tmp_path / "out.npz")]) != 0
    assert f"{path}: its data do not match" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "profiles.npz"]


def test_an_aligner_without_a_digest_loads_with_a_warning(aligner, tmp_path, caplog):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "old.safetensors"
    aligner.save(path)
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["nessa"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    del meta["data_sha256"]
    save_file(tensors, str(path), metadata={"nessa": json.dumps(meta)})
    with caplog.at_level(logging.WARNING, logger="nessa_lib.checks"):
        loaded = align.load(path)
    assert f"{path}: aligner written without a digest" in caplog.text
    assert np.array_equal(loaded.map_runtime(Y), aligner.map_runtime(Y))


def _emb_file(tmp_path, name="e.npz"):
    path = tmp_path / name
    emb = embeddings.EmbeddingSet(X, np.array([f"u{i}" for i in range(24)]), SPK.astype(str), "X@1")
    embeddings.save_embeddings(path, emb)
    return path, emb


def _offset_of(path, arr) -> int:
    at = path.read_bytes().find(np.ascontiguousarray(arr).tobytes())
    assert at > 0
    return at


def test_embedding_file_carries_the_digest_and_loads_identical(tmp_path):
    path, emb = _emb_file(tmp_path)
    with np.load(path, allow_pickle=False) as z:
        stored = str(z["data_sha256"])
    assert stored == checks.data_digest({k: getattr(emb, k) if k != "model_id" else np.array(emb.model_id)
                                          for k in embeddings.ARRAYS})
    got = embeddings.load_embeddings(path)
    assert got.embeddings.tobytes() == X.tobytes() and got.embeddings.dtype == np.float32


@pytest.mark.parametrize("array", ["embeddings", "utt_ids"])
def test_a_flipped_byte_in_an_embedding_file_is_refused_naming_the_file(tmp_path, array):
    path, emb = _emb_file(tmp_path)
    _flip(path, _offset_of(path, getattr(emb, array)) + 16, n=8)
    # the zip's CRC-32 or the digest catches it; either way the file is named
    with pytest.raises(ValueError, match=str(path)):
        embeddings.load_embeddings(path)


def test_an_edited_embedding_file_with_a_valid_zip_is_refused_by_its_digest(tmp_path):
    path, _ = _emb_file(tmp_path)
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    data["embeddings"][3, 2] += 1.0  # written again as a well-formed npz, with the old digest
    np.savez(path, **data)
    with pytest.raises(ValueError, match=rf"{path}: its data do not match the SHA-256 digest"):
        embeddings.load_embeddings(path)


def test_an_embedding_file_without_a_digest_loads_with_a_warning(tmp_path, caplog):
    path = tmp_path / "old.npz"
    np.savez(path, embeddings=X, utt_ids=np.array([f"u{i}" for i in range(24)]), speaker_ids=SPK.astype(str),
             model_id=np.array("X@1"))
    with caplog.at_level(logging.WARNING, logger="nessa_lib.checks"):
        got = embeddings.load_embeddings(path)
    assert f"{path}: embedding file written without a digest" in caplog.text
    assert np.array_equal(got.embeddings, X)


def test_migrated_profiles_carry_a_digest_and_a_flipped_byte_is_refused(aligner, tmp_path):
    al, prof, out = tmp_path / "a.safetensors", tmp_path / "profiles.npz", tmp_path / "migrated.npz"
    aligner.save(al)
    embeddings.save_embeddings(prof, embeddings.EmbeddingSet(X, np.array([f"u{i}" for i in range(24)]),
                                                             SPK.astype(str), "X@1"))
    written = migrate.migrate_file(al, prof, out)
    assert migrate.read_provenance(out)["aligner"]["file"] == "a.safetensors"
    assert np.array_equal(embeddings.load_embeddings(out).embeddings, written.embeddings)
    with np.load(out, allow_pickle=False) as z:
        assert str(z["data_sha256"]).startswith("sha256:")
    _flip(out, _offset_of(out, written.embeddings) + 20, n=8)
    with pytest.raises(ValueError, match=str(out)):
        embeddings.load_embeddings(out)
