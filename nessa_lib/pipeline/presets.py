"""Presets: named sets of changes to ``params.yaml`` (VoxCeleb recipes, real pretrained pairs).

A preset is a YAML file in ``presets/`` holding only the keys it changes, laid out like ``params.yaml``. Applying
it writes a parameters file: ``params.yaml``'s own text with those values replaced (comments kept), checked like
``params.yaml`` itself, so ``params.yaml`` stays the one home of every value and a preset cannot introduce a key the
stages do not read. Mappings merge key by key, except the mappings of *entries* (``train_encoder.encoders``,
``fit_aligners.pairs``): a preset that names them gives the whole set (a VoxCeleb study has its own encoders, not
the synthetic study's plus more). Lists and scalars are replaced.

Usage::

    python -m nessa_lib.pipeline.presets presets/voxceleb1-pretrained.yaml            # rewrites params.yaml
    python -m nessa_lib.pipeline.presets presets/voxceleb1-pretrained.yaml --out vox.yaml
    python -m nessa_lib.pipeline.presets presets/voxceleb1-pretrained.yaml --dry-run  # prints the diff only
    git diff params.yaml                                                               # what changed
    dvc repro

``git checkout params.yaml`` returns to the default study.

Any valid ``params.yaml`` is accepted, including the one ``dvc exp run -S`` rewrites in its own style (ruamel's:
``''`` quotes, empty nulls, wrapped flow lists). A file that is not valid YAML is refused in one line naming the
file, the line and the column (exit status 2); the text to write is read back and compared with the merged values
before it replaces anything, so a broken file is never written, and no temporary file is left on any path.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import yaml

from nessa_lib import paths
from nessa_lib.io import atomic_write_text
from nessa_lib.pipeline.params import PARAMS_FILE, load_params, problems

# Mappings whose keys are entries chosen by the user (one per encoder, one per pair): replaced whole.
ENTRY_MAPS = (("train_encoder", "encoders"), ("fit_aligners", "pairs"))


def merge(base: dict, changes: dict, where: tuple = ()) -> None:
    """Write ``changes`` into ``base`` in place; a key ``base`` lacks is refused with its dotted name.

    Mappings merge key by key except the entry maps of :data:`ENTRY_MAPS`, which are replaced whole, as are
    lists and scalars.

    Examples
    --------
    >>> p = {"prepare_data": {"source": "synthetic", "n_speakers": 950}}
    >>> merge(p, {"prepare_data": {"source": "voxceleb"}})
    >>> p
    {'prepare_data': {'source': 'voxceleb', 'n_speakers': 950}}
    >>> merge(p, {"prepare_data": {"sorce": "voxceleb"}})
    Traceback (most recent call last):
    ...
    KeyError: "preset key prepare_data.sorce is not in the parameters file (valid: ['n_speakers', 'source'])"
    """
    if not isinstance(changes, dict):
        raise ValueError(f"preset: {'.'.join(where) or 'the top level'} must be a mapping, got {changes!r}")
    for key, value in changes.items():
        at = (*where, str(key))
        if key not in base:
            raise KeyError(f"preset key {'.'.join(at)} is not in the parameters file (valid: {sorted(base)})")
        if isinstance(value, dict) and isinstance(base[key], dict) and at not in ENTRY_MAPS:
            merge(base[key], value, at)
        else:
            base[key] = value


def _round_trip_yaml():
    # ruamel (a DVC dependency) keeps params.yaml's comments and key order when values are replaced.
    from ruamel.yaml import YAML
    from ruamel.yaml.representer import RoundTripRepresenter

    class Representer(RoundTripRepresenter):
        """Writes None as `null` (ruamel's default is an empty value), so untouched `null`s stay as they were."""

    Representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    y = YAML()
    y.Representer = Representer
    y.preserve_quotes = True
    y.width = 120
    return y


def _yaml_problem(file, err) -> str:
    """One line for a YAML error of ``file``: where (line, column, the line's text) and what."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    what = getattr(err, "problem", None) or getattr(err, "context", None) or str(err).splitlines()[0]
    if mark is None:
        return f"{file}: not valid YAML: {what}"
    where = f"{file}, line {mark.line + 1}, column {mark.column + 1}"
    buffer = getattr(mark, "buffer", None)
    text = buffer.splitlines()[mark.line].strip() if buffer and mark.line < len(buffer.splitlines()) else ""
    return f"{where}: not valid YAML: {what}" + (f" (`{text}`)" if text else "")


def _load(y, file):
    """``file`` read with the round-trip loader ``y``; invalid YAML is a one-line ``ValueError``."""
    from ruamel.yaml.error import YAMLError

    text = file.read_text()
    try:
        return y.load(text)
    except YAMLError as err:
        raise ValueError(_yaml_problem(file, err)) from None


def _plain(node):
    """A round-trip document as plain Python values (dict, list, int, float, str, bool, None)."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    from ruamel.yaml.scalarbool import ScalarBoolean

    if isinstance(node, (bool, ScalarBoolean)):  # before int: both are ints
        return bool(node)
    for kind in (int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


def _read_back(text: str, target, intended):
    """``text`` (what would be written to ``target``) read back as the stages will read it (PyYAML).

    Refuses, as a one-line ``ValueError``, text that is not YAML, or that does not read back as ``intended``
    (guards against the YAML writer merging lines or dropping values: such a file is never written).
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        again = YAML(typ="safe", pure=True).load(text)
        plain = yaml.safe_load(text)
    except (YAMLError, yaml.YAMLError) as err:
        raise ValueError(_yaml_problem(f"{target} as it would be written", err) + "; nothing written") from None
    if again != _plain(intended):
        raise ValueError(f"{target}: the YAML writer would not write back the merged values faithfully; "
                         "nothing written (please report this with the preset and the parameters file)")
    return plain


def _section_key(lines, i) -> tuple[str, str]:
    """``(top-level section, the line's key with its indentation)`` of line ``i``, e.g. ``("fit_aligners",
    "  hparams:")``."""
    section = ""
    for line in reversed(lines[:i]):
        if line[:1].isalpha() or line[:1] == "_":
            section = line.split(":", 1)[0]
            break
    return section, lines[i].split(":", 1)[0] + ":"


def restore_comment_blocks(original: str, written: str) -> str:
    r"""Put back the full-line comment blocks of ``original`` that the YAML writer dropped from ``written``.

    ruamel attaches the comment lines that precede a key to the *last value before them*: when a preset replaces
    a whole entry map (the encoders, the pairs), the comments that document the next key go with the old map. Each
    block of ``original`` missing from ``written`` is inserted again before the same key of the same section.
    Comments carry no values, so the merged values are unchanged (and are read back before anything is written).

    Examples
    --------
    >>> orig = "a:\n  x: 1\n  # about y\n  y: 2\n"
    >>> restore_comment_blocks(orig, "a:\n  x: 5\n  y: 2\n")
    'a:\n  x: 5\n  # about y\n  y: 2\n'
    """
    src = original.splitlines(keepends=True)
    out = written.splitlines(keepends=True)
    i = 0
    while i < len(src):
        if not src[i].lstrip().startswith("#"):
            i += 1
            continue
        j = i
        while j < len(src) and src[j].lstrip().startswith("#"):
            j += 1
        block = src[i:j]
        if j < len(src) and src[j].strip() and "".join(block) not in written:
            want = _section_key(src, j)
            at = next((k for k in range(len(out)) if out[k].strip() and not out[k].lstrip().startswith("#")
                       and _section_key(out, k) == want), None)
            if at is not None:
                out[at:at] = block
                written = "".join(out)
        i = j
    return "".join(out)


def apply_preset(preset, *, base=PARAMS_FILE, out=PARAMS_FILE, root=None, dry_run: bool = False) -> Path:
    """Write ``base`` with the changes of ``preset`` to ``out`` (all repository-relative); return ``out``.

    With ``dry_run`` nothing is written; the unified diff between ``out`` (or ``base`` when ``out`` does not exist)
    and what would be written is printed instead.

    The result is read back (it must give exactly the merged values) and checked like
    :func:`~nessa_lib.pipeline.params.load_params` before it replaces ``out``: invalid YAML (a ``ValueError`` of one
    line naming file, line and column), an unknown key or a mistyped value leaves ``out`` untouched.

    Examples
    --------
    >>> import tempfile, pathlib, shutil
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = shutil.copy(paths.repo_root() / "params.yaml", d / "params.yaml")
    >>> _ = (d / "p.yaml").write_text("base: {seed: 7}\\n")
    >>> apply_preset("p.yaml", out="seven.yaml", root=d).name
    'seven.yaml'
    >>> load_params("seven.yaml", root=d)["base"]["seed"]
    7
    """
    preset_file = paths.resolve(preset, root)
    if not preset_file.is_file():
        raise FileNotFoundError(f"preset not found: {preset_file}")
    y = _round_trip_yaml()
    # Read with the round-trip loader too: values keep their written form (a float such as 2.0e-6 read as a
    # Python float would be written back as 2e-06, which PyYAML, and so load_params, reads as a string).
    changes = _load(y, preset_file)
    if not isinstance(changes, dict) or not changes:
        raise ValueError(f"{preset_file}: a preset must be a non-empty mapping laid out like params.yaml")
    base_file = paths.resolve(base, root)
    if not base_file.is_file():
        raise FileNotFoundError(f"parameters file not found: {base_file}")
    data = _load(y, base_file)
    if not isinstance(data, dict):
        raise ValueError(f"{base_file}: the top level must be a mapping of sections")
    try:
        merge(data, changes)
    except (KeyError, ValueError) as err:
        raise ValueError(f"{preset_file}: {err.args[0]}") from None
    buf = io.StringIO()
    y.dump(data, buf)
    buf = io.StringIO(restore_comment_blocks(base_file.read_text(), buf.getvalue()))
    target = paths.resolve(out, root)
    # The merged text is checked as the stages will read it (PyYAML) before anything is written, and written in
    # one atomic step: a bad preset writes nothing and leaves no file behind.
    found = problems(_read_back(buf.getvalue(), target, data), f"{target.name} (with {preset_file.name})")
    if found:
        raise ValueError(f"{preset_file} gives an invalid parameters file:\n" + "\n".join(found))
    if dry_run:
        import difflib

        before = (target if target.is_file() else base_file).read_text().splitlines(keepends=True)
        diff = list(difflib.unified_diff(before, buf.getvalue().splitlines(keepends=True),
                                         str(out), f"{out} (with {preset_file.name})"))
        sys.stdout.writelines(diff)
        if not diff:
            print(f"{out}: no change (it already has the values of {preset_file.name})", file=sys.stderr)
        return target
    atomic_write_text(target, buf.getvalue())
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nessa_lib.pipeline.presets", description=__doc__.split("\n")[0])
    parser.add_argument("preset", help="a preset YAML file (e.g. presets/voxceleb1-pretrained.yaml)")
    parser.add_argument("--base", default=PARAMS_FILE, help="parameters file the preset changes (default: %(default)s)")
    parser.add_argument("--out", default=PARAMS_FILE, help="file to write (default: %(default)s, in place)")
    parser.add_argument("--dry-run", action="store_true", help="write nothing; print the diff it would make")
    args = parser.parse_args(argv)
    try:
        out = apply_preset(args.preset, base=args.base, out=args.out, dry_run=args.dry_run)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        return 0
    print(f"wrote {out} ({args.base} with {args.preset}); see `git diff {args.out}`, then `dvc repro`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
