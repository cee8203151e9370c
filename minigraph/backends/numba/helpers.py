"""Small compiled helpers that generated kernels call (numba inlines them at link time).

They live in one module, compiled once per process and cached on disk, rather than being
repeated in every kernel's source (which would compile them again for each kernel).
"""
import numpy as np
from numba import njit


@njit(cache=True)
def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow: exp of a non-positive number only."""
    e = np.exp(-np.abs(x))
    return 1 / (1 + e) if x >= 0 else e / (1 + e)


@njit(cache=True)
def softplus(x):
    """log(1 + exp(x)) without overflow."""
    return x + np.log1p(np.exp(-x)) if x > 0 else np.log1p(np.exp(x))


@njit(cache=True)
def maximum(a, b):
    """numpy's maximum: NaN wins."""
    return a if (a >= b or a != a) else b


@njit(cache=True)
def minimum(a, b):
    """numpy's minimum: NaN wins."""
    return a if (a <= b or a != a) else b


@njit(cache=True)
def reuse(buf, shape):
    """The buffer from the previous call when its shape still fits, else a fresh array."""
    if buf.shape == shape:
        return buf
    return np.empty(shape, buf.dtype)


@njit(cache=True)
def tanh32(x):
    """tanh of a float32, through one float64 exp: about 4x faster than libm's tanhf and as
    accurate after rounding to float32 (a two-term series where exp(2x) - 1 would cancel)."""
    d = np.float64(x)
    if d > 20.0:  # tanh(20) rounds to 1 even in float64; also keeps exp finite
        return 1.0
    if abs(d) < 1e-4:
        return d - d * d * d / 3.0
    e = np.exp(2.0 * d)
    return (e - 1.0) / (e + 1.0)
