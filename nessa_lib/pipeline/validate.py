"""``python -m nessa_lib.pipeline.validate [PARAMS_FILE]``: check the whole study's parameters before anything runs.

(Not listed in the package docstring on purpose: ``pipeline/__init__.py`` is a dependency of every stage.)

Every section of ``params.yaml`` against its stage's schema (types, ranges, choices) and the references between
sections (the models a pair names are extracted, the extracted models are encoders ...), every problem at once,
each naming its key path; exit status 0 when the study can run, 2 otherwise.

It is also the first stage of ``dvc.yaml`` (``validate``): its command writes :data:`STAMP` when the file is
valid, and ``prepare_data``, upstream of every other stage, depends on that file. DVC runs stages in dependency
order and removes a stage's outputs only when it is about to run it, so with a mistake in ``params.yaml`` a plain
``dvc repro`` (or ``dvc repro <stage>``) stops at ``validate``, before any stage's outputs are removed. The stamp's
text is the same whatever the parameters, so a valid edit re-runs ``validate`` (a few seconds) and only the stages
whose own parameters changed. ``make repro`` runs the check before ``dvc repro`` too.
"""

from __future__ import annotations

import argparse
import json
import sys

from nessa_lib import paths
from nessa_lib.io import atomic_write_text
from nessa_lib.pipeline.params import PARAMS_FILE, problems
from nessa_lib.stages import schema

#: What the ``validate`` stage writes when the parameters are valid (repo-relative; a ``cache: false`` out of
#: ``dvc.yaml`` and a dependency of ``prepare_data``). Its text never depends on the parameters.
STAMP = "reports/validate/validated.json"


def main(argv=None) -> int:
    """Print every problem of the parameters file (or that it is valid); return the exit status.

    Examples
    --------
    >>> main([])
    params.yaml: valid (every stage's section, and the references between them)
    0
    """
    parser = argparse.ArgumentParser(prog="python -m nessa_lib.pipeline.validate", description=__doc__.split("\n")[0])
    parser.add_argument("params_file", nargs="?", default=PARAMS_FILE, help="repo-relative (default: %(default)s)")
    parser.add_argument("--stamp", metavar="PATH", help=f"when valid, write this repo-relative file (the dvc.yaml "
                                                        f"stage writes {STAMP}, a dependency of every other stage)")
    args = parser.parse_args(argv)
    try:
        data = schema.read_params_file(args.params_file)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    found = problems(data, args.params_file)
    if found:
        print(f"{args.params_file}: {len(found)} problem(s); nothing was run:", file=sys.stderr)
        print("\n".join(f"  {p}" for p in found), file=sys.stderr)
        return 2
    if args.stamp:
        stamp = paths.resolve(args.stamp)
        atomic_write_text(stamp, json.dumps({"params_file": str(args.params_file), "valid": True}) + "\n")
    print(f"{args.params_file}: valid (every stage's section, and the references between them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
