"""Benchmark: fitting the NESSA aligners, the loop of commit 8d21f9c against today's batched path, side by side.

Part 1, the study's pairs (needs a completed ``dvc repro``: data/extract_embeddings and data/prepare_data). The
development protocol of tools/choose_defaults.py: fit on the encoder-training speakers' pairs, score trials of the
alignment split (voices neither fit nor evaluation uses). For each pair and NESSA method, ``--seeds`` seeds fitted

- by the *old loop*: ``nessa_lib/align/nessa.py`` as of commit 8d21f9c, loaded from git history (one Python
  training loop per seed: constant learning rate, width 256, early stopping up to 200 epochs), with that commit's
  hyper-parameters from its params.yaml;
- by the *batched path*: :func:`nessa_lib.align.fit_ensemble` (all seeds as one stacked ensemble) with this
  checkout's ``fit_aligners.hparams``.

It prints the seconds per fitted aligner of each, their ratio, and every seed's development EER with the old
seeds' range. Both run in this process, one after the other, with one torch thread.

Part 2: NESSA M3 on 1,000,000 synthetic 192-d pairs (5,000 voices x 200 utterances, :mod:`nessa_lib.toy`) in a
fresh process: fit time and the process's peak resident memory (the float32 pairs themselves are 1.5 GB), on the
CPU and, when one is visible, on a CUDA GPU. Targets: under 15 minutes and under 4 GB on the CPU.
``--million-methods nessa-m3 nessa-m2`` adds M2 (its least-squares start reads the pairs in chunks), same targets.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fit.py [--pairs xvector-ecapa ...] [--skip-million]
[--skip-pairs] [--million-methods nessa-m3 nessa-m2]``
under the study's CPU kernels (``make bench`` does not set them; the ratios hardly depend on it).
Exits 1 when the million-pair fit misses a target.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "8d21f9c"
NESSA = ("nessa-m1", "nessa-m2", "nessa-m3")


def git_show(path: str) -> str:
    return subprocess.run(["git", "show", f"{OLD_COMMIT}:{path}"], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout


def old_loop():
    """The training module of commit 8d21f9c, imported under another name (its helpers still exist)."""
    src = Path(tempfile.mkdtemp()) / "nessa_8d21f9c.py"
    src.write_text(git_show("nessa_lib/align/nessa.py"))
    spec = importlib.util.spec_from_file_location("nessa_8d21f9c", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def part1(pairs: list[str], n_seeds: int) -> None:
    import torch
    import yaml

    from nessa_lib import embeddings
    from nessa_lib.align import fit_ensemble
    from nessa_lib.align.closed_form import _unit
    from nessa_lib.align.fitting import _aligner, _checked
    from nessa_lib.stages import fit_aligners as stage

    torch.set_num_threads(1)
    old = old_loop()
    old_hp = yaml.safe_load(git_show("params.yaml"))["fit_aligners"]["hparams"]
    p = stage.load()
    seeds = list(range(n_seeds))
    print(f"part 1: the study's pairs, fit on [train], development EER on trials of [align]; {n_seeds} seeds")
    print(f"{'pair':22s} {'method':9s} {'old s/al':>8s} {'new s/al':>8s} {'speed-up':>8s}  "
          f"{'old EER % (range)':>24s}  {'new EER % (range)':>24s}")
    total_old = total_new = 0.0
    ratios: dict = {m: [] for m in NESSA}
    for pair in pairs:
        spec = p.pairs[pair]
        fit = embeddings.load_paired_splits(ROOT / "data/extract_embeddings", spec["enroll_model"],
                                            spec["runtime_model"], ["train"])
        for method in NESSA:
            hp_old, x, y, s = _checked(method, fit.x, fit.y, fit.speaker_ids, old_hp[method])
            # The old loop's inputs: unit rows in float64 (the new path normalises each batch as it reads it).
            x, y = _unit(x.astype(np.float64)), _unit(y.astype(np.float64))
            t = time.perf_counter()
            olds = []
            for seed in seeds:
                tr = (*old._train(method, x, y, s, hp_old, seed, False), {})  # the old loop had no fit_init
                olds.append(_aligner(method, x, y, hp_old, tr, (tr[3] if method == "nessa-m1" else tr[2])["d_out"],
                                     seed, None, None))
            t_old = (time.perf_counter() - t) / n_seeds
            t = time.perf_counter()
            news = fit_ensemble(method, fit.x, fit.y, fit.speaker_ids, seeds=seeds, **p.hparams[method])
            t_new = (time.perf_counter() - t) / n_seeds
            total_old, total_new = total_old + t_old, total_new + t_new
            ratios[method].append(t_old / t_new)
            systems = {**{f"old#{i}": a for i, a in enumerate(olds)}, **{f"new#{i}": a for i, a in enumerate(news)}}
            dev = stage.development_table(systems, ROOT / "data/extract_embeddings", spec["enroll_model"],
                                          spec["runtime_model"], dev_split="align", fit_splits=["train"],
                                          manifest_path=ROOT / "data/prepare_data/manifest.csv", k_enroll=p.k_enroll,
                                          n_nontarget_per_profile=p.n_nontarget_per_profile, seed=p.seed)

            def eers(tag):
                e = 100 * dev.loc[[f"{tag}#{i}" for i in seeds], "eer"].to_numpy()
                return f"{e.mean():5.2f} ({e.min():.2f}-{e.max():.2f})"

            print(f"{pair:22s} {method:9s} {t_old:8.2f} {t_new:8.2f} {t_old / t_new:7.2f}x  {eers('old'):>24s}  "
                  f"{eers('new'):>24s}", flush=True)
    print(f"all NESSA fits: {total_old:.1f} s -> {total_new:.1f} s per aligner summed, "
          f"speed-up {total_old / total_new:.2f}x")
    for method, r in ratios.items():  # the target is per fitted aligner: the smallest ratio counts
        print(f"{method}: speed-up per aligner {min(r):.2f}x-{max(r):.2f}x over {len(r)} pairs "
              f"(>= 3x on every pair: {min(r) >= 3})")


def million_child(device: str, method: str = "nessa-m3") -> None:
    """In a fresh process: make the pairs, fit ``method`` once, print a JSON line (seconds, peak RSS)."""
    import psutil
    import torch

    from nessa_lib import toy
    from nessa_lib.align import fit
    from nessa_lib.stages import fit_aligners as stage

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    proc, peak = psutil.Process(), [0]
    stop = threading.Event()

    def watch():  # the resident set every 50 ms; getrusage's maximum would include the generation's floats
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.05)

    xs, ys, spk = [], [], []
    for part in range(10):  # 500 voices at a time, float32 as an embedding file holds them
        rng = np.random.default_rng(0)  # same models every part (drawn first), new voices per offset
        d = toy.make_paired_spaces(500, 200, d_latent=64, d_x=192, d_y=192, warp_x="nonlinear",
                                   warp_y="nonlinear", rng=rng, speaker_offset=500 * part)
        xs.append(d.x.astype(np.float32)), ys.append(d.y.astype(np.float32)), spk.append(d.speakers)
    x, y, s = np.concatenate(xs), np.concatenate(ys), np.concatenate(spk)
    del xs, ys, spk
    threading.Thread(target=watch, daemon=True).start()
    hp = stage.load(root=ROOT).hparams[method]
    t = time.perf_counter()
    a = fit(method, x, y, s, seed=0, device=device, **hp)
    sec = time.perf_counter() - t
    stop.set()
    print(json.dumps({"n": len(x), "seconds": sec, "epochs": len(a.history), "peak_rss_gb": peak[0] / 2**30,
                      "data_gb": (x.nbytes + y.nbytes) / 2**30, "agreement": a.fit_agreement.get("median")}))


def part2(methods=("nessa-m3",)) -> bool:
    import torch

    ok = True
    for method, device in ((m, d) for m in methods for d in ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])):
        out = subprocess.run([sys.executable, __file__, "--million-child", device, "--million-methods", method],
                             cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-3000:])
            return False
        r = json.loads(out.stdout.strip().splitlines()[-1])
        hit = device != "cpu" or (r["seconds"] < 15 * 60 and r["peak_rss_gb"] < 4)
        ok &= hit
        print(f"part 2: {method} on {r['n']:,} pairs ({r['data_gb']:.2f} GB float32) on {device}: "
              f"{r['seconds']:.0f} s, {r['epochs']} epochs, peak RSS {r['peak_rss_gb']:.2f} GB, fit agreement "
              f"median {r['agreement']:.3f}" + ("" if device != "cpu" else f"  (< 15 min and < 4 GB: {hit})"))
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", nargs="*", help="pairs of part 1 (default: every fit_aligners pair)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--skip-pairs", action="store_true", help="only the million-pair fit")
    ap.add_argument("--skip-million", action="store_true", help="only the study's pairs")
    ap.add_argument("--million-methods", nargs="+", default=["nessa-m3"], choices=NESSA,
                    help="methods of the million-pair fit (default: nessa-m3, the issue's target; the same 15 min / "
                         "4 GB targets apply to each)")
    ap.add_argument("--million-child", metavar="DEVICE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.million_child:
        million_child(args.million_child, args.million_methods[0])
        return 0
    import torch

    print(f"cores={os.cpu_count()} torch={torch.__version__} capability={torch.backends.cpu.get_cpu_capability()}")
    if not args.skip_pairs and not (ROOT / "data/extract_embeddings").is_dir():
        print("part 1 skipped: no study embeddings (run `dvc repro` or `make pull` first)")
    elif not args.skip_pairs:
        from nessa_lib.stages import fit_aligners as stage

        part1(args.pairs or list(stage.load().pairs), args.seeds)
    return 0 if args.skip_million or part2(args.million_methods) else 1


if __name__ == "__main__":
    sys.exit(main())
