"""Benchmark: nessa_lib.evaluation.metrics against sklearn's roc_curve and SpeechBrain's EER/minDCF, side by side.

Prints
- 5 M random trials: time of EER + minDCF(0.01) + FRR@FAR(1 %) over the time of
  ``sklearn.metrics.roc_curve`` alone; target <= 0.2 (shared one-preparation path). Also printed:
  the same three as separate calls, ``verification_metrics`` defaults (2 priors, 2 FARs),
  ``det_curve`` and a bare ``np.sort`` of the scores, and the values next to roc_curve-derived ones.
- 20 k trials: speed-up over ``speechbrain.utils.metric_stats.EER`` + ``minDCF`` (torch tensors);
  target >= 20x. Both EERs are printed (SpeechBrain takes the mean of FAR and FRR at the nearest of
  ~2n thresholds, we interpolate, so they differ slightly); SpeechBrain's minDCF is un-normalised,
  so it is printed divided by min(p, 1-p).
Timings are best of a few interleaved repeats (time.perf_counter), so load from other processes
hits both sides alike.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_metrics.py``; exits 1 if a target is missed.
"""

import os
import platform
import sys
import time

import numpy as np

from nessa_lib.evaluation import metrics
from machine import cpu_name  # benchmarks/machine.py (scripts run with their folder on sys.path)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def best_interleaved(fns: dict, repeat: int) -> tuple[dict, dict]:
    """Best time of each function over ``repeat`` rounds, calling all once per round."""
    best = {k: np.inf for k in fns}
    outs = {}
    for _ in range(repeat):
        for k, fn in fns.items():
            dt, outs[k] = timed(fn)
            best[k] = min(best[k], dt)
    return best, outs


def roc_metrics(y, s):
    """EER / minDCF(0.01) / FRR@FAR(1 %) from sklearn's full ROC (same operating points as ours)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    far, frr = fpr[::-1], 1 - tpr[::-1]
    i = int(np.argmax(far <= frr))
    d0, d1 = far[i - 1] - frr[i - 1], far[i] - frr[i]
    e = frr[i] if d1 == 0 else frr[i - 1] + d0 / (d0 - d1) * (frr[i] - frr[i - 1])
    dcf = np.min(0.01 * frr + 0.99 * far) / 0.01
    return e, dcf, frr[far <= 0.01].min()


def main() -> int:
    from sklearn import __version__ as skl_version
    from sklearn.metrics import roc_curve

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(
        f"cpu={cpu_name()!r} cores={os.cpu_count()} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} "
        f"load={load[0]:.2f}\nnumpy={np.__version__} sklearn={skl_version} python={platform.python_version()}"
    )
    ok = True

    # --- 5 M trials against sklearn roc_curve ------------------------------------------------
    n = 5_000_000
    rng = np.random.default_rng(0)
    y = rng.random(n) < 0.5
    s = rng.standard_normal(n) + 2.0 * y  # d' = 2: EER ~ 16 %

    def shared():
        ts = metrics.TrialScores.from_scores(s, y)
        return ts.eer(), ts.min_dcf(0.01), ts.frr_at_far(0.01)

    def separate():
        return metrics.eer(s, y), metrics.min_dcf(s, y, 0.01), metrics.frr_at_far(s, y, 0.01)

    best, outs = best_interleaved(
        {
            "roc_curve": lambda: roc_curve(y, s),
            "shared": shared,
            "separate": separate,
            "verification_metrics": lambda: metrics.verification_metrics(s, y),
        },
        repeat=3,
    )
    extra, _ = best_interleaved({"det_curve": lambda: metrics.det_curve(s, y), "sort": lambda: np.sort(s)}, 2)
    t_det, t_sort = extra["det_curve"], extra["sort"]
    t_roc = best["roc_curve"]
    print(f"\n{n:,} trials (float64, 50 % targets)")
    print(f"  sklearn roc_curve                  {t_roc:7.3f} s")
    for k, label in [
        ("shared", "eer+min_dcf+frr_at_far, shared"),
        ("separate", "eer+min_dcf+frr_at_far, 3 calls"),
        ("verification_metrics", "verification_metrics (2 p, 2 FAR)"),
    ]:
        print(f"  {label:34s} {best[k]:7.3f} s   ratio to roc_curve {best[k] / t_roc:.3f}")
    print(f"  det_curve (every point)            {t_det:7.3f} s   ratio to roc_curve {t_det / t_roc:.3f}")
    print(f"  np.sort of the scores              {t_sort:7.3f} s   ratio to roc_curve {t_sort / t_roc:.3f}")
    ratio = best["shared"] / t_roc
    target = ratio <= 0.2
    ok &= target
    print(f"  TARGET shared / roc_curve = {ratio:.3f} <= 0.2: {target}")
    e, dcf, frr = outs["shared"]
    e_r, dcf_r, frr_r = roc_metrics(y, s)
    print(f"  values  ours: eer={e:.6f} min_dcf(0.01)={dcf:.6f} frr@far1%={frr:.6f}")
    print(f"  from roc_curve: eer={e_r:.6f} min_dcf(0.01)={dcf_r:.6f} frr@far1%={frr_r:.6f}")
    agree = abs(e - e_r) < 1e-9 and abs(dcf - dcf_r) < 1e-9 and abs(frr - frr_r) < 1e-9
    ok &= agree
    print(f"  agree within 1e-9: {agree}")

    # --- 20 k trials against SpeechBrain -----------------------------------------------------
    import torch
    from speechbrain.utils.metric_stats import EER as sb_eer
    from speechbrain.utils.metric_stats import minDCF as sb_min_dcf

    torch.set_num_threads(1)
    n = 20_000
    y = rng.random(n) < 0.5
    s = (rng.standard_normal(n) + 2.0 * y).astype(np.float32)
    pos, neg = torch.from_numpy(s[y]), torch.from_numpy(s[~y])

    def speechbrain():
        return sb_eer(pos, neg)[0], sb_min_dcf(pos, neg, p_target=0.01)[0]

    def ours():
        return metrics.eer(s, y), metrics.min_dcf(s, y, 0.01)

    t_sb, (e_sb, dcf_sb) = timed(speechbrain)  # O(n^2): one run is plenty
    best, outs = best_interleaved({"ours": ours}, repeat=20)
    e, dcf = outs["ours"]
    speedup = t_sb / best["ours"]
    target = speedup >= 20
    ok &= target
    print(f"\n{n:,} trials (float32 torch tensors for SpeechBrain {sys.modules['speechbrain'].__version__})")
    print(f"  speechbrain EER + minDCF           {t_sb:9.4f} s (1 run)")
    print(f"  nessa_lib eer + min_dcf            {best['ours']:9.4f} s (best of 20)")
    print(f"  TARGET speed-up = {speedup:,.0f}x >= 20x: {target}")
    print(f"  EER: ours {e:.6f}  speechbrain {e_sb:.6f}  (different interpolation)")
    print(f"  minDCF(0.01) normalised: ours {dcf:.6f}  speechbrain {dcf_sb / 0.01:.6f} (its raw value / 0.01)")

    print("\nALL TARGETS MET" if ok else "\nTARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
