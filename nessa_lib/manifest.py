"""Moved to :mod:`nessa_lib.data.manifest`; this alias keeps `from nessa_lib import manifest` working."""

from nessa_lib.data.lists import (  # noqa: F401
    ENROLL_COLUMNS,
    TRIAL_COLUMNS,
    make_enrollment_and_trials,
    read_enrollment,
    read_trials,
    single_utterance_enrollment,
    write_enrollment,
    write_trials,
)
from nessa_lib.data.manifest import (  # noqa: F401
    COLUMNS,
    SEGMENT_COLUMNS,
    SPLITS,
    read_manifest,
    segment_bound,
    validate_manifest,
    write_manifest,
)
from nessa_lib.data.splits import first_utterances, speaker_disjoint_split  # noqa: F401

__all__ = [
    "COLUMNS",
    "SEGMENT_COLUMNS",
    "SPLITS",
    "TRIAL_COLUMNS",
    "ENROLL_COLUMNS",
    "validate_manifest",
    "segment_bound",
    "write_manifest",
    "read_manifest",
    "first_utterances",
    "speaker_disjoint_split",
    "make_enrollment_and_trials",
    "single_utterance_enrollment",
    "write_trials",
    "write_enrollment",
    "read_trials",
    "read_enrollment",
]
