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
