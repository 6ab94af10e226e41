"""Train small speaker encoders with SpeechBrain and export them without pickle.

The study needs pairs of independently trained encoders that differ in architecture, objective, embedding size
and quality. Three defaults (:data:`DEFAULT_CONFIGS`) cover that range:

================  ===========================  ===================================  =====
name              architecture                 objective                            dim
================  ===========================  ===================================  =====
``xvector``       SpeechBrain ``Xvector`` TDNN  softmax over training speakers       128
``ecapa``         ``ECAPA_TDNN``               AAM-softmax (additive angular margin) 192
``ecapa-supcon``  ``ECAPA_TDNN``               supervised contrastive (InfoNCE), no  192
                                               classifier head; P speakers x K utts
================  ===========================  ===================================  =====

(``resnet``, SpeechBrain's ResNet lobe, is also available but slow on CPU.)

Training runs through :class:`speechbrain.core.Brain` (:class:`EncoderBrain`) with SpeechBrain's
``Checkpointer``: one checkpoint per epoch under ``out_dir/checkpoints``, so calling :func:`train_encoder` again
with the same ``out_dir`` resumes after the last finished epoch. Under ``torchrun`` SpeechBrain's DDP support is
used (gloo backend on CPU)::

    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 -m nessa_lib.encoders \\
        --manifest data/prepare_data/manifest.csv --out models/ecapa --config '{"name": "ecapa"}'

Export format (``out_dir``):

- ``encoder.safetensors``: the embedding network's ``state_dict`` with keys prefixed ``embedding_model.``
  (plus ``mean_var_norm.*`` statistics if the normaliser had any; the default sentence-level normaliser has none).
- ``encoder.json``: ``format``/``format_version``, ``model_id`` (a :func:`nessa_lib.embeddings.fingerprint` of
  the weights and of everything that changes the embeddings), ``config`` (the :class:`EncoderConfig`),
  ``sample_rate``, ``emb_dim``, ``min_samples`` (shortest input the network accepts), ``history`` (one record per
  epoch), ``train_speakers`` and training summary numbers.

:func:`load_encoder` reads only these two files (no ``torch.load``) and returns an :class:`Encoder` whose
``embed(wavs, lengths)`` takes SpeechBrain-style relative lengths.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import speechbrain as sb
import torch
from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper

logger = logging.getLogger(__name__)

ARCHITECTURES = ("xvector", "ecapa", "resnet")
OBJECTIVES = ("softmax", "aam", "supcon")
CLASSIFICATION_OBJECTIVES = ("softmax", "aam")
FORMAT = "nessa-encoder"
FORMAT_VERSION = 1
SAMPLE_RATE = 16000
WEIGHTS_FILE = "encoder.safetensors"
META_FILE = "encoder.json"
CKPT_DIR = "checkpoints"


@dataclass
class EncoderConfig:
    """Everything that defines one encoder and its training run (all JSON-serialisable).

    Parameters
    ----------
    name : str
        Human-readable model name, the prefix of ``model_id``.
    architecture : {'xvector', 'ecapa', 'resnet'}
        SpeechBrain lobe: ``Xvector`` TDNN, ``ECAPA_TDNN`` or ``ResNet``.
    objective : {'softmax', 'aam', 'supcon'}
        Softmax cross-entropy over training speakers (linear head), AAM-softmax (cosine head with an additive
        angular margin) or supervised contrastive InfoNCE over P speakers x K utterances (no head).
    emb_dim : int
        Embedding dimension.
    channels : int
        Width: TDNN/ECAPA block channels (the last, pooling-side block is 3x this), ResNet base channels.
    n_mels : int
        Mel filterbank channels of the SpeechBrain ``Fbank`` front end.
    res2net_scale : int
        ECAPA Res2Net scale (must divide ``channels``).
    crop_s : float
        Length of the random training crops in seconds (shorter utterances are used whole, zero-padded).
    epochs : int
        Passes over the training utterances (one random crop of each utterance per epoch).
    batch_size : int
        Crops per batch for the classification objectives.
    speakers_per_batch, utts_per_speaker : int
        P and K of the contrastive batches (batch size P*K).
    lr : float
        Peak learning rate of Adam (linear warm-up over ``warmup_frac`` of the steps, then cosine decay to
        ``lr * final_lr_frac``).
    weight_decay : float
        Adam weight decay.
    warmup_frac, final_lr_frac : float
        Learning-rate schedule shape, see ``lr``.
    aam_margin, aam_scale : float
        Additive angular margin (radians) and scale of the AAM-softmax.
    temperature : float
        Temperature of the contrastive loss.
    seed : int
        Seed of the weights initialisation, sampling and cropping.
    n_train_speakers : int or None
        Train on this many speakers of the manifest's ``train`` split (``None``: all).
    speaker_offset : int
        The subset is ``n_train_speakers`` consecutive speakers, starting at this position, of a permutation of
        the sorted training speakers drawn with ``subset_seed``. Encoders with the same ``subset_seed`` get the
        same (offset equal), overlapping or disjoint (offsets ``n`` apart) speaker sets.
    subset_seed : int or None
        Seed of that permutation; ``None`` means ``seed``.
    speakers : list of str or None
        Explicit training speakers; overrides ``n_train_speakers``/``speaker_offset``.
    valid_utts_per_speaker : int
        Utterances per training speaker held out to monitor training (validation loss and leave-one-out
        nearest-neighbour speaker-identification error); 0 disables validation.
    valid_crop_s : float
        Validation crops are the first ``valid_crop_s`` seconds of each held-out utterance.

    Examples
    --------
    >>> EncoderConfig(architecture="ecapa", objective="aam").batch_size
    64
    >>> EncoderConfig(architecture="lstm")
    Traceback (most recent call last):
    ...
    ValueError: EncoderConfig: unknown architecture 'lstm'; valid: ['xvector', 'ecapa', 'resnet']
    """

    name: str = "ecapa"
    architecture: str = "ecapa"
    objective: str = "aam"
    emb_dim: int = 192
    channels: int = 128
    n_mels: int = 40
    res2net_scale: int = 4
    crop_s: float = 1.5
    epochs: int = 4
    batch_size: int = 64
    speakers_per_batch: int = 16
    utts_per_speaker: int = 4
    lr: float = 2e-3
    weight_decay: float = 2e-5
    warmup_frac: float = 0.1
    final_lr_frac: float = 0.02
    aam_margin: float = 0.2
    aam_scale: float = 30.0
    temperature: float = 0.1
    seed: int = 0
    n_train_speakers: int | None = None
    speaker_offset: int = 0
    subset_seed: int | None = None
    speakers: list | None = None
    valid_utts_per_speaker: int = 2
    valid_crop_s: float = 3.0

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        where = "EncoderConfig"
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"{where}: unknown architecture {self.architecture!r}; valid: {list(ARCHITECTURES)}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"{where}: unknown objective {self.objective!r}; valid: {list(OBJECTIVES)}")
        ints = dict(emb_dim=1, channels=4, n_mels=8, epochs=1, batch_size=2, speakers_per_batch=2,
                    utts_per_speaker=2, res2net_scale=1, speaker_offset=0, valid_utts_per_speaker=0)
        for k, lo in ints.items():
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{where}: {k} must be an integer >= {lo}, got {v!r}")
        floats = dict(crop_s=(0.1, 60), lr=(0, 10), weight_decay=(0, 1), warmup_frac=(0, 1), final_lr_frac=(0, 1),
                      aam_margin=(0, 1.5), aam_scale=(0, 1e3), temperature=(0, 10), valid_crop_s=(0.1, 600))
        for k, (lo, hi) in floats.items():
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v <= hi) or not math.isfinite(v):
                raise ValueError(f"{where}: {k} must be a number in [{lo}, {hi}], got {v!r}")
        if self.lr <= 0 or self.temperature <= 0 or self.aam_scale <= 0:
            raise ValueError(f"{where}: lr, temperature and aam_scale must be > 0")
        if self.architecture == "ecapa" and self.channels % self.res2net_scale:
            raise ValueError(f"{where}: channels {self.channels} must be divisible by res2net_scale "
                             f"{self.res2net_scale} for ECAPA")
        if self.n_train_speakers is not None and (isinstance(self.n_train_speakers, bool)
                                                  or not isinstance(self.n_train_speakers, (int, np.integer))
                                                  or self.n_train_speakers < 2):
            raise ValueError(f"{where}: n_train_speakers must be None or an integer >= 2, "
                             f"got {self.n_train_speakers!r}")
        if self.speakers is not None:
            if isinstance(self.speakers, str) or len(set(map(str, self.speakers))) < 2:
                raise ValueError(f"{where}: speakers must be a list of at least 2 distinct speaker ids")
            self.speakers = [str(s) for s in self.speakers]

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderConfig":
        """Build from a dict, refusing unknown keys (a typo must not silently train a default model).

        Examples
        --------
        >>> EncoderConfig.from_dict({"name": "x", "emb_dim": 8}).emb_dim
        8
        >>> EncoderConfig.from_dict({"embdim": 8})
        Traceback (most recent call last):
        ...
        ValueError: EncoderConfig: unknown key(s) ['embdim']
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"EncoderConfig: unknown key(s) {unknown}")
        return cls(**d)

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable)."""
        return dataclasses.asdict(self)


# Defaults sized for the 2-core CPU budget (<= 5 min per encoder on 600 speakers x 14 utterances, 2 threads;
# measured: xvector ~2.8 min, EER 5.1 %; ecapa ~4.2 min, EER 1.8 %; ecapa-supcon ~4.6 min, EER 2.4 %). Other
# numbers are in the encoder stage's report. ECAPA is the strong model, the x-vector the weak one; the
# contrastive ECAPA differs from the AAM one in objective only.
DEFAULT_CONFIGS = {
    "xvector": dict(name="xvector", architecture="xvector", objective="softmax", emb_dim=128, channels=128,
                    epochs=4),
    "ecapa": dict(name="ecapa", architecture="ecapa", objective="aam", emb_dim=192, channels=128, epochs=4),
    "ecapa-supcon": dict(name="ecapa-supcon", architecture="ecapa", objective="supcon", emb_dim=192,
                         channels=128, epochs=4, speakers_per_batch=16, utts_per_speaker=4),
    "resnet": dict(name="resnet", architecture="resnet", objective="aam", emb_dim=128, channels=16, epochs=4),
}


def default_config(name: str, **overrides) -> EncoderConfig:
    """One of :data:`DEFAULT_CONFIGS` with ``overrides`` applied.

    Examples
    --------
    >>> default_config("xvector", seed=3).objective
    'softmax'
    """
    if name not in DEFAULT_CONFIGS:
        raise ValueError(f"unknown default encoder {name!r}; valid: {sorted(DEFAULT_CONFIGS)}")
    return EncoderConfig.from_dict({**DEFAULT_CONFIGS[name], **overrides})


def _as_config(cfg) -> EncoderConfig:
    if isinstance(cfg, EncoderConfig):
        cfg.validate()
        return cfg
    if isinstance(cfg, dict):
        return EncoderConfig.from_dict(cfg)
    raise TypeError(f"config must be an EncoderConfig or a dict, got {type(cfg).__name__}")


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


def _arch_kwargs(cfg: EncoderConfig) -> dict:
    """Constructor arguments of the embedding network (stored in the export so it can be rebuilt)."""
    c = int(cfg.channels)
    if cfg.architecture == "xvector":
        return dict(in_channels=cfg.n_mels, tdnn_blocks=5, tdnn_channels=[c, c, c, c, 3 * c],
                    tdnn_kernel_sizes=[5, 3, 3, 1, 1], tdnn_dilations=[1, 2, 3, 1, 1], lin_neurons=cfg.emb_dim)
    if cfg.architecture == "ecapa":
        att = max(8, min(128, c // 2))
        return dict(input_size=cfg.n_mels, lin_neurons=cfg.emb_dim, channels=[c, c, c, c, 3 * c],
                    kernel_sizes=[5, 3, 3, 3, 1], dilations=[1, 2, 3, 4, 1], attention_channels=att,
                    res2net_scale=cfg.res2net_scale, se_channels=att, global_context=True)
    return dict(input_size=cfg.n_mels, channels=[c, c, 2 * c, 4 * c], block_sizes=[2, 2, 2, 2],
                strides=[1, 2, 2, 2], lin_neurons=cfg.emb_dim)


def _feature_kwargs(cfg: EncoderConfig) -> dict:
    return dict(n_mels=cfg.n_mels, sample_rate=SAMPLE_RATE, n_fft=400, win_length=25, hop_length=10)


def _build_embedding_model(architecture: str, kwargs: dict) -> torch.nn.Module:
    if architecture == "xvector":
        from speechbrain.lobes.models.Xvector import Xvector

        return Xvector(**kwargs)
    if architecture == "ecapa":
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

        return ECAPA_TDNN(**kwargs)
    if architecture == "resnet":
        from speechbrain.lobes.models.ResNet import ResNet

        return ResNet(**kwargs)
    raise ValueError(f"unknown architecture {architecture!r}; valid: {list(ARCHITECTURES)}")


def _build_frontend(feature_kwargs: dict) -> dict:
    from speechbrain.lobes.features import Fbank
    from speechbrain.processing.features import InputNormalization

    # Sentence-level mean normalisation (as SpeechBrain's ECAPA recipe): no running statistics to learn,
    # so an embedding never depends on what else was in the batch or on training-time state.
    return {"compute_features": Fbank(**feature_kwargs),
            "mean_var_norm": InputNormalization(norm_type="sentence", std_norm=False)}


def build_modules(cfg, n_speakers: int | None = None) -> dict:
    """SpeechBrain modules of an encoder: front end, embedding network and (classification only) head.

    Parameters
    ----------
    cfg : EncoderConfig or dict
        The encoder configuration.
    n_speakers : int, optional
        Number of training speakers (classifier outputs); required for the classification objectives.

    Returns
    -------
    dict of str to torch.nn.Module
        ``compute_features`` (``Fbank``), ``mean_var_norm`` (sentence-level ``InputNormalization``),
        ``embedding_model``, and ``classifier`` for ``softmax`` (linear) and ``aam`` (cosine) objectives.

    Examples
    --------
    >>> mods = build_modules(EncoderConfig(architecture="xvector", objective="softmax", emb_dim=8,
    ...                                    channels=8, n_mels=16), n_speakers=3)
    >>> sorted(mods)
    ['classifier', 'compute_features', 'embedding_model', 'mean_var_norm']
    """
    cfg = _as_config(cfg)
    mods = _build_frontend(_feature_kwargs(cfg))
    mods["embedding_model"] = _build_embedding_model(cfg.architecture, _arch_kwargs(cfg))
    if cfg.objective in CLASSIFICATION_OBJECTIVES:
        if n_speakers is None or n_speakers < 2:
            raise ValueError(f"objective {cfg.objective!r} needs n_speakers >= 2, got {n_speakers}")
        if cfg.objective == "aam":
            from speechbrain.lobes.models.ECAPA_TDNN import Classifier

            mods["classifier"] = Classifier(input_size=cfg.emb_dim, lin_blocks=0, out_neurons=n_speakers)
        else:
            mods["classifier"] = torch.nn.Linear(cfg.emb_dim, n_speakers)
    return mods


def _embed_batch(mods, wavs: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    feats = mods["compute_features"](wavs)
    feats = mods["mean_var_norm"](feats, lens)
    emb = mods["embedding_model"](feats, lens) if _takes_lengths(mods["embedding_model"]) \
        else mods["embedding_model"](feats)
    return emb.reshape(emb.shape[0], -1)


def _takes_lengths(model) -> bool:
    inner = getattr(model, "module", model)  # DDP wrapper
    name = type(inner).__name__
    return name in ("Xvector", "ECAPA_TDNN")


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


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

    ``segments`` are ``(path, start, stop)`` triples from :func:`nessa_lib.audio.manifest_segments`.
    """
    from tqdm.auto import tqdm

    from nessa_lib.audio import load_audio

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
        labels = np.asarray(labels)
        self.P, self.K, self.seed, self.epoch = int(n_speakers), int(n_utts), int(seed), 0
        by_spk = {}
        for i, s in enumerate(labels):
            by_spk.setdefault(int(s), []).append(i)
        self.by_spk = {s: np.asarray(v) for s, v in sorted(by_spk.items()) if len(v) >= 2}
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
        spks = list(self.by_spk)
        chunks = {}
        for s in spks:
            idx = rng.permutation(self.by_spk[s])
            need = self.rounds * self.K
            if len(idx) < need:  # top up by re-drawing the speaker's utterances
                idx = np.concatenate([idx, rng.choice(self.by_spk[s], need - len(idx))])
            chunks[s] = idx[:need].reshape(self.rounds, self.K)
        batches = []
        for r in range(self.rounds):
            order = rng.permutation(len(spks))
            for g in range(len(spks) // self.P):
                chosen = [spks[j] for j in order[g * self.P:(g + 1) * self.P]]
                batches.append([int(i) for s in chosen for i in chunks[s][r]])
        batches = [batches[j] for j in rng.permutation(len(batches))]
        pos = 0
        out = []
        for b in batches:
            out.append([(i, _crop_seed(self.seed, self.epoch, pos + k)) for k, i in enumerate(b)])
            pos += len(b)
        return iter(out)


def _prepare_data(manifest, cfg: EncoderConfig, progress: bool):
    """Training/validation utterances of the selected speakers, decoded into memory."""
    from nessa_lib.audio import manifest_segments
    from nessa_lib.manifest import read_manifest

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


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------


def supcon_loss(emb: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive (InfoNCE) loss within a batch; every other utterance of the speaker is a positive.

    Parameters
    ----------
    emb : torch.Tensor, shape (B, d)
        Embeddings (L2-normalised inside).
    labels : torch.Tensor, shape (B,)
        Speaker labels; each speaker should appear at least twice.
    temperature : float
        Softmax temperature on cosine similarities.

    Examples
    --------
    >>> e = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    >>> good = supcon_loss(e, torch.tensor([0, 0, 1, 1]), 0.1)
    >>> bad = supcon_loss(e, torch.tensor([0, 1, 0, 1]), 0.1)
    >>> bool(good < bad)
    True
    """
    z = torch.nn.functional.normalize(emb, dim=-1)
    logits = z @ z.T / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))  # an utterance is not its own positive nor negative
    pos = (labels[:, None] == labels[None, :]) & ~eye
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    has_pos = pos.any(1)
    if not has_pos.any():
        raise ValueError("supcon_loss: no speaker appears twice in the batch")
    per_anchor = -(log_prob.masked_fill(~pos, 0.0).sum(1)[has_pos] / pos.sum(1)[has_pos])
    return per_anchor.mean()


def _loo_nn_error(emb: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out nearest-neighbour (cosine) speaker-identification error: one metric for every objective."""
    z = torch.nn.functional.normalize(emb, dim=-1)
    sim = z @ z.T
    sim.fill_diagonal_(float("-inf"))
    keep = torch.tensor([(labels == y).sum() > 1 for y in labels])
    if not keep.any():
        return float("nan")
    nn_idx = sim.argmax(1)
    return float((labels[nn_idx] != labels)[keep].float().mean())


# --------------------------------------------------------------------------------------------
# Brain
# --------------------------------------------------------------------------------------------


def _lr_at(cfg: EncoderConfig, step: int, total: int) -> float:
    warm = max(1, int(round(cfg.warmup_frac * total)))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    lo = cfg.lr * cfg.final_lr_frac
    return lo + 0.5 * (cfg.lr - lo) * (1.0 + math.cos(math.pi * t))


class _History:
    """Per-epoch training records, saved in every SpeechBrain checkpoint so a resumed run keeps them."""

    def __init__(self):
        self.records = []

    def save(self, path):
        from speechbrain.utils.distributed import if_main_process

        if if_main_process():  # custom save hooks run on every DDP rank
            Path(path).write_text(json.dumps(self.records), encoding="utf-8")

    def load(self, path, end_of_epoch=True):
        del end_of_epoch
        self.records = json.loads(Path(path).read_text(encoding="utf-8"))


class _TorchRng:
    """The global torch RNG state as a checkpoint recoverable: SpeechBrain's x-vector statistics pooling draws
    noise from it during training, so without it a resumed run would not reproduce an uninterrupted one."""

    def save(self, path):
        from speechbrain.utils.distributed import if_main_process

        if if_main_process():
            with open(path, "wb") as f:
                np.save(f, torch.get_rng_state().numpy(), allow_pickle=False)

    def load(self, path, end_of_epoch=True):
        del end_of_epoch
        with open(path, "rb") as f:
            torch.set_rng_state(torch.from_numpy(np.load(f, allow_pickle=False)))


class EncoderBrain(sb.core.Brain):
    """``Brain`` for speaker-encoder training (see :func:`train_encoder`).

    ``hparams`` must hold ``cfg`` (EncoderConfig), ``epoch_counter``, ``history`` (``_History``),
    ``total_steps`` and ``sampler`` (the train sampler, for ``set_epoch``).
    """

    def on_fit_start(self):
        cfg = self.hparams.cfg
        if cfg.objective == "aam":
            self.loss_fn = LogSoftmaxWrapper(AdditiveAngularMargin(margin=cfg.aam_margin, scale=cfg.aam_scale))
        elif cfg.objective == "softmax":
            self.loss_fn = LogSoftmaxWrapper(torch.nn.Identity())
        super().on_fit_start()

    def _wrap_distributed(self):
        # SpeechBrain converts BatchNorm to SyncBatchNorm before wrapping in DDP, and SyncBatchNorm refuses
        # CPU tensors in training; on CPU keep per-process BatchNorm statistics (plain DDP).
        if self.distributed_launch and self.device_type == "cpu":
            from torch.nn.parallel import DistributedDataParallel as DDP

            for name, module in self.modules.items():
                if any(p.requires_grad for p in module.parameters()):
                    self.modules[name] = DDP(module, device_ids=None,
                                             find_unused_parameters=self.find_unused_parameters)
            return
        super()._wrap_distributed()

    def compute_forward(self, batch, stage):
        wavs, lens, _ = batch
        wavs, lens = wavs.to(self.device), lens.to(self.device)
        emb = _embed_batch(self.modules, wavs, lens)
        if "classifier" in self.modules:
            head = self.modules["classifier"](emb.unsqueeze(1))
            return emb, head.reshape(head.shape[0], 1, -1)
        return emb, None

    def compute_objectives(self, predictions, batch, stage):
        emb, head = predictions
        labels = batch[2].to(self.device)
        cfg = self.hparams.cfg
        if head is not None:
            loss = self.loss_fn(head, labels.unsqueeze(1))
        elif stage == sb.Stage.TRAIN or (labels[:, None] == labels[None, :]).sum() > len(labels):
            loss = supcon_loss(emb, labels, cfg.temperature)
        else:
            loss = torch.zeros((), device=emb.device)
        if stage != sb.Stage.TRAIN:
            self._valid_emb.append(emb.detach().cpu())
            self._valid_lab.append(labels.cpu())
        return loss

    def on_fit_batch_start(self, batch, should_step):
        lr = _lr_at(self.hparams.cfg, self.optimizer_step, self.hparams.total_steps)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self._last_lr = lr

    def on_stage_start(self, stage, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.hparams.sampler.set_epoch(epoch)
            self._t0 = time.time()
        else:
            self._valid_emb, self._valid_lab = [], []

    def on_stage_end(self, stage, stage_loss, epoch=None):
        hist = self.hparams.history
        if stage == sb.Stage.TRAIN:
            self._train_record = {"epoch": int(epoch), "train_loss": float(stage_loss),
                                  "lr_end": float(getattr(self, "_last_lr", 0.0)),
                                  "train_time_s": round(time.time() - self._t0, 2)}
            if not self.hparams.has_valid:
                self._end_epoch(hist, self._train_record)
            return
        err = _loo_nn_error(torch.cat(self._valid_emb), torch.cat(self._valid_lab))
        rec = dict(self._train_record, valid_loss=float(stage_loss), valid_error=err)
        self._end_epoch(hist, rec)

    def _end_epoch(self, hist, rec):
        hist.records = [r for r in hist.records if r["epoch"] != rec["epoch"]] + [rec]
        msg = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items())
        if sb.utils.distributed.if_main_process():
            logger.info("%s: %s", self.hparams.cfg.name, msg)
        # One checkpoint per finished epoch, only the newest kept: a killed run resumes after it.
        self.checkpointer.save_and_keep_only(meta={"epoch": rec["epoch"]}, num_to_keep=1)


# --------------------------------------------------------------------------------------------
# Training and export
# --------------------------------------------------------------------------------------------


def _n_params(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def _min_samples(mods, floor: int, limit: int = SAMPLE_RATE) -> int:
    """Shortest input (samples) the front end + network accept in eval mode (bisection), at least ``floor``."""

    def ok(n):
        try:
            with torch.no_grad():
                e = _embed_batch(mods, torch.randn(1, n) * 0.1, torch.ones(1))
            return bool(torch.isfinite(e).all())
        except (RuntimeError, ValueError, IndexError):
            return False

    if not ok(limit):
        raise RuntimeError(f"the embedding model cannot process {limit} samples")
    lo, hi = 1, limit  # ok(hi) is True
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    # Never below one full analysis window: a network may run on less (ResNet takes 1 sample), but the
    # "embedding" of a partial STFT frame is meaningless.
    return int(max(hi, floor))


def _embedding_config(cfg: EncoderConfig) -> dict:
    """What changes the embeddings (goes into the fingerprint and is enough to rebuild the model)."""
    return {"architecture": cfg.architecture, "arch_kwargs": _arch_kwargs(cfg), "features": _feature_kwargs(cfg),
            "normalization": {"norm_type": "sentence", "std_norm": False}, "sample_rate": SAMPLE_RATE}


def _export(out_dir: Path, cfg: EncoderConfig, mods: dict, history: list, summary: dict, speakers: list) -> dict:
    from safetensors.torch import save_file

    from nessa_lib.embeddings import fingerprint
    from nessa_lib.io import atomic_write_text

    emb_model = mods["embedding_model"]
    emb_model.eval()
    tensors = {f"embedding_model.{k}": v.detach().cpu().contiguous().clone()
               for k, v in emb_model.state_dict().items()}
    ecfg = _embedding_config(cfg)
    model_id = fingerprint(tensors, ecfg, cfg.name)
    eval_mods = {k: mods[k] for k in ("compute_features", "mean_var_norm", "embedding_model")}
    min_samples = _min_samples(eval_mods, floor=SAMPLE_RATE * _feature_kwargs(cfg)["win_length"] // 1000)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "model_id": model_id, "name": cfg.name,
            "emb_dim": int(cfg.emb_dim), "sample_rate": SAMPLE_RATE, "min_samples": min_samples,
            "embedding_config": ecfg, "config": cfg.to_dict(), "history": history, "summary": summary,
            "train_speakers": list(speakers)}
    tmp = out_dir / (WEIGHTS_FILE + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "model_id": model_id})
    os.replace(tmp, out_dir / WEIGHTS_FILE)
    atomic_write_text(out_dir / META_FILE, json.dumps(meta, indent=1) + "\n")
    return meta


def _check_same_config(out_dir: Path, cfg: EncoderConfig, write: bool) -> None:
    """Refuse to resume checkpoints of another configuration (only ``epochs`` may change between runs)."""
    from speechbrain.utils.distributed import ddp_barrier, if_main_process

    from nessa_lib.io import atomic_write_text

    path = out_dir / CKPT_DIR / "config.json"
    mine = {k: v for k, v in cfg.to_dict().items() if k != "epochs"}
    if path.is_file():
        theirs = {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if k != "epochs"}
        if theirs != mine:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ValueError(f"{out_dir} holds checkpoints of a different encoder config (differs in {diff}); "
                             "use another out_dir or delete it to start over")
    elif write and if_main_process():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cfg.to_dict(), indent=1) + "\n")
    ddp_barrier()


def train_encoder(manifest, out_dir, cfg, *, progress: bool = True, run_opts: dict | None = None) -> dict:
    """Train one speaker encoder with a SpeechBrain ``Brain`` and export it to ``out_dir``.

    Re-running with the same ``out_dir`` resumes from the last epoch checkpoint in ``out_dir/checkpoints``
    (a finished run is not repeated: its epoch counter is already at ``cfg.epochs``; raising ``epochs``
    continues it, though the learning-rate schedule is then stretched over the new total).

    Parameters
    ----------
    manifest : str, os.PathLike or pandas.DataFrame
        Manifest (see :mod:`nessa_lib.manifest`); the utterances of its ``train`` split are used. A DataFrame
        needs absolute paths (or paths relative to the working directory).
    out_dir : str or os.PathLike
        Output folder: ``encoder.safetensors``, ``encoder.json``, ``checkpoints/``.
    cfg : EncoderConfig or dict
        Model and training configuration.
    progress : bool
        Show progress bars (audio loading and SpeechBrain's per-epoch bar).
    run_opts : dict, optional
        SpeechBrain run options (``device``, ``distributed_backend``, ``precision`` ...). Defaults: CPU unless
        a GPU is present, gloo backend. Under ``torchrun`` (``RANK``/``LOCAL_RANK`` set) the DDP process group is
        initialised here with ``speechbrain.utils.distributed.ddp_init_group``.

    Returns
    -------
    dict
        Flat summary: ``train_time_s``, ``load_time_s``, ``epochs``, ``final_train_loss``,
        ``final_valid_error`` (NaN without validation), ``n_params``, ``n_train_speakers``, ``n_train_utts``,
        ``model_id``, ``world_size``.

    Raises
    ------
    nessa_lib.audio.AudioError
        A training file cannot be read; the message names the file.
    ValueError
        Invalid configuration or manifest.
    """
    cfg = _as_config(cfg)
    from speechbrain.utils.checkpoints import Checkpointer
    from speechbrain.utils.distributed import ddp_barrier, ddp_init_group, if_main_process, is_distributed_initialized
    from speechbrain.utils.epoch_loop import EpochCounter

    out_dir = Path(out_dir)
    opts = {"device": "cuda:0" if torch.cuda.is_available() else "cpu", "distributed_backend": "gloo",
            "noprogressbar": not progress}
    opts.update(run_opts or {})
    if os.environ.get("RANK") is not None and os.environ.get("LOCAL_RANK") is not None \
            and not is_distributed_initialized():
        ddp_init_group(opts)
    world = torch.distributed.get_world_size() if is_distributed_initialized() else 1
    if if_main_process():
        out_dir.mkdir(parents=True, exist_ok=True)
    ddp_barrier()

    _check_same_config(out_dir, cfg, write=False)  # fail fast, before loading audio
    t0 = time.time()
    train_ds, valid_ds, speakers = _prepare_data(manifest, cfg, progress and if_main_process())
    load_time = time.time() - t0
    _check_same_config(out_dir, cfg, write=True)

    torch.manual_seed(cfg.seed)  # same seed -> same initial weights on every rank
    mods = build_modules(cfg, n_speakers=len(speakers))
    if cfg.objective == "supcon":
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
    history = _History()
    counter = EpochCounter(limit=cfg.epochs)
    recoverables = {"embedding_model": mods["embedding_model"], "counter": counter}
    if "classifier" in mods:
        recoverables["classifier"] = mods["classifier"]
    checkpointer = Checkpointer(out_dir / CKPT_DIR, recoverables=recoverables)
    checkpointer.add_recoverable("history", history, custom_load_hook=_History.load,
                                 custom_save_hook=_History.save)
    rng = _TorchRng()
    checkpointer.add_recoverable("torch_rng", rng, custom_load_hook=_TorchRng.load, custom_save_hook=_TorchRng.save)
    hparams = {"cfg": cfg, "history": history, "sampler": sampler, "has_valid": valid_ds is not None,
               "total_steps": max(1, steps_per_epoch * cfg.epochs)}
    opt_class = lambda params: torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)  # noqa: E731
    brain = EncoderBrain(modules=mods, opt_class=opt_class, hparams=hparams, run_opts=opts, checkpointer=checkpointer)
    t1 = time.time()
    brain.fit(counter, train_ds, valid_ds, progressbar=progress,
              train_loader_kwargs=loader_kwargs,
              valid_loader_kwargs={"batch_size": valid_bs, "collate_fn": collate_crops, "shuffle": False})
    train_time = time.time() - t1
    # After fit() (or a recovery of a finished run) the modules hold the last epoch's weights.
    if counter.current < cfg.epochs:
        raise RuntimeError(f"training of {out_dir} stopped at epoch {counter.current} of {cfg.epochs}")
    if not history.records:  # a finished run loaded from its checkpoint on a fresh Brain
        checkpointer.recover_if_possible()
    last = history.records[-1] if history.records else {}
    summary = {"train_time_s": round(train_time, 2), "load_time_s": round(load_time, 2),
               "epochs": int(counter.current), "final_train_loss": float(last.get("train_loss", float("nan"))),
               "final_valid_error": float(last.get("valid_error", float("nan"))),
               "n_params": _n_params(mods["embedding_model"]), "n_train_speakers": len(speakers),
               "n_train_utts": len(train_ds), "world_size": world}
    model_id = None
    if if_main_process():
        meta = _export(out_dir, cfg, mods, history.records, summary, speakers)
        model_id = meta["model_id"]
    ddp_barrier()
    if model_id is None:
        model_id = json.loads((out_dir / META_FILE).read_text())["model_id"]
    return dict(summary, model_id=model_id)


# --------------------------------------------------------------------------------------------
# Loading and inference
# --------------------------------------------------------------------------------------------


class Encoder:
    """A trained encoder loaded from its export; ``embed`` maps waveforms to embeddings.

    Attributes
    ----------
    model_id : str
        Fingerprint of weights + embedding-relevant config (see :func:`nessa_lib.embeddings.fingerprint`).
    emb_dim, sample_rate, min_samples : int
        Embedding size, expected sample rate, shortest accepted input in samples.
    config : dict
        The training :class:`EncoderConfig` as a dict.
    meta : dict
        The whole ``encoder.json``.
    """

    def __init__(self, modules: dict, meta: dict, source: str = ""):
        self.modules = torch.nn.ModuleDict(modules).eval()
        self.meta = meta
        self.source = source
        self.model_id = meta["model_id"]
        self.emb_dim = int(meta["emb_dim"])
        self.sample_rate = int(meta["sample_rate"])
        self.min_samples = int(meta["min_samples"])
        self.config = dict(meta["config"])

    def __repr__(self):
        return f"Encoder({self.model_id!r}, emb_dim={self.emb_dim}, min_samples={self.min_samples})"

    def embed(self, wavs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Embed a zero-padded batch of waveforms.

        Parameters
        ----------
        wavs : torch.Tensor, shape (B, T), float32
            Waveforms at :attr:`sample_rate`, zero-padded to a common length.
        lengths : torch.Tensor, shape (B,), optional
            Relative lengths in (0, 1] as SpeechBrain's ``wav_lens`` (1 = the whole row); default all ones.

        Returns
        -------
        torch.Tensor, shape (B, emb_dim), float32
            Un-normalised embeddings (score with cosine similarity).

        Raises
        ------
        ValueError
            Wrong shape, NaN/inf samples, lengths outside (0, 1], or a row shorter than :attr:`min_samples`.
        """
        where = f"encoder {self.model_id}"
        if not isinstance(wavs, torch.Tensor):
            wavs = torch.as_tensor(np.asarray(wavs))
        if wavs.ndim != 2 or wavs.shape[0] == 0:
            raise ValueError(f"{where}: wavs must have shape (batch, samples), got {tuple(wavs.shape)}")
        wavs = wavs.detach().to(torch.float32)
        if lengths is None:
            lengths = torch.ones(wavs.shape[0])
        lengths = torch.as_tensor(lengths, dtype=torch.float32).detach().reshape(-1)
        if len(lengths) != wavs.shape[0]:
            raise ValueError(f"{where}: {len(lengths)} lengths for {wavs.shape[0]} waveforms")
        if not torch.isfinite(lengths).all() or (lengths <= 0).any() or (lengths > 1 + 1e-6).any():
            raise ValueError(f"{where}: lengths must be relative lengths in (0, 1], got {lengths.tolist()[:8]}")
        n = torch.round(lengths * wavs.shape[1]).long()
        bad = torch.nonzero(~torch.isfinite(wavs).all(1)).flatten()
        if len(bad):
            raise ValueError(f"{where}: waveform row(s) {bad.tolist()[:8]} contain NaN/inf samples")
        short = torch.nonzero(n < self.min_samples).flatten()
        if len(short):
            i = int(short[0])
            raise ValueError(f"{where}: row {i} has {int(n[i])} samples, fewer than min_samples="
                             f"{self.min_samples} ({self.min_samples / self.sample_rate:.3f} s); pad or drop it")
        # SpeechBrain's x-vector statistics pooling adds tiny random noise to the mean (also in eval mode):
        # a fixed seed on a forked RNG makes embeddings reproducible without touching the caller's RNG.
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            if _takes_lengths(self.modules["embedding_model"]) or bool((n >= wavs.shape[1]).all()):
                emb = _embed_batch(self.modules, wavs, lengths.clamp(max=1.0))
            else:  # the network ignores lengths (ResNet): embed padded rows one by one at their true length
                emb = torch.cat([_embed_batch(self.modules, wavs[i:i + 1, : int(n[i])], torch.ones(1))
                                 for i in range(len(wavs))])
        return emb.float()


def load_encoder(out_dir) -> Encoder:
    """Load an encoder exported by :func:`train_encoder` (``encoder.json`` + ``encoder.safetensors``, no pickle).

    Raises
    ------
    FileNotFoundError
        A file of the export is missing.
    ValueError
        Not an export of this module, or weights that do not match the stored config.
    """
    from safetensors.torch import load_file

    out_dir = Path(out_dir)
    meta_path, w_path = out_dir / META_FILE, out_dir / WEIGHTS_FILE
    for p in (meta_path, w_path):
        if not p.is_file():
            raise FileNotFoundError(f"encoder export incomplete: {p} does not exist")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{meta_path}: not valid JSON ({e})") from e
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{meta_path}: not a {FORMAT} v{FORMAT_VERSION} file (format={meta.get('format')!r}, "
                         f"version={meta.get('format_version')!r})")
    try:
        tensors = load_file(str(w_path))
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(f"{w_path}: not a readable safetensors file ({e})") from e
    ecfg = meta["embedding_config"]
    mods = _build_frontend(ecfg["features"])
    model = _build_embedding_model(ecfg["architecture"], ecfg["arch_kwargs"])
    prefix = "embedding_model."
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{w_path}: weights do not match the architecture in {meta_path} ({e})") from e
    mods["embedding_model"] = model
    return Encoder(mods, meta, source=str(out_dir))


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


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
    ap.add_argument("--device", default=None)
    ap.add_argument("--backend", default="gloo", choices=["gloo", "nccl", "mpi"])
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads per process")
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
    if args.device:
        run_opts["device"] = args.device
    summary = train_encoder(args.manifest, args.out, EncoderConfig.from_dict(d), progress=not args.no_progress,
                            run_opts=run_opts)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
