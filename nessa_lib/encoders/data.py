"""Training data of an encoder: the speaker subset, its utterances decoded into memory, seeded random crops and
the batch samplers (shuffled crops for classification, P speakers x K utterances for contrastive training)."""

from __future__ import annotations

import os

import numpy as np
import torch

from nessa_lib.batches import speaker_batches, utterances_by_speaker
from nessa_lib.encoders.config import SAMPLE_RATE, EncoderConfig


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
        out.append(np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16))
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
            start = 0 if crop_seed is None else int(np.random.default_rng(crop_seed).integers(len(x) - self.crop + 1))
            x = x[start:start + self.crop]
        wav = torch.from_numpy(x.astype(np.float32) / 32768.0)
        return wav, int(self.labels[idx])


def collate_crops(batch):
    """Pad a list of ``(wav, label)`` to ``(wavs (B, T), lens (B,) relative, labels (B,))``.

    Examples
    --------
    >>> w, l, y = collate_crops([(torch.ones(4), 0), (torch.ones(2), 1)])
    >>> w.shape, l.tolist(), y.tolist()
    (torch.Size([2, 4]), [1.0, 0.5], [0, 1])
    """
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


def _prepare_data(manifest, cfg: EncoderConfig, progress: bool):
    """Training/validation utterances of the selected speakers, decoded into memory."""
    from nessa_lib.data.audio import manifest_segments
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
    audio = _load_int16(manifest_segments(df), progress)
    train_idx, valid_idx = np.flatnonzero(~valid), np.flatnonzero(valid)
    train = CropDataset([audio[i] for i in train_idx], labels[train_idx], int(cfg.crop_s * SAMPLE_RATE))
    valid_ds = None
    if len(valid_idx) >= 4:
        valid_ds = CropDataset([audio[i] for i in valid_idx], labels[valid_idx],
                               int(cfg.valid_crop_s * SAMPLE_RATE))
    return train, valid_ds, speakers
