"""The SpeechBrain modules of an encoder (front end, embedding network, classifier head), built from an
:class:`~nessa_lib.encoders.config.EncoderConfig`, and running them on a batch of waveforms."""

from __future__ import annotations

import torch

from nessa_lib.encoders.config import (
    ARCHITECTURES,
    RESNET_BLOCKS,
    RESNET_WIDTHS,
    SAMPLE_RATE,
    EncoderConfig,
    _as_config,
)
from nessa_lib.losses import CLASSIFICATION_OBJECTIVES


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
    widths = cfg.resnet_widths or RESNET_WIDTHS
    return dict(input_size=cfg.n_mels, channels=[w * c for w in widths],
                block_sizes=list(cfg.resnet_blocks or RESNET_BLOCKS), strides=[1, 2, 2, 2], lin_neurons=cfg.emb_dim)


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
