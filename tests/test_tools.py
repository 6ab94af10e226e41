"""tools/choose_defaults.py: the development sweep behind the aligners' defaults, as queued DVC experiments."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("choose_defaults", ROOT / "tools" / "choose_defaults.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_experiment_args_set_the_configuration_on_top_of_params(sweep):
    args = sweep.experiment_args("hidden256-lr2e-3", 3, ["x-y", "y-x"], {"max_epochs": 50, "reference": "runtime"},
                                 all_pairs=["x-y", "y-x", "z-x"])
    # the method's stage 04 alone, which fits every pair left in fit_aligners.pairs
    assert args[:6] == ["exp", "run", "--queue", "-n", "dev-hidden256-lr2e-3-s3", "fit_aligners@nessa-m3"]
    assert args[-2:] == ["-S", "~fit_aligners.pairs.z-x"]
    sets = dict(a.split("=", 1) for a in args[7:-2:2])
    assert args[6::2] == ["-S"] * (len(sets) + 1)
    assert sets == {
        "fit_aligners.fit_splits": "[train]",  # fitted on the training voices only: the alignment voices are dev
        "fit_aligners.seed_offset": "3",
        "fit_aligners.seeds": "1",  # one seed per experiment: the sweep's seeds are experiments
        "fit_aligners.hparams.nessa-m3.hidden_dim": "256",  # the config overrides BEFORE's 512
        "fit_aligners.hparams.nessa-m3.dropout": "0.1",
        "fit_aligners.hparams.nessa-m3.lr": "0.002",
        "fit_aligners.hparams.nessa-m3.max_epochs": "50",
        "fit_aligners.hparams.nessa-m3.reference": '"runtime"',
    }
    assert sweep.experiment_args("default", 0, ["x-y"])[7::2] == [
        "fit_aligners.fit_splits=[train]", "fit_aligners.seed_offset=0", "fit_aligners.seeds=1"]
    with pytest.raises(ValueError, match="unknown config 'nope'"):
        sweep.experiment_args("nope", 0, ["x-y"])
    with pytest.raises(ValueError, match=r"pairs \['y-x'\] are not entries"):
        sweep.experiment_args("default", 0, ["y-x"], all_pairs=["x-y"])


def _rev(name, metrics, error=None):
    return {"rev": "abc", "name": name, "error": error, "experiments": None,
            "data": {"metrics": {path: {"data": m} for path, m in metrics.items()}, "params": {}}}


def test_rows_come_from_the_dev_metrics_of_dvc_exp_show(sweep):
    dev = {"dev:x-y:nessa-m3:eer": 0.05, "dev:x-y:XX:eer": 0.08, "dev:x-y:YY:eer": 0.03,
           "dev:x-y:nessa-m3:gain_recovered": 0.6, "fit_s:x-y": 9.0,
           "dev:y-x:nessa-m3:eer": 0.04, "dev:y-x:XX:eer": 0.03, "dev:y-x:YY:eer": 0.08,
           "dev:y-x:nessa-m3:gain_recovered": 0.2}
    show = [{"rev": "workspace", "name": None, "data": {}, "experiments": None},
            {"rev": "main", "name": "main", "data": {}, "experiments": [
                {"revs": [_rev("dev-hidden128-s1", {"reports/fit_aligners/nessa-m3/metrics.json": dev,
                                                    "reports/fit_aligners/linear/metrics.json": {"fit_s:x-y": 0.1},
                                                    "reports/evaluate/metrics.json": {"x": 1.0}})]},
                {"revs": [_rev("dev-m2-s0", {"reports/fit_aligners/nessa-m2/metrics.json": {"fit_s:x-y": 1.0}})]},
                {"revs": [_rev("dev-default-s0", {}, error={"msg": "failed"})]},
                {"revs": [_rev("other-exp", {"reports/fit_aligners/nessa-m3/metrics.json": dev})]},
            ]}]
    assert sweep.rows_from_show(show) == [
        {"pair": "x-y", "config": "hidden128", "seed": 1, "eer": 0.05, "eer_xx": 0.08, "eer_yy": 0.03, "gain": 0.6,
         "fit_s": 9.0},
        {"pair": "y-x", "config": "hidden128", "seed": 1, "eer": 0.04, "eer_xx": 0.03, "eer_yy": 0.08, "gain": 0.2,
         "fit_s": None}]


def test_committed_fit_metrics_are_read_from_the_experiment_commit(sweep):
    """Stage 04's metrics.json is a committed out, not a DVC metric: collect reads it from each experiment's
    commit (read(rev)) and rows_from_show finds the dev: keys there."""
    dev = {"dev:x-y:nessa-m3:eer": 0.05, "dev:x-y:XX:eer": 0.08, "dev:x-y:YY:eer": 0.03,
           "dev:x-y:nessa-m3:gain_recovered": 0.6}
    show = [{"rev": "main", "name": "main", "data": {}, "experiments": [
        {"revs": [_rev("dev-hidden128-s1", {"reports/evaluate/headline.json": {"x": 1.0}})]},
        {"revs": [_rev("other-exp", {})]}]}]
    read = {"abc": {"reports/fit_aligners/nessa-m3/metrics.json": dev}}.get
    seen = []
    rows = sweep.rows_from_show(sweep.add_committed_metrics(show, lambda rev: seen.append(rev) or read(rev)))
    assert seen == ["abc"]  # only the sweep's experiments are read
    assert rows == [{"pair": "x-y", "config": "hidden128", "seed": 1, "eer": 0.05, "eer_xx": 0.08,
                     "eer_yy": 0.03, "gain": 0.6, "fit_s": None}]


@pytest.mark.parametrize("args, message", [
    (["queue", "--configs", "default,nope"], "unknown configs ['nope']"),
    (["queue", "--set", "max_epochs"], "--set expects NAME=VALUE"),
])
def test_sweep_refuses_bad_arguments(sweep, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        sweep.main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
