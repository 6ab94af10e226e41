"""Evaluation: verification metrics, cosine scoring, list scoring, the study's tables, A/B case study, ablation
and the paper's findings (one module each).

Only :func:`score_lists` and :func:`evaluate_lists` (the old ``nessa_lib.evaluation`` module's API, now
:mod:`nessa_lib.evaluation.lists`) are re-exported here; import the other modules by their full name.
"""

from nessa_lib.evaluation.lists import evaluate_lists, score_lists  # noqa: F401

__all__ = ["score_lists", "evaluate_lists"]
