"""nessa_lib: align speaker-embedding spaces of two independently trained models.

Modules (import the one you need; importing the package itself loads nothing heavy):

- ``nessa_lib.metrics``  EER, minDCF, FRR at a FAR, DET curve (numpy only)
- ``nessa_lib.scoring``  L2 normalisation, voice profiles, vectorised cosine trial scoring
- ``nessa_lib.align``    ``fit(method, ...)`` for NESSA M1/M2/M3 and the baselines, safe save/load
- ``nessa_lib.embeddings``  pickle-free embedding files carrying the model fingerprint
- ``nessa_lib.evaluation``  score enrollment + trial lists and summarise them
- ``nessa_lib.migrate``  migrate stored profiles through an aligner file (``python -m nessa_lib.migrate``)

Subpackages, laid out like the pipeline: ``nessa_lib.data`` (audio, manifest, splits, lists, dataset readers;
``data.synth`` the synthetic corpus), ``nessa_lib.encoders`` (config, training, export, pretrained models,
extraction), ``nessa_lib.align`` (the aligners), ``nessa_lib.evaluation`` (metrics, scoring, tables, A/B case study,
ablation, findings) and ``nessa_lib.pipeline`` (params, layout, dependencies, the stage runner, the report).
``metrics``, ``scoring``, ``study``, ``manifest``, ``audio``, ``datasets``, ``zoo`` and ``extract`` keep their old
names as aliases. ``plots``, ``paths``, ``io``, ``losses``, ``checks`` and ``toy`` are shared helpers.
"""

__version__ = "0.1.0"
