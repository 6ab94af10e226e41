"""Stage 03, ``extract_embeddings``: one encoder embeds the manifest splits (and a degraded held-out condition of the
evaluation split) into pickle-free files that carry its fingerprint.

``notebooks/03_extract_embeddings.py`` calls these; :class:`Params` is the ``extract_embeddings`` section of
``params.yaml`` (+ ``base.seed``). The extraction itself is :mod:`nessa_lib.encoders.extract`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

import numpy as np

from nessa_lib.data.augment import PRESETS, augment
from nessa_lib.devices import PRECISIONS
from nessa_lib.encoders.extract import MODES, extract_embeddings, extract_tasks
from nessa_lib.stages import schema
from nessa_lib.stages.schema import field

SECTION = "extract_embeddings"
#: What ``check_condition`` may be: "" (no held-out condition) or a preset of :mod:`nessa_lib.data.augment`.
CONDITIONS = ("", *PRESETS)
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclasses.dataclass(frozen=True)
class Params:
    """The ``extract_embeddings`` section of ``params.yaml`` (its comments say what each key does) + ``base.seed``."""

    seed: int = field(source="base.seed")
    models: tuple[str, ...] = field()
    splits: tuple[str, ...] = field()
    train_utts_per_speaker: int = field(ge=0)
    mode: str = field(choices=MODES)
    crop_s: float = field(gt=0)
    batch_size: int = field(ge=1)
    threads: int = field(ge=1)
    workers: int = field(ge=0)
    processes: dict = field()
    device: str = field()
    precision: str = field(choices=PRECISIONS)
    check_condition: str = field(choices=CONDITIONS)
    check_utts_per_speaker: int = field(ge=1)

    def cross_checks(self) -> list[str]:
        """Problems between keys: ``processes`` maps model names to integers >= 1 (models it does not list run in
        one process), a known device, the ``eval`` split (the notebook scores it).

        Examples
        --------
        >>> p = load()
        >>> dataclasses.replace(p, processes={"nope": 0}, device="gpu").cross_checks()  # doctest: +NORMALIZE_WHITESPACE
        ["extract_embeddings.processes maps model names to integers >= 1, got {'nope': 0}",
         "extract_embeddings.device must be auto, cpu or cuda[:N], got 'gpu'"]
        """
        out = []
        bad = {k: v for k, v in self.processes.items()
               if isinstance(v, bool) or not isinstance(v, int) or v < 1}
        if bad:
            out.append(f"{SECTION}.processes maps model names to integers >= 1, got {bad}")
        if not _DEVICE.fullmatch(self.device):
            out.append(f"{SECTION}.device must be auto, cpu or cuda[:N], got {self.device!r}")
        if "eval" not in self.splits:
            out.append(f"{SECTION}.splits must include 'eval' (the stage scores its trials), got {list(self.splits)}")
        return out

    def processes_for(self, name: str) -> int:
        """Processes sharing model ``name``'s batches (1 when ``processes`` does not list it).

        Examples
        --------
        >>> p = load()
        >>> dataclasses.replace(p, processes={"a": 2}).processes_for("a"), p.processes_for("not-listed")
        (2, 1)
        """
        return int(self.processes.get(name, 1))


def load(params_file: str = schema.PARAMS_FILE, root=None) -> Params:
    """The ``extract_embeddings`` parameters of ``params_file`` (repo-relative), checked.

    Examples
    --------
    >>> p = load()
    >>> "eval" in p.splits, p.mode in MODES
    (True, True)
    """
    return schema.load(Params, SECTION, params_file, root)


def extract_splits(manifest_df, encoder, splits, out_dir, *, train_utts_per_speaker: int = 0, mode: str = "full",
                   crop_s: float = 3.0, batch_size: int = 16, desc: str = "", skipped: list | None = None,
                   workers: int = 0, device: str = "auto", precision: str = "fp32", processes: int = 1) -> dict:
    """Stage 03 for one model: embed each manifest split of ``splits`` into ``out_dir/<split>.npz``.

    For the ``train`` split only the first ``train_utts_per_speaker`` utterances of each speaker are embedded
    (0: all; they are extra alignment pairs, and VoxCeleb's training set is large). Returns
    ``{split: EmbeddingSet}``. ``skipped``, ``workers``, ``device``, ``precision`` and ``processes`` are passed
    to :func:`~nessa_lib.encoders.extract.extract_embeddings` (a skipped utterance's record also gets its
    ``split``); with ``processes > 1`` the processes are started once for all the splits
    (:func:`~nessa_lib.encoders.extract.extract_tasks`). A split of ``splits`` with no utterances in the manifest
    (e.g. ``train`` when ``prepare_data.n_train_speakers`` is 0) raises ``ValueError`` naming it.

    Examples
    --------
    >>> import os, tempfile, numpy as np, pandas as pd, soundfile as sf, torch
    >>> class Mean:
    ...     model_id, sample_rate, min_samples, emb_dim = "mean@0", 16000, 1, 1
    ...     def embed(self, wavs, lengths):
    ...         return wavs.mean(1, keepdim=True)
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "u.wav")
    >>> sf.write(p, 0.1 * np.random.default_rng(0).standard_normal(1600), 16000)
    >>> df = pd.DataFrame([{"utt_id": "u", "speaker_id": "s", "path": p, "split": "eval"}])
    >>> sets = extract_splits(df, Mean(), ["eval"], d, desc="mean")
    >>> sets["eval"].utt_ids.tolist(), sorted(f for f in os.listdir(d) if f.endswith(".npz"))
    (['u'], ['eval.npz'])
    """
    from nessa_lib.data.splits import first_utterances
    from nessa_lib.embeddings import save_embeddings

    tasks = []  # extract_tasks checks `processes` before any extraction starts
    for split in splits:
        rows = manifest_df[manifest_df.split == split]
        if rows.empty:
            # e.g. prepare_data.n_train_speakers: 0 (nothing trained) with "train" still listed
            raise ValueError(f"split {split!r} of the manifest has no utterances; remove it from "
                             "extract_embeddings.splits (and fit_aligners.fit_splits) in params.yaml, or give it "
                             "speakers in prepare_data")
        if split == "train":
            rows = first_utterances(rows, train_utts_per_speaker)
        tasks.append((rows, dict(mode=mode, crop_s=crop_s, batch_size=batch_size, desc=f"{desc} {split}".strip(),
                                 workers=workers, device=device, precision=precision)))
    done = extract_tasks(encoder, tasks, processes=processes, collect_skipped=skipped is not None)
    sets = {}
    for split, (es, bad) in zip(splits, done):
        if skipped is not None:
            skipped.extend({"split": split, **b} for b in bad)
        save_embeddings(Path(out_dir) / f"{split}.npz", es)
        sets[split] = es
    return sets


def _degrade(x, i, *, seed, condition):
    """Row ``i``'s degradation in :func:`extract_condition` (the same audio for every model and process)."""
    return augment(x, np.random.default_rng([seed, i]), condition)


def extract_condition(manifest_df, encoder, out_path, *, split: str = "eval", condition: str = "aug",
                      utts_per_speaker: int = 4, seed: int = 0, batch_size: int = 16, desc: str = "",
                      skipped: list | None = None, workers: int = 0, device: str = "auto",
                      precision: str = "fp32", processes: int = 1):
    """Embed the first ``utts_per_speaker`` utterances of each speaker of ``split`` after degrading them with the
    :mod:`nessa_lib.data.augment` preset ``condition``: a held-out recording condition for deployment
    checks (:mod:`nessa_lib.deployment`). Row ``i`` is degraded with ``default_rng([seed, i])``, so every model
    embeds the same degraded audio (also in ``workers`` processes). Saved to ``out_path``; returns the
    :class:`~nessa_lib.embeddings.EmbeddingSet`. ``skipped``, ``workers``, ``device``, ``precision`` and
    ``processes`` are passed to :func:`~nessa_lib.encoders.extract.extract_embeddings` (a skipped record's
    ``split`` is ``<split>+<condition>``).

    Examples
    --------
    >>> import os, tempfile, numpy as np, pandas as pd, soundfile as sf, torch
    >>> class Mean:
    ...     model_id, sample_rate, min_samples, emb_dim = "mean@0", 16000, 1, 1
    ...     def embed(self, wavs, lengths):
    ...         return wavs.mean(1, keepdim=True)
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "u.wav")
    >>> sf.write(p, 0.1 * np.random.default_rng(0).standard_normal(16000), 16000)
    >>> df = pd.DataFrame([{"utt_id": "u", "speaker_id": "s", "path": p, "split": "eval"}])
    >>> extract_condition(df, Mean(), os.path.join(d, "eval+mild.npz"), condition="mild").utt_ids.tolist()
    ['u']
    """
    from nessa_lib.data.splits import first_utterances
    from nessa_lib.embeddings import save_embeddings

    rows = first_utterances(manifest_df[manifest_df.split == split], utts_per_speaker).reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"extract_condition: the manifest has no utterance in split {split!r}")

    bad = None if skipped is None else []
    # A partial of a module-level function, not a closure: it is pickled to the processes of ``processes > 1``.
    degrade = functools.partial(_degrade, seed=seed, condition=condition)
    out = extract_embeddings(rows, encoder, mode="full", batch_size=batch_size, transform=degrade,
                             desc=f"{desc} {split}+{condition}".strip(), skipped=bad, workers=workers,
                             device=device, precision=precision, processes=processes)
    if skipped is not None:
        skipped.extend({"split": f"{split}+{condition}", **b} for b in bad)
    save_embeddings(out_path, out)
    return out
