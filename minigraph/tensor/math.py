"""Tensor math: elementwise functions, reductions and matrix products."""
from __future__ import annotations

import builtins

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from minigraph.graph.basic import Apply, Op, Variable
from minigraph.graph.type import TensorType
from minigraph.tensor import elemwise as E
from minigraph.tensor.basic import as_tensor_variable, build_error, constant, is_weak_scalar


# --- elementwise -------------------------------------------------------------------------

def apply_elemwise(scalar_op, *args):
    """Apply ``scalar_op`` elementwise.  Python numbers adopt the dtype of the tensors they
    meet, as numpy does for Python scalars (``fmatrix * 0.5`` stays float32)."""
    strong = [a if isinstance(a, Variable) else as_tensor_variable(a) for a in args if not is_weak_scalar(a)]
    if strong:
        dtypes = [np.dtype(v.dtype) for v in strong]
        args = [constant(a, dtype=np.result_type(*dtypes, a)) if is_weak_scalar(a) else a for a in args]
    return E.Elemwise(scalar_op)(*args)


def _unary(cls, doc):
    op = cls()

    def f(x):
        return apply_elemwise(op, x)

    f.__name__, f.__doc__ = cls.__name__.lower(), doc
    return f


def _binary(cls, doc):
    op = cls()

    def f(x, y):
        return apply_elemwise(op, x, y)

    f.__name__, f.__doc__ = cls.__name__.lower(), doc
    return f


def add(*xs):
    """Elementwise sum of any number of tensors."""
    return apply_elemwise(E.Add(), *xs)


def mul(*xs):
    """Elementwise product of any number of tensors."""
    return apply_elemwise(E.Mul(), *xs)


sub = _binary(E.Sub, "x - y")
true_div = _binary(E.TrueDiv, "x / y")
int_div = _binary(E.IntDiv, "x // y")
mod = _binary(E.Mod, "x % y")
pow = _binary(E.Pow, "x ** y")
maximum = _binary(E.Maximum, "Elementwise maximum.")
minimum = _binary(E.Minimum, "Elementwise minimum.")
lt = _binary(E.LT, "x < y")
gt = _binary(E.GT, "x > y")
le = _binary(E.LE, "x <= y")
ge = _binary(E.GE, "x >= y")
eq = _binary(E.EQ, "x == y, elementwise.")
neq = _binary(E.NEQ, "x != y, elementwise.")
and_ = _binary(E.And, "Logical and.")
or_ = _binary(E.Or, "Logical or.")
invert = _unary(E.Invert, "Logical not.")
neg = _unary(E.Neg, "-x")
abs = _unary(E.Abs, "|x|")
sgn = _unary(E.Sgn, "Sign of x: -1, 0 or 1.")
floor = _unary(E.Floor, "Round down.")
ceil = _unary(E.Ceil, "Round up.")
exp = _unary(E.Exp, "e ** x")
expm1 = _unary(E.Expm1, "e ** x - 1, accurate near 0.")
log = _unary(E.Log, "Natural logarithm.")
log1p = _unary(E.Log1p, "log(1 + x), accurate near 0.")
sqrt = _unary(E.Sqrt, "Square root.")
sqr = _unary(E.Sqr, "x * x")
tanh = _unary(E.Tanh, "Hyperbolic tangent.")
sin = _unary(E.Sin, "Sine.")
cos = _unary(E.Cos, "Cosine.")
sigmoid = _unary(E.Sigmoid, "1 / (1 + exp(-x)), stable for large |x|.")
softplus = _unary(E.Softplus, "log(1 + exp(x)), stable for large |x|.")
div = true_div
divide = true_div
square = sqr


def clip(x, a_min, a_max):
    """Limit the values of ``x`` to ``[a_min, a_max]``."""
    return apply_elemwise(E.Clip(), x, a_min, a_max)


def switch(cond, a, b):
    """``a`` where ``cond`` holds, else ``b`` (numpy's ``where``)."""
    return apply_elemwise(E.Switch(), cond, a, b)


where = switch


def cast(x, dtype):
    """``x`` converted to ``dtype`` (numpy's ``astype``)."""
    x = as_tensor_variable(x)
    dtype = str(np.dtype(dtype))
    if x.dtype == dtype:
        return x
    return E.Elemwise(E.Cast(dtype))(x)


def identity(x):
    """A copy of ``x`` (elementwise identity)."""
    return E.Elemwise(E.Identity())(x)


def zeros_like(x, dtype=None):
    """Zeros of the shape (and dtype) of ``x``."""
    from minigraph.tensor.shape_ops import alloc

    x = as_tensor_variable(x)
    return alloc(constant(0, dtype=dtype or x.dtype), *_shape_list(x))


def ones_like(x, dtype=None):
    """Ones of the shape (and dtype) of ``x``."""
    from minigraph.tensor.shape_ops import alloc

    x = as_tensor_variable(x)
    return alloc(constant(1, dtype=dtype or x.dtype), *_shape_list(x))


def _shape_list(x):
    """Each length of ``x``: an int where static, else a symbolic scalar."""
    from minigraph.tensor.shape_ops import shape_i

    return [s if s is not None else shape_i(x, i) for i, s in enumerate(x.type.shape)]


# --- reductions --------------------------------------------------------------------------

def normalize_axis(op_name, x, axis) -> tuple[int, ...]:
    """``axis`` (None, int or tuple, negatives allowed) as a sorted tuple of axes of ``x``."""
    if axis is None:
        return tuple(range(x.ndim))
    if isinstance(axis, (int, np.integer)):
        axes = (axis,)
    elif isinstance(axis, (tuple, list)):
        axes = tuple(axis)
    else:
        raise TypeError(f"{op_name}: axis must be int, tuple of ints or None, got {axis!r}")
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)):
            raise TypeError(f"{op_name}: axis must be int, tuple of ints or None, got {axis!r}")
        if not -x.ndim <= a < x.ndim:
            raise ValueError(f"{op_name}: axis {a} is out of range for a tensor of {x.ndim} dimensions ({x.type})")
        out.append(int(a) % x.ndim if x.ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op_name}: repeated axis in {axis!r}")
    return tuple(sorted(out))


@dataclass(frozen=True)
class Reduce(Op):
    """Reduce ``axis`` away (sorted tuple).  keepdims is a DimShuffle on top."""

    axis: tuple

    ufunc: ClassVar = None

    def __str__(self) -> str:
        return f"{type(self).__name__.lower()}{{axis={','.join(map(str, self.axis))}}}"

    def out_dtype(self, dtype: str) -> str:
        return dtype

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        if any(a >= x.ndim for a in self.axis):
            raise build_error(self, [x], f"axis {self.axis} out of range", ValueError)
        shape = tuple(s for i, s in enumerate(x.type.shape) if i not in self.axis)
        return Apply(self, [x], [TensorType(self.out_dtype(x.dtype), shape)])

    def perform(self, node, inputs):
        return (np.asarray(self.ufunc.reduce(inputs[0], axis=self.axis), dtype=node.outputs[0].dtype),)


@dataclass(frozen=True)
class Sum(Reduce):
    """Sum over ``axis`` (numpy's accumulation dtype: small ints give int64)."""

    ufunc: ClassVar = np.add

    def out_dtype(self, dtype):
        return str(np.sum(np.zeros(1, dtype)).dtype)

    def perform(self, node, inputs):
        return (np.asarray(np.sum(inputs[0], axis=self.axis), dtype=node.outputs[0].dtype),)

    def grad(self, inputs, outputs, output_grads):
        x = inputs[0]
        if np.dtype(x.dtype).kind not in "fc":
            return [None]
        from minigraph.tensor.shape_ops import broadcast_like

        g = expand_reduced(output_grads[0], self.axis, x.ndim)
        return [broadcast_like(cast(g, x.dtype), x)]


@dataclass(frozen=True)
class Prod(Reduce):
    """Product over ``axis``."""

    ufunc: ClassVar = np.multiply

    def out_dtype(self, dtype):
        return str(np.prod(np.zeros(1, dtype)).dtype)

    def perform(self, node, inputs):
        # np.prod accumulates small integers in int64, as the output dtype says (multiply.reduce would not)
        return (np.asarray(np.prod(inputs[0], axis=self.axis), dtype=node.outputs[0].dtype),)

    def grad(self, inputs, outputs, output_grads):
        # d prod / d x_i is the product of the others: prod / x_i without zeros; with one zero,
        # the product of the non-zeros at the zero and 0 elsewhere; with two or more, 0
        x = inputs[0]
        if np.dtype(x.dtype).kind not in "fc":
            return [None]
        g = expand_reduced(output_grads[0], self.axis, x.ndim)
        nonzero = neq(x, 0)
        safe = switch(nonzero, x, 1)
        p_nonzero = expand_reduced(Prod(self.axis)(safe), self.axis, x.ndim)
        n_zeros = expand_reduced(Sum(self.axis)(invert(nonzero)), self.axis, x.ndim)
        others = switch(eq(n_zeros, 0), true_div(p_nonzero, safe),
                        switch(and_(eq(n_zeros, 1), invert(nonzero)), p_nonzero, 0))
        return [mul(g, others)]


@dataclass(frozen=True)
class Max(Reduce):
    """Largest value over ``axis``."""

    ufunc: ClassVar = np.maximum

    def grad(self, inputs, outputs, output_grads):
        x = inputs[0]
        g = expand_reduced(output_grads[0], self.axis, x.ndim)
        m = expand_reduced(outputs[0], self.axis, x.ndim)
        return [mul(g, cast(eq(x, m), g.dtype))]


@dataclass(frozen=True)
class Min(Reduce):
    """Smallest value over ``axis``."""

    ufunc: ClassVar = np.minimum

    grad = Max.grad


@dataclass(frozen=True)
class Argmax(Op):
    """Index of the largest value along one axis (or of the flattened tensor: axis None)."""

    axis: int | None

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        shape = () if self.axis is None else tuple(s for i, s in enumerate(x.type.shape) if i != self.axis)
        return Apply(self, [x], [TensorType("int64", shape)])

    def perform(self, node, inputs):
        return (np.asarray(np.argmax(inputs[0], axis=self.axis), dtype="int64"),)

    def grad(self, inputs, outputs, output_grads):
        return [None]


def expand_reduced(g, axis, ndim):
    """Re-insert the reduced axes of ``g`` as length-1 axes."""
    pattern, j = [], 0
    for d in range(ndim):
        if d in axis:
            pattern.append("x")
        else:
            pattern.append(j)
            j += 1
    return E.DimShuffle(tuple(pattern), g.ndim)(g) if axis else g


def _reduce(op_cls, x, axis, keepdims):
    x = as_tensor_variable(x)
    axes = normalize_axis(op_cls.__name__.lower(), x, axis)
    out = op_cls(axes)(x) if axes else x
    return expand_reduced(out, axes, x.ndim) if keepdims else out


def sum(x, axis=None, keepdims=False, dtype=None):
    """Sum over ``axis`` (None: all axes)."""
    x = as_tensor_variable(x)
    if dtype is not None:
        x = cast(x, dtype)
    return _reduce(Sum, x, axis, keepdims)


def prod(x, axis=None, keepdims=False):
    """Product over ``axis``."""
    return _reduce(Prod, x, axis, keepdims)


def max(x, axis=None, keepdims=False):
    """Largest value over ``axis``."""
    return _reduce(Max, x, axis, keepdims)


def min(x, axis=None, keepdims=False):
    """Smallest value over ``axis``."""
    return _reduce(Min, x, axis, keepdims)


def argmax(x, axis=None, keepdims=False):
    """Index of the largest value along ``axis`` (an int, or None for the flattened tensor)."""
    x = as_tensor_variable(x)
    if axis is not None:
        (axis,) = normalize_axis("argmax", x, axis) if isinstance(axis, (int, np.integer)) else (None,)
        if axis is None:
            raise TypeError("argmax: axis must be an int or None")
    out = Argmax(axis)(x)
    if keepdims:
        out = expand_reduced(out, tuple(range(x.ndim)) if axis is None else (axis,), x.ndim)
    return out


def argmin(x, axis=None, keepdims=False):
    """Index of the smallest value along ``axis``."""
    x = as_tensor_variable(x)
    kind = np.dtype(x.dtype).kind
    if kind == "b":
        flipped = invert(x)
    elif kind in "iu":
        # -x - 1 is the bitwise not in wrapping integer arithmetic: order-reversing with no
        # overflow (plain -x wraps the smallest signed value and every unsigned one)
        flipped = sub(neg(x), 1)
    else:
        flipped = neg(x)
    return argmax(flipped, axis=axis, keepdims=keepdims)


def _count(x, axes):
    """Number of elements reduced over ``axes``: a constant when the lengths are static."""
    from minigraph.tensor.shape_ops import shape_i

    static = [x.type.shape[a] for a in axes]
    if None not in static:
        return int(np.prod(static, dtype="int64"))
    known = int(np.prod([s for s in static if s is not None], dtype="int64"))
    unknown = [shape_i(x, a) for a in axes if x.type.shape[a] is None]
    n = unknown[0] if len(unknown) == 1 else mul(*unknown)
    return n if known == 1 else mul(n, known)


def mean(x, axis=None, keepdims=False):
    """Arithmetic mean over ``axis``; float32 stays float32, integers give float64."""
    x = as_tensor_variable(x)
    axes = normalize_axis("mean", x, axis)
    s = _reduce(Sum, x, axes, keepdims)
    n = _count(x, axes)
    out_dtype = s.dtype if np.dtype(s.dtype).kind in "fc" else "float64"
    return true_div(cast(s, out_dtype), n if isinstance(n, int) else cast(n, out_dtype))


def var(x, axis=None, keepdims=False, ddof=0):
    """Variance over ``axis`` (two passes: the mean first, then squared deviations)."""
    x = as_tensor_variable(x)
    axes = normalize_axis("var", x, axis)
    centered = sub(x, mean(x, axes, keepdims=True))
    if ddof == 0:
        return mean(sqr(centered), axes, keepdims=keepdims)
    s = sum(sqr(centered), axes, keepdims=keepdims)
    n = _count(x, axes)
    if isinstance(n, int):
        return true_div(s, n - ddof)
    # a symbolic count is int64: cast it so that float32 stays float32
    return true_div(s, cast(sub(n, ddof), s.dtype if np.dtype(s.dtype).kind == "f" else "float64"))


def std(x, axis=None, keepdims=False, ddof=0):
    """Standard deviation over ``axis``."""
    return sqrt(var(x, axis, keepdims, ddof))


# --- matrix products ---------------------------------------------------------------------

@dataclass(frozen=True)
class Dot(Op):
    """Matrix product of vectors and matrices (numpy's ``dot`` for 1-D and 2-D)."""

    def make_node(self, x, y) -> Apply:
        x, y = as_tensor_variable(x), as_tensor_variable(y)
        if not (1 <= x.ndim <= 2 and 1 <= y.ndim <= 2):
            raise build_error(self, [x, y], "takes vectors and matrices (1 or 2 dimensions)", TypeError)
        k1, k2 = x.type.shape[-1], y.type.shape[0]
        if k1 is not None and k2 is not None and k1 != k2:
            raise build_error(self, [x, y], f"inner lengths differ: {x.type} . {y.type} ({k1} != {k2})")
        shape = x.type.shape[:-1] + y.type.shape[1:]
        dtype = str(np.result_type(x.dtype, y.dtype))
        if np.dtype(dtype).kind == "b":
            raise build_error(self, [x, y], "boolean matrix products are not supported", TypeError)
        return Apply(self, [x, y], [TensorType(dtype, shape)])

    def perform(self, node, inputs):
        x, y = inputs
        if x.shape[-1] != y.shape[0]:
            raise ValueError(f"dot: shapes {x.shape} and {y.shape} are not aligned (inner lengths differ)")
        return (np.asarray(np.dot(x, y), dtype=node.outputs[0].dtype),)

    def grad(self, inputs, outputs, output_grads):
        x, y = inputs
        (g,) = output_grads
        from minigraph.tensor.shape_ops import dimshuffle

        def col(v):
            return dimshuffle(v, (0, "x"))

        def row(v):
            return dimshuffle(v, ("x", 0))

        if x.ndim == 2 and y.ndim == 2:
            gx, gy = dot(g, y.T), dot(x.T, g)
        elif x.ndim == 2:  # matrix . vector
            gx, gy = dot(col(g), row(y)), dot(x.T, g)
        elif y.ndim == 2:  # vector . matrix
            gx, gy = dot(y, g), dot(col(x), row(g))
        else:  # vector . vector
            gx, gy = mul(g, y), mul(g, x)
        return [cast(gx, x.dtype) if np.dtype(x.dtype).kind == "f" else None,
                cast(gy, y.dtype) if np.dtype(y.dtype).kind == "f" else None]


_dot = Dot()


def dot(x, y):
    """Matrix product (``x @ y``) of vectors and matrices."""
    return _dot(x, y)


def outer(x, y):
    """Outer product of two vectors."""
    from minigraph.tensor.shape_ops import dimshuffle

    return mul(dimshuffle(as_tensor_variable(x), (0, "x")), dimshuffle(as_tensor_variable(y), ("x", 0)))


# --- fused reductions (made by the rewrites, lowered by the backends) ------------------------

_REDUCERS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


@dataclass(frozen=True)
class FusedReduce(Op):
    """Reductions over ``axis`` of the outputs of a scalar program applied elementwise (with
    broadcasting) to the inputs: ``sum((x - m) ** 2)`` without a temporary.  Each output of
    ``scalar_op`` (an ``elemwise.Composite``) is reduced with the matching entry of ``kinds``
    ("add", "mul", "max", "min"), all in one pass over the inputs."""

    scalar_op: E.Composite
    axis: tuple
    kinds: tuple

    def __str__(self):
        parts = [f"{k}({f})" for k, f in zip(self.kinds, self.scalar_op.formulas())]
        return f"fused_reduce{{axis={','.join(map(str, self.axis))}; {'; '.join(parts)}}}"

    def make_node(self, *inputs) -> Apply:
        inputs = [as_tensor_variable(x) for x in inputs]
        ndim = builtins.max(x.ndim for x in inputs)
        inputs = [E.pad_dims(x, ndim) for x in inputs]
        shape = E.broadcast_shapes(self, inputs)
        if len(self.kinds) != self.scalar_op.nout or any(k not in _REDUCERS for k in self.kinds):
            raise build_error(self, inputs, f"kinds {self.kinds} do not fit the program's outputs")
        dtypes = self.scalar_op.out_dtypes(*(x.dtype for x in inputs))
        out_shape = tuple(s for d, s in enumerate(shape) if d not in self.axis)
        return Apply(self, inputs, [TensorType(dt, out_shape) for dt in dtypes])

    def perform(self, node, inputs):
        full = np.broadcast_shapes(*(np.shape(x) for x in inputs))
        values = self.scalar_op.impl(*inputs)
        outs = []
        for v, kind, var in zip(values, self.kinds, node.outputs):
            v = np.broadcast_to(np.asarray(v, dtype=var.dtype), full)
            outs.append(np.asarray(_REDUCERS[kind].reduce(v, axis=self.axis), dtype=var.dtype))
        return tuple(outs)

