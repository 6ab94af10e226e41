"""Moved to :mod:`nessa_lib.evaluation` (tables, ab, ablation, findings); this alias keeps `from nessa_lib import study` working."""

from nessa_lib.evaluation.ab import (  # noqa: F401
    AB_CONTROL,
    AB_DEPLOYMENTS,
    AB_M1,
    AB_M2,
    AB_M3,
    AB_REENROLL,
    ab_case_study,
    alignment_trials,
    rates_at_threshold,
    threshold_at_far,
)
from nessa_lib.evaluation.ablation import alignment_ablation  # noqa: F401
from nessa_lib.evaluation.findings import FINDING_A, FINDING_B, FINDING_C, paper_findings  # noqa: F401
from nessa_lib.evaluation.tables import (  # noqa: F401
    NESSA_METHODS,
    SYMMETRIC_X,
    SYMMETRIC_Y,
    aligned_scores,
    compare_methods,
    evaluate_pair,
    fit_aligners,
    gain_recovered,
)
from nessa_lib.losses import CLASSIFICATION_OBJECTIVES, CONTRASTIVE_OBJECTIVES  # noqa: F401

__all__ = [
    "SYMMETRIC_X", "SYMMETRIC_Y", "NESSA_METHODS", "AB_CONTROL", "AB_REENROLL", "AB_M2", "AB_M1", "AB_M3",
    "AB_DEPLOYMENTS", "CLASSIFICATION_OBJECTIVES", "CONTRASTIVE_OBJECTIVES", "gain_recovered", "fit_aligners",
    "aligned_scores", "evaluate_pair", "compare_methods", "alignment_trials", "threshold_at_far",
    "rates_at_threshold", "ab_case_study", "alignment_ablation", "FINDING_A", "FINDING_B", "FINDING_C",
    "paper_findings",
]
