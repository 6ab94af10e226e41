"""Typed, frozen stage parameters: a stage's section of ``params.yaml`` as a dataclass, checked on load.

A stage declares its parameters once, as a frozen dataclass whose fields are the keys of its ``params.yaml``
section (their values live only in ``params.yaml``: the fields have no defaults). :func:`build` checks a section
against it: unknown and missing keys, types, and the ranges and choices a field's metadata states; it reports every
problem at once, each naming its key path, in one ``ValueError``. A field may also come from another section
(``metadata={"from": "base.seed"}``): the evaluation reads the pairs the aligners were fitted for, for instance.
Problems between keys are a stage's ``cross_checks()`` method (a list of messages), run once every key is
well-formed.

Supported annotations: ``int``, ``float``, ``bool``, ``str``, ``X | None``, ``tuple[T, ...]`` (a YAML list),
``dict`` (a mapping checked by the code that uses it) and a frozen dataclass of such fields (a YAML mapping whose
keys are checked like a section's, each problem naming its full path, e.g. ``evaluate.asnorm.top_k``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

from nessa_lib import paths

PARAMS_FILE = "params.yaml"


def field(*, ge=None, gt=None, le=None, lt=None, choices=None, source: str | None = None, each=None):
    """A stage-parameter field with a range, a set of choices or another section as its source.

    ``ge``/``gt``/``le``/``lt`` bound a number (or, with ``each=True``, every item of a list); ``choices`` lists the
    allowed values (of the field, or of every item of a list); ``source`` is a dotted path into the whole file
    (``"base.seed"``) when the value is read from another section.

    Examples
    --------
    >>> f = field(ge=1, source="base.seed")
    >>> f.metadata["ge"], f.metadata["from"]
    (1, 'base.seed')
    """
    meta = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices, each=each).items() if v is not None}
    if source is not None:
        meta["from"] = source
    return dataclasses.field(metadata=meta)


def _type_name(tp) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        return {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
                "dict": "a mapping", "tuple": "a list"}.get(tp.__name__, tp.__name__)
    return str(tp)


def _check_type(value, tp, key: str) -> tuple[object, list[str]]:
    """``value`` converted to ``tp`` (lists -> tuples, ints -> floats), and the problems found."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None, []
        rest = [t for t in options if t is not type(None)]
        return _check_type(value, rest[0], key) if len(rest) == 1 else (value, [])
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            return value, [f"{key} must be a mapping, got {value!r}"]
        values, errors = _check_fields(tp, value, key)
        return (tp(**values) if not errors else value), errors
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if not isinstance(value, (list, tuple)):
            return value, [f"{key} must be a list, got {value!r}"]
        out, errors = [], []
        for i, v in enumerate(value):
            converted, errs = _check_type(v, item, f"{key}[{i}]")
            out.append(converted)
            errors += errs
        return tuple(out), errors
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # YAML reads 1e-3 (no dot) as a string: say so, it is the usual cause.
            hint = " (write floats with a dot, e.g. 1.0e-3)" if isinstance(value, str) else ""
            return value, [f"{key} must be a number, got {value!r}{hint}"]
        return float(value), []
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return value, [f"{key} must be an integer, got {value!r}"]
        return value, []
    if tp in (str, bool, dict) and not isinstance(value, tp):
        return value, [f"{key} must be {_type_name(tp)}, got {value!r}"]
    return value, []


def _check_range(value, meta: dict, key: str) -> list[str]:
    items = value if meta.get("each") and isinstance(value, tuple) else (value,)
    errors = []
    for v in items:
        if v is None:
            continue
        if "choices" in meta and v not in meta["choices"]:
            errors.append(f"{key} must be one of {list(meta['choices'])}, got {v!r}")
        for op, bad, word in (("ge", lambda a, b: a < b, ">="), ("gt", lambda a, b: a <= b, ">"),
                              ("le", lambda a, b: a > b, "<="), ("lt", lambda a, b: a >= b, "<")):
            if op in meta and isinstance(v, (int, float)) and bad(v, meta[op]):
                errors.append(f"{key} must be {word} {meta[op]}, got {v!r}")
    return errors


def _check_fields(cls, body: dict, key: str) -> tuple[dict, list[str]]:
    """The values of a nested dataclass's fields read from the mapping ``body`` at ``key``, and the problems."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    errors = [f"{key} has unknown key {k!r}; valid: {names}" for k in body if k not in names]
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in body:
            errors.append(f"{key}.{f.name} is missing")
            continue
        value, errs = _check_type(body[f.name], hints[f.name], f"{key}.{f.name}")
        errors += errs or _check_range(value, f.metadata, f"{key}.{f.name}")
        values[f.name] = value
    return values, errors


def keys(cls, section: str) -> dict[str, str]:
    """``{field: dotted key in params.yaml}`` of a stage's parameters: its own section's keys and the keys it
    reads from other sections (what ``dvc.yaml`` must declare under the stage's ``params``).

    Examples
    --------
    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class P:
    ...     seed: int = field(source="base.seed")
    ...     rounds: int = field(ge=1)
    >>> keys(P, "evaluate")
    {'seed': 'base.seed', 'rounds': 'evaluate.rounds'}
    """
    return {f.name: f.metadata.get("from", f"{section}.{f.name}") for f in dataclasses.fields(cls)}


def _lookup(data: dict, dotted: str):
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def check(cls, data: dict, section: str, where: str = PARAMS_FILE) -> tuple[dict, list[str]]:
    """The field values of ``cls`` read from ``data`` (a whole parameters file) and every problem found.

    Examples
    --------
    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class P:
    ...     seed: int = field(source="base.seed")
    ...     rounds: int = field(ge=1)
    >>> check(P, {"base": {"seed": 0}, "s": {"rounds": 0, "extra": 1}}, "s")[1]
    ["params.yaml: s has unknown key 'extra'; valid: ['rounds']", 'params.yaml: s.rounds must be >= 1, got 0']
    """
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    own = [f.name for f in fields if "from" not in f.metadata]
    body = data.get(section)
    if not isinstance(body, dict):
        return {}, [f"{where}: section {section!r} is missing" if body is None
                    else f"{where}: {section} must be a mapping, got {body!r}"]
    errors = [f"{where}: {section} has unknown key {k!r}; valid: {own}" for k in body if k not in own]
    values = {}
    for f in fields:
        key = f.metadata.get("from", f"{section}.{f.name}")
        try:
            raw = _lookup(data, key) if "from" in f.metadata else body[f.name]
        except KeyError:
            errors.append(f"{where}: {key} is missing")
            continue
        value, errs = _check_type(raw, hints[f.name], f"{where}: {key}")
        errors += errs or _check_range(value, f.metadata, f"{where}: {key}")
        values[f.name] = value
    return values, errors


def build(cls, data: dict, section: str, where: str = PARAMS_FILE):
    """``cls`` built from section ``section`` of ``data``; ``ValueError`` listing every problem otherwise.

    Examples
    --------
    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class P:
    ...     far: float = field(gt=0, lt=1)
    ...     methods: tuple[str, ...] = field(choices=("a", "b"), each=True)
    >>> build(P, {"s": {"far": 1, "methods": ["a"]}}, "s")
    Traceback (most recent call last):
    ...
    ValueError: params.yaml: s.far must be < 1, got 1.0
    >>> build(P, {"s": {"far": 0.5, "methods": ["a"]}}, "s")
    P(far=0.5, methods=('a',))
    """
    values, errors = check(cls, data, section, where)
    if errors:
        raise ValueError("\n".join(errors))
    params = cls(**values)
    # Problems between keys (a stage's ``cross_checks``), once every key is known to be well-formed.
    errors = [f"{where}: {e}" for e in getattr(params, "cross_checks", lambda: [])()]
    if errors:
        raise ValueError("\n".join(errors))
    return params


def read_params_file(path=PARAMS_FILE, root=None) -> dict:
    """The whole parameters file (repo-relative ``path``) as a mapping of sections.

    Raises ``FileNotFoundError`` or ``ValueError`` naming the file when it is missing, not YAML, or not a mapping.
    """
    import yaml

    file = paths.resolve(path, root)
    if not file.is_file():
        raise FileNotFoundError(f"parameters file not found: {file}")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{file}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file}: the top level must be a mapping of sections")
    return data


def load(cls, section: str, path=PARAMS_FILE, root=None):
    """Read ``path`` and build the stage parameters ``cls`` from its section ``section``."""
    return build(cls, read_params_file(path, root), section, where=Path(str(path)).name)


def entry(entries, name: str, key: str):
    """Entry ``name`` of a ``foreach`` mapping or list (``key`` names it in errors); unknown names are refused.

    Examples
    --------
    >>> entry(("a", "b"), "b", "extract_embeddings.models")
    'b'
    >>> entry({"a-b": {}}, "b-a", "fit_aligners.pairs")
    Traceback (most recent call last):
    ...
    ValueError: 'b-a' is not an entry of fit_aligners.pairs; valid: ['a-b']
    """
    if name not in entries:
        raise ValueError(f"{name!r} is not an entry of {key}; valid: {list(entries)}")
    return entries[name] if isinstance(entries, dict) else name
