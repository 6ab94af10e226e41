"""Shared fixtures. Tests run single-threaded (OMP_NUM_THREADS=1 is set by the Makefile and CI)."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh, fixed-seed generator per test so tests never depend on each other's draws."""
    return np.random.default_rng(0)
