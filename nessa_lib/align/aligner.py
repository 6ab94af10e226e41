"""The :class:`Aligner` (a fitted pair of side maps), its file format, and :func:`load`.

The side maps are small torch modules rebuilt from a JSON spec + a state dict on load, so an aligner file
(``.safetensors``: weights + JSON metadata in its header) holds no code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nessa_lib.align.hparams import METHODS
from nessa_lib.checks import as_embeddings, check_digest, data_digest

FORMAT_VERSION = 1
#: Rows mapped at once (a 256-wide hidden layer of 65,536 rows: 64 MB).
MAP_CHUNK_ROWS = 1 << 16


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

    Build one with :func:`nessa_lib.align.fit` or :func:`load`; do not construct it by hand.

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
    fit_agreement : dict
        Pair agreement on the fit data (cosine between the two mapped sides of the same utterance): ``n``,
        ``mean``, ``p05``, ``median``. The yardstick of :func:`nessa_lib.deployment.deployment_check`; empty for
        aligners saved before it existed.
    fit_reference : dict
        How spread out the mapped fit data is (:func:`nessa_lib.align.collapse.reference_statistics`: non-pair
        cosines, pair identification rate at several sample sizes), the deployment check's yardstick for a
        collapsed or scrambled space. Stored as JSON in the file's metadata like ``fit_agreement``; empty for
        aligners saved before it existed (the file format is unchanged, older files load as they did).
    fit_init : dict
        How the skip paths started with ``init: ridge``: the ridge penalty chosen per side (``enroll``,
        ``runtime``) on the member's held-out speakers; empty for ``init: random`` and the closed-form methods.
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
    fit_agreement: dict = field(default_factory=dict)
    fit_reference: dict = field(default_factory=dict)
    fit_init: dict = field(default_factory=dict)

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
        out = np.empty((len(arr), self.shared_dim), dtype=np.float32)
        with torch.no_grad():
            # In chunks, so that mapping a million rows never holds a million rows of hidden activations.
            for start in range(0, len(arr), MAP_CHUNK_ROWS):
                x = _normalize(torch.as_tensor(arr[start:start + MAP_CHUNK_ROWS], dtype=torch.float32))
                out[start:start + MAP_CHUNK_ROWS] = _normalize(module(x)).numpy()
        return out

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
        >>> from nessa_lib.align import fit
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
        >>> from nessa_lib.align import fit
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
            fit_agreement=self.fit_agreement,
            fit_reference=self.fit_reference,
            fit_init=self.fit_init,
        )

    def save(self, path) -> None:
        """Write the aligner to one ``.safetensors`` file (weights + JSON metadata in its header).

        The file holds no code: :func:`load` never executes anything it reads.

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> from nessa_lib.align import fit
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
        meta = {**self.metadata(), "data_sha256": data_digest(tensors)}  # checked by load
        save_file(tensors, str(tmp), metadata={"nessa": json.dumps(meta)})
        tmp.replace(path)  # atomic: a crash never leaves a half-written aligner behind


def load(path) -> Aligner:
    """Read an aligner written by :meth:`Aligner.save`, without executing code from the file.

    Raises ``ValueError`` naming the file if it is not a NESSA aligner or is damaged, including weights that
    differ from the SHA-256 digest stored when it was written (a file written before digests loads with a
    logged warning).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from nessa_lib.align import fit
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
    check_digest(tensors, meta.get("data_sha256"), path, "aligner")
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
        fit_agreement=meta.get("fit_agreement", {}),
        fit_reference=meta.get("fit_reference", {}),
        fit_init=meta.get("fit_init", {}),
    )


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------
