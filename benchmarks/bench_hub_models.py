"""Benchmark: CPU extraction speed through ``nessa_lib.zoo.from_speechbrain`` versus SpeechBrain's own
``EncoderClassifier.encode_batch`` on the same padded batches, side by side in one run, 1 thread.

The model is a study encoder (default: the study's ECAPA configuration, random weights: cost does not depend on
their values) exported with ``nessa_lib.zoo.export_speechbrain`` to a temporary folder and loaded twice, offline:
by ``from_speechbrain`` and by ``EncoderClassifier.from_hparams(source=folder)``. The batches are what
``extract_embeddings`` builds in ``full`` mode: utterances of 1-4 s sorted by length, zero-padded, relative lengths.
Each round times every batch through both paths (interleaved, so drift in machine load hits both); the best
round of each counts. Also listed: the same encoder as ONNX (``export_onnx`` + ``from_wespeaker``: study front end,
onnxruntime, rows of different length run separately) and the study's own ``Encoder.embed``.

Target (issue 12): from_speechbrain within 10 % of encode_batch. The script reports the ratio; it asserts nothing.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_hub_models.py [--arch ecapa|xvector|resnet]``
(about 30 s for ECAPA).
"""

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from machine import cpu_name  # benchmarks/machine.py (scripts run with their folder on sys.path)

SR = 16000
ROUNDS = 5
N_BATCHES, BATCH = 6, 16


def batches(rng):
    """Padded batches as extract_embeddings makes them: sorted durations, zero padding, relative lengths."""
    durations = np.sort(rng.uniform(1.0, 4.0, N_BATCHES * BATCH))
    out = []
    for b in range(N_BATCHES):
        lens = (durations[b * BATCH:(b + 1) * BATCH] * SR).astype(int)
        wavs = np.zeros((BATCH, lens.max()), dtype=np.float32)
        for i, n in enumerate(lens):
            wavs[i, :n] = 0.1 * rng.standard_normal(n)
        out.append((torch.from_numpy(wavs), torch.tensor(lens / lens.max(), dtype=torch.float32)))
    return out


def study_encoder(root, arch):
    """A study encoder export of the default configuration for ``arch`` (random weights, no training)."""
    from nessa_lib.encoders.config import DEFAULT_CONFIGS, EncoderConfig
    from nessa_lib.encoders.export import _export
    from nessa_lib.encoders.modules import build_modules

    name = {"ecapa": "ecapa", "xvector": "xvector", "resnet": "resnet"}[arch]
    cfg = EncoderConfig.from_dict({**DEFAULT_CONFIGS[name], "objective": "supcon"})
    torch.manual_seed(0)
    out = os.path.join(root, name)
    os.makedirs(out)
    _export(Path(out), cfg, build_modules(cfg), [], {}, ["a", "b"])
    return out, cfg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="ecapa", choices=["ecapa", "xvector", "resnet"])
    ap.add_argument("--no-onnx", action="store_true", help="skip the ONNX line")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    torch.set_num_threads(1)
    import speechbrain
    from speechbrain.inference.speaker import EncoderClassifier

    from nessa_lib import zoo
    from nessa_lib.encoders.export import load_encoder

    logging.getLogger("speechbrain").setLevel(logging.WARNING)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cpu={cpu_name()} cores={os.cpu_count()} load={load:.2f} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
          f" torch={torch.__version__} threads={torch.get_num_threads()} speechbrain={speechbrain.__version__}")
    tmp = tempfile.mkdtemp(prefix="bench_hub_models_")
    try:
        model_dir, cfg = study_encoder(tmp, args.arch)
        folder = zoo.export_speechbrain(model_dir, os.path.join(tmp, "sb"))
        ours = zoo.from_speechbrain(folder)
        theirs = EncoderClassifier.from_hparams(source=str(folder))
        study = load_encoder(model_dir)
        data = batches(np.random.default_rng(0))
        audio_s = sum(float((lens * w.shape[1]).sum()) for w, lens in data) / SR
        print(f"model: study {args.arch} config (channels={cfg.channels}, emb_dim={cfg.emb_dim}, n_mels={cfg.n_mels}),"
              f" random weights, exported to a SpeechBrain folder; {N_BATCHES} batches x {BATCH} utterances of "
              f"1-4 s ({audio_s:.0f} s of audio, padded as extract_embeddings pads), best of {ROUNDS} interleaved "
              "rounds")

        def encode_batch(w, lens):
            with torch.no_grad():
                return theirs.encode_batch(w, lens)

        paths = {"SpeechBrain encode_batch (direct)": encode_batch,
                 "nessa_lib.zoo.from_speechbrain .embed": ours.embed,
                 "study Encoder.embed (load_encoder)": study.embed}
        if not args.no_onnx:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ws = zoo.from_wespeaker(zoo.export_onnx(model_dir, os.path.join(tmp, "m.onnx")))
            paths["from_wespeaker(export_onnx) .embed"] = ws.embed
        # Same embeddings first (a fast wrong path would be no result); the x-vector's pooling noise is seeded
        # inside embed, so compare it with encode_batch under the same seed.
        w, lens = data[0]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            ref = encode_batch(w, lens).squeeze(1)
        diff = float((ours.embed(w, lens) - ref).abs().max())
        for name in paths:  # warm-up: first-call allocations
            paths[name](w, lens)
        best = {k: np.inf for k in paths}
        for _ in range(ROUNDS):
            for name, fn in paths.items():
                t = time.perf_counter()
                for w, lens in data:
                    fn(w, lens)
                best[name] = min(best[name], time.perf_counter() - t)
        width = max(len(k) for k in paths)
        print(f"\n{'path':<{width}}  {'time s':>7}  {'RTF':>7}  {'x direct':>8}")
        base = best["SpeechBrain encode_batch (direct)"]
        for name, t in best.items():
            print(f"{name:<{width}}  {t:7.3f}  {t / audio_s:7.4f}  {t / base:8.3f}")
        ratio = best["nessa_lib.zoo.from_speechbrain .embed"] / base
        print(f"\nfrom_speechbrain / encode_batch time ratio: {ratio:.3f} (target <= 1.10: "
              f"{'met' if ratio <= 1.10 else 'NOT met'}); max abs embedding difference on batch 1: {diff:.1e}")
        if args.arch == "resnet":
            print("note: ResNet ignores relative lengths, so from_speechbrain embeds padded rows one by one at their "
                  "true length (encode_batch lets the padding in); the ratio then compares different work")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
