"""Issue 24, deterministic re-runs: the pieces behind stage 05's bootstrap bounds and A/B thresholds give the same
bytes when run twice, in one process or in several, and whatever the torch thread count."""

import hashlib

import numpy as np
import pytest
import torch

from nessa_lib import align
from nessa_lib.evaluation.ab import threshold_at_far
from nessa_lib.evaluation.bootstrap import SpeakerBootstrap
from nessa_lib.parallel import run_jobs


def _bootstrap_bytes(seed: int) -> bytes:
    """Per-round metrics and fixed-threshold rates of a speaker bootstrap over nearly tied scores."""
    rng = np.random.default_rng(seed)
    spk = np.repeat(np.arange(40), 30)
    labels = rng.random(spk.size) < 0.2
    scores = np.round(rng.normal(labels * 1.5, 1.0), 3).astype(np.float32)  # ties, as float32 scores have
    boot = SpeakerBootstrap(spk, labels, n_rounds=200, seed=1)
    m = boot.metrics(scores, fars=(0.01, 0.05))
    far, frr = boot.rates_at(scores, float(threshold_at_far(scores, labels, 0.05)))
    return b"".join(np.ascontiguousarray(m[k]).tobytes() for k in sorted(m)) + far.tobytes() + frr.tobytes()


def _digest(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_bootstrap_gives_the_same_bytes_twice_and_whatever_the_workers():
    jobs = [(s,) for s in range(4)]
    one = [_digest(b) for b in run_jobs(_bootstrap_bytes, jobs, workers=1)]
    assert one == [_digest(_bootstrap_bytes(s)) for s in range(4)]  # re-run in this process
    two = [_digest(b) for b in run_jobs(_bootstrap_bytes, jobs, workers=2)]
    assert one == two


@pytest.mark.parametrize("method", ["nessa-m1", "linear"])
def test_aligner_maps_do_not_depend_on_the_torch_thread_count(method):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 32)).astype("float32")
    y = (x @ rng.normal(size=(32, 24))).astype("float32")
    kw = {"max_epochs": 2, "hidden_dim": 32} if method.startswith("nessa") else {}
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = align.fit(method, x, y, np.arange(200) // 10, seed=0, **kw)
        big = rng.normal(size=(5000, 24)).astype("float32")
        out = {}
        for t in (1, 2, 4):
            torch.set_num_threads(t)
            out[t] = (a.map_runtime(big).tobytes(), a.map_enrollment(big[:, :1].repeat(32, 1)).tobytes())
    finally:
        torch.set_num_threads(threads)
    assert out[1] == out[2] == out[4]
