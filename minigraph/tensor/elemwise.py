"""Elementwise computation: scalar ops, the ``Elemwise`` op that maps them over tensors
with numpy broadcasting, and ``DimShuffle`` (transpose, add and drop length-1 axes).

A scalar op knows its numpy implementation, its output dtype and its derivative.  The
derivative is written with tensor ops, so every gradient is again a graph.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from minigraph.graph.basic import Apply, Constant, Op
from minigraph.graph.type import TensorType, format_shape
from minigraph.tensor.basic import as_tensor_variable, build_error, constant


def _M():
    from minigraph.tensor import math

    return math


def _is_float(v) -> bool:
    return np.dtype(v.dtype).kind in "fc"


@dataclass(frozen=True)
class ScalarOp:
    """A function of scalars; ``Elemwise`` maps it over arrays."""

    nin: ClassVar[int] = 1
    nout: ClassVar[int] = 1
    #: numpy function implementing the op (for the simple cases)
    ufunc: ClassVar = None

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    def impl(self, *args):
        return self.ufunc(*args)

    def out_dtypes(self, *dtypes: str) -> tuple[str, ...]:
        """numpy's own answer: apply the implementation to arrays of these dtypes (once per op
        and dtypes: building a graph asks again for every node)."""
        return _numpy_out_dtypes(self, dtypes)

    def grad(self, inputs, output, gout) -> list:
        raise NotImplementedError(f"{self.name} has no gradient")

    def __str__(self) -> str:
        return self.name


@functools.lru_cache(maxsize=4096)
def _numpy_out_dtypes(op: ScalarOp, dtypes: tuple) -> tuple[str, ...]:
    with np.errstate(all="ignore"):
        outs = op.impl(*(np.zeros((1,), dtype=d) for d in dtypes))
    return tuple(str(np.asarray(o).dtype) for o in (outs if isinstance(outs, tuple) else (outs,)))


class _NoGrad(ScalarOp):
    """Piecewise-constant ops: zero gradient, and none for non-float inputs."""

    def grad(self, inputs, output, gout):
        return [_M().zeros_like(x) if _is_float(x) else None for x in inputs]


# --- arithmetic --------------------------------------------------------------------------

@dataclass(frozen=True)
class Add(ScalarOp):
    """x + y + ... (n-ary)."""

    nin: ClassVar[int] = -1  # any number of inputs (add chains are flattened)

    def impl(self, *args):
        return functools.reduce(np.add, args)

    def grad(self, inputs, output, gout):
        return [gout] * len(inputs)


@dataclass(frozen=True)
class Mul(ScalarOp):
    """x * y * ... (n-ary)."""

    nin: ClassVar[int] = -1

    def impl(self, *args):
        return functools.reduce(np.multiply, args)

    def grad(self, inputs, output, gout):
        M = _M()
        grads = []
        for i in range(len(inputs)):
            others = inputs[:i] + inputs[i + 1:]
            grads.append(M.mul(gout, *others) if others else gout)
        return grads


@dataclass(frozen=True)
class Sub(ScalarOp):
    """x - y."""

    nin: ClassVar[int] = 2
    ufunc: ClassVar = np.subtract

    def grad(self, inputs, output, gout):
        return [gout, _M().neg(gout)]


@dataclass(frozen=True)
class TrueDiv(ScalarOp):
    """x / y."""

    nin: ClassVar[int] = 2
    ufunc: ClassVar = np.true_divide

    def grad(self, inputs, output, gout):
        M = _M()
        x, y = inputs
        return [M.true_div(gout, y), M.neg(M.true_div(M.mul(gout, output), y))]


@dataclass(frozen=True)
class IntDiv(_NoGrad):
    """x // y (floor division; zero gradient)."""

    nin: ClassVar[int] = 2
    ufunc: ClassVar = np.floor_divide


@dataclass(frozen=True)
class Mod(ScalarOp):
    """x % y (numpy's sign rule)."""

    nin: ClassVar[int] = 2
    ufunc: ClassVar = np.mod

    def grad(self, inputs, output, gout):
        M = _M()
        x, y = inputs
        return [gout, M.neg(M.mul(gout, M.int_div(x, y)))]


@dataclass(frozen=True)
class Pow(ScalarOp):
    """x ** y."""

    nin: ClassVar[int] = 2
    ufunc: ClassVar = np.power

    def grad(self, inputs, output, gout):
        M = _M()
        x, y = inputs
        gx = M.mul(gout, y, M.pow(x, M.sub(y, 1))) if _is_float(x) else None
        gy = M.mul(gout, output, M.log(x)) if _is_float(y) else None
        return [gx, gy]


@dataclass(frozen=True)
class Maximum(ScalarOp):
    """Elementwise maximum (ties send the gradient to x)."""

    nin: ClassVar[int] = 2
    ufunc: ClassVar = np.maximum

    def grad(self, inputs, output, gout):
        M = _M()
        x, y = inputs
        # ties send the gradient to x only, so the two parts add up to gout
        return [M.mul(gout, M.cast(M.ge(x, y), gout.dtype)), M.mul(gout, M.cast(M.lt(x, y), gout.dtype))]


@dataclass(frozen=True)
class Minimum(ScalarOp):
    """Elementwise minimum (ties send the gradient to x)."""

    nin: ClassVar[int] = 2
    ufunc: ClassVar = np.minimum

    def grad(self, inputs, output, gout):
        M = _M()
        x, y = inputs
        return [M.mul(gout, M.cast(M.le(x, y), gout.dtype)), M.mul(gout, M.cast(M.gt(x, y), gout.dtype))]


@dataclass(frozen=True)
class Neg(ScalarOp):
    """-x."""

    ufunc: ClassVar = np.negative

    def grad(self, inputs, output, gout):
        return [_M().neg(gout)]


@dataclass(frozen=True)
class Abs(ScalarOp):
    """|x|."""

    ufunc: ClassVar = np.abs

    def grad(self, inputs, output, gout):
        M = _M()
        return [M.mul(gout, M.sgn(inputs[0]))]


@dataclass(frozen=True)
class Sgn(_NoGrad):
    """Sign of x."""

    ufunc: ClassVar = np.sign


@dataclass(frozen=True)
class Floor(_NoGrad):
    """Round down."""

    ufunc: ClassVar = np.floor


@dataclass(frozen=True)
class Ceil(_NoGrad):
    """Round up."""

    ufunc: ClassVar = np.ceil


@dataclass(frozen=True)
class Exp(ScalarOp):
    """e ** x."""

    ufunc: ClassVar = np.exp

    def grad(self, inputs, output, gout):
        return [_M().mul(gout, output)]


@dataclass(frozen=True)
class Expm1(ScalarOp):
    """e ** x - 1."""

    ufunc: ClassVar = np.expm1

    def grad(self, inputs, output, gout):
        M = _M()
        return [M.mul(gout, M.exp(inputs[0]))]


@dataclass(frozen=True)
class Log(ScalarOp):
    """Natural logarithm."""

    ufunc: ClassVar = np.log

    def grad(self, inputs, output, gout):
        return [_M().true_div(gout, inputs[0])]


@dataclass(frozen=True)
class Log1p(ScalarOp):
    """log(1 + x)."""

    ufunc: ClassVar = np.log1p

    def grad(self, inputs, output, gout):
        M = _M()
        return [M.true_div(gout, M.add(inputs[0], 1))]


@dataclass(frozen=True)
class Sqrt(ScalarOp):
    """Square root."""

    ufunc: ClassVar = np.sqrt

    def grad(self, inputs, output, gout):
        M = _M()
        return [M.true_div(M.mul(gout, 0.5), output)]


@dataclass(frozen=True)
class Sqr(ScalarOp):
    """x * x."""

    ufunc: ClassVar = np.square

    def grad(self, inputs, output, gout):
        M = _M()
        return [M.mul(gout, 2, inputs[0])]


@dataclass(frozen=True)
class Tanh(ScalarOp):
    """Hyperbolic tangent."""

    ufunc: ClassVar = np.tanh

    def grad(self, inputs, output, gout):
        M = _M()
        return [M.mul(gout, M.sub(1, M.sqr(output)))]


@dataclass(frozen=True)
class Sin(ScalarOp):
    """Sine."""

    ufunc: ClassVar = np.sin

    def grad(self, inputs, output, gout):
        M = _M()
        return [M.mul(gout, M.cos(inputs[0]))]


@dataclass(frozen=True)
class Cos(ScalarOp):
    """Cosine."""

    ufunc: ClassVar = np.cos

    def grad(self, inputs, output, gout):
        M = _M()
        return [M.neg(M.mul(gout, M.sin(inputs[0])))]


@dataclass(frozen=True)
class Sigmoid(ScalarOp):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""

    def impl(self, x):
        x = np.asarray(x)
        if x.dtype.kind not in "fc":
            x = x.astype("float64")
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)

    def grad(self, inputs, output, gout):
        M = _M()
        return [M.mul(gout, output, M.sub(1, output))]


@dataclass(frozen=True)
class Softplus(ScalarOp):
    """log(1 + exp(x)), computed without overflow for large |x|."""

    def impl(self, x):
        x = np.asarray(x)
        return np.logaddexp(np.zeros((), x.dtype) if x.dtype.kind == "f" else 0.0, x)

    def grad(self, inputs, output, gout):
        M = _M()
        return [M.mul(gout, M.sigmoid(inputs[0]))]


@dataclass(frozen=True)
class Clip(ScalarOp):
    """x limited to [lo, hi]."""

    nin: ClassVar[int] = 3

    def impl(self, x, lo, hi):
        return np.minimum(np.maximum(x, lo), hi)

    def grad(self, inputs, output, gout):
        M = _M()
        x, lo, hi = inputs
        inside = M.cast(M.and_(M.ge(x, lo), M.le(x, hi)), gout.dtype)
        glo = M.mul(gout, M.cast(M.lt(x, lo), gout.dtype)) if _is_float(lo) else None
        ghi = M.mul(gout, M.cast(M.gt(x, hi), gout.dtype)) if _is_float(hi) else None
        return [M.mul(gout, inside), glo, ghi]


@dataclass(frozen=True)
class Switch(ScalarOp):
    """a where cond holds, else b."""

    nin: ClassVar[int] = 3

    def impl(self, cond, a, b):
        return np.where(cond, a, b)

    def grad(self, inputs, output, gout):
        M = _M()
        cond, a, b = inputs
        zero = M.zeros_like(gout)
        return [None,
                M.switch(cond, gout, zero) if _is_float(a) else None,
                M.switch(cond, zero, gout) if _is_float(b) else None]


@dataclass(frozen=True)
class Cast(ScalarOp):
    """Conversion to ``dtype``."""

    dtype: str

    @property
    def name(self) -> str:
        return f"cast{{{self.dtype}}}"

    def impl(self, x):
        return np.asarray(x).astype(self.dtype)

    def out_dtypes(self, *dtypes):
        return (self.dtype,)

    def grad(self, inputs, output, gout):
        x = inputs[0]
        return [_M().cast(gout, x.dtype) if _is_float(x) and _is_float(output) else None]


@dataclass(frozen=True)
class Identity(ScalarOp):
    """A copy of x."""

    def impl(self, x):
        return np.array(x, copy=True)

    def grad(self, inputs, output, gout):
        return [gout]


def _comparison(name, fn):
    cls = dataclass(frozen=True)(type(name, (_NoGrad,), {"ufunc": fn, "nin": 2, "__doc__": f"elementwise {fn.__name__}"}))
    return cls


LT = _comparison("LT", np.less)
GT = _comparison("GT", np.greater)
LE = _comparison("LE", np.less_equal)
GE = _comparison("GE", np.greater_equal)
EQ = _comparison("EQ", np.equal)
NEQ = _comparison("NEQ", np.not_equal)
And = _comparison("And", np.logical_and)
Or = _comparison("Or", np.logical_or)


@dataclass(frozen=True)
class Invert(_NoGrad):
    """Logical not."""

    ufunc: ClassVar = np.logical_not


@dataclass(frozen=True)
class Composite(ScalarOp):
    """A fused scalar program: several scalar ops evaluated as one.

    ``program`` is a tuple of steps ``(scalar_op, argument_slots)``; slots ``0..n_inputs-1``
    are the inputs and slot ``n_inputs + k`` is step ``k``'s result.  ``outputs`` names the
    slots returned.  Graph rewrites build these (elementwise fusion).
    """

    n_inputs: int
    program: tuple
    outputs: tuple
    in_dtypes: tuple = ()

    @property
    def nin(self) -> int:  # type: ignore[override]
        return self.n_inputs

    @property
    def nout(self) -> int:  # type: ignore[override]
        return len(self.outputs)

    @functools.cached_property
    def name(self) -> str:  # (kept: the rewrite log and the printers ask for it again and again)
        return "composite{" + "; ".join(self.formulas()) + "}"

    def formulas(self) -> list[str]:
        """Each output as an infix-free nested call, e.g. ``tanh(add(i0, i1))``."""
        return list(self._formulas)

    @functools.cached_property
    def _formulas(self) -> tuple[str, ...]:
        slots = [f"i{i}" for i in range(self.n_inputs)]
        for op, args in self.program:
            slots.append(f"{op.name}({', '.join(slots[a] for a in args)})")
        return tuple(slots[o] for o in self.outputs)

    def impl(self, *args):
        slots = list(args)
        with np.errstate(all="ignore"):
            for op, slot_args in self.program:
                slots.append(op.impl(*(slots[a] for a in slot_args)))
        return tuple(slots[o] for o in self.outputs)


# --- Elemwise ----------------------------------------------------------------------------

def broadcast_shapes(op, inputs, shown=None) -> tuple:
    """The static output shape of a broadcast, or a build-time error naming the op (and the
    ``shown`` inputs: the user's variables, before padding)."""
    ndim = inputs[0].ndim
    out = []
    for d in range(ndim):
        lengths = [v.type.shape[d] for v in inputs]
        known = {s for s in lengths if s is not None and s != 1}
        if len(known) > 1:
            shapes = ", ".join(format_shape(v.type.shape) for v in inputs)
            raise build_error(op, shown or inputs, f"shapes {shapes} cannot be broadcast together (axis {d})")
        if known:
            out.append(known.pop())
        elif all(s == 1 for s in lengths):
            out.append(1)
        else:
            out.append(None)
    return tuple(out)


@dataclass(frozen=True)
class Elemwise(Op):
    """``scalar_op`` applied element by element, with numpy broadcasting.

    ``inplace`` lists ``(output, input)`` pairs whose output overwrites that input's buffer
    (set by the in-place rewrite only).
    """

    scalar_op: ScalarOp
    inplace: tuple = ()

    #: input gradients must be summed back over broadcast axes (done by the autodiff)
    broadcasts_inputs: ClassVar[bool] = True

    def __str__(self) -> str:
        s = str(self.scalar_op)
        return s + ("{inplace}" if self.inplace else "")

    def make_node(self, *inputs) -> Apply:
        inputs = [as_tensor_variable(x) for x in inputs]
        nin = self.scalar_op.nin
        if nin != -1 and len(inputs) != nin:
            raise build_error(self, inputs, f"expects {nin} inputs, got {len(inputs)}", TypeError)
        ndim = max(x.ndim for x in inputs)
        given = inputs
        inputs = [pad_dims(x, ndim) for x in inputs]
        shape = broadcast_shapes(self, inputs, given)
        try:
            dtypes = self.scalar_op.out_dtypes(*(x.dtype for x in inputs))
        except TypeError as e:
            raise build_error(self, inputs, f"unsupported dtypes ({e})", TypeError) from None
        return Apply(self, inputs, [TensorType(dt, shape) for dt in dtypes])

    def perform(self, node, inputs):
        try:
            with np.errstate(all="ignore"):
                out = self.scalar_op.impl(*inputs)
        except ValueError as e:
            shapes = ", ".join(str(np.shape(x)) for x in inputs)
            raise ValueError(f"{self}: input shapes {shapes} cannot be broadcast together ({e})") from None
        outs = out if isinstance(out, tuple) else (out,)
        return tuple(np.asarray(o, dtype=v.dtype) for o, v in zip(outs, node.outputs))

    def grad(self, inputs, outputs, output_grads):
        return self.scalar_op.grad(inputs, outputs[0], output_grads[0])


def pad_dims(x, ndim: int):
    """Prepend length-1 axes so that ``x`` has ``ndim`` dimensions (numpy's broadcasting rule)."""
    if x.ndim == ndim:
        return x
    if isinstance(x, Constant):
        return constant(x.data.reshape((1,) * (ndim - x.ndim) + x.data.shape))
    return DimShuffle(("x",) * (ndim - x.ndim) + tuple(range(x.ndim)), x.ndim)(x)


@dataclass(frozen=True)
class DimShuffle(Op):
    """Reorder axes, insert length-1 axes (``'x'``) and drop static length-1 axes; a view."""

    new_order: tuple
    input_ndim: int

    def __str__(self) -> str:
        return "dimshuffle{" + ",".join(map(str, self.new_order)) + "}"

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        if x.ndim != self.input_ndim:
            raise build_error(self, [x], f"expects {self.input_ndim} dimensions, got {x.ndim}", TypeError)
        kept = [o for o in self.new_order if o != "x"]
        if sorted(kept) != sorted(set(kept)) or any(not 0 <= o < x.ndim for o in kept):
            raise build_error(self, [x], f"invalid pattern {self.new_order}")
        for d in range(x.ndim):
            if d not in kept and x.type.shape[d] != 1:
                raise build_error(self, [x], f"cannot drop axis {d} whose length is not statically 1")
        shape = tuple(1 if o == "x" else x.type.shape[o] for o in self.new_order)
        return Apply(self, [x], [TensorType(x.dtype, shape)])

    @property
    def dropped(self) -> tuple:
        """Input axes (of static length 1) that the pattern leaves out."""
        return tuple(d for d in range(self.input_ndim) if d not in self.new_order)

    @property
    def is_transpose(self) -> bool:
        """True when the pattern only permutes axes."""
        return "x" not in self.new_order and len(self.new_order) == self.input_ndim

    def perform(self, node, inputs):
        x = inputs[0]
        if self.dropped:
            if any(x.shape[d] != 1 for d in self.dropped):
                raise ValueError(f"{self}: cannot drop axes {self.dropped} of an input of shape {x.shape}")
            # a trailing Ellipsis keeps a 0-d result an array (a view), not a numpy scalar
            x = x[tuple(0 if d in self.dropped else slice(None) for d in range(x.ndim)) + (Ellipsis,)]
        kept = [o for o in self.new_order if o != "x"]
        remaining = [d for d in range(self.input_ndim) if d not in self.dropped]
        x = x.transpose([remaining.index(o) for o in kept])
        x = x[tuple(None if o == "x" else slice(None) for o in self.new_order) + (Ellipsis,)]
        return (x,)

    def grad(self, inputs, outputs, output_grads):
        (g,) = output_grads
        # the gradient may have lost the static 1 of an inserted axis (e.g. after a slice or
        # from known_grads): summing over those axes drops them whatever their static length
        inserted = tuple(d for d, o in enumerate(self.new_order) if o == "x" and g.type.shape[d] != 1)
        if inserted:
            g = _M().sum(g, axis=inserted, keepdims=True)
        pattern = []
        for d in range(self.input_ndim):
            pattern.append(self.new_order.index(d) if d in self.new_order else "x")
        return [DimShuffle(tuple(pattern), g.ndim)(g)]
