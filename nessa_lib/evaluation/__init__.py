"""Evaluation: verification metrics, cosine scoring, list scoring, the study's tables, A/B case study, ablation
and the paper's findings (one module each).

- :mod:`~nessa_lib.evaluation.metrics`    EER, minDCF, FRR at a FAR, DET curve (numpy only)
- :mod:`~nessa_lib.evaluation.scoring`    L2 normalisation, voice profiles, vectorised cosine trial scoring
- :mod:`~nessa_lib.evaluation.lists`      scoring enrollment and trial lists (:func:`score_lists`,
  :func:`evaluate_lists`)
- :mod:`~nessa_lib.evaluation.bootstrap`  the speaker-level bootstrap behind every interval
- :mod:`~nessa_lib.evaluation.tables`     fitting every method of a pair, its table, the gain recovered
- :mod:`~nessa_lib.evaluation.ab`         the A/B case study: thresholds calibrated on held-out voices
- :mod:`~nessa_lib.evaluation.ablation`   how much alignment data: nested subsets of the fit pool
- :mod:`~nessa_lib.evaluation.findings`   the paper's three claims judged on paired bootstrap statistics
- :mod:`~nessa_lib.evaluation.baselines`  spectral reference systems (mean MFCC)

Importing this package loads nothing: import the module you need.
"""
