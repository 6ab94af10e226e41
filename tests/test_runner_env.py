"""The kernel environment the runner sets (nessa_lib.pipeline.run.kernel_environment): a process started with it
shows no TqdmWarning and draws tqdm bars at most every run.TQDM_MININTERVAL_S seconds (tqdm reads TQDM_* variables
as defaults)."""

import os
import subprocess
import sys

from nessa_lib.pipeline import run

CHILD = """
import io, warnings
from tqdm import TqdmWarning
from tqdm.auto import tqdm
from tqdm.notebook import WARN_NOIPYW
warnings.warn(WARN_NOIPYW, TqdmWarning)  # what tqdm.auto says in a kernel without ipywidgets
print(tqdm(range(3), file=io.StringIO()).mininterval)
"""


def test_child_process_is_quiet_and_sparse():
    env = {**os.environ, **run.kernel_environment()}
    res = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "TqdmWarning" not in res.stderr and "IProgress" not in res.stderr
    assert float(res.stdout.strip()) == run.TQDM_MININTERVAL_S


def test_environment_is_restored():
    before = dict(os.environ)
    with run.cpu_kernels.patched_environ(run.kernel_environment()):
        assert os.environ["TQDM_MININTERVAL"] == str(run.TQDM_MININTERVAL_S)
    assert dict(os.environ) == before


def test_executed_notebook_page_loads_nothing_from_the_network(tmp_path):
    """nbconvert's lab page loads require.js and MathJax from a CDN; the study's pages must open offline."""
    import re

    import nbformat

    from nessa_lib.pipeline.run import write_html

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"),
                                         nbformat.v4.new_code_cell("1 + 1", outputs=[nbformat.v4.new_output(
                                             "execute_result", {"text/plain": "2"}, execution_count=1)])])
    nbformat.write(nb, tmp_path / "n.ipynb")
    page = write_html(tmp_path / "n.ipynb").read_text()
    assert "Title" in page
    assert not re.findall(r'<script[^>]+src="https?://', page)
    assert "cdnjs" not in page and "MathJax.Hub" not in page
