"""Benchmark: cost of NESSA at fit time and at runtime, measured side by side in one run.

Prints
- fit time of each trained method on 20 k pairs (192-d -> 256-d, synthetic), one thread; target < 60 s;
- time to map ONE runtime embedding through each aligner, against one forward of a runtime encoder
  (SpeechBrain ECAPA-TDNN C=512 + its Fbank front end) on 3 s of 16 kHz audio; target ratio <= 0.01.
The encoder's weights are random: its cost does not depend on their values.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_align.py``; exits 1 if a target is missed.
"""

import os
import sys
import time

import numpy as np
import torch

from nessa_lib import align, toy


def best_of(fn, repeat: int, number: int = 1) -> float:
    """Best mean time per call over ``repeat`` rounds of ``number`` calls (seconds)."""
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t) / number)
    return best


def main() -> int:
    torch.set_num_threads(1)
    print(f"cores={os.cpu_count()} torch={torch.__version__} threads={torch.get_num_threads()}")
    pairs = toy.make_paired_spaces(
        1000, 20, d_latent=64, d_x=192, d_y=256, warp_x="nonlinear",
        warp_y="nonlinear", rng=np.random.default_rng(0),
    )
    ok = True
    aligners = {}
    for method in ["linear", "speaker-logit", "nessa-m1", "nessa-m2", "nessa-m3"]:
        t = time.perf_counter()
        aligners[method] = align.fit(method, pairs.x, pairs.y, pairs.speakers, seed=0)
        dt = time.perf_counter() - t
        epochs = len(aligners[method].history)
        target = dt < 60
        ok &= target
        print(f"fit {method:14s} on {len(pairs.x)} pairs: {dt:6.1f} s ({epochs} epochs)  < 60 s: {target}")

    from speechbrain.lobes.features import Fbank
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    fbank = Fbank(n_mels=80)
    encoder = ECAPA_TDNN(80, channels=[512, 512, 512, 512, 1536], lin_neurons=192).eval()
    wav = torch.randn(1, 48000)

    def encode():
        with torch.no_grad():
            encoder(fbank(wav))

    encode()  # warm-up
    t_enc = best_of(encode, repeat=5, number=3)
    print(f"runtime encoder (ECAPA C=512 + Fbank, 3 s audio, 1 thread): {t_enc * 1e3:.2f} ms per utterance")
    one = pairs.y[:1]
    for method, a in aligners.items():
        a.map_runtime(one)
        t_map = best_of(lambda: a.map_runtime(one), repeat=5, number=200)
        ratio = t_map / t_enc
        target = ratio <= 0.01
        ok &= target
        print(f"map_runtime {method:14s}: {t_map * 1e6:7.1f} us  ratio to encoder {ratio:.4f}  <= 0.01: {target}")
    print("ALL TARGETS MET" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
