"""Benchmark: the speaker bootstrap's vectorised rounds against resampling and re-scoring each round, side by side.

Synthetic trials grouped by speaker (each speaker's scores share an offset, as real profiles do). For one system:

- ``SpeakerBootstrap.metrics``: every round's EER, minDCF (two priors) and FRR@FAR (two limits) from one sort and
  weighted cumulative sums;
- the obvious alternative: per round, draw the speakers, repeat their trials by the draw counts and call
  ``verification_metrics`` (a sort per round).

Shapes: the default study (150 speakers, 31,350 trials) and Vox1-H (1,190 speakers, 550,000 trials).
Target: per-round time of the alternative / per-round time of the vectorised rounds >= 3 at the study's shape.
Also printed: the seconds per system for 1,000 rounds at each shape (what stage 05 pays per table row).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_bootstrap.py``; exits 1 if the target is missed.
"""

import sys
import time

import numpy as np

from machine import cpu_name
from nessa_lib.evaluation.bootstrap import SpeakerBootstrap
from nessa_lib.evaluation.metrics import verification_metrics


def trials(n_spk: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    spk = np.sort(rng.integers(0, n_spk, size=n))
    lab = (rng.random(n) < 0.043).astype(np.int8)
    scores = rng.normal(size=n) + 2.5 * lab + 0.8 * rng.normal(size=n_spk)[spk] * lab
    return spk, lab, scores


def naive_rounds(spk, lab, scores, counts):
    out = []
    for c in counts:
        w = c[spk].astype(np.int64)
        out.append(verification_metrics(np.repeat(scores, w), np.repeat(lab, w))["eer"])
    return np.array(out)


def main() -> int:
    print(f"machine: {cpu_name()}")
    ok = True
    for name, n_spk, n, naive_n in (("study (150 spk, 31k trials)", 150, 31_350, 50),
                                    ("Vox1-H (1,190 spk, 550k trials)", 1190, 550_000, 5)):
        spk, lab, scores = trials(n_spk, n)
        b = SpeakerBootstrap(spk, lab, n_rounds=1000, seed=0)
        t = time.perf_counter()
        rounds = b.metrics(scores)
        vec = time.perf_counter() - t
        t = time.perf_counter()
        naive = naive_rounds(spk, lab, scores, b.counts[:naive_n])
        slow = (time.perf_counter() - t) / naive_n
        np.testing.assert_allclose(naive, rounds["eer"][:naive_n], atol=1e-12)  # the same rounds, the same EERs
        ratio = slow / (vec / 1000)
        print(f"{name}: vectorised {vec:.2f} s per system for 1,000 rounds ({1000 * vec / 1000:.2f} ms/round); "
              f"re-scoring each round {1000 * slow:.1f} ms/round (EER only): {ratio:.1f}x")
        if name.startswith("study") and ratio < 3:
            ok = False
    print("target (study shape, >= 3x):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
