"""``python -m nessa_lib.encoders`` (also under ``torchrun``): see :func:`nessa_lib.encoders.cli.main`."""

from nessa_lib.encoders.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
