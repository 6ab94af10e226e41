"""Benchmark: what stage 03's CPU options buy, side by side in one run on this machine.

1. **Corpus format.** The synthetic corpus stores each speaker's utterances back to back in one file and every
   stage reads utterances as segments of it. This decodes the same segments from a 16-bit FLAC and a 16-bit WAV
   copy of the same recordings with :func:`nessa_lib.data.audio.load_audio` (utterances/s, best of 3 interleaved
   rounds) and checks the samples are equal.
2. **One process with 2 torch threads vs 2 processes with 1 thread each** (``extract_embeddings(processes=2)``,
   ``extract_embeddings.processes`` in ``params.yaml``) for resemblyzer's pretrained LSTM and for the study's
   x-vector and ECAPA architectures (random weights: cost does not depend on the values), over the same WAV
   segments, batch 16 as stage 03. It prints utterances/s, the ratio, and how far the embeddings of the two set-ups
   are apart (resemblyzer: identical; the study's trained convolutional encoders round differently with one
   thread, up to ~2e-6, though these random-weight ones may not). The
   two-process figure includes starting the processes (once per call, as stage 03 does once per model and
   split group).

Clips are vowel-like synthetic speech (a glottal pulse train through formant filters), 3-5 s, so resemblyzer's
voice-activity trimming keeps them as it keeps speech. No target: the script reports and exits 0.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_extract_processes.py [--utts 4000]`` (about 5 minutes
on 2 cores).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from scipy.signal import lfilter

from machine import cpu_name  # benchmarks/machine.py (scripts run with their folder on sys.path)
from nessa_lib.data.audio import load_audio, manifest_segments
from nessa_lib.data.synth.corpus import pcm16
from nessa_lib.encoders.config import EncoderConfig
from nessa_lib.encoders.export import _export, load_encoder
from nessa_lib.encoders.extract import extract_embeddings
from nessa_lib.encoders.modules import build_modules
from nessa_lib.encoders.resemblyzer import ResemblyzerEncoder

SR = 16000
UTTS_PER_SPEAKER = 12


def vowel(sec: float, f0: float, rng: np.random.Generator) -> np.ndarray:
    """Vowel-like signal: glottal pulses through three formant resonators, with a syllabic envelope."""
    n = int(round(sec * SR))
    t = np.arange(n) / SR
    phase = np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))) / SR
    y = (np.diff(np.floor(phase), prepend=0) > 0).astype(float) + 0.02 * rng.standard_normal(n)
    for fc, bw in [(rng.uniform(500, 800), 80), (rng.uniform(1000, 1500), 90), (rng.uniform(2300, 2900), 120)]:
        r, th = np.exp(-np.pi * bw / SR), 2 * np.pi * fc / SR
        y = lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], y)
    y = y * np.clip(np.sin(2 * np.pi * 2.5 * t + 0.3), 0, None) ** 0.5
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def make_corpus(root: Path, n_utts: int, seed: int = 0) -> dict:
    """One FLAC and one WAV per speaker (the same samples), and a manifest of segments for each."""
    rng = np.random.default_rng(seed)
    rows = {"flac": [], "wav": []}
    n_spk = -(-n_utts // UTTS_PER_SPEAKER)
    for s in range(n_spk):
        f0 = rng.uniform(90, 220)
        clips = [vowel(rng.uniform(3.0, 5.0), f0 * rng.uniform(0.95, 1.05), rng) for _ in range(UTTS_PER_SPEAKER)]
        x = pcm16(np.concatenate(clips))  # as the corpus writes it: the same 16-bit samples in both formats
        for fmt in rows:
            path = root / f"spk{s:04d}.{fmt}"
            sf.write(path, x, SR, format=fmt.upper(), subtype="PCM_16")
            pos = 0
            for u, c in enumerate(clips):
                rows[fmt].append({"utt_id": f"spk{s:04d}_{u:02d}", "speaker_id": f"spk{s:04d}", "path": str(path),
                                  "start": pos, "stop": pos + len(c), "duration_s": len(c) / SR})
                pos += len(c)
    return {fmt: pd.DataFrame(r).iloc[:n_utts] for fmt, r in rows.items()}


def decode_rate(df: pd.DataFrame) -> tuple[float, list]:
    t = time.perf_counter()
    out = [load_audio(p, target_sr=SR, min_dur_s=0.0, start=a, stop=b) for p, a, b in manifest_segments(df)]
    return len(df) / (time.perf_counter() - t), out


def random_encoder(root: Path, arch: str) -> object:
    """The study's recipe for ``arch`` (params.yaml's sizes) with random weights, exported and loaded as stage 03
    loads a trained encoder."""
    cfg = EncoderConfig(name=arch, architecture=arch, objective="softmax", emb_dim=128, n_mels=40, channels=128,
                        seed=0)
    torch.manual_seed(0)
    out = root / f"enc-{arch}"
    out.mkdir()
    _export(out, cfg, build_modules(cfg, n_speakers=2), history=[], summary={}, speakers=["a", "b"])
    return load_encoder(out)


def extraction(df: pd.DataFrame, encoder, processes: int) -> tuple[float, np.ndarray]:
    torch.set_num_threads(2)
    t = time.perf_counter()
    es = extract_embeddings(df, encoder, batch_size=16, progress=False, device="cpu", processes=processes)
    return len(df) / (time.perf_counter() - t), es.embeddings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utts", type=int, default=4000, help="utterances (segments) to decode and embed")
    a = parser.parse_args(argv)
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("note: run with OMP_NUM_THREADS=1, as the pipeline does (Makefile)", file=sys.stderr)
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; {a.utts} utterances of 3-5 s")
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        corpus = make_corpus(root, a.utts)
        rates = {"flac": [], "wav": []}
        for _ in range(3):
            for fmt in rates:
                r, waves = decode_rate(corpus[fmt])
                rates[fmt].append(r)
                if fmt == "flac":
                    flac_waves = waves
        same = all(np.array_equal(x, y) for x, y in zip(flac_waves, decode_rate(corpus["wav"])[1]))
        fl, wv = max(rates["flac"]), max(rates["wav"])
        print("\n1. decoding utterances as segments of one file per speaker (load_audio, best of 3)")
        print(f"   FLAC {fl:7.0f} utt/s   WAV {wv:7.0f} utt/s   WAV/FLAC {wv / fl:.2f}x   samples equal: {same}")

        print("\n2. extraction, batch 16: one process x 2 torch threads vs 2 processes x 1 thread")
        print(f"   {'encoder':12s} {'1 x 2 thr':>10s} {'2 x 1 thr':>10s} {'ratio':>6s}  max |difference|")
        encoders = {"resemblyzer": ResemblyzerEncoder(),
                    "xvector": random_encoder(root, "xvector"), "ecapa": random_encoder(root, "ecapa")}
        for name, enc in encoders.items():
            r1, e1 = extraction(corpus["wav"], enc, 1)
            r2, e2 = extraction(corpus["wav"], enc, 2)
            diff = float(np.abs(e1 - e2).max())
            print(f"   {name:12s} {r1:8.1f}/s {r2:8.1f}/s {r2 / r1:5.2f}x  {diff:.1e}"
                  + ("  (identical)" if diff == 0 else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
