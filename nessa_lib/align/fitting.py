"""Fitting aligners: :func:`fit` checks the paired inputs and dispatches to the closed-form or NESSA fit;
:func:`fit_ensemble` trains one NESSA method for several seeds at once."""

from __future__ import annotations

import numpy as np

from nessa_lib.align.agreement import agreement_summary, row_cosines
from nessa_lib.align.aligner import Aligner
from nessa_lib.align.closed_form import CLOSED_FORM, _unit
from nessa_lib.align.collapse import reference_statistics
from nessa_lib.align.hparams import resolve_hparams
from nessa_lib.align.nessa import _train
from nessa_lib.checks import as_embeddings

#: Fit statistics (agreement, collapse reference) of a larger fit set are measured on this many random rows.
FIT_STATISTICS_ROWS = 1 << 18


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
    if method in CLOSED_FORM:
        hp, x, y, speakers = _checked(method, enroll_emb, runtime_emb, speakers, hparams)
        emap, rmap, enroll_spec, runtime_spec, shared = CLOSED_FORM[method](x, y, speakers, hp)
        return _aligner(method, x, y, hp, (emap, rmap, enroll_spec, runtime_spec, [], {}), int(shared), seed,
                        enroll_model_id, runtime_model_id)
    return fit_ensemble(method, enroll_emb, runtime_emb, speakers, seeds=[seed], enroll_model_id=enroll_model_id,
                        runtime_model_id=runtime_model_id, progress=progress, device=device, **hparams)[0]


def fit_ensemble(
    method: str,
    enroll_emb,
    runtime_emb,
    speakers,
    *,
    seeds,
    enroll_model_id: str | None = None,
    runtime_model_id: str | None = None,
    progress: bool = False,
    device: str = "cpu",
    **hparams,
) -> list[Aligner]:
    """Fit a NESSA method once per seed, all seeds trained together as one stacked ensemble.

    One training loop updates every member (:mod:`nessa_lib.align.ensemble`); each member has the
    initialisation, held-out speakers, batches, dropout masks and early stopping of a fit with its seed alone, so
    ``fit_ensemble(m, ..., seeds=[3, 4])[1]`` is ``fit(m, ..., seed=4)`` up to floating-point rounding.

    Parameters
    ----------
    method : str
        ``"nessa-m1"``, ``"nessa-m2"`` or ``"nessa-m3"``.
    enroll_emb, runtime_emb, speakers, enroll_model_id, runtime_model_id, progress, device, **hparams
        As in :func:`fit`.
    seeds : sequence of int
        One member per seed, distinct.

    Returns
    -------
    list of Aligner
        One per seed, in the order of ``seeds``; each saves and loads like any aligner.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(80, 4))
    >>> out = fit_ensemble("nessa-m2", x, x, np.repeat(np.arange(20), 4), seeds=[0, 1], hidden_dim=8, max_epochs=3)
    >>> [a.seed for a in out], len(out[1].history)
    ([0, 1], 3)
    """
    from nessa_lib.devices import resolve_device

    if method in CLOSED_FORM:
        raise ValueError(f"{method!r} is closed-form (deterministic, nothing to train per seed): use fit()")
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, at least one, got {seeds}")
    hp, x, y, speakers = _checked(method, enroll_emb, runtime_emb, speakers, hparams)
    trained = _train(method, x, y, speakers, hp, seeds, progress, device=resolve_device(device))
    return [_aligner(method, x, y, hp, t, (t[3] if method == "nessa-m1" else t[2])["d_out"], s, enroll_model_id,
                     runtime_model_id) for s, t in zip(seeds, trained)]


def _checked(method, enroll_emb, runtime_emb, speakers, hparams):
    """Resolved hyper-parameters and the checked, unit-normalised paired inputs."""
    hp = resolve_hparams(method, hparams)
    # The closed forms solve in float64; the MLPs train in float32, so NESSA inputs stay float32 (a million
    # 192-d pairs: 1.5 GB instead of 3).
    dtype = np.float64 if method in CLOSED_FORM else np.float32
    # Contiguous rows: torch shares the array's memory and cannot take negative strides (x[:, ::-1]).
    x = np.ascontiguousarray(as_embeddings(enroll_emb, name="enrollment embeddings"), dtype=dtype)
    y = np.ascontiguousarray(as_embeddings(runtime_emb, name="runtime embeddings"), dtype=dtype)
    speakers = np.asarray(speakers)
    if speakers.ndim != 1:
        raise ValueError(f"speakers must be 1-D, got shape {speakers.shape}")
    if not (len(x) == len(y) == len(speakers)):
        raise ValueError(
            "paired inputs differ in length: "
            f"{len(x)} enrollment, {len(y)} runtime embeddings, {len(speakers)} speaker labels"
        )
    if method in CLOSED_FORM:
        return hp, _unit(x, "enrollment embeddings"), _unit(y, "runtime embeddings"), speakers
    # The NESSA trainer normalises each batch as it reads it: no normalised copy of the whole set (a million pairs).
    for arr, name in ((x, "enrollment embeddings"), (y, "runtime embeddings")):
        zero = np.flatnonzero(np.einsum("ij,ij->i", arr, arr) == 0)
        if len(zero):
            raise ValueError(f"{name} has {len(zero)} all-zero row(s) (no direction to score), first at "
                             f"{zero[:5].tolist()}")
    return hp, x, y, speakers


def _aligner(method, x, y, hp, trained, shared, seed, enroll_model_id, runtime_model_id) -> Aligner:
    emap, rmap, enroll_spec, runtime_spec, history, fit_init = trained
    emap.eval(), rmap.eval()
    aligner = Aligner(
        method=method,
        enroll_dim=x.shape[1],
        runtime_dim=y.shape[1],
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
        fit_init=fit_init,
    )
    if len(x) > FIT_STATISTICS_ROWS:
        # A random subset of a very large fit set (seeded): the statistics are medians and percentiles.
        keep = np.sort(np.random.default_rng(seed).choice(len(x), FIT_STATISTICS_ROWS, replace=False))
        x, y = x[keep], y[keep]
    a, b = aligner.map_enrollment(x), aligner.map_runtime(y)
    # The agreement of the two sides on the fit data: what a deployment check compares new traffic with.
    aligner.fit_agreement = agreement_summary(row_cosines(a, b))
    # And how spread out the mapped fit data is (non-pair cosines, pair identification rate at several sample
    # sizes): a deployment check sees a collapsed or scrambled space by comparing a sample with these.
    aligner.fit_reference = reference_statistics(a, b, seed=seed)
    return aligner
