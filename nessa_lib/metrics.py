"""Moved to :mod:`nessa_lib.evaluation.metrics`; this alias keeps `from nessa_lib import metrics` working."""

from nessa_lib.evaluation.metrics import (  # noqa: F401
    TrialScores,
    det_curve,
    eer,
    frr_at_far,
    max_false_alarms,
    min_dcf,
    verification_metrics,
)

__all__ = ["TrialScores", "det_curve", "eer", "min_dcf", "frr_at_far", "verification_metrics"]
