"""Resemblyzer's pretrained GE2E LSTM (shipped inside the ``resemblyzer`` wheel, nothing downloaded) behind the
study's :class:`~nessa_lib.encoders.protocol.Encoder` protocol, with its two-step ``prepare`` / ``embed_prepared``.
"""

from __future__ import annotations

import logging

import numpy as np

from nessa_lib.embeddings import fingerprint

logger = logging.getLogger(__name__)


class ResemblyzerEncoder:
    """Resemblyzer's pretrained GE2E voice encoder (3-layer LSTM, 256-d) behind the extraction protocol.

    The weights ship inside the ``resemblyzer`` wheel; nothing is downloaded. Each waveform goes through
    resemblyzer's own preprocessing (``preprocess_wav(w, source_sr=16000)``: volume normalised up to -30 dBFS,
    long silences cut with webrtcvad) and ``VoiceEncoder.embed_utterance`` (mean of L2-normalised 1.6 s partial
    embeddings, L2-normalised again). Two guards resemblyzer lacks:

    * if the VAD keeps less than ``min_voiced_s`` seconds (and less than the whole clip) - very short clips,
      non-speech sounds, near-silence - the untrimmed normalised waveform is embedded instead, with a logged
      warning (resemblyzer would embed an empty waveform: the same vector for every such clip);
    * digital silence (all samples 0) raises ``ValueError`` (resemblyzer turns it into NaN samples and then a
      meaningless embedding), as :func:`nessa_lib.data.audio.load_audio` refuses such files.

    Parameters
    ----------
    min_voiced_s : float
        Least speech, in seconds, the VAD must keep for the trimmed waveform to be used.
    device : str
        Torch device for the LSTM.

    Attributes
    ----------
    model_id : str
        ``resemblyzer@<hash>`` of the weights, the resemblyzer version and the preprocessing settings.
    sample_rate, min_samples, emb_dim : int
        16000, 400 (one 25 ms mel window; shorter clips are zero-padded by resemblyzer anyway), 256.

    Examples
    --------
    >>> import torch
    >>> enc = ResemblyzerEncoder()  # doctest: +SKIP
    >>> enc.embed(0.1 * torch.randn(2, 16000), torch.ones(2)).shape  # doctest: +SKIP
    torch.Size([2, 256])
    """

    sample_rate = 16000
    min_samples = 400
    emb_dim = 256

    def __init__(self, *, min_voiced_s: float = 0.5, device: str = "cpu"):
        # Imported here: resemblyzer pulls in librosa and webrtcvad, which importing nessa_lib must not.
        import warnings
        from importlib.metadata import version

        with warnings.catch_warnings():
            # Import-time deprecation notices from resemblyzer 0.1.4's dependencies (scipy.ndimage.morphology,
            # webrtcvad's pkg_resources): not actionable here, and they would repeat in every log.
            warnings.filterwarnings("ignore", message=".*scipy.ndimage.morphology.*", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            from resemblyzer import VoiceEncoder
            from resemblyzer.hparams import audio_norm_target_dBFS

        if not (np.isfinite(min_voiced_s) and min_voiced_s >= 0):
            raise ValueError(f"min_voiced_s must be a finite number >= 0, got {min_voiced_s!r}")
        self.min_voiced_s = float(min_voiced_s)
        self._target_dbfs = audio_norm_target_dBFS
        self._model = VoiceEncoder(device, verbose=False).eval()
        config = {
            "name": "resemblyzer",
            "version": version("resemblyzer"),
            "preprocess": "normalize_volume(increase_only)+trim_long_silences, untrimmed if too little voiced",
            "min_voiced_s": self.min_voiced_s,
        }
        self.model_id = fingerprint(self._model.state_dict(), config, "resemblyzer")

    def preprocess(self, wav: np.ndarray) -> np.ndarray:
        """Resemblyzer's ``preprocess_wav`` for 16 kHz input, with the fallbacks described in the class.

        Parameters
        ----------
        wav : numpy.ndarray, shape (n,)
            Mono waveform at 16 kHz.

        Returns
        -------
        numpy.ndarray, shape (m,), float32
            Normalised waveform, silences trimmed unless that leaves too little.

        Raises
        ------
        ValueError
            Empty input, NaN/inf samples or digital silence.
        """
        from resemblyzer import audio as rz_audio

        wav = np.asarray(wav, dtype=np.float32).reshape(-1)
        if wav.size == 0:
            raise ValueError("resemblyzer: empty waveform")
        if not np.isfinite(wav).all():
            raise ValueError("resemblyzer: waveform contains NaN/inf samples")
        if not np.any(wav):
            raise ValueError("resemblyzer: waveform is digital silence (all samples 0); it carries no speaker "
                             "information and resemblyzer would turn it into NaN")
        # The two steps of preprocess_wav(wav, source_sr=16000) (its resampling is a no-op at 16 kHz), called
        # separately so the untrimmed normalised waveform is at hand for the fallback.
        norm = rz_audio.normalize_volume(wav, self._target_dbfs, increase_only=True).astype(np.float32)
        trimmed = rz_audio.trim_long_silences(norm)
        if len(trimmed) < min(len(norm), int(self.min_voiced_s * self.sample_rate)):
            logger.warning("resemblyzer: VAD kept %.2f s of a %.2f s clip; embedding the untrimmed clip",
                           len(trimmed) / self.sample_rate, len(norm) / self.sample_rate)
            return norm
        return np.asarray(trimmed, dtype=np.float32)

    def prepare(self, wav: np.ndarray) -> np.ndarray:
        """The partial mel spectrograms ``embed_utterance`` would feed the LSTM for one waveform.

        :meth:`preprocess`, then resemblyzer's slicing and padding (defaults rate=1.3, min_coverage=0.75) and its
        mel spectrogram: the per-utterance half of the work, which extraction runs where it decodes the audio
        (:mod:`nessa_lib.encoders.extract`; on 2 cores, ``processes=2`` is what pays, not ``workers``).

        Parameters
        ----------
        wav : numpy.ndarray, shape (n,)
            Mono waveform at 16 kHz, unpadded.

        Returns
        -------
        numpy.ndarray, shape (k, 160, 40), float32
            ``k`` partials of 1.6 s.

        Raises
        ------
        ValueError
            What :meth:`preprocess` refuses.
        """
        from resemblyzer import audio as rz_audio

        wav = self.preprocess(wav)
        wav_slices, mel_slices = self._model.compute_partial_slices(len(wav), 1.3, 0.75)
        if wav_slices[-1].stop >= len(wav):
            wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)), "constant")
        mel = rz_audio.wav_to_mel_spectrogram(wav)
        return np.stack([mel[s] for s in mel_slices])

    def embed_prepared(self, prepared) -> "torch.Tensor":
        """Embed a batch given as :meth:`prepare` results: the partials of all of them through one LSTM call, then
        each waveform's partial embeddings averaged and L2-normalised as ``embed_utterance`` does.

        Parameters
        ----------
        prepared : list of numpy.ndarray, shape (k_i, 160, 40)

        Returns
        -------
        torch.Tensor, shape (B, 256), float32
            Unit-norm embeddings.
        """
        import torch

        owner = np.repeat(np.arange(len(prepared)), [len(p) for p in prepared])
        with torch.no_grad():
            emb = self._model(torch.from_numpy(np.concatenate(prepared)).to(self._model.device)).cpu().numpy()
        out = np.empty((len(prepared), self.emb_dim), dtype=np.float32)
        for i in range(len(prepared)):
            raw = emb[owner == i].mean(axis=0)
            out[i] = raw / np.linalg.norm(raw, 2)
        return torch.from_numpy(out)

    def embed(self, wavs, lengths):
        """Embed a zero-padded batch: resemblyzer's ``embed_utterance`` for each waveform, with the partial
        utterances of the whole batch run through the LSTM together (:meth:`prepare` each waveform, then
        :meth:`embed_prepared`).

        ``embed_utterance`` cuts a waveform into 1.6 s partials (rate 1.3 per second, last one kept at >= 75 %
        coverage), embeds each and averages; it runs one small LSTM batch per utterance, whose per-step overhead
        dominated extraction (about 70 % of the time). The partials of every waveform of the batch go through one
        LSTM call instead (rows of an LSTM batch are independent; the result agrees with one call per utterance to
        float rounding, cosine > 0.99999), then each waveform's partial embeddings are averaged and normalised as
        ``embed_utterance`` does.

        Parameters
        ----------
        wavs : torch.Tensor, shape (B, T), float32
            Waveforms at 16 kHz, zero-padded at the end.
        lengths : torch.Tensor, shape (B,)
            Length of each waveform relative to ``T``, in (0, 1].

        Returns
        -------
        torch.Tensor, shape (B, 256), float32
            Unit-norm embeddings.

        Raises
        ------
        ValueError
            Bad shapes, or a waveform :meth:`preprocess` refuses (the message gives its batch index).
        """
        import torch

        wavs = torch.as_tensor(wavs)
        lengths = torch.as_tensor(lengths, dtype=torch.float64).reshape(-1)
        if wavs.ndim != 2 or len(lengths) != wavs.shape[0]:
            raise ValueError(f"resemblyzer: expected wavs (B, T) and lengths (B,), got {tuple(wavs.shape)} and "
                             f"{tuple(lengths.shape)}")
        total = wavs.shape[1]
        x = wavs.detach().cpu().numpy().astype(np.float32, copy=False)
        prepared = []
        for i, (w, rel) in enumerate(zip(x, lengths.tolist())):
            n = min(total, max(1, int(round(rel * total))))
            try:
                prepared.append(self.prepare(w[:n]))
            except ValueError as e:
                raise ValueError(f"batch item {i}: {e}") from e
        return self.embed_prepared(prepared)
