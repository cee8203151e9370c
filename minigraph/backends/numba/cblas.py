"""numpy's own BLAS, called for the one routine numpy does not expose: gemm with its ``beta``
(``c = alpha * a @ b + beta * c`` in place), which updates a weight matrix in the product's
own pass (see ``rewriting/blas.py``).

numpy's wheels link OpenBLAS built as scipy-openblas, whose symbols carry a prefix and the
``64_`` suffix of 64-bit integers; they are looked up through numpy's extension module,
which links that library.  The same library computes ``np.dot``, with the same threads.
Where numpy is built against another BLAS, ``gemm`` returns False and the caller computes
``np.dot`` and the update itself.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_SYMBOLS = {"float32": ("scipy_cblas_sgemm64_", ctypes.c_float), "float64": ("scipy_cblas_dgemm64_", ctypes.c_double)}


@functools.cache
def _routine(dtype: str):
    """The cblas gemm of ``dtype`` in numpy's BLAS, or None."""
    if dtype not in _SYMBOLS:
        return None
    symbol, scalar = _SYMBOLS[dtype]
    try:
        from numpy._core import _multiarray_umath

        fn = getattr(ctypes.CDLL(_multiarray_umath.__file__), symbol)
    except (ImportError, OSError, AttributeError):
        return None
    flag, i64, ptr = ctypes.c_int, ctypes.c_int64, ctypes.c_void_p
    # (layout, transpose a, transpose b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    fn.argtypes = [flag, flag, flag, i64, i64, i64, scalar, ptr, i64, ptr, i64, scalar, ptr, i64]
    fn.restype = None
    return fn


def available(dtype: str) -> bool:
    """True when ``gemm`` can run for ``dtype`` (numpy's BLAS is scipy-openblas)."""
    return _routine(np.dtype(dtype).name) is not None


def _operand(a):
    """(transpose flag, leading dimension, array) of a matrix for a row-major call: a
    transposed view of a row-major array is read as it is; other layouts are copied."""
    if a.flags.c_contiguous:
        return _NO_TRANS, max(1, a.shape[1]), a
    if a.flags.f_contiguous:
        return _TRANS, max(1, a.shape[0]), a
    a = np.ascontiguousarray(a)
    return _NO_TRANS, max(1, a.shape[1]), a


def gemm(alpha, a, b, beta, c) -> bool:
    """``c = alpha * a @ b + beta * c`` in place, through numpy's BLAS; False (``c``
    untouched) when that BLAS cannot be called, ``c`` is not row-major or overlaps ``a`` or
    ``b``, or ``alpha`` or ``beta`` is 0 (BLAS then skips a term, NaNs in it included)."""
    dtype = c.dtype.name
    fn = _routine(dtype) if a.dtype == b.dtype == c.dtype else None
    if fn is None or not c.flags.c_contiguous or c.size == 0 or alpha == 0 or beta == 0:
        return False
    if np.may_share_memory(c, a) or np.may_share_memory(c, b):
        return False
    (m, k), n = a.shape, b.shape[1]
    ta, lda, a = _operand(a)
    tb, ldb, b = _operand(b)
    fn(_ROW_MAJOR, ta, tb, m, n, k, float(alpha), a.ctypes.data, lda, b.ctypes.data, ldb, float(beta),
       c.ctypes.data, max(1, n))
    return True
