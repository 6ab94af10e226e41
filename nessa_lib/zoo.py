"""Moved to :mod:`nessa_lib.encoders.pretrained`; this alias keeps `from nessa_lib import zoo` working."""

from nessa_lib.encoders.pretrained import (  # noqa: F401
    META_FILE,
    PRETRAINED,
    PRETRAINED_FORMAT,
    export_pretrained,
    load,
    objective,
    read_meta,
)

__all__ = ["PRETRAINED", "PRETRAINED_FORMAT", "META_FILE", "export_pretrained", "read_meta", "objective", "load"]
