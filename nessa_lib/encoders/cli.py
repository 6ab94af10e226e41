"""The command line of encoder training: ``python -m nessa_lib.encoders --manifest M --out DIR --config JSON``
(also under ``torchrun``, see :mod:`nessa_lib.encoders`)."""

from __future__ import annotations

import argparse
import json
import logging
import os

import torch

from nessa_lib.encoders.brain import train_encoder
from nessa_lib.encoders.config import DEFAULT_CONFIGS, EncoderConfig


def _parse_config_arg(text: str) -> dict:
    if text.lstrip().startswith("{"):
        return json.loads(text)
    if text in DEFAULT_CONFIGS:
        return dict(DEFAULT_CONFIGS[text])
    with open(text, encoding="utf-8") as f:
        return json.load(f)


def main(argv=None) -> int:
    """CLI: ``python -m nessa_lib.encoders --manifest M --out DIR --config JSON`` (also under ``torchrun``).

    ``--config`` is inline JSON, a JSON file, or the name of a default config; ``--set key=value`` (JSON values)
    overrides single keys.
    """
    ap = argparse.ArgumentParser(prog="python -m nessa_lib.encoders", description=main.__doc__)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", default="ecapa", help="inline JSON, JSON file, or one of "
                    + ", ".join(DEFAULT_CONFIGS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--device", default="auto", help="auto (CUDA when visible, else cpu), cpu or cuda[:N]")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"],
                    help="mixed precision on CUDA (default fp32)")
    ap.add_argument("--backend", default="gloo", choices=["gloo", "nccl", "mpi"])
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads per process")
    ap.add_argument("--shards", default=None, help="folder of WebDataset shards packed from the manifest "
                    "(python -m nessa_lib.encoders.shards); with --set data=shards")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    d = _parse_config_arg(args.config)
    for kv in args.set:
        k, _, v = kv.partition("=")
        try:
            d[k] = json.loads(v)
        except json.JSONDecodeError:
            d[k] = v
    if args.threads:
        torch.set_num_threads(args.threads)
    run_opts = {"distributed_backend": args.backend}
    device = args.device
    # Under torchrun each process trains on its own GPU, as the extraction CLI does ("cuda" alone would put every
    # rank on cuda:0: SpeechBrain takes the device from its run options).
    if device in ("auto", "cuda") and torch.cuda.is_available() and os.environ.get("LOCAL_RANK") is not None:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    summary = train_encoder(args.manifest, args.out, EncoderConfig.from_dict(d), progress=not args.no_progress,
                            run_opts=run_opts, device=device, precision=args.precision, shards=args.shards)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0
