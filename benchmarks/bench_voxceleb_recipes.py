"""Benchmark: what the VoxCeleb presets' encoders cost to train on this machine's CPU, and in FLOPs anywhere.

For every encoder of ``presets/voxceleb2-train.yaml`` (read from the preset itself: architecture, width, 80 mels,
2 s crops, objective; ``voxceleb1-train.yaml`` has the same encoders) this times full training steps as the
encoder stage runs them: Fbank + sentence mean normalisation + network + classifier head, AAM-softmax (or
softmax) loss, backward, Adam step, on random audio and labels (cost does not depend on the values). Steps are
timed at a small batch (``--batch``, default 8) after one warm-up step, best of ``--steps``; the time per crop is
scaled linearly to the preset's batch (128), which holds for these convolutional networks at batch >= 4 within
the noise of a shared machine (checked by hand at batch 4/8/16). From that it prints, for 1 and 2 torch threads,
steps/s at the preset's batch and the wall time of one epoch and of the preset's 20 epochs on VoxCeleb1 dev
(1,111 training speakers) and VoxCeleb2 dev (5,794), i.e. the speakers the presets train on, minus the
validation utterances.

It also counts the floating-point operations of one training step at the preset's batch with
``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions, forward and backward;
element-wise operations are not counted), a device-independent figure: divide by the sustained FLOP/s of a GPU
to estimate its time. **No GPU was available here: no GPU time is measured.** No target; the script reports and
exits 0.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_voxceleb_recipes.py`` (about 3 minutes on 2 cores).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from machine import cpu_name  # benchmarks/machine.py (scripts run with their folder on sys.path)
from nessa_lib import paths
from nessa_lib.encoders.config import EncoderConfig
from nessa_lib.encoders.modules import _embed_batch, _n_params, build_modules
from nessa_lib.pipeline.presets import apply_preset
from nessa_lib.stages import train_encoder as stage02

PRESET = "presets/voxceleb2-train.yaml"
SR = 16000
# Dataset sizes (VoxCeleb papers, shared/scale-notes.md): development speakers and utterances.
DATASETS = {"VoxCeleb1 dev": (1211, 148_642, 1111), "VoxCeleb2 dev": (5994, 1_092_009, 5794)}  # + preset's n_train


def preset_configs(preset: str = PRESET) -> dict:
    """``name -> EncoderConfig`` of every encoder of ``preset`` merged onto params.yaml (as stage 02 builds them)."""
    root = paths.repo_root()
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(root / "params.yaml", Path(d) / "params.yaml")
        shutil.copy(root / preset, Path(d) / "preset.yaml")
        file = apply_preset("preset.yaml", out="params.yaml", root=d)
        section = stage02.load(file, root=d)
        return {name: EncoderConfig.from_dict(stage02.encoder_spec(section, name)) for name in section.encoders}


def crops_per_epoch(cfg: EncoderConfig, n_utts: int, n_dev: int, n_train: int) -> int:
    """Training crops of one epoch: the training speakers' share of the utterances, less the validation ones."""
    return int(n_utts * n_train / n_dev) - cfg.valid_utts_per_speaker * n_train


class Step:
    """One training step of the encoder stage (forward, loss, backward, Adam) on a fixed random batch."""

    def __init__(self, cfg: EncoderConfig, batch: int, n_speakers: int):
        from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper

        torch.manual_seed(0)
        self.mods = build_modules(cfg, n_speakers=n_speakers)
        for m in self.mods.values():
            m.train()
        trainable = [p for k in ("embedding_model", "classifier") for p in self.mods[k].parameters()]
        self.opt = torch.optim.Adam(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
        margin = AdditiveAngularMargin(margin=cfg.aam_margin, scale=cfg.aam_scale) if cfg.objective == "aam" \
            else torch.nn.Identity()
        self.loss_fn = LogSoftmaxWrapper(margin)
        self.wavs = 0.1 * torch.randn(batch, int(cfg.crop_s * SR))
        self.lens = torch.ones(batch)
        self.labels = torch.randint(0, n_speakers, (batch, 1))
        self.n_params = _n_params(self.mods["embedding_model"])

    def __call__(self) -> float:
        t0 = time.perf_counter()
        self.opt.zero_grad()
        emb = _embed_batch(self.mods, self.wavs, self.lens)
        head = self.mods["classifier"](emb.unsqueeze(1)).reshape(len(emb), 1, -1)
        self.loss_fn(head, self.labels).backward()
        self.opt.step()
        return time.perf_counter() - t0


def step_flops(cfg: EncoderConfig, batch: int, n_speakers: int) -> float:
    """Counted FLOPs of one training step at ``batch`` (measured at batch 2 and scaled: the count is linear)."""
    from torch.utils.flop_counter import FlopCounterMode

    step = Step(cfg, 2, n_speakers)
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() * batch / 2


def hms(seconds: float) -> str:
    """Seconds as a short human duration.

    >>> hms(59), hms(3600 * 5.5), hms(86400 * 3)
    ('59 s', '5.5 h', '3.0 days')
    """
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=8, help="batch the steps are timed at (default %(default)s)")
    ap.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up (best is kept)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--models", nargs="+", default=None, help="encoder names of the preset (default: all)")
    args = ap.parse_args(argv)

    cfgs = preset_configs()
    names = args.models or list(cfgs)
    n_spk = DATASETS["VoxCeleb2 dev"][2]
    print(f"{cpu_name()}, {os.cpu_count()} cores visible, torch {torch.__version__}, load average "
          f"{os.getloadavg()[0]:.1f} at start; {PRESET}; timed at batch {args.batch}, scaled to the preset's batch")
    rows = []
    for name in names:
        cfg = cfgs[name]
        flops = step_flops(cfg, cfg.batch_size, n_spk)
        for threads in args.threads:
            torch.set_num_threads(threads)
            step = Step(cfg, args.batch, n_spk)
            step()  # warm-up
            best = min(step() for _ in range(args.steps))
            per_crop = best / args.batch
            rows.append((name, threads, cfg, step.n_params, per_crop, flops))
            print(f"  {name}: {threads} thread(s), {best:.2f} s per step of {args.batch} crops", flush=True)
    print()
    head = (f"{'encoder':<11} {'params':>7} {'thr':>3} {'steps/s':>8} {'TFLOP/step':>10}  "
            + "  ".join(f"{d + ' epoch':>18} {'20 epochs':>10}" for d in DATASETS))
    print(head)
    for name, threads, cfg, n_params, per_crop, flops in rows:
        step_s = per_crop * cfg.batch_size
        cols = []
        for n_dev, n_utts, n_train in DATASETS.values():
            crops = crops_per_epoch(cfg, n_utts, n_dev, n_train)
            epoch_s = (crops // cfg.batch_size) * step_s
            cols.append(f"{hms(epoch_s):>18} {hms(epoch_s * cfg.epochs):>10}")
        print(f"{name:<11} {n_params / 1e6:>6.1f}M {threads:>3} {1 / step_s:>8.4f} {flops / 1e12:>10.2f}  "
              + "  ".join(cols))
    print(f"\nbatch {cfgs[names[0]].batch_size}, crop {cfgs[names[0]].crop_s} s, {cfgs[names[0]].epochs} epochs; "
          "steps per epoch: " + ", ".join(
              f"{d} {crops_per_epoch(cfgs[names[0]], u, n, t) // cfgs[names[0]].batch_size:,}"
              for d, (n, u, t) in DATASETS.items()))
    print("TFLOP/step: counted matmul/convolution FLOPs of one training step (forward + backward) at that batch.")
    print("No GPU here: GPU time is not measured.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
