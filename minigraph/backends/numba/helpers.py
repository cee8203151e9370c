"""Small compiled helpers that generated kernels call (numba inlines them at link time).

They live in one module, compiled once per process and cached on disk, rather than being
repeated in every kernel's source (which would compile them again for each kernel).
"""
import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow: exp of a non-positive number only."""
    e = np.exp(-np.abs(x))
    return 1 / (1 + e) if x >= 0 else e / (1 + e)


@njit(cache=True, error_model="numpy")
def softplus(x):
    """log(1 + exp(x)) without overflow."""
    return x + np.log1p(np.exp(-x)) if x > 0 else np.log1p(np.exp(x))


@njit(cache=True, error_model="numpy")
def maximum(a, b):
    """numpy's maximum: NaN wins."""
    return a if (a >= b or a != a) else b


@njit(cache=True, error_model="numpy")
def minimum(a, b):
    """numpy's minimum: NaN wins."""
    return a if (a <= b or a != a) else b


@njit(cache=True, error_model="numpy")
def reuse(buf, shape):
    """The buffer from the previous call when its shape still fits, else a fresh array."""
    if buf.shape == shape:
        return buf
    return np.empty(shape, buf.dtype)


@njit(cache=True, error_model="numpy")
def copy_into(buf, x):
    """``x`` copied into the buffer (a fresh array when its shape no longer fits)."""
    out = reuse(buf, x.shape)
    out[...] = x
    return out


@njit(cache=True, error_model="numpy")
def check_shape(x, lengths):
    """``x``, once its shape is ``lengths`` (a tuple of int64): specify_shape in a compiled driver."""
    if x.shape != lengths:
        raise ValueError("specify_shape: the array's shape differs from the shape required")
    return x


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def tanh32(x):
    """tanh of a float32 with arithmetic only, so that loops calling it vectorize (libm's tanhf
    and exp are scalar calls): about 3x faster than through a float64 exp, and correctly
    rounded to float32 on every input the tests sweep (the float64 error is below 1e-10).
    Its multiply-adds may fuse ("contract": 20% faster, as accurate), and only its own: LLVM
    inlines it into a kernel's loop with its flags, where numba's inlining would give it the
    kernel's (whose float32 arithmetic must round as numpy's does).

    tanh(a) = p / (p + 2) with p = exp(2a) - 1; p comes from exp(2a / 64) - 1 (a Taylor series,
    |2a / 64| <= 0.285) squared six times as (1 + p)^2 - 1 = p * (2 + p), which keeps its
    relative accuracy for tiny a, where exp(2a) - 1 would cancel.
    """
    d = np.float64(x)
    a = abs(d)
    a = a if a < 9.1 else 9.1  # tanh(9.1) rounds to 1 in float32 (NaN goes on as 9.1: see below)
    r = a * (2.0 / 64.0)
    p = r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720 + r * (
        1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880)))))))))
    p = p * (2.0 + p)
    p = p * (2.0 + p)
    p = p * (2.0 + p)
    p = p * (2.0 + p)
    p = p * (2.0 + p)
    p = p * (2.0 + p)
    t = np.copysign(p / (p + 2.0), d)
    return t if d == d else d
