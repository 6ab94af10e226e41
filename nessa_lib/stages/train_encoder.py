"""Stage 02, ``train_encoder``: train one encoder of ``train_encoder.encoders`` (its entry over the shared
``recipe``), or describe a pretrained one, and export it as safetensors + JSON.

``notebooks/02_train_encoder.py`` calls these; :class:`Params` is the ``train_encoder`` section of ``params.yaml``
(+ ``base.seed``). The training itself is :mod:`nessa_lib.encoders.brain`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from nessa_lib.devices import PRECISIONS
from nessa_lib.stages import schema
from nessa_lib.stages.schema import field

SECTION = "train_encoder"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclasses.dataclass(frozen=True)
class Params:
    """The ``train_encoder`` section of ``params.yaml`` (its comments say what each key does) + ``base.seed``.

    ``recipe`` and each entry of ``encoders`` are checked where they are used: :func:`encoder_spec` and
    :class:`~nessa_lib.encoders.config.EncoderConfig` (names and ranges) or
    :func:`~nessa_lib.encoders.pretrained.check_entry` (pretrained entries).
    """

    seed: int = field(source="base.seed")
    manifest: str = field()
    threads: int = field(ge=1)
    device: str = field()
    precision: str = field(choices=PRECISIONS)
    shards: str = field()
    recipe: dict = field()
    encoders: dict = field()

    def cross_checks(self) -> list[str]:
        """Problems between keys: every entry of ``encoders`` is a mapping, a known device.

        Examples
        --------
        >>> p = load()
        >>> dataclasses.replace(p, encoders={"a": 3}, device="tpu").cross_checks()
        ['train_encoder.encoders.a must be a mapping', "train_encoder.device must be auto, cpu or cuda[:N], got 'tpu'"]
        """
        from nessa_lib.encoders.config import EncoderConfig

        out = []
        for name, spec in self.encoders.items():
            if not isinstance(spec, dict):
                out.append(f"{SECTION}.encoders.{name} must be a mapping")
                continue
            try:  # the entry over the recipe, checked as training will check it (names and ranges)
                resolved = encoder_spec(self, name)
                if "pretrained" not in resolved:
                    EncoderConfig.from_dict(resolved)
            except ValueError as e:
                out.append(f"{SECTION}.encoders.{name}: {e}")
        if not _DEVICE.fullmatch(self.device):
            out.append(f"{SECTION}.device must be auto, cpu or cuda[:N], got {self.device!r}")
        return out


def load(params_file: str = schema.PARAMS_FILE, root=None) -> Params:
    """The ``train_encoder`` parameters of ``params_file`` (repo-relative), checked.

    Examples
    --------
    >>> p = load()
    >>> "ecapa" in p.encoders, p.threads >= 1
    (True, True)
    """
    return schema.load(Params, SECTION, params_file, root)


def encoder_spec(p: Params, name: str) -> dict:
    """The settings of encoder ``name``: its entry over the shared ``recipe``, as a training config.

    A pretrained entry (``pretrained: resemblyzer``, or ``pretrained: speechbrain | wespeaker`` with a ``source`` and
    the ``objective`` it was trained with) is checked by :func:`nessa_lib.encoders.pretrained.check_entry` (errors
    name the key) and returned as it is. For a trained one, the entry's keys override the recipe's,
    ``seed_offset`` becomes ``seed = base.seed + seed_offset`` and ``name`` is added: the result is the keyword set
    of :class:`nessa_lib.encoders.config.EncoderConfig`, which checks every name and range.

    Examples
    --------
    >>> p = Params(seed=10, manifest="m.csv", threads=1, device="cpu", precision="fp32", shards="",
    ...            recipe={"epochs": 4, "lr": 0.002},
    ...            encoders={"a": {"architecture": "ecapa", "seed_offset": 2, "epochs": 1},
    ...                      "z": {"pretrained": "resemblyzer"}})
    >>> encoder_spec(p, "a")
    {'epochs': 1, 'lr': 0.002, 'architecture': 'ecapa', 'name': 'a', 'seed': 12}
    >>> encoder_spec(p, "z")
    {'pretrained': 'resemblyzer'}
    >>> sb = {"pretrained": "speechbrain", "source": "models/spkrec-ecapa-voxceleb", "objective": "aam", "epochs": 3}
    >>> p = dataclasses.replace(p, encoders={"sb": sb})
    >>> encoder_spec(p, "sb")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: params.yaml: train_encoder.encoders.sb has unknown key(s) ['epochs'] for pretrained: speechbrain; ...
    """
    entry = dict(schema.entry(p.encoders, name, f"{SECTION}.encoders"))
    if "pretrained" in entry:
        from nessa_lib.encoders.pretrained import check_entry

        file = Path(getattr(p, "params_file", schema.PARAMS_FILE)).name
        return check_entry(entry, f"{file}: {SECTION}.encoders.{name}")
    offset = entry.pop("seed_offset", 0)
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise ValueError(f"{SECTION}.encoders.{name}.seed_offset must be an int, got {offset!r}")
    return {**p.recipe, **entry, "name": name, "seed": p.seed + offset}


def train_or_describe(spec: dict, manifest, out_dir, *, progress: bool = True, device: str = "auto",
                      precision: str = "fp32", shards=None) -> tuple[dict, dict]:
    """Stage 02 for one entry of ``params.yaml``: train the encoder ``spec`` describes, or export the descriptor of
    a pretrained one (``{"pretrained": ...}``, see :func:`nessa_lib.encoders.pretrained.describe`).

    ``spec`` is what :func:`encoder_spec` returns; ``manifest`` is repo-relative or absolute. Returns
    ``(meta, summary)``: the exported ``encoder.json`` and the training summary (timings, final losses;
    ``train_time_s`` 0 for a pretrained model). ``device``, ``precision`` and ``shards`` (repo-relative or absolute)
    go to :func:`nessa_lib.encoders.brain.train_encoder`.
    """
    from nessa_lib import paths
    from nessa_lib.encoders import pretrained
    from nessa_lib.encoders.meta import read_meta

    if "pretrained" in spec:
        return pretrained.describe(spec, out_dir), {"train_time_s": 0.0}
    # Only a trained entry loads SpeechBrain and the training code.
    from nessa_lib.encoders.brain import train_encoder
    from nessa_lib.encoders.config import EncoderConfig

    summary = train_encoder(paths.resolve(manifest), out_dir, EncoderConfig.from_dict(spec), progress=progress,
                            device=device, precision=precision,
                            shards=None if shards is None else paths.resolve(shards))
    return read_meta(out_dir), summary


def training_metrics(meta: dict, summary: dict) -> dict[str, float]:
    """The stage's flat ``metrics.json``: the summary's numbers and the embedding dimension.

    Examples
    --------
    >>> training_metrics({"emb_dim": 192}, {"train_time_s": 12, "model_id": "x", "resumed": False})
    {'train_time_s': 12.0, 'emb_dim': 192.0}
    """
    metrics = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    metrics["emb_dim"] = float(meta["emb_dim"])
    return metrics
