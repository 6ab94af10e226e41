"""The pipeline's contract (dvc.yaml <-> params.yaml <-> notebooks <-> the import graph) and smoke runs of its
stages through the same runner `dvc repro` uses."""

import ast
import copy
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nessa_lib.pipeline import deps, layout, params
from nessa_lib.stages import schema
from nessa_lib.pipeline.run import notebook_parameters, read_notebook

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
STAGES = list(layout.STAGES.values())


def stage_body(name):
    spec = DVC["stages"][name]
    return spec.get("do", spec)


def parameters_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "a stage notebook needs exactly one cell tagged 'parameters'"
    return cells[0]


def test_notebook_sources_are_jupytext_only():
    assert sorted(p.name for p in (ROOT / "notebooks").iterdir() if p.suffix in (".py", ".ipynb")) == sorted(
        Path(s.notebook).name for s in STAGES
    ), "one jupytext source per stage, no .ipynb copies"


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_notebook_is_plain_python_that_defines_nothing(stage):
    source = (ROOT / stage.notebook).read_text()
    tree = ast.parse(source)  # percent-format notebooks are plain, lintable Python
    defined = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))
               and hasattr(n, "name")]
    assert not defined, f"{stage.notebook}: move {defined} into nessa_lib"
    nb = read_notebook(ROOT / stage.notebook)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {stage.number:02d} ·")


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_parameters_cell_only_selects_the_run(stage):
    """One home per value: the parameters cell names the run (an entry of params.yaml, the params file) and
    nothing else, so no default can drift from params.yaml."""
    from papermill.translators import PythonTranslator

    cell = parameters_cell(read_notebook(ROOT / stage.notebook))
    found = {p.name: p for p in PythonTranslator.inspect(cell)}
    allowed = {"params_file"} | ({stage.item_param} if stage.item_param else set())
    assert set(found) == allowed, f"{stage.notebook}: parameters {sorted(found)}, expected {sorted(allowed)}"
    assert len(cell.source.strip().splitlines()) == len(found), "one typed, commented parameter per line"
    assert ast.literal_eval(found["params_file"].default) == "params.yaml"
    if stage.item_param:
        default = ast.literal_eval(found[stage.item_param].default)
        assert default in PARAMS[stage.name][stage.foreach], (
            f"{stage.notebook}: default {stage.item_param}={default!r} is not an entry of "
            f"{stage.name}.{stage.foreach} in params.yaml"
        )


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_stage_command_and_params(stage):
    body = stage_body(stage.name)
    item = {"encoders": " ${key}", "models": " ${item}", "methods": " ${item}"}.get(stage.foreach, "")
    assert body["cmd"] == f"python -m nessa_lib.pipeline.run {stage.name}{item}"
    declared = body["params"]
    assert "base" in declared
    # Every key the stage reads (its own section's and those it reads from other sections) is declared (as its
    # section or key by key), so DVC re-runs the stage when any value it reads changes.
    for key in schema.keys(params.STAGE_PARAMS[stage.name], stage.name).values():
        if key == f"{stage.name}.{stage.foreach}" and stage.foreach in ("models", "methods"):
            continue  # the list of runs itself: the item is in the command (${item})
        covered = any(key == d or key.startswith(d + ".") or d.startswith(key + ".") for d in declared)
        assert covered, f"dvc.yaml {stage.name}: params.yaml {key} is read but not declared"
    assert f"notebooks/{Path(stage.notebook).name}" in body["deps"]


def test_foreach_stages_declare_only_their_own_entry():
    """Editing one encoder's entry (or one method's hyper-parameters) must not re-run the others."""
    assert "train_encoder.encoders.${key}" in stage_body("train_encoder")["params"]
    assert "train_encoder.encoders" not in stage_body("train_encoder")["params"]


def test_each_fit_aligners_stage_declares_only_its_own_hparams():
    """Stage 04 runs once per method, and each run's params name that method's hyper-parameters and no other
    method's: `dvc exp run -S 'fit_aligners.hparams.nessa-m3.hidden_dim=256'` re-fits M3 alone (then stage 05)."""
    import dvc.repo

    body = DVC["stages"]["fit_aligners"]
    assert body["foreach"] == "${fit_aligners.methods}" and body["do"]["cmd"].endswith("fit_aligners ${item}")
    declared = body["do"]["params"]
    hparams = [d for d in declared if isinstance(d, str) and d.startswith("fit_aligners.hparams")]
    assert hparams == ["fit_aligners.hparams.${item}"]
    assert "fit_aligners.methods" not in declared  # the list of runs: adding a method does not re-fit the others
    # As DVC resolves them: one stage per method, each with its own method's entry only.
    repo = dvc.repo.Repo(str(ROOT))
    try:
        stages = {s.name: s for s in repo.index.stages if s.name.startswith("fit_aligners@")}
        assert set(stages) == {f"fit_aligners@{m}" for m in PARAMS["fit_aligners"]["methods"]}
        for name, st in stages.items():
            keys = {k for dep in st.deps if hasattr(dep, "params") for k in dep.params}
            assert {k for k in keys if k.startswith("fit_aligners.hparams")} == {
                f"fit_aligners.hparams.{name.split('@')[1]}"}, name
            assert "fit_aligners.methods" not in keys, name
    finally:
        repo.close()


def test_library_deps_are_the_import_closure():
    diff = deps.check_dvc_yaml(ROOT)
    assert not diff, "dvc.yaml is out of date; run `python -m nessa_lib.pipeline.deps --write`:\n" + "\n".join(diff)


def test_stages_depend_on_their_own_code_only():
    """A change re-runs the stages it concerns: the training code is a dependency of the train_encoder stages
    alone, the synthetic corpus of prepare_data alone, and no stage depends on more than half of the library
    (evaluate, which measures everything, on 55 % at most)."""
    stage_deps = {s.name: deps.stage_deps(s.name, ROOT) for s in STAGES}
    library = [str(f.relative_to(ROOT)) for f in deps.library_modules(ROOT).values()]
    for name, files in stage_deps.items():
        assert ("nessa_lib/encoders/brain.py" in files) == (name == "train_encoder"), name
        assert any(f.startswith("nessa_lib/data/synth/") for f in files) == (name == "prepare_data"), name
        # Half the library at most; stage 05, which measures everything the study reports (scoring, bootstrap,
        # calibration, AS-norm, the A/B, ablation and deployment check, on top of the aligners), 55 %.
        share = 0.55 if name == "evaluate" else 0.5
        assert len(files) <= share * len(library), f"{name} depends on {len(files)} of {len(library)} library files"


def test_closure_follows_imports_inside_functions(tmp_path):
    pkg = tmp_path / "nessa_lib"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from nessa_lib.sub.a import f\n")
    (pkg / "sub" / "a.py").write_text("def f():\n    from . import b\n    return b\n")
    (pkg / "sub" / "b.py").write_text("from nessa_lib import c\n")
    (pkg / "c.py").write_text("import os\n")
    (pkg / "unused.py").write_text("")
    assert deps.closure(["nessa_lib.sub"], tmp_path) == [
        "nessa_lib/__init__.py", "nessa_lib/c.py", "nessa_lib/sub/__init__.py", "nessa_lib/sub/a.py",
        "nessa_lib/sub/b.py"]


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_outs_are_the_layout(stage):
    """The notebook writes where dvc.yaml looks: its output folder, report folder and executed copies."""
    body = stage_body(stage.name)
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in body["outs"]]
    item = {"encoders": "${key}", "models": "${item}", "methods": "${item}"}.get(stage.foreach)
    report = f"reports/{stage.name}" + (f"/{item}" if item else "")
    assert f"{report}/{stage.executed_name}" in outs
    assert f"{report}/{Path(stage.executed_name).with_suffix('.html')}" in outs
    if stage.out_root:
        assert f"{stage.out_root}/{stage.name}" + (f"/{item}" if item else "") in outs
    # Metrics are committed to git (cache: false), so a fresh clone has the published ones for `dvc metrics diff`;
    # the full metrics.json is an out, the DVC metric (`dvc exp show`'s columns) the stage's headline file if any.
    assert {f"{report}/metrics.json": {"cache": False}} in body["outs"]
    assert body.get("metrics", []) == ([{f"{report}/headline.json": {"cache": False}}]
                                       if stage.name == "evaluate" else [])


def test_plots_cover_the_pairs_of_params():
    """`dvc plots show` draws the study's own figures (image plots: the page needs no Vega from a CDN), one DET
    figure per pair of params.yaml plus the ablation, each inside an out of the evaluate stage."""
    plots = [p if isinstance(p, str) else next(iter(p)) for p in DVC["plots"]]
    assert all(Path(p).suffix == ".png" for p in plots), "image plots only: a data plot loads Vega from the network"
    names = {Path(p).stem for p in plots}
    assert {f"det_{p}" for p in PARAMS["fit_aligners"]["pairs"]} | {"ablation"} <= names
    assert not {n for n in names if n.startswith("det_")} - {f"det_{p}" for p in PARAMS["fit_aligners"]["pairs"]}
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage_body("evaluate")["outs"]]
    assert all(any(p.startswith(o + "/") for o in outs) for p in plots)


def test_params_file_is_valid_and_complete():
    data = params.load_params(root=ROOT)
    assert set(data) == set(params.SECTIONS)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["prepare_data"].pop("k_enroll"), "prepare_data.k_enroll is missing"),
    (lambda d: d["prepare_data"].update(min_dur_s="3.0s"), "prepare_data.min_dur_s must be a number"),
    (lambda d: d["fit_aligners"].update(fit_splits="train,align"), "fit_aligners.fit_splits must be a list"),
    (lambda d: d["evaluate"].update(far_target=[0.01]), "evaluate has unknown key 'far_target'"),
    (lambda d: d.update(evalute={}), "unknown section 'evalute'"),
    (lambda d: d["fit_aligners"]["pairs"].update(bad={"enroll_model": "x"}), "fit_aligners.pairs.bad must have"),
    (lambda d: d["evaluate"].update(bootstrap_rounds=-5), "evaluate.bootstrap_rounds must be >= 1, got -5"),
    (lambda d: d["evaluate"].update(far_targets=[0.0, 0.125]), "evaluate.far_targets must be > 0, got 0.0"),
    (lambda d: d["evaluate"].update(far_targets=[0.01, 12.5]), "evaluate.far_targets must be < 1, got 12.5"),
    (lambda d: d["evaluate"].update(far_targets=0.125), "evaluate.far_targets must be a list"),
    (lambda d: d["evaluate"].update(far_targets=[]), "evaluate.far_targets must be distinct FAR fractions"),
    (lambda d: d["evaluate"].update(far_targets=[0.125, 0.01]), "in ascending order, at least one, got [0.125, 0.01]"),
    (lambda d: d["fit_aligners"]["methods"].append("nessa-m4"), "fit_aligners.methods must be one of"),
    (lambda d: d["evaluate"]["asnorm"].update(top_k=1), "evaluate.asnorm.top_k must be >= 2, got 1"),
    (lambda d: d["evaluate"]["asnorm"].update(top_k=50, cohort_speakers=40),
     "evaluate.asnorm.top_k (50) must not exceed the cohort, evaluate.asnorm.cohort_speakers (40)"),
    (lambda d: d["evaluate"]["asnorm"].update(cohort=5), "evaluate.asnorm has unknown key 'cohort'"),
    (lambda d: d["evaluate"].pop("asnorm"), "evaluate.asnorm is missing"),
    (lambda d: d["fit_aligners"]["hparams"]["nessa-m2"].update(val_fraction=1.0), "'val_fraction' must be <= 0.5"),
    (lambda d: d["fit_aligners"]["hparams"]["linear"].update(ridge=-1.0), "'ridge' must be >= 0"),
    (lambda d: d["evaluate"].update(chain_hparams={"init_ridge": "big"}),
     "evaluate.chain_hparams: nessa-m2 hyper-parameter 'init_ridge' must be float"),
    (lambda d: d["evaluate"].update(chain_hparams={"ridge": 0.1}),
     "evaluate.chain_hparams: unknown hyper-parameter(s) ['ridge'] for method 'nessa-m2'"),
    (lambda d: d["fit_aligners"]["hparams"].pop("procrustes"), "fit_aligners.hparams.procrustes is missing"),
    (lambda d: d["prepare_data"].update(n_eval_speakers=50), "n_eval_speakers (50) is below min_eval_speakers"),
    (lambda d: d["extract_embeddings"].update(models=[]), "fit_aligners.pairs.xvector-ecapa.enroll_model names"),
    (lambda d: d["fit_aligners"]["pairs"].update(bad={"enroll_model": "x", "runtime_model": "ecapa"}),
     "fit_aligners.pairs.bad.enroll_model names 'x', which is not in extract_embeddings.models"),
])
def test_params_errors_name_the_key(tmp_path, edit, message):
    data = copy.deepcopy(PARAMS)
    edit(data)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=None) as err:
        params.load_params(root=tmp_path)
    assert message in str(err.value) and "params.yaml" in str(err.value)


def test_validate_cli_lists_every_problem_before_anything_runs(tmp_path, monkeypatch, capsys):
    from nessa_lib.pipeline.validate import main

    data = copy.deepcopy(PARAMS)
    data["evaluate"].update(bootstrap_rounds=-5)
    data["fit_aligners"]["methods"].append("nessa-m4")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s); nothing was run" in err
    assert "evaluate.bootstrap_rounds must be >= 1" in err and "fit_aligners.methods must be one of" in err
    assert main(["missing.yaml"]) == 2 and "parameters file not found" in capsys.readouterr().err


def test_float_written_without_dot_gets_a_hint(tmp_path):
    data = copy.deepcopy(PARAMS)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data).replace("- 0.125", "- 125e-3"))
    with pytest.raises(ValueError, match="write floats with a dot"):
        params.load_params(root=tmp_path)


def test_params_errors_are_all_reported_at_once(tmp_path):
    data = copy.deepcopy(PARAMS)
    data["evaluate"].update(bootstrap_rounds=-5, far_targets=[2.0])
    data["prepare_data"].update(k_enroll=0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError) as err:
        params.load_params(root=tmp_path)
    assert {"prepare_data.k_enroll", "evaluate.bootstrap_rounds", "evaluate.far_targets"} <= {
        line.split(":")[1].split()[0] for line in str(err.value).splitlines()}


def test_every_encoder_entry_builds_a_config():
    from nessa_lib.encoders import pretrained
    from nessa_lib.encoders.config import EncoderConfig
    from nessa_lib.stages import train_encoder

    p = train_encoder.load(root=ROOT)
    for name in p.encoders:
        spec = train_encoder.encoder_spec(p, name)
        if "pretrained" in spec:
            assert spec["pretrained"] in pretrained.PRETRAINED
        else:
            cfg = EncoderConfig.from_dict(spec)
            assert cfg.seed == p.seed + p.encoders[name]["seed_offset"]
    # the recipe covers every training field, so no value of a trained model comes from code defaults
    fields = {f.name for f in dataclasses.fields(EncoderConfig)} - {"name", "seed", "speakers"}
    per_model = {"architecture", "objective", "emb_dim"}
    # ResNet-only layout fields (unset: the small default ResNet): set in a ResNet entry, never in the recipe
    per_architecture = {"resnet_blocks", "resnet_widths"}
    assert set(p.recipe) == fields - per_model - per_architecture


def test_encoder_code_defaults_are_the_params_values():
    """One value, one home: the library's encoder defaults (EncoderConfig's fields, the CLI's DEFAULT_CONFIGS) are
    pinned to params.yaml's recipe and entries, so a run without params.yaml trains what the study trains."""
    from nessa_lib.encoders.config import DEFAULT_CONFIGS, EncoderConfig
    from nessa_lib.stages import train_encoder

    p = train_encoder.load(root=ROOT)
    defaults = {f.name: f.default for f in dataclasses.fields(EncoderConfig)}
    for key, value in p.recipe.items():
        assert defaults[key] == value, (
            f"params.yaml train_encoder.recipe.{key} = {value!r} but EncoderConfig's default is {defaults[key]!r}: "
            "change both")
    for name, spec in p.encoders.items():
        if "pretrained" in spec:
            continue
        ours = EncoderConfig.from_dict({**train_encoder.encoder_spec(p, name), "seed": 0}).to_dict()
        code = EncoderConfig.from_dict({**DEFAULT_CONFIGS[name], "seed": 0}).to_dict()
        assert ours == code, f"encoder {name}: params.yaml and DEFAULT_CONFIGS differ"


def test_aligner_hparams_cover_every_setting():
    """params.yaml holds every aligner hyper-parameter value, and the library's defaults (used when the library is
    called without params.yaml) are pinned to the same values: one value, one home, no drift."""
    from nessa_lib import align
    from nessa_lib.stages import fit_aligners

    p = fit_aligners.load(root=ROOT)
    assert set(p.hparams) == set(align.METHODS)
    for method, hp in p.hparams.items():
        assert set(hp) == set(align.DEFAULT_HPARAMS[method]), method
        for key, value in hp.items():
            assert type(value) is type(align.DEFAULT_HPARAMS[method][key]), (method, key)
            assert value == align.DEFAULT_HPARAMS[method][key], (
                f"params.yaml fit_aligners.hparams.{method}.{key} = {value!r} but nessa_lib.align's default is "
                f"{align.DEFAULT_HPARAMS[method][key]!r}: change both")


def test_dvc_config_is_quiet():
    cfg = (ROOT / ".dvc" / "config").read_text()
    assert "analytics = false" in cfg and "check_update = false" in cfg


def test_notebook_parameters_refuse_a_missing_item():
    with pytest.raises(ValueError, match="takes an item"):
        notebook_parameters("train_encoder")
    with pytest.raises(ValueError, match="takes no item"):
        notebook_parameters("evaluate", "x")


# --------------------------------------------------------------------------------------------
# dvc status: editing a module marks exactly the stages whose notebooks (or runner) import it
# --------------------------------------------------------------------------------------------


def _copy_project(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dst / rel)


@pytest.mark.slow
def test_dvc_status_marks_exactly_the_stages_that_import_a_module(tmp_path):
    _copy_project(tmp_path)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    modules = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "nessa_lib").rglob("*.py"))
    for m in modules:  # an edit that changes no behaviour
        with open(tmp_path / m, "a") as f:
            f.write("\n# edited\n")
    dvc = [sys.executable, "-m", "dvc"]
    res = subprocess.run([*dvc, "status", "--json"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "DVC_NO_ANALYTICS": "1"}, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    status = json.loads(res.stdout)
    for stage_name, entries in status.items():
        changed = set()
        for entry in entries:
            if isinstance(entry, dict) and "changed deps" in entry:
                changed |= {p for p in entry["changed deps"] if p.startswith("nessa_lib/")}
        base = stage_name.split("@")[0]
        assert changed == set(deps.stage_deps(base, ROOT)), stage_name
    stages_with_lib = {s.split("@")[0] for s in status}
    assert stages_with_lib == set(layout.STAGES) | set(deps.MODULE_STAGES)


@pytest.mark.slow
def test_dvc_status_after_one_methods_hparams_edit_marks_that_method_and_evaluate(tmp_path):
    """On a toy project with dvc.yaml's own stage-04 template (commands and files made trivial) and the study's
    params.yaml: once everything has run, editing M3's hidden_dim leaves every other method's stage up to date."""
    toy_04 = copy.deepcopy(DVC["stages"]["fit_aligners"])
    toy_04["do"].update(cmd="mkdir -p models/fit_aligners/${item} && echo ${item} > models/fit_aligners/${item}/a",
                        deps=[], outs=["models/fit_aligners/${item}"])
    toy_05 = {"cmd": "echo done > evaluated.txt", "params": stage_body("evaluate")["params"],
              "deps": ["models/fit_aligners"], "outs": ["evaluated.txt"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"fit_aligners": toy_04, "evaluate": toy_05}}))
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}

    def dvc(*args):
        res = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=tmp_path, capture_output=True, text=True,
                             env=env, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        return res.stdout

    dvc("init", "--no-scm", "-q")
    dvc("repro", "-q")
    assert json.loads(dvc("status", "--json")) == {}
    edited = copy.deepcopy(PARAMS)
    edited["fit_aligners"]["hparams"]["nessa-m3"]["hidden_dim"] += 64
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    status = json.loads(dvc("status", "--json"))
    assert set(status) == {"fit_aligners@nessa-m3", "evaluate"}, status
    changed = status["fit_aligners@nessa-m3"][0]["changed deps"]["params.yaml"]
    assert changed == {"fit_aligners.hparams.nessa-m3": "modified"}, changed


# --------------------------------------------------------------------------------------------
# Smoke runs: tiny corpus, tiny encoders, through nessa_lib.pipeline.run like `dvc repro`
# --------------------------------------------------------------------------------------------


def tiny_params() -> dict:
    p = copy.deepcopy(PARAMS)
    p["prepare_data"].update(n_speakers=36, utts_per_speaker=6, n_train_speakers=16, n_align_speakers=10,
                             n_eval_speakers=10, min_eval_speakers=5, k_enroll=2, n_nontarget_per_profile=20,
                             min_dur_s=1.5, max_dur_s=2.5, baseline_resemblyzer=False)
    p["train_encoder"]["threads"] = 1
    p["train_encoder"]["recipe"].update(channels=16, epochs=1, crop_s=1.0, batch_size=16)
    p["train_encoder"]["encoders"] = {
        "xv": {"architecture": "xvector", "objective": "softmax", "emb_dim": 16, "seed_offset": 1},
        "ec": {"architecture": "ecapa", "objective": "aam", "emb_dim": 16, "seed_offset": 2},
        "rz": {"pretrained": "resemblyzer"},
    }
    p["extract_embeddings"].update(models=["xv", "ec", "rz"], threads=1, check_utts_per_speaker=3)
    p["fit_aligners"].update(methods=["identity", "linear", "speaker-logit", "nessa-m1", "nessa-m2"], threads=1,
                             seeds=2, workers=2,
                             pairs={"xv-ec": {"enroll_model": "xv", "runtime_model": "ec"},
                                    "rz-ec": {"enroll_model": "rz", "runtime_model": "ec"},
                                    "rz-xv": {"enroll_model": "rz", "runtime_model": "xv"}})
    p["evaluate"].update(ab_model_a="xv", ab_model_b="ec", ab_methods=["nessa-m2", "nessa-m1"],
                         ablation_pair="xv-ec", ablation_methods=["nessa-m2"], ablation_speakers=[4, 0], learning_curve_targets=[0.6, 0.8],
                         ablation_utts=[2, 0], threads=1, bootstrap_rounds=50, check_rounds=50,
                         asnorm={"top_k": 10, "cohort_speakers": 20},  # fit pool: 16 + 10 speakers
                         chain=["rz", "xv", "ec"])
    return p


def tiny_project(root: Path, p: dict) -> Path:
    """A project folder the runner can work in: dvc.yaml (the root marker), notebooks and a tiny params.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    return root


@pytest.mark.slow
def test_prepare_data_smoke(tmp_path):
    """Stage 01 on a tiny synthetic corpus (SpeechBrain recipe-test style): outputs exist and are consistent."""
    from nessa_lib.data import lists, manifest
    from nessa_lib.pipeline.run import run_stage

    p = tiny_params()
    p["prepare_data"].update(n_speakers=24, utts_per_speaker=5, n_train_speakers=8, n_align_speakers=6,
                             n_eval_speakers=8, n_nontarget_per_profile=10)
    root = tiny_project(tmp_path / "proj", p)
    executed = run_stage("prepare_data", root=root, progress=False)
    assert executed == root / "reports/prepare_data/01_prepare_data.ipynb" and executed.with_suffix(".html").is_file()
    data = root / "data/prepare_data"
    df = manifest.read_manifest(data / "manifest.csv", check_files=True)
    assert len(df) == 24 * 5
    assert df.groupby("speaker_id")["split"].nunique().max() == 1  # speaker-disjoint
    assert df.groupby("split")["speaker_id"].nunique().to_dict() == {"train": 8, "align": 6, "eval": 8, "": 2}
    enroll, trials = lists.read_lists(data, manifest=df)
    assert set(enroll.utt_id).isdisjoint(trials.test_utt_id)
    assert (trials.label == 1).sum() == 8 * (5 - 2)
    metrics = json.loads((root / "reports/prepare_data/metrics.json").read_text())
    assert 0.0 <= metrics["baseline_mfcc_eer"] <= 1.0
    assert metrics["n_speakers_eval"] == 8.0
    assert (root / "reports/prepare_data/figures/spectrograms.png").stat().st_size > 1000


@pytest.mark.slow
def test_prepare_data_smoke_voxceleb_layout(tmp_path):
    """Stage 01 pointed at a dataset laid out like VoxCeleb1, with an official-format trial list used as given."""
    import numpy as np
    import soundfile as sf

    from nessa_lib.data import lists, manifest
    from nessa_lib.pipeline.run import run_stage

    wav = tmp_path / "vox1" / "wav"
    rng = np.random.default_rng(0)
    for s in range(10):
        for v in range(2):
            d = wav / f"id1{s:04d}" / f"vid{v}XyZ"
            d.mkdir(parents=True)
            for u in range(2):
                # Each speaker gets its own pitch so the MFCC baseline has something to find.
                t = np.arange(16000) / 16000
                wave = 0.3 * np.sin(2 * np.pi * (120 + 25 * s) * t) + 0.01 * rng.standard_normal(16000)
                sf.write(d / f"{u + 1:05d}.wav", wave, 16000)
    (wav / "id10000" / "vid0XyZ" / "00003.wav").write_bytes(b"corrupt")  # must be skipped and reported
    lines = [f"1 id1{s:04d}/vid0XyZ/00001.wav id1{s:04d}/vid1XyZ/00002.wav" for s in range(6, 10)]
    lines += [f"0 id1{s:04d}/vid0XyZ/00001.wav id1{(s + 1) % 4 + 6:04d}/vid1XyZ/00001.wav" for s in range(6, 10)]
    trial_list = tmp_path / "veri_test2.txt"
    trial_list.write_text("\n".join(lines) + "\n")
    p = tiny_params()
    p["prepare_data"].update(source="voxceleb", dataset_root=str(wav), trial_list=str(trial_list),
                             n_train_speakers=4, n_align_speakers=2, min_eval_speakers=4)
    root = tiny_project(tmp_path / "proj", p)
    run_stage("prepare_data", root=root, progress=False)
    data = root / "data/prepare_data"
    df = manifest.read_manifest(data / "manifest.csv")
    assert df.groupby("split")["speaker_id"].nunique().to_dict() == {"train": 4, "align": 2, "eval": 4}
    trials = lists.read_trials(data / "trials.txt", manifest=df)
    assert trials.values.tolist() == [[int(a), b, c] for a, b, c in (ln.split() for ln in lines)]
    assert "00003.wav" in (data / "skipped.csv").read_text()
    metrics = json.loads((root / "reports/prepare_data/metrics.json").read_text())
    assert metrics["n_skipped"] == 1.0 and metrics["n_trials"] == 8.0


def ab_has_intervals(ab) -> bool:
    return all((ab[f"{c}_lo"] <= ab[f"{c}_hi"]).all() for c in ("eer", "far_deployed", "frr_deployed"))


@pytest.mark.slow
def test_whole_pipeline_smoke(tmp_path, run_study):
    """Stages 01 -> 05 and the report on a tiny corpus with tiny encoders: every output the next stage reads is
    produced, the evaluation has a row for every pair and method, and the report links every executed notebook."""
    import pandas as pd

    from nessa_lib import align
    from nessa_lib.pipeline.report import build_report
    from nessa_lib.pipeline.run import run_stage

    p = tiny_params()
    root = tiny_project(tmp_path / "proj", p)
    run_study(root, p)
    rep = root / "reports" / "evaluate"

    main = pd.read_csv(rep / "main_table.csv")
    assert set(main["pair"]) == {"xv-ec", "rz-ec", "rz-xv"}
    systems = {"symmetric X/X", "symmetric Y/Y", "linear", "speaker-logit", "nessa-m1", "nessa-m2"}
    assert set(main.loc[main.pair == "xv-ec", "system"]) == systems | {"identity"}  # both 16-d
    assert set(main.loc[main.pair == "rz-ec", "system"]) == systems  # 256-d vs 16-d: identity is skipped
    assert main["eer"].between(0, 1).all()
    # Intervals on every figure, seed means and spreads for the NESSA rows (two seeds here).
    assert (main["eer_lo"] <= main["eer_hi"]).all() and main["gain_recovered_lo"].notna().any()
    nessa = main[main.system.str.startswith("nessa")]
    assert (nessa["n_seeds"] == 2).all() and nessa["eer_seed_sd"].notna().all()
    assert main.loc[main.system == "linear", "eer_seed_sd"].isna().all()
    assert (root / "models/fit_aligners/nessa-m2/xv-ec.seed1.safetensors").is_file()
    findings = pd.read_csv(rep / "findings.csv")
    assert {"claim", "holds", "verdict", "lo", "hi"} <= set(findings.columns) and len(findings) > 0
    assert set(findings["verdict"]) <= {"holds", "does not hold", "inconclusive", "not testable"}
    # The deployment check of the A/B aligners, as recorded, on the held-out condition of stage 03 and on a
    # synthetic collapse (every utterance pulled toward one), whose different utterances' mapped embeddings must
    # come out closer together than the recorded sample's. (Whether the check flags it is a property of real-size
    # aligners: tests/test_deployment.py and stage 05 on the default study; these 16-d, one-epoch encoders map
    # even the recorded sample into a narrow cone.)
    assert (root / "data/extract_embeddings/xv/eval+aug.npz").is_file()
    check = pd.read_csv(rep / "deployment_check.csv")
    assert set(zip(check["method"], check["sample"])) == {(m, s) for m in ("nessa-m2", "nessa-m1")
                                                          for s in ("as recorded", "+aug", "synthetic collapse")}
    # Every system of every pair calibrated on the alignment split and judged at every FAR target.
    cal = pd.read_csv(rep / "calibration.csv")
    assert set(cal["pair"]) == {"xv-ec", "rz-ec", "rz-xv"} and sorted(set(cal["far_target"])) == p["evaluate"]["far_targets"]
    assert {"X/X", "Y/Y", "nessa-m2"} <= set(cal["system"]) and cal["cllr"].between(0, 10).all()
    assert (cal["min_cllr"] <= cal["cllr"] + 1e-9).all() and (cal["far_eval_lo"] <= cal["far_eval_hi"]).all()
    assert (cal["cllr_lo"] <= cal["cllr"] + 1e-9).all() and (cal["cllr"] <= cal["cllr_hi"] + 1e-9).all()
    assert (cal["min_cllr_lo"] <= cal["min_cllr_hi"]).all() and cal["min_cllr_lo"].between(0, 10).all()
    assert (cal["act_dcf_p0.01_lo"] <= cal["act_dcf_p0.01_hi"]).all()
    # AS-norm on and off for the same systems, with intervals and the paired change.
    asn = pd.read_csv(rep / "asnorm.csv")
    assert set(asn["pair"]) == {"xv-ec", "rz-ec", "rz-xv"} and set(asn["asnorm"]) == {"off", "on"}
    assert set(asn.loc[asn.pair == "rz-ec", "system"]) == set(cal.loc[cal.pair == "rz-ec", "system"])
    assert asn["eer"].between(0, 1).all() and (asn["eer_lo"] <= asn["eer_hi"]).all()
    on = asn[asn.asnorm == "on"]
    assert on["eer_change"].notna().all() and (on["eer_change_lo"] <= on["eer_change_hi"]).all()
    assert {"frr_at_far0.125_change_lo", "min_dcf_p0.01_hi"} <= set(asn.columns)
    # Every system's calibration file; migrate ships a method's with its own aligner and refuses it with another.
    from nessa_lib.evaluation.calibration import load_calibration

    files = sorted(p.relative_to(root).as_posix() for p in (root / "models/evaluate").rglob("*.calibration.json"))
    assert files == sorted(f"models/evaluate/{pair}/{s}.calibration.json" for pair, s in
                           {(a, {"X/X": "XX", "Y/Y": "YY"}.get(b, b)) for a, b in zip(cal["pair"], cal["system"])})
    saved = load_calibration(root / "models/evaluate/xv-ec/XX.calibration.json")
    assert saved.aligner is None and set(saved.thresholds) == set(p["evaluate"]["far_targets"])
    # The chain of upgrades rz -> xv -> ec (no M3 here: no route through M3's space), in metrics.json too.
    chain = pd.read_csv(rep / "chain.csv", index_col="system")
    assert chain.index.tolist() == ["v1/v1", "v3/v3", "v2/v2", "composed-nessa-m2", "direct-nessa-m2",
                                    "hop1-nessa-m2", "hop2-nessa-m2"]
    assert chain["eer"].between(0, 1).all() and (chain["gain_recovered_lo"] <= chain["gain_recovered_hi"]).all()
    assert chain.loc["composed-nessa-m2", ["profiles", "tests"]].tolist() == ["rz", "ec"]
    flat = json.loads((rep / "metrics.json").read_text())
    assert flat["chain:composed-nessa-m2:eer"] == pytest.approx(chain.loc["composed-nessa-m2", "eer"])
    sample = root / "data/extract_embeddings/xv/eval.npz"  # profiles of the enrollment model xv, to migrate
    m2_cal = root / "models/evaluate/xv-ec/nessa-m2.calibration.json"
    for aligner, ok in [("nessa-m2/xv-ec.safetensors", True), ("nessa-m2/xv-ec.seed1.safetensors", False),
                        ("linear/xv-ec.safetensors", False)]:
        run = subprocess.run([sys.executable, "-m", "nessa_lib.migrate", str(root / "models/fit_aligners" / aligner),
                              str(sample), str(root / "migrated.npz"), "--force", "--calibration", str(m2_cal)],
                             cwd=root, capture_output=True, text=True)
        assert (run.returncode == 0) == ok, (aligner, run.stdout, run.stderr)
        if not ok:
            assert "was made for another aligner" in run.stderr, run.stderr
    metrics_asn = json.loads((rep / "metrics.json").read_text())
    assert {"asnorm@xv-ec:XX:eer", "asnorm@xv-ec:nessa-m2:eer_change_lo"} <= set(metrics_asn)
    nonpair = check.set_index(["method", "sample"])["nonpair_median"]
    for m in ("nessa-m2", "nessa-m1"):
        assert nonpair[(m, "synthetic collapse")] > nonpair[(m, "as recorded")]
    assert ab_has_intervals(pd.read_csv(rep / "ab_case_study.csv"))
    # Every FAR target of evaluate.far_targets: an FRR column with its interval, an A/B block with the relative
    # FRR impact against A/A (0 for A/A itself wherever it rejects anyone), and their metrics.
    ab_rows = pd.read_csv(rep / "ab_case_study.csv")
    assert sorted(set(ab_rows["far_target"])) == p["evaluate"]["far_targets"]
    assert {"frr_at_far0.125", "frr_at_far0.125_lo", "frr_at_far0.125_hi"} <= set(main.columns)
    assert {"rel_frr_impact", "rel_frr_impact_lo", "rel_frr_impact_hi"} <= set(ab_rows.columns)
    assert (ab_rows.loc[ab_rows.system == "A/A", "rel_frr_impact"].fillna(0) == 0).all()
    assert {"eer_lo", "gain_recovered_hi"} <= set(pd.read_csv(rep / "ablation.csv").columns)
    metrics = json.loads((rep / "metrics.json").read_text())
    assert all(0 <= v <= 1 for k, v in metrics.items() if k.endswith(":eer"))
    assert "xv-ec:XX:frr_at_far0.125" in metrics and "ab@far0.125:A/A:frr_deployed" in metrics
    assert (rep / "figures" / "det_xv-ec.png").is_file()
    det = pd.read_csv(rep / "plots" / "det_xv-ec.csv")
    assert {"far", "X/X", "Y/Y", "nessa-m2"} <= set(det.columns) and det["far"].is_monotonic_increasing
    assert {"n_pairs", "eer"} <= set(pd.read_csv(rep / "plots" / "ablation.csv").columns)
    assert (root / "reports/fit_aligners/nessa-m2/figures/xv-ec_training.png").is_file()
    assert (root / "reports/fit_aligners/linear/figures").is_dir()  # an out, even without curves
    # The 04 page shows the training curves it saved (issue 22); every executed page keeps only the last state of
    # each progress bar (no carriage-return redraws).
    fit_nb = json.loads((root / "reports/fit_aligners/nessa-m2/04_fit_aligners.ipynb").read_text())
    curves_cell = next(c for c in fit_nb["cells"] if "aligner_training" in "".join(c["source"]))
    assert any("image/png" in o.get("data", {}) for o in curves_cell["outputs"])
    for executed in (root / "reports").rglob("0*.ipynb"):
        outputs = [o for c in json.loads(executed.read_text())["cells"] for o in c.get("outputs", [])]
        assert not any("\r" in "".join(o.get("text", "")) for o in outputs), executed
    # The aligners were fitted on the training speakers' utterances plus the alignment split (16 + 10 voices):
    # speaker-logit's reference set is exactly those speakers.
    assert align.load(root / "models/fit_aligners/speaker-logit/xv-ec.safetensors").shared_dim == 16 + 10

    index = build_report(root).read_text()
    for stage, item in [("prepare_data", ""), ("train_encoder", "xv"), ("fit_aligners", "nessa-m2"), ("evaluate", "")]:
        s = layout.stage(stage)
        page = f"{stage}/{item + '/' if item else ''}{Path(s.executed_name).with_suffix('.html')}"
        assert f'href="{page}"' in index and (root / "reports" / page).is_file()

    # nbval regression check of the executed evaluation notebook, as `make verify` runs it: the committed notebook
    # re-run on the workspace's data must print the marked key-number cell exactly (same seed, same inputs -> same
    # metrics), with the stage's outputs left as they were; and a published notebook whose key numbers differ fails.
    from nessa_lib.pipeline import verify

    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=root, check=True,
                       capture_output=True)

    git("init", "-q")
    git("add", "-f", "reports/evaluate/05_evaluate.ipynb")
    git("commit", "-qm", "published")
    before = {f.name: f.read_bytes() for f in rep.glob("*.csv")} | {"metrics.json": (rep / "metrics.json").read_bytes()}
    ok, out = verify.nbval_key_numbers(root=root)
    assert ok, out
    assert before == {f.name: f.read_bytes() for f in rep.glob("*.csv")} | {
        "metrics.json": (rep / "metrics.json").read_bytes()}
    nb = json.loads((rep / "05_evaluate.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "NBVAL_CHECK_OUTPUT" in "".join(c["source"]))
    text = "".join(cell["outputs"][0]["text"])
    cell["outputs"][0]["text"] = text.replace("0.", "0.9", 1)  # one EER of the published run is now wrong
    (rep / "05_evaluate.ipynb").write_text(json.dumps(nb))
    git("commit", "-qam", "published, edited")
    ok, out = verify.nbval_key_numbers(root=root)
    assert not ok, out[-2000:]
    assert "1 failed" in out, out[-2000:]
    git("checkout", "-q", "HEAD~1", "--", "reports/evaluate/05_evaluate.ipynb")

    # Development check of stage 04 (what tools/choose_defaults.py queues): fitted on the training voices only,
    # every aligner is scored on trials of the alignment split; fitted on it (the default), there is none.
    fit_metrics = root / "reports/fit_aligners/nessa-m2/metrics.json"
    m = json.loads(fit_metrics.read_text())
    assert {f"fit_s:{pair}" for pair in p["fit_aligners"]["pairs"]} == set(m)  # no dev: entries
    info = json.loads((root / "models/fit_aligners/identity/method.json").read_text())
    assert list(info["pairs"]) == ["xv-ec"] and info["skipped"] == ["rz-ec", "rz-xv"]
    dev = copy.deepcopy(p)
    dev["fit_aligners"].update(fit_splits=["train"], seed_offset=1)
    (root / "dev.yaml").write_text(yaml.safe_dump(dev, sort_keys=False))
    for method in ("nessa-m2", "speaker-logit"):
        run_stage("fit_aligners", method, root=root, params_file="dev.yaml", progress=False)
    m = json.loads(fit_metrics.read_text())
    assert {f"dev:{pair}:{s}:eer" for pair in dev["fit_aligners"]["pairs"] for s in ("XX", "YY", "nessa-m2")} <= set(m)
    assert all(0 <= m[f"dev:xv-ec:{s}:eer"] <= 1 for s in ("XX", "YY", "nessa-m2"))
    assert "dev:xv-ec:speaker-logit:eer" in json.loads(
        (root / "reports/fit_aligners/speaker-logit/metrics.json").read_text())
    from nessa_lib.evaluation.tables import gain_recovered

    assert m["dev:xv-ec:nessa-m2:gain_recovered"] == pytest.approx(
        gain_recovered(m["dev:xv-ec:XX:eer"], m["dev:xv-ec:YY:eer"], m["dev:xv-ec:nessa-m2:eer"]), nan_ok=True)
    assert align.load(root / "models/fit_aligners/speaker-logit/xv-ec.safetensors").shared_dim == 16  # train only


@pytest.mark.slow
def test_a_failing_stage_names_the_cell_and_keeps_the_notebook(tmp_path):
    """A stage whose notebook fails exits non-zero, says where, and leaves the executed copy for inspection."""
    p = tiny_params()
    p["prepare_data"]["source"] = "voxceleb"
    p["prepare_data"]["dataset_root"] = str(tmp_path / "missing")
    root = tiny_project(tmp_path / "proj", p)
    res = subprocess.run([sys.executable, "-m", "nessa_lib.pipeline.run", "prepare_data", "--no-progress"],
                         cwd=root, capture_output=True, text=True, timeout=600)
    assert res.returncode == 1
    assert "stage prepare_data failed in cell" in res.stderr and "missing" in res.stderr
    assert (root / "reports/prepare_data/01_prepare_data.html").is_file()
