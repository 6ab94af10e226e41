"""Align two speaker-embedding spaces: NESSA M1/M2/M3 and the baselines, behind one API.

Vocabulary (as in the paper, arXiv 2401.12440): the *enrollment* model X embeds the utterances a voice
profile is built from, offline; the *runtime* model Y embeds incoming audio. An :class:`Aligner` maps
each side into one shared scoring space where cosine scoring works again::

    aligner = fit("nessa-m2", enroll_emb, runtime_emb, speakers, seed=0)
    profiles_in_y = aligner.map_enrollment(stored_profiles)   # migrate stored profiles once
    test_in_y = aligner.map_runtime(runtime_embeddings)       # identity for M2

``enroll_emb[i]`` and ``runtime_emb[i]`` must be the *same utterance* embedded by X and by Y (paired data);
``speakers[i]`` is its speaker label (used for early stopping on held-out speakers, the contrastive loss
of M3 and the centroids of speaker-logit).

Methods (the strings are part of the API):

========================  =======================================  ===================================
method                    enrollment side                          runtime side
========================  =======================================  ===================================
``identity``              unchanged                                unchanged (equal dims only)
``linear``                unchanged                                least squares into X (ridge)
``procrustes``            PCA to the common dim if larger          PCA if larger, then orthogonal map
``speaker-logit``         cosines to X-space speaker centroids     cosines to Y-space speaker centroids
``nessa-m1``              unchanged                                MLP into X's space (MSE)
``nessa-m2``              MLP into Y's space (MSE)                 unchanged
``nessa-m3``              MLP into a new space                     MLP into the new space
========================  =======================================  ===================================

NESSA M3 is trained with a supervised InfoNCE loss across the two models (anchors from one model,
positives = the other model's embeddings of the same speaker) plus squared-error terms tying both
sides to a reference space (``reference="enroll"`` or ``"runtime"``), so the new space cannot drift
away from a space known to score well.

All inputs are L2-normalised before mapping and all outputs are L2-normalised, so the score of a
trial is a plain dot product of the two mapped vectors.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nessa_lib.checks import as_embeddings

METHODS = ("identity", "linear", "procrustes", "speaker-logit", "nessa-m1", "nessa-m2", "nessa-m3")
FORMAT_VERSION = 1

# Defaults chosen to work without tuning on a few thousand to tens of thousands of pairs:
# a 2-hidden-layer MLP with a linear skip path starts close to the least-squares solution and
# early stopping on held-out speakers keeps it from memorising the alignment speakers. Hidden width 256:
# on development data it scored as well as 512 for M1/M2 and better for M3, and fits about 1.7x faster.
MLP_DEFAULTS = dict(
    hidden_dim=256,
    n_hidden=2,
    dropout=0.1,
    lr=1e-3,
    weight_decay=1e-4,
    batch_size=256,
    max_epochs=200,
    patience=15,
    val_fraction=0.1,
)
# M3: the contrastive term does the work; light squared-error terms only keep the new space near the
# reference one. Dropout 0.2 instead of M1/M2's 0.1 lowered M3's development EER in both orientations
# (M1/M2 were not re-tuned).
# Chosen on development data only (tools/choose_defaults.py): fits on the default corpus's encoder-training
# speakers, scored on trials of the (disjoint) alignment speakers, never on evaluation trials, 3-6 seeds, both
# x-vector/ECAPA orientations. README, "Choosing defaults", has the whole table.
M3_DEFAULTS = dict(
    MLP_DEFAULTS,
    dropout=0.2,
    reference="enroll",
    temperature=0.1,
    w_contrastive=1.0,
    w_mse_enroll=0.1,
    w_mse_runtime=0.1,
    speakers_per_batch=64,
    utts_per_speaker=4,
)
DEFAULT_HPARAMS = {
    "identity": {},
    "linear": dict(ridge=1e-3),
    "procrustes": {},
    "speaker-logit": {},
    "nessa-m1": MLP_DEFAULTS,
    "nessa-m2": MLP_DEFAULTS,
    "nessa-m3": M3_DEFAULTS,
}


# --------------------------------------------------------------------------------------------
# Side maps: small torch modules rebuilt from a JSON spec + a state dict on load.
# --------------------------------------------------------------------------------------------


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.normalize(x, dim=-1, eps=1e-12)


class _Identity(nn.Module):
    def forward(self, x):
        return x


class _Affine(nn.Module):
    """``x @ weight.T + bias``; used by linear, procrustes (bias zero) and PCA projections."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(d_out, d_in), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(d_out), requires_grad=False)

    def forward(self, x):
        return x @ self.weight.T + self.bias


class _Centroids(nn.Module):
    """Speaker-logit map: cosine similarity to each reference speaker centroid."""

    def __init__(self, n_speakers: int, d_in: int):
        super().__init__()
        self.centroids = nn.Parameter(torch.zeros(n_speakers, d_in), requires_grad=False)

    def forward(self, x):
        return x @ self.centroids.T


class _MLP(nn.Module):
    """MLP with a linear skip path: ``skip(x) + body(x)``."""

    def __init__(self, d_in: int, d_out: int, hidden_dim: int, n_hidden: int, dropout: float):
        super().__init__()
        self.skip = nn.Linear(d_in, d_out)
        layers: list[nn.Module] = []
        d = d_in
        for _ in range(n_hidden):
            layers += [nn.Linear(d, hidden_dim), nn.LayerNorm(hidden_dim), nn.GELU(), nn.Dropout(dropout)]
            d = hidden_dim
        out = nn.Linear(d, d_out)
        # Start the nonlinear branch at zero so training begins from a linear map.
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.body = nn.Sequential(*layers, out)

    def forward(self, x):
        return self.skip(x) + self.body(x)


def _build_side(spec: dict) -> nn.Module:
    kind = spec["kind"]
    if kind == "identity":
        return _Identity()
    if kind == "affine":
        return _Affine(spec["d_in"], spec["d_out"])
    if kind == "centroids":
        return _Centroids(spec["n_speakers"], spec["d_in"])
    if kind == "mlp":
        return _MLP(spec["d_in"], spec["d_out"], spec["hidden_dim"], spec["n_hidden"], spec["dropout"])
    raise ValueError(f"unknown side-map kind {kind!r} in aligner file")


# --------------------------------------------------------------------------------------------
# The Aligner
# --------------------------------------------------------------------------------------------


@dataclass
class Aligner:
    """A fitted mapping of enrollment (X) and runtime (Y) embeddings into one scoring space.

    Build one with :func:`fit` or :func:`load`; do not construct it by hand.

    Attributes
    ----------
    method : str
        One of :data:`METHODS`.
    enroll_dim, runtime_dim : int
        Input dimensions of X's and Y's embeddings.
    shared_dim : int
        Dimension of the scoring space.
    hparams : dict
        The hyper-parameters used (defaults filled in).
    enroll_model_id, runtime_model_id : str or None
        Fingerprints of the models the aligner was fitted for; checked when a caller passes one.
    history : list of dict
        Per-epoch training record (``epoch``, ``train_loss``, ``val_loss``) for trained methods.
    """

    method: str
    enroll_dim: int
    runtime_dim: int
    shared_dim: int
    hparams: dict
    enroll_spec: dict
    runtime_spec: dict
    enroll_map: nn.Module
    runtime_map: nn.Module
    enroll_model_id: str | None = None
    runtime_model_id: str | None = None
    seed: int = 0
    history: list = field(default_factory=list)

    def _map(self, emb, side: str, model_id: str | None, source: str | None) -> np.ndarray:
        dim = self.enroll_dim if side == "enrollment" else self.runtime_dim
        expected = self.enroll_model_id if side == "enrollment" else self.runtime_model_id
        if model_id is not None and expected is not None and model_id != expected:
            where = f" ({source})" if source else ""
            raise ValueError(
                f"{side} embeddings{where} come from model {model_id!r}, but this {self.method} aligner "
                f"was fitted for {side} model {expected!r}"
            )
        arr = as_embeddings(emb, name=f"{side} embeddings", dim=dim, source=source)
        module = self.enroll_map if side == "enrollment" else self.runtime_map
        with torch.no_grad():
            x = _normalize(torch.as_tensor(arr, dtype=torch.float32))
            out = _normalize(module(x))
        return out.numpy()

    def map_enrollment(self, emb_x, *, model_id: str | None = None, source: str | None = None) -> np.ndarray:
        """Map enrollment-model embeddings or voice profiles into the shared space.

        Parameters
        ----------
        emb_x : array_like, shape (m, enroll_dim)
            Embeddings (or profiles) from the enrollment model X.
        model_id : str, optional
            Fingerprint of the model that made ``emb_x``; must match the aligner's if both are known.
        source : str, optional
            File the embeddings came from, named in error messages.

        Returns
        -------
        ndarray, shape (m, shared_dim), float32, unit-norm rows.

        Examples
        --------
        >>> import numpy as np
        >>> a = fit("identity", np.eye(3), np.eye(3), [0, 1, 2])
        >>> a.map_enrollment([[2.0, 0.0, 0.0]])
        array([[1., 0., 0.]], dtype=float32)
        """
        return self._map(emb_x, "enrollment", model_id, source)

    def map_runtime(self, emb_y, *, model_id: str | None = None, source: str | None = None) -> np.ndarray:
        """Map runtime-model embeddings into the shared space (see :meth:`map_enrollment`).

        Examples
        --------
        >>> import numpy as np
        >>> a = fit("identity", np.eye(2), np.eye(2), [0, 1])
        >>> a.map_runtime([[0.0, 3.0]])
        array([[0., 1.]], dtype=float32)
        """
        return self._map(emb_y, "runtime", model_id, source)

    def metadata(self) -> dict:
        """JSON-serialisable description of the aligner (everything but the weights)."""
        return dict(
            format="nessa-aligner",
            format_version=FORMAT_VERSION,
            method=self.method,
            enroll_dim=self.enroll_dim,
            runtime_dim=self.runtime_dim,
            shared_dim=self.shared_dim,
            hparams=self.hparams,
            enroll_spec=self.enroll_spec,
            runtime_spec=self.runtime_spec,
            enroll_model_id=self.enroll_model_id,
            runtime_model_id=self.runtime_model_id,
            seed=self.seed,
            history=self.history,
        )

    def save(self, path) -> None:
        """Write the aligner to one ``.safetensors`` file (weights + JSON metadata in its header).

        The file holds no code: :func:`load` never executes anything it reads.

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> a = fit("identity", np.eye(2), np.eye(2), [0, 1], enroll_model_id="x1")
        >>> p = os.path.join(tempfile.mkdtemp(), "al.safetensors")
        >>> a.save(p); load(p).enroll_model_id
        'x1'
        """
        from safetensors.torch import save_file

        tensors = {f"enroll.{k}": v.detach().contiguous() for k, v in self.enroll_map.state_dict().items()}
        tensors.update({f"runtime.{k}": v.detach().contiguous() for k, v in self.runtime_map.state_dict().items()})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata={"nessa": json.dumps(self.metadata())})
        tmp.replace(path)  # atomic: a crash never leaves a half-written aligner behind


def load(path) -> Aligner:
    """Read an aligner written by :meth:`Aligner.save`, without executing code from the file.

    Raises ``ValueError`` naming the file if it is not a NESSA aligner or is damaged.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "al.safetensors")
    >>> fit("linear", np.eye(2), np.eye(2), [0, 1]).save(p)
    >>> load(p).method
    'linear'
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"aligner file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises several types for damaged files
        raise ValueError(f"{path} is not a readable safetensors aligner file: {exc}") from exc
    if "nessa" not in header:
        raise ValueError(f"{path} is a safetensors file but not a NESSA aligner (no 'nessa' metadata)")
    meta = json.loads(header["nessa"])
    if meta.get("format") != "nessa-aligner" or meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported aligner format {meta.get('format')!r} v{meta.get('format_version')}")
    if meta["method"] not in METHODS:
        raise ValueError(f"{path}: unknown method {meta['method']!r}")
    sides = {}
    for side in ("enroll", "runtime"):
        module = _build_side(meta[f"{side}_spec"])
        state = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(side + ".")}
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"{path}: weights do not match the {side} map described in its metadata: {exc}") from exc
        module.eval()
        sides[side] = module
    return Aligner(
        method=meta["method"],
        enroll_dim=meta["enroll_dim"],
        runtime_dim=meta["runtime_dim"],
        shared_dim=meta["shared_dim"],
        hparams=meta["hparams"],
        enroll_spec=meta["enroll_spec"],
        runtime_spec=meta["runtime_spec"],
        enroll_map=sides["enroll"],
        runtime_map=sides["runtime"],
        enroll_model_id=meta.get("enroll_model_id"),
        runtime_model_id=meta.get("runtime_model_id"),
        seed=meta.get("seed", 0),
        history=meta.get("history", []),
    )


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


def _resolve_hparams(method: str, hparams: dict) -> dict:
    if method not in METHODS:
        raise ValueError(f"unknown alignment method {method!r}; choose one of {', '.join(METHODS)}")
    defaults = DEFAULT_HPARAMS[method]
    unknown = sorted(set(hparams) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown hyper-parameter(s) {unknown} for method {method!r}; valid: {sorted(defaults) or 'none'}"
        )
    return {**defaults, **hparams}


def _affine_spec(d_in, d_out):
    return {"kind": "affine", "d_in": int(d_in), "d_out": int(d_out)}


def _set_affine(module: _Affine, weight: np.ndarray, bias: np.ndarray | None = None) -> _Affine:
    module.weight.data = torch.as_tensor(weight, dtype=torch.float32).contiguous()
    if bias is not None:
        module.bias.data = torch.as_tensor(bias, dtype=torch.float32).contiguous()
    return module


def _unit(x: np.ndarray, name: str = "embeddings") -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        rows = np.flatnonzero(norms[:, 0] == 0)
        raise ValueError(f"{name} has {len(rows)} all-zero row(s) (no direction to score), first at {rows[:5].tolist()}")
    return x / norms


def _pca_projection(x: np.ndarray, k: int) -> np.ndarray:
    """Top-``k`` right singular vectors of ``x`` (uncentred: cosine geometry is about the origin)."""
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return vt[:k]


def _speaker_split(speakers: np.ndarray, val_fraction: float, rng: np.random.Generator):
    """Hold out whole speakers for early stopping, so it measures generalisation to new voices."""
    uniq = np.unique(speakers)
    n_val = int(round(len(uniq) * val_fraction))
    if val_fraction > 0 and len(uniq) >= 4:
        n_val = max(1, n_val)
    else:
        n_val = 0
    val_spk = rng.permutation(uniq)[:n_val]
    is_val = np.isin(speakers, val_spk)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _supcon(za: torch.Tensor, zb: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised InfoNCE from anchors ``za`` to candidates ``zb`` (another model's embeddings).

    Every candidate of the anchor's speaker is a positive; the loss is the mean negative log of the
    softmax mass on positives, averaged over positives (SupCon "out" form).
    """
    logits = za @ zb.T / temperature
    pos = (labels[:, None] == labels[None, :]).float()
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -((log_prob * pos).sum(1) / pos.sum(1)).mean()


def _speaker_batches(labels: np.ndarray, n_spk: int, n_utt: int, rng: np.random.Generator):
    """Yield index batches of ``n_spk`` speakers x up to ``n_utt`` utterances, covering each speaker once."""
    by_spk: dict = {}
    for i, s in enumerate(labels):
        by_spk.setdefault(s, []).append(i)
    spks = [s for s, idx in by_spk.items() if len(idx) >= 2]  # a positive needs a second utterance
    order = rng.permutation(len(spks))
    for start in range(0, len(order) - 1, n_spk):
        chosen = order[start : start + n_spk]
        if len(chosen) < 2:
            break
        batch = []
        for c in chosen:
            idx = by_spk[spks[c]]
            batch.extend(rng.choice(idx, size=min(n_utt, len(idx)), replace=False).tolist())
        yield np.asarray(batch)


def _train(method, x, y, speakers, hp, seed, progress):
    """Train the MLP side(s) of a NESSA variant; returns (enroll_map, runtime_map, specs, history)."""
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

    train_idx, val_idx = _speaker_split(speakers, float(hp["val_fraction"]), rng)
    _, spk_codes = np.unique(speakers, return_inverse=True)
    X = torch.as_tensor(x, dtype=torch.float32)
    Y = torch.as_tensor(y, dtype=torch.float32)
    S = torch.as_tensor(spk_codes)
    ref = X if (method == "nessa-m1" or (method == "nessa-m3" and hp["reference"] == "enroll")) else Y

    # Fork the global torch RNG so fitting is reproducible and leaves the caller's state untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        emap, rmap = _build_side(enroll_spec), _build_side(runtime_spec)
        params = list(emap.parameters()) + list(rmap.parameters())
        opt = torch.optim.AdamW(params, lr=float(hp["lr"]), weight_decay=float(hp["weight_decay"]))

        def sqerr(a, b):  # squared L2 distance per pair, averaged: on unit vectors this is 2 - 2 cos
            return ((a - b) ** 2).sum(1).mean()

        def loss_on(idx: np.ndarray) -> torch.Tensor:
            t = torch.as_tensor(idx)
            xe, ye = emap(X[t]), rmap(Y[t])
            if method == "nessa-m1":
                return sqerr(ye, X[t])
            if method == "nessa-m2":
                return sqerr(xe, Y[t])
            za, zb, lab = _normalize(xe), _normalize(ye), S[t]
            con = 0.5 * (_supcon(za, zb, lab, hp["temperature"]) + _supcon(zb, za, lab, hp["temperature"]))
            r = ref[t]
            return hp["w_contrastive"] * con + hp["w_mse_enroll"] * sqerr(xe, r) + hp["w_mse_runtime"] * sqerr(ye, r)

        def batches(idx: np.ndarray, brng: np.random.Generator):
            if method == "nessa-m3":
                for b in _speaker_batches(speakers[idx], hp["speakers_per_batch"], hp["utts_per_speaker"], brng):
                    yield idx[b]
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
    emap.eval(), rmap.eval()
    return emap, rmap, enroll_spec, runtime_spec, history


def fit(
    method: str,
    enroll_emb,
    runtime_emb,
    speakers,
    *,
    seed: int = 0,
    enroll_model_id: str | None = None,
    runtime_model_id: str | None = None,
    progress: bool = False,
    **hparams,
) -> Aligner:
    """Fit an aligner of the given method on paired embeddings.

    Parameters
    ----------
    method : str
        One of ``"identity"``, ``"linear"``, ``"procrustes"``, ``"speaker-logit"``, ``"nessa-m1"``,
        ``"nessa-m2"``, ``"nessa-m3"``.
    enroll_emb : array_like, shape (n, d_x)
        ``n`` utterances embedded by the enrollment model X.
    runtime_emb : array_like, shape (n, d_y)
        The same ``n`` utterances embedded by the runtime model Y.
    speakers : array_like, shape (n,)
        Speaker label of each utterance.
    seed : int
        Drives every random choice (initialisation, batches, the held-out speakers).
    enroll_model_id, runtime_model_id : str, optional
        Model fingerprints stored in the aligner and checked when mapping.
    progress : bool
        Show a tqdm bar over epochs for the trained methods.
    **hparams
        Method hyper-parameters; see ``DEFAULT_HPARAMS[method]``. Unknown names raise ``ValueError``.

    Returns
    -------
    Aligner

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(40, 4)); q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    >>> a = fit("procrustes", x, x @ q, np.repeat(np.arange(10), 4))
    >>> bool(np.allclose(a.map_enrollment(x), a.map_runtime(x @ q), atol=1e-5))
    True
    """
    hp = _resolve_hparams(method, hparams)
    x = as_embeddings(enroll_emb, name="enrollment embeddings").astype(np.float64)
    y = as_embeddings(runtime_emb, name="runtime embeddings").astype(np.float64)
    speakers = np.asarray(speakers)
    if speakers.ndim != 1:
        raise ValueError(f"speakers must be 1-D, got shape {speakers.shape}")
    if not (len(x) == len(y) == len(speakers)):
        raise ValueError(
            "paired inputs differ in length: "
            f"{len(x)} enrollment, {len(y)} runtime embeddings, {len(speakers)} speaker labels"
        )
    x, y = _unit(x, "enrollment embeddings"), _unit(y, "runtime embeddings")
    dx, dy = x.shape[1], y.shape[1]
    history: list = []
    enroll_spec = runtime_spec = {"kind": "identity"}  # the methods below replace what they map

    if method == "identity":
        if dx != dy:
            raise ValueError(
                f"'identity' needs equal embedding dims, got enrollment {dx} vs runtime {dy}; "
                "use an alignment method instead"
            )
        emap, rmap, shared = _Identity(), _Identity(), dx
    elif method == "linear":
        # Ridge least squares Y -> X with a bias column; the runtime side moves, as in M1.
        ya = np.hstack([y, np.ones((len(y), 1))])
        reg = hp["ridge"] * len(y) * np.eye(dy + 1)
        reg[-1, -1] = 0.0  # do not shrink the bias
        w = np.linalg.solve(ya.T @ ya + reg, ya.T @ x)
        runtime_spec = _affine_spec(dy, dx)
        emap, rmap, shared = _Identity(), _set_affine(_Affine(dy, dx), w[:-1].T, w[-1]), dx
    elif method == "procrustes":
        k = min(dx, dy)
        px = _pca_projection(x, k) if dx > k else np.eye(k)
        py = _pca_projection(y, k) if dy > k else np.eye(k)
        u, _, vt = np.linalg.svd((y @ py.T).T @ (x @ px.T))
        r = u @ vt  # orthogonal R minimising ||Y_k R - X_k||
        enroll_spec, runtime_spec = _affine_spec(dx, k), _affine_spec(dy, k)
        emap = _set_affine(_Affine(dx, k), px)
        rmap = _set_affine(_Affine(dy, k), (py.T @ r).T)
        shared = k
    elif method == "speaker-logit":
        uniq, inv = np.unique(speakers, return_inverse=True)
        if len(uniq) < 2:
            raise ValueError("speaker-logit needs at least 2 reference speakers")
        cx = np.zeros((len(uniq), dx))
        cy = np.zeros((len(uniq), dy))
        np.add.at(cx, inv, x)
        np.add.at(cy, inv, y)
        enroll_spec = {"kind": "centroids", "n_speakers": len(uniq), "d_in": dx}
        runtime_spec = {"kind": "centroids", "n_speakers": len(uniq), "d_in": dy}
        emap, rmap = _Centroids(len(uniq), dx), _Centroids(len(uniq), dy)
        emap.centroids.data = torch.as_tensor(_unit(cx), dtype=torch.float32)
        rmap.centroids.data = torch.as_tensor(_unit(cy), dtype=torch.float32)
        shared = len(uniq)
    else:
        emap, rmap, enroll_spec, runtime_spec, history = _train(method, x, y, speakers, hp, seed, progress)
        shared = (runtime_spec if method == "nessa-m1" else enroll_spec)["d_out"]
    emap.eval(), rmap.eval()
    return Aligner(
        method=method,
        enroll_dim=dx,
        runtime_dim=dy,
        shared_dim=int(shared),
        hparams=hp,
        enroll_spec=enroll_spec,
        runtime_spec=runtime_spec,
        enroll_map=emap,
        runtime_map=rmap,
        enroll_model_id=enroll_model_id,
        runtime_model_id=runtime_model_id,
        seed=int(seed),
        history=history,
    )
