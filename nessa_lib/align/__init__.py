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

Modules: :mod:`~nessa_lib.align.hparams` (method names, hyper-parameter defaults and their schema),
:mod:`~nessa_lib.align.aligner` (the :class:`Aligner`, its file format, :func:`load`),
:mod:`~nessa_lib.align.closed_form` (identity, linear, procrustes, speaker-logit),
:mod:`~nessa_lib.align.nessa` (training M1/M2/M3), :mod:`~nessa_lib.align.ensemble` (several seeds trained as one
stacked ensemble) and :mod:`~nessa_lib.align.fitting` (:func:`fit`, :func:`fit_ensemble`).
"""

from nessa_lib.align.aligner import FORMAT_VERSION, Aligner, load  # noqa: F401
from nessa_lib.align.fitting import fit, fit_ensemble  # noqa: F401
from nessa_lib.align.hparams import (  # noqa: F401
    DEFAULT_HPARAMS,
    M3_DEFAULTS,
    METHODS,
    MLP_DEFAULTS,
    check_hparams,
    hparams_schema,
)

__all__ = ["METHODS", "FORMAT_VERSION", "MLP_DEFAULTS", "M3_DEFAULTS", "DEFAULT_HPARAMS", "Aligner", "load", "fit", "fit_ensemble",
           "hparams_schema", "check_hparams"]
