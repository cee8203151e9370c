"""Matrix updates: ``z + a * dot(x, y)`` -> ``gemm(z, a, x, y, 1)`` (and ``z - a * dot``).

Why: the SGD step ``W - lr * dot(h.T, g)`` otherwise writes the product to a buffer, then
reads it back beside ``W`` and writes ``W``: three passes over a weight-sized array that
BLAS's gemm folds into the product, which reads and writes ``W`` as it goes (and, marked
in place, with no new buffer).

The rule fires only where the sum is a result of the function (an update of a shared
variable, an output): where another node reads it, the sum may fuse into that node's
kernel instead, which is cheaper than a gemm followed by a separate pass.  ``z`` must have
the product's shape at run time (ShapeKeys proves it): gemm broadcasts neither.
"""
from __future__ import annotations

import numpy as np

from minigraph.graph.basic import Constant
from minigraph.rewriting.framework import local_rule
from minigraph.rewriting.shapes import shape_keys
from minigraph.rewriting.utils import scalar_op
from minigraph.tensor import elemwise as E
from minigraph.tensor import math as M
from minigraph.tensor.basic import constant
from minigraph.tensor.blas import Gemm


def _only_client(fgraph, v, node) -> bool:
    return [c for c, _ in fgraph.clients.get(v, ())] == [node]


def _matrix_product(fgraph, v, reader):
    """The Dot node making ``v`` (matrices, read by ``reader`` only), else None."""
    node = v.owner
    if node is None or not isinstance(node.op, M.Dot) or not _only_client(fgraph, v, reader):
        return None
    x, y = node.inputs
    return node if x.ndim == y.ndim == 2 and x.dtype == y.dtype == v.dtype else None


def _scaled_product(fgraph, v, reader):
    """(scale factors, Dot node) when ``v`` is ``dot(x, y)`` or ``c1 * ... * dot(x, y)`` with
    each ``c`` a scalar (every length statically 1), else None."""
    dot = _matrix_product(fgraph, v, reader)
    if dot is not None:
        return [], dot
    if not isinstance(scalar_op(v), E.Mul) or not _only_client(fgraph, v, reader):
        return None
    mul = v.owner
    products = [t for t in mul.inputs if _matrix_product(fgraph, t, mul) is not None]
    factors = [t for t in mul.inputs if t not in products]
    if len(products) != 1 or not all(all(s == 1 for s in t.type.shape) and t.dtype == v.dtype for t in factors):
        return None
    return factors, products[0].owner


def _scalar(factors, negate: bool, dtype: str):
    """The product of the length-1 ``factors`` (negated if asked) as a 0-d variable (1 or -1
    for no factors)."""
    if all(isinstance(t, Constant) for t in factors):
        value = np.prod([np.asarray(t.data, dtype=dtype).reshape(()) for t in factors], dtype=dtype)
        return constant(np.asarray(-value if negate else value, dtype=dtype))
    parts = [E.DimShuffle((), t.ndim)(t) for t in factors]
    total = parts[0] if len(parts) == 1 else M.mul(*parts)
    return M.neg(total) if negate else total


@local_rule("local_gemm", E.Add, E.Sub)
def local_gemm(fgraph, node):
    """z + a * dot(x, y) -> gemm(z, a, x, y, 1); z - a * dot(x, y) -> gemm(z, -a, x, y, 1)."""
    out = node.outputs[0]
    if len(node.inputs) != 2 or out.ndim != 2 or out.dtype not in ("float32", "float64"):
        return None
    if any(c != "output" for c, _ in fgraph.clients.get(out, ())):
        return None  # the sum may fuse into its reader instead
    subtract = isinstance(node.op.scalar_op, E.Sub)
    orders = [(0, 1)] if subtract else [(0, 1), (1, 0)]
    for zi, pi in orders:
        z, term = node.inputs[zi], node.inputs[pi]
        found = _scaled_product(fgraph, term, node) if z.dtype == out.dtype else None
        if found is None:
            continue
        factors, dot = found
        # neither z nor the product may broadcast against the other at run time
        if not shape_keys(fgraph).same_shape(z, dot.outputs[0]):
            continue
        alpha = _scalar(factors, subtract, out.dtype)
        return [Gemm()(z, alpha, *dot.inputs, constant(np.asarray(1, dtype=out.dtype)))]
    return None


BLAS_RULES = [local_gemm]
