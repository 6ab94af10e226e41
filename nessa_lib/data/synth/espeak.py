"""In-process eSpeak NG text-to-speech through ``ctypes`` (the library and data shipped by ``espeakng_loader``).

The C library is a process-global singleton with hidden state: it is loaded and initialised lazily, on the
first call that needs it (importing this module has no side effect), and at most once per data directory.

Determinism. Noise sources inside eSpeak (breath noise, Klatt noise) draw from eSpeak's own generator and from
libc ``rand()``; :func:`synthesize` reseeds both before every utterance when ``seed`` is given. Some state is
still carried from one utterance to the next inside the library (pitch-flutter phase, automatic gain control,
echo buffer), so the exact samples of an utterance depend on everything the *process* synthesised before it.
The same sequence of calls in a fresh process gives byte-identical audio; a different history may change the
samples (never the voice or the words). :mod:`nessa_lib.data.synth.corpus` relies on this: each worker is a fresh
process with a fixed list of speakers.

Voice variants. A voice name ``"<base>+<variant>"`` selects the language/accent file ``<base>`` and the variant
file ``voices/!v/<variant>`` of the data directory. eSpeak silently ignores a missing variant file; this wrapper
checks that the file exists and raises otherwise. Variant files are re-read on every call, so rewriting one
between utterances changes the voice (see :func:`write_variant`).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import threading
from math import gcd
from pathlib import Path

import numpy as np

__all__ = [
    "ESPEAK_RATE",
    "ENGLISH_ACCENTS",
    "data_path",
    "initialize",
    "synthesize",
    "synthesize_int16",
    "english_accents",
    "make_english_data_dir",
    "write_variant",
    "variant_file",
]

#: Native sample rate of eSpeak NG's output.
ESPEAK_RATE = 22050

#: English language/accent voices shipped with eSpeak NG (base voice names; ``en`` is British English).
ENGLISH_ACCENTS = (
    "en",
    "en-us",
    "en-us-nyc",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
)

# espeak_AUDIO_OUTPUT / flags / parameters from speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}
_DEFAULTS = {"rate": 175, "volume": 100, "pitch": 50, "range": 50}

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_LOCK = threading.RLock()
_STATE: dict = {"lib": None, "libc": None, "path": None, "callback": None, "chunks": []}


def data_path() -> str:
    """Return the eSpeak NG data directory shipped with ``espeakng_loader``.

    Examples
    --------
    >>> os.path.isfile(os.path.join(data_path(), "phontab"))
    True
    """
    import espeakng_loader

    return espeakng_loader.get_data_path()


def _load_library():
    if _STATE["lib"] is None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Terminate.restype = ctypes.c_int
        if hasattr(lib, "espeak_ng_SetRandSeed"):
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        _STATE["libc"] = ctypes.CDLL(None)
        _STATE["lib"] = lib
    return _STATE["lib"]


def _on_audio(wav, n, _events):
    if n > 0 and wav:
        _STATE["chunks"].append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
    return 0


def initialize(path: str | os.PathLike | None = None) -> int:
    """Initialise eSpeak NG once for this process (synchronous mode) and return its sample rate.

    Calling again with the same data directory does nothing; a different directory terminates and
    re-initialises the library.

    Parameters
    ----------
    path : path-like, optional
        An ``espeak-ng-data`` directory. Default: the one shipped with ``espeakng_loader``.

    Examples
    --------
    >>> initialize()
    22050
    """
    path = os.path.abspath(os.fspath(path)) if path is not None else data_path()
    if not os.path.isfile(os.path.join(path, "phontab")):
        raise FileNotFoundError(f"{path} is not an eSpeak NG data directory (no phontab)")
    with _LOCK:
        if _STATE["path"] == path:
            return ESPEAK_RATE
        lib = _load_library()
        if _STATE["path"] is not None:
            lib.espeak_Terminate()
            _STATE["path"] = None
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, path.encode(), _INITIALIZE_DONT_EXIT)
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"espeak_Initialize({path!r}) failed (returned {rate})")
        _STATE["callback"] = _CALLBACK(_on_audio)  # keep a reference: the C side holds a raw pointer
        lib.espeak_SetSynthCallback(_STATE["callback"])
        _STATE["path"] = path
        return rate


def variant_file(path: str | os.PathLike, name: str) -> Path:
    """Path of the voice-variant file ``name`` inside the data directory ``path``.

    Examples
    --------
    >>> variant_file("/x/espeak-ng-data", "nessa").as_posix()
    '/x/espeak-ng-data/voices/!v/nessa'
    """
    return Path(path) / "voices" / "!v" / name


def write_variant(path: str | os.PathLike, name: str, text: str) -> Path:
    """Write (or overwrite) the voice-variant file ``name`` in the data directory ``path``.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> write_variant(d, "v", "language variant\\npitch 90 120\\n").read_text().splitlines()[1]
    'pitch 90 120'
    """
    f = variant_file(path, name)
    f.parent.mkdir(parents=True, exist_ok=True)
    # One temporary per process: two runs sharing a cache folder never rename each other's half-written file.
    tmp = f.with_name(f".{name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, f)
    return f


def english_accents(path: str | os.PathLike | None = None) -> list[str]:
    """English base voices available in a data directory (subset of :data:`ENGLISH_ACCENTS`).

    Examples
    --------
    >>> "en-us" in english_accents()
    True
    """
    gmw = Path(path if path is not None else data_path()) / "lang" / "gmw"
    have = {p.name.lower() for p in gmw.glob("en*")}
    return [a for a in ENGLISH_ACCENTS if a in have]


def make_english_data_dir(dst: str | os.PathLike, src: str | os.PathLike | None = None) -> str:
    """Copy the minimal English subset of an eSpeak NG data directory to ``dst`` and return its path.

    The copy holds the phoneme tables, ``intonations``, ``en_dict``, the English language files and an
    empty ``voices/!v`` folder for the caller's variant files. A small, private voice folder avoids eSpeak's
    limit of about 350 listed voices and leaves the installed data untouched. Existing files are kept.

    Examples
    --------
    >>> import tempfile
    >>> d = make_english_data_dir(tempfile.mkdtemp())
    >>> sorted(os.listdir(d))
    ['en_dict', 'intonations', 'lang', 'phondata', 'phonindex', 'phontab', 'voices']
    """
    src = Path(src if src is not None else data_path())
    dst = Path(dst)
    (dst / "voices" / "!v").mkdir(parents=True, exist_ok=True)
    (dst / "lang" / "gmw").mkdir(parents=True, exist_ok=True)
    todo = [(src / f, dst / f) for f in ("phontab", "phonindex", "phondata", "intonations", "en_dict")]
    todo += [(p, dst / "lang" / "gmw" / p.name) for p in sorted((src / "lang" / "gmw").glob("en*"))]
    for a, b in todo:
        if not b.exists() or b.stat().st_size != a.stat().st_size:
            tmp = b.with_name(f".{b.name}.{os.getpid()}.tmp")
            shutil.copyfile(a, tmp)
            os.replace(tmp, b)
    return str(dst)


def synthesize_int16(
    text: str,
    voice: str = "en",
    *,
    path: str | os.PathLike | None = None,
    rate: int | None = None,
    pitch: int | None = None,
    pitch_range: int | None = None,
    seed: int | None = None,
) -> np.ndarray:
    """Synthesise ``text`` at eSpeak's native 22,050 Hz; return int16 samples.

    Parameters
    ----------
    text : str
        UTF-8 text to speak.
    voice : str
        Voice name, ``"<base>"`` or ``"<base>+<variant>"`` (variant file in ``voices/!v`` of the data dir).
    path : path-like, optional
        Data directory (see :func:`initialize`). Default: the one in use, else the shipped one.
    rate : int, optional
        Speaking rate in words per minute (eSpeak default 175).
    pitch, pitch_range : int, optional
        eSpeak pitch and pitch-range parameters, 0-100 (default 50), relative to the voice.
    seed : int, optional
        Reseed eSpeak's noise generators before synthesis.

    Examples
    --------
    >>> x = synthesize_int16("Hello.", seed=0)
    >>> x.dtype, 0.2 < len(x) / ESPEAK_RATE < 2.0
    (dtype('int16'), True)
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    with _LOCK:
        initialize(path if path is not None else (_STATE["path"] or None))
        lib = _STATE["lib"]
        base, _, variant = voice.partition("+")
        if variant and not variant_file(_STATE["path"], variant).is_file():
            # eSpeak would silently fall back to the plain base voice
            raise FileNotFoundError(f"voice variant {variant!r} not found: {variant_file(_STATE['path'], variant)}")
        err = lib.espeak_SetVoiceByName(voice.encode())
        if err != 0:
            raise ValueError(f"eSpeak has no voice {voice!r} (error {err}) in {_STATE['path']}")
        for key, value in (("rate", rate), ("pitch", pitch), ("range", pitch_range)):
            v = _DEFAULTS[key] if value is None else int(value)
            lib.espeak_SetParameter(_PARAM[key], v, 0)
        if seed is not None:
            s = int(seed) % (2**31 - 1)
            if hasattr(lib, "espeak_ng_SetRandSeed"):
                lib.espeak_ng_SetRandSeed(s)
            _STATE["libc"].srand(ctypes.c_uint(s))
        _STATE["chunks"] = []
        buf = text.encode("utf-8") + b"\0"
        err = lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed (error {err})")
        lib.espeak_Synchronize()
        chunks, _STATE["chunks"] = _STATE["chunks"], []
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


def synthesize(text: str, voice: str = "en", *, sample_rate: int = 16000, **kwargs) -> np.ndarray:
    """Synthesise ``text``; return float32 samples in [-1, 1] at ``sample_rate`` (polyphase resampling).

    Keyword arguments are those of :func:`synthesize_int16`.

    Examples
    --------
    >>> x = synthesize("Good morning.", "en-us", seed=1)
    >>> x.dtype, bool(np.abs(x).max() <= 1.0)
    (dtype('float32'), True)
    """
    from scipy.signal import resample_poly

    x = synthesize_int16(text, voice, **kwargs).astype(np.float32) / 32768.0
    if sample_rate != ESPEAK_RATE:
        g = gcd(int(sample_rate), ESPEAK_RATE)
        x = resample_poly(x, int(sample_rate) // g, ESPEAK_RATE // g).astype(np.float32)
    return np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)
