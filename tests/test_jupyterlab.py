"""Interactive exploration: the project's JupyterLab opens the stage notebooks (notebooks/*.py, jupytext percent
format) as notebooks, not in a text editor (`make venv` writes the venv's JupyterLab settings overrides)."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
                    reason="not the project's venv (made by `make venv`)")
def test_jupyterlab_opens_python_files_as_jupytext_notebooks(tmp_path):
    from jupyterlab.commands import get_app_dir
    from jupyterlab_server.settings_utils import get_settings

    app = get_app_dir()
    # What JupyterLab's server hands the document manager for a user with no settings of their own.
    settings, _ = get_settings(os.path.join(app, "settings"), os.path.join(app, "schemas"), str(tmp_path),
                               schema_name="@jupyterlab/docmanager-extension:plugin")
    assert settings["schema"]["properties"]["defaultViewers"]["default"].get("python") == "Jupytext Notebook"
