"""Moved to :mod:`nessa_lib.evaluation.baselines`; this alias keeps `from nessa_lib import baselines` working."""

from nessa_lib.evaluation.baselines import frame_stats_embeddings, log_mel_frames, mfcc_frames  # noqa: F401

__all__ = ["log_mel_frames", "mfcc_frames", "frame_stats_embeddings"]
