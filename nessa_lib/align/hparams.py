"""The aligners' hyper-parameter schema: the method names, each method's hyper-parameters with their defaults
(whose Python types are the schema's types), and their validation.

The study keeps the *values* in ``params.yaml`` (``fit_aligners.hparams: {method: {name: value}}``) and passes
them to :func:`nessa_lib.align.fit` (through ``fit_aligners(..., hparams=...)``); this module keeps the names,
the types and the checks. :func:`check_hparams` validates such a mapping up front, without fitting anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral, Real

METHODS = ("identity", "linear", "procrustes", "speaker-logit", "nessa-m1", "nessa-m2", "nessa-m3")

# Defaults chosen to work without tuning on a few thousand to tens of thousands of pairs:
# a 2-hidden-layer MLP with a linear skip path starts close to the least-squares solution and
# early stopping on held-out speakers keeps it from memorising the alignment speakers. Width 128, learning rate
# 0.002 with a warm-up and cosine decay over max_epochs=50: on development data (3 seeds, the study's pairs) as good
# as the earlier width 256 at a constant 0.001 for up to 200 epochs, in a third to a half of the time (README,
# "Fitting speed"; benchmarks/bench_fit.py measures both side by side).
MLP_DEFAULTS = dict(
    hidden_dim=128,
    n_hidden=2,
    dropout=0.1,
    lr=2e-3,
    weight_decay=1e-4,
    batch_size=256,
    max_epochs=50,
    patience=15,
    val_fraction=0.1,
    lr_schedule="cosine",
    # random | ridge: "ridge" starts each MLP's linear skip path at the ridge least-squares map of its input into
    # its target space, on a member's own training rows, with the penalty (times their number) among init_ridge and
    # every decade above it up to init_ridge_max whose map predicts the member's held-out speakers best (the rows
    # of its early stopping; init_ridge_max <= init_ridge: init_ridge alone). M2 starts so (below); M1 and M3 keep
    # the random start (docs/runs/schedule-sweep, "The penalty chosen on held-out speakers").
    init="random",
    init_ridge=1e-6,
    init_ridge_max=0.1,
)
# M3: the contrastive term does the work; light squared-error terms only keep the new space near the
# reference one. Its schedule: 60 epochs at learning rate 3e-3 with M1/M2's dropout 0.1 scored as well on
# development trials (6 seeds, four pairs) as the earlier 80 epochs at 2e-3 with dropout 0.2, in 3/4 of the steps;
# 60 epochs with dropout 0.2 were 0.1-0.17 points worse (docs/runs/schedule-sweep).
# Chosen on development data only (tools/choose_defaults.py): fits on the default corpus's encoder-training
# speakers, scored on trials of the (disjoint) alignment speakers, never on evaluation trials, 3-6 seeds, both
# x-vector/ECAPA orientations. README, "Choosing defaults", has the whole table.
M3_DEFAULTS = dict(
    MLP_DEFAULTS,
    lr=3e-3,
    max_epochs=60,  # an M3 epoch shows each training speaker once (utts_per_speaker rows): it needs more of them
    reference="enroll",
    temperature=0.1,
    w_contrastive=1.0,
    w_mse_enroll=0.1,
    w_mse_runtime=0.1,
    speakers_per_batch=64,
    utts_per_speaker=4,
)
# Ranges and choices: a value outside them cannot train (a validation share of 1 leaves no training data, a
# negative width has no layer), so it is refused before anything is fitted.
RANGES = {
    "ridge": dict(ge=0.0), "hidden_dim": dict(ge=1), "n_hidden": dict(ge=1), "dropout": dict(ge=0.0, lt=1.0),
    "lr": dict(gt=0.0), "weight_decay": dict(ge=0.0), "batch_size": dict(ge=2), "max_epochs": dict(ge=1),
    "patience": dict(ge=1), "val_fraction": dict(ge=0.0, le=0.5), "reference": dict(choices=("enroll", "runtime")),
    "lr_schedule": dict(choices=("constant", "cosine")), "init": dict(choices=("random", "ridge")),
    "init_ridge": dict(ge=0.0), "init_ridge_max": dict(ge=0.0),
    "temperature": dict(gt=0.0), "w_contrastive": dict(ge=0.0), "w_mse_enroll": dict(ge=0.0),
    "w_mse_runtime": dict(ge=0.0), "speakers_per_batch": dict(ge=2), "utts_per_speaker": dict(ge=2),
}
DEFAULT_HPARAMS = {
    "identity": {},
    "linear": dict(ridge=1e-3),
    "procrustes": {},
    "speaker-logit": {},
    # M1 needs fewer epochs: 40 scored within 0.05 points of 50 on development trials of five pairs
    # (docs/runs/schedule-sweep).
    "nessa-m1": dict(MLP_DEFAULTS, max_epochs=40),
    # M2 starts from the least-squares map (penalty chosen per member on its held-out speakers) and needs 20 epochs:
    # on development trials of five pairs and four fit-set sizes (300-7,200 pairs, 3 seeds) it scored better than
    # the random start's 50 epochs in 17 of 20 cases (by up to 3 points on 300-1,200 pairs) and worse by 0.03-0.38 in
    # three. M1 and M3 gained as much on some pairs but lost up to 3 points on others' small fit sets, so they keep
    # the random start (docs/runs/schedule-sweep).
    "nessa-m2": dict(MLP_DEFAULTS, init="ridge", max_epochs=20),
    "nessa-m3": M3_DEFAULTS,
}


def hparams_schema(method: str) -> dict[str, type]:
    """Names and types of a method's hyper-parameters (the types of its defaults).

    ``int`` values must be integers; ``float`` values may be given as integers (they are converted, so
    ``w_contrastive: 1`` in YAML stores and trains exactly like the default ``1.0``); ``str`` values are strings.

    Examples
    --------
    >>> hparams_schema("linear")
    {'ridge': <class 'float'>}
    >>> hparams_schema("nessa-m3")["reference"], hparams_schema("nessa-m1")["hidden_dim"]
    (<class 'str'>, <class 'int'>)
    """
    _check_method(method)
    return {name: type(value) for name, value in DEFAULT_HPARAMS[method].items()}


def check_hparams(hparams: Mapping) -> dict[str, dict]:
    """Validate per-method hyper-parameters ``{method: {name: value}}`` without fitting anything.

    This is what ``fit_aligners(..., hparams=...)`` passes on to :func:`nessa_lib.align.fit`, method by method:
    a ``params.yaml`` section can be checked with it before any fit starts. Methods may be left out and each
    method's mapping may be partial (the defaults fill the rest).

    Parameters
    ----------
    hparams : mapping of str to mapping
        Method name (one of :data:`METHODS`) to its hyper-parameters.

    Returns
    -------
    dict of str to dict
        The complete hyper-parameters of each method given (defaults filled in, numbers converted to the
        schema's types), as :func:`nessa_lib.align.fit` would use and store them.

    Raises
    ------
    ValueError
        An unknown method, an unknown hyper-parameter name, or a value of the wrong type.

    Examples
    --------
    >>> check_hparams({"linear": {"ridge": 0}})
    {'linear': {'ridge': 0.0}}
    >>> check_hparams({"nessa-m2": {"lr": "1e-3"}})
    Traceback (most recent call last):
    ...
    ValueError: nessa-m2 hyper-parameter 'lr' must be float, got '1e-3' (str) (write floats with a dot, e.g. 1.0e-3)
    """
    if not isinstance(hparams, Mapping):
        raise ValueError(f"hparams must be a mapping of method name to hyper-parameters, got {type(hparams).__name__}")
    out = {}
    for method, values in hparams.items():
        if not isinstance(values, Mapping):
            raise ValueError(f"hparams[{method!r}] must be a mapping of hyper-parameter names to values, "
                             f"got {type(values).__name__}")
        out[method] = resolve_hparams(method, dict(values))
    return out


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown alignment method {method!r}; choose one of {', '.join(METHODS)}")


def _as_type(method: str, name: str, value, kind: type):
    """``value`` as the schema type ``kind`` (int -> float allowed), or ``ValueError``."""
    if kind is str:
        ok = isinstance(value, str)
    elif kind is int:
        ok = isinstance(value, Integral) and not isinstance(value, bool)
    else:  # float
        ok = isinstance(value, Real) and not isinstance(value, bool)
    if not ok:
        hint = " (write floats with a dot, e.g. 1.0e-3)" if kind is float and isinstance(value, str) else ""
        raise ValueError(f"{method} hyper-parameter {name!r} must be {kind.__name__}, got {value!r} "
                         f"({type(value).__name__}){hint}")
    return value if type(value) is kind else kind(value)


def _check_range(method: str, name: str, value) -> None:
    rule = RANGES.get(name, {})
    if "choices" in rule and value not in rule["choices"]:
        raise ValueError(f"{method} hyper-parameter {name!r} must be one of {list(rule['choices'])}, got {value!r}")
    for op, bad, word in (("ge", value < rule.get("ge", value), ">="), ("gt", "gt" in rule and value <= rule["gt"], ">"),
                          ("le", value > rule.get("le", value), "<="), ("lt", "lt" in rule and value >= rule["lt"], "<")):
        if op in rule and bad:
            raise ValueError(f"{method} hyper-parameter {name!r} must be {word} {rule[op]}, got {value!r}")


def resolve_hparams(method: str, hparams: dict) -> dict:
    """The complete hyper-parameters of ``method``: the defaults, overridden by ``hparams`` (checked).

    Unknown names are refused; values must have the default's type (an integer is accepted for a float and
    converted) and lie in the range of :data:`RANGES`. The result keeps the defaults' key order, so a full dict
    equal to the defaults gives the same dict (and the same aligner file) as no overrides at all.

    Examples
    --------
    >>> resolve_hparams("linear", {})
    {'ridge': 0.001}
    >>> resolve_hparams("nessa-m2", {"val_fraction": 1.0})
    Traceback (most recent call last):
    ...
    ValueError: nessa-m2 hyper-parameter 'val_fraction' must be <= 0.5, got 1.0
    """
    _check_method(method)
    defaults = DEFAULT_HPARAMS[method]
    unknown = sorted(set(hparams) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown hyper-parameter(s) {unknown} for method {method!r}; valid: {sorted(defaults) or 'none'}"
        )
    out = {name: _as_type(method, name, hparams[name], type(default)) if name in hparams else default
           for name, default in defaults.items()}
    for name in hparams:
        _check_range(method, name, out[name])
    low, high = out.get("init_ridge", 0.0), out.get("init_ridge_max", 0.0)
    if high > low and low == 0.0:  # decades of 0 are all 0
        raise ValueError(f"{method} hyper-parameter 'init_ridge' must be > 0 when the penalty is chosen among its "
                         f"decades up to init_ridge_max ({out['init_ridge_max']}); set init_ridge_max: 0 for no penalty")
    return out
