"""Making tensor variables and constants, and the build-time error helper every op uses."""
from __future__ import annotations

import numbers

import numpy as np

from minigraph.config import config
from minigraph.graph.basic import Constant, Variable, format_trace, user_frame
from minigraph.graph.type import TensorType
from minigraph.tensor.variable import TensorConstant, TensorVariable


# --- errors ------------------------------------------------------------------------------

def describe(v) -> str:
    """``x: float32[?, 784]`` for error messages."""
    name = f"{v.name!r}: " if getattr(v, "name", None) else ""
    return f"{name}{v.type}" if isinstance(v, Variable) else repr(v)


def build_error(op, inputs, message: str, exc=ValueError) -> Exception:
    """An exception naming the op, its inputs' types and the user's line that built it."""
    shown = ", ".join(describe(v) for v in inputs)
    return exc(f"{op}: {message}\n  inputs: ({shown})\n  built at: {format_trace(user_frame())}")


# --- constructors ------------------------------------------------------------------------

def _dtype(dtype):
    return config.floatX if dtype is None else str(np.dtype(dtype))


def tensor(dtype=None, shape=None, name=None, ndim=None) -> TensorVariable:
    """A symbolic tensor; ``shape`` holds static lengths or None."""
    if shape is None:
        shape = (None,) * (ndim or 0)
    return TensorType(_dtype(dtype), tuple(shape)).make_variable(name)


def scalar(name=None, dtype=None):
    """A symbolic 0-d tensor (dtype floatX unless given)."""
    return tensor(dtype, (), name)


def vector(name=None, dtype=None, shape=(None,)):
    """A symbolic 1-d tensor."""
    return tensor(dtype, shape, name)


def matrix(name=None, dtype=None, shape=(None, None)):
    """A symbolic 2-d tensor."""
    return tensor(dtype, shape, name)


def tensor3(name=None, dtype=None, shape=(None,) * 3):
    """A symbolic 3-d tensor."""
    return tensor(dtype, shape, name)


def tensor4(name=None, dtype=None, shape=(None,) * 4):
    """A symbolic 4-d tensor."""
    return tensor(dtype, shape, name)


def _typed(maker, dtype):
    def make(name=None, shape=None):
        return maker(name, dtype) if shape is None else maker(name, dtype, shape)

    make.__name__ = f"{dtype}_{maker.__name__}"
    make.__doc__ = f"A symbolic {maker.__name__} of dtype {dtype}."
    return make


_PREFIXES = {"b": "int8", "w": "int16", "i": "int32", "l": "int64", "f": "float32", "d": "float64"}
for _p, _dt in _PREFIXES.items():
    for _maker in (scalar, vector, matrix, tensor3, tensor4):
        globals()[_p + _maker.__name__] = _typed(_maker, _dt)


# --- constants ---------------------------------------------------------------------------

def constant(value, name=None, dtype=None) -> TensorConstant:
    """A constant tensor.  Python floats become floatX, Python ints int64, unless ``dtype``."""
    if isinstance(value, Variable):
        raise TypeError(f"constant() takes a value, got the symbolic variable {value!r}")
    if dtype is None:
        if isinstance(value, bool):
            dtype = "bool"
        elif isinstance(value, numbers.Integral) and not isinstance(value, np.generic):
            dtype = "int64"
        elif isinstance(value, float) and not isinstance(value, np.generic):
            dtype = config.floatX  # a Python float; np.float64 (a float subclass) keeps its dtype
    arr = np.asarray(value) if dtype is None else _exact(value, dtype)
    if arr.dtype == object:
        raise TypeError(f"cannot make a tensor constant from {type(value).__name__} {value!r}")
    arr = np.array(arr, copy=True)
    arr.setflags(write=False)
    return TensorConstant(TensorType(str(arr.dtype), arr.shape), arr, name=name)


def _exact(value, dtype) -> np.ndarray:
    arr = np.asarray(value)
    out = arr.astype(dtype)
    if arr.dtype.kind in "iub" and out.dtype.kind in "iub" and not np.array_equal(out, arr):
        raise OverflowError(f"{value!r} does not fit in {dtype}")
    return out


def as_tensor_variable(x, name=None, ndim=None, dtype=None) -> Variable:
    """``x`` if it is already symbolic, else a constant holding it."""
    if isinstance(x, Variable):
        if not isinstance(x.type, TensorType):
            raise TypeError(f"expected a tensor, got {x!r} of type {x.type}")
        v = x
    elif isinstance(x, (list, tuple)) and any(isinstance(e, Variable) for e in x):
        from minigraph.tensor.shape_ops import stack

        v = stack([as_tensor_variable(e) for e in x])
    else:
        v = constant(x, name=name, dtype=dtype)
    if ndim is not None and v.ndim != ndim:
        raise TypeError(f"expected {ndim} dimensions, got {v!r} with {v.ndim}")
    return v


def is_weak_scalar(x) -> bool:
    """Python numbers take the dtype of the tensors they meet (``fmatrix * 0.5`` stays float32)."""
    return isinstance(x, (int, float, bool)) and not isinstance(x, np.generic)


def get_constant_value(v) -> np.ndarray | None:
    """The value of ``v`` if it is known at build time, else None.

    Looks through casts, static shapes (``x.shape[0]`` of a statically known length) and
    stacks of known scalars.
    """
    from minigraph.tensor import elemwise, shape_ops, subtensor

    if isinstance(v, Constant):
        return v.data
    node = v.owner
    if node is None:
        return None
    op = node.op
    if isinstance(op, shape_ops.Shape):
        s = node.inputs[0].type.shape
        return None if None in s else np.asarray(s, dtype="int64")
    if isinstance(op, shape_ops.ShapeI):
        s = node.inputs[0].type.shape[op.i]
        return None if s is None else np.asarray(s, dtype="int64")
    if isinstance(op, elemwise.Elemwise) and isinstance(op.scalar_op, elemwise.Cast):
        inner = get_constant_value(node.inputs[0])
        return None if inner is None else np.asarray(inner).astype(op.scalar_op.dtype)
    if isinstance(op, shape_ops.MakeVector):
        vals = [get_constant_value(i) for i in node.inputs]
        return None if any(x is None for x in vals) else np.asarray(vals, dtype=v.dtype)
    if isinstance(op, subtensor.Subtensor) and len(node.inputs) == 1:
        inner = get_constant_value(node.inputs[0])
        if inner is not None:
            return np.asarray(inner[op.index_for(())])
        src = node.inputs[0].owner
        if src is not None and isinstance(src.op, shape_ops.Shape) and len(op.idx) == 1 and isinstance(op.idx[0], int):
            s = src.inputs[0].type.shape[op.idx[0]]
            return None if s is None else np.asarray(s, dtype="int64")
    return None
