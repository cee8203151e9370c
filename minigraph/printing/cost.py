"""A rough cost model of graph nodes: what kind of work a node is, its floating-point
operations, and which of its inputs it actually reads (views and shape queries read none).

Used by ``explain`` and the pictures; the numbers are estimates for reading, not timings.
"""
from __future__ import annotations

import math

import numpy as np

#: op class names whose result is a view of their first input (no data moves)
VIEW_OPS = ("DimShuffle", "Reshape", "Subtensor", "SpecifyShape")
#: op class names that read only the shape of their inputs
SHAPE_OPS = ("Shape", "ShapeI")


def op_name(node) -> str:
    """The class name of a node's op."""
    return type(node.op).__name__


def is_view(node) -> bool:
    """True for nodes whose output is a view of their first input."""
    return op_name(node) in VIEW_OPS


def reads_data(node) -> bool:
    """False for nodes that look only at their inputs' shapes (or the metadata of a view)."""
    return op_name(node) not in SHAPE_OPS


def node_kind(node) -> str:
    """A short word for the kind of work a node does (used for kernel tables and colours)."""
    name = op_name(node)
    scalar = getattr(node.op, "scalar_op", None)
    if name == "Elemwise":
        return "fused_elemwise" if type(scalar).__name__ == "Composite" else "elemwise"
    if name == "FusedReduce":
        return "fused_reduce"
    if name in ("Sum", "Prod", "Max", "Min", "Argmax", "SumToShape"):
        return "reduce"
    if name in ("Dot", "Gemm"):
        return "blas"
    if name in VIEW_OPS:
        return "view"
    if name in SHAPE_OPS or name == "MakeVector":
        return "shape"
    if name in ("Alloc", "ARange"):
        return "alloc"
    if name in ("Softmax", "LogSoftmax"):
        return "softmax"
    if "Subtensor" in name:
        return "index"
    if hasattr(node.op, "inner_outputs") or hasattr(node.op, "fgraph"):
        return "composite_op"
    return "other"


def primitive_ops(node) -> int:
    """How many primitive ops a node stands for: the steps of a fused scalar program (plus its
    reductions), the nodes of a composite op's inner graph, else 1 (0 for views and shape
    queries, which compute nothing)."""
    if is_view(node) or not reads_data(node):
        return 0
    program = getattr(getattr(node.op, "scalar_op", None), "program", None)
    if program is not None:
        return len(program) + len(getattr(node.op, "kinds", ()))
    inner = getattr(node.op, "inner_graph", None)
    if callable(inner):
        from minigraph.graph.basic import toposort

        inputs, outputs = inner()
        return sum(primitive_ops(n) for n in toposort(outputs, stop_at=inputs))
    return 1


def size_of(shape) -> int | None:
    """Number of elements of a shape (None if a length is unknown)."""
    if shape is None or any(s is None for s in shape):
        return None
    return int(math.prod(shape))


def nbytes(shape, dtype) -> int | None:
    """Bytes of an array of this shape and dtype (None if a length is unknown)."""
    n = size_of(shape)
    return None if n is None else n * np.dtype(dtype).itemsize


def _scalar_ops(scalar_op, nin: int) -> int:
    """Scalar operations per element of one (possibly fused) scalar op."""
    program = getattr(scalar_op, "program", None)
    if program is not None:
        return sum(max(len(args) - 1, 1) if getattr(op, "nin", 1) == -1 else 1 for op, args in program)
    if getattr(scalar_op, "nin", 1) == -1:
        return max(nin - 1, 1)
    return 1


def flops(node, shapes) -> int | None:
    """Estimated floating-point operations of ``node``; ``shapes(v)`` gives a variable's shape."""
    name = op_name(node)
    if name == "Elemwise":
        n = size_of(shapes(node.outputs[0]))
        return None if n is None else n * _scalar_ops(node.op.scalar_op, len(node.inputs))
    if name == "FusedReduce":
        full = _broadcast(shapes(v) for v in node.inputs)
        n = size_of(full)
        per = _scalar_ops(node.op.scalar_op, len(node.inputs)) + len(node.op.kinds)
        return None if n is None else n * per
    if name in ("Sum", "Prod", "Max", "Min", "SumToShape", "Argmax"):
        return size_of(shapes(node.inputs[0]))
    if name == "Dot":
        a, b = shapes(node.inputs[0]), shapes(node.inputs[1])
        if a is None or b is None or None in a or None in b:
            return None
        k = a[-1]
        return 2 * k * (size_of(a[:-1]) or 1) * (size_of(b[1:]) or 1)
    if name == "Gemm":  # the product, then beta * z + alpha * product
        m, n = shapes(node.inputs[2]), shapes(node.inputs[3])
        if m is None or n is None or None in m or None in n:
            return None
        return 2 * m[0] * m[1] * n[1] + 3 * m[0] * n[1]
    if name in ("Softmax", "LogSoftmax"):
        n = size_of(shapes(node.inputs[0]))
        return None if n is None else 4 * n
    if callable(getattr(node.op, "inline", None)):
        return _inner_flops(node, shapes)
    return 0


def _inner_flops(node, shapes) -> int | None:
    """Flops of a composite op: those of its inner graph built on inputs of the actual shapes."""
    from minigraph.graph.basic import toposort
    from minigraph.graph.type import TensorType

    in_shapes = [shapes(v) for v in node.inputs]
    if any(s is None or None in s for s in in_shapes):
        return None
    inputs = [TensorType(v.type.dtype, s).make_variable() for v, s in zip(node.inputs, in_shapes)]
    try:
        outs = node.op.inline(inputs)
    except (TypeError, ValueError):
        return None
    total = 0
    for inner in toposort(outs, stop_at=inputs):
        n = flops(inner, lambda v: tuple(v.type.shape))
        if n is None:
            return None
        total += n
    return total


def _broadcast(shapes) -> tuple | None:
    shapes = list(shapes)
    if any(s is None for s in shapes):
        return None
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for d in range(ndim):
        lengths = [s[d - ndim + len(s)] for s in shapes if d - ndim + len(s) >= 0]
        if any(x is None for x in lengths):
            return None
        big = [x for x in lengths if x != 1]
        out.append(big[0] if big else 1)
    return tuple(out)
