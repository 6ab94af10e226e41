"""Training objectives shared by the encoders and the aligners, and the objective vocabulary.

One supervised-contrastive (InfoNCE) loss serves both users: an encoder contrasts the utterances of one batch
with each other (``candidates=None``: an utterance is neither its own positive nor its own negative), and NESSA M3
contrasts one model's mapped embeddings with the other model's (every candidate of the anchor's speaker,
including the same utterance through the other model, is a positive).
"""

from __future__ import annotations

import torch

# Encoder objectives by kind. Speaker-logit alignment needs class-like centroids, which classification
# training makes explicit and contrastive training does not: the study groups its findings by these kinds.
CLASSIFICATION_OBJECTIVES = frozenset({"softmax", "aam"})
CONTRASTIVE_OBJECTIVES = frozenset({"supcon", "ge2e", "pretrained-ge2e"})


def supcon_loss(anchors: torch.Tensor, labels: torch.Tensor, temperature: float,
                candidates: torch.Tensor | None = None) -> torch.Tensor:
    """Supervised contrastive (InfoNCE, SupCon "out" form) loss; inputs must be L2-normalised.

    Parameters
    ----------
    anchors : torch.Tensor, shape (B, d)
        Unit-norm embeddings.
    labels : torch.Tensor, shape (B,)
        Speaker labels of the anchors (and of the candidates, row for row).
    temperature : float
        Softmax temperature on cosine similarities.
    candidates : torch.Tensor, shape (B, d), optional
        Unit-norm embeddings of the same utterances by another model. ``None``: the anchors are contrasted with
        each other, and an utterance is not its own positive nor negative.

    Returns
    -------
    torch.Tensor
        Mean over anchors (with at least one positive) of the negative log softmax mass on positives,
        averaged over the positives.

    Examples
    --------
    >>> e = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]]), dim=-1)
    >>> good = supcon_loss(e, torch.tensor([0, 0, 1, 1]), 0.1)
    >>> bad = supcon_loss(e, torch.tensor([0, 1, 0, 1]), 0.1)
    >>> bool(good < bad)
    True
    >>> round(float(supcon_loss(e, torch.tensor([0, 0, 1, 1]), 1.0, candidates=e)), 4)
    1.0354
    """
    same = labels[:, None] == labels[None, :]
    if candidates is None:
        logits = anchors @ anchors.T / temperature
        eye = torch.eye(len(anchors), dtype=torch.bool, device=anchors.device)
        logits = logits.masked_fill(eye, float("-inf"))
        pos = same & ~eye
    else:
        logits = anchors @ candidates.T / temperature
        pos = same
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    has_pos = pos.any(1)
    if not has_pos.any():
        raise ValueError("supcon_loss: no speaker appears twice in the batch")
    per_anchor = -(log_prob.masked_fill(~pos, 0.0).sum(1)[has_pos] / pos.sum(1)[has_pos])
    return per_anchor.mean()
