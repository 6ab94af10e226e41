"""nessa_lib.encoders.pretrained (formerly nessa_lib.zoo): one loader for trained and pretrained encoders."""

import json

import numpy as np
import pytest
import torch

from nessa_lib.encoders import pretrained


def test_pretrained_descriptor_round_trip(tmp_path):
    meta = pretrained.export_pretrained("resemblyzer", tmp_path)
    assert meta["model_id"].startswith("resemblyzer@") and meta["emb_dim"] == 256
    assert pretrained.objective(tmp_path) == "pretrained-ge2e"
    enc = pretrained.load(tmp_path)
    assert enc.model_id == meta["model_id"]
    t = np.arange(16000) / 16000
    wav = torch.tensor(0.3 * np.sin(2 * np.pi * 150 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)), dtype=torch.float32)
    out = enc.embed(wav[None], torch.ones(1))
    assert out.shape == (1, 256) and torch.isfinite(out).all()


def test_pretrained_descriptor_of_another_version_is_refused(tmp_path):
    pretrained.export_pretrained("resemblyzer", tmp_path)
    meta = json.loads((tmp_path / "encoder.json").read_text())
    meta["model_id"] = "resemblyzer@000000000000"
    (tmp_path / "encoder.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="installed package provides"):
        pretrained.load(tmp_path)


def test_unknown_and_missing(tmp_path):
    with pytest.raises(ValueError, match="unknown pretrained encoder 'x'"):
        pretrained.export_pretrained("x", tmp_path)
    with pytest.raises(FileNotFoundError, match="encoder.json does not exist"):
        pretrained.load(tmp_path / "nothing")


def test_old_module_name_still_works():
    from nessa_lib import zoo

    for name in ("PRETRAINED", "PRETRAINED_FORMAT", "META_FILE", "export_pretrained", "read_meta", "objective", "load"):
        assert getattr(zoo, name) is getattr(pretrained, name), name
    # zoo also gathers the SpeechBrain/WeSpeaker adapters and exporters (tests/test_hub_models.py).
    from nessa_lib.encoders import interop, speechbrain_hub, wespeaker

    new = {"from_speechbrain": speechbrain_hub, "SpeechBrainEncoder": speechbrain_hub, "from_wespeaker": wespeaker,
           "WeSpeakerEncoder": wespeaker, "export_speechbrain": interop, "export_onnx": interop,
           "NotExportableError": interop}
    for name, home in new.items():
        assert getattr(zoo, name) is getattr(home, name), name
    errors = ["ModelFileNotFoundError", "NotASpeakerModelError", "HubUnreachableError"]
    # and the pipeline entries of kind speechbrain / wespeaker (tests/test_pretrained_sources.py)
    entries = ["SOURCE_KINDS", "describe", "check_entry", "SourceChangedError"]
    for name in entries:
        assert getattr(zoo, name) is getattr(pretrained, name), name
    assert sorted(zoo.__all__) == sorted(["PRETRAINED", "PRETRAINED_FORMAT", "META_FILE", "export_pretrained",
                                          "read_meta", "objective", "load", *new, *errors, *entries])
