"""Random synthetic speakers: one eSpeak NG voice *variant* per speaker.

A speaker is an English accent (an eSpeak base voice) plus a variant file that changes the voice source and
the vocal tract: a vocal-tract-length factor scales every formant (with a small per-formant jitter), formant
heights and widths, pitch base and range, flutter, roughness, voicing, breath noise, spectral tone, consonant
strength, speed, stress timing, intonation style and, for some speakers, a Klatt synthesiser mode. Each speaker
also has a nominal speaking rate and per-utterance prosody jitter, applied through eSpeak's parameters.

Parameters are drawn from ``np.random.default_rng([seed, speaker_index])`` so any speaker can be regenerated
on its own; :func:`variant_text` renders them as an eSpeak variant file (see espeak-ng ``docs/voices.md``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from nessa_lib.data.synth.espeak import ENGLISH_ACCENTS

__all__ = ["Voice", "sample_voice", "variant_text", "utterance_prosody", "utterance_voice", "VOICE_VERSION"]

#: Bumped whenever the sampling recipe changes (recorded in every speaker file).
VOICE_VERSION = 1

_DEFAULT_TONE = ((600, 170), (1200, 135), (2000, 110))


@dataclass
class Voice:
    """Parameters of one synthetic speaker (JSON-serialisable through :meth:`to_dict`)."""

    speaker_index: int
    seed: int
    sex: str
    accent: str
    vtl_factor: float
    formants: list = field(default_factory=list)  # 9 rows [freq %, height %, width %]
    pitch_base: int = 82
    pitch_top: int = 118
    flutter: int = 2
    roughness: int = 0
    voicing: int = 100
    breath: list = field(default_factory=list)  # 8 ints, empty: no breath noise
    breathw: list = field(default_factory=list)
    tone: list = field(default_factory=list)  # [[freq Hz, amplitude 0-255], ...]
    consonants: list = field(default_factory=lambda: [100, 100])
    speed: int = 100
    stress_add: list = field(default_factory=lambda: [0] * 8)
    intonation: int = 1
    klatt: int = 0
    rate_wpm: int = 175
    rate_jitter: float = 0.06
    pitch_jitter: float = 4.0
    range_jitter: float = 8.0
    formant_jitter: float = 0.02
    version: int = VOICE_VERSION

    def to_dict(self) -> dict:
        """Plain ``dict`` of the parameters.

        Examples
        --------
        >>> sample_voice(0, 0).to_dict()["speaker_index"]
        0
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Voice":
        """Inverse of :meth:`to_dict`.

        Examples
        --------
        >>> v = sample_voice(1, 3)
        >>> Voice.from_dict(v.to_dict()) == v
        True
        """
        return cls(**d)


def sample_voice(seed: int, speaker_index: int, accents=ENGLISH_ACCENTS) -> Voice:
    """Draw the voice of speaker ``speaker_index`` from ``np.random.default_rng([seed, speaker_index])``.

    Parameters
    ----------
    seed : int
        Corpus seed.
    speaker_index : int
        Index of the speaker in the corpus (>= 0).
    accents : sequence of str
        English base voices to choose the accent from.

    Returns
    -------
    Voice

    Examples
    --------
    >>> v = sample_voice(0, 7)
    >>> v == sample_voice(0, 7), v == sample_voice(0, 8)
    (True, False)
    >>> v.sex in ("female", "male")
    True
    """
    if int(speaker_index) < 0 or int(seed) < 0:
        raise ValueError(f"seed and speaker_index must be >= 0, got {seed}, {speaker_index}")
    rng = np.random.default_rng([int(seed), int(speaker_index)])
    sex = "female" if rng.random() < 0.5 else "male"
    accent = str(accents[int(rng.integers(len(accents)))])
    female = sex == "female"
    # vocal-tract length: female tracts are ~15 % shorter -> formants ~15 % higher
    vtl = float(np.exp(rng.normal(np.log(1.13 if female else 0.98), 0.04)))
    formants = []
    for n in range(9):
        jit = rng.normal(0.0, 0.025 if 1 <= n <= 5 else 0.05)
        freq = 100.0 * vtl * (1.0 + jit)
        height = 100.0 * np.exp(rng.normal(0.0, 0.14 if n <= 5 else 0.3))
        width = 100.0 * np.exp(rng.normal(0.0, 0.15))
        formants.append([int(round(np.clip(freq, 60, 160))), int(round(np.clip(height, 20, 250))),
                         int(round(np.clip(width, 40, 250)))])
    base = float(np.exp(rng.normal(np.log(185 if female else 100), 0.12)))
    top = base * float(np.exp(rng.uniform(np.log(1.15), np.log(1.9))))
    flutter = int(rng.choice([0, 1, 2, 2, 3, 4, 6, 8, 12]))
    roughness = int(rng.choice([0, 0, 0, 0, 1, 2, 3, 4, 5]))
    voicing = int(round(np.clip(rng.normal(100, 15), 55, 140)))
    breath, breathw = [], []
    if rng.random() < 0.35:
        amp = rng.uniform(3, 30)
        breath = [int(round(max(0.0, amp * rng.uniform(0.3, 1.2)))) for _ in range(8)]
        if rng.random() < 0.5:
            breathw = [int(round(w * np.exp(rng.normal(0, 0.3)))) for w in (150, 150, 200, 200, 400, 400, 400, 400)]
    tone = [[int(round(f * np.exp(rng.normal(0, 0.15)))), int(round(np.clip(a * np.exp(rng.normal(0, 0.25)), 20, 255)))]
            for f, a in _DEFAULT_TONE]
    if rng.random() < 0.4:  # an extra high-frequency point: brighter or duller top end
        tone.append([int(round(rng.uniform(2800, 4500))), int(round(rng.uniform(40, 220)))])
    tone.sort()
    consonants = [int(round(np.clip(100 * np.exp(rng.normal(0, 0.25)), 40, 200))) for _ in range(2)]
    speed = int(round(np.clip(100 * np.exp(rng.normal(0, 0.08)), 80, 125)))
    stress_add = [int(round(x)) for x in rng.normal(0, 12, size=8)]
    intonation = int(rng.choice([1, 1, 1, 2, 2, 3, 4], p=None))
    klatt = int(rng.choice([0, 1, 2, 3, 4, 5, 6], p=[0.55, 0.05, 0.08, 0.08, 0.08, 0.08, 0.08]))
    rate_wpm = int(round(np.clip(rng.normal(170, 18), 125, 220)))
    return Voice(
        speaker_index=int(speaker_index), seed=int(seed), sex=sex, accent=accent, vtl_factor=round(vtl, 4),
        formants=formants, pitch_base=int(round(base)), pitch_top=int(round(top)), flutter=flutter,
        roughness=roughness, voicing=voicing, breath=breath, breathw=breathw, tone=tone, consonants=consonants,
        speed=speed, stress_add=stress_add, intonation=intonation, klatt=klatt, rate_wpm=rate_wpm,
        rate_jitter=round(float(rng.uniform(0.03, 0.08)), 3), pitch_jitter=round(float(rng.uniform(2, 7)), 2),
        range_jitter=round(float(rng.uniform(4, 14)), 2),
        formant_jitter=round(float(rng.uniform(0.015, 0.035)), 4),
    )


def variant_text(voice: Voice | dict, name: str = "nessa") -> str:
    """Render ``voice`` as the text of an eSpeak NG voice-variant file (``voices/!v/<name>``).

    Examples
    --------
    >>> t = variant_text(sample_voice(0, 0))
    >>> t.splitlines()[0], "formant 1 " in t, "pitch " in t
    ('language variant', True, True)
    """
    v = Voice.from_dict(voice) if isinstance(voice, dict) else voice
    lines = ["language variant", f"name {name}", f"gender {v.sex}", ""]
    lines.append(f"pitch {v.pitch_base} {v.pitch_top}")
    for n, (f, h, w) in enumerate(v.formants):
        lines.append(f"formant {n} {f} {h} {w}")
    lines.append(f"flutter {v.flutter}")
    lines.append(f"roughness {v.roughness}")
    lines.append(f"voicing {v.voicing}")
    if v.breath:
        lines.append("breath " + " ".join(map(str, v.breath)))
    if v.breathw:
        lines.append("breathw " + " ".join(map(str, v.breathw)))
    if v.tone:
        lines.append("tone " + "  ".join(f"{f} {a}" for f, a in v.tone))
    lines.append(f"consonants {v.consonants[0]} {v.consonants[1]}")
    lines.append(f"speed {v.speed}")
    lines.append("stressAdd " + " ".join(map(str, v.stress_add)))
    lines.append(f"intonation {v.intonation}")
    if v.klatt:
        lines.append(f"klatt {v.klatt}")
    return "\n".join(lines) + "\n"


def utterance_prosody(voice: Voice | dict, rng: np.random.Generator) -> dict:
    """Per-utterance eSpeak parameters (``rate`` wpm, ``pitch`` and ``pitch_range`` 0-100) around the speaker's.

    Examples
    --------
    >>> p = utterance_prosody(sample_voice(0, 0), np.random.default_rng(0))
    >>> sorted(p)
    ['pitch', 'pitch_range', 'rate']
    """
    v = Voice.from_dict(voice) if isinstance(voice, dict) else voice
    rate = v.rate_wpm * float(np.exp(rng.normal(0, v.rate_jitter)))
    pitch = 50 + rng.normal(0, v.pitch_jitter)
    prange = 50 + rng.normal(0, v.range_jitter)
    return {"rate": int(round(np.clip(rate, 80, 400))), "pitch": int(round(np.clip(pitch, 20, 80))),
            "pitch_range": int(round(np.clip(prange, 10, 95)))}


def utterance_voice(voice: Voice | dict, rng: np.random.Generator) -> Voice:
    """The speaker's voice as used for one utterance: all formants shifted together and heights jittered.

    Real speakers never produce the same vocal-tract configuration twice; the shift is log-normal with the
    speaker's ``formant_jitter`` (a few percent), heights vary by ~5 %.

    Examples
    --------
    >>> v = sample_voice(0, 0)
    >>> u = utterance_voice(v, np.random.default_rng(0))
    >>> u.speaker_index == v.speaker_index, u.formants != v.formants
    (True, True)
    """
    v = Voice.from_dict(voice) if isinstance(voice, dict) else Voice.from_dict(voice.to_dict())
    shift = float(np.exp(rng.normal(0.0, v.formant_jitter)))
    v.formants = [[int(round(np.clip(f * shift, 55, 170))), int(round(np.clip(h * np.exp(rng.normal(0, 0.05)), 10, 255))), w]
                  for f, h, w in v.formants]
    return v
