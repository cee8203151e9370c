"""Shared test settings: float64 reference checks and a test-local compile cache."""
import os

import numpy as np
import pytest

os.environ.setdefault("MINIGRAPH_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), ".cache", "minigraph"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
