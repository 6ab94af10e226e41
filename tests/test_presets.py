"""Presets: partial parameter files merged onto params.yaml, checked, comments kept."""

import shutil

import pytest
import yaml

from nessa_lib import paths
from nessa_lib.pipeline.params import load_params
from nessa_lib.pipeline.presets import apply_preset, main, merge


@pytest.fixture
def root(tmp_path):
    shutil.copy(paths.repo_root() / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def test_merge_keeps_untouched_keys_and_replaces_entry_maps():
    base = {"train_encoder": {"threads": 2, "encoders": {"a": {"x": 1}, "b": {}}},
            "fit_aligners": {"hparams": {"m": {"lr": 1, "dropout": 0}}}}
    merge(base, {"train_encoder": {"encoders": {"c": {"y": 2}}}, "fit_aligners": {"hparams": {"m": {"lr": 3}}}})
    assert base["train_encoder"] == {"threads": 2, "encoders": {"c": {"y": 2}}}  # entries replaced whole
    assert base["fit_aligners"]["hparams"]["m"] == {"lr": 3, "dropout": 0}  # other mappings merge


def test_merge_refuses_unknown_key_with_its_dotted_name():
    with pytest.raises(KeyError, match=r"train_encoder\.recipe\.chanels"):
        merge({"train_encoder": {"recipe": {"channels": 1}}}, {"train_encoder": {"recipe": {"chanels": 2}}})


def test_apply_keeps_comments_and_changes_only_the_preset_keys(root):
    (root / "p.yaml").write_text("prepare_data: {n_speakers: 1200, n_eval_speakers: 400}\n"
                                 "fit_aligners: {seeds: 5, methods: [linear, nessa-m2]}\n")  # evaluate.chain's M2
    apply_preset("p.yaml", root=root)
    text = (root / "params.yaml").read_text()
    old_lines = (paths.repo_root() / "params.yaml").read_text().splitlines()
    changed = [(a, b) for a, b in zip(old_lines, text.splitlines()) if a != b]
    assert len(text.splitlines()) == len(old_lines) and len(changed) == 4, changed  # only those lines
    assert "  methods: [linear, nessa-m2]" in text  # lists stay in params.yaml's flow style
    assert "# one seed for the whole study" in text
    new, old = load_params(root / "params.yaml"), load_params(paths.repo_root() / "params.yaml")
    assert new["prepare_data"]["n_eval_speakers"] == 400 and new["fit_aligners"]["seeds"] == 5
    new["prepare_data"]["n_eval_speakers"] = old["prepare_data"]["n_eval_speakers"]
    new["prepare_data"]["n_speakers"] = old["prepare_data"]["n_speakers"]
    new["fit_aligners"]["seeds"] = old["fit_aligners"]["seeds"]
    new["fit_aligners"]["methods"] = old["fit_aligners"]["methods"]
    assert new == old


@pytest.mark.parametrize("preset, message", [
    ("prepare_data: {n_eval_speaker: 400}\n", r"prepare_data\.n_eval_speaker is not in"),
    ("prepare_data: {n_eval_speakers: many}\n", r"n_eval_speakers must be an integer"),
    # A value the study would refuse later is refused now, naming the file it would have written and the key.
    ("evaluate: {far_targets: [0.01, 1.5]}\n", r"params.yaml \(with p.yaml\): evaluate.far_targets must be < 1"),
    ("prepare_data: {n_eval_speakers: 50}\n", r"n_eval_speakers \(50\) is below min_eval_speakers"),
    ("evaluate: {bootstrap_rounds: -5}\n", r"params.yaml \(with p.yaml\): evaluate.bootstrap_rounds must be >= 1"),
    ("- a list\n", "non-empty mapping"),
])
def test_bad_preset_names_the_problem_and_writes_nothing(root, preset, message):
    (root / "p.yaml").write_text(preset)
    before = (root / "params.yaml").read_text()
    with pytest.raises(ValueError, match=message):
        apply_preset("p.yaml", root=root)
    assert (root / "params.yaml").read_text() == before
    assert sorted(f.name for f in root.iterdir()) == ["p.yaml", "params.yaml"]  # no temporary file left


def test_cli_writes_out_and_reports_errors(root, monkeypatch, capsys):
    monkeypatch.chdir(root)
    (root / "dvc.yaml").write_text("stages: {}\n")  # marks the repository root for relative paths
    (root / "p.yaml").write_text("base: {seed: 3}\n")
    assert main(["p.yaml", "--out", "three.yaml"]) == 0
    assert yaml.safe_load((root / "three.yaml").read_text())["base"]["seed"] == 3
    assert main(["missing.yaml"]) == 2
    assert "preset not found" in capsys.readouterr().err


@pytest.mark.parametrize("preset", sorted((paths.repo_root() / "presets").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_presets_apply(root, preset):
    shutil.copy(preset, root / preset.name)
    load_params(apply_preset(preset.name, out="out.yaml", root=root))


def test_apply_keeps_the_written_form_of_values_and_untouched_nulls(root):
    """A float such as 2.0e-6 must reach the parameters file as a float (PyYAML reads `2e-06` as a string), and
    values the preset does not name (the recipe's nulls) must keep their text: only the named line changes."""
    (root / "p.yaml").write_text("train_encoder:\n  recipe: {weight_decay: 2.0e-6}\n")
    before = (root / "params.yaml").read_text().splitlines()
    apply_preset("p.yaml", out="out.yaml", root=root)
    after = (root / "out.yaml").read_text().splitlines()
    recipe = load_params(root / "out.yaml")["train_encoder"]["recipe"]
    assert recipe["weight_decay"] == 2.0e-6 and recipe["max_steps"] is None
    assert len(after) == len(before)
    changed = [a for a, b in zip(after, before) if a != b]
    assert [c.split("#")[0].strip() for c in changed] == ["weight_decay: 2.0e-6"]
    (root / "q.yaml").write_text("train_encoder:\n  encoders:\n    xvector: {architecture: resnet, resnet_blocks: [3, 4, 6, 3]}\n"
                                 "    ecapa: {architecture: ecapa}\n    ecapa-supcon: {architecture: ecapa, objective: supcon}\n"
                                 "    resemblyzer: {pretrained: resemblyzer}\n")
    apply_preset("q.yaml", out="out.yaml", root=root)
    assert "    xvector: {architecture: resnet, resnet_blocks: [3, 4, 6, 3]}" in (root / "out.yaml").read_text()


def test_dry_run_prints_the_diff_and_writes_nothing(root, monkeypatch, capsys):
    monkeypatch.chdir(root)
    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / "p.yaml").write_text("base: {seed: 3}\n")
    before = (root / "params.yaml").read_text()
    assert main(["p.yaml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "-  seed: 0" in out and "+  seed: 3" in out
    assert (root / "params.yaml").read_text() == before
    assert sorted(f.name for f in root.iterdir()) == ["dvc.yaml", "p.yaml", "params.yaml"]


def test_preset_applies_to_a_params_file_rewritten_by_dvc(root):
    """`dvc exp run -S` rewrites params.yaml in its own YAML style (ruamel round trip: '' quotes, empty nulls,
    wrapped flow lists); a preset must still apply to it."""
    from dvc.utils.serialize import modify_yaml

    with modify_yaml(str(root / "params.yaml")) as d:
        d["fit_aligners"]["hparams"]["nessa-m3"]["hidden_dim"] = 128
    shutil.copy(paths.repo_root() / "presets" / "voxceleb1-pretrained.yaml", root / "v.yaml")
    out = load_params(apply_preset("v.yaml", out="out.yaml", root=root))
    assert out["fit_aligners"]["hparams"]["nessa-m3"]["hidden_dim"] == 128
    assert out["prepare_data"]["source"] == "voxceleb"



def _cli_root(root, monkeypatch):
    monkeypatch.chdir(root)
    (root / "dvc.yaml").write_text("stages: {}\n")  # marks the repository root for relative paths
    (root / "sub").mkdir()  # an --out that cannot be replaced by a file
    return root


@pytest.mark.parametrize("preset, params, args, message", [
    # the merged line of issue 22, in the parameters file: file, line, column and the line itself, on one line
    ("base: {seed: 3}\n", "train_encoder:\n  batch_size: 16 threads: 2\n", [],
     "params.yaml, line 2, column 25: not valid YAML: mapping values are not allowed here (`batch_size: 16 threads: 2`)"),
    ("base:\n\tseed: 3\n", None, [], "p.yaml, line 2, column 1: not valid YAML: found character '\\t'"),
    ("base: {seed: 3, seed: 4}\n", None, [], "p.yaml, line 1, column 17: not valid YAML: found duplicate key"),
    # a tag the stages cannot read (PyYAML raised a traceback before)
    ("base: {seed: !custom 3}\n", None, [], "as it would be written, line 4, column 9: not valid YAML: could not"),
    ("base: {sed: 3}\n", None, [], "preset key base.sed is not in the parameters file"),
    ("base: {seed: 3}\n", "- a\n- list\n", [], "params.yaml: the top level must be a mapping"),
    ("base: {seed: 3}\n", None, ["--base", "missing.yaml"], "parameters file not found"),
    ("base: {seed: 3}\n", None, ["--out", "sub"], "Is a directory"),
    ("base: {seed: 3}\n", None, ["--dry-run", "--base", "missing.yaml"], "parameters file not found"),
])
def test_cli_errors_are_one_line_with_exit_2_and_leave_no_file(root, monkeypatch, capsys, preset, params, args, message):
    _cli_root(root, monkeypatch)
    (root / "p.yaml").write_text(preset)
    if params is not None:
        (root / "params.yaml").write_text(params)
    before = {f.name: f.read_bytes() for f in root.iterdir() if f.is_file()}
    assert main(["p.yaml", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert {f.name: f.read_bytes() for f in root.iterdir() if f.is_file()} == before  # nothing written or left
    assert sorted(f.name for f in root.iterdir()) == sorted([*before, "sub"]) and not list((root / "sub").iterdir())


@pytest.mark.parametrize("corrupt, message", [
    (lambda t: t.replace("  batch_size: 16\n  threads: 2", "  batch_size: 16 threads: 2"), "mapping values are not allowed"),
    (lambda t: t.replace("  batch_size: 16\n", ""), "would not write back the merged values faithfully"),
])
def test_a_faulty_yaml_writer_writes_nothing(root, monkeypatch, capsys, corrupt, message):
    """The written text is read back and compared with the merged values first: a writer that merges lines or
    drops a key (what issue 22 saw) is refused with one line, and params.yaml stays as it was."""
    from nessa_lib.pipeline import presets

    make = presets._round_trip_yaml

    def faulty():
        y = make()
        dump = y.dump

        def corrupting(data, stream):
            import io
            buf = io.StringIO()
            dump(data, buf)
            stream.write(corrupt(buf.getvalue()))
        y.dump = corrupting
        return y

    monkeypatch.setattr(presets, "_round_trip_yaml", faulty)
    _cli_root(root, monkeypatch)
    (root / "p.yaml").write_text("base: {seed: 3}\n")
    before = (root / "params.yaml").read_text()
    assert "  batch_size: 16\n  threads: 2" in before
    assert main(["p.yaml"]) == 2
    err = capsys.readouterr().err
    assert message in err and "nothing written" in err and len(err.strip().splitlines()) == 1, err
    assert (root / "params.yaml").read_text() == before
    assert sorted(f.name for f in root.iterdir()) == ["dvc.yaml", "p.yaml", "params.yaml", "sub"]


def test_dry_run_on_a_params_file_rewritten_by_dvc_shows_only_the_preset_lines(root, monkeypatch, capsys):
    """After `dvc exp run -S` (DVC's writer: '' quotes, empty nulls, wrapped flow lists) --dry-run prints the diff
    against that file, in place, and writes nothing; applying it then gives the same text the diff announced."""
    from dvc.utils.serialize import modify_yaml

    shutil.copy(paths.repo_root() / "presets" / "voxceleb1-train.yaml", root / "v.yaml")
    _cli_root(root, monkeypatch)
    with modify_yaml(str(root / "params.yaml")) as d:
        d["extract_embeddings"]["batch_size"] = 32
    before = (root / "params.yaml").read_text()
    assert main(["v.yaml", "--dry-run"]) == 0
    diff = capsys.readouterr().out
    assert diff.startswith("--- params.yaml\n+++ params.yaml (with v.yaml)\n")
    assert "-  batch_size: 32\n+  batch_size: 64\n" in diff
    assert (root / "params.yaml").read_text() == before
    assert main(["v.yaml"]) == 0
    assert load_params(root / "params.yaml")["extract_embeddings"]["batch_size"] == 64
    assert sorted(f.name for f in root.iterdir()) == ["dvc.yaml", "params.yaml", "sub", "v.yaml"]


def test_replacing_an_entry_map_keeps_the_comments_of_the_next_key(root):
    """ruamel attaches the comment lines before `hparams:` to the last pair: replacing the pairs must not drop them
    (the documentation of the hyper-parameters would vanish from the written params.yaml)."""
    (root / "p.yaml").write_text("fit_aligners:\n  pairs:\n    xvector-ecapa: {enroll_model: xvector, runtime_model: ecapa}\n"
                                 "evaluate: {chain: []}\n")
    before = (root / "params.yaml").read_text()
    block = before[before.index("  # Hyper-parameters of each method"):before.index("  hparams:")]
    assert block.count("#") >= 2
    apply_preset("p.yaml", out="out.yaml", root=root)
    text = (root / "out.yaml").read_text()
    assert block + "  hparams:" in text
    assert "xvector-ecapa-supcon" not in text and load_params("out.yaml", root=root)["fit_aligners"]["pairs"] == {
        "xvector-ecapa": {"enroll_model": "xvector", "runtime_model": "ecapa"}}
