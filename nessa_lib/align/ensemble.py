"""Several NESSA aligners trained as one stacked ensemble: one member per seed, one optimiser step for all.

Fitting three seeds of a method one after the other runs three Python training loops over the same data. Here the
members' weights are stacked along a leading axis (``(members, d_in, d_out)``) and every layer is one batched
matrix product (``torch.baddbmm``), so one loop trains them all. Each member keeps what a fit with its seed alone
would have (:func:`nessa_lib.align.nessa._train` is this with one member):

- its initialisation (built exactly as a single fit builds it, then stacked);
- its held-out speakers and its batches (the member's own ``numpy`` generator, drawn in the same order);
- its dropout masks (the member's own ``torch.Generator``), so a member's result does not depend on which other
  members share its ensemble;
- its optimiser state (AdamW with per-member step counts: a member with no batch in a step is not updated at all);
- its early stopping: a member that stops keeps its best weights and leaves the stack, the others go on.

Batches of unequal size (the last batch of an epoch, members with different training sets) are padded with rows of
weight zero, which no loss, gradient or contrastive candidate sees.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nessa_lib.align.aligner import _MLP, _Identity


class StackedMLP:
    """The weights of several :class:`~nessa_lib.align.aligner._MLP` side maps of one shape, stacked.

    Parameters
    ----------
    mlps : list of _MLP
        Members of identical shape; their current weights are copied.

    Examples
    --------
    >>> torch.manual_seed(0) is not None
    True
    >>> a, b = _MLP(3, 2, 4, 1, 0.0), _MLP(3, 2, 4, 1, 0.0)
    >>> s = StackedMLP([a, b])
    >>> x = torch.randn(2, 5, 3)
    >>> bool(torch.allclose(s.forward(x)[1], b(x[1]), atol=1e-6))
    True
    """

    def __init__(self, mlps: list):
        self.dropout = float(mlps[0].body[3].p) if len(mlps[0].body) > 1 else 0.0
        n_hidden = (len(mlps[0].body) - 1) // 4

        def stack(get, transpose=False):
            t = torch.stack([get(m).detach().clone() for m in mlps])
            return t.transpose(1, 2) if transpose else t

        # Linear weights are stored (d_in, d_out) so that a layer is baddbmm(bias, h, weight).
        self.params: dict[str, torch.Tensor] = {
            "skip_w": stack(lambda m: m.skip.weight, True), "skip_b": stack(lambda m: m.skip.bias),
            "out_w": stack(lambda m: m.body[-1].weight, True), "out_b": stack(lambda m: m.body[-1].bias),
        }
        for i in range(n_hidden):
            lin, ln = (lambda m, i=i: m.body[4 * i]), (lambda m, i=i: m.body[4 * i + 1])
            self.params[f"w{i}"] = stack(lambda m, f=lin: f(m).weight, True)
            self.params[f"b{i}"] = stack(lambda m, f=lin: f(m).bias)
            self.params[f"g{i}"] = stack(lambda m, f=ln: f(m).weight)
            self.params[f"beta{i}"] = stack(lambda m, f=ln: f(m).bias)
        self.n_hidden = n_hidden
        self.ln_eps = float(mlps[0].body[1].eps)
        self._set_flat(torch.cat([t.reshape(len(mlps), -1) for t in self.params.values()], 1))

    def _set_flat(self, flat: torch.Tensor) -> None:
        """All weights of a member in one row of ``self.flat`` (members, n_weights), its gradient in one buffer
        ``self.flat.grad``; ``self.params`` are leaf views of both (each weight's gradient accumulates into its
        part of the buffer), so the optimiser updates one tensor instead of one per layer."""
        shapes = {k: tuple(v.shape[1:]) for k, v in self.params.items()}
        self.flat = flat.detach().contiguous().requires_grad_(True)
        self.flat.grad = torch.zeros_like(self.flat)
        data, grad = self.flat.detach(), self.flat.grad
        self.params, off = {}, 0
        for k, shape in shapes.items():
            n = int(np.prod(shape))
            view = data[:, off:off + n].view(len(data), *shape).requires_grad_(True)
            view.grad = grad[:, off:off + n].view(len(data), *shape)
            self.params[k], off = view, off + n

    def zero_grad(self) -> None:
        self.flat.grad.zero_()

    def forward(self, x: torch.Tensor, generators=None) -> torch.Tensor:
        """Map ``x`` of shape (members, rows, d_in); dropout only when per-member ``generators`` are given."""
        p = self.params
        out = torch.baddbmm(p["skip_b"].unsqueeze(1), x, p["skip_w"])
        h = x
        for i in range(self.n_hidden):
            h = torch.baddbmm(p[f"b{i}"].unsqueeze(1), h, p[f"w{i}"])
            h = F.layer_norm(h, h.shape[-1:], eps=self.ln_eps) * p[f"g{i}"].unsqueeze(1) + p[f"beta{i}"].unsqueeze(1)
            h = F.gelu(h)
            if generators is not None and self.dropout > 0:
                h = h * dropout_masks(h.shape[1:], 1.0 - self.dropout, generators, h.device, h.dtype)
        return out + torch.baddbmm(p["out_b"].unsqueeze(1), h, p["out_w"])

    def to(self, device) -> "StackedMLP":
        """Move the weights to ``device`` (new leaf tensors)."""
        self._set_flat(self.flat.detach().to(device))
        return self

    def keep(self, rows) -> None:
        """Keep only the members at positions ``rows`` (new leaf tensors)."""
        self._set_flat(self.flat.detach()[rows])

    def snapshot(self, row: int) -> dict:
        """Copies of one member's weights."""
        return {k: v.detach()[row].clone() for k, v in self.params.items()}

    @staticmethod
    def load_into(mlp: _MLP, snap: dict) -> _MLP:
        """Write a :meth:`snapshot` into a plain ``_MLP`` of the same shape."""
        with torch.no_grad():
            mlp.skip.weight.copy_(snap["skip_w"].T)
            mlp.skip.bias.copy_(snap["skip_b"])
            mlp.body[-1].weight.copy_(snap["out_w"].T)
            mlp.body[-1].bias.copy_(snap["out_b"])
            for i in range((len(mlp.body) - 1) // 4):
                mlp.body[4 * i].weight.copy_(snap[f"w{i}"].T)
                mlp.body[4 * i].bias.copy_(snap[f"b{i}"])
                mlp.body[4 * i + 1].weight.copy_(snap[f"g{i}"])
                mlp.body[4 * i + 1].bias.copy_(snap[f"beta{i}"])
        return mlp


class StackedAdamW:
    """``torch.optim.AdamW``'s update on stacked weights, with a step count per member and a mask of members that
    take this step (the others are left exactly as they were: no decay, no moment update)."""

    def __init__(self, tensors: list, n_members: int, lr: float, weight_decay: float,
                 betas=(0.9, 0.999), eps: float = 1e-8, total_steps=None, warmup: float = 0.1):
        self.lr, self.wd, self.b1, self.b2, self.eps = float(lr), float(weight_decay), betas[0], betas[1], eps
        # With ``total_steps`` (one per member): a warm-up over the first ``warmup`` share of each member's steps,
        # then a cosine decay to zero at its last step; without: a constant learning rate.
        self.total = None if total_steps is None else np.maximum(np.asarray(total_steps, dtype=np.float64), 1)
        self.warmup = float(warmup)
        self.m = [torch.zeros_like(t) for t in tensors]
        self.v = [torch.zeros_like(t) for t in tensors]
        self.steps = np.zeros(n_members, dtype=np.int64)

    def keep(self, rows) -> None:
        self.m = [m[rows].clone() for m in self.m]
        self.v = [v[rows].clone() for v in self.v]
        self.steps = self.steps[rows]
        if self.total is not None:
            self.total = self.total[rows]

    def rates(self) -> np.ndarray:
        """Each member's learning rate for its next step."""
        if self.total is None:
            return np.full(len(self.steps), self.lr)
        frac = np.minimum(self.steps / self.total, 1.0)
        warm = np.minimum(1.0, (self.steps + 1) / np.maximum(self.warmup * self.total, 1))
        return self.lr * np.where(frac < self.warmup, warm, 0.5 * (1 + np.cos(np.pi * (frac - self.warmup)
                                                                           / (1 - self.warmup))))

    @torch.no_grad()
    def step(self, tensors: list, active: np.ndarray) -> None:
        lr = self.rates()
        self.steps = self.steps + active.astype(np.int64)
        steps = np.maximum(self.steps, 1).astype(np.float64)
        dev = tensors[0].device
        # Per-member AdamW scalars, as torch computes them (Python floats in float64, applied in float32).
        step_size = torch.tensor(lr / (1 - self.b1 ** steps), dtype=torch.float32, device=dev)
        decay = torch.tensor(1 - lr * self.wd, dtype=torch.float32, device=dev)
        bc2_sqrt = torch.tensor(np.sqrt(1 - self.b2 ** steps), dtype=torch.float32, device=dev)
        act = torch.as_tensor(active, device=dev)
        every = bool(active.all())
        for t, m, v in zip(tensors, self.m, self.v):
            if t.grad is None:
                continue
            shape = (-1,) + (1,) * (t.dim() - 1)
            g = t.grad
            if every:  # the common step: in place, as torch's AdamW
                t.mul_(decay.view(shape))
                m.lerp_(g, 1 - self.b1)
                v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
                t.sub_(step_size.view(shape) * m / (v.sqrt() / bc2_sqrt.view(shape) + self.eps))
                continue
            a = act.view(shape)
            new_t = t * decay.view(shape)
            new_m = m.lerp(g, 1 - self.b1)
            new_v = v * self.b2 + (1 - self.b2) * g * g
            denom = new_v.sqrt() / bc2_sqrt.view(shape) + self.eps
            new_t = new_t - step_size.view(shape) * new_m / denom
            t.copy_(torch.where(a, new_t, t))
            m.copy_(torch.where(a, new_m, m))
            v.copy_(torch.where(a, new_v, v))


def dropout_masks(shape, keep: float, generators, device, dtype) -> torch.Tensor:
    """Inverted-dropout multipliers of shape ``(members, *shape)``: ``1 / keep`` where a uniform draw of the
    member's own generator is below ``keep``, else 0 (uniform < keep is ~2x cheaper than ``bernoulli_``).

    One float mask per layer, so the autograd graph has one product instead of two (same values).

    Examples
    --------
    >>> m = dropout_masks((1000, 64), 0.8, [torch.Generator().manual_seed(0)], "cpu", torch.float32)
    >>> m.shape, sorted(set(m.unique().tolist())), round(float((m > 0).float().mean()), 2)
    (torch.Size([1, 1000, 64]), [0.0, 1.25], 0.8)
    """
    mask = torch.stack([torch.rand(shape, device=device, generator=g) < keep for g in generators])
    return mask.to(dtype).mul_(1.0 / keep)


class _PairedLogPartition(torch.autograd.Function):
    """Per member, ``sum_i w_i logsumexp_j L_ij + sum_j w_j logsumexp_i L_ij`` of the logits
    ``L = anchors @ candidates.T`` (members, B, B), from one ``exp`` of the matrix shifted by ``bound``, an upper
    bound of every logit (``1 / temperature`` for unit rows): the caller makes sure no logit lies more than 80 below
    it, else a row's sum could underflow. ``keep``: optional 0/1 mask of the entries that count."""

    @staticmethod
    def forward(ctx, anchors, candidates, w, keep, bound: float):
        shift = torch.full((1, 1, 1), -float(bound), dtype=anchors.dtype, device=anchors.device)
        e = torch.baddbmm(shift, anchors, candidates.transpose(1, 2)).exp_()
        if keep is not None:
            e.mul_(keep)
        tiny = torch.finfo(e.dtype).tiny
        rs, cs = e.sum(2).clamp_(min=tiny), e.sum(1).clamp_(min=tiny)
        ctx.save_for_backward(anchors, candidates, e, w / rs, w / cs)
        return (w * (rs.log() + cs.log())).sum(1) + 2 * float(bound) * w.sum(1)

    @staticmethod
    def backward(ctx, grad):
        anchors, candidates, e, a, b = ctx.saved_tensors
        g = grad.view(-1, 1)
        d = e * (a * g).unsqueeze(2)
        d.addcmul_(e, (b * g).unsqueeze(1))  # d/dL_ij: w_i softmax over row i + w_j softmax over column j
        return torch.bmm(d, candidates), torch.bmm(d.transpose(1, 2), anchors), None, None, None


def supcon_symmetric(anchors, candidates, groups, valid, temperature: float, padded: bool = True) -> torch.Tensor:
    """``0.5 * (supcon_stacked(a, b, ...) + supcon_stacked(b, a, ...))`` (M3's loss, both directions) from one
    matrix product.

    The positive term of both directions is the same sum, ``sum over groups g of (sum_a_g . sum_b_g) / n_g`` (each
    anchor's positives are the valid candidates of its group), computed from per-group sums of the embeddings;
    the two log-partition terms (rows and columns of one logit matrix) share one ``exp``.

    Parameters
    ----------
    anchors, candidates : torch.Tensor, shape (members, B, d)
        Unit-norm embeddings of the same rows by the two sides.
    groups : torch.Tensor of int64, shape (members, B)
        Each row's speaker as a code in ``[0, B)`` (any coding that equal speakers share).
    valid : torch.Tensor of bool, shape (members, B)
        False on padding rows.
    temperature : float
    padded : bool
        False when every row is valid: skips the masking.

    Returns
    -------
    torch.Tensor, shape (members,)

    Examples
    --------
    >>> e = F.normalize(torch.randn(1, 6, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    >>> f = F.normalize(e + 0.3, dim=-1)
    >>> lab, ok = torch.tensor([[0, 0, 1, 1, 2, 2]]), torch.ones(1, 6, dtype=torch.bool)
    >>> both = 0.5 * (supcon_stacked(e, f, lab, ok, 0.2) + supcon_stacked(f, e, lab, ok, 0.2))
    >>> bool(torch.allclose(supcon_symmetric(e, f, lab, ok, 0.2, padded=False), both, atol=1e-5))
    True
    """
    t = float(temperature)
    if 2.0 / t > 80:  # logits span up to 2 / t: one shared shift could underflow a row; the two-pass form
        return 0.5 * (supcon_stacked(anchors, candidates, groups, valid, t)
                      + supcon_stacked(candidates, anchors, groups, valid, t))
    vf = valid.to(anchors.dtype)
    n = vf.sum(1).clamp(min=1)
    keep = vf.unsqueeze(2) * vf.unsqueeze(1) if padded else None
    # Unit rows: every logit is at most 1 / t.
    log_partition = _PairedLogPartition.apply(anchors * (1.0 / t), candidates, 0.5 * vf / n.unsqueeze(1), keep,
                                              1.0 / t)
    at = groups.unsqueeze(2).expand_as(anchors)
    if padded:
        anchors, candidates = anchors * vf.unsqueeze(2), candidates * vf.unsqueeze(2)
    sum_a = torch.zeros_like(anchors).scatter_add(1, at, anchors)
    sum_b = torch.zeros_like(candidates).scatter_add(1, at, candidates)
    n_g = torch.zeros_like(vf).scatter_add(1, groups, vf).clamp(min=1)
    positives = ((sum_a * sum_b).sum(2) / n_g).sum(1) / (t * n)
    return log_partition - positives


def supcon_stacked(anchors, candidates, labels, valid, temperature: float) -> torch.Tensor:
    """:func:`nessa_lib.losses.supcon_loss` with candidates, for each member of a stack; padded rows excluded.

    Parameters
    ----------
    anchors, candidates : torch.Tensor, shape (members, B, d)
        Unit-norm embeddings; candidates are the same rows through the other model.
    labels : torch.Tensor, shape (members, B)
    valid : torch.Tensor of bool, shape (members, B)
        False on padding rows: they are neither anchors nor candidates.
    temperature : float

    Returns
    -------
    torch.Tensor, shape (members,)
        Each member's mean over valid anchors with a positive.

    Examples
    --------
    >>> from nessa_lib.losses import supcon_loss
    >>> e = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]]), dim=-1)
    >>> lab = torch.tensor([0, 0, 1, 1])
    >>> one = supcon_stacked(e[None], e[None], lab[None], torch.ones(1, 4, dtype=torch.bool), 1.0)
    >>> bool(torch.isclose(one[0], supcon_loss(e, lab, 1.0, candidates=e)))
    True
    """
    logits = torch.bmm(anchors, candidates.transpose(1, 2)) / temperature
    logits = logits.masked_fill(~valid[:, None, :], float("-inf"))
    pos = (labels[:, :, None] == labels[:, None, :]) & valid[:, None, :]
    log_prob = logits - torch.logsumexp(logits, dim=2, keepdim=True)
    n_pos = pos.sum(2)
    has = (n_pos > 0) & valid
    per_anchor = -log_prob.masked_fill(~pos, 0.0).sum(2) / n_pos.clamp(min=1)
    return (per_anchor * has).sum(1) / has.sum(1).clamp(min=1)


def pad_batches(per_member: list, width: int | None = None):
    """Index and weight arrays (members, width) for one step: each member's row indices padded with 0 / weight 0;
    a member without a batch (``None``) gets an all-zero weight row. Returns ``(idx, weight, active)``.

    Examples
    --------
    >>> idx, w, act = pad_batches([np.array([4, 5, 6]), None, np.array([7])])
    >>> idx.tolist(), w.tolist(), act.tolist()
    ([[4, 5, 6], [0, 0, 0], [7, 0, 0]], [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], [True, False, True])
    """
    width = width or max((len(b) for b in per_member if b is not None), default=1)
    idx = np.zeros((len(per_member), width), dtype=np.int64)
    w = np.zeros((len(per_member), width), dtype=np.float32)
    for e, b in enumerate(per_member):
        if b is not None:
            idx[e, : len(b)], w[e, : len(b)] = b, 1.0
    return idx, w, np.array([b is not None and len(b) > 0 for b in per_member])


def stacked_side(mlps: list):
    """A :class:`StackedMLP` of the members' side maps, or ``None`` for an identity side."""
    if isinstance(mlps[0], _Identity):
        return None
    if not all(isinstance(m, _MLP) for m in mlps):
        raise TypeError("an ensemble side must be all identity or all MLP maps")
    return StackedMLP(mlps)


def apply_side(side, x: torch.Tensor, generators=None) -> torch.Tensor:
    return x if side is None else side.forward(x, generators)
