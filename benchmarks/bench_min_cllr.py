"""Benchmark: min-Cllr in every speaker-bootstrap round (``calibration.min_cllr_rounds``) against resampling.

Synthetic trials as in ``bench_bootstrap.py`` (the default study's shape: 150 speakers, 31,350 trials, 4.3 %
targets), 1,000 rounds, once with distinct scores and once with scores rounded to 0.01 (many ties of both
classes). The obvious alternative, per round: repeat each trial by its speaker's draw count and call ``min_cllr``
(a sort and a Python PAV per round); its rounds must give the same values (to 1e-12).

Target: stage 05 scores 32 systems, and the min-Cllr intervals may add at most 30 s to it on one core, so at most
0.9 s per system for 1,000 rounds at the study's shape.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_min_cllr.py``; exits 1 if the target is missed.
"""

import sys
import time

import numpy as np

from bench_bootstrap import trials
from machine import cpu_name
from nessa_lib.evaluation.bootstrap import SpeakerBootstrap
from nessa_lib.evaluation.calibration import min_cllr, min_cllr_rounds

SYSTEMS, BUDGET_S = 32, 30.0


def main() -> int:
    print(f"machine: {cpu_name()}")
    spk, lab, scores = trials(150, 31_350)
    b = SpeakerBootstrap(spk, lab, n_rounds=1000, seed=0)
    min_cllr_rounds(scores[:100], lab[:100], SpeakerBootstrap(spk[:100], lab[:100], n_rounds=2))  # imports
    ok = True
    for name, s in (("distinct scores", scores), ("scores rounded to 0.01", np.round(scores, 2))):
        t = time.perf_counter()
        rounds = min_cllr_rounds(s, lab, b)
        vec = time.perf_counter() - t
        naive_n = 10
        t = time.perf_counter()
        naive = []
        for c in b.counts[:naive_n]:
            w = c[b.cluster].astype(np.int64)
            naive.append(min_cllr(np.repeat(s, w), np.repeat(lab, w)))
        slow = (time.perf_counter() - t) / naive_n
        np.testing.assert_allclose(rounds[:naive_n], naive, rtol=0, atol=1e-12)  # the same rounds, the same values
        print(f"{name}: {vec:.2f} s per system for 1,000 rounds ({vec:.2f} ms/round); resampling and calling "
              f"min_cllr {1000 * slow:.0f} ms/round ({slow / (vec / 1000):.0f}x); {SYSTEMS} systems: "
              f"{SYSTEMS * vec:.1f} s")
        ok &= SYSTEMS * vec <= BUDGET_S
    print(f"target ({SYSTEMS} systems x 1,000 rounds <= {BUDGET_S:.0f} s):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
