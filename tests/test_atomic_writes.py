"""Issue 24, never lose work: files are written under a temporary name and renamed only when complete (the
synthetic corpus included), so an interrupted run never leaves a half-written file that a later run trusts."""

import hashlib
import os
import stat

import numpy as np
import pytest

from nessa_lib.io import atomic_path, atomic_write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(b"complete")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise KeyboardInterrupt  # what a Ctrl-C in the middle of a write looks like
    assert path.read_bytes() == b"complete"
    assert os.listdir(tmp_path) == ["a.wav"]


def test_a_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "sub" / "new.npz") as tmp:
            np.savez(open(tmp, "wb"), np.ones(3))
            raise RuntimeError("disk full")
    assert os.listdir(tmp_path / "sub") == []


def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "t.json", "{}\n")
        with atomic_path(tmp_path / "b.bin") as tmp:
            open(tmp, "wb").close()
    finally:
        os.umask(umask)
    for name in ("t.json", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_figures_are_written_whole(tmp_path):
    from nessa_lib import plots

    plots.durations(__import__("pandas").DataFrame({"duration_s": [1.0, 2.0, 2.5], "split": ["a", "a", "b"]}),
                    tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["fig.png"]


def _digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".espeak-data" not in p.parts}


def test_corpus_is_written_whole_and_a_rerun_gives_the_same_bytes(tmp_path):
    """No .part/.tmp file is left, and a second run into the same folder rewrites identical bytes. (The bytes
    depend on the worker count, which the recipe records: each worker's eSpeak state carries over between the
    speakers it synthesises.)"""
    from nessa_lib.data.synth.corpus import generate_corpus

    kw = dict(n_speakers=3, utts_per_speaker=2, seed=5, workers=2, condition="aug", enroll_condition="clean",
              n_enroll=1, min_dur_s=1.0, max_dur_s=1.5, progress=False)
    generate_corpus(tmp_path / "c", **kw)
    first = _digests(tmp_path / "c")
    assert sorted(first) == ["recipe.json", "speakers.jsonl", "utterances.jsonl", "wav/spk0000.wav",
                             "wav/spk0001.wav", "wav/spk0002.wav"]
    generate_corpus(tmp_path / "c", **kw)
    assert _digests(tmp_path / "c") == first
    assert [p for p in (tmp_path / "c").rglob("*") if p.name.endswith((".part", ".tmp"))] == []
