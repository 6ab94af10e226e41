"""Issue 22: the progress of a long cell reaches the runner's terminal (stderr) through the kernel's side file,
while each tqdm bar leaves only its last state in the executed notebook; run by the pipeline, a notebook writes
the tracked outputs."""

import io
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from nessa_lib.pipeline import progress

ROOT = Path(__file__).resolve().parents[1]


def test_bar_states_reads_live_bars_whatever_their_redraw_interval():
    from tqdm import tqdm

    bar = tqdm(total=50, desc="bootstrap", file=io.StringIO(), mininterval=3600)
    try:
        bar.update(20)
        assert any(s.startswith("bootstrap: 40% 20/50") for s in progress.bar_states())
    finally:
        bar.close()
    assert not any(s.startswith("bootstrap") for s in progress.bar_states())


def test_collapse_redraws_keeps_the_last_state_and_the_order_of_outputs():
    out = [nbformat.v4.new_output("stream", name="stdout", text="start\n")]
    out += [nbformat.v4.new_output("stream", name="stderr", text=f"\r{i}%|") for i in range(100)]
    out += [nbformat.v4.new_output("stream", name="stderr", text="\n"),
            nbformat.v4.new_output("display_data", data={"text/plain": "figure"}),
            nbformat.v4.new_output("stream", name="stdout", text="end\n")]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=out)])
    progress.collapse_redraws(nb)
    kept = nb.cells[0].outputs
    assert [o.get("text") for o in kept] == ["start\n", "99%|\n", None, "end\n"]


def test_echo_prefixes_lines_and_speaks_up_when_the_kernel_is_silent(tmp_path):
    stream, path = io.StringIO(), tmp_path / "progress.txt"
    with progress.ProgressEcho(path, "fit_aligners@x-y", stream=stream, poll_s=0.02, silent_s=0.3):
        with path.open("a") as f:
            f.write("cell 4 | fit nessa-m3 x3: 10% 1/10\npartial")
        time.sleep(0.5)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[fit_aligners@x-y 0:00] cell 4 | fit nessa-m3 x3: 10% 1/10"
    assert any("no progress report" in ln for ln in lines[1:])
    assert not any("partial" in ln for ln in lines)  # an unfinished line waits for its end
    assert not path.exists()


# A stage whose one long cell redraws a bar on every step (as SpeechBrain's set_postfix does) and then sleeps
# without one; it also writes into its own output folder.
NOTEBOOK = textwrap.dedent('''\
    # %% [markdown]
    # # 01 · busy stage

    # %% tags=["parameters"]
    params_file = "params.yaml"  # parameters file

    # %%
    import time

    from tqdm.auto import tqdm

    from nessa_lib.pipeline import layout

    (layout.out_dir("prepare_data", write=True) / "done.txt").parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(range(400), desc="epoch 1")
    for i in bar:
        time.sleep(0.01)
        bar.set_postfix(train_loss=1.0 / (i + 1))
    time.sleep(3)
    (layout.out_dir("prepare_data", write=True) / "done.txt").write_text("ok")
    ''')


@pytest.mark.slow
def test_a_long_cell_reports_progress_on_stderr_not_in_the_notebook(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("base: {seed: 0, cpu_kernels: native}\nprepare_data: {}\n")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks/01_prepare_data.py").write_text(NOTEBOOK)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", progress.INTERVAL_ENV: "1"}
    env.pop("NESSA_PIPELINE", None)
    env.pop("NESSA_WRITE_OUTPUTS", None)
    res = subprocess.run([sys.executable, "-m", "nessa_lib.pipeline.run", "prepare_data"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    # The terminal: lines of the kernel with the stage, the elapsed time, the cell and the bar's state.
    lines = re.findall(r"^\[prepare_data \d+:\d\d\] (cell \d+.*)$", res.stderr, flags=re.M)
    assert any("epoch 1: " in ln and "train_loss=" in ln for ln in lines), res.stderr[-3000:]
    assert any(re.fullmatch(r"cell \d+", ln) for ln in lines), res.stderr[-3000:]  # the sleep: no bar
    # The notebook: the bar's last state only, although it was redrawn on each of its 400 steps.
    nb = nbformat.read(tmp_path / "reports/prepare_data/01_prepare_data.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert text.count("epoch 1") == 1 and "\r" not in text, json.dumps(text[:2000])
    assert "400/400" in text
    assert (tmp_path / "reports/prepare_data/01_prepare_data.html").is_file()
    # Run by the pipeline: the tracked folder, not scratch/.
    assert (tmp_path / "data/prepare_data/done.txt").read_text() == "ok"
    assert not (tmp_path / "scratch").exists()
