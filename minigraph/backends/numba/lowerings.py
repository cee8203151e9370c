"""Lowerings of the core ops (see ``registry`` for the contract).

Loops (compiled): elementwise (plain or fused), reductions (plain or fused, several in one
pass), softmax and log-softmax over the last axis.  Driver expressions: views (dimshuffle,
reshape, slicing) without copies; matrix products through numpy's BLAS with reused output
buffers (transposed operands are passed as the transposed views, which BLAS reads without a
copy), and gemm through that BLAS's own routine (``cblas``); shape arithmetic; elementwise
ops on vectors as generated straight-line numpy (``kind="vector"``); and the indexing /
joining ops whose numpy implementation is already a single library call (``kind="numpy"``).
"""
from __future__ import annotations

import functools

import numpy as np

from minigraph.backends.numba import cblas, codegen
from minigraph.backends.numba.registry import Inline, Kernel, register
from minigraph.backends.numba.scalar import supports
from minigraph.random import RandomVariable
from minigraph.tensor import elemwise as E
from minigraph.tensor import math as M
from minigraph.tensor import shape_ops as S
from minigraph.tensor import subtensor as ST
from minigraph.tensor.blas import Gemm, check_shapes
from minigraph.tensor.nnet import basic as NN


# --- driver helpers -----------------------------------------------------------------------

def rt_dot(x, y, buf):
    """np.dot into the reused buffer when the dtypes allow (numpy's ``out=`` needs them equal)."""
    shape = x.shape[:-1] + y.shape[1:]
    if x.dtype == y.dtype == buf.dtype and x.ndim + y.ndim > 2:
        if buf.shape != shape:
            buf = np.empty(shape, buf.dtype)
        return np.dot(x, y, out=buf)
    return np.asarray(np.dot(x, y), dtype=buf.dtype)


def rt_gemm(z, alpha, x, y, beta, out):
    """``beta * z + alpha * dot(x, y)`` into ``out``: ``z`` itself when the gemm is marked in
    place, else a reused buffer that takes a copy of ``z`` first."""
    check_shapes(z, x, y)
    if out is not z:
        if out.shape != z.shape:
            out = np.empty(z.shape, out.dtype)
        np.copyto(out, z)
    if not cblas.gemm(alpha, x, y, beta, out):
        product = np.dot(x, y)  # before ``out`` changes: ``x`` or ``y`` may be a view of it
        out *= beta
        product *= alpha
        out += product
    return out


def rt_alloc(buf, value, shape):
    """``value`` broadcast into the reused buffer."""
    shape = tuple(int(s) for s in shape)
    if buf.shape != shape:
        buf = np.empty(shape, buf.dtype)
    buf[...] = value
    return buf


def _work(node) -> str:
    """The input whose size measures a loop's work: the one with the fewest broadcast axes."""
    best = max(range(len(node.inputs)), key=lambda k: sum(s != 1 for s in node.inputs[k].type.shape))
    return f"{{i{best}}}.size"


# --- loops ---------------------------------------------------------------------------------

#: elementwise ops on vectors (at most one axis not statically 1: batch statistics, biases,
#: scalars) run as straight-line numpy, one call per step of the fused program: O(n) work
#: does not repay a compilation (about half a second each), and a numpy call costs about as
#: much as a call of a compiled kernel
VECTORS_IN_NUMPY = True
#: ...unless the fused program is this long: then its numpy calls (about 0.7 us each) cost
#: more than one compiled call (batch norm's per-feature backward arithmetic: 25 steps)
VECTOR_STEPS_COMPILED = 12


@register(E.Elemwise)
def lower_elemwise(node, ctx):
    if not supports(node.op.scalar_op):
        return None
    steps = len(getattr(node.op.scalar_op, "program", ())) or 1
    if VECTORS_IN_NUMPY and sum(s != 1 for s in node.outputs[0].type.shape) <= 1 and steps < VECTOR_STEPS_COMPILED:
        return _vector(node, ctx)
    src, in_place = _elemwise_sources(node)
    shape = codegen.broadcast_shape_exprs([v.type.shape for v in node.inputs], node.outputs[0].ndim)
    return Kernel(src, kind="elemwise", parallel=True, work=_work(node), passes=1,
                  out_shapes=[shape] * len(node.outputs), in_place=in_place)


def _elemwise_sources(node):
    """The elementwise loop's source, and its source given outputs written over inputs."""
    args = (node.op.scalar_op, [v.type for v in node.inputs], [v.type for v in node.outputs])
    return codegen.elemwise_source(*args), lambda pairs: codegen.elemwise_source(*args, in_place=pairs)


@functools.lru_cache(maxsize=1024)
def _compiled(src: str):
    """Python's compilation of a vector op's source: the same source recurs in every layer."""
    return compile(src, "<minigraph vector op>", "exec")


def _vector(node, ctx):
    src, names = codegen.vector_source(node.op.scalar_op, len(node.inputs), [o.dtype for o in node.outputs])
    ns = {"np": np, **names}
    exec(_compiled(src), ns)
    args = ", ".join(f"{{i{k}}}" for k in range(len(node.inputs)))

    def loop():
        source, in_place = _elemwise_sources(node)
        return Kernel(source, kind="elemwise", in_place=in_place)

    return Inline(f"{ctx.ref(ns['vector'])}({args})", kind="vector", source=src, kernel=loop)


_KINDS = {M.Sum: "add", M.Prod: "mul", M.Max: "max", M.Min: "min"}


@register(M.Sum, M.Prod, M.Max, M.Min)
def lower_reduce(node, ctx):
    kind = _KINDS[type(node.op)]
    src = codegen.reduce_source(None, node.op.axis, (kind,), [node.inputs[0].type], [node.outputs[0].type])
    x = node.inputs[0]
    kept = [d for d in range(x.ndim) if d not in node.op.axis]
    shape = codegen.broadcast_shape_exprs([x.type.shape], x.ndim, kept)
    return Kernel(src, kind="reduce", parallel=True, fastmath=kind in ("add", "mul"), passes=1, out_shapes=[shape])


@register(M.FusedReduce)
def lower_fused_reduce(node, ctx):
    op = node.op
    if not supports(op.scalar_op):
        return None
    src = codegen.reduce_source(op.scalar_op, op.axis, op.kinds, [v.type for v in node.inputs],
                                [v.type for v in node.outputs])
    ndim = node.inputs[0].ndim
    kept = [d for d in range(ndim) if d not in op.axis]
    shape = codegen.broadcast_shape_exprs([v.type.shape for v in node.inputs], ndim, kept)
    return Kernel(src, kind="reduce", parallel=True, work=_work(node),
                  fastmath=all(k in ("add", "mul") for k in op.kinds), passes=1, out_shapes=[shape] * len(node.outputs))


@register(NN.Softmax, NN.LogSoftmax)
def lower_softmax(node, ctx):
    x = node.inputs[0]
    if node.op.axis % x.ndim != x.ndim - 1:
        return _numpy(node, ctx)
    src = codegen.softmax_source(x.ndim, x.dtype, isinstance(node.op, NN.LogSoftmax))
    return Kernel(src, kind="softmax", parallel=True, passes=2, out_shapes=["{i0}.shape"])


# --- views ---------------------------------------------------------------------------------

@register(E.DimShuffle)
def lower_dimshuffle(node, ctx):
    op = node.op
    expr = "{i0}"
    if op.dropped and len(op.dropped) == op.input_ndim:
        expr += ".reshape(())"
    elif op.dropped:
        expr += "[" + ", ".join("0" if d in op.dropped else ":" for d in range(op.input_ndim)) + "]"
    remaining = [d for d in range(op.input_ndim) if d not in op.dropped]
    perm = [remaining.index(o) for o in op.new_order if o != "x"]
    if perm != sorted(perm):
        expr += ".T" if perm == [1, 0] else f".transpose({', '.join(map(str, perm))})"
    if "x" in op.new_order:
        expr += "[" + ", ".join("None" if o == "x" else ":" for o in op.new_order) + "]"
    return Inline(expr, kind="view", jit=expr)


@register(S.Reshape)
def lower_reshape(node, ctx):
    return Inline("{i0}.reshape(" + ctx.ref(_shape_tuple) + "({i1}))", kind="view")


def _shape_tuple(v):
    return tuple(int(s) for s in v)


def _slice_part(p, sym_iter, index_of):
    if p == ST.SYM:
        return index_of(next(sym_iter))
    return "" if p is None else str(int(p))


@register(ST.Subtensor)
def lower_subtensor(node, ctx):
    def expr(index_of):  # index_of: a symbolic index's input name -> the integer expression
        sym = iter(f"{{i{k}}}" for k in range(1, len(node.inputs)))
        parts = []
        for e in node.op.idx:
            if isinstance(e, tuple):
                start, stop, step = (_slice_part(p, sym, index_of) for p in e[1:])
                parts.append(f"{start}:{stop}" + (f":{step}" if step else ""))
            elif e == ST.SYM:
                parts.append(index_of(next(sym)))
            else:
                parts.append(str(int(e)))
        text = "{i0}[" + ", ".join(parts) + "]"
        if node.outputs[0].ndim == 0:  # an integer index on every axis gives a numpy scalar: keep a 0-d array
            text = "np.asarray(" + text + ")"
        return text

    return Inline(expr(lambda i: f"int({i})"), kind="view", jit=expr(lambda i: f"{i}[()]"))


# --- shapes and small driver-level ops ---------------------------------------------------------

@register(S.Shape)
def lower_shape(node, ctx):
    expr = "np.array({i0}.shape, np.int64)"
    return Inline(expr, kind="shape", jit=expr)


@register(S.ShapeI)
def lower_shape_i(node, ctx):
    expr = f"np.array({{i0}}.shape[{int(node.op.i)}], np.int64)"
    return Inline(expr, kind="shape", jit=expr)


@register(S.MakeVector)
def lower_make_vector(node, ctx):
    items = "".join(f"{{i{k}}}, " for k in range(len(node.inputs)))
    return Inline(f"np.array([{items}], np.{np.dtype(node.op.dtype).name})", kind="shape")


@register(S.SpecifyShape)
def lower_specify_shape(node, ctx):
    lengths = "".join(f"{{i{k}}}, " for k in range(1, len(node.inputs)))
    jit_lengths = "".join(f"np.int64({{i{k}}}[()]), " for k in range(1, len(node.inputs)))
    return Inline(ctx.ref(S.check_shape) + "({i0}, (" + lengths + "))", kind="view",
                  jit="check_shape({i0}, (" + jit_lengths + "))")


@register(M.Dot)
def lower_dot(node, ctx):
    return Inline(ctx.ref(rt_dot) + "({i0}, {i1}, {b0})", kind="blas", buffers=True)


@register(Gemm)
def lower_gemm(node, ctx):
    return Inline(ctx.ref(rt_gemm) + "({i0}, {i1}, {i2}, {i3}, {i4}, {b0})", kind="blas", buffers=True)


@register(S.Alloc)
def lower_alloc(node, ctx):
    lengths = "".join(f"{{i{k}}}, " for k in range(1, len(node.inputs)))
    return Inline(ctx.ref(rt_alloc) + "({b0}, {i0}, (" + lengths + "))", kind="alloc", buffers=True)


@register(S.Join)
def lower_join(node, ctx):
    items = "".join(f"{{i{k}}}, " for k in range(len(node.inputs)))
    dt = np.dtype(node.outputs[0].dtype).name
    return Inline(f"np.concatenate(({items}), axis={int(node.op.axis)}).astype(np.{dt}, copy=False)", kind="numpy")


@register(S.ARange)
def lower_arange(node, ctx):
    dt = np.dtype(node.op.dtype).name
    return Inline(f"np.arange({{i0}}.item(), {{i1}}.item(), {{i2}}.item()).astype(np.{dt})", kind="numpy")


@register(S.Repeat)
def lower_repeat(node, ctx):
    return Inline(f"np.repeat({{i0}}, int({{i1}}), axis={node.op.axis!r})", kind="numpy")


@register(ST.Nonzero)
def lower_nonzero(node, ctx):
    if len(node.outputs) == 1:
        return Inline("np.asarray(np.nonzero({i0})[0], np.int64)", kind="numpy")
    return Inline("tuple(np.asarray(a, np.int64) for a in np.nonzero({i0}))", kind="numpy")


@register(M.Argmax)
def lower_argmax(node, ctx):
    return Inline(f"np.asarray(np.argmax({{i0}}, axis={node.op.axis!r}), dtype=np.int64)", kind="numpy")


@register(S.SumToShape, ST.AdvancedSubtensor, ST.IncSubtensor, ST.AdvancedIncSubtensor)
def _numpy(node, ctx, kind="numpy"):
    """Ops whose numpy implementation is one library call (fancy indexing, ``np.add.at``):
    the driver calls it directly."""
    args = ", ".join(f"{{i{k}}}" for k in range(len(node.inputs)))
    expr = f"{ctx.ref(node.op)}.perform({ctx.ref(node)}, [{args}])"
    return Inline(expr + ("[0]" if len(node.outputs) == 1 else ""), kind=kind)


@register(RandomVariable)
def lower_random(node, ctx):
    """Draws run through numpy on purpose: a numpy Generator cannot enter compiled code, and
    drawing through numpy keeps every stream identical to the reference interpreter's."""
    return _numpy(node, ctx, kind="random")


if hasattr(NN, "SoftmaxCrossEntropy"):
    @register(NN.SoftmaxCrossEntropy)
    def lower_softmax_crossentropy(node, ctx):
        return Kernel(codegen.crossentropy_source(node.inputs[0].dtype), kind="softmax", parallel=True, passes=2,
                      out_shapes=["({i0}.shape[0],)"])
