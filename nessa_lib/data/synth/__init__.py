"""The study's default corpus: synthetic multi-speaker English speech from eSpeak NG, offline and reproducible.

- :mod:`nessa_lib.data.synth.corpus`     ``generate_corpus``: speakers sharded to spawned worker processes
- :mod:`nessa_lib.data.synth.espeak`     in-process eSpeak NG through ``ctypes``
- :mod:`nessa_lib.data.synth.voices`     random speakers as eSpeak voice variants
- :mod:`nessa_lib.data.synth.sentences`  a small English grammar for the texts
- :mod:`nessa_lib.data.synth.augment`    session variability (noise, reverberation, EQ, telephone, speed)

Importing this package loads nothing: import the module you need.
"""
