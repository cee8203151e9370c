"""Tensor variables: Python operators, ``.shape``, ``.T``, reductions and indexing as methods."""
from __future__ import annotations

import numpy as np

from minigraph.graph.basic import Constant, Variable


class _TensorMethods:
    """Operators and methods shared by every tensor variable (symbolic, constant or shared)."""

    type: object

    # -- facts ---------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self.type.ndim

    @property
    def dtype(self) -> str:
        """The dtype, as a string."""
        return self.type.dtype

    @property
    def broadcastable(self) -> tuple[bool, ...]:
        """Per axis: is its static length 1."""
        return self.type.broadcastable

    @property
    def shape(self):
        """The symbolic shape (an int64 vector; ``x.shape[i]`` is a scalar)."""
        from minigraph.tensor.shape_ops import shape

        return shape(self)

    @property
    def size(self):
        """The symbolic number of elements."""
        from minigraph.tensor.math import prod

        return prod(self.shape)

    @property
    def T(self):
        """The transpose (axes reversed)."""
        return self.transpose()

    def __len__(self):
        raise TypeError("len() of a symbolic tensor is not known; use x.shape[0]")

    def __bool__(self):
        raise TypeError("a symbolic tensor has no truth value; use T.switch or T.eq")

    def __iter__(self):
        raise TypeError("a symbolic tensor cannot be iterated")

    # -- arithmetic ----------------------------------------------------------------------
    def __add__(self, other):
        return _m().add(self, other)

    def __radd__(self, other):
        return _m().add(other, self)

    def __sub__(self, other):
        return _m().sub(self, other)

    def __rsub__(self, other):
        return _m().sub(other, self)

    def __mul__(self, other):
        return _m().mul(self, other)

    def __rmul__(self, other):
        return _m().mul(other, self)

    def __truediv__(self, other):
        return _m().true_div(self, other)

    def __rtruediv__(self, other):
        return _m().true_div(other, self)

    def __floordiv__(self, other):
        return _m().int_div(self, other)

    def __rfloordiv__(self, other):
        return _m().int_div(other, self)

    def __mod__(self, other):
        return _m().mod(self, other)

    def __pow__(self, other):
        return _m().pow(self, other)

    def __rpow__(self, other):
        return _m().pow(other, self)

    def __neg__(self):
        return _m().neg(self)

    def __abs__(self):
        return _m().abs(self)

    def __lt__(self, other):
        return _m().lt(self, other)

    def __le__(self, other):
        return _m().le(self, other)

    def __gt__(self, other):
        return _m().gt(self, other)

    def __ge__(self, other):
        return _m().ge(self, other)

    def __and__(self, other):
        return _m().and_(self, other)

    def __or__(self, other):
        return _m().or_(self, other)

    def __invert__(self):
        return _m().invert(self)

    def __matmul__(self, other):
        return _m().dot(self, other)

    def __rmatmul__(self, other):
        return _m().dot(other, self)

    # -- shape ---------------------------------------------------------------------------
    def reshape(self, *shape, ndim=None):
        """``x`` with a new shape (ints, symbolic scalars or a vector; -1 allowed)."""
        from minigraph.tensor.shape_ops import reshape

        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = shape[0]
        return reshape(self, shape, ndim=ndim)

    def dimshuffle(self, *pattern):
        """Reorder axes; ``'x'`` inserts a length-1 axis."""
        from minigraph.tensor.shape_ops import dimshuffle

        if len(pattern) == 1 and isinstance(pattern[0], (list, tuple)):
            pattern = pattern[0]
        return dimshuffle(self, pattern)

    def transpose(self, *axes):
        """Permute the axes (reverse them by default)."""
        from minigraph.tensor.shape_ops import transpose

        if len(axes) == 1 and isinstance(axes[0], (list, tuple)):
            axes = axes[0]
        return transpose(self, axes or None)

    def flatten(self, ndim=1):
        """Collapse the trailing axes so that ``ndim`` remain."""
        from minigraph.tensor.shape_ops import flatten

        return flatten(self, ndim)

    def repeat(self, repeats, axis=None):
        """numpy's ``repeat`` (axis None repeats the flattened tensor)."""
        from minigraph.tensor.shape_ops import repeat

        return repeat(self, repeats, axis)

    def astype(self, dtype):
        """``x`` converted to ``dtype``."""
        return _m().cast(self, dtype)

    # -- reductions ----------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False, dtype=None):
        """Sum over ``axis``."""
        return _m().sum(self, axis=axis, keepdims=keepdims, dtype=dtype)

    def prod(self, axis=None, keepdims=False):
        """Product over ``axis``."""
        return _m().prod(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        """Mean over ``axis``."""
        return _m().mean(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        """Variance over ``axis`` (``ddof`` as numpy's)."""
        return _m().var(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def std(self, axis=None, keepdims=False, ddof=0):
        """Standard deviation over ``axis``."""
        return _m().std(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def max(self, axis=None, keepdims=False):
        """Largest value over ``axis``."""
        return _m().max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        """Smallest value over ``axis``."""
        return _m().min(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None, keepdims=False):
        """Index of the largest value along ``axis``."""
        return _m().argmax(self, axis=axis, keepdims=keepdims)

    def argmin(self, axis=None, keepdims=False):
        """Index of the smallest value along ``axis``."""
        return _m().argmin(self, axis=axis, keepdims=keepdims)

    def dot(self, other):
        """Matrix product with ``other``."""
        return _m().dot(self, other)

    def clip(self, a_min, a_max):
        """Values limited to ``[a_min, a_max]``."""
        return _m().clip(self, a_min, a_max)

    # -- indexing ------------------------------------------------------------------------
    def __getitem__(self, index):
        from minigraph.tensor.subtensor import getitem

        return getitem(self, index)


def _m():
    from minigraph.tensor import math

    return math


class TensorVariable(_TensorMethods, Variable):
    """A symbolic tensor."""


class TensorConstant(_TensorMethods, Constant):
    """A tensor whose value is known when the graph is built."""

    @property
    def value(self) -> np.ndarray:
        """The constant's value (read-only)."""
        return self.data
