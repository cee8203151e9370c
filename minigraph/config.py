"""Global settings: ``mg.config.floatX`` is the dtype of float variables made without one."""
from __future__ import annotations

import os


class Config:
    """Settings read from the environment once; assign attributes to change them."""

    def __init__(self):
        self.floatX = os.environ.get("MINIGRAPH_FLOATX", "float32")
        self.cache_dir = os.environ.get("MINIGRAPH_CACHE_DIR", os.path.expanduser("~/.cache/minigraph"))

    def __setattr__(self, key, value):
        if key == "floatX" and value not in ("float32", "float64"):
            raise ValueError(f"config.floatX must be 'float32' or 'float64', got {value!r}")
        object.__setattr__(self, key, value)


config = Config()
