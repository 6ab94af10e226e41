"""Fitting an aligner: :func:`fit` checks the paired inputs and dispatches to the closed-form or NESSA fit."""

from __future__ import annotations

import numpy as np

from nessa_lib.align.agreement import agreement_summary, pair_agreement
from nessa_lib.align.aligner import Aligner
from nessa_lib.align.closed_form import CLOSED_FORM, _unit
from nessa_lib.align.collapse import reference_statistics
from nessa_lib.align.hparams import resolve_hparams
from nessa_lib.align.nessa import _train
from nessa_lib.checks import as_embeddings


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
    device: str = "cpu",
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
    device : str
        Where the NESSA MLPs train: ``"cpu"`` (default), ``"cuda[:N]"`` or ``"auto"`` (CUDA when visible, see
        :func:`nessa_lib.devices.resolve_device`). The returned aligner is on the CPU either way; closed-form
        methods always run on the CPU. The CUDA path is untested on the development machine.
    **hparams
        Method hyper-parameters; see ``DEFAULT_HPARAMS[method]`` and :func:`nessa_lib.align.hparams_schema`.
        Unknown names and values of the wrong type raise ``ValueError``.

    Returns
    -------
    Aligner

    Raises
    ------
    ValueError
        Mismatched or non-finite inputs, unknown or out-of-range hyper-parameters, and NESSA fits that cannot
        train: no training data left after the early-stopping hold-out, or ``nessa-m3`` with fewer than two
        training speakers. (Fewer than four speakers is allowed, with a logged warning: early stopping then
        validates on the training data.)

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(40, 4)); q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    >>> a = fit("procrustes", x, x @ q, np.repeat(np.arange(10), 4))
    >>> bool(np.allclose(a.map_enrollment(x), a.map_runtime(x @ q), atol=1e-5))
    True
    """
    hp = resolve_hparams(method, hparams)
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
    if method in CLOSED_FORM:
        emap, rmap, enroll_spec, runtime_spec, shared = CLOSED_FORM[method](x, y, speakers, hp)
    else:
        from nessa_lib.devices import resolve_device

        emap, rmap, enroll_spec, runtime_spec, history = _train(method, x, y, speakers, hp, seed, progress,
                                                                device=resolve_device(device))
        shared = (runtime_spec if method == "nessa-m1" else enroll_spec)["d_out"]
    emap.eval(), rmap.eval()
    aligner = Aligner(
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
    # The agreement of the two sides on the fit data: what a deployment check compares new traffic with.
    aligner.fit_agreement = agreement_summary(pair_agreement(aligner, x, y))
    # And how spread out the mapped fit data is (non-pair cosines, pair identification rate at several sample
    # sizes): a deployment check sees a collapsed or scrambled space by comparing a sample with these.
    aligner.fit_reference = reference_statistics(aligner.map_enrollment(x), aligner.map_runtime(y), seed=seed)
    return aligner
