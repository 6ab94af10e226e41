"""Generate the study's default corpus: synthetic multi-speaker English speech, offline and reproducibly.

Every speaker is a random eSpeak NG voice variant (:mod:`nessa_lib.data.synth.voices`) reading random sentences
(:mod:`nessa_lib.data.synth.sentences`) with per-utterance prosody jitter; a session-variability chain
(:mod:`nessa_lib.data.augment`) can then be applied per utterance. Output layout::

    out_dir/wav/<speaker_id>.wav      16 kHz mono, 16-bit PCM WAV: the speaker's utterances back to back
    out_dir/speakers.jsonl            one line per speaker (by speaker index): voice parameters, variant file text
    out_dir/utterances.jsonl          one record per utterance (also returned), with its segment of the WAV
    out_dir/recipe.json               every argument needed to regenerate the corpus

One recording per speaker, not one file per utterance: a pipeline tool that hashes its data folders (DVC) pays
per file, and 950 files are cheaper to check than 12,000. The utterances are concatenated in utterance order
with no gap, and each record locates its utterance Kaldi-``segments`` style: ``start``/``stop`` are sample
frames (``stop`` exclusive) of ``wav/<speaker_id>.wav``, so ``soundfile.read(path, start=start, stop=stop)``
or :func:`nessa_lib.data.audio.load_segment` returns exactly that utterance.

WAV, not FLAC: every later stage decodes the corpus again (each encoder's training reads the training split,
each encoder's extraction reads all of it), and on the 2-core machine decoding FLAC segments ran at about
1,100 utterances/s against about 4,500 for the same segments of PCM WAV, some 50 s of the whole study. The
samples are the same (FLAC is lossless), so embeddings are unchanged; the price is disk: about 1.5 GB instead
of 0.93 GB.

Reproducibility. eSpeak NG carries hidden state from one utterance to the next inside a process (see
:mod:`nessa_lib.data.synth.espeak`), so the exact samples depend on which utterances a process synthesised before.
Speakers are therefore sharded to worker processes in a fixed way (speaker ``i`` goes to worker
``i % workers``, in increasing order) and every worker is a freshly spawned process. The same ``seed`` and
``workers`` (and package versions) give byte-identical files; a different ``workers`` gives the same voices
and texts but may change some samples. ``workers`` is therefore part of the recipe and recorded in
``recipe.json``.

Workers are started with the ``spawn`` method: a script that calls :func:`generate_corpus` at module level
needs the usual ``if __name__ == "__main__":`` guard (notebooks need nothing).

Each worker uses its own variant file ``voices/!v/nessa<w>`` in a small private English eSpeak data
directory (``cache_dir``, default ``out_dir/.espeak-data``), rewritten before each of its speakers.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import queue
import time
import traceback
from pathlib import Path

import numpy as np

from nessa_lib.data import augment as _aug
from nessa_lib.data.synth import espeak as _es
from nessa_lib.data.synth.sentences import sentence
from nessa_lib.data.synth.voices import VOICE_VERSION, sample_voice, utterance_prosody, utterance_voice, variant_text
from nessa_lib.io import atomic_path, atomic_write_text
from nessa_lib.parallel import die_with_parent

__all__ = ["generate_corpus", "speaker_id", "synthesize_utterance", "trim_silence", "CORPUS_VERSION"]

#: Bumped whenever the generation recipe changes (recorded in ``recipe.json``).
CORPUS_VERSION = 3  # 2: one FLAC per speaker + segments, speakers.jsonl; 3: the same samples as PCM WAV

SAMPLE_RATE = 16000
_BABBLE_INDEX0 = 10**9  # speaker indices of the babble talkers (never corpus speakers)
_N_BABBLE = 12
_CLEAN_PEAK = 10 ** (-3 / 20)  # clean speech is peak-normalised to -3 dBFS (eSpeak's level is arbitrary)


def pcm16(x: np.ndarray) -> np.ndarray:
    """Float samples as 16-bit PCM: ``x * 32768`` rounded to nearest (ties to even) and clipped, the rule
    libsndfile applies when it writes floats to FLAC.

    Examples
    --------
    >>> pcm16(np.array([0.5 / 32768, 1.5 / 32768, -1.0, 1.0, 0.25])).tolist()
    [0, 2, -32768, 32767, 8192]
    """
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def speaker_id(index: int, n_speakers: int = 10000) -> str:
    """Speaker id of speaker ``index``: ``spk`` and at least four digits.

    Examples
    --------
    >>> speaker_id(7), speaker_id(7, 20000)
    ('spk0007', 'spk00007')
    """
    width = max(4, len(str(max(int(n_speakers) - 1, 0))))
    return f"spk{int(index):0{width}d}"


def trim_silence(x: np.ndarray, sr: int = SAMPLE_RATE, threshold_db: float = -45.0, margin_s: float = 0.1):
    """Cut leading and trailing silence (10 ms frames below ``threshold_db`` re. peak), keeping ``margin_s``.

    Examples
    --------
    >>> x = np.concatenate([np.zeros(8000), np.ones(1600), np.zeros(8000)]).astype(np.float32)
    >>> trim_silence(x).size
    4800
    """
    x = np.asarray(x)
    hop = max(int(0.01 * sr), 1)
    n = x.size // hop
    if n == 0:
        return x
    e = np.sqrt(np.mean(np.square(x[: n * hop].reshape(n, hop), dtype=np.float64), axis=1))
    ref = e.max()
    if ref <= 0:
        return x
    on = np.flatnonzero(e > ref * 10 ** (threshold_db / 20))
    m = int(margin_s * sr)
    a = max(on[0] * hop - m, 0)
    b = min((on[-1] + 1) * hop + m, x.size)
    return x[a:b]


def synthesize_utterance(voice, rng: np.random.Generator, *, espeak_voice: str, data_dir: str | None = None,
                         min_dur_s: float = 3.0, max_dur_s: float = 6.0, max_tries: int = 8):
    """Synthesise one clean utterance of ``voice`` with a random sentence between ``min_dur_s`` and ``max_dur_s``.

    The variant file named in ``espeak_voice`` must already hold ``voice`` (see
    :func:`nessa_lib.data.synth.voices.variant_text`). Sentences are redrawn up to ``max_tries`` times; the one closest
    to the duration range is kept.

    Returns
    -------
    wave : numpy.ndarray, float32, 16 kHz, peak -3 dBFS
    info : dict
        ``text``, eSpeak parameters and ``tries``.

    Examples
    --------
    >>> from nessa_lib.data.synth.voices import sample_voice
    >>> v = sample_voice(0, 0)
    >>> w, info = synthesize_utterance(v, np.random.default_rng(0), espeak_voice=v.accent, min_dur_s=1, max_dur_s=9)
    >>> w.dtype, 1 <= w.size / 16000 <= 9
    (dtype('float32'), True)
    """
    if not 0 < min_dur_s <= max_dur_s:
        raise ValueError(f"need 0 < min_dur_s <= max_dur_s, got {min_dur_s}, {max_dur_s}")
    vd = voice if isinstance(voice, dict) else voice.to_dict()
    prosody = utterance_prosody(vd, rng)
    # words per second, roughly, for this speaker and utterance (eSpeak pauses included)
    wps = prosody["rate"] / 60.0 * vd["speed"] / 100.0 * 1.05
    target = float(rng.uniform(min_dur_s, max_dur_s))
    lo = max(int(np.floor(target * wps * 0.85)), 3)
    hi = max(int(np.ceil(target * wps * 1.15)), lo)
    best = None
    for tries in range(1, max_tries + 1):
        text = sentence(rng, min_words=min(lo, hi), max_words=hi)
        seed = int(rng.integers(1, 2**31 - 1))
        w = _es.synthesize(text, espeak_voice, path=data_dir, seed=seed, **prosody)
        w = trim_silence(w)
        dur = w.size / SAMPLE_RATE
        miss = max(min_dur_s - dur, dur - max_dur_s, 0.0)
        if best is None or miss < best[0]:
            best = (miss, w, text, seed, tries)
        if miss == 0.0:
            break
        # nudge the word range towards the target
        if dur > max_dur_s:
            hi = max(hi - 1 - int((dur - max_dur_s) * wps), 3)
            lo = min(lo, hi)
        else:
            lo = lo + 1 + int((min_dur_s - dur) * wps)
            hi = max(hi, lo)
    _, w, text, seed, tries = best
    peak = float(np.abs(w).max()) if w.size else 0.0
    if peak > 0:
        w = w * (_CLEAN_PEAK / peak)
    return w.astype(np.float32), {"text": text, "espeak_seed": seed, "tries": tries, **prosody}


# --------------------------------------------------------------------------------------------- workers

def _babble_bank(seed: int, data_dir: str) -> list[np.ndarray]:
    out = []
    for k in range(_N_BABBLE):
        v = sample_voice(seed, _BABBLE_INDEX0 + k)
        _es.write_variant(data_dir, "babble", variant_text(v, "babble"))
        rng = np.random.default_rng([seed, _BABBLE_INDEX0 + k, 0])
        w, _ = synthesize_utterance(v, rng, espeak_voice=f"{v.accent}+babble", data_dir=data_dir)
        out.append(w)
    return out


def _babble_worker(seed, data_dir, out_file, q):
    die_with_parent()  # an interrupted stage must not leave this writing (issue 24)
    try:
        bank = _babble_bank(seed, data_dir)
        with atomic_path(out_file) as tmp, open(tmp, "wb") as f:  # a killed worker leaves no partial bank
            np.savez(f, *bank)
        q.put(("babble", None))
    except BaseException:  # pragma: no cover - reported to the parent
        q.put(("error", traceback.format_exc()))


def _worker(w, spk_indices, cfg, q):
    die_with_parent()  # a killed stage left corpus workers rewriting the corpus (issue 24)
    try:
        import soundfile as sf

        out = Path(cfg["out_dir"])
        data_dir = cfg["data_dir"]
        vname = f"nessa{w}"
        babble = None
        if cfg["babble_file"]:
            with np.load(cfg["babble_file"]) as z:
                babble = [z[k] for k in sorted(z.files, key=lambda s: int(s.split("_")[1]))]
        n_spk = cfg["n_speakers"]
        for i in spk_indices:
            sid = speaker_id(i, n_spk)
            v = sample_voice(cfg["seed"], i)
            espeak_voice = f"{v.accent}+{vname}"
            spk = {"speaker_id": sid, "speaker_index": i, "voice": v.to_dict(), "espeak_voice": f"{v.accent}+nessa",
                   "variant_file": variant_text(v, "nessa"), "worker": w, "recipe": cfg["recipe"]}
            rel = f"wav/{sid}.wav"
            recs, waves, pos = [], [], 0
            for u in range(cfg["utts_per_speaker"]):
                rng = np.random.default_rng([cfg["seed"], i, u])
                uv = utterance_voice(v, rng)  # session variability of the voice itself
                _es.write_variant(data_dir, vname, variant_text(uv, vname))
                wave, info = synthesize_utterance(uv, rng, espeak_voice=espeak_voice, data_dir=data_dir,
                                                  min_dur_s=cfg["min_dur_s"], max_dur_s=cfg["max_dur_s"])
                enroll = u < cfg["n_enroll"]
                cond = cfg["enroll_condition"] if enroll else cfg["condition"]
                wave = _aug.augment(wave, np.random.default_rng([cfg["seed"], i, u, 1]), cond, babble=babble)
                uid = f"{sid}_{u:04d}"
                waves.append(wave)
                recs.append({"utt_id": uid, "speaker_id": sid, "path": rel, "start": pos, "stop": pos + wave.size,
                             "duration_s": round(wave.size / SAMPLE_RATE, 4), "condition": cond,
                             "enroll": bool(enroll), "text": info["text"], "accent": v.accent, "sex": v.sex,
                             "speaker_index": i, "utt_index": u})
                pos += wave.size
            # PCM_16 conversion is per sample, so each segment holds exactly what a file of its own would. It is
            # done here, not by libsndfile, whose float-to-int16 rounding depends on the format (FLAC rounds
            # x * 32768 to nearest, WAV floors it): this is the FLAC rule, so corpus version 3 holds the very
            # samples version 2 held.
            # Written under a temporary name and renamed when complete: an interrupted run never leaves a
            # half-written recording behind (issue 24).
            with atomic_path(out / rel) as tmp:
                sf.write(tmp, pcm16(np.concatenate(waves)), SAMPLE_RATE, format="WAV", subtype="PCM_16")
            q.put(("speaker", recs, spk))
        q.put(("done", w))
    except BaseException:  # pragma: no cover - reported to the parent
        q.put(("error", f"worker {w}:\n{traceback.format_exc()}"))


def _drain(procs, q, expect, on_msg, timeout_s):
    """Collect messages until ``expect`` 'done'-type messages arrived; fail fast on errors or dead workers."""
    done = 0
    last = time.monotonic()
    while done < expect:
        try:
            msg = q.get(timeout=1.0)
        except queue.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() - last > timeout_s:
                for p in procs:
                    if p.is_alive():
                        p.terminate()
                why = f"exit code {dead[0].exitcode}" if dead else f"no progress for {timeout_s} s"
                raise RuntimeError(f"corpus worker failed ({why})")
            continue
        last = time.monotonic()
        if msg[0] == "error":
            for p in procs:
                if p.is_alive():
                    p.terminate()
            raise RuntimeError(f"corpus worker failed:\n{msg[1]}")
        if msg[0] in ("done", "babble"):
            done += 1
        on_msg(msg)


def generate_corpus(
    out_dir,
    *,
    n_speakers: int,
    utts_per_speaker: int,
    seed: int = 0,
    workers: int = 2,
    condition: str = "clean",
    enroll_condition: str | None = None,
    n_enroll: int = 0,
    min_dur_s: float = 3.0,
    max_dur_s: float = 6.0,
    cache_dir=None,
    progress: bool = True,
    timeout_s: float = 600.0,
) -> list[dict]:
    """Generate a synthetic speaker corpus under ``out_dir`` and return one record per utterance.

    Parameters
    ----------
    out_dir : path-like
        Output folder (created). Existing files with the same names are overwritten.
    n_speakers, utts_per_speaker : int
        Corpus size.
    seed : int
        Corpus seed: voices, texts, prosody and augmentation all derive from it.
    workers : int
        Number of worker processes (>= 1). Part of the recipe: see the module notes on reproducibility.
    condition : str
        Augmentation preset (:data:`nessa_lib.data.augment.PRESETS`) for every utterance (but see ``n_enroll``).
    enroll_condition : str, optional
        Preset for the first ``n_enroll`` utterances of each speaker (e.g. ``"clean"`` enrollment with
        ``"aug"`` test). Default: ``condition``.
    n_enroll : int
        Number of enrollment utterances per speaker (flagged ``enroll=True`` in the records).
    min_dur_s, max_dur_s : float
        Target range of speech duration (before speed perturbation).
    cache_dir : path-like, optional
        Where the private eSpeak data directory goes (default ``out_dir/.espeak-data``).
    progress : bool
        Show a tqdm progress bar.
    timeout_s : float
        Abort if no worker reports for this long.

    Returns
    -------
    list of dict
        Sorted by speaker then utterance: ``utt_id``, ``speaker_id``, ``path`` (the speaker's recording,
        ``wav/<speaker_id>.wav``, relative to ``out_dir``), ``start`` and ``stop`` (the utterance's sample frames
        in it, ``stop`` exclusive), ``duration_s``, ``condition``, ``enroll``, ``text``, ``accent``, ``sex``,
        ``speaker_index``, ``utt_index``.

    Examples
    --------
    >>> import tempfile
    >>> recs = generate_corpus(tempfile.mkdtemp(), n_speakers=2, utts_per_speaker=1, workers=1,
    ...                        progress=False)  # doctest: +SKIP
    >>> [r["utt_id"] for r in recs]  # doctest: +SKIP
    ['spk0000_0000', 'spk0001_0000']
    """
    from tqdm.auto import tqdm

    n_speakers, utts_per_speaker, workers, n_enroll = int(n_speakers), int(utts_per_speaker), int(workers), int(n_enroll)
    if n_speakers < 1 or utts_per_speaker < 1:
        raise ValueError(f"n_speakers and utts_per_speaker must be >= 1, got {n_speakers}, {utts_per_speaker}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not 0 <= n_enroll <= utts_per_speaker:
        raise ValueError(f"n_enroll must be in [0, utts_per_speaker], got {n_enroll}")
    if not 0 < min_dur_s <= max_dur_s:
        raise ValueError(f"need 0 < min_dur_s <= max_dur_s, got {min_dur_s}, {max_dur_s}")
    enroll_condition = condition if enroll_condition is None else enroll_condition
    for c in {condition, enroll_condition}:
        if c not in _aug.PRESETS:
            raise ValueError(f"unknown condition {c!r}; valid: {', '.join(_aug.PRESETS)}")
    workers = min(workers, n_speakers)
    out = Path(out_dir)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    data_dir = _es.make_english_data_dir(Path(cache_dir) if cache_dir is not None else out / ".espeak-data")

    recipe = {"corpus_version": CORPUS_VERSION, "voice_version": VOICE_VERSION, "n_speakers": n_speakers,
              "utts_per_speaker": utts_per_speaker, "seed": int(seed), "workers": workers, "condition": condition,
              "enroll_condition": enroll_condition, "n_enroll": n_enroll, "min_dur_s": float(min_dur_s),
              "max_dur_s": float(max_dur_s), "sample_rate": SAMPLE_RATE, "espeakng_loader": _pkg_version("espeakng-loader"),
              "augment_presets": {c: _aug.PRESETS[c] for c in sorted({condition, enroll_condition})}}
    atomic_write_text(out / "recipe.json", json.dumps(recipe, indent=1) + "\n")

    ctx = mp.get_context("spawn")  # fresh processes: fresh eSpeak state (the basis of reproducibility)
    q = ctx.Queue()
    babble_file = None
    if {condition, enroll_condition} != {"clean"}:
        babble_file = str(Path(data_dir) / f"babble_{int(seed)}.npz")
        p = ctx.Process(target=_babble_worker, args=(int(seed), data_dir, babble_file, q), daemon=True)
        p.start()
        _drain([p], q, 1, lambda m: None, timeout_s)
        p.join()

    cfg = {"out_dir": str(out), "data_dir": data_dir, "seed": int(seed), "n_speakers": n_speakers,
           "utts_per_speaker": utts_per_speaker, "condition": condition, "enroll_condition": enroll_condition,
           "n_enroll": n_enroll, "min_dur_s": float(min_dur_s), "max_dur_s": float(max_dur_s),
           "babble_file": babble_file, "recipe": recipe}
    procs = [ctx.Process(target=_worker, args=(w, list(range(w, n_speakers, workers)), cfg, q), daemon=True)
             for w in range(workers)]
    records: list[dict] = []
    speakers: list[dict] = []
    bar = tqdm(total=n_speakers * utts_per_speaker, unit="utt", desc="synth corpus", disable=not progress)
    try:
        for p in procs:
            p.start()

        def on_msg(msg):
            if msg[0] == "speaker":
                records.extend(msg[1])
                speakers.append(msg[2])
                bar.update(len(msg[1]))

        _drain(procs, q, workers, on_msg, timeout_s)
        for p in procs:
            p.join()
    finally:
        bar.close()
        for p in procs:
            if p.is_alive():
                p.terminate()
    records.sort(key=lambda r: (r["speaker_index"], r["utt_index"]))
    speakers.sort(key=lambda s: s["speaker_index"])
    atomic_write_text(out / "speakers.jsonl", "".join(json.dumps(s) + "\n" for s in speakers))
    atomic_write_text(out / "utterances.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return records


def _pkg_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # pragma: no cover
        return None


def read_voices(corpus_dir):
    """The voice parameters of every speaker of a generated corpus (``speakers.jsonl``), one row per speaker, or
    ``None`` when ``corpus_dir`` holds no synthetic corpus."""
    import pandas as pd

    file = Path(corpus_dir) / "speakers.jsonl"
    if not file.is_file():
        return None
    return pd.DataFrame([json.loads(line)["voice"] for line in file.read_text().splitlines() if line])
