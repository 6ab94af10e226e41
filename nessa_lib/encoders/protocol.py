"""What every speaker encoder of the study offers: the interface extraction (:mod:`nessa_lib.encoders.extract`), the
real-time factor and the pipeline rely on, as ``typing.Protocol`` classes (structural: an encoder need not inherit
from them).

The study's encoders follow :class:`Encoder`: the trained ones (:class:`nessa_lib.encoders.export.Encoder`),
resemblyzer's (:class:`nessa_lib.encoders.resemblyzer.ResemblyzerEncoder`), SpeechBrain hub models
(:class:`nessa_lib.encoders.speechbrain_hub.SpeechBrainEncoder`) and WeSpeaker ONNX models
(:class:`nessa_lib.encoders.wespeaker.WeSpeakerEncoder`). An encoder whose per-utterance work is worth running where
the audio is decoded also follows :class:`PreparingEncoder` (resemblyzer's does): extraction then calls
``prepare`` in the decoding workers or processes and ``embed_prepared`` on each batch, with the same embeddings as
``embed``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

#: The members of :class:`Encoder`, checked by name before an extraction starts (a clear ``TypeError``).
MEMBERS = ("model_id", "sample_rate", "min_samples", "emb_dim", "embed")


@runtime_checkable
class Encoder(Protocol):
    """A speaker encoder: padded float32 waveforms in, one embedding per waveform out.

    Attributes
    ----------
    model_id : str
        Fingerprint of the weights and the configuration, e.g. ``"ecapa@1a2b3c4d5e6f"``; every embedding file
        carries it.
    sample_rate : int
        Sample rate of the waveforms ``embed`` takes (16000 for every encoder of the study).
    min_samples : int
        Shortest input (in samples) the model accepts; extraction repeat-pads shorter clips to it.
    emb_dim : int
        Embedding dimension.

    Examples
    --------
    >>> import torch
    >>> class Zeros:
    ...     model_id, sample_rate, min_samples, emb_dim = "zeros@0", 16000, 1, 2
    ...     def embed(self, wavs, lengths=None):
    ...         return torch.zeros(len(wavs), self.emb_dim)
    >>> isinstance(Zeros(), Encoder), isinstance(Zeros(), PreparingEncoder)
    (True, False)
    """

    model_id: str
    sample_rate: int
    min_samples: int
    emb_dim: int

    def embed(self, wavs, lengths) -> Any:
        """``(B, T)`` float32 tensor (zero-padded) and ``(B,)`` relative lengths in (0, 1] -> ``(B, emb_dim)``."""
        ...


@runtime_checkable
class PreparingEncoder(Encoder, Protocol):
    """An :class:`Encoder` that splits its work in two: per-utterance preparation, then the batched model.

    Examples
    --------
    >>> import numpy as np, torch
    >>> class Means:
    ...     model_id, sample_rate, min_samples, emb_dim = "means@0", 16000, 1, 1
    ...     def embed(self, wavs, lengths=None):
    ...         return self.embed_prepared([self.prepare(w.numpy()) for w in wavs])
    ...     def prepare(self, wave):
    ...         return np.float32(wave.mean())
    ...     def embed_prepared(self, prepared):
    ...         return torch.tensor(np.asarray(prepared)[:, None])
    >>> isinstance(Means(), PreparingEncoder)
    True
    """

    def prepare(self, wave) -> Any:
        """One unpadded float32 waveform -> whatever ``embed_prepared`` takes (e.g. its features)."""
        ...

    def embed_prepared(self, prepared) -> Any:
        """A list of ``prepare`` results -> ``(B, emb_dim)``, the same as ``embed`` gives for those waveforms."""
        ...


def is_preparing(encoder) -> bool:
    """Whether ``encoder`` offers the two-step protocol (:class:`PreparingEncoder`) with a callable ``prepare``.

    Examples
    --------
    >>> class A:
    ...     prepare = None
    ...     def embed_prepared(self, prepared): ...
    >>> is_preparing(A())
    False
    """
    return callable(getattr(encoder, "prepare", None)) and hasattr(encoder, "embed_prepared")
