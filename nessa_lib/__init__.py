"""nessa_lib: align speaker-embedding spaces of two independently trained models.

Import the module you need; importing the package itself loads nothing. Laid out in layers, each importing only
those below it (``tests/test_layers.py`` checks it):

- helpers: ``paths``, ``io``, ``checks``, ``batches``, ``parallel``, ``devices``, ``losses``, ``plots``, ``toy``,
  and ``embeddings`` (pickle-free embedding files carrying the model fingerprint)
- ``nessa_lib.data``: audio, manifest, splits, enrollment and trial lists, dataset readers, augmentation;
  ``data.synth`` the synthetic eSpeak NG corpus
- ``nessa_lib.encoders`` (config, training, export, pretrained models, extraction; ``nessa_lib.zoo`` the front
  door for SpeechBrain and WeSpeaker models) and, beside it, ``nessa_lib.align`` (``fit(method, ...)`` for NESSA
  M1/M2/M3 and the baselines, safe save/load)
- ``nessa_lib.evaluation``: metrics (EER, minDCF, FRR at a FAR), cosine scoring, the speaker bootstrap, the
  study's tables, A/B case study, ablation and the paper's findings
- ``nessa_lib.deployment`` (the deployment check) and ``nessa_lib.migrate`` (``python -m nessa_lib.migrate``:
  migrate stored profiles through an aligner file)
- ``nessa_lib.stages``: one module per pipeline stage, with its parameters
- ``nessa_lib.pipeline``: the whole ``params.yaml`` checked, layout, dependencies, the stage runner, the report
"""

__version__ = "0.1.0"
