"""Issue 24, clean interruption: a SIGINT or SIGTERM to the stage runner (what `dvc repro` forwards on Ctrl-C)
stops the notebook kernel and every process it started, and the runner exits non-zero; worker pools of
nessa_lib.parallel never outlive their parent."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# A stage notebook that starts what the real stages start (a run_jobs pool of spawn workers, a daemon process
# like the corpus synthesiser's) and then stays busy.
NOTEBOOK = textwrap.dedent('''\
    # %% [markdown]
    # # 01 · busy stage

    # %% tags=["parameters"]
    params_file = "params.yaml"  # parameters file

    # %%
    import multiprocessing as mp
    import time

    from nessa_lib.parallel import run_jobs

    mp.get_context("spawn").Process(target=time.sleep, args=(300,), daemon=True).start()
    run_jobs(time.sleep, [(300,)] * 4, workers=2)
    ''')


def _tree(pid):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _wait_for_tree(pid, n, timeout=180):
    """The descendants of ``pid`` once there are at least ``n`` and their number has settled."""
    deadline, last, since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        kids = _tree(pid)
        if len(kids) != last:
            last, since = len(kids), time.monotonic()
        elif len(kids) >= n and time.monotonic() - since > 2:
            return kids
        time.sleep(0.2)
    raise AssertionError(f"process {pid} has {last} descendant(s) after {timeout} s, expected >= {n}")


def _survivors(procs, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for p in procs:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return [(p.pid, p.name()) for p in alive]
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_runner_stops_the_kernel_and_its_workers(tmp_path, sig):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    # The runner refuses a params file without the stage's section.
    (tmp_path / "params.yaml").write_text("base: {seed: 0, cpu_kernels: avx2}\nprepare_data: {}\n")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks/01_prepare_data.py").write_text(NOTEBOOK)
    runner = subprocess.Popen([sys.executable, "-m", "nessa_lib.pipeline.run", "prepare_data", "--no-progress"],
                              cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # kernel + daemon process + 2 pool workers (+ the resource tracker)
        procs = _wait_for_tree(runner.pid, 4 if (os.cpu_count() or 1) >= 2 else 2)
        assert any(p.pid != runner.pid and os.getpgid(p.pid) != os.getpgid(runner.pid) for p in procs), (
            "the kernel is expected in a session of its own (what makes a group kill miss it)")
        runner.send_signal(sig)
        _, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert _survivors(procs) == [], err[-2000:]
    assert runner.returncode == 128 + sig, err[-2000:]
    assert f"interrupted by {signal.Signals(sig).name}" in err
    assert (tmp_path / "reports/prepare_data/01_prepare_data.ipynb").is_file()  # what ran is kept


POOL = textwrap.dedent('''\
    import signal, time
    # As in a terminal: a job started in the background by a non-interactive shell inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from nessa_lib.parallel import run_jobs
    run_jobs(time.sleep, [(300,)] * 4, workers=2)
    ''')


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="run_jobs starts no pool on one core")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_run_jobs_workers_do_not_outlive_their_parent(sig):
    """Ctrl-C in the parent terminates the pool instead of waiting for the running jobs; a parent killed
    outright takes its workers with it (Linux's parent-death signal)."""
    parent = subprocess.Popen([sys.executable, "-c", POOL], env=ENV, stderr=subprocess.PIPE, text=True)
    try:
        # The resource tracker and both workers: with fewer, the signal can land while the pool is still being
        # built (under load this took longer than the 30 s below to unwind).
        procs = _wait_for_tree(parent.pid, 3, timeout=120)
        time.sleep(1.0)  # the jobs submitted and running
        parent.send_signal(sig)
        parent.communicate(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode != 0
    if sig == signal.SIGKILL and not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux-only")
    assert _survivors(procs) == []
