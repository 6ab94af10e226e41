"""Each stage's section of ``params.yaml``, checked against the stage's schema.

``params.yaml`` is the one home of every value a user may change; this module holds only the schema (names and
types). A notebook loads its own section with :func:`stage_params` instead of receiving one papermill parameter
per key, so a value cannot drift between ``params.yaml``, ``dvc.yaml`` and a notebook's defaults. Hyper-parameter
*values* of the encoders and aligners live in ``params.yaml`` too; their names and ranges are checked by
:class:`nessa_lib.encoders.EncoderConfig` and :func:`nessa_lib.align.fit`.
"""

from __future__ import annotations

from types import SimpleNamespace

import yaml

from nessa_lib import paths

PARAMS_FILE = "params.yaml"

# One entry per key: its type. "list[str]" and "list[int]" are YAML lists; "map" is a mapping checked by the
# code that uses it (encoder recipes, aligner hyper-parameters); "int?" may be null.
SCHEMA = {
    "base": {"seed": "int"},
    "prepare_data": {
        "source": "str", "dataset_root": "str", "trial_list": "str", "n_speakers": "int",
        "utts_per_speaker": "int", "workers": "int", "condition": "str", "enroll_condition": "str",
        "min_dur_s": "float", "max_dur_s": "float", "n_train_speakers": "int", "n_align_speakers": "int",
        "n_eval_speakers": "int", "min_eval_speakers": "int", "k_enroll": "int", "n_nontarget_per_profile": "int",
        "min_clip_s": "float", "probe_workers": "int", "baseline_resemblyzer": "bool",
    },
    "train_encoder": {"manifest": "str", "threads": "int", "device": "str", "precision": "str", "recipe": "map",
                      "shards": "str", "encoders": "map"},
    "extract_embeddings": {
        "models": "list[str]", "splits": "list[str]", "train_utts_per_speaker": "int", "mode": "str",
        "crop_s": "float", "batch_size": "int", "threads": "int", "workers": "int", "processes": "map",
        "device": "str", "precision": "str", "check_condition": "str",
        "check_utts_per_speaker": "int",
    },
    "fit_aligners": {
        "methods": "list[str]", "fit_splits": "list[str]", "dev_split": "str", "seed_offset": "int",
        "seeds": "int", "workers": "int", "threads": "int", "device": "str", "hparams": "map", "pairs": "map",
    },
    "evaluate": {
        "ab_model_a": "str", "ab_model_b": "str", "ab_far": "float", "ab_methods": "list[str]",
        "ablation_pair": "str", "ablation_method": "str", "ablation_speakers": "list[int]",
        "ablation_utts": "list[int]", "calibration_split": "str", "bootstrap_rounds": "int", "check_rounds": "int",
        "workers": "int",
        "threads": "int",
    },
}
PAIR_KEYS = ("enroll_model", "runtime_model")


def _is(value, kind: str) -> bool:
    if kind == "int?":
        return value is None or _is(value, "int")
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "map":
        return isinstance(value, dict)
    if kind.startswith("list["):
        return isinstance(value, list) and all(_is(v, kind[5:-1]) for v in value)
    raise AssertionError(kind)


def check_section(section: dict, schema: dict, where: str) -> None:
    """Raise ``ValueError`` naming the first missing, unknown or mistyped key of ``section``.

    Examples
    --------
    >>> check_section({"seed": 0}, {"seed": "int"}, "params.yaml: base")
    >>> check_section({"seed": "0"}, {"seed": "int"}, "params.yaml: base")
    Traceback (most recent call last):
    ...
    ValueError: params.yaml: base.seed must be int, got '0' (str)
    >>> check_section({"sede": 0}, {"seed": "int"}, "params.yaml: base")
    Traceback (most recent call last):
    ...
    ValueError: params.yaml: base has unknown key(s) ['sede']; valid: ['seed']
    """
    if not isinstance(section, dict):
        raise ValueError(f"{where} must be a mapping, got {type(section).__name__}")
    unknown = sorted(set(section) - set(schema))
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {unknown}; valid: {sorted(schema)}")
    for key, kind in schema.items():
        if key not in section:
            raise ValueError(f"{where}.{key} is missing")
        value = section[key]
        if not _is(value, kind):
            # YAML reads 1e-3 (no dot) as a string: say so, it is the usual cause.
            hint = " (write floats with a dot, e.g. 1.0e-3)" if kind == "float" and isinstance(value, str) else ""
            raise ValueError(f"{where}.{key} must be {kind}, got {value!r} ({type(value).__name__}){hint}")


def load_params(path=PARAMS_FILE, root=None) -> dict:
    """Read and check the whole parameters file (repo-relative ``path``).

    Every schema section must be present and well-typed; other top-level sections are refused, so a misspelt
    section name is an error instead of silently unused values.
    """
    file = paths.resolve(path, root)
    if not file.is_file():
        raise FileNotFoundError(f"parameters file not found: {file}")
    data = yaml.safe_load(file.read_text()) or {}
    where = str(path)
    if not isinstance(data, dict):
        raise ValueError(f"{where}: the top level must be a mapping of sections")
    unknown = sorted(set(data) - set(SCHEMA))
    if unknown:
        raise ValueError(f"{where}: unknown section(s) {unknown}; valid: {list(SCHEMA)}")
    for name, schema in SCHEMA.items():
        if name not in data:
            raise ValueError(f"{where}: section {name!r} is missing")
        check_section(data[name], schema, f"{where}: {name}")
    for pair, spec in data["fit_aligners"]["pairs"].items():
        check_section(spec, dict.fromkeys(PAIR_KEYS, "str"), f"{where}: fit_aligners.pairs.{pair}")
    for name, spec in data["train_encoder"]["encoders"].items():
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: train_encoder.encoders.{name} must be a mapping")
    return data


def stage_params(stage: str, *, path=PARAMS_FILE, root=None) -> SimpleNamespace:
    """The section ``stage`` of the parameters file, with ``seed`` (``base.seed``) added.

    Parameters
    ----------
    stage : str
        A section of :data:`SCHEMA` other than ``base``.
    path : str or Path
        The parameters file, relative to the repository root (the folder holding ``dvc.yaml``).
    root : str or Path, optional
        The repository root; default: found from the working directory.

    Returns
    -------
    types.SimpleNamespace
        One attribute per key, plus ``seed``, ``params_file`` (its absolute path); for the aligners, the
        evaluation lists' ``k_enroll`` and ``n_nontarget_per_profile`` (their development trials are built alike);
        for the evaluation, the ``pairs``, ``fit_splits`` and ``hparams`` of ``fit_aligners``.

    Examples
    --------
    >>> import tempfile, pathlib, shutil
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = shutil.copy(paths.repo_root() / "params.yaml", d / "params.yaml")
    >>> p = stage_params("fit_aligners", root=d)
    >>> p.seed, "nessa-m3" in p.methods
    (0, True)
    """
    if stage not in SCHEMA or stage == "base":
        raise ValueError(f"unknown stage section {stage!r}; valid: {[s for s in SCHEMA if s != 'base']}")
    data = load_params(path, root)
    ns = SimpleNamespace(**data[stage], seed=data["base"]["seed"], params_file=str(paths.resolve(path, root)))
    if stage == "fit_aligners":
        # Development trials are built like the evaluation's lists.
        ns.k_enroll = data["prepare_data"]["k_enroll"]
        ns.n_nontarget_per_profile = data["prepare_data"]["n_nontarget_per_profile"]
    if stage == "extract_embeddings":
        bad = {k: v for k, v in ns.processes.items() if not (_is(v, "int") and v >= 1)}
        if bad:
            raise ValueError(f"{path}: extract_embeddings.processes maps model names to integers >= 1, got {bad}")
    if stage == "evaluate":
        # The evaluation scores the aligners stage 04 fitted: the pairs of params.yaml, never a folder glob.
        ns.pairs = data["fit_aligners"]["pairs"]
        ns.fit_splits = data["fit_aligners"]["fit_splits"]
        ns.hparams = data["fit_aligners"]["hparams"]
        ns.check_condition = data["extract_embeddings"]["check_condition"]
    return ns


def item(section: SimpleNamespace, key: str, name: str):
    """Entry ``name`` of the ``foreach`` mapping or list ``key`` of a stage section; unknown names are refused.

    Examples
    --------
    >>> item(SimpleNamespace(models=["a", "b"]), "models", "b")
    'b'
    >>> item(SimpleNamespace(pairs={"a-b": {}}), "pairs", "b-a")
    Traceback (most recent call last):
    ...
    ValueError: 'b-a' is not an entry of pairs; valid: ['a-b']
    """
    entries = getattr(section, key)
    if name not in entries:
        raise ValueError(f"{name!r} is not an entry of {key}; valid: {list(entries)}")
    return entries[name] if isinstance(entries, dict) else name


def encoder_spec(section: SimpleNamespace, name: str) -> dict:
    """The settings of encoder ``name``: its entry over the shared ``recipe``, as a training config.

    A pretrained entry (``pretrained: resemblyzer``, or ``pretrained: speechbrain | wespeaker`` with a ``source`` and
    the ``objective`` it was trained with) is checked by :func:`nessa_lib.encoders.pretrained.check_entry` (errors
    name the key) and returned as it is. For a trained one, the entry's keys override the recipe's,
    ``seed_offset`` becomes ``seed = base.seed + seed_offset`` and ``name`` is added: the result is the keyword set
    of :class:`nessa_lib.encoders.EncoderConfig`, which checks every name and range.

    Examples
    --------
    >>> s = SimpleNamespace(seed=10, recipe={"epochs": 4, "lr": 0.002},
    ...                     encoders={"a": {"architecture": "ecapa", "seed_offset": 2, "epochs": 1},
    ...                               "z": {"pretrained": "resemblyzer"}})
    >>> encoder_spec(s, "a")
    {'epochs': 1, 'lr': 0.002, 'architecture': 'ecapa', 'name': 'a', 'seed': 12}
    >>> encoder_spec(s, "z")
    {'pretrained': 'resemblyzer'}
    >>> s.encoders["sb"] = {"pretrained": "speechbrain", "source": "models/spkrec-ecapa-voxceleb", "objective": "aam",
    ...                     "epochs": 3}
    >>> encoder_spec(s, "sb")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: params.yaml: train_encoder.encoders.sb has unknown key(s) ['epochs'] for pretrained: speechbrain; ...
    """
    entry = dict(item(section, "encoders", name))
    if "pretrained" in entry:
        from pathlib import Path

        from nessa_lib.encoders.pretrained import check_entry

        file = Path(getattr(section, "params_file", PARAMS_FILE)).name
        return check_entry(entry, f"{file}: train_encoder.encoders.{name}")
    offset = entry.pop("seed_offset", 0)
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise ValueError(f"train_encoder.encoders.{name}.seed_offset must be an int, got {offset!r}")
    return {**section.recipe, **entry, "name": name, "seed": section.seed + offset}
