"""Which torch device a heavy stage runs on, and its optional mixed precision.

Training, extraction and aligner fitting take a ``device`` string: ``"auto"`` (CUDA when a GPU is visible, else the
CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; and a ``precision``: ``"fp32"`` (default, the study's numbers),
``"fp16"`` or ``"bf16"`` (``torch.autocast``, only on CUDA). The CPU path is what the tests cover; the GPU path
is written to the same contract but untested on the 2-core development machine (docs/scale.md).
"""

from __future__ import annotations

import contextlib

PRECISIONS = ("fp32", "fp16", "bf16")


def resolve_device(device: str = "auto") -> str:
    """The concrete device of ``device``: ``"auto"`` becomes ``"cuda"`` when ``torch.cuda.is_available()``, else
    ``"cpu"``; anything else is checked with ``torch.device`` and returned as given.

    Raises
    ------
    ValueError
        Not a torch device string, or a CUDA device on a machine without a visible GPU.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    >>> resolve_device("auto") in ("cpu", "cuda")
    True
    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU (use 'auto' or 'cpu')")
    return str(device)


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else ``ValueError``.

    Examples
    --------
    >>> check_precision("bf16")
    'bf16'
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    return precision


def autocast(device: str, precision: str = "fp32"):
    """A context manager running torch ops in ``precision`` on ``device``: ``torch.autocast`` for fp16/bf16 on
    CUDA, nothing at all for fp32 (so the fp32 path is exactly the plain one).

    Raises
    ------
    ValueError
        fp16/bf16 asked for on the CPU (mixed precision is a GPU option here).

    Examples
    --------
    >>> with autocast("cpu", "fp32"):
    ...     pass
    """
    import torch

    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    if torch.device(device).type != "cuda":
        raise ValueError(f"precision={precision!r} is a GPU option; on device {device!r} use 'fp32'")
    return torch.autocast("cuda", dtype=torch.float16 if precision == "fp16" else torch.bfloat16)
