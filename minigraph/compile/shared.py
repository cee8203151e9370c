"""Shared variables: values that live between calls of compiled functions (weights, running
statistics) and that ``updates`` change."""
from __future__ import annotations

import numpy as np

from minigraph.graph.basic import Variable
from minigraph.graph.type import TensorType, format_shape, lossless_cast
from minigraph.tensor.variable import _TensorMethods


class SharedVariable(Variable):
    """A graph input whose value is stored with the variable itself."""

    def __init__(self, type, value, name=None):
        super().__init__(type, name=name)
        self._value = value
        #: an update applied by every function that uses this variable, unless given explicitly
        self.default_update = None

    def clone(self):
        raise TypeError(f"shared variable {self.name!r} cannot be cloned; it is one value")


class TensorSharedVariable(_TensorMethods, SharedVariable):
    """A shared numpy array."""

    def get_value(self, borrow: bool = False) -> np.ndarray:
        """The current value (a copy unless ``borrow``)."""
        return self._value if borrow else self._value.copy()

    def set_value(self, value, borrow: bool = False) -> None:
        """Store a new value; its shape must fit the static shape and its dtype convert without loss."""
        arr = self.check_value(value)
        self._value = arr if (borrow and arr is value) else np.array(arr, copy=True)

    def check_value(self, value) -> np.ndarray:
        """``value`` as an array of this variable's dtype and static shape, or ValueError naming it."""
        label = f"shared variable {self.name!r}" if self.name else "shared variable"
        if isinstance(value, float) and not isinstance(value, np.generic) and np.dtype(self.type.dtype).kind == "f":
            arr = np.asarray(value, dtype=self.type.dtype)  # a Python float takes the variable's float dtype
        else:
            arr = np.asarray(value)
        if arr.dtype != self.type.dtype:
            try:
                arr = lossless_cast(arr, self.type.dtype, label)
            except TypeError as e:
                raise ValueError(str(e)) from None
        if arr.ndim != self.type.ndim or not self.type.shape_matches(arr.shape):
            raise ValueError(f"{label}: new value has shape {arr.shape}, which does not fit "
                             f"{format_shape(self.type.shape)} (create it with shape= to allow other lengths)")
        return arr

    @property
    def value(self) -> np.ndarray:
        """The current value (not a copy)."""
        return self._value


def shared(value, name=None, borrow=False, shape=None) -> TensorSharedVariable:
    """A shared variable holding ``value``; its static shape is the value's shape unless
    ``shape`` (with None for lengths that may change) says otherwise."""
    arr = np.asarray(value)
    if arr.dtype == object:
        raise TypeError(f"shared: cannot store {type(value).__name__}")
    if not (borrow and arr is value):
        arr = np.array(arr, copy=True)
    static = arr.shape if shape is None else tuple(shape)
    t = TensorType(str(arr.dtype), static)
    if not t.shape_matches(arr.shape):
        raise ValueError(f"shared {name!r}: value of shape {arr.shape} does not fit shape={tuple(shape)}")
    return TensorSharedVariable(t, arr, name=name)
