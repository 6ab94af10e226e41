"""Embedding extraction from the command line, also split across ``torchrun`` processes::

    python -m nessa_lib.encoders.extract_cli --manifest data/prepare_data/manifest.csv --split eval \\
        --encoder models/train_encoder/ecapa --out ecapa_eval.npz
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 -m nessa_lib.encoders.extract_cli \\
        --manifest data/prepare_data/manifest.csv --split eval --encoder models/train_encoder/ecapa --out ecapa_eval.npz

Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) each rank embeds every ``WORLD_SIZE``-th batch of the batches a
single process would form (:func:`~nessa_lib.encoders.extract.extract_embeddings` ``shard``), writes its part next
to ``--out``, and rank 0 merges the parts into one embedding file in manifest order: the same utterances, ids and
order as a single-process run, and the same batches, so the same embeddings up to floating-point differences between
devices. Bad utterances are skipped and listed in ``--skipped`` (default ``<out>.skipped.csv``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def _part(out: Path, rank: int, suffix: str) -> Path:
    return out.with_name(f"{out.stem}.rank{rank}{suffix}")


def extract_file(manifest_df, encoder, out, *, skipped_csv=None, rank: int = 0, world: int = 1, barrier=None,
                 **kwargs):
    """Embed ``manifest_df`` into the embedding file ``out``, this process's share when ``world > 1``.

    Parameters
    ----------
    manifest_df : pandas.DataFrame
        Manifest rows to embed (see :func:`~nessa_lib.encoders.extract.extract_embeddings`).
    encoder : object
        Encoder following the extraction protocol.
    out : str or os.PathLike
        The ``.npz`` embedding file (:func:`nessa_lib.embeddings.save_embeddings`), written by rank 0.
    skipped_csv : str or os.PathLike, optional
        Where rank 0 writes the skipped utterances (:func:`~nessa_lib.encoders.extract.write_skipped_utterances`);
        default ``<out stem>.skipped.csv``.
    rank, world : int
        This process's rank and the number of processes.
    barrier : callable, optional
        Waits for every rank (``torch.distributed.barrier``); needed when ``world > 1``.
    **kwargs
        Passed to :func:`~nessa_lib.encoders.extract.extract_embeddings` (``mode``, ``batch_size``,
        ``workers``, ``device`` ...).

    Returns
    -------
    EmbeddingSet or None
        The merged set on rank 0, ``None`` on the other ranks.

    Examples
    --------
    >>> import os, tempfile, numpy as np, pandas as pd, soundfile as sf, torch
    >>> class Mean:
    ...     model_id, sample_rate, min_samples, emb_dim = "mean@0", 16000, 160, 1
    ...     def embed(self, wavs, lengths):
    ...         return wavs.mean(1, keepdim=True)
    >>> d = tempfile.mkdtemp()
    >>> sf.write(os.path.join(d, "a.wav"), 0.1 * np.ones(16000), 16000)
    >>> df = pd.DataFrame({"utt_id": ["a"], "speaker_id": ["s"], "path": [os.path.join(d, "a.wav")]})
    >>> extract_file(df, Mean(), os.path.join(d, "e.npz"), progress=False).utt_ids.tolist()
    ['a']
    """
    import numpy as np

    from nessa_lib.embeddings import EmbeddingSet, save_embeddings
    from nessa_lib.encoders.extract import extract_embeddings, merge_shards, write_skipped_utterances

    out = Path(out)
    skipped_csv = Path(skipped_csv) if skipped_csv else out.with_name(f"{out.stem}.skipped.csv")
    if world > 1 and barrier is None:
        raise ValueError("extract_file: world > 1 needs a barrier (torch.distributed.barrier)")
    skipped: list = []
    mine = extract_embeddings(manifest_df, encoder, skipped=skipped, shard=(rank, world) if world > 1 else None,
                              **kwargs)
    if world == 1:
        save_embeddings(out, mine)
        write_skipped_utterances(skipped, skipped_csv)
        return mine
    # Parts go through files (plain npz, no pickle): no gathering of strings over the process group.
    np.savez(_part(out, rank, ".npz"), embeddings=mine.embeddings, utt_ids=np.asarray(mine.utt_ids, dtype=str),
             speaker_ids=np.asarray(mine.speaker_ids, dtype=str))
    _part(out, rank, ".skipped.json").write_text(json.dumps(skipped), encoding="utf-8")
    barrier()
    merged = None
    if rank == 0:
        parts = []
        for r in range(world):
            with np.load(_part(out, r, ".npz"), allow_pickle=False) as z:
                parts.append(EmbeddingSet(z["embeddings"].reshape(-1, mine.dim), z["utt_ids"].astype(str),
                                          z["speaker_ids"].astype(str), mine.model_id))
        bad = [json.loads(_part(out, r, ".skipped.json").read_text()) for r in range(world)]
        merged, bad = merge_shards(parts, manifest_df, bad)
        save_embeddings(out, merged)
        write_skipped_utterances(bad, skipped_csv)
    barrier()  # every rank's parts are read before any is deleted
    _part(out, rank, ".npz").unlink()
    _part(out, rank, ".skipped.json").unlink()
    return merged


def main(argv=None) -> int:
    """CLI: ``python -m nessa_lib.encoders.extract_cli --manifest M --encoder DIR --out OUT.npz`` (also under
    ``torchrun``, which splits the manifest's batches across its processes).
    """
    ap = argparse.ArgumentParser(prog="python -m nessa_lib.encoders.extract_cli", description=main.__doc__)
    ap.add_argument("--manifest", required=True, help="manifest CSV (nessa_lib.data.manifest)")
    ap.add_argument("--encoder", required=True, help="encoder folder (trained export or pretrained descriptor)")
    ap.add_argument("--out", required=True, help="embedding file to write (.npz)")
    ap.add_argument("--split", default="", help="embed only this manifest split (default: every row)")
    ap.add_argument("--mode", default="full", choices=["full", "crop"])
    ap.add_argument("--crop-s", type=float, default=3.0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader processes decoding audio, per rank")
    ap.add_argument("--device", default="auto", help="auto (cuda:<LOCAL_RANK> when a GPU is visible), cpu, cuda[:N]")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--skipped", default=None, help="CSV of skipped utterances (default <out stem>.skipped.csv)")
    ap.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads per process")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from nessa_lib.data.manifest import read_manifest
    from nessa_lib.encoders import pretrained

    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    device = args.device
    barrier = None
    if world > 1:
        torch.distributed.init_process_group(backend=args.backend)
        barrier = torch.distributed.barrier
        if device == "auto" and torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    df = read_manifest(args.manifest)
    if args.split:
        df = df[df.split == args.split].reset_index(drop=True)
        if df.empty:
            raise SystemExit(f"{args.manifest}: no utterance in split {args.split!r}")
    encoder = pretrained.load(args.encoder)
    try:
        res = extract_file(df, encoder, args.out, skipped_csv=args.skipped, rank=rank, world=world, barrier=barrier,
                           mode=args.mode, crop_s=args.crop_s, batch_size=args.batch_size, workers=args.workers,
                           device=device, precision=args.precision, progress=not args.no_progress and rank == 0)
    finally:
        if world > 1:
            torch.distributed.destroy_process_group()
    if rank == 0:
        print(json.dumps({"out": str(args.out), "n": int(len(res.utt_ids)), "model_id": res.model_id,
                          "world_size": world}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
