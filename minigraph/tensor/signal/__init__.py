"""``T.signal``: signal-processing ops; ``T.signal.pool.pool_2d`` for pooling."""
from minigraph.tensor.signal import pool  # noqa: F401

__all__ = ["pool"]
