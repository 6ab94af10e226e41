"""The study's default corpus: synthetic multi-speaker English speech from eSpeak NG, offline and reproducible.

- :mod:`nessa_lib.data.synth.corpus`     ``generate_corpus``: speakers sharded to spawned worker processes
- :mod:`nessa_lib.data.synth.espeak`     in-process eSpeak NG through ``ctypes``
- :mod:`nessa_lib.data.synth.voices`     random speakers as eSpeak voice variants
- :mod:`nessa_lib.data.synth.sentences`  a small English grammar for the texts

Session variability (noise, reverberation, EQ, telephone, speed) is data-level: :mod:`nessa_lib.data.augment`.

Importing this package loads nothing: import the module you need.
"""
