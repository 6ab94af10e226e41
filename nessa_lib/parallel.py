"""Independent jobs in worker processes, one torch thread each.

Small torch models (the NESSA MLPs) use a second core poorly: a fit takes the same time with 1 or 2 threads on
the 2-core machine, so two fits side by side in two processes take half the wall time. Workers are started
with ``spawn`` (a forked torch with live OpenMP threads can deadlock) and run each job with one thread, so a
job gives the same result in any worker, in any order, or in the calling process.

No worker outlives its job list: an error or an interrupt (Ctrl-C, or the stage runner's SIGTERM turned into an
exception) terminates the pool's processes instead of waiting for their running jobs, and on Linux each worker
asks the kernel to send it SIGTERM when its parent dies, so even a parent killed with SIGKILL leaves no worker
busy writing files. :func:`terminate_tree` stops a whole process tree (the stage runner's notebook kernel and
everything it started).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when the process that started it dies (no-op elsewhere).

    Call it first thing in a worker process: a worker of a killed parent would otherwise run on, orphaned, still
    writing its results.

    Examples
    --------
    >>> die_with_parent()  # in a worker's entry point
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl (exotic libc): the parent's own clean-up still applies
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _init_worker() -> None:
    die_with_parent()
    import torch

    torch.set_num_threads(1)


def _alive(procs):
    import psutil

    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def terminate_tree(pid: int | None = None, *, grace_s: float = 3.0, include_root: bool = False) -> list[int]:
    """Stop every descendant of process ``pid`` (default: this process): SIGTERM, then SIGKILL after ``grace_s``.

    The tree is frozen first (SIGSTOP) so no process can start another while it is being collected, and the
    process groups of descendants that lead their own group (a Jupyter kernel runs in its own session) are
    signalled too, so a worker already orphaned by its parent is still reached. The caller's own process group
    is never signalled as a whole.

    Parameters
    ----------
    pid : int, optional
        Root of the tree; default the calling process.
    grace_s : float
        Seconds between SIGTERM and SIGKILL of the survivors (the multiprocessing resource tracker, for one,
        ignores SIGTERM).
    include_root : bool
        Also stop ``pid`` itself (never the calling process).

    Returns
    -------
    list of int
        The pids that were signalled.

    Examples
    --------
    >>> import subprocess, sys, psutil
    >>> p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    >>> terminate_tree(p.pid, include_root=True, grace_s=1) == [p.pid], psutil.pid_exists(p.pid)
    (True, False)
    """
    import psutil

    me = os.getpid()
    try:
        root = psutil.Process(me if pid is None else pid)
    except psutil.NoSuchProcess:
        return []
    own_group = os.getpgrp()
    found: dict[int, psutil.Process] = {}
    if include_root and root.pid != me:
        found[root.pid] = root
    groups: set[int] = set()
    # Freeze and collect until nothing new appears: a process started between two looks is caught by the next.
    for _ in range(20):
        try:
            kids = root.children(recursive=True)
        except psutil.NoSuchProcess:
            kids = []
        new = [k for k in kids if k.pid not in found and k.pid != me]
        for k in new:
            found[k.pid] = k
        for k in list(found.values()):
            try:
                g = os.getpgid(k.pid)
                if g != own_group and g == k.pid:
                    groups.add(g)
            except OSError:
                pass
            try:
                k.suspend()
            except psutil.Error:
                pass
        if not new:
            break
    procs = list(found.values())
    for g in groups:
        try:
            os.killpg(g, signal.SIGTERM)
        except OSError:
            pass
    for p in procs:
        try:
            p.terminate()
            p.resume()  # a stopped process acts on its SIGTERM only once continued
        except psutil.Error:
            pass
    for g in groups:
        try:
            os.killpg(g, signal.SIGCONT)
        except OSError:
            pass
    deadline = time.monotonic() + grace_s
    while _alive(procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    for g in groups:
        try:
            os.killpg(g, signal.SIGKILL)
        except OSError:
            pass
    for p in _alive(procs):
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)
    left = _alive(procs)
    if left:
        logger.warning("processes %s survived SIGKILL", [p.pid for p in left])
    return sorted(found)


def run_jobs(fn: Callable, jobs: Sequence[tuple], *, workers: int = 1, progress: str | None = None) -> list:
    """``[fn(*job) for job in jobs]``, in up to ``workers`` processes; results in job order.

    Parameters
    ----------
    fn : callable
        A module-level function (workers import it by name).
    jobs : sequence of tuple
        Positional arguments of each call (pickled to the worker).
    workers : int
        Processes; ``<= 1`` (or a single job) runs everything here, also with one torch thread (restored
        afterwards), so the results are the same whatever ``workers`` is.
    progress : str, optional
        Label of a tqdm bar over finished jobs.

    Examples
    --------
    >>> run_jobs(divmod, [(7, 2), (9, 4)])
    [(3, 1), (2, 1)]
    """
    from tqdm.auto import tqdm

    jobs = list(jobs)
    bar = tqdm(total=len(jobs), desc=progress, disable=progress is None, leave=False)
    workers = min(int(workers), len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        import torch

        threads, out = torch.get_num_threads(), []
        torch.set_num_threads(1)
        try:
            for job in jobs:
                out.append(fn(*job))
                bar.update()
        finally:
            torch.set_num_threads(threads)
            bar.close()
        return out
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results: list = [None] * len(jobs)
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker)
    try:
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        for f in as_completed(futures):
            results[futures[f]] = f.result()  # a failed job raises here, naming its own error
            bar.update()
    except BaseException:
        # An error or an interrupt: the other jobs' results are lost anyway, so stop their processes now rather
        # than wait for them (the pool's own shutdown would let every running job finish, and write).
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
        raise
    finally:
        bar.close()
    pool.shutdown(wait=True)
    return results
