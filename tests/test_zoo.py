"""nessa_lib.zoo: one loader for trained and pretrained encoders."""

import json

import numpy as np
import pytest
import torch

from nessa_lib import zoo


def test_pretrained_descriptor_round_trip(tmp_path):
    meta = zoo.export_pretrained("resemblyzer", tmp_path)
    assert meta["model_id"].startswith("resemblyzer@") and meta["emb_dim"] == 256
    assert zoo.objective(tmp_path) == "pretrained-ge2e"
    enc = zoo.load(tmp_path)
    assert enc.model_id == meta["model_id"]
    t = np.arange(16000) / 16000
    wav = torch.tensor(0.3 * np.sin(2 * np.pi * 150 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)), dtype=torch.float32)
    out = enc.embed(wav[None], torch.ones(1))
    assert out.shape == (1, 256) and torch.isfinite(out).all()


def test_pretrained_descriptor_of_another_version_is_refused(tmp_path):
    zoo.export_pretrained("resemblyzer", tmp_path)
    meta = json.loads((tmp_path / "encoder.json").read_text())
    meta["model_id"] = "resemblyzer@000000000000"
    (tmp_path / "encoder.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="installed package provides"):
        zoo.load(tmp_path)


def test_unknown_and_missing(tmp_path):
    with pytest.raises(ValueError, match="unknown pretrained encoder 'x'"):
        zoo.export_pretrained("x", tmp_path)
    with pytest.raises(FileNotFoundError, match="encoder.json does not exist"):
        zoo.load(tmp_path / "nothing")
