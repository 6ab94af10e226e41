"""Benchmark: vectorised cosine trial scoring against a per-trial Python loop, side by side.

Vox1-E shape, synthetic: 4,874 random 192-d float32 utterance embeddings and 580,000 random
utterance-vs-utterance trials. The loop gets every advantage: vectors L2-normalised beforehand,
trials as Python int lists, ``[p[i] @ t[j] for i, j in zip(...)]`` (a list; no array conversion).
``score_trials`` gets the raw embeddings and integer row indices and normalises inside.
Target: loop time / score_trials time >= 5 (best of 5 interleaved runs each).
Both sides come from one pool, so score_trials computes only the upper block triangle (~58 %) of the
symmetric score matrix.
Also printed (no target): the same trials given as string ids; the same shape with the test side
from a second, different pool (full matrix product); and profile-vs-utterance trials (1,251 voice
profiles, each the mean of 3 utterances, against the remaining utterances).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scoring.py``; exits 1 if the target is missed.
"""

import os
import platform
import sys
import time

import numpy as np

from nessa_lib.evaluation.scoring import l2_normalize, make_profiles, score_trials


def best_interleaved(fns: dict, repeat: int) -> tuple[dict, dict]:
    """Best time of each function over ``repeat`` rounds, calling all once per round."""
    best = {k: np.inf for k in fns}
    outs = {}
    for _ in range(repeat):
        for k, fn in fns.items():
            t = time.perf_counter()
            outs[k] = fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best, outs


def main() -> int:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(
        f"cores={os.cpu_count()} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} load={load[0]:.2f} "
        f"numpy={np.__version__} python={platform.python_version()}"
    )
    rng = np.random.default_rng(0)
    n_utt, dim, n_trials = 4874, 192, 580_000
    emb = rng.standard_normal((n_utt, dim)).astype(np.float32)
    a = rng.integers(0, n_utt, n_trials)
    b = rng.integers(0, n_utt, n_trials)
    emb2 = rng.standard_normal((n_utt, dim)).astype(np.float32)  # a second pool: no symmetry
    unit = l2_normalize(emb)  # the loop's preloaded vectors
    a_list, b_list = a.tolist(), b.tolist()
    utt_ids = np.array([f"id{i // 120 + 10270:05d}/clip{i % 13:02d}/{i:05d}.wav" for i in range(n_utt)])
    a_ids, b_ids = utt_ids[a], utt_ids[b]

    best, outs = best_interleaved(
        {
            "loop": lambda: [unit[i] @ unit[j] for i, j in zip(a_list, b_list)],
            "score_trials": lambda: score_trials(emb, None, emb, None, a, b),
            "score_trials_str": lambda: score_trials(emb, utt_ids, emb, utt_ids, a_ids, b_ids),
            "score_trials_2pools": lambda: score_trials(emb, None, emb2, None, a, b),
        },
        repeat=5,
    )
    ratio = best["loop"] / best["score_trials"]
    target = ratio >= 5
    diff = float(np.abs(np.array(outs["loop"]) - outs["score_trials"]).max())
    same_ids = bool(np.array_equal(outs["score_trials"], outs["score_trials_str"]))
    print(f"\n{n_trials:,} utterance-vs-utterance trials over {n_utt:,} utterances, {dim}-d float32")
    print(f"  per-trial loop (preloaded unit vectors) {best['loop']:7.3f} s")
    print(f"  score_trials, row indices               {best['score_trials']:7.3f} s   loop/this {ratio:5.1f}x")
    print(
        f"  score_trials, string ids                {best['score_trials_str']:7.3f} s   "
        f"loop/this {best['loop'] / best['score_trials_str']:5.1f}x  (same scores: {same_ids})"
    )
    print(
        f"  score_trials, 2 pools (no symmetry)     {best['score_trials_2pools']:7.3f} s   "
        f"loop/this {best['loop'] / best['score_trials_2pools']:5.1f}x  (same shape, other test vectors)"
    )
    print(f"  max |loop - score_trials| = {diff:.2e}")
    print(f"  TARGET loop / score_trials = {ratio:.1f}x >= 5x: {target}")

    # Profile-vs-utterance: 1,251 profiles from 3 utterances each, tested on the other 1,121.
    n_prof = 1251
    enrol, test = emb[: 3 * n_prof], emb[3 * n_prof :]
    pids, profiles = make_profiles(enrol, np.repeat(np.arange(n_prof), 3))
    tp = rng.integers(0, n_prof, n_trials)
    tt = rng.integers(0, len(test), n_trials)
    test_unit = l2_normalize(test)
    tp_list, tt_list = tp.tolist(), tt.tolist()
    best_p, outs_p = best_interleaved(
        {
            "loop": lambda: [profiles[i] @ test_unit[j] for i, j in zip(tp_list, tt_list)],
            "score_trials": lambda: score_trials(profiles, pids, test, None, tp, tt),
        },
        repeat=3,
    )
    diff_p = float(np.abs(np.array(outs_p["loop"]) - outs_p["score_trials"]).max())
    print(f"\n{n_trials:,} profile-vs-utterance trials: {n_prof:,} profiles x {len(test):,} test utterances")
    print(f"  per-trial loop  {best_p['loop']:7.3f} s")
    print(
        f"  score_trials    {best_p['score_trials']:7.3f} s   loop/this "
        f"{best_p['loop'] / best_p['score_trials']:5.1f}x   max diff {diff_p:.2e}"
    )

    ok = target and diff < 1e-5 and same_ids and diff_p < 1e-5
    print("\nALL TARGETS MET" if ok else "\nTARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
