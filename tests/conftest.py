"""Shared test settings: a test-local compile cache and the backend modes every test runs in."""
import importlib.util
import os

import numpy as np
import pytest
from hypothesis import settings

# The suite's property tests replay the same examples on every run, so that CI is
# repeatable; MINIGRAPH_HYPOTHESIS_PROFILE=explore searches new examples by hand.
settings.register_profile("repeatable", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("MINIGRAPH_HYPOTHESIS_PROFILE", "repeatable"))

os.environ.setdefault("MINIGRAPH_CACHE_DIR",
                      os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "minigraph"))


def _available_modes():
    modes = ["python"]
    if importlib.util.find_spec("minigraph.backends.numba") is not None:
        try:
            from minigraph.backends.numba import NumbaLinker  # noqa: F401

            modes.append("numba")
        except ImportError:
            pass
    return modes


MODES = _available_modes()


@pytest.fixture(params=MODES)
def mode(request):
    """Each test that takes ``mode`` runs once per backend (python reference, numba)."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
