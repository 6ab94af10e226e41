"""Which CPU kernels torch runs: the same bits on every x86-64 machine, or the fastest this CPU has.

PyTorch picks its CPU kernels by the instructions the CPU has. An AVX-512 machine runs oneDNN's AVX-512
convolutions and ATen's AVX-512 kernels, an AVX2-only machine their AVX2 versions, and the two round differently:
enough for two machines of the same kind to train different encoders from the same corpus and seed (issue 20;
docs/reproducibility.md has the measurements). ``params.yaml``'s ``base.cpu_kernels`` chooses:

``"avx2"`` (the default)
    Every library is capped to its AVX2 code path (:data:`SETTINGS`), so an AVX-512 machine computes what an
    AVX2-only one does. Training costs about 1.15-1.4x per step at one thread (measured on this project's 2-core
    AMD EPYC, docs/reproducibility.md). On a CPU without AVX2 (ARM, old x86) the variables do nothing.
``"native"``
    The environment is left as it is: the fastest kernels, results that depend on the CPU.

Torch reads these variables when it is imported, so they must be in a process's environment before it starts:
:func:`environment` gives that environment, :func:`applied` sets it for the processes started inside a ``with``
block (the pipeline's runner starts each notebook kernel in it; the kernel's workers inherit it), and
:func:`mismatch` tells a process that has imported torch whether it runs the kernels the setting asks for.
"""

from __future__ import annotations

import contextlib
import os

#: Environment of each setting. ATen: PyTorch's own vectorised kernels; oneDNN: convolutions; MKL_CBWR: MKL's
#: conditional numerical reproducibility (its AVX2 branch; a no-op for the bits measured here, kept because it is
#: MKL's documented way to the same results on different CPUs).
SETTINGS = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
    "native": {},
}
#: What ``torch.backends.cpu.get_cpu_capability()`` reports under each setting (None: whatever the CPU has).
CAPABILITY = {"avx2": "AVX2", "native": None}


def check_setting(setting: str) -> str:
    """``setting`` if it is a name of :data:`SETTINGS`, else ``ValueError`` naming the valid ones.

    Examples
    --------
    >>> check_setting("avx2")
    'avx2'
    >>> check_setting("avx512")
    Traceback (most recent call last):
    ...
    ValueError: base.cpu_kernels must be one of ['avx2', 'native'], got 'avx512'
    """
    if setting not in SETTINGS:
        raise ValueError(f"base.cpu_kernels must be one of {list(SETTINGS)}, got {setting!r}")
    return setting


def environment(setting: str, env=None) -> dict:
    """A copy of ``env`` (default: this process's environment) with the variables of ``setting`` set.

    Examples
    --------
    >>> environment("avx2", {"PATH": "/bin"})["ONEDNN_MAX_CPU_ISA"]
    'AVX2'
    >>> environment("native", {"PATH": "/bin"})
    {'PATH': '/bin'}
    """
    out = dict(os.environ if env is None else env)
    out.update(SETTINGS[check_setting(setting)])
    return out


@contextlib.contextmanager
def patched_environ(variables: dict):
    """Set ``variables`` in ``os.environ`` for the ``with`` block, then restore what was there (also variables
    that were unset before).

    Examples
    --------
    >>> with patched_environ({"NESSA_EXAMPLE": "1"}):
    ...     os.environ["NESSA_EXAMPLE"]
    '1'
    >>> "NESSA_EXAMPLE" in os.environ
    False
    """
    old = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def applied(setting: str):
    """Set the variables of ``setting`` in ``os.environ`` for the ``with`` block, then restore what was there.

    Only processes started inside the block are affected (torch in this process has read them already).

    Examples
    --------
    >>> with applied("avx2"):
    ...     os.environ["ATEN_CPU_CAPABILITY"]
    'avx2'
    """
    return patched_environ(SETTINGS[check_setting(setting)])


def mismatch(setting: str) -> str | None:
    """Why this process does not run the kernels ``setting`` asks for, or None when it does (or cannot tell).

    A notebook opened in JupyterLab rather than run by the pipeline has a kernel started without the setting:
    its results are valid but may differ in the last bits from the pipeline's on this machine.

    Examples
    --------
    >>> mismatch("native") is None
    True
    """
    want = CAPABILITY[check_setting(setting)]
    if want is None:
        return None
    import torch

    have = torch.backends.cpu.get_cpu_capability()
    if have in (want, "DEFAULT") or not have.startswith("AVX"):  # no AVX2 (or not x86): nothing to cap
        return None
    return (f"base.cpu_kernels is {setting!r} but torch runs {have} kernels in this process (it was started "
            f"without {', '.join(f'{k}={v}' for k, v in SETTINGS[setting].items())}): results may differ in the last "
            "bits from the pipeline's; run the stage with `dvc repro` or `python -m nessa_lib.pipeline.run`")
