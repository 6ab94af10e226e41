"""Moved to :mod:`nessa_lib.data.readers`; this alias keeps `from nessa_lib import datasets` working."""

from nessa_lib.data.readers import read_folder_dataset, read_voxceleb, read_voxceleb_trials  # noqa: F401

__all__ = ["read_folder_dataset", "read_voxceleb", "read_voxceleb_trials"]
