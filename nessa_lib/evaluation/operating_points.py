"""Operating points of the verification tables: the FAR limits of FRR@FAR and the names of their metrics.

The study passes its own list (``evaluate.far_targets`` in params.yaml, which adds the paper's 12.5 % FAR to 1 %
and 5 %); :data:`DEFAULT_FARS` is what a caller that names none gets.

(Kept apart from :mod:`nessa_lib.evaluation.metrics` on purpose: that module is a dependency of every pipeline
stage, this one only of stages 04-05, so a change to the operating points does not re-run the corpus and encoders.)
"""

from __future__ import annotations

__all__ = ["DEFAULT_FARS", "frr_key"]

# FAR limits of FRR@FAR when a caller names none: 1 % and 5 % (metrics.verification_metrics' own default).
DEFAULT_FARS = (0.01, 0.05)


def frr_key(far: float) -> str:
    """The name of the FRR@FAR metric at FAR limit ``far`` (a fraction): ``frr_at_far`` + ``repr(float(far))``.

    Every table, bootstrap and metrics file names the column this way (as
    :func:`nessa_lib.evaluation.metrics.verification_metrics` does), so a FAR limit always gives one name.

    Examples
    --------
    >>> frr_key(0.01), frr_key(0.125), frr_key(1)
    ('frr_at_far0.01', 'frr_at_far0.125', 'frr_at_far1.0')
    """
    return f"frr_at_far{float(far)!r}"
