"""Benchmark: CPU embedding-extraction speed of candidate speaker encoders, side by side in one run, 1 thread.

RTF = processing time / audio time (lower is faster), 3 s clips of random audio, batch 1, best of several
interleaved rounds, each measured with :func:`nessa_lib.encoders.extract.real_time_factor`:

- SpeechBrain ECAPA-TDNN C=512 (channels [512]*4 + [1536], 192-d) with its Fbank front end (80 mels) in PyTorch;
- the same model exported to ONNX (legacy TorchScript exporter, ``dynamo=False``, opset 17) and run with
  onnxruntime on 1 intra-op thread: embedding model on precomputed fbank features, and the whole pipeline
  (PyTorch Fbank + onnxruntime model); exporting Fbank itself is tried too;
- ECAPA-TDNN C=256 and SpeechBrain Xvector (24 mels, 512-d), PyTorch;
- resemblyzer's GE2E LSTM (pretrained weights from its wheel; VAD, mel and LSTM in numpy/librosa/torch).

SpeechBrain models have random weights: their cost does not depend on the weights' values. Sentence-level mean
normalisation of the features (as SpeechBrain's ECAPA recipe) is part of every SpeechBrain model here.
Reference (field notes E): WeSpeaker reports RTF 0.0184 for ECAPA C=512 on onnxruntime, 1 thread, Xeon Platinum
8160, 5 s chunks. No target: the script reports, and exits 0 even when the ONNX export fails (it says why).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_extract.py`` (about a minute).
"""

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

from nessa_lib.encoders.extract import real_time_factor
from nessa_lib.encoders.resemblyzer import ResemblyzerEncoder
from machine import cpu_name  # benchmarks/machine.py (scripts run with their folder on sys.path)

SR = 16000
SECONDS = 3.0
ROUNDS, REPEATS = 5, 4  # real_time_factor(repeats=REPEATS) per round; rounds interleave the models
WESPEAKER_ECAPA512_ORT_RTF = 0.0184


class MeanNormModel(torch.nn.Module):
    """Sentence mean normalisation + embedding model: fbank features (B, T, F) -> embedding (B, D)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, feats):
        return self.model(feats - feats.mean(dim=1, keepdim=True)).squeeze(1)


class FbankAndModel(torch.nn.Module):
    """Waveform (B, T) -> embedding: the whole pipeline, for the Fbank-inclusive ONNX export attempt."""

    def __init__(self, fbank, model):
        super().__init__()
        self.fbank, self.model = fbank, model

    def forward(self, wavs):
        return self.model(self.fbank(wavs))


class TorchEncoder:
    """A SpeechBrain front end + model behind nessa_lib.encoders.extract's encoder protocol (batch 1: no lengths)."""

    sample_rate, min_samples = SR, 400

    def __init__(self, name, fbank, model, emb_dim):
        self.model_id, self.fbank, self.model, self.emb_dim = name, fbank.eval(), MeanNormModel(model).eval(), emb_dim

    def embed(self, wavs, lengths):
        with torch.no_grad():
            return self.model(self.fbank(wavs))


class OrtEncoder:
    """PyTorch Fbank + onnxruntime embedding model, behind the encoder protocol."""

    sample_rate, min_samples = SR, 400

    def __init__(self, name, fbank, session, emb_dim):
        self.model_id, self.fbank, self.session, self.emb_dim = name, fbank.eval(), session, emb_dim
        self.input_name = session.get_inputs()[0].name

    def embed(self, wavs, lengths):
        with torch.no_grad():
            feats = self.fbank(wavs).numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: feats})[0])


class OrtModelOnly(OrtEncoder):
    """onnxruntime on precomputed features (the fbank of the timing clip), to separate model cost from fbank."""

    def __init__(self, name, session, emb_dim, feats):
        super().__init__(name, torch.nn.Identity(), session, emb_dim)
        self.feats = feats

    def embed(self, wavs, lengths):
        return torch.from_numpy(self.session.run(None, {self.input_name: self.feats})[0])


def n_params(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


@contextlib.contextmanager
def quiet_fds():
    """Silence file descriptors 1 and 2: on failure the exporter's C++ side dumps the whole graph there."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [devnull]:
            os.close(fd)


def export_onnx(module, example, path, input_name) -> None:
    """Legacy (TorchScript) exporter, opset 17, dynamic batch and time axes; raises on failure."""
    with warnings.catch_warnings(), quiet_fds():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(module, (example,), path, dynamo=False, opset_version=17, input_names=[input_name],
                          output_names=["emb"], dynamic_axes={input_name: {0: "batch", 1: "time"}})


def ort_session(path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def first_line(e: Exception) -> str:
    # The legacy exporter's messages embed the whole TorchScript graph; the first line says what went wrong.
    msg = str(e).strip().splitlines()[0].split(" [Caused by")[0]
    return f"{type(e).__name__}: {msg[:200].strip()}"


def main() -> int:
    t_start = time.perf_counter()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    from speechbrain.lobes.features import Fbank
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    from speechbrain.lobes.models.Xvector import Xvector

    import onnxruntime

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cpu={cpu_name()} cores={os.cpu_count()} load={load:.2f} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
          f" torch={torch.__version__} threads={torch.get_num_threads()} onnxruntime={onnxruntime.__version__}")
    print(f"RTF = processing time / audio time; {SECONDS:g} s random-audio clips, batch 1, best of "
          f"{ROUNDS}x{REPEATS} interleaved calls. SpeechBrain models have RANDOM weights (cost does not depend on "
          "their values); resemblyzer uses its pretrained weights.")

    fb80 = Fbank(n_mels=80)
    ecapa512 = ECAPA_TDNN(80, channels=[512, 512, 512, 512, 1536], lin_neurons=192)
    encoders = {
        "ECAPA C=512 (PyTorch)": TorchEncoder("ecapa512", fb80, ecapa512, 192),
        "ECAPA C=256 (PyTorch)": TorchEncoder("ecapa256", Fbank(n_mels=80),
                                              ECAPA_TDNN(80, channels=[256, 256, 256, 256, 768], lin_neurons=192),
                                              192),
        "Xvector (PyTorch)": TorchEncoder("xvector", Fbank(n_mels=24), Xvector(in_channels=24, lin_neurons=512), 512),
    }
    notes = {k: f"{n_params(e.model):.2f} M params" for k, e in encoders.items()}
    notes["ECAPA C=512 (PyTorch)"] += ", Fbank 80"

    failed = []
    wav = torch.from_numpy((0.1 * np.random.default_rng(0).standard_normal((1, int(SECONDS * SR)))).astype(np.float32))
    with torch.no_grad():
        feats = fb80(wav)
        ref = encoders["ECAPA C=512 (PyTorch)"].model(feats).numpy()
    tmp = tempfile.mkdtemp(prefix="bench_extract_")
    onnx_path = os.path.join(tmp, "ecapa512.onnx")
    max_diff = None
    try:
        t = time.perf_counter()
        export_onnx(encoders["ECAPA C=512 (PyTorch)"].model, feats, onnx_path, "feats")
        t_export = time.perf_counter() - t
        sess = ort_session(onnx_path)
        out = sess.run(None, {"feats": feats.numpy()})[0]
        max_diff = float(np.abs(out - ref).max())
        # A second length checks the dynamic time axis really is dynamic.
        with torch.no_grad():
            f2 = fb80(wav[:, : int(1.7 * SR)])
            diff2 = float(np.abs(sess.run(None, {"feats": f2.numpy()})[0]
                                 - encoders["ECAPA C=512 (PyTorch)"].model(f2).numpy()).max())
        max_diff = max(max_diff, diff2)
        encoders["ECAPA C=512 (onnxruntime, model only)"] = OrtModelOnly("ecapa512-ort", sess, 192, feats.numpy())
        encoders["ECAPA C=512 (PyTorch Fbank + onnxruntime)"] = OrtEncoder("ecapa512-ort", fb80, sess, 192)
        notes["ECAPA C=512 (onnxruntime, model only)"] = f"exported in {t_export:.1f} s, fbank precomputed"
        notes["ECAPA C=512 (PyTorch Fbank + onnxruntime)"] = "1 intra-op thread"
    except Exception as e:  # the benchmark goes on without ONNX; the failure is listed at the end
        failed.append(f"ONNX export/run of ECAPA C=512 embedding model: {first_line(e)}")
    try:
        export_onnx(FbankAndModel(fb80, encoders["ECAPA C=512 (PyTorch)"].model).eval(), wav,
                    os.path.join(tmp, "ecapa512_fbank.onnx"), "wav")
        notes["ECAPA C=512 (PyTorch Fbank + onnxruntime)"] += " (Fbank also exports; not timed)"
    except Exception as e:
        failed.append(f"ONNX export of Fbank + ECAPA C=512 (waveform input): {first_line(e)}")

    encoders["resemblyzer GE2E LSTM"] = ResemblyzerEncoder()
    rz_params = n_params(encoders["resemblyzer GE2E LSTM"]._model)
    notes["resemblyzer GE2E LSTM"] = (f"{rz_params:.2f} M params, pretrained, VAD + mel incl.; "
                                      "noise input: VAD keeps nothing, whole clip embedded")
    # Random audio is not speech: the wrapper's VAD fallback warns on every call. Expected here; keep output clean.
    logging.getLogger("nessa_lib.encoders.pretrained").setLevel(logging.ERROR)

    rtf = {k: np.inf for k in encoders}
    for _ in range(ROUNDS):
        for k, enc in encoders.items():
            rtf[k] = min(rtf[k], real_time_factor(enc, seconds=SECONDS, repeats=REPEATS, batch=1))

    width = max(len(k) for k in encoders)
    print(f"\n{'model':<{width}}  {'RTF':>8}  {'x real time':>11}  notes")
    for k, v in rtf.items():
        print(f"{k:<{width}}  {v:8.4f}  {1 / v:11.0f}  {notes.get(k, '')}")
    print(f"{'WeSpeaker reference: ECAPA C=512, ort':<{width}}  {WESPEAKER_ECAPA512_ORT_RTF:8.4f}  "
          f"{1 / WESPEAKER_ECAPA512_ORT_RTF:11.0f}  1 thread, Xeon Platinum 8160, 5 s chunks (published)")

    pt = rtf["ECAPA C=512 (PyTorch)"]
    if max_diff is not None:
        model_only = rtf["ECAPA C=512 (onnxruntime, model only)"]
        pipeline = rtf["ECAPA C=512 (PyTorch Fbank + onnxruntime)"]
        print(f"\nonnx/pytorch RTF ratio, ECAPA C=512: {pipeline / pt:.2f} (whole pipeline), "
              f"{model_only / pt:.2f} (onnxruntime model only vs PyTorch Fbank + model)")
        print(f"ONNX vs PyTorch outputs (3.0 s and 1.7 s inputs): max abs diff {max_diff:.2e} "
              f"(embedding max abs {np.abs(ref).max():.2f})")
        print(f"ours / WeSpeaker, ECAPA C=512 onnxruntime: {model_only / WESPEAKER_ECAPA512_ORT_RTF:.2f} "
              "(different CPU and chunk length; WeSpeaker's figure may or may not include fbank)")
    if failed:
        print("\nnot measured / failed:")
        for f in failed:
            print(f"  - {f}")
    shutil.rmtree(tmp, ignore_errors=True)  # the session holds the model in memory; the ~25 MB file can go
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
