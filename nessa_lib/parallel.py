"""Independent jobs in worker processes, one torch thread each.

Small torch models (the NESSA MLPs) use a second core poorly: a fit takes the same time with 1 or 2 threads on
the 2-core machine, so two fits side by side in two processes take half the wall time. Workers are started
with ``spawn`` (a forked torch with live OpenMP threads can deadlock) and run each job with one thread, so a
job gives the same result in any worker, in any order, or in the calling process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


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
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker) as pool:
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        for f in as_completed(futures):
            results[futures[f]] = f.result()  # a failed job raises here, naming its own error
            bar.update()
    bar.close()
    return results
