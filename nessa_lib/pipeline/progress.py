"""Progress of a running stage on the runner's terminal, without progress lines in the executed notebook.

During ``dvc repro`` the terminal shows papermill's bar over a notebook's cells, and a long cell (epochs, fits,
bootstrap rounds) would leave it at "4/9 cells" for minutes. Two halves close that gap:

Kernel side (:func:`start_reporter`)
    The runner starts the kernel with :data:`FILE_ENV` naming a side file and has the kernel call
    :func:`start_reporter` before the first cell (``IPKernelApp.exec_lines``, so nothing shows in the
    notebook). A daemon thread then appends, every :data:`INTERVAL_S` seconds, one line saying what runs: the
    cell and the state of every live tqdm bar of the kernel (the library's, SpeechBrain's), read from the bars
    themselves, so the line comes whatever the bars' own redraws (a bar over a loop counts its steps only
    when it redraws: the runner sets ``TQDM_MININTERVAL`` to a few seconds).
Runner side (:class:`ProgressEcho`)
    A thread of the runner follows the file and writes each new line to stderr with the stage and the elapsed
    time (``[fit_aligners@xvector-ecapa 5:32] cell 6: fit nessa-m3 x3: 45% 45/100 [...]``), above papermill's
    bar, and a line of its own when the kernel has said nothing for :data:`SILENT_S` seconds.

The executed notebook is the kernel's cell output only; the runner merges each cell's consecutive stream
outputs and keeps the last state of every carriage-return redraw (:func:`collapse_redraws`), so a bar leaves one
line in the page however often it was redrawn.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

#: Environment variable naming the side file the kernel appends its progress lines to (set by the runner).
FILE_ENV = "NESSA_PROGRESS_FILE"
#: Environment variable overriding :data:`INTERVAL_S` (seconds, for tests).
INTERVAL_ENV = "NESSA_PROGRESS_INTERVAL"
#: Seconds between two progress lines of the kernel.
INTERVAL_S = 20.0
#: Seconds without a line from the kernel after which the runner says that the stage still runs.
SILENT_S = 30.0

_KNOWN = "{percentage:.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
_UNKNOWN = "{n_fmt} [{elapsed}, {rate_fmt}{postfix}]"
_reporter: threading.Thread | None = None


def bar_states() -> list[str]:
    """One line per live tqdm bar of this process (disabled and closed bars have none), outermost first.

    Examples
    --------
    >>> import io
    >>> from tqdm import tqdm
    >>> bar = tqdm(range(10), desc="fit", file=io.StringIO()); _ = bar.update(4)
    >>> [s.split(" [")[0] for s in bar_states()]
    ['fit: 40% 4/10']
    >>> bar.close(); bar_states()
    []
    """
    from tqdm import tqdm

    try:
        bars = sorted(list(tqdm._instances), key=lambda b: abs(getattr(b, "pos", 0) or 0))
    except RuntimeError:  # the set changed while it was copied (a bar opened or closed meanwhile)
        return []
    states = []
    for bar in bars:
        if getattr(bar, "disable", False):
            continue
        try:
            d = dict(bar.format_dict)
            desc = d.get("prefix") or ""
            d.update(prefix="", bar_format=_KNOWN if d.get("total") else _UNKNOWN)
            states.append((f"{desc}: " if desc else "") + bar.format_meter(**d).strip())
        except Exception:  # noqa: BLE001 - a bar being torn down; the next report has it right
            continue
    return states


def report_line() -> str:
    """What this process runs now: the IPython cell (when in a kernel) and :func:`bar_states`, in one line.

    Examples
    --------
    >>> report_line().split(" | ")[0]  # outside IPython
    'running'
    """
    where = "running"
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            where = f"cell {shell.execution_count}"
    except ImportError:
        pass
    return " | ".join([where, *bar_states()])


def _report(path: Path, interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        line = (report_line().replace("\n", " ") + "\n").encode("utf-8")
        try:  # never created here: once the runner has removed the file, the run is over
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except OSError:
            return
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def start_reporter(path=None, interval_s: float | None = None) -> bool:
    """Start the thread that appends :func:`report_line` to ``path`` every ``interval_s`` seconds.

    Parameters
    ----------
    path : str or Path, optional
        The side file; default: the environment's :data:`FILE_ENV`. Without either nothing starts.
    interval_s : float, optional
        Default: the environment's :data:`INTERVAL_ENV`, else :data:`INTERVAL_S`.

    Returns
    -------
    bool
        Whether a reporter runs (one per process: a second call starts none).

    Examples
    --------
    >>> start_reporter(path=None) if FILE_ENV not in os.environ else False
    False
    """
    global _reporter
    path = path or os.environ.get(FILE_ENV)
    if not path:
        return False
    if _reporter is None:
        interval_s = float(interval_s or os.environ.get(INTERVAL_ENV) or INTERVAL_S)
        _reporter = threading.Thread(target=_report, args=(Path(path), interval_s), name="nessa-progress",
                                     daemon=True)
        _reporter.start()
    return True


def kernel_arguments() -> list[str]:
    """The kernel's command-line arguments that start :func:`start_reporter` before the notebook's first cell.

    Examples
    --------
    >>> kernel_arguments()
    ['--IPKernelApp.exec_lines=import nessa_lib.pipeline.progress as _p; _p.start_reporter(); del _p']
    """
    return ["--IPKernelApp.exec_lines=import nessa_lib.pipeline.progress as _p; _p.start_reporter(); del _p"]


def _clock(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``.

    >>> _clock(65), _clock(3725)
    ('1:05', '1:02:05')
    """
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressEcho:
    """Follow the side file ``path`` in a thread and echo each new line to ``stream`` (default stderr),
    prefixed with ``label`` and the time since the start; a ``with`` block runs it.

    Parameters
    ----------
    path : str or Path
        The side file (created empty here, removed at the end).
    label : str
        The stage run, e.g. ``fit_aligners@xvector-ecapa``.
    stream : file, optional
        Default ``sys.stderr``; lines go through ``tqdm.write`` so that a progress bar there is redrawn below.
    poll_s, silent_s : float
        How often the file is read; after how long without a line the echo says that the stage still runs.

    Examples
    --------
    >>> import io, tempfile
    >>> out = io.StringIO()
    >>> path = Path(tempfile.mkdtemp()) / "progress.txt"
    >>> with ProgressEcho(path, "evaluate", stream=out, poll_s=0.01):
    ...     _ = path.open("a").write("cell 3 | bootstrap: 40% 2/5\\n")
    ...     time.sleep(0.2)
    >>> out.getvalue()[:20]
    '[evaluate 0:00] cell'
    >>> path.exists()
    False
    """

    def __init__(self, path, label: str, *, stream=None, poll_s: float = 1.0, silent_s: float = SILENT_S):
        self.path, self.label, self.stream = Path(path), label, stream
        self.poll_s, self.silent_s = poll_s, silent_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="nessa-progress-echo", daemon=True)

    def __enter__(self) -> ProgressEcho:
        self.path.write_text("", encoding="utf-8")
        self.start = self.last = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)

    def _write(self, text: str) -> None:
        from tqdm import tqdm

        now = time.monotonic()
        self.last = now
        tqdm.write(f"[{self.label} {_clock(now - self.start)}] {text}", file=self.stream or sys.stderr)

    def _follow(self) -> None:
        offset, pending = 0, ""
        while not self._stop.wait(self.poll_s):
            try:
                with open(self.path, encoding="utf-8") as f:
                    f.seek(offset)
                    chunk = f.read()
                    offset = f.tell()
            except OSError:
                chunk = ""
            *lines, pending = (pending + chunk).split("\n")
            for line in filter(None, (ln.strip() for ln in lines)):
                self._write(line)
            if time.monotonic() - self.last >= self.silent_s:
                self._write("running (no progress report from the kernel)")


def last_states(text: str) -> str:
    """``text`` as a terminal leaves it: of a line redrawn after carriage returns, its last drawing; a line
    cleared that way (tqdm's ``leave=False`` bars) is gone.

    Examples
    --------
    >>> last_states("\\rfit: 10%\\rfit: 100%\\nnext\\n")
    'fit: 100%\\nnext\\n'
    >>> last_states("start\\n\\rfit: 50%\\r        \\rdone\\n\\rgone: 10%\\r         \\r")
    'start\\ndone\\n'
    """
    lines = text.split("\n")
    kept = []
    for i, line in enumerate(lines):
        if "\r" in line:
            drawn = [part for part in line.split("\r") if part]
            line = drawn[-1] if drawn else ""
            if not line.strip():
                if i < len(lines) - 1:
                    continue  # a cleared line, with its newline
                line = ""
        kept.append(line)
    return "\n".join(kept)


def collapse_redraws(nb) -> int:
    """Merge each cell's consecutive stream outputs of the same name and keep, of every line redrawn with
    carriage returns (tqdm's text bars), its last state. Changes ``nb`` in place; returns how many outputs were
    merged away or rewritten (0: ``nb`` is unchanged).

    Examples
    --------
    >>> import nbformat
    >>> out = [nbformat.v4.new_output("stream", name="stderr", text=t) for t in ("\\rfit: 10%", "\\rfit: 100%", "\\n")]
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=out)])
    >>> collapse_redraws(nb), nb.cells[0].outputs[0].text
    (3, 'fit: 100%\\n')
    """
    removed = 0
    for cell in nb.cells:
        outputs = cell.get("outputs") or []
        merged = []
        for out in outputs:
            last = merged[-1] if merged else None
            if (out.get("output_type") == "stream" and last is not None and last.get("output_type") == "stream"
                    and last.get("name") == out.get("name")):
                last["text"] += out["text"]
                removed += 1
            else:
                merged.append(out)
        for out in merged:
            if out.get("output_type") == "stream" and "\r" in out["text"]:
                out["text"] = last_states(out["text"])
                removed += 1
        if outputs:
            cell["outputs"] = merged
    return removed
