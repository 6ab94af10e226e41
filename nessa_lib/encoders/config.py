"""What defines an encoder: :class:`EncoderConfig` (one training run, JSON-serialisable), the export's
constants, and the study's default configurations (:data:`DEFAULT_CONFIGS`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from nessa_lib.encoders.meta import META_FILE  # noqa: F401 - the export's constants live together here

ARCHITECTURES = ("xvector", "ecapa", "resnet")
# Fields added after the first exports, left out of EncoderConfig.to_dict() while None.
_UNSET_OMITTED = ("max_steps", "resnet_blocks", "resnet_widths")
# The ResNet layout when resnet_blocks / resnet_widths are unset (the study's small ResNet).
RESNET_BLOCKS = (2, 2, 2, 2)
RESNET_WIDTHS = (1, 1, 2, 4)
OBJECTIVES = ("softmax", "aam", "supcon")
#: Where training audio comes from (:func:`nessa_lib.encoders.data.choose_data_path`).
DATA_PATHS = ("auto", "memory", "stream", "shards")
#: Fields that only say how the training data is read, not what is trained: left out of :meth:`EncoderConfig.to_dict`
#: at their defaults (exports of earlier runs keep their bytes) and out of the checkpoint identity, except that
#: ``shards`` (another example order) differs from the others.
DATA_FIELDS = ("data", "preload_max_gb", "data_workers", "shuffle_buffer")
FORMAT = "nessa-encoder"
FORMAT_VERSION = 1
SAMPLE_RATE = 16000
WEIGHTS_FILE = "encoder.safetensors"
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
    resnet_blocks : list of int or None
        ResNet only: residual blocks in each of the 4 stages, e.g. ``[3, 4, 6, 3]`` for a ResNet34.
        ``None`` (default): ``[2, 2, 2, 2]``. Left out of :meth:`to_dict` when ``None``.
    resnet_widths : list of int or None
        ResNet only: the channels of each of the 4 stages as multiples of ``channels``, e.g. ``[1, 2, 4, 8]``
        with ``channels=32`` for WeSpeaker's ResNet34 widths ``32, 64, 128, 256``. ``None`` (default):
        ``[1, 1, 2, 4]``. Left out of :meth:`to_dict` when ``None``.
    crop_s : float
        Length of the random training crops in seconds (shorter utterances are used whole, zero-padded).
    epochs : int
        Passes over the training utterances (one random crop of each utterance per epoch).
    max_steps : int or None
        Stop after this many optimizer steps in all (counted across epochs; the last epoch may end early) and
        export the weights reached; the learning-rate schedule is laid over ``min(max_steps, epochs x steps per
        epoch)`` steps so it still decays. ``None`` (default): no cap, train ``epochs`` full passes. For runs
        on VoxCeleb-size data sized by a step budget, and for smoke tests. Left out of :meth:`to_dict` when
        ``None``, so exports and checkpoints of uncapped runs are unchanged by its existence.
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
    data : {'auto', 'memory', 'stream', 'shards'}
        How training audio is read. 'memory': every utterance decoded into RAM (int16) before the first step.
        'stream': ``data_workers`` DataLoader processes read only each crop's window from its file, so memory does
        not grow with the corpus; the batches are identical to 'memory' (same crops, same samples). 'auto'
        (default): 'memory' when the estimated preload is below ``preload_max_gb``, else 'stream'. 'shards':
        stream WebDataset tar shards written by :mod:`nessa_lib.encoders.shards` (pass their folder to
        :func:`~nessa_lib.encoders.brain.train_encoder` as ``shards=``); a seeded shuffle buffer replaces the global
        shuffle, so the example order differs from the other paths. See docs/scale.md.
    preload_max_gb : float
        'auto' preloads into memory only below this estimated size (int16 samples of the training utterances).
    data_workers : int
        DataLoader worker processes decoding audio for 'stream' and 'shards' (0: in the training process).
    shuffle_buffer : int
        'shards': examples held in the seeded shuffle buffer of each worker.

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
    resnet_blocks: list | None = None
    resnet_widths: list | None = None
    crop_s: float = 1.5
    epochs: int = 4
    max_steps: int | None = None
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
    data: str = "auto"
    preload_max_gb: float = 4.0
    data_workers: int = 1
    shuffle_buffer: int = 2000

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        where = "EncoderConfig"
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"{where}: unknown architecture {self.architecture!r}; valid: {list(ARCHITECTURES)}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"{where}: unknown objective {self.objective!r}; valid: {list(OBJECTIVES)}")
        if self.data not in DATA_PATHS:
            raise ValueError(f"{where}: unknown data {self.data!r}; valid: {list(DATA_PATHS)}")
        if self.data == "shards" and self.objective == "supcon":
            raise ValueError(f"{where}: data='shards' streams examples in shard order and cannot form the P x K "
                             "speaker batches of objective 'supcon'; use data='stream'")
        ints = dict(emb_dim=1, channels=4, n_mels=8, epochs=1, batch_size=2, speakers_per_batch=2,
                    utts_per_speaker=2, res2net_scale=1, speaker_offset=0, valid_utts_per_speaker=0,
                    data_workers=0, shuffle_buffer=1)
        for k, lo in ints.items():
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{where}: {k} must be an integer >= {lo}, got {v!r}")
        floats = dict(crop_s=(0.1, 60), lr=(0, 10), weight_decay=(0, 1), warmup_frac=(0, 1), final_lr_frac=(0, 1),
                      aam_margin=(0, 1.5), aam_scale=(0, 1e3), temperature=(0, 10), valid_crop_s=(0.1, 600),
                      preload_max_gb=(0, 1e5))
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
        if self.max_steps is not None and (isinstance(self.max_steps, bool)
                                           or not isinstance(self.max_steps, (int, np.integer)) or self.max_steps < 1):
            raise ValueError(f"{where}: max_steps must be None or an integer >= 1, got {self.max_steps!r}")
        for k in ("resnet_blocks", "resnet_widths"):
            v = getattr(self, k)
            if v is None:
                continue
            if self.architecture != "resnet":
                raise ValueError(f"{where}: {k} is a ResNet setting; architecture {self.architecture!r} "
                                 "does not use it (leave it unset)")
            if (not isinstance(v, (list, tuple)) or len(v) != 4
                    or any(isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1 for b in v)):
                raise ValueError(f"{where}: {k} must be None or a list of 4 integers >= 1, got {v!r}")
            setattr(self, k, [int(b) for b in v])
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
        """Plain dict (JSON-serialisable); ``max_steps``, ``resnet_blocks`` and ``resnet_widths`` only when set, the
        :data:`DATA_FIELDS` only when not at their defaults.

        Examples
        --------
        >>> "max_steps" in EncoderConfig().to_dict(), EncoderConfig(max_steps=3).to_dict()["max_steps"]
        (False, 3)
        >>> "data" in EncoderConfig().to_dict(), EncoderConfig(data="stream").to_dict()["data"]
        (False, 'stream')
        """
        d = dataclasses.asdict(self)
        # Added after the first exports: omitted when unset, so a run without them writes the same encoder.json
        # and checkpoint config.json as before (same bytes, and old checkpoints still resume).
        for k in _UNSET_OMITTED:
            if d[k] is None:
                del d[k]
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in DATA_FIELDS}
        for k, v in defaults.items():
            if d[k] == v:
                del d[k]
        return d


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
