"""The data side of the study: audio loading, the manifest, splits, enrollment/trial lists, dataset readers.

- :mod:`nessa_lib.data.audio`     validated audio loading and probing, manifest segments, skip reports
- :mod:`nessa_lib.data.manifest`  the manifest columns, validation, segments, reading/writing ``manifest.csv``
- :mod:`nessa_lib.data.splits`    speaker-disjoint train / align / eval splits, per-speaker utterance subsets
- :mod:`nessa_lib.data.lists`     enrollment and trial lists (building, reading, writing)
- :mod:`nessa_lib.data.readers`   manifests from real datasets on disk (folders, VoxCeleb), official trial lists
- :mod:`nessa_lib.data.sources`   the synthetic corpus's manifest or a real dataset read in place; waveforms
- :mod:`nessa_lib.data.augment`   session variability (noise, reverberation, EQ, telephone, speed) presets
- :mod:`nessa_lib.data.synth`     the synthetic eSpeak NG corpus

Importing this package loads nothing: import the module you need.
"""
