"""Types of graph variables: a tensor type is a dtype plus a static shape."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

Shape = tuple  # tuple[int | None, ...]


def format_shape(shape: Shape) -> str:
    """``(None, 784)`` -> ``[?, 784]``."""
    return "[" + ", ".join("?" if s is None else str(s) for s in shape) + "]"


@functools.lru_cache(maxsize=256)
def _dtype_name(dtype) -> str:
    """numpy's name of ``dtype`` (a name, a dtype or a scalar type): a type is made for every node."""
    return str(np.dtype(dtype))


@dataclass(frozen=True)
class TensorType:
    """An n-dimensional array type: dtype and static shape (None: known only at run time)."""

    dtype: str
    shape: Shape

    def __post_init__(self):
        object.__setattr__(self, "dtype", _dtype_name(self.dtype))
        shape = tuple(None if s is None else int(s) for s in self.shape)
        if any(s is not None and s < 0 for s in shape):
            raise ValueError(f"negative static length in shape {shape}")
        object.__setattr__(self, "shape", shape)

    @functools.cached_property
    def np_dtype(self) -> np.dtype:
        """The numpy dtype object."""
        return np.dtype(self.dtype)

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def broadcastable(self) -> tuple[bool, ...]:
        """Per axis: is its static length 1 (Theano's broadcastable pattern)."""
        return tuple(s == 1 for s in self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}{format_shape(self.shape)}"

    def __repr__(self) -> str:
        return f"TensorType({self.dtype}, {self.shape})"

    def make_variable(self, name: str | None = None):
        """A fresh variable of this type."""
        from minigraph.tensor.variable import TensorVariable

        return TensorVariable(self, name=name)

    __call__ = make_variable

    def accepts(self, other: "TensorType") -> bool:
        """True when every value of ``other`` is a value of this type."""
        return (
            isinstance(other, TensorType)
            and other.dtype == self.dtype
            and other.ndim == self.ndim
            and all(s is None or s == o for s, o in zip(self.shape, other.shape))
        )

    def shape_matches(self, shape: tuple[int, ...]) -> bool:
        """True when a run-time ``shape`` fits the static shape."""
        return len(shape) == self.ndim and all(s is None or s == v for s, v in zip(self.shape, shape))

    def filter(self, value, name: str = "value") -> np.ndarray:
        """Convert ``value`` to this type without loss, or raise TypeError naming ``name``."""
        if type(value) is np.ndarray and value.dtype is self.np_dtype and self.shape_matches(value.shape):
            return value  # the common case first
        if isinstance(value, float) and not isinstance(value, np.generic) and np.dtype(self.dtype).kind == "f":
            # a Python float takes the tensor's float dtype, as in arithmetic (f(x, 0.3) for an fscalar)
            arr = np.asarray(value, dtype=self.dtype)
        else:
            arr = value if isinstance(value, np.ndarray) else np.asarray(value)
        if arr.dtype != self.dtype:
            arr = lossless_cast(arr, self.dtype, name)
        if arr.ndim != self.ndim:
            raise TypeError(f"{name}: expected {self.ndim} dimensions ({self}), got an array of shape {arr.shape}")
        if not self.shape_matches(arr.shape):
            raise ValueError(f"{name}: shape {arr.shape} does not match the static shape {format_shape(self.shape)}")
        return arr


def lossless_cast(arr: np.ndarray, dtype: str, name: str) -> np.ndarray:
    """Cast ``arr`` to ``dtype`` if numpy calls it safe or if no value changes; else TypeError."""
    if np.can_cast(arr.dtype, dtype, "safe"):
        return arr.astype(dtype)
    if arr.dtype.kind in "biuf" and np.dtype(dtype).kind in "biuf":
        with np.errstate(all="ignore"):
            out = arr.astype(dtype)
            same = np.array_equal(out.astype(arr.dtype), arr, equal_nan=arr.dtype.kind == "f")
        if same:
            return out
    raise TypeError(f"{name}: cannot convert {arr.dtype} to {dtype} without loss "
                    f"(cast it explicitly, e.g. value.astype('{dtype}'))")
