"""Seeded fits side by side in worker processes, and the P x K batches NESSA M3 shares with the encoders."""

import numpy as np
import pytest
import torch

from nessa_lib import toy
from nessa_lib.batches import speaker_batches, utterances_by_speaker
from nessa_lib.evaluation.tables import fit_seeds

HP = {m: {"max_epochs": 3, "hidden_dim": 16} for m in ("nessa-m1", "nessa-m3")}
HP["nessa-m3"].update(speakers_per_batch=4, utts_per_speaker=2)


def _weights(a):
    return torch.cat([p.detach().flatten() for m in (a.enroll_map, a.runtime_map) for p in m.parameters()])


def test_fit_seeds_same_in_workers_as_in_process():
    p = toy.make_paired_spaces(24, 5, rng=np.random.default_rng(0))
    kw = dict(methods=["linear", "nessa-m1", "nessa-m3"], seeds=[7, 8], hparams=HP)
    here = fit_seeds(p.x, p.y, p.speakers, workers=1, **kw)
    timings: dict = {}
    there = fit_seeds(p.x, p.y, p.speakers, workers=2, timings=timings, **kw)
    assert [len(here[m]) for m in kw["methods"]] == [1, 2, 2]  # closed form: once
    assert [a.seed for a in there["nessa-m3"]] == [7, 8]
    for m in ("nessa-m1", "nessa-m3"):
        for a, b in zip(here[m], there[m]):
            assert torch.equal(_weights(a), _weights(b))
        assert not torch.equal(_weights(here[m][0]), _weights(here[m][1]))  # seeds differ
    assert set(timings) == set(kw["methods"]) and all(t > 0 for t in timings.values())


def test_fit_seeds_refuses_repeated_seeds():
    p = toy.make_paired_spaces(6, 3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="distinct"):
        fit_seeds(p.x, p.y, p.speakers, methods=["linear"], seeds=[1, 1])


def test_speaker_batches_are_p_by_k_of_distinct_speakers():
    labels = np.repeat(np.arange(10), [2, 3, 4, 5, 6, 2, 3, 4, 5, 1])  # the last speaker has one utterance only
    by = utterances_by_speaker(labels)
    assert 9 not in by
    batches = speaker_batches(by, 4, 3, np.random.default_rng(0))
    assert len(batches) == 2  # 9 usable speakers, 4 per batch: one sits out
    for b in batches:
        spk = labels[b]
        assert len(b) == 12 and len(set(spk)) == 4 and all((spk == s).sum() == 3 for s in set(spk))
    seen = np.concatenate(batches)
    assert len(set(labels[seen])) == 8
    again = speaker_batches(by, 4, 3, np.random.default_rng(0))
    assert batches == again  # the generator decides everything


def test_fit_method_regroups_fit_seeds_without_changing_an_aligner():
    """Stage 04 runs once per method over every pair (fit_method, the pairs' jobs in worker processes); each
    aligner is bit for bit the one the per-pair grouping (fit_seeds, all methods of one pair) gives."""
    import types

    from nessa_lib.stages.fit_aligners import fit_method

    spaces = {"a-b": toy.make_paired_spaces(24, 5, rng=np.random.default_rng(0)),
              "c-b": toy.make_paired_spaces(24, 5, d_x=12, warp_x="nonlinear",
                                                rng=np.random.default_rng(1))}
    pools = {pair: types.SimpleNamespace(x=s.x, y=s.y, speaker_ids=s.speakers, enroll_model_id=f"{pair[0]}@1",
                                         runtime_model_id="b@1") for pair, s in spaces.items()}
    methods, seeds = ["identity", "linear", "nessa-m1", "nessa-m3"], [7, 8]
    per_pair = {pair: fit_seeds(s.x, s.y, s.speakers, methods=methods, seeds=seeds, hparams=HP, workers=1,
                                enroll_model_id=f"{pair[0]}@1", runtime_model_id="b@1")
                for pair, s in spaces.items()}
    for method, ensemble in [("identity", True), ("linear", True), ("nessa-m1", True), ("nessa-m3", False)]:
        timings: dict = {}
        by_method = fit_method(method, pools, seeds=seeds, hparams=HP.get(method, {}), workers=2,
                               ensemble=ensemble, timings=timings)
        expected = [pair for pair in pools if method in per_pair[pair]]
        assert list(by_method) == expected == list(timings), method
        for pair in expected:
            assert [a.seed for a in by_method[pair]] == [a.seed for a in per_pair[pair][method]]
            for a, b in zip(by_method[pair], per_pair[pair][method]):
                for side in ("enroll_map", "runtime_map"):
                    sa, sb = getattr(a, side).state_dict(), getattr(b, side).state_dict()
                    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), (method, pair)
                assert (a.enroll_model_id, a.hparams, a.history) == (b.enroll_model_id, b.hparams, b.history)
    assert "identity" not in per_pair["c-b"]  # 12-d vs 16-d: no identity aligner, and fit_method skips it too
