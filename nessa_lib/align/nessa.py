"""Training the NESSA aligners (M1, M2, M3): the MLP side maps, speaker-disjoint early stopping, M3's batches.

M1 and M2 minimise the squared error of one mapped side against the other model's embeddings; M3 maps both
sides into a new space with a supervised InfoNCE loss across the two models
(:func:`nessa_lib.losses.supcon_loss`, each model's mapped embeddings as anchors and the other's as candidates)
plus squared-error terms tying both sides to the reference space, on P speakers x K utterances batches
(:class:`SpeakerRows`, the sampler of the encoders' contrastive training, vectorised).

What cannot train is refused (``ValueError``): no training data left after the hold-out, or M3 with fewer than
two training speakers (its contrastive loss has nothing to contrast: the loss would be 0 and nothing would be
learnt). Early stopping holds out whole speakers (``val_fraction``) once there are at least
:data:`MIN_SPEAKERS_TO_HOLD_OUT`; with fewer, it validates on the training data, which is allowed (a tiny smoke
fit still runs) but logged as a warning, since it then stops late rather than at the best generalisation. M3's
validation loss needs two speakers too, so M3 holds out at least two (with one, every validation loss was NaN and
early stopping never kept a best epoch).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch

from nessa_lib.align.aligner import _build_side, _Identity, _normalize
from nessa_lib.align.closed_form import ridge_solve
from nessa_lib.losses import supcon_loss

logger = logging.getLogger(__name__)

#: Fewest speakers from which early stopping holds some out; below, it validates on the training data (warned).
MIN_SPEAKERS_TO_HOLD_OUT = 4


class SpeakerRows:
    """M3's P speakers x K utterances batches over one row set, drawn with numpy in a few array operations.

    The encoders' sampler (:func:`nessa_lib.batches.speaker_batches`; kept apart from it because the encoders'
    stage depends on that module and this sampler belongs to the aligners' fits) with one round per epoch, vectorised: every
    speaker with at least 2 rows takes part once per epoch with K of its rows (distinct, topped up by re-drawing
    when it has fewer than K), the speakers are shuffled and grouped P at a time, the leftover (fewer than P) sit
    the epoch out. Same distribution of batches as ``speaker_batches``, not the same draws.

    Examples
    --------
    >>> sr = SpeakerRows(np.arange(100, 115), np.repeat(np.arange(5), 3))
    >>> b = sr.epoch(2, 2, np.random.default_rng(0))
    >>> len(b), [len(x) for x in b], all(len(set((x - 100) // 3)) == 2 for x in b)
    (2, [4, 4], True)
    """

    def __init__(self, idx: np.ndarray, codes: np.ndarray):
        order = np.argsort(codes, kind="stable")
        spk, start, count = np.unique(codes[order], return_index=True, return_counts=True)
        ok = count >= 2  # a positive pair needs a second utterance
        start, count = start[ok], count[ok]
        width = int(count.max()) if len(count) else 0
        col = np.arange(width)
        self.count = count
        # (speakers, most rows): each speaker's rows of idx, padded by repeating its first row.
        self.rows = np.asarray(idx)[order][start[:, None] + np.where(col < count[:, None], col, 0)]

    def epoch(self, n_speakers: int, n_utts: int, rng: np.random.Generator) -> list:
        n_spk = min(n_speakers, len(self.count))
        if n_spk < 2:
            return []
        n, width = self.rows.shape
        keys = rng.random((n, width))
        keys[np.arange(width)[None, :] >= self.count[:, None]] = 2.0  # padding sorts last
        pick = np.argsort(keys, axis=1)[:, :n_utts]
        if pick.shape[1] < n_utts or (self.count < n_utts).any():  # top up by re-drawing the speaker's rows
            pick = np.pad(pick, ((0, 0), (0, n_utts - pick.shape[1])))
            extra = (rng.random((n, n_utts)) * self.count[:, None]).astype(np.int64)
            short = np.arange(n_utts)[None, :] >= self.count[:, None]
            pick = np.where(short, extra, pick)
        chosen = np.take_along_axis(self.rows, pick, axis=1)
        order = rng.permutation(n)[: (n // n_spk) * n_spk]
        return list(chosen[order].reshape(-1, n_spk * n_utts))


def _speaker_split(speakers: np.ndarray, val_fraction: float, rng: np.random.Generator, min_val: int = 1):
    """Hold out whole speakers for early stopping, so it measures generalisation to new voices.

    At least ``min_val`` speakers are held out when any are (M3 needs two for a validation loss); the permutation
    draws the same numbers from ``rng`` whatever is held out, so the rest of the fit is unchanged."""
    uniq = np.unique(speakers)
    n_val = int(round(len(uniq) * val_fraction))
    if val_fraction > 0 and len(uniq) >= MIN_SPEAKERS_TO_HOLD_OUT:
        n_val = max(min_val, n_val)
    else:
        n_val = 0
    val_spk = rng.permutation(uniq)[:n_val]
    is_val = np.isin(speakers, val_spk)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _specs(method: str, dx: int, dy: int, hp: dict) -> tuple[dict, dict]:
    """The enrollment and runtime side-map specs of a NESSA variant."""
    mlp = dict(hidden_dim=int(hp["hidden_dim"]), n_hidden=int(hp["n_hidden"]), dropout=float(hp["dropout"]))
    if method == "nessa-m1":
        return {"kind": "identity"}, {"kind": "mlp", "d_in": dy, "d_out": dx, **mlp}
    if method == "nessa-m2":
        return {"kind": "mlp", "d_in": dx, "d_out": dy, **mlp}, {"kind": "identity"}
    if hp["reference"] not in ("enroll", "runtime"):
        raise ValueError(f"nessa-m3 reference must be 'enroll' or 'runtime', got {hp['reference']!r}")
    ds = dx if hp["reference"] == "enroll" else dy
    return {"kind": "mlp", "d_in": dx, "d_out": ds, **mlp}, {"kind": "mlp", "d_in": dy, "d_out": ds, **mlp}


def _hold_out(method: str, speakers: np.ndarray, hp: dict, rng: np.random.Generator):
    """A member's training and early-stopping rows (whole speakers held out), refusing what cannot train."""
    vf = float(hp["val_fraction"])
    train_idx, val_idx = _speaker_split(speakers, vf, rng, min_val=2 if method == "nessa-m3" else 1)
    n_speakers, n_train_spk = len(np.unique(speakers)), len(np.unique(speakers[train_idx]))
    if len(train_idx) == 0:
        raise ValueError(f"{method}: no training data left after holding out {n_speakers - n_train_spk} of "
                         f"{n_speakers} speaker(s) for early stopping (val_fraction={vf}); lower val_fraction")
    if method == "nessa-m3" and n_train_spk < 2:
        raise ValueError(f"nessa-m3 needs utterances of at least 2 speakers to train (its contrastive loss "
                         f"contrasts speakers), got {n_train_spk}; use nessa-m1/nessa-m2 or add speakers")
    if vf > 0 and len(val_idx) == 0:
        logger.warning("%s: %d speaker(s) are too few to hold some out (need %d): early stopping validates on the "
                       "training data", method, n_speakers, MIN_SPEAKERS_TO_HOLD_OUT)
    return train_idx, val_idx


def _batch_groups(codes: np.ndarray) -> np.ndarray:
    """Each row's speaker as a code in ``[0, B)`` within its member's batch (``codes``: (members, B))."""
    out = np.empty(codes.shape, dtype=np.int64)
    for e, row in enumerate(codes):
        out[e] = np.unique(row, return_inverse=True)[1]
    return out


#: Rows per chunk when ``init: ridge`` accumulates its normal equations (a million-pair fit set is never copied
#: whole in float64).
INIT_CHUNK = 1 << 16


def _normal_equations(src: np.ndarray, dst: np.ndarray, rows: np.ndarray):
    """``(A'A, A'T, T'T trace)`` over ``rows`` for ``A`` = unit rows of ``src`` with a column of ones, ``T`` = unit
    rows of ``dst``; float64, accumulated over chunks of rows (a million-row set is never copied whole)."""
    d_in, d_out = src.shape[1], dst.shape[1]
    ata = np.zeros((d_in + 1, d_in + 1))
    atb = np.zeros((d_in + 1, d_out))
    ttt = 0.0
    rows = np.asarray(rows)
    for start in range(0, len(rows), INIT_CHUNK):
        r = rows[start:start + INIT_CHUNK]
        a = src[r].astype(np.float64)
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        a = np.hstack([a, np.ones((len(a), 1))])
        t = dst[r].astype(np.float64)
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        ata += a.T @ a
        atb += a.T @ t
        ttt += float(np.einsum("ij,ij->", t, t))
    return ata, atb, ttt


def ridge_map(src: np.ndarray, dst: np.ndarray, rows: np.ndarray, ridge: float = 1e-6):
    """Ridge least-squares affine map from the unit rows of ``src`` to the unit rows of ``dst`` over ``rows``:
    ``(W, b)`` with ``unit(src) @ W + b ~ unit(dst)``; the penalty is ``ridge`` times the number of rows (as the
    ``linear`` aligner's), the bias is not shrunk.

    Computed in float64 from normal equations accumulated over chunks of rows.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 3)); q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    >>> w, b = ridge_map(x, x @ q, np.arange(200), ridge=0.0)
    >>> bool(np.allclose(w, q) and np.allclose(b, 0, atol=1e-9))
    True
    """
    ata, atb, _ = _normal_equations(src, dst, rows)
    sol = ridge_solve(ata, atb, ridge * len(rows))
    return sol[:-1], sol[-1]


def ridge_grid(low: float, high: float) -> list[float]:
    """The penalties ``init: ridge`` chooses among: ``low`` and every decade above it up to ``high`` (just
    ``[low]`` when ``high <= low``).

    Examples
    --------
    >>> ridge_grid(1e-6, 1e-3)
    [1e-06, 1e-05, 0.0001, 0.001]
    >>> ridge_grid(1e-6, 0.0)
    [1e-06]
    """
    if high <= low:
        return [float(low)]
    if low <= 0:
        raise ValueError(f"init_ridge must be > 0 to choose among decades up to init_ridge_max ({high}), got {low}")
    n = int(np.floor(np.log10(high / low) + 1e-9))
    return [float(f"{low * 10.0 ** k:.12g}") for k in range(n + 1)]


def ridge_map_select(src: np.ndarray, dst: np.ndarray, train_rows: np.ndarray, val_rows: np.ndarray,
                     ridges) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`ridge_map` on ``train_rows`` with the penalty of ``ridges`` whose map has the lowest squared error
    on ``val_rows`` (held-out speakers): ``(W, b, ridge)``. With one penalty, that one; without validation rows
    (too few speakers to hold some out) the largest, since only a tiny fit set has none and the smallest penalty
    overfits it most.

    The squared error of every candidate comes from the validation rows' normal equations (no pass over the
    rows per candidate): ``|AW - T|^2 = tr(W'A'AW) - 2 tr(W'A'T) + tr(T'T)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(60, 20)); y = x @ rng.normal(size=(20, 12)) + 2 * rng.normal(size=(60, 12))
    >>> w, b, r = ridge_map_select(x, y, np.arange(30), np.arange(30, 60), [1e-6, 1e-2])
    >>> r  # 30 noisy rows for 21 unknowns per output: the larger penalty predicts the held-out rows better
    0.01
    """
    ridges = [float(r) for r in ridges]
    ata, atb, _ = _normal_equations(src, dst, train_rows)
    if len(ridges) == 1 or len(val_rows) == 0:
        r = ridges[0] if len(ridges) == 1 else max(ridges)
        sol = ridge_solve(ata, atb, r * len(train_rows))
        return sol[:-1], sol[-1], r
    vata, vatb, vttt = _normal_equations(src, dst, val_rows)
    best = None
    for r in ridges:
        sol = ridge_solve(ata, atb, r * len(train_rows))
        err = float(np.einsum("ij,ij->", sol, vata @ sol) - 2 * np.einsum("ij,ij->", sol, vatb) + vttt)
        if best is None or err < best[0] - 1e-12 * abs(best[0]):
            best = (err, sol, r)
    _, sol, r = best
    return sol[:-1], sol[-1], r


def _init_skip(mlp, w: np.ndarray, b: np.ndarray) -> None:
    """Set an MLP side's linear skip path to ``x @ w + b``."""
    with torch.no_grad():
        mlp.skip.weight.copy_(torch.as_tensor(w.T, dtype=torch.float32))
        mlp.skip.bias.copy_(torch.as_tensor(b, dtype=torch.float32))


def _dropout_generator(seed: int, device: torch.device) -> torch.Generator:
    """A member's own dropout stream, derived from its seed (independent of the initialisation's stream)."""
    state = int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(state)


def _train(method, x, y, speakers, hp, seeds, progress, device: str = "cpu"):
    """Train the MLP side(s) of a NESSA variant once per seed, all seeds as one stacked ensemble
    (:mod:`nessa_lib.align.ensemble`); returns one ``(enroll_map, runtime_map, enroll_spec, runtime_spec,
    history, fit_init)`` per seed, in the order of ``seeds`` (``fit_init``: the ridge penalty chosen per side with
    ``init: ridge``, else empty).

    Each member's initialisation (``torch.manual_seed(seed)``, then the enrollment side, then the runtime side),
    held-out speakers and batches (``numpy.random.default_rng(seed)``) are those of a fit with that seed alone, and
    its dropout masks come from its own generator, so a member's result does not depend on the other members.
    ``device``: where the MLPs and the data live while training; the weights are initialised on the CPU (same
    seed, same initial weights anywhere) and the fitted maps are returned on the CPU.
    """
    from tqdm.auto import tqdm

    from nessa_lib.align.ensemble import StackedAdamW, StackedMLP, apply_side, pad_batches, stacked_side, supcon_symmetric

    seeds = [int(s) for s in seeds]
    dx, dy = x.shape[1], y.shape[1]
    enroll_spec, runtime_spec = _specs(method, dx, dy, hp)
    rngs = [np.random.default_rng(s) for s in seeds]
    splits = [_hold_out(method, speakers, hp, r) for r in rngs]
    _, spk_codes = np.unique(speakers, return_inverse=True)
    dev = torch.device(device)
    X = torch.as_tensor(x, dtype=torch.float32).to(dev)
    Y = torch.as_tensor(y, dtype=torch.float32).to(dev)
    m3 = method == "nessa-m3"
    w_con, w_e, w_r = (float(hp[k]) for k in ("w_contrastive", "w_mse_enroll", "w_mse_runtime")) if m3 else (0, 0, 0)

    by_speaker: dict = {}  # each row set's speakers, grouped once (M3 draws batches from them every epoch)

    def batches(idx: np.ndarray, brng: np.random.Generator) -> list:
        if m3:
            key = (id(idx), len(idx))
            if key not in by_speaker:
                by_speaker[key] = (idx, SpeakerRows(idx, spk_codes[idx]))
            return by_speaker[key][1].epoch(int(hp["speakers_per_batch"]), int(hp["utts_per_speaker"]), brng)
        perm = brng.permutation(idx)
        bs = int(hp["batch_size"])
        return [perm[s : s + bs] for s in range(0, len(perm), bs)]

    def sqerr(a, b, w):  # squared L2 distance per pair, weighted mean per member: on unit vectors 2 - 2 cos
        return (((a - b) ** 2).sum(-1) * w).sum(1) / w.sum(1).clamp(min=1)

    # Each member initialised as a fit with its seed alone; the global torch RNG is left untouched.
    emaps, rmaps = [], []
    for s in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            emaps.append(_build_side(enroll_spec))
            rmaps.append(_build_side(runtime_spec))
    chosen: list = [{} for _ in seeds]  # each member's ridge penalty per side (init: ridge)
    if hp["init"] == "ridge":
        # Each side's skip path starts at the least-squares map into its target space, on the member's own
        # training rows (M1: runtime -> enroll; M2: enroll -> runtime; M3: both sides -> the reference space).
        ref = x if hp.get("reference", "enroll") == "enroll" else y
        targets = {"nessa-m1": (None, x), "nessa-m2": (y, None), "nessa-m3": (ref, ref)}[method]
        grid = ridge_grid(float(hp["init_ridge"]), float(hp["init_ridge_max"]))
        for e, (train_idx, val_idx) in enumerate(splits):
            for side, maps, src, dst in (("enroll", emaps, x, targets[0]), ("runtime", rmaps, y, targets[1])):
                if dst is not None:
                    # The penalty is chosen on the member's own held-out speakers (those of its early stopping).
                    w, b, chosen[e][side] = ridge_map_select(src, dst, train_idx, val_idx, grid)
                    _init_skip(maps[e], w, b)
    eside, rside = stacked_side(emaps), stacked_side(rmaps)
    sides = [sd for sd in (eside, rside) if sd is not None]
    for sd in sides:
        sd.to(dev)

    def tensors() -> list:  # each side's weights as one (members, n_weights) tensor
        return [sd.flat for sd in sides]

    def losses(idx: np.ndarray, w: np.ndarray, gens) -> torch.Tensor:
        t, wt = torch.as_tensor(idx, device=dev).view(-1), torch.as_tensor(w, device=dev)
        # Unit rows, normalised as they are read.
        xt, yt = (_normalize(Z.index_select(0, t).view(*idx.shape, -1)) for Z in (X, Y))
        xe, ye = apply_side(eside, xt, gens), apply_side(rside, yt, gens)
        if method == "nessa-m1":
            return sqerr(ye, xt, wt)
        if method == "nessa-m2":
            return sqerr(xe, yt, wt)
        groups = torch.as_tensor(_batch_groups(spk_codes[idx]), device=dev)
        con = supcon_symmetric(_normalize(xe), _normalize(ye), groups, wt > 0, hp["temperature"],
                               padded=not w.all())
        r = xt if hp["reference"] == "enroll" else yt
        return w_con * con + w_e * sqerr(xe, r, wt) + w_r * sqerr(ye, r, wt)

    total = None
    if hp["lr_schedule"] == "cosine":
        # Each member's schedule spans max_epochs of its own batches (members' training sets differ in size).
        total = [int(hp["max_epochs"]) * len(batches(tr, np.random.default_rng(0))) for tr, _ in splits]
    opt = StackedAdamW(tensors(), len(seeds), lr=float(hp["lr"]), weight_decay=float(hp["weight_decay"]),
                       total_steps=total)
    gens = [_dropout_generator(s, dev) for s in seeds]
    # Validation batches are the same every epoch (a fixed generator; M3 samples them), as in a single fit.
    val_batches = [batches(va, np.random.default_rng(s + 1)) if len(va) else None
                   for s, (_, va) in zip(seeds, splits)]
    alive = list(range(len(seeds)))  # member of each stack row
    best = [np.inf] * len(seeds)
    bad = [0] * len(seeds)
    snaps: list = [None] * len(seeds)
    history: list = [[] for _ in seeds]
    patience = int(hp["patience"])
    bar = tqdm(range(int(hp["max_epochs"])), desc=f"fit {method} x{len(seeds)}", disable=not progress, leave=False)
    for epoch in bar:
        per = [batches(splits[e][0], rngs[e]) for e in alive]
        width = max((len(b) for bl in per for b in bl), default=1)
        tot, n = np.zeros(len(alive)), np.zeros(len(alive))
        for step in range(max(len(bl) for bl in per)):
            idx, w, active = pad_batches([bl[step] if step < len(bl) else None for bl in per], width)
            loss = losses(idx, w, [gens[e] for e in alive])
            for sd in sides:
                sd.zero_grad()
            with warnings.catch_warnings():  # the weights' gradients are views of one buffer (StackedMLP.flat)
                warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout")
                (loss * torch.as_tensor(active, device=dev, dtype=loss.dtype)).sum().backward()
            opt.step(tensors(), active)
            tot += np.where(active, loss.detach().cpu().numpy() * w.sum(1), 0.0)
            n += w.sum(1)
        with torch.no_grad():
            val = tot / np.maximum(n, 1)  # no held-out speakers: validate on the training data (warned)
            vper = [val_batches[e] for e in alive]
            if any(vper):
                sums, counts = np.zeros(len(alive)), np.zeros(len(alive))
                vwidth = max(len(b) for v in vper if v for b in v)
                for step in range(max(len(v) if v else 0 for v in vper)):
                    idx, w, active = pad_batches([v[step] if v and step < len(v) else None for v in vper], vwidth)
                    vl = losses(idx, w, None).cpu().numpy().astype(np.float64)
                    sums, counts = sums + np.where(active, vl, 0.0), counts + active
            for row, v in enumerate(vper):
                if v is not None:
                    val[row] = sums[row] / counts[row] if v else float("nan")
        stop = []
        for row, e in enumerate(alive):
            history[e].append({"epoch": epoch + 1, "train_loss": tot[row] / max(n[row], 1), "val_loss": val[row]})
            if val[row] < best[e] - 1e-6:
                best[e], bad[e] = val[row], 0
                snaps[e] = [sd.snapshot(row) for sd in sides]
            else:
                bad[e] += 1
                stop.append(bad[e] >= patience)
                continue
            stop.append(False)
        bar.set_postfix(training=sum(not s for s in stop), val=f"{np.nanmean(val):.4f}")
        if any(stop):
            for row in (r for r, s in enumerate(stop) if s and snaps[alive[r]] is None):
                snaps[alive[row]] = [sd.snapshot(row) for sd in sides]  # never improved: its last weights
            rows = [r for r, s in enumerate(stop) if not s]
            alive = [alive[r] for r in rows]
            if not alive:
                break
            for sd in sides:
                sd.keep(rows)
            opt.keep(rows)
    # Members still training at max_epochs end with their last weights unless an earlier epoch was better.
    last = {e: [sd.snapshot(row) for sd in sides] for row, e in enumerate(alive)}
    out = []
    for e in range(len(seeds)):
        snap = snaps[e] if snaps[e] is not None else last[e]
        maps = [emaps[e], rmaps[e]]
        for sd_i, side in enumerate(m for m in maps if not isinstance(m, _Identity)):
            StackedMLP.load_into(side, snap[sd_i])
        out.append((maps[0].cpu().eval(), maps[1].cpu().eval(), enroll_spec, runtime_spec, history[e], chosen[e]))
    return out
