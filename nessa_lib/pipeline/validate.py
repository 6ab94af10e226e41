"""``python -m nessa_lib.pipeline.validate [PARAMS_FILE]``: check the whole study's parameters before anything runs.

(Not listed in the package docstring on purpose: ``pipeline/__init__.py`` is a dependency of every stage.)

Every section of ``params.yaml`` against its stage's schema (types, ranges, choices) and the references between
sections (the models a pair names are extracted, the extracted models are encoders ...), every problem at once,
each naming its key path. ``make repro`` runs it before ``dvc repro``, so a mistake is found before DVC removes
any stage's outputs; exit status 0 when the study can run, 2 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from nessa_lib.pipeline.params import PARAMS_FILE, problems
from nessa_lib.stages import schema


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
    print(f"{args.params_file}: valid (every stage's section, and the references between them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
