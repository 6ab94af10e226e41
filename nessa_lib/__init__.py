"""nessa_lib: align speaker-embedding spaces of two independently trained models.

Modules (import the one you need; importing the package itself loads nothing heavy):

- ``nessa_lib.metrics``  EER, minDCF, FRR at a FAR, DET curve (numpy only)
- ``nessa_lib.scoring``  L2 normalisation, voice profiles, vectorised cosine trial scoring
- ``nessa_lib.align``    ``fit(method, ...)`` for NESSA M1/M2/M3 and the baselines, safe save/load
- ``nessa_lib.embeddings``  pickle-free embedding files carrying the model fingerprint
- ``nessa_lib.evaluation``  score enrollment + trial lists and summarise them
- ``nessa_lib.migrate``  migrate stored profiles through an aligner file (``python -m nessa_lib.migrate``)

Data stage: ``synth_corpus`` (eSpeak NG voices via ``espeak``, ``voices``, ``sentences``, ``augment``),
``datasets`` (VoxCeleb, folders), ``audio`` (validated loading), ``manifest`` (one manifest format, splits, lists),
``baselines`` (mean-MFCC), ``prepare``, ``plots``, ``paths``, ``io``. ``toy`` makes synthetic paired spaces.
"""

__version__ = "0.1.0"
