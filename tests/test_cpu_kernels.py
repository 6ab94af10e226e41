"""``base.cpu_kernels``: the pipeline's runner starts every notebook kernel with the CPU-kernel setting (issue 20).

Whether the setting makes training bit-identical across AVX2 and AVX-512 machines is tests/test_isa_repro.py's
question; these tests check that the pipeline applies it, and only for the processes it starts.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from nessa_lib import cpu_kernels
from nessa_lib.pipeline import params, run

ROOT = Path(__file__).resolve().parents[1]
NATIVE = torch.backends.cpu.get_cpu_capability()


def _capability(env: dict) -> str:
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(not NATIVE.startswith("AVX"), reason="not an x86 CPU with AVX2: nothing to cap")
def test_a_process_started_with_the_avx2_setting_runs_avx2_kernels():
    assert _capability(cpu_kernels.environment("avx2")) == "AVX2"
    native = {k: v for k, v in os.environ.items() if k not in cpu_kernels.SETTINGS["avx2"]}
    assert _capability(cpu_kernels.environment("native", native)) == NATIVE


@pytest.mark.skipif(NATIVE != "AVX512", reason="only an AVX-512 machine runs other kernels than the setting's")
def test_mismatch_names_the_setting_this_process_lacks():
    # pytest itself was not started with the setting (the Makefile does not export it: params.yaml is its home)
    if os.environ.get("ATEN_CPU_CAPABILITY"):
        pytest.skip("this pytest process was started with ATEN_CPU_CAPABILITY set")
    msg = cpu_kernels.mismatch("avx2")
    assert "base.cpu_kernels is 'avx2'" in msg and "AVX512" in msg and "ATEN_CPU_CAPABILITY=avx2" in msg
    assert cpu_kernels.mismatch("native") is None


@pytest.mark.parametrize("setting, expected", [("avx2", "avx2"), ("native", None)])
def test_the_runner_starts_the_kernel_with_params_setting(tmp_path, monkeypatch, setting, expected):
    """The kernel (started inside papermill's execute_notebook) sees the setting of base.cpu_kernels, and the
    runner's own environment is restored afterwards."""
    import papermill

    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks/05_evaluate.py", tmp_path / "notebooks")
    shutil.copy(ROOT / "dvc.yaml", tmp_path)
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["base"]["cpu_kernels"] = setting
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    seen = {}
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda *a, **k: seen.update(aten=os.environ.get("ATEN_CPU_CAPABILITY"),
                                                    onednn=os.environ.get("ONEDNN_MAX_CPU_ISA")))
    run.run_stage("evaluate", root=tmp_path, progress=False)
    assert seen["aten"] == expected
    assert seen["onednn"] == (expected and "AVX2")
    assert "ATEN_CPU_CAPABILITY" not in os.environ


def test_an_unknown_setting_is_refused_naming_the_key():
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["base"]["cpu_kernels"] = "avx512"
    assert params.problems(data) == ["params.yaml: base.cpu_kernels must be one of ['avx2', 'native'], got 'avx512'"]
    del data["base"]["cpu_kernels"]
    assert "base must be a mapping with exactly the keys ['seed', 'cpu_kernels']" in params.problems(data)[0]
