"""What every training data path of an encoder shares (in memory, streamed from the files, streamed from shards):
the int16 form of the samples, the seeded start of a random crop, and the report of reads that failed and were
skipped. Its own module so :mod:`.data` and :mod:`.shards` both use it without importing each other."""

from __future__ import annotations

import logging
import os

import numpy as np

logger = logging.getLogger(__name__)
#: Header of the report of training reads that failed and were skipped (``skipped_train.csv`` of the output folder).
SKIP_LOG_HEADER = "path,reason,message"


def _to_int16(x: np.ndarray) -> np.ndarray:
    """The training samples' int16 form (every data path converts with this one expression)."""
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def _crop_start(n: int, crop: int, crop_seed) -> int:
    """Start sample of the crop of an ``n``-sample utterance (0 without a seed or when it is not longer)."""
    if n <= crop or crop_seed is None:
        return 0
    return int(np.random.default_rng(crop_seed).integers(n - crop + 1))


def log_skipped_read(skip_log, path: str, reason: str, message: str) -> None:
    """Log a training read that failed and is skipped, and append it to ``skip_log`` (a CSV, created with its
    header on the first skip; ``None``: log only). Safe from DataLoader workers and DDP ranks (one short append).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     f = pathlib.Path(d) / "skipped.csv"
    ...     log_skipped_read(f, "a.wav", "unreadable", "a.wav: cannot decode, it says")
    ...     f.read_text().splitlines()
    ['path,reason,message', 'a.wav,unreadable,"a.wav: cannot decode, it says"']
    """
    import csv
    import io

    logger.warning("skipping training audio %s (%s): %s", path, reason, message)
    if skip_log is None:
        return
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([path, reason, message])
    line = buf.getvalue().encode("utf-8")
    fd = os.open(os.fspath(skip_log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        if os.fstat(fd).st_size == 0:
            os.write(fd, (SKIP_LOG_HEADER + "\n").encode("utf-8") + line)
        else:
            os.write(fd, line)
    finally:
        os.close(fd)
