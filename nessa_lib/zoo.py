"""Every way to get an encoder of the study's extraction protocol: the study's own (moved to
:mod:`nessa_lib.encoders.pretrained`; this alias keeps ``from nessa_lib import zoo`` working), SpeechBrain and
WeSpeaker pretrained models (:func:`from_speechbrain`, :func:`from_wespeaker`; as pipeline entries:
:func:`check_entry`, :func:`describe`, and :func:`load`, which raises :class:`SourceChangedError` when a source's
files changed), and exporting the study's trained encoders to those two formats (:func:`export_speechbrain`,
:func:`export_onnx`)."""

from nessa_lib.encoders.hub import (  # noqa: F401
    HubUnreachableError,
    ModelFileNotFoundError,
    NotASpeakerModelError,
)
from nessa_lib.encoders.interop import NotExportableError, export_onnx, export_speechbrain  # noqa: F401
from nessa_lib.encoders.meta import objective, read_meta  # noqa: F401
from nessa_lib.encoders.pretrained import (  # noqa: F401
    META_FILE,
    PRETRAINED,
    PRETRAINED_FORMAT,
    SOURCE_KINDS,
    SourceChangedError,
    check_entry,
    describe,
    export_pretrained,
    load,
)
from nessa_lib.encoders.speechbrain_hub import SpeechBrainEncoder, from_speechbrain  # noqa: F401
from nessa_lib.encoders.wespeaker import WeSpeakerEncoder, from_wespeaker  # noqa: F401

__all__ = ["PRETRAINED", "PRETRAINED_FORMAT", "SOURCE_KINDS", "META_FILE", "export_pretrained", "describe",
           "check_entry", "read_meta", "objective", "load", "SourceChangedError",
           "from_speechbrain", "from_wespeaker", "export_speechbrain", "export_onnx", "SpeechBrainEncoder",
           "WeSpeakerEncoder", "ModelFileNotFoundError", "NotASpeakerModelError", "HubUnreachableError",
           "NotExportableError"]
