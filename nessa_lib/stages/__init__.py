"""The pipeline's stages as code: one module per stage, named like its notebook, its ``params.yaml`` section and its
output folders.

- :mod:`~nessa_lib.stages.schema`              typed, frozen stage parameters read from ``params.yaml``
- :mod:`~nessa_lib.stages.prepare_data`        01: corpus, splits, lists, reference systems
- :mod:`~nessa_lib.stages.train_encoder`       02: train (or describe) one encoder
- :mod:`~nessa_lib.stages.extract_embeddings`  03: embed the splits with one encoder
- :mod:`~nessa_lib.stages.fit_aligners`        04: fit one method on every (X, Y) pair
- :mod:`~nessa_lib.stages.evaluate`            05: tables, claims, A/B case study, ablation, deployment check

Each module holds the stage's ``Params`` (a frozen dataclass: its section of ``params.yaml``, checked on load, every
error naming its key) and the glue its notebook calls; the domain packages (``data``, ``encoders``, ``align``,
``evaluation``) know nothing of stages or of the pipeline. Importing this package loads nothing: a stage's
notebook imports its own module, so editing one stage's module re-runs only that stage.
"""
