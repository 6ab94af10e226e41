"""The whole ``params.yaml``, checked through every stage's parameters before anything runs.

``params.yaml`` is the one home of every value a user may change; each stage module of :mod:`nessa_lib.stages`
holds its section's schema (a frozen dataclass with types, ranges and choices) and loads its own section. This
module checks the whole file at once: every section against its stage's schema, and the references between
sections (the models a pair names are extracted, the extracted models are encoders, the splits the aligners are
fitted on are extracted ...). Every problem is reported, each naming its key path.
"""

from __future__ import annotations

from pathlib import Path

from nessa_lib import cpu_kernels
from nessa_lib.stages import evaluate, extract_embeddings, fit_aligners, prepare_data, schema, train_encoder

PARAMS_FILE = schema.PARAMS_FILE
STAGE_PARAMS = {
    "prepare_data": prepare_data.Params,
    "train_encoder": train_encoder.Params,
    "extract_embeddings": extract_embeddings.Params,
    "fit_aligners": fit_aligners.Params,
    "evaluate": evaluate.Params,
}
SECTIONS = ("base", *STAGE_PARAMS)
#: The keys of the ``base`` section, which every stage reads.
BASE_KEYS = ("seed", "cpu_kernels")


def _references(data: dict) -> list[str]:
    """Problems between sections (each names its keys); only what the sections' own checks cannot see."""
    out = []
    encoders = data["train_encoder"]["encoders"]
    ext = data["extract_embeddings"]
    models, splits = ext["models"], ext["splits"]
    out += [f"extract_embeddings.models names {m!r}, which is not an entry of train_encoder.encoders "
            f"{list(encoders)}" for m in models if m not in encoders]
    fa = data["fit_aligners"]
    for name, spec in fa["pairs"].items():
        out += [f"fit_aligners.pairs.{name}.{k} names {v!r}, which is not in extract_embeddings.models {models}"
                for k, v in spec.items() if v not in models]
    out += [f"fit_aligners.fit_splits names {s!r}, which is not in extract_embeddings.splits {splits}"
            for s in fa["fit_splits"] if s not in splits]
    ev = data["evaluate"]
    out += [f"evaluate.{k} names {ev[k]!r}, which is not in extract_embeddings.models {models}"
            for k in ("ab_model_a", "ab_model_b") if ev[k] not in models]
    if ev["calibration_split"] not in fa["fit_splits"]:
        out.append(f"evaluate.calibration_split {ev['calibration_split']!r} must be one of fit_aligners.fit_splits "
                   f"{fa['fit_splits']} (the A/B thresholds are calibrated on the aligners' fit pool)")
    if "eval" not in splits:
        out.append(f"extract_embeddings.splits must include 'eval' (stage 05 scores it), got {splits}")
    return out


def problems(data, where: str = PARAMS_FILE) -> list[str]:
    """Every problem of a whole parameters mapping, each naming its key path (empty: the study can run).

    Examples
    --------
    >>> data = schema.read_params_file()
    >>> problems(data)
    []
    >>> data["evaluate"]["far_targets"] = [0.01, 12.5]; data["fit_aligners"]["methods"].append("nessa-m4")
    >>> print("\\n".join(problems(data)))  # doctest: +ELLIPSIS
    params.yaml: fit_aligners.methods must be one of [...], got 'nessa-m4'
    params.yaml: evaluate.far_targets must be < 1, got 12.5
    """
    if not isinstance(data, dict):
        return [f"{where}: the top level must be a mapping of sections"]
    out = [f"{where}: unknown section {s!r}; valid: {list(SECTIONS)}" for s in data if s not in SECTIONS]
    base = data.get("base")
    if not (isinstance(base, dict) and set(base) == set(BASE_KEYS)):
        out.append(f"{where}: base must be a mapping with exactly the keys {list(BASE_KEYS)}, got {base!r}")
    else:
        if isinstance(base["seed"], bool) or not isinstance(base["seed"], int):
            out.append(f"{where}: base.seed must be an integer, got {base['seed']!r}")
        if base["cpu_kernels"] not in cpu_kernels.SETTINGS:
            out.append(f"{where}: base.cpu_kernels must be one of {list(cpu_kernels.SETTINGS)}, "
                       f"got {base['cpu_kernels']!r}")
    if out:
        return out
    for section, cls in STAGE_PARAMS.items():
        try:
            schema.build(cls, data, section, where)
        except ValueError as e:
            out += str(e).splitlines()
    if not out:  # the references need well-formed sections
        out += [f"{where}: {p}" for p in _references(data)]
    return out


def load_params(path=PARAMS_FILE, root=None) -> dict:
    """Read and check the whole parameters file (repo-relative ``path``); ``ValueError`` listing every problem.

    Examples
    --------
    >>> sorted(load_params())[:2]
    ['base', 'evaluate']
    """
    data = schema.read_params_file(path, root)
    found = problems(data, Path(str(path)).name)
    if found:
        raise ValueError("\n".join(found))
    return data
