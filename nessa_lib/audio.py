"""Moved to :mod:`nessa_lib.data.audio`; this alias keeps `from nessa_lib import audio` working."""

from nessa_lib.data.audio import (  # noqa: F401
    REASONS,
    AudioError,
    AudioInfo,
    load_audio,
    load_segment,
    manifest_segments,
    probe_audio,
    scan_audio,
    segment_label,
    write_skip_report,
)

__all__ = [
    "REASONS",
    "AudioError",
    "AudioInfo",
    "load_audio",
    "load_segment",
    "manifest_segments",
    "probe_audio",
    "scan_audio",
    "segment_label",
    "write_skip_report",
]
