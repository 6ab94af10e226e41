"""Every kind of encoder of the study follows the one :class:`~nessa_lib.encoders.protocol.Encoder` protocol: the
trained export, resemblyzer's wrapper, a SpeechBrain hub folder and a WeSpeaker ONNX model (tiny random-weight
stand-ins, built as tests/test_pretrained_sources.py builds them), with attributes of the right kinds and an
``embed`` that gives ``(B, emb_dim)``."""

import numbers

import numpy as np
import pytest
import torch

from nessa_lib import zoo
from nessa_lib.encoders.export import Encoder as StudyEncoder
from nessa_lib.encoders.export import load_encoder
from nessa_lib.encoders.resemblyzer import ResemblyzerEncoder
from nessa_lib.encoders.protocol import MEMBERS, Encoder, PreparingEncoder, is_preparing
from nessa_lib.encoders.speechbrain_hub import SpeechBrainEncoder
from nessa_lib.encoders.wespeaker import WeSpeakerEncoder
from test_pretrained_sources import speechbrain_standin, study_encoder, wespeaker_standin


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    return {
        "study": (StudyEncoder, load_encoder(study_encoder(root, "ecapa", 12))),
        "resemblyzer": (ResemblyzerEncoder, ResemblyzerEncoder()),
        "speechbrain": (SpeechBrainEncoder, zoo.from_speechbrain(speechbrain_standin(root / "sb", "xvector", 16))),
        "wespeaker": (WeSpeakerEncoder, zoo.from_wespeaker(wespeaker_standin(root / "ws"))),
    }


@pytest.mark.parametrize("kind", ["study", "resemblyzer", "speechbrain", "wespeaker"])
def test_each_encoder_follows_the_protocol(encoders, kind):
    cls, enc = encoders[kind]
    assert type(enc) is cls and isinstance(enc, Encoder)
    # The attributes, with the right kinds of values (isinstance only checks that they exist).
    assert isinstance(enc.model_id, str) and "@" in enc.model_id
    for attr in ("sample_rate", "min_samples", "emb_dim"):
        value = getattr(enc, attr)
        assert isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1, (attr, value)
    assert enc.sample_rate == 16000
    assert callable(enc.embed)
    # embed: a zero-padded batch and relative lengths -> one finite embedding per row.
    n = max(enc.min_samples, 16000)
    wavs = torch.from_numpy((0.1 * np.random.default_rng(0).standard_normal((2, n))).astype(np.float32))
    with torch.no_grad():
        emb = enc.embed(wavs, torch.tensor([1.0, 0.75]))
    emb = emb.detach().numpy() if hasattr(emb, "detach") else np.asarray(emb)
    assert emb.shape == (2, enc.emb_dim) and np.isfinite(emb).all()


def test_only_resemblyzer_offers_the_two_steps_and_they_are_its_embed(encoders):
    assert {k for k, (_, enc) in encoders.items() if isinstance(enc, PreparingEncoder)} == {"resemblyzer"}
    assert {k for k, (_, enc) in encoders.items() if is_preparing(enc)} == {"resemblyzer"}
    rz = encoders["resemblyzer"][1]
    wave = (0.1 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32)
    with torch.no_grad():
        two = rz.embed_prepared([rz.prepare(wave)])
        one = rz.embed(torch.from_numpy(wave[None]), torch.ones(1))
    assert np.array_equal(np.asarray(two), np.asarray(one))


def test_members_name_the_protocol():
    """The names extraction checks up front are the protocol's, so its TypeError and the protocol agree."""
    assert set(MEMBERS) == {"model_id", "sample_rate", "min_samples", "emb_dim", "embed"}

    class Partial:
        model_id, sample_rate, emb_dim = "p@0", 16000, 2

        def embed(self, wavs, lengths):
            return torch.zeros(len(wavs), 2)

    assert not isinstance(Partial(), Encoder)  # no min_samples
