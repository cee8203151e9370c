"""Shape ops: symbolic shapes, reshape, dimshuffle, broadcasting, repeat, concatenation, arange."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minigraph.graph.basic import Apply, Op, Variable
from minigraph.graph.type import TensorType, format_shape
from minigraph.tensor import math as M
from minigraph.tensor.basic import as_tensor_variable, build_error, constant, get_constant_value
from minigraph.tensor.elemwise import DimShuffle


def _int_scalar(op, v, what="length"):
    v = as_tensor_variable(v)
    if v.ndim != 0 or np.dtype(v.dtype).kind not in "iu":
        raise build_error(op, [v], f"{what} must be an integer scalar, got {v.type}", TypeError)
    return M.cast(v, "int64")


# --- symbolic shapes ---------------------------------------------------------------------

@dataclass(frozen=True)
class Shape(Op):
    """The shape of a tensor, as an int64 vector."""

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        return Apply(self, [x], [TensorType("int64", (x.ndim,))])

    def perform(self, node, inputs):
        return (np.asarray(inputs[0].shape, dtype="int64"),)

    def grad(self, inputs, outputs, output_grads):
        return [None]


@dataclass(frozen=True)
class ShapeI(Op):
    """The length of axis ``i`` of a tensor, as an int64 scalar."""

    i: int

    def __str__(self):
        return f"shape_i{{{self.i}}}"

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        if not 0 <= self.i < x.ndim:
            raise build_error(self, [x], f"axis {self.i} out of range")
        return Apply(self, [x], [TensorType("int64", ())])

    def perform(self, node, inputs):
        return (np.asarray(inputs[0].shape[self.i], dtype="int64"),)

    def grad(self, inputs, outputs, output_grads):
        return [None]


def shape(x):
    """The symbolic shape of ``x`` (a constant when every length is static)."""
    x = as_tensor_variable(x)
    return Shape()(x)


def shape_i(x, i):
    """The symbolic length of axis ``i`` of ``x``."""
    x = as_tensor_variable(x)
    i = i % x.ndim if x.ndim else i
    s = x.type.shape[i]
    return constant(s, dtype="int64") if s is not None else ShapeI(i)(x)


@dataclass(frozen=True)
class MakeVector(Op):
    """A vector built from scalars."""

    dtype: str = "int64"

    def make_node(self, *scalars) -> Apply:
        scalars = [as_tensor_variable(s) for s in scalars]
        if any(s.ndim != 0 for s in scalars):
            raise build_error(self, scalars, "takes scalars", TypeError)
        scalars = [M.cast(s, self.dtype) for s in scalars]
        return Apply(self, scalars, [TensorType(self.dtype, (len(scalars),))])

    def perform(self, node, inputs):
        return (np.asarray(inputs, dtype=self.dtype).reshape(len(inputs)),)

    def grad(self, inputs, outputs, output_grads):
        (g,) = output_grads
        if np.dtype(self.dtype).kind != "f":
            return [None] * len(inputs)
        return [g[i] for i in range(len(inputs))]


def as_shape_vector(op, shape) -> tuple[Variable, tuple]:
    """A shape given as a tuple of ints/scalars or as a vector: (int64 vector, static lengths)."""
    if isinstance(shape, Variable):
        if shape.ndim != 1 or np.dtype(shape.dtype).kind not in "iu":
            raise build_error(op, [shape], f"a shape must be an integer vector, got {shape.type}", TypeError)
        vec = M.cast(shape, "int64")
        value = get_constant_value(vec)
        static = tuple(int(s) for s in value) if value is not None else _static_entries(vec)
        return vec, static
    shape = tuple(shape) if isinstance(shape, (list, tuple)) else (shape,)
    if all(isinstance(s, (int, np.integer)) for s in shape):
        return constant(np.asarray(shape, dtype="int64")), tuple(int(s) for s in shape)
    scalars = [_int_scalar(op, s) for s in shape]
    vec = MakeVector("int64")(*scalars)
    return vec, _static_entries(vec)


def _static_entries(vec) -> tuple:
    node = vec.owner
    if node is not None and isinstance(node.op, MakeVector):
        out = []
        for s in node.inputs:
            v = get_constant_value(s)
            out.append(None if v is None else int(v))
        return tuple(out)
    if node is not None and isinstance(node.op, Shape):
        return node.inputs[0].type.shape
    return (None,) * (vec.type.shape[0] or 0)


# --- reshape and friends -----------------------------------------------------------------

@dataclass(frozen=True)
class Reshape(Op):
    """numpy's reshape; the new shape is an int64 vector input (one entry may be -1)."""

    ndim: int

    def __str__(self):
        return f"reshape{{{self.ndim}}}"

    def make_node(self, x, shp) -> Apply:
        x = as_tensor_variable(x)
        shp, static = as_shape_vector(self, shp)
        if len(static) != self.ndim:
            raise build_error(self, [x, shp], f"shape has {len(static)} entries, expected {self.ndim}", ValueError)
        if sum(1 for s in static if s == -1) > 1:
            raise build_error(self, [x, shp], "at most one length may be -1")
        if any(s is not None and s < -1 for s in static):
            raise build_error(self, [x, shp], f"invalid shape {static}")
        out = list(static)
        size = None if None in x.type.shape else int(np.prod(x.type.shape, dtype="int64"))
        known = [s for s in static if s is not None and s != -1]
        if -1 in out:
            if size is not None and None not in static:
                rest = int(np.prod(known, dtype="int64"))
                if rest == 0 or size % rest:
                    raise build_error(self, [x, shp], f"cannot reshape {x.type} to {static}")
                out[out.index(-1)] = size // rest
            else:
                out[out.index(-1)] = None
        elif size is not None and None not in out and int(np.prod(out, dtype="int64")) != size:
            raise build_error(self, [x, shp], f"cannot reshape {x.type} (size {size}) to shape {tuple(out)}")
        return Apply(self, [x, shp], [TensorType(x.dtype, tuple(out))])

    def perform(self, node, inputs):
        x, shp = inputs
        try:
            return (np.reshape(x, tuple(int(s) for s in shp)),)
        except ValueError:
            raise ValueError(f"{self}: cannot reshape an array of shape {x.shape} into shape "
                             f"{tuple(int(s) for s in shp)}") from None

    def grad(self, inputs, outputs, output_grads):
        x = inputs[0]
        return [reshape(output_grads[0], shape(x) if None in x.type.shape else x.type.shape), None]


def reshape(x, newshape, ndim=None):
    """``x`` with a new shape (a tuple of ints or symbolic scalars, or a vector; -1 allowed)."""
    x = as_tensor_variable(x)
    if ndim is None:
        if isinstance(newshape, Variable):
            if newshape.type.shape[0] is None:
                raise TypeError("reshape: the length of a symbolic shape vector is unknown; pass ndim=")
            ndim = newshape.type.shape[0]
        else:
            ndim = len(newshape) if isinstance(newshape, (list, tuple)) else 1
    return Reshape(ndim)(x, newshape)


def flatten(x, ndim=1):
    """Collapse the trailing axes of ``x`` so that ``ndim`` axes remain."""
    x = as_tensor_variable(x)
    if not 1 <= ndim <= max(x.ndim, 1):
        raise ValueError(f"flatten: ndim={ndim} out of range for {x.type}")
    lead = [x.type.shape[i] if x.type.shape[i] is not None else shape_i(x, i) for i in range(ndim - 1)]
    return reshape(x, tuple(lead) + (-1,))


def dimshuffle(x, pattern):
    """Reorder axes; ``'x'`` inserts a length-1 axis; leaving out a length-1 axis drops it."""
    x = as_tensor_variable(x)
    pattern = tuple(p if p == "x" else int(p) for p in pattern)
    if pattern == tuple(range(x.ndim)):
        return x
    return DimShuffle(pattern, x.ndim)(x)


def transpose(x, axes=None):
    """Permute the axes (reverse them by default)."""
    x = as_tensor_variable(x)
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % x.ndim for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: {axes} is not a permutation of the axes of {x.type}")
    return dimshuffle(x, axes)


def shape_padleft(x, n=1):
    """``x`` with ``n`` length-1 axes in front."""
    x = as_tensor_variable(x)
    return dimshuffle(x, ("x",) * n + tuple(range(x.ndim)))


def shape_padright(x, n=1):
    """``x`` with ``n`` length-1 axes at the end."""
    x = as_tensor_variable(x)
    return dimshuffle(x, tuple(range(x.ndim)) + ("x",) * n)


def shape_padaxis(x, axis):
    """``x`` with a length-1 axis inserted at ``axis``."""
    x = as_tensor_variable(x)
    pattern = list(range(x.ndim))
    pattern.insert(axis % (x.ndim + 1), "x")
    return dimshuffle(x, pattern)


# --- broadcasting ------------------------------------------------------------------------

@dataclass(frozen=True)
class Alloc(Op):
    """``value`` broadcast to a shape given by scalar inputs (a fresh array)."""

    def make_node(self, value, *lengths) -> Apply:
        value = as_tensor_variable(value)
        lengths = [_int_scalar(self, s) for s in lengths]
        if value.ndim > len(lengths):
            raise build_error(self, [value, *lengths], f"value has more dimensions than the shape ({len(lengths)})")
        static = []
        vshape = (None,) * (len(lengths) - value.ndim) + value.type.shape
        for d, s in enumerate(lengths):
            c = get_constant_value(s)
            c = None if c is None else int(c)
            v = vshape[d]
            if c is not None and v not in (None, 1, c):
                raise build_error(self, [value, *lengths], f"cannot broadcast {value.type} to length {c} on axis {d}")
            static.append(c)
        return Apply(self, [value, *lengths], [TensorType(value.dtype, tuple(static))])

    def perform(self, node, inputs):
        value, *lengths = inputs
        shp = tuple(int(s) for s in lengths)
        out = np.empty(shp, dtype=node.outputs[0].dtype)
        try:
            out[...] = value
        except ValueError:
            raise ValueError(f"alloc: cannot broadcast a value of shape {np.shape(value)} to shape {shp}") from None
        return (out,)

    def grad(self, inputs, outputs, output_grads):
        value = inputs[0]
        g = output_grads[0]
        lead = g.ndim - value.ndim
        if lead:
            g = M.sum(g, axis=tuple(range(lead)))
        return [sum_to_shape(g, value)] + [None] * (len(inputs) - 1)


def alloc(value, *lengths):
    """An array of the given shape filled with ``value`` (broadcast)."""
    return Alloc()(value, *lengths)


def broadcast_like(x, like):
    """``x`` broadcast to the shape of ``like`` (a no-op when the static shapes match)."""
    x, like = as_tensor_variable(x), as_tensor_variable(like)
    if x.type.shape == like.type.shape and None not in x.type.shape:
        return x
    return alloc(x, *M._shape_list(like))


def broadcast_to(x, shape_):
    """numpy's ``broadcast_to`` (as a fresh array)."""
    vec, _ = as_shape_vector(Alloc(), shape_)
    n = vec.type.shape[0]
    return alloc(x, *[vec[i] for i in range(n)])


def _target_lengths(op, x, lengths):
    """(x, lengths as int64 scalars, their constant values or None) for an op taking one
    length per axis of ``x``."""
    x = as_tensor_variable(x)
    lengths = [_int_scalar(op, s) for s in lengths]
    if len(lengths) != x.ndim:
        raise build_error(op, [x, *lengths], f"expects {x.ndim} lengths, got {len(lengths)}")
    static = [get_constant_value(s) for s in lengths]
    return x, lengths, [None if c is None else int(c) for c in static]


@dataclass(frozen=True)
class SumToShape(Op):
    """Sum ``x`` over the axes where the target length is 1 and ``x``'s is not.

    The gradient of a broadcast: the autodiff adds it where an input's length is unknown
    until run time and may turn out to be 1.  When the shapes match it returns ``x``.
    """

    def make_node(self, x, *lengths) -> Apply:
        x, lengths, static = _target_lengths(self, x, lengths)
        return Apply(self, [x, *lengths], [TensorType(x.dtype, tuple(static))])

    def perform(self, node, inputs):
        x, *lengths = inputs
        target = tuple(int(s) for s in lengths)
        if x.shape == target:
            return (x,)
        axes = tuple(d for d, (s, t) in enumerate(zip(x.shape, target)) if t == 1 and s != 1)
        out = np.sum(x, axis=axes, keepdims=True, dtype=x.dtype) if axes else x
        if out.shape != target:
            raise ValueError(f"sum_to_shape: cannot sum shape {x.shape} down to shape {target}")
        return (np.asarray(out, dtype=node.outputs[0].dtype),)

    def grad(self, inputs, outputs, output_grads):
        x = inputs[0]
        return [broadcast_like(output_grads[0], x)] + [None] * (len(inputs) - 1)


@dataclass(frozen=True)
class SpecifyShape(Op):
    """``x`` itself, checked when it runs to have the given lengths.

    It tells the graph what it cannot infer: ``grad`` wraps a known gradient in it, since a
    gradient has the shape of its variable; the rewrites then know the two lengths are one.
    """

    def make_node(self, x, *lengths) -> Apply:
        x, lengths, static = _target_lengths(self, x, lengths)
        for d, (have, want) in enumerate(zip(x.type.shape, static)):
            if want is not None and have not in (None, want):
                raise build_error(self, [x, *lengths], f"axis {d} has length {have}, not {want}")
        shape = tuple(have if want is None else want for have, want in zip(x.type.shape, static))
        return Apply(self, [x, *lengths], [TensorType(x.dtype, shape)])

    def perform(self, node, inputs):
        x, *lengths = inputs
        check_shape(x, lengths)
        return (x,)

    def grad(self, inputs, outputs, output_grads):
        return [output_grads[0]] + [None] * (len(inputs) - 1)


def check_shape(x, lengths):
    """Raise unless ``x`` has exactly ``lengths`` (``SpecifyShape``'s run-time check)."""
    target = tuple(int(s) for s in lengths)
    if x.shape != target:
        raise ValueError(f"specify_shape: got an array of shape {x.shape} where shape {target} is required")
    return x


def specify_shape(x, *lengths):
    """``x``, with the promise (checked when it runs) that its shape is ``lengths``."""
    return SpecifyShape()(x, *lengths)


def sum_to_shape(g, x):
    """``g`` summed down to the shape of ``x`` (the gradient of broadcasting ``x``).

    Axes where ``x`` has static length 1 are summed at build time; axes whose length is
    unknown are left to a run-time ``SumToShape``.
    """
    if g.ndim != x.ndim:
        raise ValueError(f"sum_to_shape: {g.type} and {x.type} differ in dimensions")
    axes = tuple(d for d in range(x.ndim) if x.type.shape[d] == 1 and g.type.shape[d] != 1)
    if axes:
        g = M.sum(g, axis=axes, keepdims=True)
    # a length unknown statically may be 1 at run time while g's is not: sum it then
    unknown = [d for d in range(x.ndim) if x.type.shape[d] is None and g.type.shape[d] != 1]
    if unknown:
        g = SumToShape()(g, *M._shape_list(x))
    return g


# --- repeat, concatenate, stack, arange ------------------------------------------------------

@dataclass(frozen=True)
class Repeat(Op):
    """numpy's ``repeat`` with one repeat count; ``axis=None`` repeats the flattened tensor."""

    axis: int | None

    def make_node(self, x, repeats) -> Apply:
        x = as_tensor_variable(x)
        repeats = _int_scalar(self, repeats, "repeats")
        r = get_constant_value(repeats)
        r = None if r is None else int(r)
        if r is not None and r < 0:
            raise build_error(self, [x, repeats], f"negative repeats {r}")
        if self.axis is None:
            size = None if None in x.type.shape else int(np.prod(x.type.shape, dtype="int64"))
            shp = (None if size is None or r is None else size * r,)
        else:
            if not 0 <= self.axis < x.ndim:
                raise build_error(self, [x, repeats], f"axis {self.axis} out of range")
            n = x.type.shape[self.axis]
            shp = list(x.type.shape)
            shp[self.axis] = None if n is None or r is None else n * r
            shp = tuple(shp)
        return Apply(self, [x, repeats], [TensorType(x.dtype, shp)])

    def perform(self, node, inputs):
        x, r = inputs
        return (np.repeat(x, int(r), axis=self.axis),)

    def grad(self, inputs, outputs, output_grads):
        x, r = inputs
        (g,) = output_grads
        if self.axis is None:
            flat = reshape(g, (-1, r))
            return [reshape(M.sum(flat, axis=1), shape(x) if None in x.type.shape else x.type.shape), None]
        lens = M._shape_list(x)
        split = lens[: self.axis] + [lens[self.axis], r] + lens[self.axis + 1:]
        return [M.sum(reshape(g, tuple(split)), axis=self.axis + 1), None]


def repeat(x, repeats, axis=None):
    """Repeat each element ``repeats`` times (numpy semantics; axis None flattens first)."""
    x = as_tensor_variable(x)
    if axis is not None:
        axis = M.normalize_axis("repeat", x, axis)[0]
    return Repeat(axis)(x, repeats)


@dataclass(frozen=True)
class Join(Op):
    """numpy's ``concatenate`` along ``axis``."""

    axis: int

    def make_node(self, *xs) -> Apply:
        xs = [as_tensor_variable(x) for x in xs]
        if not xs:
            raise TypeError("concatenate needs at least one tensor")
        ndim = xs[0].ndim
        if any(x.ndim != ndim for x in xs) or not 0 <= self.axis < ndim:
            raise build_error(self, xs, f"tensors must have the same number of dimensions and axis {self.axis} must exist")
        shp = []
        for d in range(ndim):
            lengths = [x.type.shape[d] for x in xs]
            if d == self.axis:
                shp.append(None if None in lengths else int(np.sum(lengths)))
            else:
                known = {s for s in lengths if s is not None}
                if len(known) > 1:
                    shapes = ", ".join(format_shape(x.type.shape) for x in xs)
                    raise build_error(self, xs, f"shapes {shapes} differ on axis {d}")
                shp.append(known.pop() if known else None)
        dtype = str(np.result_type(*[x.dtype for x in xs]))
        return Apply(self, xs, [TensorType(dtype, tuple(shp))])

    def perform(self, node, inputs):
        try:
            return (np.concatenate(inputs, axis=self.axis).astype(node.outputs[0].dtype, copy=False),)
        except ValueError:
            shapes = ", ".join(str(x.shape) for x in inputs)
            raise ValueError(f"{self}: input shapes {shapes} do not match off axis {self.axis}") from None

    def grad(self, inputs, outputs, output_grads):
        (g,) = output_grads
        grads, start = [], 0
        for x in inputs:
            n = x.type.shape[self.axis]
            n = n if n is not None else shape_i(x, self.axis)
            stop = start + n if isinstance(start, int) and isinstance(n, int) else M.add(start, n)
            index = (slice(None),) * self.axis + (slice(start, stop),)
            gx = g[index]
            grads.append(M.cast(gx, x.dtype) if np.dtype(x.dtype).kind == "f" else None)
            start = stop
        return grads


def concatenate(tensors, axis=0):
    """Join tensors along an existing axis."""
    tensors = [as_tensor_variable(t) for t in tensors]
    axis = M.normalize_axis("concatenate", tensors[0], axis)[0]
    return Join(axis)(*tensors)


def stack(tensors, axis=0):
    """Join tensors along a new axis."""
    tensors = [as_tensor_variable(t) for t in tensors]
    if all(t.ndim == 0 for t in tensors) and axis == 0 and all(np.dtype(t.dtype).kind in "iu" for t in tensors):
        return MakeVector("int64" if any(t.dtype == "int64" for t in tensors) else str(np.result_type(*[t.dtype for t in tensors])))(*tensors)
    ndim = tensors[0].ndim
    axis = axis % (ndim + 1)
    return Join(axis)(*[shape_padaxis(t, axis) for t in tensors])


@dataclass(frozen=True)
class ARange(Op):
    """numpy's ``arange(start, stop, step)``."""

    dtype: str

    def make_node(self, start, stop, step) -> Apply:
        ins = [as_tensor_variable(v) for v in (start, stop, step)]
        if any(v.ndim != 0 for v in ins):
            raise build_error(self, ins, "start, stop and step must be scalars", TypeError)
        vals = [get_constant_value(v) for v in ins]
        n = None
        if None not in vals:
            n = len(np.arange(*[v.item() for v in vals]))
        return Apply(self, ins, [TensorType(self.dtype, (n,))])

    def perform(self, node, inputs):
        return (np.arange(*[v.item() for v in inputs]).astype(self.dtype),)

    def grad(self, inputs, outputs, output_grads):
        return [None, None, None]


def arange(start, stop=None, step=1, dtype=None):
    """Evenly spaced values (numpy's ``arange``); int64 for integer arguments."""
    if stop is None:
        start, stop = 0, start
    ins = [as_tensor_variable(v) for v in (start, stop, step)]
    if dtype is None:
        dtype = str(np.result_type(*[v.dtype for v in ins]))
    return ARange(str(np.dtype(dtype)))(*ins)
