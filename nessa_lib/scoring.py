"""Moved to :mod:`nessa_lib.evaluation.scoring`; this alias keeps `from nessa_lib import scoring` working."""

from nessa_lib.evaluation.scoring import l2_normalize, make_profiles, score_trials  # noqa: F401

__all__ = ["l2_normalize", "make_profiles", "score_trials"]
