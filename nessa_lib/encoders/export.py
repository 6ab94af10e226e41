"""An encoder's export (no pickle): writing it after training, and loading it as an :class:`Encoder` for inference.

Export format (``out_dir``):

- ``encoder.safetensors``: the embedding network's ``state_dict`` with keys prefixed ``embedding_model.``
  (plus ``mean_var_norm.*`` statistics if the normaliser had any; the default sentence-level normaliser has none).
- ``encoder.json``: ``format``/``format_version``, ``model_id`` (a :func:`nessa_lib.embeddings.fingerprint` of
  the weights and of everything that changes the embeddings), ``config`` (the
  :class:`~nessa_lib.encoders.config.EncoderConfig`), ``sample_rate``, ``emb_dim``, ``min_samples`` (shortest input
  the network accepts), ``history`` (one record per epoch), ``train_speakers`` and training summary numbers.

:func:`load_encoder` reads only these two files (no ``torch.load``) and returns an :class:`Encoder` whose
``embed(wavs, lengths)`` takes SpeechBrain-style relative lengths.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from nessa_lib.encoders.config import FORMAT, FORMAT_VERSION, META_FILE, SAMPLE_RATE, WEIGHTS_FILE, EncoderConfig
from nessa_lib.encoders.modules import (
    _arch_kwargs,
    _build_embedding_model,
    _build_frontend,
    _embed_batch,
    _feature_kwargs,
    _min_samples,
    _takes_lengths,
)


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

    @property
    def device(self):
        """The torch device the network's weights are on (``cpu`` after :func:`load_encoder`)."""
        return next(self.modules.parameters()).device

    def to(self, device) -> "Encoder":
        """Move the network to ``device`` (in place; returns ``self``). :meth:`embed` then runs there and still
        takes and returns tensors anywhere (inputs are moved to the device, outputs stay on it)."""
        self.modules.to(device)
        return self

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
        dev = self.device
        wavs, lengths = wavs.to(dev), lengths.to(dev)  # no-ops on the CPU
        # SpeechBrain's x-vector statistics pooling adds tiny random noise to the mean (also in eval mode):
        # a fixed seed on a forked RNG makes embeddings reproducible without touching the caller's RNG.
        with torch.no_grad(), torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
            torch.manual_seed(0)
            if _takes_lengths(self.modules["embedding_model"]) or bool((n >= wavs.shape[1]).all()):
                emb = _embed_batch(self.modules, wavs, lengths.clamp(max=1.0))
            else:  # the network ignores lengths (ResNet): embed padded rows one by one at their true length
                emb = torch.cat([_embed_batch(self.modules, wavs[i:i + 1, : int(n[i])], torch.ones(1, device=dev))
                                 for i in range(len(wavs))])
        return emb.float()


def load_encoder(out_dir) -> Encoder:
    """Load an encoder exported by :func:`~nessa_lib.encoders.brain.train_encoder` (``encoder.json`` +
    ``encoder.safetensors``, no pickle).

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
