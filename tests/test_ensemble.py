"""The stacked-ensemble trainer (nessa_lib.align.ensemble): each member is the fit of its seed alone, its
optimiser is torch's AdamW, its contrastive loss is supcon_loss, padded rows and idle members change nothing."""

import numpy as np
import pytest
import torch

from nessa_lib import align, toy
from nessa_lib.align.aligner import _MLP
from nessa_lib.align.ensemble import StackedAdamW, StackedMLP, pad_batches, supcon_stacked
from nessa_lib.evaluation.tables import fit_seeds
from nessa_lib.losses import supcon_loss


@pytest.fixture(scope="module")
def pairs():
    return toy.make_paired_spaces(40, 6, d_latent=8, d_x=12, d_y=16, warp_x="nonlinear", warp_y="nonlinear",
                                  rng=np.random.default_rng(0))


def _same(a, b, x, y):
    return (np.array_equal(a.map_enrollment(x), b.map_enrollment(x))
            and np.array_equal(a.map_runtime(y), b.map_runtime(y)) and a.history == b.history)


@pytest.mark.parametrize("method", ["nessa-m1", "nessa-m2", "nessa-m3"])
@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_member_is_the_fit_of_its_seed_alone(pairs, method, schedule):
    # Patience 2 with a fast learning rate: members stop at different epochs and leave the stack (from a random
    # start: M2's default least-squares start is so close on this toy that every member stops at once).
    hp = dict(hidden_dim=16, max_epochs=25, patience=2, lr=0.01, lr_schedule=schedule, init="random")
    ens = align.fit_ensemble(method, pairs.x, pairs.y, pairs.speakers, seeds=[5, 6, 7], **hp)
    alone = [align.fit(method, pairs.x, pairs.y, pairs.speakers, seed=s, **hp) for s in (5, 6, 7)]
    assert [a.seed for a in ens] == [5, 6, 7]
    for a, b in zip(ens, alone):
        assert _same(a, b, pairs.x, pairs.y)
    if schedule == "constant":
        assert len({len(a.history) for a in ens}) > 1, "members should stop at different epochs here"


@pytest.mark.parametrize("method", ["nessa-m1", "nessa-m2", "nessa-m3"])
def test_ridge_init_starts_at_the_least_squares_map_of_each_members_training_rows(pairs, method):
    """``init: ridge``: before any step the aligner is the ridge map of the member's own training rows (the
    nonlinear branch starts at zero) with the penalty its held-out speakers chose (recorded in ``fit_init``);
    members still equal their seed's fit alone; ``random`` is unchanged."""
    from nessa_lib.align.closed_form import _unit
    from nessa_lib.align.nessa import _hold_out, ridge_grid, ridge_map, ridge_map_select

    hp = dict(hidden_dim=16, max_epochs=1, lr=1e-12, lr_schedule="constant", init="ridge")
    ens = align.fit_ensemble(method, pairs.x, pairs.y, pairs.speakers, seeds=[3, 4], **hp)
    from nessa_lib.align.hparams import resolve_hparams

    full = resolve_hparams(method, hp)
    grid = ridge_grid(full["init_ridge"], full["init_ridge_max"])
    assert len(grid) > 1  # the default chooses among several penalties
    for a, seed in zip(ens, (3, 4)):
        train_idx, val_idx = _hold_out(method, pairs.speakers, full, np.random.default_rng(seed))
        assert len(val_idx)
        x, y = pairs.x.astype(np.float32), pairs.y.astype(np.float32)
        target = (pairs.x if method != "nessa-m2" else pairs.y).astype(np.float32)  # M3's reference: enrollment
        sides = [s for s, m in (("enroll", ("nessa-m2", "nessa-m3")), ("runtime", ("nessa-m1", "nessa-m3")))
                 if method in m]
        assert sorted(a.fit_init) == sorted(sides)
        for side in sides:
            src = x if side == "enroll" else y
            assert a.fit_init[side] == ridge_map_select(src, target, train_idx, val_idx, grid)[2]
            w, b = ridge_map(src, target, train_idx, a.fit_init[side])
            mapped = a.map_enrollment(pairs.x) if side == "enroll" else a.map_runtime(pairs.y)
            raw = pairs.x if side == "enroll" else pairs.y
            np.testing.assert_allclose(mapped, _unit(_unit(raw) @ w + b), atol=2e-5)
        assert _same(a, align.fit(method, pairs.x, pairs.y, pairs.speakers, seed=seed, **hp), pairs.x, pairs.y)
    rnd = align.fit(method, pairs.x, pairs.y, pairs.speakers, seed=3, **{**hp, "init": "random"})
    assert rnd.fit_init == {}
    assert not np.allclose(rnd.map_runtime(pairs.y) if method != "nessa-m2" else rnd.map_enrollment(pairs.x),
                           ens[0].map_runtime(pairs.y) if method != "nessa-m2" else ens[0].map_enrollment(pairs.x),
                           atol=1e-3)
    with pytest.raises(ValueError, match="init"):
        align.fit(method, pairs.x, pairs.y, pairs.speakers, init="zeros")


def test_fit_seeds_ensemble_or_not_gives_the_same_aligners(pairs):
    kw = dict(methods=["linear", "nessa-m2"], seeds=[0, 1], hparams={"nessa-m2": dict(hidden_dim=8, max_epochs=4)})
    a = fit_seeds(pairs.x, pairs.y, pairs.speakers, ensemble=True, **kw)
    b = fit_seeds(pairs.x, pairs.y, pairs.speakers, ensemble=False, **kw)
    assert [al.seed for al in a["nessa-m2"]] == [0, 1]
    for u, v in zip(a["nessa-m2"], b["nessa-m2"]):
        assert _same(u, v, pairs.x, pairs.y)


def test_stacked_adamw_is_torch_adamw():
    torch.manual_seed(0)
    w0 = torch.randn(2, 3, 4)
    grads = [torch.randn(2, 3, 4) for _ in range(5)]
    ref = [w0[i].clone().requires_grad_(True) for i in range(2)]
    opts = [torch.optim.AdamW([r], lr=0.01, weight_decay=0.1) for r in ref]
    st = w0.clone().requires_grad_(True)
    opt = StackedAdamW([st], 2, lr=0.01, weight_decay=0.1)
    for g in grads:
        for i in range(2):
            ref[i].grad = g[i].clone()
            opts[i].step()
        st.grad = g.clone()
        opt.step([st], np.array([True, True]))
    for i in range(2):
        torch.testing.assert_close(st[i].detach(), ref[i].detach(), rtol=1e-6, atol=1e-7)


def test_an_idle_member_is_not_updated_at_all():
    w = torch.ones(2, 3, requires_grad=True)
    opt = StackedAdamW([w], 2, lr=0.1, weight_decay=0.5)
    w.grad = torch.ones(2, 3)
    opt.step([w], np.array([True, False]))
    assert torch.equal(w[1].detach(), torch.ones(3))  # no step, no weight decay
    assert not torch.equal(w[0].detach(), torch.ones(3))
    assert opt.steps.tolist() == [1, 0] and torch.equal(opt.m[0][1], torch.zeros(3))


def test_cosine_schedule_by_hand():
    # 10 steps, warm-up 10 % = 1 step: rate lr*1 at step 0, then 0.5*(1+cos(pi*(k/10-0.1)/0.9)).
    opt = StackedAdamW([torch.zeros(1, 1)], 1, lr=1.0, weight_decay=0.0, total_steps=[10])
    rates = []
    for k in range(10):
        rates.append(float(opt.rates()[0]))
        opt.steps += 1
    expected = [1.0] + [0.5 * (1 + np.cos(np.pi * (k / 10 - 0.1) / 0.9)) for k in range(1, 10)]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    assert rates[1] == pytest.approx(1.0) and rates[9] < 0.04


def test_supcon_stacked_is_supcon_loss_and_ignores_padding():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(2, 6, 5, generator=g), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(2, 6, 5, generator=g), dim=-1)
    lab = torch.tensor([[0, 0, 1, 1, 2, 2], [3, 1, 3, 1, 2, 2]])
    valid = torch.tensor([[True] * 6, [True, True, True, True, False, False]])
    out = supcon_stacked(a, b, lab, valid, 0.2)
    torch.testing.assert_close(out[0], supcon_loss(a[0], lab[0], 0.2, candidates=b[0]))
    torch.testing.assert_close(out[1], supcon_loss(a[1, :4], lab[1, :4], 0.2, candidates=b[1, :4]))


def test_stacked_mlp_round_trip_and_dropout_per_member():
    torch.manual_seed(1)
    mlps = [_MLP(4, 3, 5, 2, 0.5) for _ in range(2)]
    for m in mlps:  # the output layer starts at zero; make it matter
        torch.nn.init.normal_(m.body[-1].weight)
    st = StackedMLP(mlps)
    x = torch.randn(2, 7, 4)
    with torch.no_grad():
        for i, m in enumerate(mlps):
            m.eval()
            torch.testing.assert_close(st.forward(x)[i], m(x[i]))
        # Dropout: member 1's masks come from its own generator only.
        g = [torch.Generator().manual_seed(s) for s in (1, 2)]
        both = st.forward(x, g)[1]
        st.keep([1])
        alone = st.forward(x[1:], [torch.Generator().manual_seed(2)])[0]
    torch.testing.assert_close(both, alone)
    back = StackedMLP.load_into(_MLP(4, 3, 5, 2, 0.5).eval(), st.snapshot(0))
    with torch.no_grad():
        torch.testing.assert_close(back(x[1]), mlps[1](x[1]))


def test_pad_batches_weights_and_idle_members():
    idx, w, active = pad_batches([np.array([3, 1]), None], width=3)
    assert idx.tolist() == [[3, 1, 0], [0, 0, 0]] and w.tolist() == [[1, 1, 0], [0, 0, 0]]
    assert active.tolist() == [True, False]


def test_fit_ensemble_refuses_closed_form_and_repeated_seeds(pairs):
    with pytest.raises(ValueError, match="closed-form"):
        align.fit_ensemble("linear", pairs.x, pairs.y, pairs.speakers, seeds=[0])
    with pytest.raises(ValueError, match="distinct"):
        align.fit_ensemble("nessa-m1", pairs.x, pairs.y, pairs.speakers, seeds=[1, 1])
    with pytest.raises(ValueError, match="lr_schedule"):
        align.fit_ensemble("nessa-m1", pairs.x, pairs.y, pairs.speakers, seeds=[0], lr_schedule="step")


@pytest.mark.parametrize("temperature", [0.1, 0.02])  # 0.02: the two-pass form (one shift could underflow)
def test_supcon_symmetric_is_both_directions_of_supcon_stacked(temperature):
    from nessa_lib.align.ensemble import supcon_symmetric

    g = torch.Generator().manual_seed(0)
    a0 = torch.nn.functional.normalize(torch.randn(3, 8, 5, generator=g), dim=-1)
    b0 = torch.nn.functional.normalize(torch.randn(3, 8, 5, generator=g), dim=-1)
    lab = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3], [3, 1, 3, 1, 2, 2, 9, 9], [5] * 8])
    groups = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 0, 1, 2, 2, 3, 3], [0] * 8])
    valid = torch.tensor([[True] * 8, [True] * 5 + [False] * 3, [False] * 8])  # padding; an idle member
    grads = []
    for fn in ("reference", "symmetric"):
        a, b = a0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        if fn == "reference":
            out = 0.5 * (supcon_stacked(a, b, lab, valid, temperature) + supcon_stacked(b, a, lab, valid, temperature))
        else:
            out = supcon_symmetric(a, b, groups, valid, temperature)
        out.sum().backward()
        grads.append((out.detach(), a.grad, b.grad))
    for ref, new in zip(*grads):
        assert torch.isfinite(new).all()
        torch.testing.assert_close(new, ref, rtol=1e-5, atol=1e-6)
    # Nothing padded: the unmasked path gives the same.
    full = supcon_symmetric(a0[:1], b0[:1], groups[:1], valid[:1], temperature, padded=False)
    torch.testing.assert_close(full, grads[0][0][:1], rtol=1e-5, atol=1e-6)


def test_speaker_rows_batches_are_p_by_k_of_distinct_speakers():
    from nessa_lib.align.nessa import SpeakerRows

    codes = np.array([0] * 6 + [1] * 3 + [2] * 2 + [3] * 5 + [4] * 1)  # speaker 2 has fewer than K; 4 cannot take part
    idx = np.arange(len(codes)) + 100
    sr = SpeakerRows(idx, codes)
    for seed in range(5):
        batches = sr.epoch(2, 3, np.random.default_rng(seed))
        assert len(batches) == 2 and all(len(b) == 6 for b in batches)
        spk = [codes[b - 100].reshape(2, 3) for b in batches]
        assert all((s == s[:, :1]).all() for s in spk)  # K rows of one speaker, P speakers
        seen = np.concatenate([s[:, 0] for s in spk])
        assert len(set(seen)) == 4 and 4 not in seen
        for b, s in zip(batches, spk):  # distinct rows unless the speaker has fewer than K
            for k in range(2):
                rows = b.reshape(2, 3)[k]
                assert len(set(rows)) == min(3, int((codes == s[k, 0]).sum()))
    again = [sr.epoch(2, 3, np.random.default_rng(1)) for _ in range(2)]
    assert all(np.array_equal(u, v) for u, v in zip(*again))


def test_ridge_penalty_is_the_one_whose_map_predicts_the_held_out_rows_best():
    """``ridge_map_select`` against the direct computation: each candidate's map applied to the held-out rows.
    Provoked: 30 noisy training rows for 21 unknowns per output, where the nearly unregularised map overfits."""
    from nessa_lib.align.closed_form import _unit
    from nessa_lib.align.nessa import ridge_grid, ridge_map, ridge_map_select

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 20))
    y = x @ rng.normal(size=(20, 12)) + 2.0 * rng.normal(size=(60, 12))
    train, val = np.arange(30), np.arange(30, 60)
    grid = ridge_grid(1e-6, 1.0)
    errors = []
    for r in grid:
        w, b = ridge_map(x, y, train, r)
        errors.append(float(((_unit(x[val]) @ w + b - _unit(y[val])) ** 2).sum()))
    w, b, chosen = ridge_map_select(x, y, train, val, grid)
    assert chosen == grid[int(np.argmin(errors))]
    assert chosen > grid[0], "the nearly unregularised map should lose on held-out rows here"
    np.testing.assert_allclose(np.vstack([w, b]), np.vstack(ridge_map(x, y, train, chosen)))
    # No held-out rows (too few speakers: a tiny fit set): the largest penalty, the safe side; one candidate: it.
    assert ridge_map_select(x, y, train, val[:0], grid)[2] == grid[-1]
    assert ridge_map_select(x, y, train, val, [0.5])[2] == 0.5


def test_ridge_penalty_grid_and_its_refusals(pairs, tmp_path):
    from nessa_lib.align.hparams import resolve_hparams
    from nessa_lib.align.nessa import ridge_grid

    assert ridge_grid(1e-6, 1e-1) == [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    assert ridge_grid(1e-3, 5e-2) == [1e-3, 1e-2]  # decades that fit below the maximum
    assert ridge_grid(0.0, 0.0) == [0.0]
    with pytest.raises(ValueError, match="'init_ridge' must be > 0"):
        resolve_hparams("nessa-m2", {"init_ridge": 0.0})
    assert resolve_hparams("nessa-m2", {"init_ridge": 0.0, "init_ridge_max": 0.0})["init_ridge"] == 0.0
    # The chosen penalty is part of the aligner file.
    a = align.fit("nessa-m2", pairs.x, pairs.y, pairs.speakers, seed=0, hidden_dim=8, max_epochs=2)
    assert set(a.fit_init) == {"enroll"}
    a.save(tmp_path / "m2.safetensors")
    assert align.load(tmp_path / "m2.safetensors").fit_init == a.fit_init
