"""Shared fixtures. Tests run single-threaded (OMP_NUM_THREADS=1 is set by the Makefile and CI)."""

import socket

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh, fixed-seed generator per test so tests never depend on each other's draws."""
    return np.random.default_rng(0)


@pytest.fixture
def offline(monkeypatch):
    """No network: Hugging Face offline mode (also for notebook kernels, through the environment), and any socket
    connection or DNS lookup raises."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)

    def refuse(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def run_study():
    """Run stages 01 -> 05 of the project at ``root`` in dvc.yaml's order, for the encoders and pairs of ``p``
    (its parameters as a dict), through the pipeline's own runner."""
    from nessa_lib.pipeline.run import run_stage

    def run(root, p):
        run_stage("prepare_data", root=root, progress=False)
        for name in p["train_encoder"]["encoders"]:
            run_stage("train_encoder", name, root=root, progress=False)
            run_stage("extract_embeddings", name, root=root, progress=False)
        for method in p["fit_aligners"]["methods"]:
            run_stage("fit_aligners", method, root=root, progress=False)
        run_stage("evaluate", root=root, progress=False)

    return run


@pytest.fixture
def toy_evaluate_tables():
    """A writer of stage 05's headline tables and learning curve for a toy project (``write(evaluate_dir, frr_column)``): the
    report tests and the Chromium report check build their reports from them."""
    import pandas as pd

    def write(ev, frr_column: str = "frr_at_far0.125") -> None:
        frr = {"frr_at_far0.125": [0.021, 0.004, 0.005], "frr_at_far0.01": [0.52, 0.12, 0.2]}[frr_column]
        pd.DataFrame({"pair": ["x-y"] * 3, "system": ["symmetric X/X", "symmetric Y/Y", "nessa-m3"],
                      "eer": [0.0733, 0.0296, 0.0456], "eer_lo": [0.0673, 0.0244, 0.0401],
                      "eer_hi": [0.0815, 0.0341, 0.0508], frr_column: frr,
                      "min_dcf_p0.01": [0.96, 0.56, 0.9087], "gain_recovered": [0.0, 1.0, 0.634],
                      "n_seeds": [1, 1, 3], "eer_seed_sd": [None, None, 0.0023]}).to_csv(ev / "main_table.csv",
                                                                                        index=False)
        pd.DataFrame({"finding": ["c: recovers >= 60 %"] * 2, "group": ["Y better than X"] * 2,
                      "claim": ["The asymmetric system recovers at least 60 % of the gain."] * 2,
                      "evidence": ["x-y", "summary over 1 pair(s)"], "verdict": ["inconclusive", "inconclusive"],
                      "detail": ["gain recovered 0.634", "inconclusive in 1 of 1 pair(s)"]}).to_csv(
            ev / "findings.csv", index=False)
        pd.DataFrame({"far_target": [0.01, 0.01], "system": ["A/A", "B/B"], "eer": [0.0733, 0.0296],
                      "far_deployed": [0.0086, 0.0084], "frr_deployed": [0.591, 0.124],
                      "frr_at_aa_threshold": [0.591, 0.995], "rel_frr_impact": [0.0, 0.789]}).to_csv(
            ev / "ab_case_study.csv", index=False)
        pd.DataFrame({"n_speakers": [100, -1], "utts_per_speaker": [3, -1], "n_speakers_used": [100, 800],
                      "n_pairs": [300, 9600], "eer": [0.0895, 0.0474], "gain_recovered": [-0.369, 0.593],
                      "eer_lo": [0.0785, 0.04], "eer_hi": [0.0989, 0.055]}).to_csv(ev / "ablation.csv", index=False)
        pd.DataFrame({"method": ["nessa-m3"], "utts_per_speaker": [-1], "target": [0.8], "voices": [1500.0],
                      "voices_lo": [900.0], "voices_hi": [4000.0], "reached": [True], "never_share": [0.0],
                      "a": [0.95], "b": [6.0], "c": [0.4], "max_voices": [800.0],
                      "statement": ["nessa-m3 reaches 80 % of the gain at about 1,500 voices"]}).to_csv(
            ev / "learning_curve.csv", index=False)

    return write


@pytest.fixture(scope="session")
def model_versions():
    """``make(n_speakers, speaker_offset)``: three toy model versions v1 -> v2 -> v3 of rising quality
    (:func:`nessa_lib.toy.make_model_versions`). One generator seed for every call: the same three versions, other
    voices per offset (fit and evaluation sets of the chain tests)."""
    import numpy as np

    from nessa_lib import toy

    def make(n_speakers, offset):
        return toy.make_model_versions(n_speakers, 6, noises=(0.6, 0.35, 0.1), d_latent=8, dims=(8, 8, 8),
                                       warps=("rotation",) * 3, rng=np.random.default_rng(7), speaker_offset=offset)

    return make
