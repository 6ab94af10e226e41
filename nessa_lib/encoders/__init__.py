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
- :mod:`~nessa_lib.encoders.meta`        reading an exported ``encoder.json`` (json only: no torch, no SpeechBrain)
- :mod:`~nessa_lib.encoders.protocol`    the ``Encoder`` protocol every encoder follows (and ``PreparingEncoder``)
- :mod:`~nessa_lib.encoders.crops`       the int16 samples and seeded crop starts every training data path shares
- :mod:`~nessa_lib.encoders.data`        speaker subsets, audio in memory or streamed from the files, random crops,
  batch samplers, the training and validation loaders
- :mod:`~nessa_lib.encoders.shards`      packing a manifest into WebDataset tar shards and streaming them
  (``python -m nessa_lib.encoders.shards``)
- :mod:`~nessa_lib.encoders.brain`       the training ``Brain``, distributed setup, checkpoints, :func:`train_encoder`
- :mod:`~nessa_lib.encoders.export`      the export (``encoder.safetensors`` + ``encoder.json``),
  :class:`Encoder` and :func:`load_encoder`
- :mod:`~nessa_lib.encoders.pretrained`  the pretrained resemblyzer encoder and one loader for every encoder
- :mod:`~nessa_lib.encoders.extract`     embedding every utterance of a manifest (in this process, with DataLoader
  workers, in processes, or one ``torchrun`` shard), real-time factor
- :mod:`~nessa_lib.encoders.extract_cli` ``python -m nessa_lib.encoders.extract_cli`` (also under ``torchrun``)
- :mod:`~nessa_lib.encoders.cli`         ``python -m nessa_lib.encoders`` (also under ``torchrun``)

Importing this package loads nothing: import the submodule that holds a name (``from nessa_lib.encoders.config
import EncoderConfig``, ``from nessa_lib.encoders.brain import train_encoder``), so a caller's import closure (and
the pipeline's dependencies, :mod:`nessa_lib.pipeline.deps`) holds only the code it can run.
"""
