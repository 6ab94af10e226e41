"""Run one stage: its notebook source (jupytext percent format) executed by papermill, rendered to HTML.

This is the command of every ``dvc.yaml`` stage (``python -m nessa_lib.pipeline.run <stage> [<item>]``). The
notebook's ``parameters`` cell only selects the run (which encoder, which pair, which parameters file); the
notebook reads everything else from its section of ``params.yaml``. The executed copy lands in
``reports/<stage>[/<item>]/NN_<stage>.ipynb`` with an HTML rendering beside it, and papermill shows a progress
bar over the notebook's cells; ``log_output`` also streams the cells' output as it comes.

CPU kernels. The kernel starts with the environment of ``base.cpu_kernels`` (:mod:`nessa_lib.cpu_kernels`): by
default every library capped to its AVX2 code path, so that AVX2 and AVX-512 machines train the same encoders.
Torch reads it at import, which is why the runner, not the notebook, sets it.

Progress. Besides papermill's bar over cells, the runner echoes to stderr, every 20 s or so, what the kernel runs:
the cell and the state of its tqdm bars (``[train_encoder@ecapa 12:40] cell 5 | 40% 37/93 [...]``), through a
side file and not the notebook (:mod:`nessa_lib.pipeline.progress`). In the executed notebook each bar keeps its
last state only.

Interrupting. The kernel runs in its own session, so a Ctrl-C or SIGTERM sent to ``dvc repro``'s process group
(which DVC forwards to this runner) never reaches it or the worker processes it started. The runner therefore
handles SIGINT and SIGTERM itself: it stops its whole process tree (the kernel, its workers, their resource
tracker: SIGTERM, then SIGKILL after :data:`GRACE_S`), renders what was executed so far, and exits with status
128 + the signal number (130, 143). A second signal while it cleans up exits at once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from nessa_lib import cpu_kernels, paths
from nessa_lib.io import atomic_path
from nessa_lib.pipeline import layout
from nessa_lib.pipeline import progress as progress_lines
from nessa_lib.stages.schema import PARAMS_FILE, read_params_file

KERNEL = "python3"
KERNEL_LOG_LEVEL = "ERROR"  # the kernel process's own log (not cell output)
GRACE_S = 3.0  # seconds the kernel's processes get to exit on SIGTERM before SIGKILL
CLEANUP_S = 30.0  # after an interrupt, the runner exits by force if rendering the partial notebook hangs


class StageInterrupted(Exception):
    """The runner got SIGINT or SIGTERM; its process tree has been stopped."""

    def __init__(self, signum: int, stopped: list):
        self.signum, self.stopped = signum, stopped
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


def _on_signal(signum, frame) -> None:
    """Stop every process of the run, then unwind (so the partly executed notebook is still rendered)."""
    from nessa_lib.parallel import terminate_tree

    for sig in (signal.SIGINT, signal.SIGTERM):  # impatience: a second signal exits at once
        signal.signal(sig, lambda s, f: os._exit(128 + s))
    stopped = terminate_tree(grace_s=GRACE_S)
    # Whatever the unwinding runs into (a hung HTML rendering), the runner exits within CLEANUP_S.
    timer = threading.Timer(CLEANUP_S, os._exit, args=(128 + signum,))
    timer.daemon = True
    timer.start()
    raise StageInterrupted(signum, stopped)


# tqdm (``tqdm.auto`` in the library) inside a papermill kernel: the notebook flavour needs ipywidgets and, without
# it, warns (a red TqdmWarning box with the venv's path in every executed page) before falling back to text, which
# at tqdm's default 0.1 s interval sends hundreds of redraws. The kernel and the worker processes it starts
# inherit these: the warning ignored, the text bar redrawn at most every 5 s (tqdm reads TQDM_* variables as its
# defaults). A bar iterating a loop updates its count only when it redraws, and the kernel's progress lines
# (progress.py) read that count: 5 s keeps them current. Every redraw, also of bars that redraw on each step
# regardless (SpeechBrain's, through set_postfix), is collapsed to the bar's last state in the executed notebook
# (progress.collapse_redraws).
TQDM_MININTERVAL_S = 5


def kernel_environment(environ=None) -> dict[str, str]:
    """The variables the runner sets for the kernel (besides ``base.cpu_kernels``'s), given the current
    environment: quiet, sparse tqdm progress bars, and :data:`~nessa_lib.pipeline.layout.PIPELINE_ENV` (the
    notebook writes the tracked outputs, not :func:`~nessa_lib.pipeline.layout.scratch_root`).

    >>> env = kernel_environment({})
    >>> env["TQDM_MININTERVAL"], env["PYTHONWARNINGS"], env["NESSA_PIPELINE"]
    ('5', 'ignore:IProgress not found', '1')
    >>> kernel_environment({"PYTHONWARNINGS": "default"})["PYTHONWARNINGS"]
    'default,ignore:IProgress not found'
    """
    environ = os.environ if environ is None else environ
    warn = "ignore:IProgress not found"  # by message: -W cannot name tqdm's warning class before tqdm is imported
    current = environ.get("PYTHONWARNINGS", "")
    return {"TQDM_MININTERVAL": str(TQDM_MININTERVAL_S),
            "PYTHONWARNINGS": current if warn in current.split(",") else ",".join(filter(None, (current, warn))),
            layout.PIPELINE_ENV: "1"}


def read_notebook(path):
    """The jupytext percent-format source at ``path`` as an nbformat notebook (outputs empty)."""
    import jupytext

    nb = jupytext.read(Path(path), fmt="py:percent")
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": KERNEL}
    nb.metadata.setdefault("language_info", {"name": "python"})
    nb.metadata.pop("jupytext", None)
    return nb


def notebook_parameters(stage: str, item: str | None = None, params_file: str = PARAMS_FILE) -> dict:
    """The papermill parameters of a stage run: the item that selects it, and a non-default parameters file.

    Examples
    --------
    >>> notebook_parameters("fit_aligners", "nessa-m3")
    {'method': 'nessa-m3'}
    >>> notebook_parameters("evaluate", params_file="tiny.yaml")
    {'params_file': 'tiny.yaml'}
    """
    s = layout.stage(stage)
    if (s.item_param is None) != (item is None):
        need = f"an item ({s.item_param})" if s.item_param else "no item"
        raise ValueError(f"stage {stage!r} takes {need}, got {item!r}")
    out = {s.item_param: item} if s.item_param else {}
    if str(params_file) != PARAMS_FILE:
        out["params_file"] = str(params_file)
    return out


def collapse_redraws(ipynb: Path) -> int:
    """Rewrite the executed notebook ``ipynb`` with each tqdm bar's redraws collapsed to its last state
    (:func:`nessa_lib.pipeline.progress.collapse_redraws`); returns the stream outputs merged away or rewritten."""
    import nbformat

    nb = nbformat.read(ipynb, as_version=4)
    changed = progress_lines.collapse_redraws(nb)
    if changed:
        with atomic_path(ipynb) as tmp:
            nbformat.write(nb, str(tmp))
    return changed


#: nbconvert's lab page without the scripts it loads from a CDN (require.js, MathJax, mermaid): the executed
#: notebooks need none of them (no widgets, no LaTeX, no diagrams), and a report page must open offline.
_OFFLINE_TEMPLATE = ("{%- extends 'lab/index.html.j2' -%}\n"
                     "{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}\n"
                     "{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}\n"
                     "{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}\n")


def write_html(ipynb: Path) -> Path:
    """Render an executed notebook to a self-contained HTML page beside it (figures are embedded; no script is
    loaded from the network)."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(ipynb, as_version=4)
    exporter = HTMLExporter(template_name="lab", template_file="nessa_offline.html.j2",
                            extra_loaders=[jinja2.DictLoader({"nessa_offline.html.j2": _OFFLINE_TEMPLATE})])
    body, _ = exporter.from_notebook_node(nb)
    html = ipynb.with_suffix(".html")
    with atomic_path(html) as tmp:
        Path(tmp).write_text(body, encoding="utf-8")
    return html


def _import_html_exporter() -> None:
    """Import nbconvert's HTML exporter (about 1.5 s) while the kernel starts, so :func:`write_html` finds it
    loaded: the kernel's start-up keeps one core busy and leaves the other to this."""
    try:
        from nbconvert import HTMLExporter  # noqa: F401
    except Exception:  # noqa: BLE001 - write_html imports it again and reports the error there
        pass


def run_stage(stage: str, item: str | None = None, *, root=None, params_file: str = PARAMS_FILE,
              progress: bool = True, log_output: bool = False) -> Path:
    """Execute the notebook of ``stage`` (for ``item`` of a ``foreach`` stage) and render it to HTML.

    Parameters
    ----------
    stage : str
        A stage of :data:`nessa_lib.pipeline.layout.STAGES`.
    item : str, optional
        The encoder, model or method a ``foreach`` stage runs for.
    root : str or Path, optional
        Repository root (the folder with ``dvc.yaml``); the kernel runs there. Default: found from the
        working directory.
    params_file : str
        Parameters file, relative to ``root``.
    progress : bool
        Papermill's progress bar over cells, and the kernel's progress lines on stderr during long cells (the
        cell and the state of its tqdm bars, every :data:`~nessa_lib.pipeline.progress.INTERVAL_S` seconds:
        :mod:`nessa_lib.pipeline.progress`). Either way, each cell's tqdm redraws are collapsed to their last
        state in the executed notebook.
    log_output : bool
        Streaming of cell output to the log.

    Returns
    -------
    Path
        The executed notebook. A failing cell raises papermill's ``PapermillExecutionError`` after the
        partly executed notebook (with the error at the top) and its HTML have been written.
    """
    import papermill as pm

    root = Path(root).resolve() if root is not None else paths.repo_root()
    s = layout.stage(stage)
    parameters = notebook_parameters(stage, item, params_file)
    params = read_params_file(params_file, root)
    # Before the kernel starts: a missing section or key is named with the file, not found deep in a notebook cell.
    missing = [k for k in ("base", stage) if not isinstance(params.get(k), dict)]
    if missing:
        raise ValueError(f"{params_file}: no {' or '.join(repr(k) for k in missing)} section (stage {stage} reads "
                         f"it); `python -m nessa_lib.pipeline.validate` lists every problem")
    if "cpu_kernels" not in params["base"]:
        raise ValueError(f"{params_file}: base.cpu_kernels is missing (one of {list(cpu_kernels.SETTINGS)})")
    kernels = cpu_kernels.check_setting(params["base"]["cpu_kernels"])
    out = layout.report_dir(stage, item, root) / s.executed_name
    out.parent.mkdir(parents=True, exist_ok=True)
    nb = read_notebook(root / s.notebook)
    # Papermill's and the kernel's own chatter is not the user's business: the progress bar, the cells' output
    # (with log_output) and errors still show. The kernel's "running over TCP without encryption" notice is
    # its own log (a local kernel on loopback), silenced by its log level.
    for name in ("traitlets", "papermill", "jupyter_client", "nbclient"):
        logging.getLogger(name).setLevel(logging.INFO if log_output else logging.ERROR)
    start = time.perf_counter()
    warm = threading.Thread(target=_import_html_exporter, name="import-nbconvert", daemon=True)
    warm.start()
    label = f"{stage}{'@' + item if item else ''}"
    # The kernel's progress lines (progress.py): a side file it appends to and this process echoes to stderr.
    side_file = Path(tempfile.gettempdir()) / f"nessa-progress-{os.getpid()}.txt"
    variables = {**kernel_environment(), **({progress_lines.FILE_ENV: str(side_file)} if progress else {})}
    try:
        # the kernel (and the workers it starts) inherit the environment
        with cpu_kernels.applied(kernels), cpu_kernels.patched_environ(variables), \
                (progress_lines.ProgressEcho(side_file, label) if progress else contextlib.nullcontext()):
            pm.execute_notebook(nb, str(out), parameters=parameters, cwd=str(root), kernel_name=KERNEL,
                                progress_bar=progress and {"desc": label},
                                log_output=log_output, request_save_on_cell_execute=True,
                                extra_arguments=[f"--IPKernelApp.log_level={KERNEL_LOG_LEVEL}",
                                                 *(progress_lines.kernel_arguments() if progress else [])])
    finally:
        warm.join()
        if out.is_file():
            collapse_redraws(out)
            write_html(out)
    logging.getLogger(__name__).info("%s%s done in %.0f s", stage, f"@{item}" if item else "",
                                     time.perf_counter() - start)
    return out


def main(argv=None) -> int:
    """``python -m nessa_lib.pipeline.run STAGE [ITEM]``: what ``dvc repro`` runs for each stage."""
    parser = argparse.ArgumentParser(prog="python -m nessa_lib.pipeline.run",
                                     description="Execute a stage's notebook with papermill and render it to HTML.")
    parser.add_argument("stage", choices=list(layout.STAGES))
    parser.add_argument("item", nargs="?", help="the entry a foreach stage runs for (encoder, model or method)")
    parser.add_argument("--params-file", default=PARAMS_FILE, help="repo-relative parameters file")
    parser.add_argument("--log-output", action="store_true", help="stream the cells' output as they run")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar over cells, no progress lines from the kernel")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from papermill.exceptions import PapermillExecutionError

    label = f"{args.stage}{'@' + args.item if args.item else ''}"
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        run_stage(args.stage, args.item, params_file=args.params_file, progress=not args.no_progress,
                  log_output=args.log_output)
    except StageInterrupted as err:
        print(f"\nstage {label} {err}: stopped the notebook kernel and {max(len(err.stopped) - 1, 0)} process(es) "
              f"it started; the partly executed notebook is in reports/{args.stage}/", file=sys.stderr)
        return 128 + err.signum
    except PapermillExecutionError as err:
        print(f"\nstage {label} failed in cell {err.exec_count}: {err.ename}: {err.evalue}\n(the executed "
              f"notebook, with the error at the top, and its HTML are in reports/{args.stage}/)", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: stage {label}: {err}", file=sys.stderr)
        return 2
    finally:
        # Nothing of the run outlives it, whatever ended it: a kernel that left worker processes behind, say.
        from nessa_lib.parallel import terminate_tree

        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        terminate_tree(grace_s=GRACE_S)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
