"""Training audio packed into WebDataset tar shards, for corpora on shared storage (VoxCeleb2 scale).

:func:`write_shards` decodes the utterances of a manifest once (segments cut, other sample rates resampled to
16 kHz, exactly the int16 samples the in-memory path would hold) and packs them, in a seeded random order, into
``shard-000000.tar`` ... of ``shard_size`` utterances each. Every utterance is two tar members with the same
key, the WebDataset convention (``<key>.wav``, 16-bit PCM, and ``<key>.json``, ``{"utt_id", "speaker_id"}``), so
``webdataset``, SpeechBrain's and WeSpeaker's shard readers can read them too. ``index.json`` lists the shards with
their utterance ids and the speakers' counts; ``skipped.csv`` the utterances that could not be decoded.

:class:`ShardCropStream` streams the shards in training (``EncoderConfig(data="shards")``): the shards are
permuted each epoch and split across DDP ranks (``torch.distributed`` when initialised) and DataLoader workers,
examples pass through a seeded shuffle buffer and each gets a random crop. Each rank yields exactly the number
of batches the epoch has (a reader that runs out of shards starts them again), so DDP ranks stay in step. A bad
member or a corrupt shard is reported (named) and skipped; the run goes on.

Command line::

    python -m nessa_lib.encoders.shards --manifest data/prepare_data/manifest.csv --out shards/ --shard-size 1000

Why plain ``tarfile`` and not the ``webdataset`` package or lhotse Shar: the format is a tar file with a naming
convention, written and read here in ~150 lines with the standard library; the package would add a dependency
for the same bytes, and Shar (lhotse's cut manifests) would bring lhotse's data model with it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
from pathlib import Path

import numpy as np
import torch

from nessa_lib.encoders.config import SAMPLE_RATE
from nessa_lib.encoders.crops import _crop_start, _to_int16, log_skipped_read

logger = logging.getLogger(__name__)

INDEX_FILE = "index.json"
FORMAT = "nessa-shards"
FORMAT_VERSION = 1


def _wav_bytes(x: np.ndarray) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime, info.mode, info.uid, info.gid = 0, 0o644, 0, 0  # same bytes for the same input
    tar.addfile(info, io.BytesIO(data))


def write_shards(manifest, out_dir, *, shard_size: int = 1000, seed: int = 0, split: str | None = "train",
                 progress: bool = True) -> dict:
    """Pack the utterances of a manifest into WebDataset tar shards plus ``index.json``.

    Parameters
    ----------
    manifest : str, os.PathLike or pandas.DataFrame
        Manifest (:mod:`nessa_lib.data.manifest`); segments (``start``/``stop``) are cut out.
    out_dir : str or os.PathLike
        Output folder (created; shards of an earlier run with the same names are replaced).
    shard_size : int
        Utterances per shard (the last one may hold fewer). Training needs at least as many shards as DDP
        ranks x DataLoader workers; VoxCeleb-scale packs use ~1,000 (about 100 MB of 3-s utterances).
    seed : int
        Seed of the utterance order (shuffled across shards, so every shard mixes speakers).
    split : str or None
        Pack only this manifest split (default 'train'); ``None``: every row.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        The index written to ``out_dir/index.json``: ``format``, ``version``, ``sample_rate``, ``shards``
        (``[{"name", "utt_ids"}]``), ``speakers`` (``{speaker: utterances}``), ``n_utts``, ``n_skipped``.

    Raises
    ------
    ValueError
        ``shard_size`` < 1, or no utterance to pack.

    Examples
    --------
    >>> import tempfile, pandas as pd, soundfile as sf
    >>> with tempfile.TemporaryDirectory() as d:
    ...     sf.write(f"{d}/a.wav", np.full(8000, 0.1, dtype=np.float32), SAMPLE_RATE)
    ...     m = pd.DataFrame({"utt_id": ["u1", "u2"], "speaker_id": ["s", "s"], "path": [f"{d}/a.wav"] * 2,
    ...                       "duration_s": [0.5, 0.5], "split": ["train", "train"]})
    ...     index = write_shards(m, f"{d}/shards", shard_size=1, progress=False)
    ...     sorted(os.listdir(f"{d}/shards")), index["n_utts"]
    (['index.json', 'shard-000000.tar', 'shard-000001.tar', 'skipped.csv'], 2)
    """
    from tqdm.auto import tqdm

    from nessa_lib.data.audio import AudioError, load_audio, manifest_segments, segment_label
    from nessa_lib.data.manifest import read_manifest
    from nessa_lib.io import atomic_write_text

    if isinstance(shard_size, bool) or not isinstance(shard_size, (int, np.integer)) or shard_size < 1:
        raise ValueError(f"shard_size must be an integer >= 1, got {shard_size!r}")
    df = read_manifest(manifest) if isinstance(manifest, (str, os.PathLike)) else manifest
    if split is not None and "split" in df.columns:
        df = df[df["split"] == split]
    if len(df) == 0:
        raise ValueError(f"manifest {manifest if isinstance(manifest, (str, os.PathLike)) else '<DataFrame>'}: "
                         f"no utterance to pack (split={split!r})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(df))
    segments = manifest_segments(df)
    utt_ids = df["utt_id"].astype(str).to_numpy()
    spk_ids = df["speaker_id"].astype(str).to_numpy()
    skipped = out / "skipped.csv"
    skipped.write_text("path,reason,message\n", encoding="utf-8")
    shards, speakers, tar, members, n_ok = [], {}, None, [], 0

    def close():
        tar.close()
        os.replace(out / (shards[-1]["name"] + ".part"), out / shards[-1]["name"])

    for i in tqdm(order, desc="pack shards", unit="utt", disable=not progress):
        p, a, b = segments[i]
        try:
            x = _to_int16(load_audio(p, target_sr=SAMPLE_RATE, min_dur_s=0.1, start=a, stop=b))
        except AudioError as e:
            log_skipped_read(skipped, segment_label(p, a, b), e.reason, str(e))
            continue
        if tar is None or len(members) == shard_size:
            if tar is not None:
                close()
            shards.append({"name": f"shard-{len(shards):06d}.tar", "utt_ids": []})
            members = shards[-1]["utt_ids"]
            tar = tarfile.open(out / (shards[-1]["name"] + ".part"), "w", format=tarfile.USTAR_FORMAT)
        key = f"u{n_ok:09d}"  # keys without dots or slashes; the utterance id is in the json member
        _add_member(tar, key + ".wav", _wav_bytes(x))
        _add_member(tar, key + ".json", json.dumps({"utt_id": utt_ids[i], "speaker_id": spk_ids[i]}).encode())
        members.append(str(utt_ids[i]))
        speakers[str(spk_ids[i])] = speakers.get(str(spk_ids[i]), 0) + 1
        n_ok += 1
    if tar is not None:
        close()
    if n_ok == 0:
        raise ValueError(f"no utterance of the manifest could be decoded (see {skipped})")
    index = {"format": FORMAT, "version": FORMAT_VERSION, "sample_rate": SAMPLE_RATE, "shards": shards,
             "speakers": dict(sorted(speakers.items())), "n_utts": n_ok, "n_skipped": int(len(df) - n_ok)}
    atomic_write_text(out / INDEX_FILE, json.dumps(index) + "\n")
    return index


def read_index(shards) -> dict:
    """The ``index.json`` of a shard folder (or the file itself), checked, with ``root`` (its folder) added.

    Raises
    ------
    ValueError
        The file is missing, not JSON, or not a shard index at 16 kHz; the message names it.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     read_index(d)
    Traceback (most recent call last):
    ...
    ValueError: .../index.json: not a readable shard index ([Errno 2] No such file or directory: ...); write one ...
    """
    path = Path(shards)
    if path.is_dir():
        path = path / INDEX_FILE
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable shard index ({e}); write one with "
                         "python -m nessa_lib.encoders.shards") from e
    if not isinstance(index, dict) or index.get("format") != FORMAT or index.get("sample_rate") != SAMPLE_RATE:
        raise ValueError(f"{path}: not a {FORMAT} index at {SAMPLE_RATE} Hz")
    index["root"] = str(path.parent)
    return index


def assign_shards(n_shards: int, *, seed: int, epoch: int, rank: int, world: int, worker: int,
                  workers: int) -> list[int]:
    """The shards one reader (DDP rank x DataLoader worker) streams in an epoch.

    The shards are permuted with ``(seed, epoch)`` (the same on every rank) and dealt out round-robin to the
    ``world * workers`` readers, so every shard is read by exactly one reader per epoch.

    Examples
    --------
    >>> parts = [assign_shards(5, seed=0, epoch=1, rank=r, world=2, worker=w, workers=2) for r in (0, 1)
    ...          for w in (0, 1)]
    >>> sorted(i for p in parts for i in p)
    [0, 1, 2, 3, 4]
    """
    perm = np.random.default_rng([seed, epoch, 2]).permutation(n_shards)
    slot, slots = rank * workers + worker, world * workers
    return [int(i) for i in perm[slot::slots]]


class ShardCropStream(torch.utils.data.IterableDataset):
    """Random crops of the utterances in WebDataset shards (:func:`write_shards`), streamed.

    Yields ``(wav float32 tensor, label)`` like :class:`~nessa_lib.encoders.data.CropDataset`. Only the
    utterances of ``labels`` are used (the training plan's; the rest, e.g. validation utterances, are passed
    over). Each reader (DDP rank x DataLoader worker, see :func:`assign_shards`) streams its shards through a
    shuffle buffer seeded with ``(seed, epoch, rank, worker)``; an utterance's crop depends on ``(seed, epoch,
    pass, its position in the index)`` only.

    Parameters
    ----------
    shards : str or os.PathLike
        Shard folder (or its ``index.json``).
    labels : dict
        ``{utt_id: speaker class index}`` of the training utterances.
    crop_samples : int
        Crop length.
    seed : int
        Seed of shard order, shuffle buffer and crops.
    shuffle_buffer : int
        Examples (already cropped) held in each reader's buffer.
    skip_log : path, optional
        CSV bad members and shards are reported to (:func:`~nessa_lib.encoders.crops.log_skipped_read`).

    Call :meth:`set_epoch` each epoch and :meth:`set_batches` with the rank's batches per epoch and the batch
    size; without it one pass over the reader's shards is streamed (``len`` is then the whole set).

    Examples
    --------
    >>> import tempfile, pandas as pd, soundfile as sf
    >>> with tempfile.TemporaryDirectory() as d:
    ...     sf.write(f"{d}/a.wav", np.full(8000, 0.1, dtype=np.float32), SAMPLE_RATE)
    ...     m = pd.DataFrame({"utt_id": ["u1", "u2"], "speaker_id": ["s", "t"], "path": [f"{d}/a.wav"] * 2,
    ...                       "duration_s": [0.5, 0.5], "split": ["train", "train"]})
    ...     _ = write_shards(m, d, shard_size=1, progress=False)
    ...     sorted((len(w), y) for w, y in ShardCropStream(d, {"u1": 0, "u2": 1}, 4000))
    [(4000, 0), (4000, 1)]
    """

    data_path = "shards"

    def __init__(self, shards, labels: dict, crop_samples: int, *, seed: int = 0, shuffle_buffer: int = 1000,
                 skip_log=None):
        index = read_index(shards)
        self.root = Path(index["root"])
        self.names = [s["name"] for s in index["shards"]]
        # Per index position (= the member key's number): utterance id and label (-1: not trained on). NumPy
        # arrays, not dicts: forked DataLoader workers then share these pages instead of copying them.
        ids = [u for s in index["shards"] for u in s["utt_ids"]]
        self.utt_at = np.array(ids, dtype=str)
        self.label_at = np.array([labels.get(u, -1) for u in ids], dtype=np.int64)
        bounds = np.cumsum([0] + [len(s["utt_ids"]) for s in index["shards"]])
        counts = [int((self.label_at[a:b] >= 0).sum()) for a, b in zip(bounds[:-1], bounds[1:])]
        present = set(ids)
        missing = [u for u in labels if u not in present]
        del ids, present
        if len(missing) == len(labels):
            raise ValueError(f"{self.root}: none of the {len(labels)} training utterances is in the shards "
                             f"(e.g. {missing[:3]}); were they packed from this manifest?")
        if missing:
            logger.warning("%s: %d of %d training utterances are not in the shards (e.g. %s); training without them",
                           self.root, len(missing), len(labels), missing[:3])
        self.shard_counts = np.asarray(counts, dtype=np.int64)
        self.labels = np.sort(self.label_at[self.label_at >= 0])
        self.n_utts = len(self.labels)  # training utterances found in the shards
        self.crop = int(crop_samples)
        self.seed, self.epoch = int(seed), 0
        self.buffer = int(shuffle_buffer)
        self.skip_log = None if skip_log is None else os.fspath(skip_log)
        self.batches, self.batch_size = None, None
        self.with_ids = False  # True: yield (wav, label, utt_id) (tests, audits)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_batches(self, batches: int, batch_size: int) -> None:
        """Make each rank yield exactly ``batches`` batches of ``batch_size`` per epoch (split over workers)."""
        self.batches, self.batch_size = int(batches), int(batch_size)

    def __len__(self):
        if self.batches is None:
            return self.n_utts
        return self.batches * self.batch_size

    @staticmethod
    def _reader():
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        return rank, world, worker, workers

    def _examples(self, shard_ids, pass_no: int):
        """Decoded, cropped examples of the given shards, in file order; bad members/shards reported."""
        import soundfile as sf

        for sid in shard_ids:
            path = self.root / self.names[sid]
            pending: dict = {}
            try:
                with tarfile.open(path, "r|") as tar:
                    for m in tar:
                        if not m.isfile():
                            continue
                        key, _, ext = m.name.rpartition("/")[2].partition(".")
                        data = tar.extractfile(m).read()
                        if pending and key not in pending:
                            yield from self._example(path, pending, pass_no, sf)
                            pending = {}
                        pending[key] = pending.get(key, {})
                        pending[key][ext] = data
                    if pending:
                        yield from self._example(path, pending, pass_no, sf)
            except (tarfile.TarError, OSError, EOFError) as e:
                log_skipped_read(self.skip_log, str(path), "bad_shard", f"{path}: shard unreadable from here on ({e})")

    def _example(self, path, pending: dict, pass_no: int, sf):
        (key, parts), = pending.items()
        where = f"{path}:{key}"
        try:
            meta = json.loads(parts["json"])
            utt = str(meta["utt_id"])
            pos = int(key[1:]) if key[:1] == "u" and key[1:].isdigit() else -1
            if not 0 <= pos < len(self.utt_at) or self.utt_at[pos] != utt:
                raise ValueError(f"key {key!r} and utt_id {utt!r} do not match the shard index")
        except (KeyError, ValueError, TypeError) as e:
            log_skipped_read(self.skip_log, where, "bad_member", f"{where}: missing or invalid .json member ({e!r})")
            return
        label = int(self.label_at[pos])
        if label < 0:
            return
        try:
            x, sr = sf.read(io.BytesIO(parts["wav"]), dtype="int16")
            if sr != SAMPLE_RATE or x.ndim != 1 or len(x) == 0:
                raise ValueError(f"expected mono {SAMPLE_RATE} Hz, got {x.shape} at {sr} Hz")
        except (KeyError, ValueError, RuntimeError, sf.SoundFileError) as e:
            log_skipped_read(self.skip_log, where, "bad_member", f"{where} ({utt}): undecodable .wav member ({e!r})")
            return
        seed = int(np.random.SeedSequence([self.seed, self.epoch, pass_no, pos]).generate_state(1)[0])
        start = _crop_start(len(x), self.crop, seed)
        x = x[start:start + self.crop]
        wav = torch.from_numpy(x.astype(np.float32) / 32768.0)
        yield (wav, label, utt) if self.with_ids else (wav, label)

    def _quota(self, worker: int, workers: int):
        if self.batches is None:
            return None
        return (self.batches // workers + (worker < self.batches % workers)) * self.batch_size

    def __iter__(self):
        rank, world, worker, workers = self._reader()
        mine = assign_shards(len(self.names), seed=self.seed, epoch=self.epoch, rank=rank, world=world,
                             worker=worker, workers=workers)
        quota = self._quota(worker, workers)
        if quota == 0:
            return
        if not mine or self.shard_counts[mine].sum() == 0:
            raise RuntimeError(f"{self.root}: reader {worker} of rank {rank} got no training utterance "
                               f"({len(self.names)} shards for {world} rank(s) x {workers} worker(s)); "
                               "pack smaller shards (--shard-size) or use fewer data_workers")
        rng = np.random.default_rng([self.seed, self.epoch, rank, worker])
        buf, sent, pass_no = [], 0, 0
        while True:
            seen = 0
            for ex in self._examples(mine, pass_no):
                seen += 1
                if len(buf) < self.buffer:
                    buf.append(ex)
                    continue
                j = int(rng.integers(len(buf)))
                buf[j], ex = ex, buf[j]
                yield ex
                sent += 1
                if quota is not None and sent >= quota:
                    return
            pass_no += 1
            if quota is None or seen == 0:  # one pass asked for, or nothing readable left in these shards
                break
            if quota - sent <= len(buf):
                break
        for j in rng.permutation(len(buf)):
            if quota is not None and sent >= quota:
                return
            yield buf[j]
            sent += 1


def main(argv=None) -> int:
    """CLI: ``python -m nessa_lib.encoders.shards --manifest M --out DIR [--shard-size N] [--seed S]``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m nessa_lib.encoders.shards", description=main.__doc__)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="train", help="manifest split to pack ('' = every row)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    index = write_shards(args.manifest, args.out, shard_size=args.shard_size, seed=args.seed,
                         split=args.split or None, progress=not args.no_progress)
    print(json.dumps({k: index[k] for k in ("n_utts", "n_skipped")} | {"n_shards": len(index["shards"]),
                                                                         "n_speakers": len(index["speakers"])}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
