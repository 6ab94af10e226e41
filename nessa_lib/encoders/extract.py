"""Embedding extraction: every utterance of a manifest through one speaker encoder, with a progress bar.

Any :class:`~nessa_lib.encoders.protocol.Encoder` is an encoder here (``model_id``, ``sample_rate``,
``min_samples``, ``emb_dim``, ``embed(wavs, lengths)``): :func:`nessa_lib.encoders.pretrained.load` returns one for
every model of the study. When the encoder also follows :class:`~nessa_lib.encoders.protocol.PreparingEncoder`
(``prepare`` / ``embed_prepared``, resemblyzer's wrapper does), ``prepare`` runs where the audio is decoded (in the
``DataLoader`` workers when ``workers > 0``, in each of the processes when ``processes > 1``) and
``embed_prepared`` on each batch; the batches and the embeddings are the same as with ``embed``.

One core (:func:`_plan`: the batches and their decoding; :func:`_embed_batches`: the loop with the bad-input
handling) serves four ways of running, which :func:`extract_embeddings` picks from its arguments: in this process
(:func:`_extract_in_process`), decoding in ``DataLoader`` workers (:func:`_extract_with_workers`), sharing the
batches among spawned processes (:func:`_extract_in_processes`), and one ``torchrun`` rank's share
(:func:`extract_shard`). :func:`extract_tasks` embeds several manifests with one encoder, starting the processes
once.

Bad input follows field notes F and :func:`nessa_lib.data.audio.load_audio`: stereo is averaged, other sample
rates are resampled (both with a logged warning); unreadable, empty, NaN/inf and all-zero files raise an
:class:`~nessa_lib.data.audio.AudioError` naming the file; clips shorter than ``encoder.min_samples`` are
repeat-padded with a warning; a NaN/inf embedding raises ``ValueError`` naming the utterance and is never returned.
With a ``skipped`` list, such utterances are skipped and reported instead (stage 03 does this and writes them to
``skipped.csv``), so one bad file does not lose a run over a large dataset.

Audio is decoded in ``workers`` ``DataLoader`` processes (0: in this process; same batches, same embeddings) and
the encoder runs on ``device`` (default ``"auto"``: CUDA when visible, else CPU) in ``precision`` (default fp32).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import time

import numpy as np

from nessa_lib.data.audio import AudioError, load_audio, manifest_segments, segment_label
from nessa_lib.embeddings import EmbeddingSet
from nessa_lib.encoders.protocol import MEMBERS, is_preparing

logger = logging.getLogger(__name__)

MODES = ("full", "crop")


def _repeat_pad(x: np.ndarray, n: int) -> np.ndarray:
    """Tile ``x`` until it has ``n`` samples (repeating keeps the voice's statistics; zeros would dilute them)."""
    if len(x) >= n:
        return x
    return np.tile(x, int(math.ceil(n / len(x))))[:n]


def _centre_crop(x: np.ndarray, n: int) -> np.ndarray:
    """The middle ``n`` samples of ``x`` (left-biased by at most one sample), repeat-padded first if shorter."""
    x = _repeat_pad(x, n)
    start = (len(x) - n) // 2
    return x[start:start + n]


def _describe(ids, k: int = 5) -> str:
    ids = [str(u) for u in ids]
    more = f" and {len(ids) - k} more" if len(ids) > k else ""
    return ", ".join(repr(u) for u in ids[:k]) + more


def _check_args(manifest_df, encoder, mode, crop_s, batch_size) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if mode == "crop":
        if isinstance(crop_s, bool) or not isinstance(crop_s, numbers.Real) or not (np.isfinite(crop_s) and crop_s > 0):
            raise ValueError(f"crop_s must be a finite number of seconds > 0, got {crop_s!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    for attr in MEMBERS:
        if not hasattr(encoder, attr):
            raise TypeError(f"encoder {type(encoder).__name__} lacks {attr!r}; "
                            "see the protocol in nessa_lib.encoders.protocol")
    missing = [c for c in ("utt_id", "speaker_id", "path") if c not in manifest_df.columns]
    if missing:
        raise ValueError(f"manifest is missing column(s) {missing}")
    if len(manifest_df) == 0:
        raise ValueError("manifest has no rows: nothing to embed")
    dup = manifest_df["utt_id"].astype(str).duplicated()
    if dup.any():
        raise ValueError(f"manifest has duplicated utt_id(s): {_describe(manifest_df['utt_id'][dup].unique())}")


class _Batches:
    """Map-style dataset whose item ``k`` is batch ``k`` decoded: ``[(row, wave or None, error, crop_padded)]``.

    The same object serves the in-process path and ``DataLoader`` workers, so both decode, pad and crop with the
    same code, and the main process builds the same batches in the same order from what comes back. Audio errors
    come back as ``(path, reason, detail, segment)`` tuples (plain data for the worker-to-main queue) and are
    raised or skipped by the caller.
    """

    def __init__(self, batches, segments, labels, sr, min_samples, crop_len, transform, model_id, prepare=None):
        self.batches, self.segments, self.labels = batches, segments, labels
        self.sr, self.min_samples, self.crop_len = sr, min_samples, crop_len
        self.transform, self.model_id, self.prepare = transform, model_id, prepare

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, k):
        items = []
        for i in self.batches[k]:
            p, a, b = self.segments[i]
            try:
                x = load_audio(p, target_sr=self.sr, min_dur_s=0.0, start=a, stop=b)  # short clips: padded
            except AudioError as e:
                items.append((int(i), None, (e.path, e.reason, e.detail, e.segment), False))
                continue
            if self.transform is not None:
                x = np.asarray(self.transform(x, int(i)), dtype=np.float32)
            if len(x) < self.min_samples:
                logger.warning("%s: %d samples (%.3f s) is shorter than min_samples=%d of %s; repeat-padding it",
                               self.labels[i], len(x), len(x) / self.sr, self.min_samples, self.model_id)
                x = _repeat_pad(x, self.min_samples)
            crop_padded = False
            if self.crop_len is not None:
                crop_padded = len(x) < self.crop_len
                x = _centre_crop(x, self.crop_len)
            if self.prepare is not None:
                try:
                    x = _Prepared(self.prepare(x))
                except Exception as e:  # noqa: BLE001 - the encoder refused this waveform: reported like embed()'s
                    items.append((int(i), None, ("encoder", type(e).__name__, str(e), None), False))
                    continue
            items.append((int(i), x, None, crop_padded))
        return items


class _Prepared:
    """What ``encoder.prepare`` returned for one utterance (a marker, so it is never mistaken for a waveform)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _as_is(item):
    """``DataLoader`` collate function that leaves a batch of :class:`_Batches` untouched (no tensor conversion)."""
    return item


def _batch_of(wavs):
    import torch

    longest = max(len(x) for x in wavs)
    batch = np.zeros((len(wavs), longest), dtype=np.float32)
    for j, x in enumerate(wavs):
        batch[j, :len(x)] = x
    rel = torch.tensor([len(x) / longest for x in wavs], dtype=torch.float32)
    return torch.from_numpy(batch), rel


def _embed(encoder, wavs, device: str, precision: str) -> np.ndarray:
    import torch

    from nessa_lib.devices import autocast

    with torch.no_grad(), autocast(device, precision):
        if isinstance(wavs[0], _Prepared):
            emb = encoder.embed_prepared([w.value for w in wavs])
        else:
            emb = encoder.embed(*_batch_of(wavs))
    return emb.detach().float().cpu().numpy() if hasattr(emb, "detach") else np.asarray(emb)


def _check_processes(processes) -> int:
    if isinstance(processes, bool) or not isinstance(processes, (int, np.integer)) or processes < 1:
        raise ValueError(f"processes must be an integer >= 1, got {processes!r}")
    return int(processes)


def _check_workers(workers) -> None:
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0, got {workers!r}")


@dataclasses.dataclass
class _Plan:
    """One extraction's rows, batches and decoding (:class:`_Batches`), as every way of running shares them."""

    encoder: object
    utt_ids: np.ndarray
    spk_ids: np.ndarray
    paths: np.ndarray  # segment labels, for messages
    n_mine: int  # rows in this process's batches (all of them unless sharded)
    data: _Batches
    device: str
    precision: str
    emb_dim: int
    mode: str
    crop_s: float


def _plan(manifest_df, encoder, *, mode, crop_s, batch_size, transform, device, precision, shard) -> _Plan:
    """The batches of ``manifest_df`` (only shard ``(rank, world)``'s when ``shard`` is given) and their decoding,
    with the encoder moved to its device: the same for every way of running, so are the batches."""
    from nessa_lib.devices import check_precision, resolve_device

    device = resolve_device(device)
    precision = check_precision(precision)
    if hasattr(encoder, "to"):
        encoder.to(device)
    sr = int(encoder.sample_rate)
    min_samples = max(1, int(encoder.min_samples))
    emb_dim = int(encoder.emb_dim)
    crop_len = int(round(crop_s * sr)) if mode == "crop" else None
    if crop_len is not None and crop_len < min_samples:
        raise ValueError(f"crop_s={crop_s} s is {crop_len} samples, shorter than the encoder's min_samples="
                         f"{min_samples} ({encoder.model_id})")

    utt_ids = manifest_df["utt_id"].astype(str).to_numpy()
    spk_ids = manifest_df["speaker_id"].astype(str).to_numpy()
    segments = manifest_segments(manifest_df)  # (path, start, stop): the optional segment columns, honoured
    paths = np.asarray([segment_label(*seg) for seg in segments], dtype=object)  # for messages
    n = len(utt_ids)
    if mode == "full" and "duration_s" in manifest_df.columns:
        # Similar lengths per batch: little zero-padding, so little wasted compute. Stable sort keeps ties in
        # manifest order, so the batches (and any batch-dependent rounding) are reproducible.
        dur = np.nan_to_num(np.asarray(manifest_df["duration_s"], dtype=float), nan=0.0)
        order = np.argsort(dur, kind="stable")
    else:
        order = np.arange(n)

    batches = [order[s:s + batch_size] for s in range(0, n, batch_size)]
    if shard is not None:
        rank, world = (int(v) for v in shard)
        if not (world >= 1 and 0 <= rank < world):
            raise ValueError(f"shard must be (rank, world) with 0 <= rank < world, got {shard!r}")
        batches = batches[rank::world]
        n_mine = sum(len(b) for b in batches)
    else:
        n_mine = n
    # The two-step protocol when the encoder offers it (nessa_lib.encoders.protocol.PreparingEncoder): per-utterance
    # work runs with the decoding.
    prepare = encoder.prepare if is_preparing(encoder) else None
    data = _Batches(batches, segments, paths, sr, min_samples, crop_len, transform, encoder.model_id, prepare)
    return _Plan(encoder, utt_ids, spk_ids, paths, n_mine, data, device, precision, emb_dim, mode, crop_s)


def _embed_batches(plan: _Plan, loaded, *, progress: bool, desc: str | None, skipped: list | None) -> EmbeddingSet:
    """Embed the decoded batches ``loaded`` yields (items of ``plan.data``, in order): the loop every way of
    running shares, with the bad-utterance handling of :func:`extract_embeddings`."""
    from tqdm import tqdm

    encoder, utt_ids, spk_ids, paths = plan.encoder, plan.utt_ids, plan.spk_ids, plan.paths
    device, precision, emb_dim = plan.device, plan.precision, plan.emb_dim
    n = len(utt_ids)

    def skip(i, reason, message):
        logger.warning("skipping utterance %r: %s", str(utt_ids[i]), message)
        skipped.append({"utt_id": str(utt_ids[i]), "speaker_id": str(spk_ids[i]), "path": str(paths[i]),
                        "reason": reason, "message": message})

    out = np.empty((n, emb_dim), dtype=np.float32)
    done = np.zeros(n, dtype=bool)
    n_crop_padded = 0
    bar = tqdm(total=plan.n_mine, desc=desc or f"embed {plan.mode} [{encoder.model_id}]", unit="utt",
               disable=not progress)
    try:
        for items in loaded:
            idx, wavs = [], []
            for i, x, err, crop_padded in items:
                if err is not None and err[0] == "encoder":  # encoder.prepare refused it: as if embed() had
                    message = f"encoder {encoder.model_id} failed on {paths[i]}: {err[2]}"
                    if skipped is None:
                        raise (ValueError if err[1] == "ValueError" else RuntimeError)(
                            f"encoder {encoder.model_id} failed on utterance(s) {_describe(utt_ids[[i]])} "
                            f"({paths[i]}): {err[2]}")
                    skip(i, "encoder_error", message)
                    continue
                if err is not None:
                    e = AudioError(err[0], err[1], err[2], segment=err[3])
                    if skipped is None:
                        raise e
                    skip(i, e.reason, str(e))
                    continue
                n_crop_padded += crop_padded
                idx.append(i)
                wavs.append(x)
            bar.update(len(items))
            if not idx:
                continue
            idx = np.asarray(idx)
            try:
                emb = _embed(encoder, wavs, device, precision)
            except Exception as e:
                if skipped is None:
                    what = (f"encoder {encoder.model_id} failed on utterance(s) {_describe(utt_ids[idx])} "
                            f"({paths[idx[0]]}")
                    what += ", ...)" if len(idx) > 1 else ")"
                    raise (ValueError if isinstance(e, ValueError) else RuntimeError)(f"{what}: {e}") from e
                # Re-embed one by one so only the utterance the encoder fails on is lost.
                ok, embs = [], []
                for i, x in zip(idx, wavs):
                    try:
                        embs.append(_embed(encoder, [x], device, precision))
                        ok.append(i)
                    except Exception as e1:  # noqa: BLE001 - any encoder failure is reported, then skipped
                        skip(i, "encoder_error", f"encoder {encoder.model_id} failed on {paths[i]}: {e1}")
                if not ok:
                    continue
                idx, emb = np.asarray(ok), np.vstack(embs)
            if emb.shape != (len(idx), emb_dim):
                raise ValueError(f"encoder {encoder.model_id} returned shape {emb.shape} for {len(idx)} utterance(s),"
                                 f" expected ({len(idx)}, {emb_dim})")
            bad = ~np.isfinite(emb).all(axis=1)
            if bad.any():
                k = idx[np.flatnonzero(bad)]
                if skipped is None:
                    raise ValueError(f"encoder {encoder.model_id} returned a NaN/inf embedding for utterance(s) "
                                     f"{_describe(utt_ids[k])} ({paths[k[0]]}); refusing to return it")
                for i in k:
                    skip(i, "non_finite_embedding",
                         f"encoder {encoder.model_id} returned a NaN/inf embedding for {paths[i]}")
                idx, emb = idx[~bad], emb[~bad]
            out[idx] = emb
            done[idx] = True
    finally:
        bar.close()
    if n_crop_padded:
        logger.warning("%d of %d utterances were shorter than crop_s=%g s and were repeat-padded to it",
                       n_crop_padded, plan.n_mine, plan.crop_s)
    if done.all():  # the default path: every row, the arrays as they are
        return EmbeddingSet(out, utt_ids, spk_ids, str(encoder.model_id))
    return EmbeddingSet(out[done], utt_ids[done], spk_ids[done], str(encoder.model_id))


def _extract_in_process(manifest_df, encoder, *, progress, desc, skipped, shard=None, **planning) -> EmbeddingSet:
    """Decode and embed in this process (``workers=0``); ``shard`` keeps one rank's batches."""
    plan = _plan(manifest_df, encoder, shard=shard, **planning)
    loaded = (plan.data[k] for k in range(len(plan.data)))
    return _embed_batches(plan, loaded, progress=progress, desc=desc, skipped=skipped)


def _extract_with_workers(manifest_df, encoder, workers: int, *, progress, desc, skipped, shard=None,
                          **planning) -> EmbeddingSet:
    """Decode in ``workers`` ``DataLoader`` processes (forked) while this one embeds: the same batches, in order."""
    import torch

    plan = _plan(manifest_df, encoder, shard=shard, **planning)
    # batch_size=None: each dataset item is already one batch; _as_is keeps numpy arrays as they are.
    loaded = torch.utils.data.DataLoader(plan.data, batch_size=None, shuffle=False, num_workers=int(workers),
                                         collate_fn=_as_is)
    return _embed_batches(plan, loaded, progress=progress, desc=desc, skipped=skipped)


def extract_shard(manifest_df, encoder, shard: tuple[int, int], **kwargs) -> EmbeddingSet:
    """One process's share of an extraction split across ``world`` processes (``torchrun`` ranks, or the processes
    of :func:`extract_embeddings`' ``processes``): ``extract_embeddings(manifest_df, encoder, shard=shard, **kwargs)``.

    Rank ``rank`` of ``shard = (rank, world)`` embeds the batches ``k`` with ``k % world == rank`` of those a single
    process would form; :func:`merge_shards` puts every rank's part back into manifest order.

    Examples
    --------
    >>> import os, tempfile, numpy as np, pandas as pd, soundfile as sf, torch
    >>> class Mean:
    ...     model_id, sample_rate, min_samples, emb_dim = "mean@0", 16000, 1, 1
    ...     def embed(self, wavs, lengths):
    ...         return wavs.mean(1, keepdim=True)
    >>> d = tempfile.mkdtemp()
    >>> rows = []
    >>> for i in range(3):
    ...     p = os.path.join(d, f"u{i}.wav")
    ...     sf.write(p, 0.1 * np.random.default_rng(i).standard_normal(1600), 16000)
    ...     rows.append({"utt_id": f"u{i}", "speaker_id": "s", "path": p})
    >>> df = pd.DataFrame(rows)
    >>> parts = [extract_shard(df, Mean(), (r, 2), batch_size=1, progress=False) for r in range(2)]
    >>> [p.utt_ids.tolist() for p in parts]
    [['u0', 'u2'], ['u1']]
    >>> merge_shards(parts, df)[0].utt_ids.tolist()
    ['u0', 'u1', 'u2']
    """
    return extract_embeddings(manifest_df, encoder, shard=shard, **kwargs)


def _process_share(encoder, tasks, rank: int, world: int, collect: bool) -> list:
    """One process's share of :func:`_run_in_processes`: shard ``(rank, world)`` of every ``(rows, kwargs)`` task."""
    out = []
    for rows, kwargs in tasks:
        bad = [] if collect else None
        kwargs = dict(kwargs, progress=kwargs.get("progress", True) and rank == 0,
                      desc=(kwargs.get("desc") or f"embed {kwargs.get('mode', 'full')} [{encoder.model_id}]")
                      + f" (process 1 of {world})")
        out.append((extract_shard(rows, encoder, (rank, world), skipped=bad, **kwargs), bad or []))
    return out


def merge_shards(parts, manifest_df, skipped_parts=()) -> tuple:
    """The shards of one extraction (every rank's :class:`EmbeddingSet`, in any order) as one set in manifest
    order, and their skipped records in manifest order.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"utt_id": ["a", "b", "c"]})
    >>> p0 = EmbeddingSet(np.zeros((2, 1), np.float32), ["a", "c"], ["s", "s"], "m@0")
    >>> p1 = EmbeddingSet(np.ones((1, 1), np.float32), ["b"], ["s"], "m@0")
    >>> merged, bad = merge_shards([p0, p1], df)
    >>> merged.utt_ids.tolist(), merged.embeddings[:, 0].tolist()
    (['a', 'b', 'c'], [0.0, 1.0, 0.0])
    """
    position = {u: i for i, u in enumerate(manifest_df["utt_id"].astype(str))}
    dim = parts[0].embeddings.shape[1]
    emb = np.concatenate([p.embeddings.reshape(-1, dim) for p in parts]).astype(np.float32)
    utt = np.concatenate([np.asarray(p.utt_ids, dtype=str) for p in parts])
    spk = np.concatenate([np.asarray(p.speaker_ids, dtype=str) for p in parts])
    order = np.argsort([position[u] for u in utt], kind="stable")  # back to manifest order
    bad = sorted((b for part in skipped_parts for b in part), key=lambda b: position[b["utt_id"]])
    return EmbeddingSet(emb[order], utt[order], spk[order], parts[0].model_id), bad


def _run_in_processes(encoder, tasks, processes: int, collect: bool) -> list:
    """``[(EmbeddingSet, skipped records)]`` of each ``(rows, kwargs)`` task, its batches shared by ``processes``
    one-thread processes (started once for all the tasks)."""
    from nessa_lib.parallel import run_jobs

    world = int(processes)
    shards = run_jobs(_process_share, [(encoder, tasks, r, world, collect) for r in range(world)], workers=world)
    return [merge_shards([sh[t][0] for sh in shards], rows, [sh[t][1] for sh in shards])
            for t, (rows, _) in enumerate(tasks)]


def _extract_in_processes(manifest_df, encoder, processes: int, *, skipped, **kwargs) -> EmbeddingSet:
    """Share the batches among ``processes`` spawned one-thread processes, merged back into manifest order."""
    out, bad = _run_in_processes(encoder, [(manifest_df, kwargs)], processes, skipped is not None)[0]
    if skipped is not None:
        skipped.extend(bad)
    return out


def extract_tasks(encoder, tasks, *, processes: int = 1, collect_skipped: bool = False) -> list:
    """Embed several manifests with one encoder: ``[(EmbeddingSet, skipped records)]``, one per ``(rows, kwargs)``
    of ``tasks`` (``kwargs``: keyword arguments of :func:`extract_embeddings` but ``skipped`` and ``processes``).

    With ``processes > 1`` the processes are started once for all the tasks (every task's rows are checked before
    any starts). ``collect_skipped``: bad utterances are skipped and returned (``skipped`` of
    :func:`extract_embeddings`) instead of raising; otherwise each task's list is empty.

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
    >>> df = pd.DataFrame([{"utt_id": "u", "speaker_id": "s", "path": p}])
    >>> [(es.utt_ids.tolist(), bad) for es, bad in extract_tasks(Mean(), [(df, {"progress": False})] * 2)]
    [(['u'], []), (['u'], [])]
    """
    processes = _check_processes(processes)
    if processes > 1:
        for rows, kwargs in tasks:
            _check_args(rows, encoder, kwargs.get("mode", "full"), kwargs.get("crop_s", 3.0),
                        kwargs.get("batch_size", 16))
        return _run_in_processes(encoder, tasks, processes, collect_skipped)
    done = []
    for rows, kwargs in tasks:
        bad = [] if collect_skipped else None
        done.append((extract_embeddings(rows, encoder, skipped=bad, **kwargs), bad or []))
    return done


def extract_embeddings(manifest_df, encoder, *, mode: str = "full", crop_s: float = 3.0, batch_size: int = 16,
                       progress: bool = True, desc: str | None = None, transform=None, skipped: list | None = None,
                       workers: int = 0, device: str = "auto", precision: str = "fp32",
                       shard: tuple[int, int] | None = None, processes: int = 1) -> EmbeddingSet:
    """Embed every utterance of ``manifest_df`` with ``encoder``.

    Parameters
    ----------
    manifest_df : pandas.DataFrame
        Manifest rows (columns ``utt_id``, ``speaker_id``, ``path``; ``duration_s`` is used, when present, to
        batch utterances of similar length; optional ``start``/``stop`` make a row a segment of its file, empty
        = the whole file), e.g. from :func:`nessa_lib.data.manifest.read_manifest`.
    encoder : nessa_lib.encoders.protocol.Encoder
        Speaker encoder (:class:`~nessa_lib.encoders.protocol.Encoder`; with
        :class:`~nessa_lib.encoders.protocol.PreparingEncoder`'s two steps when it has them).
    mode : {'full', 'crop'}
        'full': the whole utterance; utterances are sorted by duration, batched, zero-padded, and the encoder
        gets their relative lengths. 'crop': the centre ``crop_s`` seconds (deterministic); utterances shorter
        than that are repeat-padded to it (one summary warning), so every input has the same length.
    crop_s : float
        Crop length in seconds (``mode='crop'`` only).
    batch_size : int
        Utterances per ``encoder.embed`` call.
    progress : bool
        Show a tqdm progress bar.
    desc : str, optional
        Progress bar label; default names the mode and the model.
    transform : callable, optional
        ``transform(wave, row) -> wave`` applied to each decoded waveform (``row``: its position in
        ``manifest_df``), e.g. a degradation that simulates another recording condition
        (:func:`nessa_lib.stages.extract_embeddings.extract_condition`). With ``workers > 0`` it runs in the worker
        processes (forked: a closure is fine) and must depend on nothing but its arguments; with
        ``processes > 1`` it is pickled to spawned processes, so it must be a module-level function or a
        ``functools.partial`` of one, not a closure.
    skipped : list, optional
        ``None`` (default): the first bad utterance raises, as documented below. A list: bad utterances are
        skipped instead, each appended as a dict ``utt_id``, ``speaker_id``, ``path`` (``path[start:stop]`` for a
        segment), ``reason`` (an ``AudioError.reason``, ``'encoder_error'`` or ``'non_finite_embedding'``) and
        ``message`` (naming the file), and left out of the result; every other utterance is embedded as usual. A
        batch the encoder fails on is re-embedded one utterance at a time so only the culprit is lost.
    workers : int
        ``DataLoader`` worker processes that decode (and transform, pad, crop, and ``encoder.prepare`` when the
        encoder has it) the audio while the encoder runs; 0 (default) does it in this process. The batches,
        their order and the embeddings are the same for any value.
    device : str
        Where the encoder runs: ``"auto"`` (CUDA when visible, else CPU), ``"cpu"``, ``"cuda[:N]"``, see
        :func:`nessa_lib.devices.resolve_device`. An encoder with a ``to`` method (trained encoders) is moved
        there in place; others (e.g. resemblyzer's) keep the device they were built for.
    precision : {'fp32', 'fp16', 'bf16'}
        fp16/bf16 run the encoder under ``torch.autocast`` (CUDA only); embeddings are returned as float32.
    shard : (int, int), optional
        ``(rank, world)``: embed only the batches ``k`` with ``k % world == rank`` of the batches a single
        process would form (same sorting, same batch boundaries), and return just those rows, in manifest order.
        The shards of ranks ``0 .. world-1`` together are exactly the unsharded result; this is how
        :mod:`nessa_lib.encoders.extract_cli` splits a manifest across ``torchrun`` processes
        (:func:`extract_shard`).
    processes : int
        Processes sharing the batches on this machine (as ``shard`` does, merged back into manifest order), each
        with one torch thread (:func:`nessa_lib.parallel.run_jobs`; capped at the number of cores). 1 (default):
        this process, with its torch threads. On a CPU, two one-thread processes keep two cores busier than one
        two-thread process when much of an utterance's work is not torch's (resemblyzer: +22 % utterances/s);
        for the convolutional encoders the gain is small or negative (docs/scale.md, section 10). Every batch is
        then computed with one thread, so the embeddings are the same for any ``processes > 1`` (and any number
        of cores); they can differ from a multi-threaded single process by float rounding (convolutional
        encoders: ~1e-6; resemblyzer: identical).

    Returns
    -------
    EmbeddingSet
        float32 ``(n, encoder.emb_dim)`` embeddings, rows in the manifest's order (less the skipped ones), the
        ``model_id`` of the encoder.

    Raises
    ------
    nessa_lib.data.audio.AudioError
        A file is missing, unreadable, empty, contains NaN/inf or is all zeros (the message names it); only
        when ``skipped`` is ``None``.
    ValueError
        Bad arguments, an embedding of the wrong shape, or (``skipped`` is ``None``) a NaN/inf embedding (the
        message names the utterance and its file).

    Examples
    --------
    >>> import os, tempfile, numpy as np, pandas as pd, soundfile as sf, torch
    >>> class Stats:  # toy encoder: mean and std of the valid samples
    ...     model_id, sample_rate, min_samples, emb_dim = "stats@0", 16000, 160, 2
    ...     def embed(self, wavs, lengths):
    ...         n = (lengths * wavs.shape[1]).round().long()
    ...         return torch.stack([torch.stack([w[:k].mean(), w[:k].std()]) for w, k in zip(wavs, n)])
    >>> d = tempfile.mkdtemp()
    >>> rows = []
    >>> for i, sec in enumerate([1.0, 0.5]):
    ...     p = os.path.join(d, f"u{i}.wav")
    ...     sf.write(p, 0.1 * np.random.default_rng(i).standard_normal(int(sec * 16000)), 16000)
    ...     rows.append({"utt_id": f"u{i}", "speaker_id": "s", "path": p, "duration_s": sec})
    >>> es = extract_embeddings(pd.DataFrame(rows), Stats(), progress=False)
    >>> es.embeddings.shape, list(es.utt_ids), es.model_id
    ((2, 2), ['u0', 'u1'], 'stats@0')
    >>> sf.write(rows[1]["path"], np.zeros(8000), 16000)  # now digital silence
    >>> bad = []
    >>> list(extract_embeddings(pd.DataFrame(rows), Stats(), progress=False, skipped=bad).utt_ids)
    ['u0']
    >>> [(b["utt_id"], b["reason"]) for b in bad]
    [('u1', 'silent')]
    """
    _check_args(manifest_df, encoder, mode, crop_s, batch_size)
    _check_workers(workers)
    processes = _check_processes(processes)
    planning = dict(mode=mode, crop_s=crop_s, batch_size=batch_size, transform=transform, device=device,
                    precision=precision)
    if processes > 1:
        if shard is not None:
            raise ValueError("extract_embeddings: give shard (torchrun ranks) or processes > 1, not both")
        return _extract_in_processes(manifest_df, encoder, processes, skipped=skipped, progress=progress, desc=desc,
                                     workers=workers, **planning)
    if workers:
        return _extract_with_workers(manifest_df, encoder, workers, progress=progress, desc=desc, skipped=skipped,
                                     shard=shard, **planning)
    return _extract_in_process(manifest_df, encoder, progress=progress, desc=desc, skipped=skipped, shard=shard,
                               **planning)


def real_time_factor(encoder, *, seconds: float = 3.0, repeats: int = 5, batch: int = 1) -> float:
    """Processing time / audio time of ``encoder.embed`` on random audio (best of ``repeats``, after a warm-up).

    Lower is faster: 0.01 means 100 s of audio per second. Uses however many threads torch is set to;
    call ``torch.set_num_threads(1)`` first for a single-core figure.

    Parameters
    ----------
    encoder : nessa_lib.encoders.protocol.Encoder
        Speaker encoder.
    seconds : float
        Duration of each random clip.
    repeats : int
        Timed calls; the fastest counts (the others measure interference from other processes).
    batch : int
        Clips per call; audio time is ``seconds * batch``.

    Examples
    --------
    >>> import torch
    >>> class Null:
    ...     model_id, sample_rate, min_samples, emb_dim = "null@0", 16000, 1, 2
    ...     def embed(self, wavs, lengths):
    ...         return torch.zeros(len(wavs), 2)
    >>> 0 <= real_time_factor(Null(), seconds=0.5, repeats=2) < 1
    True
    """
    import torch

    if not (np.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    if repeats < 1 or batch < 1:
        raise ValueError(f"repeats and batch must be >= 1, got {repeats!r} and {batch!r}")
    n = max(int(round(seconds * encoder.sample_rate)), int(encoder.min_samples))
    rng = np.random.default_rng(0)
    wavs = torch.from_numpy((0.1 * rng.standard_normal((batch, n))).astype(np.float32))
    lengths = torch.ones(batch)
    best = math.inf
    with torch.no_grad():
        encoder.embed(wavs, lengths)  # warm-up: first-call allocations and lazy initialisation
        for _ in range(repeats):
            t = time.perf_counter()
            encoder.embed(wavs, lengths)
            best = min(best, time.perf_counter() - t)
    return best / (n / encoder.sample_rate * batch)


#: Columns of the skipped-utterance report of :func:`write_skipped_utterances`.
SKIPPED_COLUMNS = ("split", "utt_id", "speaker_id", "path", "reason", "message")


def write_skipped_utterances(skipped, path) -> None:
    """Write the utterances extraction skipped (records from :func:`extract_embeddings`' ``skipped``) as a CSV
    with :data:`SKIPPED_COLUMNS`; written, header only, when nothing was skipped, so the stage always has it.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_skipped_utterances([{"split": "eval", "utt_id": "u1", "path": "u1.wav", "reason": "silent"}],
    ...                              os.path.join(d, "skipped.csv"))
    ...     open(os.path.join(d, "skipped.csv")).read().splitlines()
    ['split,utt_id,speaker_id,path,reason,message', 'eval,u1,,u1.wav,silent,']
    """
    import pandas as pd

    from nessa_lib.io import atomic_write_text

    table = pd.DataFrame([{c: r.get(c, "") for c in SKIPPED_COLUMNS} for r in skipped], columns=list(SKIPPED_COLUMNS))
    atomic_write_text(path, table.to_csv(index=False))
