"""Train small speaker encoders with SpeechBrain and export them without pickle.

The study needs pairs of independently trained encoders that differ in architecture, objective, embedding size
and quality. Three defaults (:data:`~nessa_lib.encoders.config.DEFAULT_CONFIGS`) cover that range:

================  ===========================  ===================================  =====
name              architecture                 objective                            dim
================  ===========================  ===================================  =====
``xvector``       SpeechBrain ``Xvector`` TDNN  softmax over training speakers       128
``ecapa``         ``ECAPA_TDNN``               AAM-softmax (additive angular margin) 192
``ecapa-supcon``  ``ECAPA_TDNN``               supervised contrastive (InfoNCE), no  192
                                               classifier head; P speakers x K utts
================  ===========================  ===================================  =====

(``resnet``, SpeechBrain's ResNet lobe, is also available but slow on CPU.)

Training runs through :class:`speechbrain.core.Brain` with SpeechBrain's ``Checkpointer``: one checkpoint per
epoch under ``out_dir/checkpoints``, so calling ``train_encoder`` again with the same ``out_dir`` resumes after the
last finished epoch. Under ``torchrun`` SpeechBrain's DDP support is used (gloo backend on CPU)::

    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 -m nessa_lib.encoders \\
        --manifest data/prepare_data/manifest.csv --out models/ecapa --config '{"name": "ecapa"}'

Modules, one concern each:

- :mod:`~nessa_lib.encoders.config`      :class:`EncoderConfig`, the export's constants, the default configs
- :mod:`~nessa_lib.encoders.modules`     building the SpeechBrain modules and running them on waveforms
- :mod:`~nessa_lib.encoders.data`        speaker subsets, audio in memory or streamed from the files, random crops,
  batch samplers
- :mod:`~nessa_lib.encoders.shards`      packing a manifest into WebDataset tar shards and streaming them
  (``python -m nessa_lib.encoders.shards``)
- :mod:`~nessa_lib.encoders.brain`       the training ``Brain``, checkpoints, :func:`train_encoder`
- :mod:`~nessa_lib.encoders.export`      the export (``encoder.safetensors`` + ``encoder.json``),
  :class:`Encoder` and :func:`load_encoder`
- :mod:`~nessa_lib.encoders.pretrained`  the pretrained resemblyzer encoder and one loader for every encoder
- :mod:`~nessa_lib.encoders.extract`     embedding every utterance of a manifest, real-time factor
- :mod:`~nessa_lib.encoders.extract_cli` ``python -m nessa_lib.encoders.extract_cli`` (also under ``torchrun``)
- :mod:`~nessa_lib.encoders.cli`         ``python -m nessa_lib.encoders`` (also under ``torchrun``)

The names of the former single module ``nessa_lib.encoders`` (``EncoderConfig``, ``train_encoder``,
``load_encoder``, ...) stay importable from here. They are resolved on first use, so importing a submodule (say
:mod:`~nessa_lib.encoders.extract`) does not load SpeechBrain and the training code.
"""

# Where each re-exported name lives. Each branch of __getattr__ below is a plain import statement, so the import
# graph (nessa_lib.pipeline.deps) still sees every module a user of these names may run.
_CONFIG = ("ARCHITECTURES", "OBJECTIVES", "FORMAT", "FORMAT_VERSION", "SAMPLE_RATE", "WEIGHTS_FILE", "META_FILE",
           "CKPT_DIR", "DEFAULT_CONFIGS", "EncoderConfig", "default_config")
_MODULES = ("build_modules",)
_DATA = ("select_speakers", "CropDataset", "collate_crops", "CropSampler", "SpeakerBatchSampler")
_LOSSES = ("CLASSIFICATION_OBJECTIVES", "supcon_loss")
_BRAIN = ("EncoderBrain", "train_encoder", "train_or_describe", "training_metrics")
_EXPORT = ("Encoder", "load_encoder")
_CLI = ("main",)

__all__ = [*_CONFIG, *_MODULES, *_DATA, *_LOSSES, *_BRAIN, *_EXPORT, *_CLI]


def __getattr__(name):
    if name in _CONFIG:
        from nessa_lib.encoders import config as module
    elif name in _MODULES:
        from nessa_lib.encoders import modules as module
    elif name in _DATA:
        from nessa_lib.encoders import data as module
    elif name in _LOSSES:
        from nessa_lib import losses as module
    elif name in _BRAIN:
        from nessa_lib.encoders import brain as module
    elif name in _EXPORT:
        from nessa_lib.encoders import export as module
    elif name in _CLI:
        from nessa_lib.encoders import cli as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
