"""Synthetic paired embedding spaces with known structure, for tests, benchmarks and teaching.

Two "models" see the same utterances: each utterance has a latent speaker identity plus session
noise; model X and model Y embed that latent through different maps (a rotation, or a random
nonlinear warp into another dimension) and add their own model noise. A model with less noise is a
better model. Nothing here is used by the study's results; it only makes alignment problems whose
answer is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PairedSpaces:
    """Paired embeddings of the same utterances by two synthetic models."""

    x: np.ndarray  # (n, d_x) enrollment-model embeddings
    y: np.ndarray  # (n, d_y) runtime-model embeddings
    speakers: np.ndarray  # (n,) integer speaker labels


def _warp(d_in: int, d_out: int, kind: str, rng: np.random.Generator, gain: float):
    if kind == "rotation":
        if d_in != d_out:
            raise ValueError(f"a rotation keeps the dimension; got {d_in} -> {d_out}")
        q, _ = np.linalg.qr(rng.normal(size=(d_in, d_in)))
        return lambda z: z @ q
    if kind == "nonlinear":
        hidden = 2 * max(d_in, d_out)
        # ``gain`` pushes the tanh units into saturation: the larger, the less linear the warp.
        w1 = gain * rng.normal(size=(d_in, hidden)) / np.sqrt(d_in)
        b1 = rng.normal(scale=0.5, size=hidden)
        w2 = rng.normal(size=(hidden, d_out)) / np.sqrt(hidden)
        return lambda z: np.tanh(z @ w1 + b1) @ w2
    raise ValueError(f"unknown warp {kind!r}; choose 'rotation' or 'nonlinear'")


def make_paired_spaces(
    n_speakers: int,
    utts_per_speaker: int,
    *,
    d_latent: int = 16,
    d_x: int = 16,
    d_y: int = 16,
    warp_x: str = "rotation",
    warp_y: str = "rotation",
    session_noise: float = 0.3,
    noise_x: float = 0.3,
    noise_y: float = 0.3,
    warp_gain: float = 1.0,
    rng: np.random.Generator,
    speaker_offset: int = 0,
) -> PairedSpaces:
    """Make ``n_speakers * utts_per_speaker`` utterances embedded by two synthetic models.

    The two models' maps are drawn from ``rng`` *before* the speakers, so two calls with generators
    seeded alike and different ``speaker_offset`` share the same models but not the same speakers
    (use this to make disjoint alignment and evaluation sets of one model pair).

    Parameters
    ----------
    n_speakers, utts_per_speaker : int
        Corpus size.
    d_latent : int
        Dimension of the latent speaker space shared by both models.
    d_x, d_y : int
        Embedding dimensions of model X and model Y.
    warp_x, warp_y : {"rotation", "nonlinear"}
        How each model maps the latent space to its embedding space.
    session_noise : float
        Std of per-utterance variation of the latent (shared by both models: the same utterance).
    noise_x, noise_y : float
        Std of each model's own embedding noise (larger = worse model).
    warp_gain : float
        Input scale of the nonlinear warp's tanh layer; larger values make it less linear.
    rng : numpy.random.Generator
    speaker_offset : int
        Added to the speaker labels; also seeds the speakers so different offsets give new voices.

    Examples
    --------
    >>> import numpy as np
    >>> p = make_paired_spaces(3, 2, d_x=4, d_y=5, d_latent=4, warp_y="nonlinear",
    ...                        rng=np.random.default_rng(0))
    >>> p.x.shape, p.y.shape, p.speakers.tolist()
    ((6, 4), (6, 5), [0, 0, 1, 1, 2, 2])
    """
    fx = _warp(d_latent, d_x, warp_x, rng, warp_gain)
    fy = _warp(d_latent, d_y, warp_y, rng, warp_gain)
    srng = np.random.default_rng([int(rng.integers(2**31)), speaker_offset])
    centers = srng.normal(size=(n_speakers, d_latent))
    speakers = np.repeat(np.arange(n_speakers), utts_per_speaker)
    z = centers[speakers] + session_noise * srng.normal(size=(len(speakers), d_latent))
    x = fx(z) + noise_x * srng.normal(size=(len(z), d_x))
    y = fy(z) + noise_y * srng.normal(size=(len(z), d_y))
    return PairedSpaces(x=x, y=y, speakers=speakers + speaker_offset)


@dataclass
class ModelVersions:
    """The same utterances embedded by several synthetic versions of a model (v1, v2, v3, ...)."""

    embeddings: list  # one (n, d_k) array per version, in version order
    speakers: np.ndarray  # (n,) integer speaker labels


def make_model_versions(
    n_speakers: int,
    utts_per_speaker: int,
    *,
    noises=(0.6, 0.4, 0.2),
    dims=None,
    warps=None,
    d_latent: int = 16,
    session_noise: float = 0.3,
    warp_gain: float = 1.0,
    rng: np.random.Generator,
    speaker_offset: int = 0,
) -> ModelVersions:
    """Several model versions of one latent speaker space, for chains of upgrades (v1 -> v2 -> v3).

    Like :func:`make_paired_spaces` with more than two models: every version embeds the same utterances' latents
    through its own map and adds its own noise (``noises``: larger = worse; the default makes each version better
    than the one before, as upgrades are). The maps are drawn before the speakers, so generators seeded alike
    with different ``speaker_offset`` give the same versions and new voices.

    Parameters
    ----------
    noises : sequence of float
        Model noise of each version; its length is the number of versions.
    dims : sequence of int, optional
        Embedding dimension of each version (default ``d_latent`` for all).
    warps : sequence of {"rotation", "nonlinear"}, optional
        Map of each version (default: rotation for the first, nonlinear for the others).

    Examples
    --------
    >>> v = make_model_versions(3, 2, dims=(4, 5, 6), d_latent=4, rng=np.random.default_rng(0))
    >>> [e.shape for e in v.embeddings], v.speakers.tolist()
    ([(6, 4), (6, 5), (6, 6)], [0, 0, 1, 1, 2, 2])
    """
    k = len(noises)
    dims = [d_latent] * k if dims is None else list(dims)
    warps = ["rotation"] + ["nonlinear"] * (k - 1) if warps is None else list(warps)
    if not (len(dims) == len(warps) == k):
        raise ValueError(f"noises, dims and warps must have one entry per version, got {k}, {len(dims)}, {len(warps)}")
    maps = [_warp(d_latent, d, w, rng, warp_gain) for d, w in zip(dims, warps)]
    srng = np.random.default_rng([int(rng.integers(2**31)), speaker_offset])
    centers = srng.normal(size=(n_speakers, d_latent))
    speakers = np.repeat(np.arange(n_speakers), utts_per_speaker)
    z = centers[speakers] + session_noise * srng.normal(size=(len(speakers), d_latent))
    embs = [f(z) + s * srng.normal(size=(len(z), d)) for f, s, d in zip(maps, noises, dims)]
    return ModelVersions(embeddings=embs, speakers=speakers + speaker_offset)
