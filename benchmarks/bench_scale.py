"""Benchmark: a scale rehearsal on a VoxCeleb-layout corpus of one 3-s wav per utterance, at two sizes.

For each size (default 5,000 and 40,000 files, ``root/id1xxxx/<video>/<nnnnn>.wav``, 16 kHz PCM, 40 utterances
per speaker, written from a bank of noise-plus-tone clips) every stage runs in its own subprocess, so its peak RSS
(``ru_maxrss`` of the process and of its DataLoader workers, whichever is larger) is its own:

- stage 01's probe: :func:`nessa_lib.data.readers.read_voxceleb` decoding every file in 2 processes (files/s);
- training, ``max_steps`` optimizer steps of the study's x-vector recipe (batch 64, 1.5-s crops, 1 torch thread)
  on each data path: ``memory`` (decode everything first), ``stream`` (1 DataLoader worker reading crop windows),
  ``shards`` (WebDataset shards packed first, 1 worker): load time, steps/s and peak RSS;
- packing the shards (utterances/s);
- extraction of 480 utterances with the trained encoder, 0 and 2 DataLoader workers (utterances/s).

It prints the RSS difference between the sizes for each path (target: < 0.5 GB for ``stream`` and ``shards`` when
the corpus grows 8x; ``memory`` grows with the audio by design) and extrapolates wall times on this machine for
VoxCeleb1 dev (148,642 utterances, ~340 h) and VoxCeleb2 dev (1,092,009 utterances, ~2,300 h): rates measured on
3-s files are scaled by hours of audio (decode, extraction) or utterance count (training steps). No GPU figures:
none is measured here. On the embedded corpus (``--default-manifest``, by default ``data/prepare_data/manifest.csv``
when stage 01 has run) it also times memory against stream, best of 2 interleaved rounds: the choice ``data:
auto`` makes by default.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale.py [--sizes 5000 40000] [--workdir DIR]`` (about
5 minutes at the default sizes on a quiet 2-core machine; 40,000 files take 3.8 GB of disk, deleted afterwards). Exits 1 if a
streaming path misses the RSS target.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from machine import cpu_name  # benchmarks/machine.py (scripts run with their folder on sys.path)

SR = 16000
CLIP_S = 3.0
UTTS_PER_SPEAKER = 40
VOX = {"VoxCeleb1 dev": (148_642, 340.0), "VoxCeleb2 dev": (1_092_009, 2_300.0)}
RSS_TARGET_GB = 0.5
EXTRACT_UTTS = 480


# ---------------------------------------------------------------------------------------------- child stages


def _peak_rss_gb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024 ** 2  # KiB on Linux


def stage_probe(a):
    from nessa_lib.data.manifest import write_manifest
    from nessa_lib.data.readers import read_voxceleb

    t0 = time.perf_counter()
    df, skipped = read_voxceleb(a["root"], min_dur_s=0.5, progress=False, decode=True, workers=2)
    dt = time.perf_counter() - t0
    df = df.assign(split="train")
    write_manifest(df, a["manifest"])
    return {"files": len(df), "skipped": len(skipped), "seconds": dt, "files_per_s": len(df) / dt}


def stage_pack(a):
    from nessa_lib.encoders.shards import write_shards

    t0 = time.perf_counter()
    index = write_shards(a["manifest"], a["shards"], shard_size=1000, seed=0, progress=False)
    dt = time.perf_counter() - t0
    return {"utts": index["n_utts"], "shards": len(index["shards"]), "seconds": dt, "utts_per_s": index["n_utts"] / dt}


def stage_train(a):
    import torch

    from nessa_lib.encoders.brain import train_encoder
    from nessa_lib.encoders.config import default_config

    torch.set_num_threads(a["threads"])
    cfg = default_config("xvector", epochs=1000, max_steps=a["max_steps"], valid_utts_per_speaker=0,
                         data=a["data"], data_workers=a["workers"], **a.get("extra", {}))
    s = train_encoder(a["manifest"], a["out"], cfg, progress=False, device="cpu", shards=a.get("shards"))
    return {"load_s": s["load_time_s"], "train_s": s["train_time_s"], "steps": s["optimizer_steps"],
            "steps_per_s": s["optimizer_steps"] / s["train_time_s"], "utts": s["n_train_utts"],
            "data_path": s.get("data_path", "memory")}


def stage_extract(a):
    import torch

    from nessa_lib.data.manifest import read_manifest
    from nessa_lib.encoders.export import load_encoder
    from nessa_lib.encoders.extract import extract_embeddings

    torch.set_num_threads(1)
    df = read_manifest(a["manifest"]).iloc[:EXTRACT_UTTS]
    enc = load_encoder(a["encoder"])
    t0 = time.perf_counter()
    emb = extract_embeddings(df, enc, batch_size=16, progress=False, workers=a["workers"], device="cpu")
    dt = time.perf_counter() - t0
    return {"utts": len(emb.utt_ids), "seconds": dt, "utts_per_s": len(emb.utt_ids) / dt}


STAGES = {"probe": stage_probe, "pack": stage_pack, "train": stage_train, "extract": stage_extract}


def run_stage(name: str, **args) -> dict:
    """Run one stage in a fresh interpreter; its result plus its peak RSS (GB)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout's nessa_lib
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--stage", name, json.dumps(args)],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise RuntimeError(f"stage {name} failed ({p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- corpus


def make_corpus(root: str, n_files: int, seed: int = 0) -> float:
    """``n_files`` 3-s wavs in the VoxCeleb layout (5 videos x 8 utterances per speaker); returns seconds taken."""
    import soundfile as sf

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n = int(CLIP_S * SR)
    t = np.arange(n) / SR
    bank = []
    for k in range(32):
        x = 0.05 * rng.standard_normal(n) + 0.2 * np.sin(2 * np.pi * (100 + 15 * k) * t)
        bank.append(np.round(np.clip(x, -1, 1) * 32767).astype(np.int16))
    for i in range(n_files):
        spk, u = divmod(i, UTTS_PER_SPEAKER)
        d = os.path.join(root, f"id1{spk:04d}", f"video{u // 8:02d}")
        if u % 8 == 0:
            os.makedirs(d, exist_ok=True)
        x = np.roll(bank[(spk + u) % 32], int(rng.integers(n)))
        sf.write(os.path.join(d, f"{u % 8 + 1:05d}.wav"), x, SR, subtype="PCM_16")
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------- report


def fmt_h(seconds: float) -> str:
    return f"{seconds / 3600:8.1f} h" if seconds >= 3600 else f"{seconds / 60:8.1f} min"


def rehearse(n: int, work: str, a) -> dict:
    root = os.path.join(work, f"vox{n}")
    res = {"files": n, "hours": n * CLIP_S / 3600}
    res["make_s"] = make_corpus(root, n)
    manifest = os.path.join(work, f"manifest{n}.csv")
    res["probe"] = run_stage("probe", root=root, manifest=manifest)
    print(f"  {n:>6} files: probe {res['probe']['files_per_s']:.0f} files/s "
          f"(peak RSS {res['probe']['rss_gb']:.2f} GB)", flush=True)
    if "shards" in a.paths:
        res["pack"] = run_stage("pack", manifest=manifest, shards=os.path.join(work, f"shards{n}"))
        print(f"  {n:>6} files: pack shards {res['pack']['utts_per_s']:.0f} utts/s", flush=True)
    res["train"] = {}
    for path in a.paths:
        r = run_stage("train", manifest=manifest, out=os.path.join(work, f"enc{n}-{path}"), data=path,
                      workers=0 if path == "memory" else 1, threads=a.threads, max_steps=a.max_steps,
                      shards=os.path.join(work, f"shards{n}") if path == "shards" else None)
        res["train"][path] = r
        print(f"  {n:>6} files: train {path:6s} load {r['load_s']:6.1f} s, {r['steps_per_s']:.2f} steps/s, "
              f"peak RSS {r['rss_gb']:.2f} GB", flush=True)
    if not a.skip_extract:
        res["extract"] = {}
        enc = os.path.join(work, f"enc{n}-{a.paths[0]}")
        for w in (0, 2):
            res["extract"][w] = run_stage("extract", manifest=manifest, encoder=enc, workers=w)
            print(f"  {n:>6} files: extract workers={w} {res['extract'][w]['utts_per_s']:.1f} utts/s", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(os.path.join(work, f"shards{n}"), ignore_errors=True)
    return res


def default_corpus(a, work: str) -> dict:
    """Memory vs stream on the embedded corpus, best of 2 interleaved rounds: time to ``max_steps`` steps and the
    projected full run."""
    out = {}
    for k in range(2):  # interleaved rounds, best of each (the machine may be shared)
        for path in ("memory", "stream"):
            r = run_stage("train", manifest=os.path.abspath(a.default_manifest),
                          out=os.path.join(work, f"default-{path}-{k}"), data=path,
                          workers=0 if path == "memory" else 1, threads=a.threads, max_steps=a.max_steps)
            if path not in out or r["load_s"] + r["train_s"] < out[path]["load_s"] + out[path]["train_s"]:
                out[path] = r
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[5000, 40000],
                    help="corpus sizes in files ('--sizes' alone: only the embedded-corpus comparison)")
    ap.add_argument("--paths", nargs="+", default=["memory", "stream", "shards"],
                    choices=["memory", "stream", "shards"])
    ap.add_argument("--max-steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each training run")
    ap.add_argument("--workdir", default=None, help="where the corpora are written (default: the temp folder)")
    ap.add_argument("--skip-extract", action="store_true")
    ap.add_argument("--default-manifest", default=None,
                    help="also compare memory and stream on this manifest (default: the embedded corpus's "
                         "data/prepare_data/manifest.csv when stage 01 has run; '' to skip)")
    ap.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    a, rest = ap.parse_known_args(argv)
    if a.stage:  # child process
        args = json.loads(rest[0])
        r = STAGES[a.stage](args)
        r["rss_gb"] = _peak_rss_gb()
        print(json.dumps(r))
        return 0

    if a.default_manifest is None:
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        found = os.path.join(repo, "data", "prepare_data", "manifest.csv")
        a.default_manifest = found if os.path.isfile(found) else ""
    print(f"Scale rehearsal on {cpu_name()}, {os.cpu_count()} logical CPUs; {a.threads} torch thread(s) per "
          "training run, 1 for extraction")
    work = tempfile.mkdtemp(prefix="nessa-scale-", dir=a.workdir)
    t_all = time.perf_counter()
    try:
        results = [rehearse(n, work, a) for n in sorted(a.sizes)]
        dflt = default_corpus(a, work) if a.default_manifest else None
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if not results:
        return report_default(a, dflt, t_all)
    print("\nsize     hours  probe f/s  " + "  ".join(f"{p:>6} load s  steps/s  RSS GB" for p in a.paths))
    for r in results:
        cells = "  ".join(f"{r['train'][p]['load_s']:13.1f}  {r['train'][p]['steps_per_s']:7.2f}  "
                          f"{r['train'][p]['rss_gb']:6.2f}" for p in a.paths)
        print(f"{r['files']:>6}  {r['hours']:6.2f}  {r['probe']['files_per_s']:9.0f}  {cells}")
    ok = True
    if len(results) >= 2:
        lo, hi = results[0], results[-1]
        print(f"\nPeak training RSS, {hi['files']} files minus {lo['files']} files "
              f"({hi['files'] / lo['files']:.0f}x the corpus):")
        for p in a.paths:
            d = hi["train"][p]["rss_gb"] - lo["train"][p]["rss_gb"]
            verdict = "" if p == "memory" else (" (target < 0.5 GB: met)" if d < RSS_TARGET_GB
                                                 else " (target < 0.5 GB: MISSED)")
            ok &= p == "memory" or d < RSS_TARGET_GB
            print(f"  {p:6s} {d:+.2f} GB{verdict}")
        mem = [r["train"]["memory"]["rss_gb"] for r in results] if "memory" in a.paths else None
        if mem:
            slope = (mem[-1] - mem[0]) / (hi["hours"] - lo["hours"])
            print(f"  memory path: {slope * 1000:.0f} MB per hour of audio")

    r = results[-1]
    print(f"\nExtrapolated to VoxCeleb on this machine (rates of the {r['files']}-file run; decode and extraction "
          f"scale with hours of audio, training steps with utterances; batch 64, {a.threads} torch thread(s)):")
    audio_rate = r["probe"]["files_per_s"] * CLIP_S  # seconds of audio decoded per second
    for name, (utts, hours) in VOX.items():
        print(f"  {name} ({utts:,} utts, {hours:,.0f} h):")
        print(f"    stage-01 probe (2 processes)          {fmt_h(hours * 3600 / audio_rate)}")
        if "pack" in r:
            pack_s = hours * 3600 / (r["pack"]["utts_per_s"] * CLIP_S)
            print(f"    pack shards                           {fmt_h(pack_s)}")
        if len(results) >= 2 and "memory" in a.paths:
            rss = f"~{mem[0] + slope * (hours - lo['hours']):.0f} GB" if slope > 0 else "n/a (no growth measured)"
            print(f"    memory path: preload {fmt_h(hours * 3600 / (utts_per_load(r) * CLIP_S))}, peak RSS {rss}")
        for p in a.paths:
            if p != "memory":
                sps = r["train"][p]["steps_per_s"]
                print(f"    {p} path: one epoch ({utts // 64:,} steps) {fmt_h(utts / 64 / sps)}, "
                      f"peak RSS ~{r['train'][p]['rss_gb']:.1f} GB")
        if "extract" in r:
            for w, e in r["extract"].items():
                print(f"    extraction, workers={w}                {fmt_h(hours * 3600 / (e['utts_per_s'] * CLIP_S))}")
    print("  per GPU: not measured (no GPU on this machine)")

    return report_default(a, dflt, t_all, ok)


def report_default(a, dflt, t_all, ok=True) -> int:
    if dflt:
        print(f"\nEmbedded corpus ({a.default_manifest}), {a.max_steps} steps of the x-vector recipe:")
        for p, d in dflt.items():
            print(f"  {p:6s} load {d['load_s']:6.1f} s, {d['steps_per_s']:.2f} steps/s, peak RSS {d['rss_gb']:.2f} GB,"
                  f" {d['load_s'] + d['train_s']:.1f} s in all")
        m, s = dflt["memory"], dflt["stream"]
        steps = 4 * (m["utts"] // 64)  # the recipe's 4 epochs
        tm, ts = m["load_s"] + steps / m["steps_per_s"], s["load_s"] + steps / s["steps_per_s"]
        print(f"  projected 4-epoch run ({steps} steps): memory {tm / 60:.1f} min, stream {ts / 60:.1f} min "
              f"-> {'memory' if tm <= ts else 'stream'} is faster (stream/memory time ratio {ts / tm:.2f})")
    print(f"\nwall time of the rehearsal: {(time.perf_counter() - t_all) / 60:.1f} min")
    return 0 if ok else 1


def utts_per_load(r) -> float:
    m = r["train"]["memory"]
    return m["utts"] / m["load_s"]


if __name__ == "__main__":
    raise SystemExit(main())
