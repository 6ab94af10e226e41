"""Exporting the study's trained encoders to other runtimes: a SpeechBrain inference folder
(:func:`export_speechbrain`, loadable by ``EncoderClassifier.from_hparams`` and
:func:`~nessa_lib.encoders.speechbrain_hub.from_speechbrain`) and an ONNX file in WeSpeaker's convention
(:func:`export_onnx`, loadable by :func:`~nessa_lib.encoders.wespeaker.from_wespeaker`).

The study's encoders (:func:`nessa_lib.encoders.export.load_encoder`) are SpeechBrain modules already: ``Fbank``
(``n_fft=400``, 25 ms windows, 10 ms hop, ``n_mels`` from the config), sentence-level ``InputNormalization``
(mean only) and an ``Xvector`` / ``ECAPA_TDNN`` / ``ResNet`` lobe, with un-normalised embeddings. So the SpeechBrain
export is the same three modules in a ``hyperparams.yaml``; resemblyzer's GE2E LSTM is the one encoder of the study
that cannot be expressed that way.

Front-end mismatch: WeSpeaker's runtime feeds its ONNX models Kaldi fbank (``torchaudio.compliance.kaldi``, int16
scale, Hamming window, 80 bins) while the study's encoders were trained on SpeechBrain's ``Fbank`` (different
windowing, mel scale and log floor). An ONNX export therefore takes the study's own (mean-normalised) features as
``feats`` and records that front end in its metadata (``nessa.frontend``); :func:`from_wespeaker` reads it, so the
round trip reproduces the study's embeddings. Other WeSpeaker runtimes would feed Kaldi fbank and get other
embeddings: use the recorded front end with such a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nessa_lib.encoders.hub import ModelFileNotFoundError, NotASpeakerModelError

SB_CLASSES = {"xvector": "speechbrain.lobes.models.Xvector.Xvector",
              "ecapa": "speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN",
              "resnet": "speechbrain.lobes.models.ResNet.ResNet"}
EXPORT_INFO = "nessa_export.json"


class NotExportableError(ValueError):
    """The encoder cannot be expressed in the target format (the message says why)."""


def _load_study_encoder(model_dir):
    """The study encoder of ``model_dir`` and its ``embedding_config``; refuses what is not a trained export."""
    from nessa_lib.encoders.export import load_encoder
    from nessa_lib.encoders.meta import read_meta
    from nessa_lib.encoders.pretrained import PRETRAINED_FORMAT, SOURCE_KINDS

    meta = read_meta(model_dir)
    if meta.get("format") == PRETRAINED_FORMAT and meta.get("name") in SOURCE_KINDS:
        raise NotExportableError(
            f"{Path(model_dir)}: describes a pretrained {meta['name']} model ({meta.get('source')!r}), which is "
            "already in that format; only trained xvector, ecapa and resnet encoders can be exported")
    if meta.get("format") == PRETRAINED_FORMAT:
        arch = meta.get("config", {}).get("architecture", "?")
        raise NotExportableError(
            f"{Path(model_dir)}: the pretrained {arch!r} encoder (resemblyzer's GE2E LSTM with its own VAD and mel "
            "front end) has no SpeechBrain/WeSpeaker counterpart; only trained xvector, ecapa and resnet encoders "
            "can be exported")
    enc = load_encoder(model_dir)
    ecfg = enc.meta["embedding_config"]
    if ecfg["architecture"] not in SB_CLASSES:
        raise NotExportableError(f"{Path(model_dir)}: architecture {ecfg['architecture']!r} has no SpeechBrain class "
                                 f"(exportable: {sorted(SB_CLASSES)})")
    if ecfg.get("normalization") != {"norm_type": "sentence", "std_norm": False}:
        raise NotExportableError(f"{Path(model_dir)}: input normalisation {ecfg.get('normalization')} is not the "
                                 "sentence mean normalisation this exporter writes")
    return enc, ecfg


def _yaml_block(lines: list, key: str, target: str, kwargs: dict) -> None:
    lines.append(f"{key}: !new:{target}")
    # JSON scalars and flow lists are valid YAML and keep types exactly (true/false, ints, floats, lists).
    lines.extend(f"    {k}: {json.dumps(v)}" for k, v in kwargs.items())
    lines.append("")


def _prepare_out_dir(out_dir: Path, overwrite: bool, names) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = [n for n in names if (out_dir / n).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out_dir}: {existing} already exist; pass overwrite=True to replace them")


def export_speechbrain(model_dir, out_dir, *, overwrite: bool = False) -> Path:
    """Export a trained study encoder as a SpeechBrain inference folder (hub layout).

    Writes ``hyperparams.yaml`` (``compute_features``, ``mean_var_norm``, ``embedding_model``, ``modules`` and a
    ``pretrainer`` listing ``embedding_model``), ``embedding_model.ckpt`` (a ``state_dict`` saved with
    ``torch.save``: tensors only, loadable with ``weights_only=True``) and ``nessa_export.json`` (provenance). No
    ``classifier``/``label_encoder``/``mean_var_norm_emb``: the study's exports keep only the embedding network
    and its embeddings are used un-normalised, so ``encode_batch`` works and ``classify_batch`` does not.

    Parameters
    ----------
    model_dir : str or os.PathLike
        A trained encoder's export (``encoder.json`` + ``encoder.safetensors``).
    out_dir : str or os.PathLike
        Folder to write (created).
    overwrite : bool
        Replace files of an earlier export in ``out_dir``.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    FileNotFoundError
        ``model_dir`` is not an encoder export.
    NotExportableError
        The resemblyzer descriptor (no SpeechBrain class), or an unknown architecture / normalisation.
    FileExistsError
        ``out_dir`` holds an export already and ``overwrite`` is False.

    Examples
    --------
    >>> export_speechbrain("work/encoders/ecapa", "work/sb/ecapa")  # doctest: +SKIP
    >>> from speechbrain.inference.speaker import EncoderClassifier  # doctest: +SKIP
    >>> EncoderClassifier.from_hparams(source="work/sb/ecapa").encode_batch(torch.randn(1, 16000)).shape  # doctest: +SKIP
    torch.Size([1, 1, 192])
    """
    import torch

    from nessa_lib.io import atomic_write_text

    enc, ecfg = _load_study_encoder(model_dir)
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir, overwrite, ("hyperparams.yaml", "embedding_model.ckpt", EXPORT_INFO))
    lines = [f"# SpeechBrain inference folder exported by nessa_lib.zoo.export_speechbrain from {enc.model_id}.",
             "# Load offline: EncoderClassifier.from_hparams(source=<this folder>) or nessa_lib.zoo.from_speechbrain.",
             f"sample_rate: {int(enc.sample_rate)}", ""]
    _yaml_block(lines, "compute_features", "speechbrain.lobes.features.Fbank", ecfg["features"])
    _yaml_block(lines, "mean_var_norm", "speechbrain.processing.features.InputNormalization", ecfg["normalization"])
    _yaml_block(lines, "embedding_model", SB_CLASSES[ecfg["architecture"]], ecfg["arch_kwargs"])
    lines += ["modules:", *(f"    {m}: !ref <{m}>" for m in ("compute_features", "mean_var_norm", "embedding_model")),
              "",
              "# No paths: the pretrainer loads <source>/embedding_model.ckpt from whatever folder this is read from.",
              "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer",
              "    loadables:", "        embedding_model: !ref <embedding_model>", ""]
    state = {k: v.detach().cpu().contiguous().clone() for k, v in enc.modules["embedding_model"].state_dict().items()}
    tmp = out_dir / "embedding_model.ckpt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, out_dir / "embedding_model.ckpt")
    atomic_write_text(out_dir / "hyperparams.yaml", "\n".join(lines))
    info = {"exported_by": "nessa_lib.zoo.export_speechbrain", "source": str(Path(model_dir)),
            "source_model_id": enc.model_id, "embedding_config": ecfg}
    atomic_write_text(out_dir / EXPORT_INFO, json.dumps(info, indent=1) + "\n")
    return out_dir


def _feats_to_embs(model):
    """The exported graph: mean-normalised features (B, T, F) -> embeddings (B, D)."""
    import torch

    class FeatsToEmbs(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, feats):
            emb = self.model(feats)  # no lengths: every frame of feats is valid (WeSpeaker's convention)
            return emb.reshape(emb.shape[0], -1)

    return FeatsToEmbs(model).eval()


def _freeze_pooling_noise(model, probe_feats) -> int:
    """Replace SpeechBrain's StatisticsPooling noise by the values a seeded single-row call draws.

    ``StatisticsPooling`` adds ~1e-5 Gaussian noise to the pooled mean, also in eval mode; the study's
    ``Encoder.embed`` seeds it with 0, and ONNX has no seeded generator. Baking in the noise that seed 0 gives a
    single row makes the ONNX model reproduce ``Encoder.embed`` row by row. Returns how many poolings were patched.
    """
    import torch
    from speechbrain.nnet.pooling import StatisticsPooling

    pools = [m for m in model.modules() if isinstance(m, StatisticsPooling) and m.return_mean]
    if not pools:
        return 0
    # The pooled size of each pooling: run one row through the network and record the noise shapes it asks for.
    shapes = []
    for p in pools:
        orig = p._get_gauss_noise
        p._get_gauss_noise = lambda shape, device="cpu", _o=orig: (shapes.append(tuple(shape)), _o(shape, device))[1]
    with torch.no_grad():
        model(probe_feats)
    for p in pools:
        del p._get_gauss_noise
    if len(shapes) != len(pools):
        raise NotExportableError(f"expected {len(pools)} noise draws in statistics pooling, saw {len(shapes)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # as Encoder.embed: the first random draw after seed 0 is the pooling noise
        noises = [p._get_gauss_noise((1,) + s[1:]) for p, s in zip(pools, shapes)]
    for p, noise in zip(pools, noises):
        p.register_buffer("_frozen_noise", noise.clone(), persistent=False)
        p._get_gauss_noise = lambda shape, device="cpu", _p=p: _p._frozen_noise.expand(shape)
    return len(pools)


def export_onnx(model_dir, out_path, *, overwrite: bool = False, opset: int = 17) -> Path:
    """Export a trained study encoder's embedding network as ONNX in WeSpeaker's convention.

    The graph maps ``feats`` (B, T, n_mels) -> ``embs`` (B, emb_dim), dynamic B and T, where ``feats`` are the
    study's own features (SpeechBrain ``Fbank`` with the per-utterance mean removed; see the module docstring for
    why not Kaldi fbank). The front end is recorded in the file's ``metadata_props`` (``nessa.frontend``, plus
    ``nessa.source_model_id``), which :func:`~nessa_lib.encoders.wespeaker.from_wespeaker` reads. Exported with the
    TorchScript-based exporter (``dynamo=False``: the dynamo exporter needs ``onnxscript``), then checked on another
    batch size and length against PyTorch.

    Parameters
    ----------
    model_dir : str or os.PathLike
        A trained encoder's export.
    out_path : str or os.PathLike
        The ``.onnx`` file to write.
    overwrite : bool
        Replace an existing ``out_path``.
    opset : int
        ONNX opset (WeSpeaker's exporter uses 14; 17 by default here, as benchmarks/bench_extract.py).

    Returns
    -------
    pathlib.Path
        ``out_path``.

    Raises
    ------
    NotExportableError
        Not exportable (resemblyzer), or the exported graph disagrees with PyTorch on the check input.
    FileExistsError
        ``out_path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> export_onnx("work/encoders/ecapa", "work/onnx/ecapa.onnx")  # doctest: +SKIP
    >>> from_wespeaker("work/onnx/ecapa.onnx").frontend["kind"]  # doctest: +SKIP
    'speechbrain'
    """
    import warnings

    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    enc, ecfg = _load_study_encoder(model_dir)
    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} already exists; pass overwrite=True to replace it")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    n_mels = int(ecfg["features"]["n_mels"])
    model = enc.modules["embedding_model"]
    g = torch.Generator().manual_seed(0)
    _freeze_pooling_noise(model, torch.randn(1, 50, n_mels, generator=g))
    wrapper = _feats_to_embs(model)
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python ints in SpeechBrain's lobes
            torch.onnx.export(wrapper, (torch.randn(1, 200, n_mels, generator=g),), str(tmp), dynamo=False,
                              opset_version=int(opset), input_names=["feats"], output_names=["embs"],
                              dynamic_axes={"feats": {0: "B", 1: "T"}, "embs": {0: "B"}},
                              # Folding batch norms into convolutions at export rounds differently from PyTorch
                              # (measured: 3x the error on a ResNet); onnxruntime optimises the graph at load anyway.
                              do_constant_folding=False)
        proto = onnx.load(str(tmp))
        frontend = {"kind": "speechbrain", "features": ecfg["features"], "normalization": ecfg["normalization"]}
        for key, value in (("nessa.frontend", json.dumps(frontend, sort_keys=True)),
                           ("nessa.source_model_id", enc.model_id)):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        # A traced graph can freeze a shape it saw; check another batch size and length against PyTorch.
        x = torch.randn(2, 137, n_mels, generator=g)
        x = x - x.mean(dim=1, keepdim=True)
        with torch.no_grad():
            want = wrapper(x).numpy()
        sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        (got,) = sess.run(["embs"], {"feats": x.numpy()})
        err = float(np.max(np.abs(got - want)))
        if not np.isfinite(err) or err > 1e-4 * max(1.0, float(np.max(np.abs(want)))):
            raise NotExportableError(f"{model_dir}: the ONNX graph differs from PyTorch by {err:.2e} on a (2, 137, "
                                     f"{n_mels}) input; not writing {out_path}")
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


__all__ = ["export_speechbrain", "export_onnx", "NotExportableError", "ModelFileNotFoundError",
           "NotASpeakerModelError"]
