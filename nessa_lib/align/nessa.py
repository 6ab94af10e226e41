"""Training the NESSA aligners (M1, M2, M3): the MLP side maps, speaker-disjoint early stopping, M3's batches.

M1 and M2 minimise the squared error of one mapped side against the other model's embeddings; M3 maps both
sides into a new space with a supervised InfoNCE loss across the two models
(:func:`nessa_lib.losses.supcon_loss`, each model's mapped embeddings as anchors and the other's as candidates)
plus squared-error terms tying both sides to the reference space, on P speakers x K utterances batches
(:func:`nessa_lib.batches.speaker_batches`, the sampler of the encoders' contrastive training).

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

import numpy as np
import torch

from nessa_lib.align.aligner import _build_side, _normalize
from nessa_lib.batches import speaker_batches, utterances_by_speaker
from nessa_lib.losses import supcon_loss

logger = logging.getLogger(__name__)

#: Fewest speakers from which early stopping holds some out; below, it validates on the training data (warned).
MIN_SPEAKERS_TO_HOLD_OUT = 4


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


def _train(method, x, y, speakers, hp, seed, progress, device: str = "cpu"):
    """Train the MLP side(s) of a NESSA variant; returns (enroll_map, runtime_map, specs, history).

    ``device``: where the MLPs and the data live while training. The weights are initialised on the CPU (same
    seed, same initial weights anywhere) and the fitted maps are returned on the CPU; on the CPU every ``.to``
    below is a no-op, so results are exactly those of the plain CPU code."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    dx, dy = x.shape[1], y.shape[1]
    mlp = dict(hidden_dim=int(hp["hidden_dim"]), n_hidden=int(hp["n_hidden"]), dropout=float(hp["dropout"]))
    if method == "nessa-m1":
        enroll_spec, runtime_spec = {"kind": "identity"}, {"kind": "mlp", "d_in": dy, "d_out": dx, **mlp}
    elif method == "nessa-m2":
        enroll_spec, runtime_spec = {"kind": "mlp", "d_in": dx, "d_out": dy, **mlp}, {"kind": "identity"}
    else:
        if hp["reference"] not in ("enroll", "runtime"):
            raise ValueError(f"nessa-m3 reference must be 'enroll' or 'runtime', got {hp['reference']!r}")
        ds = dx if hp["reference"] == "enroll" else dy
        enroll_spec = {"kind": "mlp", "d_in": dx, "d_out": ds, **mlp}
        runtime_spec = {"kind": "mlp", "d_in": dy, "d_out": ds, **mlp}

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
    _, spk_codes = np.unique(speakers, return_inverse=True)
    dev = torch.device(device)
    X = torch.as_tensor(x, dtype=torch.float32).to(dev)
    Y = torch.as_tensor(y, dtype=torch.float32).to(dev)
    S = torch.as_tensor(spk_codes).to(dev)
    ref = X if (method == "nessa-m1" or (method == "nessa-m3" and hp["reference"] == "enroll")) else Y

    # Fork the global torch RNG so fitting is reproducible and leaves the caller's state untouched.
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        emap, rmap = _build_side(enroll_spec).to(dev), _build_side(runtime_spec).to(dev)
        params = list(emap.parameters()) + list(rmap.parameters())
        opt = torch.optim.AdamW(params, lr=float(hp["lr"]), weight_decay=float(hp["weight_decay"]))

        def sqerr(a, b):  # squared L2 distance per pair, averaged: on unit vectors this is 2 - 2 cos
            return ((a - b) ** 2).sum(1).mean()

        def loss_on(idx: np.ndarray) -> torch.Tensor:
            t = torch.as_tensor(idx).to(dev)
            xe, ye = emap(X[t]), rmap(Y[t])
            if method == "nessa-m1":
                return sqerr(ye, X[t])
            if method == "nessa-m2":
                return sqerr(xe, Y[t])
            za, zb, lab = _normalize(xe), _normalize(ye), S[t]
            con = 0.5 * (supcon_loss(za, lab, hp["temperature"], candidates=zb)
                         + supcon_loss(zb, lab, hp["temperature"], candidates=za))
            r = ref[t]
            return hp["w_contrastive"] * con + hp["w_mse_enroll"] * sqerr(xe, r) + hp["w_mse_runtime"] * sqerr(ye, r)

        def batches(idx: np.ndarray, brng: np.random.Generator):
            if method == "nessa-m3":
                # The encoders' P x K batching, one round per epoch: every speaker once, K utterances each.
                by_spk = utterances_by_speaker(spk_codes[idx])
                n_spk = min(int(hp["speakers_per_batch"]), len(by_spk))
                if n_spk < 2:
                    return
                for b in speaker_batches(by_spk, n_spk, int(hp["utts_per_speaker"]), brng):
                    yield idx[np.asarray(b)]
            else:
                perm = brng.permutation(idx)
                bs = int(hp["batch_size"])
                for s in range(0, len(perm), bs):
                    yield perm[s : s + bs]

        history, best, best_state, bad = [], np.inf, None, 0
        bar = tqdm(range(int(hp["max_epochs"])), desc=f"fit {method}", disable=not progress, leave=False)
        for epoch in bar:
            emap.train(), rmap.train()
            tot, n = 0.0, 0
            for b in batches(train_idx, rng):
                loss = loss_on(b)
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot, n = tot + loss.item() * len(b), n + len(b)
            emap.eval(), rmap.eval()
            with torch.no_grad():
                if len(val_idx):
                    # A fixed generator gives the same validation batches every epoch (M3 samples them).
                    vb = list(batches(val_idx, np.random.default_rng(seed + 1)))
                    val = float(np.mean([float(loss_on(b)) for b in vb])) if vb else float("nan")
                else:
                    val = tot / max(n, 1)
            history.append({"epoch": epoch + 1, "train_loss": tot / max(n, 1), "val_loss": val})
            bar.set_postfix(train=f"{tot / max(n, 1):.4f}", val=f"{val:.4f}")
            if val < best - 1e-6:
                best, bad = val, 0
                best_state = ({k: v.clone() for k, v in emap.state_dict().items()},
                              {k: v.clone() for k, v in rmap.state_dict().items()})
            else:
                bad += 1
                if bad >= int(hp["patience"]):
                    break
        if best_state is not None:
            emap.load_state_dict(best_state[0])
            rmap.load_state_dict(best_state[1])
    emap, rmap = emap.cpu().eval(), rmap.cpu().eval()
    return emap, rmap, enroll_spec, runtime_spec, history
