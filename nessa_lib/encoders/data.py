"""Training data of an encoder: the speaker subset, seeded random crops of its utterances (decoded into memory, or
read window by window from the files by DataLoader workers), the batch samplers (shuffled crops for
classification, P speakers x K utterances for contrastive training), and the loaders' settings
(:func:`training_loaders`): a recipe's data preparation. Sharded archives: :mod:`.shards`; what every path shares:
:mod:`.crops`."""

from __future__ import annotations

import dataclasses
import logging
import math
import os

import numpy as np
import torch

from nessa_lib.batches import speaker_batches, utterances_by_speaker
from nessa_lib.encoders.config import SAMPLE_RATE, EncoderConfig
from nessa_lib.encoders.crops import _crop_start, _to_int16, log_skipped_read

logger = logging.getLogger(__name__)


def select_speakers(speakers, n: int | None, *, seed: int, offset: int = 0) -> list:
    """Deterministic speaker subset: ``n`` consecutive speakers from ``offset`` in a seeded permutation.

    Parameters
    ----------
    speakers : iterable of str
        Candidate speakers (order and duplicates do not matter: they are de-duplicated and sorted first).
    n : int or None
        Subset size; ``None`` takes all speakers from ``offset`` on.
    seed : int
        Seed of the permutation.
    offset : int
        Start position in the permutation; the window wraps around, so offsets ``0`` and ``n`` give disjoint
        subsets when ``2n`` speakers exist.

    Examples
    --------
    >>> spk = [f"s{i}" for i in range(6)]
    >>> a, b = select_speakers(spk, 3, seed=0), select_speakers(spk, 3, seed=0, offset=3)
    >>> len(a), set(a).isdisjoint(b), select_speakers(spk, 3, seed=0) == a
    (3, True, True)
    """
    uniq = sorted({str(s) for s in speakers})
    total = len(uniq)
    if n is None:
        n = total - offset
    if n > total:
        raise ValueError(f"asked for {n} training speakers but only {total} are available")
    if n < 1:
        raise ValueError(f"speaker subset is empty (n={n}, offset={offset}, {total} speakers available)")
    perm = np.random.default_rng(seed).permutation(total)
    idx = [(offset + i) % total for i in range(n)]
    return [uniq[perm[i]] for i in idx]


def _load_int16(segments, progress: bool) -> list:
    """Decode every utterance once (FLAC decoding each epoch would dominate a CPU run); int16 halves the memory.

    ``segments`` are ``(path, start, stop)`` triples from :func:`nessa_lib.data.audio.manifest_segments`.
    """
    from tqdm.auto import tqdm

    from nessa_lib.data.audio import load_audio

    out = []
    for p, a, b in tqdm(segments, desc="load audio", unit="utt", disable=not progress):
        x = load_audio(p, target_sr=SAMPLE_RATE, min_dur_s=0.1, start=a, stop=b)
        out.append(_to_int16(x))
    return out


class CropDataset(torch.utils.data.Dataset):
    """Fixed-length crops of preloaded int16 waveforms.

    Items are addressed by ``(index, crop_seed)`` pairs: the sampler decides both which utterance and where to
    crop it, so crops are reproducible and independent of DataLoader workers. A plain integer index gives the
    crop at the start of the utterance (validation).

    Parameters
    ----------
    audio : list of numpy.ndarray (int16)
        One waveform per utterance.
    labels : array_like of int
        Speaker class index of each utterance.
    crop_samples : int
        Crop length; shorter utterances are returned whole and padded by the collate function.

    Examples
    --------
    >>> ds = CropDataset([np.arange(100, dtype=np.int16)], [0], crop_samples=10)
    >>> wav, label = ds[(0, 123)]
    >>> wav.shape, label, ds[0][0][:2].tolist()
    (torch.Size([10]), 0, [0.0, 3.0517578125e-05])
    """

    data_path = "memory"

    def __init__(self, audio, labels, crop_samples: int):
        self.audio = audio
        self.labels = np.asarray(labels, dtype=np.int64)
        self.crop = int(crop_samples)

    def __len__(self):
        return len(self.audio)

    def __getitem__(self, item):
        if isinstance(item, (tuple, list)):
            idx, crop_seed = int(item[0]), int(item[1])
        else:
            idx, crop_seed = int(item), None
        x = self.audio[idx]
        if len(x) > self.crop:
            # Validation items (no crop seed) take the first crop: no generator needed for them.
            start = _crop_start(len(x), self.crop, crop_seed)
            x = x[start:start + self.crop]
        wav = torch.from_numpy(x.astype(np.float32) / 32768.0)
        return wav, int(self.labels[idx])


def collate_crops(batch):
    """Pad a list of ``(wav, label)`` to ``(wavs (B, T), lens (B,) relative, labels (B,))``.

    ``None`` items (reads the streaming datasets skipped, see :class:`StreamCropDataset`) are left out.

    Examples
    --------
    >>> w, l, y = collate_crops([(torch.ones(4), 0), None, (torch.ones(2), 1)])
    >>> w.shape, l.tolist(), y.tolist()
    (torch.Size([2, 4]), [1.0, 0.5], [0, 1])
    """
    batch = [b for b in batch if b is not None]
    if not batch:
        raise RuntimeError("every read of a training batch failed (see the skipped-read warnings above)")
    n = max(len(w) for w, _ in batch)
    wavs = torch.zeros(len(batch), n)
    for i, (w, _) in enumerate(batch):
        wavs[i, : len(w)] = w
    lens = torch.tensor([len(w) / n for w, _ in batch], dtype=torch.float32)
    labels = torch.tensor([y for _, y in batch], dtype=torch.long)
    return wavs, lens, labels


def _crop_seed(seed: int, epoch: int, pos: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, pos]).generate_state(1)[0])


class CropSampler(torch.utils.data.Sampler):
    """Every utterance once per epoch in a seeded random order, each with its own crop seed.

    Examples
    --------
    >>> s = CropSampler(4, seed=0)
    >>> s.set_epoch(1)
    >>> sorted(i for i, _ in s), list(s) == list(s)
    ([0, 1, 2, 3], True)
    """

    def __init__(self, n_items: int, seed: int):
        self.n = int(n_items)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self):
        return self.n

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        return iter([(int(i), _crop_seed(self.seed, self.epoch, k)) for k, i in enumerate(order)])


class SpeakerBatchSampler(torch.utils.data.Sampler):
    """Batches of P speakers x K utterances for contrastive training, covering each utterance about once an epoch.

    Each epoch every speaker's utterances are shuffled and cut into groups of K (the last group is topped up
    with other utterances of the speaker); in each round, speakers are shuffled and grouped P at a time
    (leftover speakers of a round are dropped, a different set each round). Speakers with fewer than 2
    utterances cannot give a positive pair and are left out.

    Examples
    --------
    >>> labels = np.repeat(np.arange(4), 6)
    >>> s = SpeakerBatchSampler(labels, n_speakers=2, n_utts=3, seed=0)
    >>> batches = list(s)
    >>> len(batches) == len(s), all(len(b) == 6 and len({labels[i] for i, _ in b}) == 2 for b in batches)
    (True, True)
    """

    def __init__(self, labels, n_speakers: int, n_utts: int, seed: int):
        self.P, self.K, self.seed, self.epoch = int(n_speakers), int(n_utts), int(seed), 0
        self.by_spk = utterances_by_speaker(np.asarray(labels).astype(int))
        if len(self.by_spk) < max(2, self.P):
            raise ValueError(f"contrastive batches need at least speakers_per_batch={self.P} speakers with >= 2 "
                             f"utterances, got {len(self.by_spk)}")
        counts = [len(v) for v in self.by_spk.values()]
        self.rounds = max(1, int(round(np.mean(counts) / self.K)))
        self._len = self.rounds * (len(self.by_spk) // self.P)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self):
        return self._len

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        batches = speaker_batches(self.by_spk, self.P, self.K, rng, rounds=self.rounds)
        pos = 0
        out = []
        for b in batches:
            out.append([(i, _crop_seed(self.seed, self.epoch, pos + k)) for k, i in enumerate(b)])
            pos += len(b)
        return iter(out)


def read_window(path, start: int, stop: int) -> np.ndarray:
    """Samples ``[start, stop)`` (file frames) of a file at the model's sample rate, as the int16 training form.

    Decodes only that window (``soundfile`` seeks in WAV and FLAC) and converts it exactly as the in-memory
    path does (channels averaged, then :func:`_to_int16`), so a window equals the same slice of the preloaded
    utterance. Unlike :func:`~nessa_lib.data.audio.load_audio` it does not refuse a silent window (a quiet
    stretch of a good file).

    Raises
    ------
    nessa_lib.data.audio.AudioError
        The file cannot be decoded, holds NaN/inf, or ends before ``stop``; the message names the file.

    Examples
    --------
    >>> import tempfile, soundfile as sf
    >>> with tempfile.TemporaryDirectory() as d:
    ...     sf.write(f"{d}/a.wav", np.full(100, 0.5, dtype=np.float32), SAMPLE_RATE)
    ...     read_window(f"{d}/a.wav", 10, 14).tolist()
    [16384, 16384, 16384, 16384]
    """
    import soundfile as sf

    from nessa_lib.data.audio import AudioError

    try:
        x, _ = sf.read(os.fspath(path), start=int(start), stop=int(stop), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError) as e:
        raise AudioError(path, "unreadable", f"decoding failed ({e})", segment=(start, stop)) from e
    if x.shape[0] != stop - start:
        raise AudioError(path, "bad_segment", f"decoded {x.shape[0]} of {stop - start} frames (truncated file?)",
                         segment=(start, stop))
    if not np.isfinite(x).all():
        raise AudioError(path, "non_finite", "NaN/inf samples", segment=(start, stop))
    x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    return _to_int16(x)


def _resampled_length(n: int, sr: int) -> int:
    """Length of ``n`` samples at ``sr`` after ``resample_poly`` to :data:`SAMPLE_RATE` (as ``load_audio``)."""
    from math import gcd

    g = gcd(int(sr), SAMPLE_RATE)
    up, down = SAMPLE_RATE // g, int(sr) // g
    return -(-n * up // down)


def probe_segments(segments, *, progress: bool = False, skip_log=None):
    """Header facts of each ``(path, start, stop)``: where its samples lie and its length at the model's rate.

    Reads headers only (``soundfile.info``, each file once). A segment that cannot be used (file missing or
    unreadable, segment past the end, shorter than 0.1 s) is reported with :func:`log_skipped_read` and gets
    ``None``.

    Returns
    -------
    list of (int, int, int, bool) or None
        ``(first frame, end frame, samples at 16 kHz, native 16 kHz)`` per segment.

    Examples
    --------
    >>> import tempfile, soundfile as sf
    >>> with tempfile.TemporaryDirectory() as d:
    ...     sf.write(f"{d}/a.wav", np.ones(8000, dtype=np.float32) / 2, 8000)
    ...     probe_segments([(f"{d}/a.wav", None, None), (f"{d}/a.wav", 0, 9000), (f"{d}/b.wav", None, None)])
    [(0, 8000, 16000, False), None, None]
    """
    from tqdm.auto import tqdm

    from nessa_lib.data.audio import AudioError, probe_audio, segment_label

    infos: dict = {}
    out = []
    for p, a, b in tqdm(segments, desc="probe audio", unit="utt", disable=not progress):
        if p not in infos:
            try:
                infos[p] = probe_audio(p)
            except AudioError as e:
                infos[p] = e
        info = infos[p]
        if isinstance(info, AudioError):
            log_skipped_read(skip_log, segment_label(p, a, b), info.reason, str(info))
            out.append(None)
            continue
        a0 = 0 if a is None else int(a)
        b0 = info.frames if b is None else int(b)
        n = b0 - a0
        if b0 > info.frames or n < 0.1 * info.sample_rate:
            reason = "bad_segment" if b0 > info.frames else "too_short"
            log_skipped_read(skip_log, segment_label(p, a, b), reason,
                             f"{segment_label(p, a, b)}: {n} frames at {info.sample_rate} Hz "
                             f"(file has {info.frames}) [{reason}]")
            out.append(None)
            continue
        native = info.sample_rate == SAMPLE_RATE
        out.append((a0, b0, n if native else _resampled_length(n, info.sample_rate), native))
    return out


class StreamCropDataset(torch.utils.data.Dataset):
    """The crops of :class:`CropDataset`, read from the audio files on demand (bounded memory).

    Same items, same crop positions and the same samples as :class:`CropDataset` over the preloaded utterances
    (:func:`_load_int16`): only each crop's window is decoded from a 16 kHz file (a file at another rate is
    decoded and resampled whole, then cropped). Meant to run in DataLoader workers. A read that fails is
    reported (:func:`log_skipped_read`, naming the file) and gives ``None``, which :func:`collate_crops` drops,
    so one bad file costs one example, not the run.

    Parameters
    ----------
    segments : list of (str, int or None, int or None)
        ``(path, start, stop)`` per utterance (:func:`nessa_lib.data.audio.manifest_segments`).
    probes : list
        :func:`probe_segments` of ``segments`` (no ``None``).
    labels : array_like of int
        Speaker class index of each utterance.
    crop_samples : int
        Crop length.
    skip_log : path, optional
        CSV the skipped reads are appended to.

    Examples
    --------
    >>> import tempfile, soundfile as sf
    >>> with tempfile.TemporaryDirectory() as d:
    ...     sf.write(f"{d}/a.wav", np.arange(2000, dtype=np.int16), SAMPLE_RATE)
    ...     seg = [(f"{d}/a.wav", None, None)]
    ...     ds = StreamCropDataset(seg, probe_segments(seg), [0], crop_samples=10)
    ...     wav, label = ds[(0, 123)]
    ...     mem = CropDataset(_load_int16(seg, False), [0], crop_samples=10)
    ...     bool((wav == mem[(0, 123)][0]).all()), label
    (True, 0)
    """

    data_path = "stream"

    def __init__(self, segments, probes, labels, crop_samples: int, skip_log=None):
        if len(segments) != len(probes) or len(segments) != len(labels):
            raise ValueError("StreamCropDataset: segments, probes and labels differ in length")
        # Arrays, not lists of Python objects: forked workers then share the pages (no refcount writes).
        self.paths = np.array([os.fspath(p) for p, _, _ in segments])
        self.frames = np.array([(q[0], q[1]) for q in probes], dtype=np.int64).reshape(-1, 2)
        self.lengths = np.array([q[2] for q in probes], dtype=np.int64)
        self.native = np.array([q[3] for q in probes], dtype=bool)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.crop = int(crop_samples)
        self.skip_log = None if skip_log is None else os.fspath(skip_log)

    def __len__(self):
        return len(self.paths)

    def _read(self, idx: int, start: int, n: int) -> np.ndarray:
        path = str(self.paths[idx])
        a, b = (int(v) for v in self.frames[idx])
        if self.native[idx]:
            return read_window(path, a + start, a + start + n)
        from nessa_lib.data.audio import load_audio

        x = load_audio(path, target_sr=SAMPLE_RATE, min_dur_s=0.1, start=a, stop=b)
        return _to_int16(x)[start:start + n]

    def __getitem__(self, item):
        from nessa_lib.data.audio import AudioError, segment_label

        if isinstance(item, (tuple, list)):
            idx, crop_seed = int(item[0]), int(item[1])
        else:
            idx, crop_seed = int(item), None
        n = int(self.lengths[idx])
        start = _crop_start(n, self.crop, crop_seed)
        try:
            x = self._read(idx, start, min(n, self.crop))
        except AudioError as e:
            a, b = (int(v) for v in self.frames[idx])
            log_skipped_read(self.skip_log, segment_label(str(self.paths[idx]), a, b), e.reason, str(e))
            return None
        return torch.from_numpy(x.astype(np.float32) / 32768.0), int(self.labels[idx])


def choose_data_path(cfg: EncoderConfig, preload_bytes: float) -> str:
    """The data path a config asks for: ``cfg.data``, or for 'auto' 'memory' when ``preload_bytes`` (int16
    samples of the training utterances) is at most ``cfg.preload_max_gb`` GB, else 'stream'.

    Examples
    --------
    >>> choose_data_path(EncoderConfig(), 1e9), choose_data_path(EncoderConfig(), 5e9)
    ('memory', 'stream')
    >>> choose_data_path(EncoderConfig(data="stream"), 1.0)
    'stream'
    """
    if cfg.data != "auto":
        return cfg.data
    return "memory" if preload_bytes <= cfg.preload_max_gb * 1e9 else "stream"


def preload_bytes(df) -> float:
    """Estimated bytes of int16 audio at 16 kHz for the manifest rows ``df`` (from ``duration_s``).

    Examples
    --------
    >>> import pandas as pd
    >>> preload_bytes(pd.DataFrame({"duration_s": [1.0, 2.0]}))
    96000.0
    """
    return float(np.asarray(df["duration_s"], dtype=float).sum() * SAMPLE_RATE * 2)


def _plan(manifest, cfg: EncoderConfig):
    """The training plan: rows of the selected speakers (sorted), their labels, the validation mask, speakers."""
    from nessa_lib.data.manifest import read_manifest

    if isinstance(manifest, (str, os.PathLike)):
        df = read_manifest(manifest)
        source = os.fspath(manifest)
    else:
        df = manifest
        source = "<DataFrame>"
    if "split" in df.columns and (df["split"] == "train").any():
        df = df[df["split"] == "train"]
    elif "split" in df.columns:
        raise ValueError(f"manifest {source}: no utterance has split 'train'")
    all_spk = sorted(df["speaker_id"].astype(str).unique())
    if cfg.speakers is not None:
        missing = sorted(set(cfg.speakers) - set(all_spk))
        if missing:
            raise ValueError(f"manifest {source}: speaker(s) {missing[:5]} of config.speakers are not in the "
                             f"train split ({len(missing)} missing)")
        speakers = sorted(set(cfg.speakers))
    else:
        subset_seed = cfg.seed if cfg.subset_seed is None else cfg.subset_seed
        speakers = sorted(select_speakers(all_spk, cfg.n_train_speakers, seed=subset_seed,
                                          offset=cfg.speaker_offset))
    df = df[df["speaker_id"].astype(str).isin(set(speakers))].copy()
    # Grouped by speaker so validation batches hold each held-out speaker's utterances together.
    df["speaker_id"] = df["speaker_id"].astype(str)
    df = df.sort_values(["speaker_id", "utt_id"], kind="stable")
    label_of = {s: i for i, s in enumerate(speakers)}
    labels = np.array([label_of[s] for s in df["speaker_id"].astype(str)])
    # Hold out the last valid_utts_per_speaker utterances (in utt_id order) of each speaker that can spare them.
    valid = np.zeros(len(df), dtype=bool)
    v = cfg.valid_utts_per_speaker
    if v > 0:
        for lab in range(len(speakers)):
            rows = np.flatnonzero(labels == lab)
            if len(rows) >= v + 2:
                valid[rows[-v:]] = True
    return df, labels, valid, speakers


def _stream_dataset(segments, labels, crop: int, progress: bool, skip_log):
    probes = probe_segments(segments, progress=progress, skip_log=skip_log)
    keep = [i for i, q in enumerate(probes) if q is not None]
    return StreamCropDataset([segments[i] for i in keep], [probes[i] for i in keep], np.asarray(labels)[keep],
                             crop, skip_log=skip_log)


def _prepare_data(manifest, cfg: EncoderConfig, progress: bool, *, shards=None, skip_log=None):
    """Training/validation datasets of the selected speakers and the speakers, on the data path ``cfg`` asks
    for (:func:`choose_data_path`; the chosen one is each dataset's ``data_path``)."""
    from nessa_lib.data.audio import manifest_segments

    df, labels, valid, speakers = _plan(manifest, cfg)
    path = choose_data_path(cfg, preload_bytes(df))
    train_idx, valid_idx = np.flatnonzero(~valid), np.flatnonzero(valid)
    crop, valid_crop = int(cfg.crop_s * SAMPLE_RATE), int(cfg.valid_crop_s * SAMPLE_RATE)
    if path == "memory":
        audio = _load_int16(manifest_segments(df), progress)
        train = CropDataset([audio[i] for i in train_idx], labels[train_idx], crop)
        valid_ds = None
        if len(valid_idx) >= 4:
            valid_ds = CropDataset([audio[i] for i in valid_idx], labels[valid_idx], valid_crop)
        return train, valid_ds, speakers
    segments = manifest_segments(df)
    valid_ds = None
    if len(valid_idx) >= 4:
        valid_ds = _stream_dataset([segments[i] for i in valid_idx], labels[valid_idx], valid_crop, progress,
                                   skip_log)
    if path == "stream":
        train = _stream_dataset([segments[i] for i in train_idx], labels[train_idx], crop, progress, skip_log)
    else:
        from nessa_lib.encoders.shards import ShardCropStream

        if shards is None:
            raise ValueError("data='shards' needs the shard folder (train_encoder(..., shards=DIR), CLI --shards)")
        utt_ids = df["utt_id"].astype(str).to_numpy()
        train = ShardCropStream(shards, dict(zip(utt_ids[train_idx], labels[train_idx].tolist())), crop,
                                seed=cfg.seed, shuffle_buffer=cfg.shuffle_buffer, skip_log=skip_log)
    return train, valid_ds, speakers


@dataclasses.dataclass
class Loaders:
    """How :class:`speechbrain.core.Brain` reads one training run's data (:func:`training_loaders`).

    ``train_set`` is the training dataset (or a ready ``DataLoader`` for shards, which SpeechBrain leaves as it
    is), ``sampler`` what gets ``set_epoch`` each epoch, ``train_kwargs``/``valid_kwargs`` SpeechBrain's
    ``train_loader_kwargs``/``valid_loader_kwargs``, ``steps_per_epoch`` the optimizer steps of one epoch on
    each rank, ``n_train_utts`` the training utterances.
    """

    train_set: object
    sampler: object
    train_kwargs: dict
    valid_kwargs: dict
    steps_per_epoch: int
    n_train_utts: int


def training_loaders(train_ds, cfg: EncoderConfig, world: int, *, shards=None) -> Loaders:
    """The samplers and loader settings of a training run on ``world`` ranks, for ``train_ds`` of
    :func:`_prepare_data` (its ``data_path`` decides): shuffled crops for the classification objectives, P speakers
    x K utterances for ``supcon``, the shards' own order for ``data='shards'``.

    Raises ``ValueError`` when there is not one full batch per rank (or, for shards, not one shard per reader;
    ``shards`` names the folder in that message).

    Examples
    --------
    >>> ds = CropDataset([np.zeros(10, np.int16)] * 8, [0, 0, 1, 1, 2, 2, 3, 3], crop_samples=4)
    >>> lo = training_loaders(ds, EncoderConfig(batch_size=4), world=1)
    >>> lo.steps_per_epoch, lo.train_kwargs["batch_size"], lo.valid_kwargs["shuffle"]
    (2, 4, False)
    """
    data_path = train_ds.data_path
    n_train_utts = len(train_ds)
    train_set = train_ds
    if data_path == "shards":
        n_train_utts = train_ds.n_utts
        steps_per_epoch = (n_train_utts // world) // cfg.batch_size
        if steps_per_epoch < 1:
            raise ValueError(f"only {n_train_utts} training utterances in the shards, fewer than "
                             f"batch_size={cfg.batch_size} per rank")
        readers = world * max(1, cfg.data_workers)
        if len(train_ds.names) < readers:
            raise ValueError(f"{shards}: {len(train_ds.names)} shard(s) cannot feed {world} rank(s) x "
                             f"{max(1, cfg.data_workers)} worker(s); pack smaller shards or use fewer data_workers")
        train_ds.set_batches(steps_per_epoch, cfg.batch_size)
        sampler = train_ds  # set_epoch
        # A ready DataLoader: SpeechBrain leaves it as it is (the dataset splits itself across ranks and workers).
        train_set = torch.utils.data.DataLoader(train_ds, batch_size=cfg.batch_size, drop_last=True,
                                                collate_fn=collate_crops, num_workers=cfg.data_workers)
        loader_kwargs = {}
        valid_bs = cfg.batch_size
    elif cfg.objective == "supcon":
        sampler = SpeakerBatchSampler(train_ds.labels, cfg.speakers_per_batch, cfg.utts_per_speaker, cfg.seed)
        loader_kwargs = {"batch_sampler": sampler}
        steps_per_epoch = math.ceil(len(sampler) / world)
        valid_bs = cfg.speakers_per_batch * cfg.utts_per_speaker
    else:
        if len(train_ds) < cfg.batch_size:
            raise ValueError(f"only {len(train_ds)} training utterances, fewer than batch_size={cfg.batch_size}")
        sampler = CropSampler(len(train_ds), cfg.seed)
        # drop_last: a final batch of 1 would break BatchNorm.
        loader_kwargs = {"sampler": sampler, "batch_size": cfg.batch_size, "drop_last": True}
        steps_per_epoch = (len(train_ds) // world) // cfg.batch_size
        valid_bs = cfg.batch_size
    loader_kwargs["collate_fn"] = collate_crops
    valid_kwargs = {"batch_size": valid_bs, "collate_fn": collate_crops, "shuffle": False}
    if data_path == "stream":
        loader_kwargs["num_workers"] = cfg.data_workers
    if data_path != "memory":
        valid_kwargs["num_workers"] = cfg.data_workers
    if data_path == "shards":
        loader_kwargs = {}
    return Loaders(train_set, sampler, loader_kwargs, valid_kwargs, steps_per_epoch, n_train_utts)
