"""Moved to :mod:`nessa_lib.encoders.extract`; this alias keeps `from nessa_lib import extract` working."""

from nessa_lib.encoders.extract import MODES, extract_embeddings, real_time_factor  # noqa: F401
from nessa_lib.encoders.pretrained import ResemblyzerEncoder  # noqa: F401

__all__ = ["MODES", "ResemblyzerEncoder", "extract_embeddings", "real_time_factor"]
