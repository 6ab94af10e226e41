"""WeSpeaker ONNX speaker encoders behind the extraction protocol of :mod:`nessa_lib.encoders.extract`.

WeSpeaker's released ONNX models take ``feats`` (B, T, 80) Kaldi filterbank features with the per-utterance mean
removed and return ``embs`` (B, D). The features are computed as WeSpeaker's own Python runtime does
(wenet-e2e/wespeaker, ``wespeaker/bin/infer_onnx.py`` ``compute_fbank``; ``wespeaker/cli/speaker.py``
``compute_features`` and the training pipeline's ``wespeaker/dataset/processor.py`` ``compute_fbank`` use the same
settings, the latter with dither during training):
the waveform scaled to the int16 range (``* (1 << 15)``), ``torchaudio.compliance.kaldi.fbank(num_mel_bins=80,
frame_length=25, frame_shift=10, dither=0.0, sample_frequency=16000, window_type='hamming', use_energy=False)``,
then CMN without CVN (``mat - mean(mat, dim=0)``). The C++ runtime (``runtime/core/speaker/speaker_engine.cc``,
``ApplyMean``) does the same mean subtraction.

Encoders of the study exported with :func:`nessa_lib.encoders.interop.export_onnx` use the same input/output
convention, but their features are the study's own SpeechBrain ``Fbank`` (not Kaldi's): the export records that
front end in the ONNX file's ``metadata_props`` (key ``nessa.frontend``) and :func:`from_wespeaker` uses it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from nessa_lib.encoders.hub import ModelFileNotFoundError, NotASpeakerModelError, check_batch, file_fingerprint, \
    shortest_input

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
INPUT_NAME, OUTPUT_NAME = "feats", "embs"
FRONTEND_KEY = "nessa.frontend"
# WeSpeaker's feature settings (see the module docstring); num_mel_bins comes from the model's input shape.
KALDI_FBANK = dict(frame_length=25, frame_shift=10, dither=0.0, sample_frequency=SAMPLE_RATE, window_type="hamming",
                   use_energy=False)


def kaldi_fbank(wav, num_mel_bins: int = 80):
    """WeSpeaker's features of one waveform: Kaldi fbank of the int16-scaled samples, mean over time removed.

    Parameters
    ----------
    wav : torch.Tensor, shape (n,)
        Float waveform at 16 kHz in [-1, 1].
    num_mel_bins : int
        Filterbank channels (80 for every released WeSpeaker model).

    Returns
    -------
    torch.Tensor, shape (frames, num_mel_bins)

    Examples
    --------
    >>> import torch
    >>> kaldi_fbank(0.1 * torch.randn(16000)).shape  # 25 ms windows every 10 ms, no padding at the edges
    torch.Size([98, 80])
    """
    import torch
    import torchaudio.compliance.kaldi as kaldi

    mat = kaldi.fbank(wav.reshape(1, -1).to(torch.float32) * (1 << 15), num_mel_bins=int(num_mel_bins),
                      **KALDI_FBANK)
    return mat - torch.mean(mat, dim=0)


class _StudyFrontend:
    """The study's front end (SpeechBrain ``Fbank`` + sentence mean normalisation) for one unpadded waveform."""

    def __init__(self, features: dict):
        from nessa_lib.encoders.modules import _build_frontend

        self.fbank = _build_frontend(features)["compute_features"].eval()

    def __call__(self, wav):
        import torch

        with torch.no_grad():
            feats = self.fbank(wav.reshape(1, -1))[0]
        # InputNormalization(norm_type="sentence", std_norm=False) over a whole (unpadded) row is this mean removal.
        return feats - feats.mean(dim=0)


class WeSpeakerEncoder:
    """An ONNX speaker model in WeSpeaker's convention behind the extraction protocol (see :func:`from_wespeaker`).

    Each row of a padded batch is featurised from its valid samples only (``round(length * T)``, SpeechBrain's
    relative-length convention); rows of equal length run through onnxruntime together.

    Attributes
    ----------
    model_id : str
        ``wespeaker@<hash>`` of the ONNX file's bytes and the front end used.
    sample_rate, min_samples, emb_dim : int
        16000, shortest accepted input in samples (bisection at load time), embedding size.
    frontend : dict
        ``{"kind": "kaldi", "num_mel_bins": F}`` (WeSpeaker's) or ``{"kind": "speechbrain", "features": {...}}``
        (a study encoder's, from the file's metadata).
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, path: Path, session, frontend: dict):
        import torch

        self.path = path
        self.session = session
        self.frontend = frontend
        self.model_id = self.fingerprint()
        if frontend["kind"] == "kaldi":
            nmel = int(frontend["num_mel_bins"])
            self._features = lambda w: kaldi_fbank(w, nmel)
            floor = SAMPLE_RATE * KALDI_FBANK["frame_length"] // 1000  # one Kaldi frame (snip_edges)
        else:
            self._features = _StudyFrontend(frontend["features"])
            floor = SAMPLE_RATE * int(frontend["features"].get("win_length", 25)) // 1000
        where = f"WeSpeaker model {path}"
        g = torch.Generator().manual_seed(0)
        try:
            probe = self._run([0.1 * torch.randn(SAMPLE_RATE, generator=g)])
        except Exception as e:
            raise NotASpeakerModelError(f"{where}: fails on 1 s of audio with front end {frontend} "
                                        f"({type(e).__name__}: {e})") from e
        if probe.ndim != 2:
            raise NotASpeakerModelError(f"{where}: output {OUTPUT_NAME!r} has shape {tuple(probe.shape)}, "
                                        "expected (batch, dim)")
        self.emb_dim = int(probe.shape[1])

        def ok(n):
            try:
                e = self._run([0.1 * torch.randn(n, generator=torch.Generator().manual_seed(0))])
                return bool(torch.isfinite(e).all())
            except Exception:  # onnxruntime raises its own error types for too-short inputs
                return False

        self.min_samples = shortest_input(ok, floor=floor, limit=SAMPLE_RATE, where=where)

    def fingerprint(self) -> str:
        """The model id of the file as it is now (equal to :attr:`model_id` unless it changed since loading)."""
        return file_fingerprint("wespeaker", {"model.onnx": self.path}, {"frontend": self.frontend})

    def __repr__(self):
        return f"WeSpeakerEncoder({self.model_id!r}, emb_dim={self.emb_dim}, min_samples={self.min_samples})"

    def _run(self, wavs):
        """Embed equally long unpadded waveforms (a list of 1-D tensors) in one onnxruntime call."""
        import numpy as np
        import torch

        import onnxruntime as ort

        feats = np.stack([self._features(w).numpy() for w in wavs]).astype(np.float32, copy=False)
        quiet = ort.RunOptions()
        quiet.log_severity_level = 4  # failures still raise (with the message); the bisection's would also log
        (embs,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: feats}, quiet)
        return torch.from_numpy(np.asarray(embs, dtype=np.float32).reshape(len(wavs), -1))

    def embed(self, wavs, lengths=None):
        """Embed a zero-padded batch of 16 kHz waveforms.

        Parameters
        ----------
        wavs : torch.Tensor, shape (B, T), float
            Waveforms in [-1, 1], zero-padded to a common length.
        lengths : torch.Tensor, shape (B,), optional
            Relative lengths in (0, 1]; default all ones. Padding never reaches the model.

        Returns
        -------
        torch.Tensor, shape (B, emb_dim), float32

        Raises
        ------
        ValueError
            Wrong shape, NaN/inf samples, lengths outside (0, 1], or a row shorter than :attr:`min_samples`.
        """
        import torch

        wavs, _, n = check_batch(f"WeSpeaker model {self.model_id}", wavs, lengths, self.min_samples,
                                 self.sample_rate)
        out = torch.empty(len(wavs), self.emb_dim)
        for k in torch.unique(n).tolist():
            rows = torch.nonzero(n == k).flatten().tolist()
            out[rows] = self._run([wavs[i, :k] for i in rows])
        return out


def _session(path: Path, device: str):
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    # Follow torch's thread setting (OMP_NUM_THREADS / torch.set_num_threads) instead of taking every core.
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    opts.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError(f"device={device!r}: this onnxruntime has no CUDAExecutionProvider")
        providers.insert(0, "CUDAExecutionProvider")
    elif str(device) != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:
        raise NotASpeakerModelError(f"{path}: not a loadable ONNX model ({type(e).__name__}: {e})") from e


def from_wespeaker(path, *, device: str = "cpu", frontend: str | None = None) -> WeSpeakerEncoder:
    """A WeSpeaker-convention ONNX speaker model (``feats`` (B, T, F) -> ``embs`` (B, D)) run with onnxruntime.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.onnx`` file (e.g. WeSpeaker's ``voxceleb_resnet34.onnx``, or :func:`~nessa_lib.zoo.export_onnx`'s
        output). Read locally; nothing is downloaded.
    device : str
        ``"cpu"`` or ``"cuda[:N]"`` (needs onnxruntime-gpu).
    frontend : {None, 'kaldi', 'speechbrain'}
        Features fed to the model. ``None``: what the file's metadata records (``nessa.frontend``, written by
        :func:`~nessa_lib.zoo.export_onnx`), else WeSpeaker's Kaldi fbank. ``'kaldi'`` forces WeSpeaker's;
        ``'speechbrain'`` requires the recorded study front end.

    Returns
    -------
    WeSpeakerEncoder

    Raises
    ------
    ModelFileNotFoundError
        ``path`` does not exist.
    NotASpeakerModelError
        Not an ONNX model with input ``feats`` (B, T, F) and output ``embs``, or it fails on 1 s of audio.

    Examples
    --------
    >>> enc = from_wespeaker("models/voxceleb_resnet34.onnx")  # doctest: +SKIP
    >>> enc.embed(0.1 * torch.randn(2, 16000), torch.tensor([1.0, 0.6])).shape  # doctest: +SKIP
    torch.Size([2, 256])
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelFileNotFoundError(f"WeSpeaker model: {p} does not exist" if not p.exists()
                                     else f"WeSpeaker model: {p} is a folder, expected an .onnx file")
    if frontend not in (None, "kaldi", "speechbrain"):
        raise ValueError(f"frontend must be None, 'kaldi' or 'speechbrain', got {frontend!r}")
    p = p.resolve()
    session = _session(p, device)
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs or len(inputs[INPUT_NAME].shape) != 3:
        raise NotASpeakerModelError(
            f"{p}: expected input {INPUT_NAME!r} of shape (B, T, F) and output {OUTPUT_NAME!r} (WeSpeaker's "
            f"convention), found inputs {[(i.name, i.shape) for i in inputs.values()]} and outputs {outputs}")
    n_feat = inputs[INPUT_NAME].shape[2]
    meta = session.get_modelmeta().custom_metadata_map or {}
    recorded = None
    if FRONTEND_KEY in meta:
        try:
            recorded = json.loads(meta[FRONTEND_KEY])
        except json.JSONDecodeError as e:
            raise NotASpeakerModelError(f"{p}: metadata {FRONTEND_KEY!r} is not valid JSON ({e})") from e
    if frontend == "speechbrain" and recorded is None:
        raise ValueError(f"{p}: frontend='speechbrain' asked for, but the file records no {FRONTEND_KEY!r} "
                         "(only exports of nessa_lib.zoo.export_onnx do)")
    if frontend == "kaldi" or recorded is None:
        if recorded is not None:
            logger.warning("%s: was exported with the study's front end %s; using WeSpeaker's Kaldi fbank as asked",
                           p, recorded)
        spec = {"kind": "kaldi", "num_mel_bins": int(n_feat) if isinstance(n_feat, int) else 80}
    else:
        spec = {"kind": "speechbrain", "features": recorded["features"]}
        if isinstance(n_feat, int) and int(spec["features"]["n_mels"]) != n_feat:
            raise NotASpeakerModelError(f"{p}: records {spec['features']['n_mels']} mels but takes {n_feat}")
    return WeSpeakerEncoder(p, session, spec)
