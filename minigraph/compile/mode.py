"""Modes name backends: "python" (reference interpreter), "numba" (compiled loops) and
"debug" (both, compared node by node)."""
from __future__ import annotations

import os

#: the mode used when ``mg.function`` is given none
DEFAULT_MODE = os.environ.get("MINIGRAPH_MODE", "numba")

MODES = ("python", "numba", "debug")


def get_linker(mode: str):
    """The backend for ``mode``: a callable ``(fgraph, profile, nan_guard) -> thunk``."""
    if mode == "python":
        from minigraph.backends.python import PythonLinker

        return PythonLinker
    if mode == "numba":
        from minigraph.backends.numba import NumbaLinker

        return NumbaLinker
    if mode == "debug":
        from minigraph.backends.debug import DebugLinker

        return DebugLinker
    raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
